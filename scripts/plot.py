#!/usr/bin/env python3
"""plot.py — PNG figures from `laic sweep` / `laic run` outputs (matplotlib, no laic code).

    python3 scripts/plot.py SWEEP_DIR          # what `laic sweep --plot` runs
    python3 scripts/plot.py RUN_DIR [RUN_DIR ...]

From a sweep directory (sweep.csv):
  sweep_<axis>.png      NMI / ACC / ARI of every method against each swept value, mean ± std
                        over run.seed as error bars (paper Fig. 6-8 style); numeric axes are
                        drawn on a log x axis when their values span >= 100x.
  pseudo_labels.png     pseudo-label ACC on the fit split before and after the kNN filter per
                        point, with the kept fraction (paper Fig. 5).
  and for every point that wrote C.npy (ridge.save_c=true): <point>/C_heatmap.png.
From run directories (report.json, optional C.npy):
  pseudo_labels.png (one bar pair per run: e.g. one run per dataset, paper Fig. 5) next to the
  first run, and C_heatmap.png in each run that has C.npy: |C| with rows grouped by true class
  and class boundaries drawn; columns ordered by the class whose rows weigh them most
  (paper Fig. 3: a block-diagonal picture means the nouns separate the classes).
Everything is read from files laic wrote; nothing is recomputed.
"""
import csv
import json
import math
import os
import sys
from collections import OrderedDict

import numpy as np

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit("plot.py: matplotlib is not installed ---> HINT: pip install matplotlib")

METRICS = ("nmi", "acc", "ari")
SKIP_COLS = {"point", "status", "run_dir", "note"}


def fnum(s):
    try:
        v = float(s)
        return v if math.isfinite(v) else None
    except (TypeError, ValueError):
        return None


def read_sweep(d):
    with open(os.path.join(d, "sweep.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    with open(os.path.join(d, "sweep.json")) as f:
        meta = json.load(f)
    axes = [a["key"] for a in meta["axes"]]
    return rows, axes, meta


def methods_of(rows):
    ms = []
    for c in rows[0].keys() if rows else []:
        for m in METRICS:
            if c.endswith("." + m) and not c.startswith("pseudo_labels"):
                name = c[: -len(m) - 1]
                if name not in ms:
                    ms.append(name)
    return ms


def mean_std(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None, None
    m = sum(vals) / len(vals)
    s = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return m, s


def plot_axis(d, rows, axes, axis, methods):
    """Metric vs one axis; other non-seed axes become separate lines, seeds become error bars."""
    others = [a for a in axes if a != axis and a != "run.seed"]
    values = list(OrderedDict.fromkeys(r[axis] for r in rows))
    numeric = all(fnum(v) is not None for v in values)
    xs = [fnum(v) for v in values] if numeric else list(range(len(values)))
    fig, axs = plt.subplots(1, 3, figsize=(13, 3.8), squeeze=False)
    combos = list(OrderedDict.fromkeys(tuple(r[o] for o in others) for r in rows))
    for k, metric in enumerate(METRICS):
        ax = axs[0][k]
        for m in methods:
            col = f"{m}.{metric}"
            for combo in combos:
                ys, es = [], []
                for v in values:
                    sel = [r for r in rows if r[axis] == v and r["status"] == "ok"
                           and tuple(r[o] for o in others) == combo]
                    mu, sd = mean_std([fnum(r.get(col)) for r in sel])
                    ys.append(np.nan if mu is None else 100 * mu)
                    es.append(np.nan if sd is None else 100 * sd)
                label = m + ("" if not others else " (" + ", ".join(f"{o}={c}" for o, c in zip(others, combo)) + ")")
                ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=label)
        if numeric and min(xs) > 0 and max(xs) / min(xs) >= 100:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(xs)
            ax.set_xticklabels(values, rotation=30, ha="right", fontsize=8)
        ax.set_xlabel(axis)
        ax.set_ylabel(metric.upper() + " (%)")
        ax.grid(alpha=0.3)
    axs[0][0].legend(fontsize=7)
    nseed = len({r.get("run.seed") for r in rows}) if "run.seed" in axes else 1
    fig.suptitle(f"{meta_name(d)}: metrics vs {axis}" + (f" (mean ± std over {nseed} seeds)" if nseed > 1 else ""))
    fig.tight_layout()
    out = os.path.join(d, f"sweep_{axis}.png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def meta_name(d):
    return os.path.basename(os.path.normpath(d))


def plot_pseudo(out, labels, before, after, frac, title):
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(labels) + 2), 4))
    x = np.arange(len(labels))
    ax.bar(x - 0.2, [100 * (b if b is not None else np.nan) for b in before], 0.4, label="all pseudo-labels")
    ax.bar(x + 0.2, [100 * (a if a is not None else np.nan) for a in after], 0.4, label="after kNN filter")
    for i, f in enumerate(frac):
        if f is not None:
            ax.annotate(f"{100 * f:.0f}% kept", (x[i] + 0.2, 100 * (after[i] or 0)), ha="center",
                        va="bottom", fontsize=7)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("pseudo-label ACC (%)")
    ax.set_ylim(0, 118)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_c(run_dir):
    cp, lp = os.path.join(run_dir, "C.npy"), os.path.join(run_dir, "C_labels.npy")
    if not (os.path.exists(cp) and os.path.exists(lp)):
        return None
    C, y = np.abs(np.load(cp)), np.load(lp)
    classes = [c for c in np.unique(y)]
    # column order: by the class with the largest mean |C| over its rows, then by that weight
    w = np.stack([C[y == c].mean(0) for c in classes])          # (classes, D)
    best = w.argmax(0)
    order = np.lexsort((-w.max(0), best))
    A = C[:, order]
    vmax = np.percentile(A, 99) or 1.0
    fig, ax = plt.subplots(figsize=(8, 6))
    im = ax.imshow(A, aspect="auto", cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
    bounds = np.flatnonzero(np.diff(y)) + 0.5
    for b in bounds:
        ax.axhline(b, color="w", lw=0.6)
    mids = [np.flatnonzero(y == c).mean() for c in classes]
    if len(classes) <= 30:
        ax.set_yticks(mids)
        ax.set_yticklabels([str(c) for c in classes], fontsize=7)
    ax.set_ylabel("images, grouped by true class")
    ax.set_xlabel("candidate nouns (ordered by the class that weighs them most)")
    ax.set_title(f"|C| ({A.shape[0]} images × {A.shape[1]} columns): {meta_name(run_dir)}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    out = os.path.join(run_dir, "C_heatmap.png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def sweep_main(d):
    rows, axes, meta = read_sweep(d)
    methods = methods_of(rows)
    outs = []
    for a in axes:
        if a != "run.seed" or len(axes) == 1:
            outs.append(plot_axis(d, rows, axes, a, methods))
    labels, b, a_, fr = [], [], [], []
    for r in rows:
        if r["status"] != "ok":
            continue
        labels.append(", ".join(f"{k.split('.')[-1]}={r[k]}" for k in axes))
        b.append(fnum(r.get("pseudo_labels.acc_before_filter")))
        a_.append(fnum(r.get("pseudo_labels.acc_after_filter")))
        fr.append(fnum(r.get("pseudo_labels.high_quality_fraction")))
    if any(v is not None for v in b):
        outs.append(plot_pseudo(os.path.join(d, "pseudo_labels.png"), labels, b, a_, fr,
                                f"{meta_name(d)}: pseudo-label accuracy before/after filtering"))
    for r in rows:
        o = plot_c(r["run_dir"])
        if o:
            outs.append(o)
    return outs


def runs_main(dirs):
    labels, b, a, fr, outs = [], [], [], [], []
    for d in dirs:
        with open(os.path.join(d, "report.json")) as f:
            rep = json.load(f)
        pl = rep.get("pseudo_labels", {})
        labels.append(meta_name(d))
        b.append(pl.get("acc_before_filter"))
        a.append(pl.get("acc_after_filter"))
        fr.append(pl.get("high_quality_fraction"))
        o = plot_c(d)
        if o:
            outs.append(o)
    outs.append(plot_pseudo(os.path.join(dirs[0], "pseudo_labels.png"), labels, b, a, fr,
                            "pseudo-label accuracy before/after filtering"))
    return outs


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(argv) >= 2 else 2
    dirs = argv[1:]
    for d in dirs:
        if not os.path.isdir(d):
            sys.exit(f"plot.py: {d}: not a directory")
    if len(dirs) == 1 and os.path.exists(os.path.join(dirs[0], "sweep.csv")):
        outs = sweep_main(dirs[0])
    else:
        for d in dirs:
            if not os.path.exists(os.path.join(d, "report.json")):
                sys.exit(f"plot.py: {d}: no sweep.csv or report.json")
        outs = runs_main(dirs)
    for o in outs:
        print(o)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
