#!/usr/bin/env python3
"""bench_cluster_cpu.py — CPU timings of `laic ridge / kmeans / knn` against numpy / scikit-learn
at the paper's sizes (N = 60,000, d = 512, M = 1,000, K = 10 and 100, k = 10), both on the same
thread count, in the same run.

Data are synthetic but CLIP-like: K_true unit-norm class directions plus noise, rows
L2-normalised; texts T are unit-norm too. laic is timed as a whole process (wall clock,
including reading and writing its .npy files); numpy / scikit-learn are timed on the
computation only, on arrays already in memory — so the ratios slightly favour the reference.

kNN: exact cosine top-10 over all 60,000 rows costs 2·N²·d = 3.7 TFLOP; laic runs on all rows,
numpy on a subset of --knn-rows query rows against all rows (GEMM + argpartition + sort), and
its time is extrapolated linearly to N rows (the work is linear in the query rows).

Usage: python3 bench/bench_cluster_cpu.py [--laic build/laic] [--threads 2] [--tasks ridge,kmeans,knn]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("--laic", default="build/laic")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--n", type=int, default=60000)
ap.add_argument("--d", type=int, default=512)
ap.add_argument("--m", type=int, default=1000)
ap.add_argument("--knn-rows", type=int, default=3000)
ap.add_argument("--tasks", default="ridge,kmeans,knn", help="comma-separated subset to run")
args = ap.parse_args()
for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[v] = str(args.threads)

import numpy as np  # noqa: E402  (after the thread variables)
from sklearn.cluster import KMeans  # noqa: E402

N, d, M = args.n, args.d, args.m
rng = np.random.default_rng(0)


def l2n(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def data(ktrue):
    means = l2n(rng.standard_normal((ktrue, d)))
    y = rng.integers(0, ktrue, N)
    return l2n(means[y] + rng.standard_normal((N, d)) * (0.8 / np.sqrt(d)) * 1.0).astype(np.float32)


def run_laic(cmd):
    t = time.perf_counter()
    p = subprocess.run([args.laic] + cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if p.returncode:
        sys.exit(f"laic failed: {p.stderr}")
    return dt, p.stderr


def best_of(fn, reps=2):
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return min(ts), out


rows = []
tmp = tempfile.mkdtemp(prefix="laic-bench-")
X = data(10)
T = l2n(rng.standard_normal((M, d))).astype(np.float32)
xp, tp = os.path.join(tmp, "X.npy"), os.path.join(tmp, "T.npy")
np.save(xp, X)
np.save(tp, T)
lam = 10.0

# --- ridge --------------------------------------------------------------------------------------
def np_dual():
    A = np.linalg.solve(T.T @ T + lam * np.eye(d, dtype=np.float32), T.T)
    return X @ A


def np_primal():
    G = T @ T.T + lam * np.eye(M, dtype=np.float32)
    return np.linalg.solve(G, T @ X.T).T


tasks = args.tasks.split(",")
for form, fn in (("dual", np_dual), ("primal", np_primal)) if "ridge" in tasks else ():
    tr, Cref = best_of(fn)
    tl = min(run_laic(["ridge", "--images", xp, "--texts", tp, "--lambda", str(lam), "--form", form,
                       "--out", os.path.join(tmp, "C.npy")])[0] for _ in range(2))
    C = np.load(os.path.join(tmp, "C.npy"))
    err = np.abs(C - Cref).max() / np.abs(Cref).max()
    rows.append((f"ridge {form} (N={N}, d={d}, M={M})", tl, tr, "numpy float32 solve",
                 f"max rel diff {err:.1e}"))
    print(rows[-1], flush=True)

# --- k-means ------------------------------------------------------------------------------------
for K in (10, 100) if "kmeans" in tasks else ():
    Xk = data(K)
    kp = os.path.join(tmp, f"Xk{K}.npy")
    np.save(kp, Xk)
    km = KMeans(n_clusters=K, n_init=1, init="k-means++", max_iter=300, tol=0.0,
                algorithm="lloyd", random_state=0)
    tr, _ = best_of(lambda: km.fit(Xk))
    tl, err = run_laic(["kmeans", "--in", kp, "--k", str(K), "--restarts", "1", "--tol", "0",
                        "--iters", "300", "--out", os.path.join(tmp, "lab.npy")])
    it_l = int(err.split("after ")[1].split()[0])
    obj_l = float(err.split("objective ")[1].split()[0])
    rows.append((f"kmeans K={K} (1 init, Lloyd to convergence)", tl, tr, "sklearn KMeans lloyd",
                 f"iters laic {it_l} / sklearn {km.n_iter_}; per iter {tl / max(it_l, 1) * 1e3:.0f} "
                 f"vs {tr / max(km.n_iter_, 1) * 1e3:.0f} ms; objective {obj_l:.1f} vs {km.inertia_:.1f}"))
    print(rows[-1], flush=True)

# --- kNN ----------------------------------------------------------------------------------------
if "knn" in tasks:
    q = args.knn_rows

    def np_knn():
        S = X[:q] @ X.T
        S[np.arange(q), np.arange(q)] = -np.inf
        part = np.argpartition(-S, 10, axis=1)[:, :10]
        sv = np.take_along_axis(S, part, 1)
        o = np.argsort(-sv, axis=1, kind="stable")
        return np.take_along_axis(part, o, 1)

    tr, ref = best_of(np_knn, reps=1)
    tr_full = tr * N / q
    tl, _ = run_laic(["knn", "--in", xp, "--k", "10", "--out", os.path.join(tmp, "idx.npy")])
    idx = np.load(os.path.join(tmp, "idx.npy"))
    agree = (idx[:q] == ref).mean()
    rows.append((f"knn k=10 (N={N}, d={d})", tl, tr_full,
                 f"numpy GEMM+argpartition, {q} rows x{N / q:.0f}", f"ids agree {agree * 100:.2f}%"))
    print(rows[-1], flush=True)

print(f"\n| task | laic (s) | reference (s) | ratio | reference | notes |\n|---|---|---|---|---|---|")
for name, tl, tr, ref, note in rows:
    print(f"| {name} | {tl:.2f} | {tr:.2f} | {tl / tr:.2f} | {ref} | {note} |")
