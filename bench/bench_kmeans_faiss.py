#!/usr/bin/env python3
"""bench_kmeans_faiss.py — k-means and ridge (primal) on the CPU: laic beside faiss, scikit-learn
and numpy in the same run (issue 17, deliverable 6: one rank at full speed first).

Data: N = 60,000 CLIP-like unit rows, d = 512, K_true = K blobs (the generator of
bench_cluster_cpu.py), T: M = 1,000 unit rows (ridge).

Measured, each `--reps` times, interleaved (laic, faiss, sklearn, laic, ...) so that the load
of the shared machine hits every side alike; the table keeps the best of the repeats, and the
raw times are printed as they come:

  k-means, per Lloyd iteration (K = 100), from the same k-means++ centres:
    laic     build/bench/bench_kmeans_cpu: the ops of one iteration (fused GEMM assignment +
             fixed-point sums, centre means), wall and process CPU time
    faiss    faiss.Kmeans(niter = 1 and 11, init_centroids = C0, max_points_per_centroid = N so
             it trains on every row): (t11 − t1) / 10
    sklearn  KMeans(init = C0, n_init = 1, algorithm = "lloyd", max_iter = 10): time / n_iter_
  k-means start: laic's greedy k-means++ (kmeans_fit with iters = 0) vs sklearn's
    kmeans_plusplus (the same greedy algorithm, 2 + ⌊ln K⌋ trials); faiss has no k-means++
  k-means, one whole run (1 restart, to convergence or 300 iterations), as processes/calls:
    laic kmeans --init kmeans++ and --init random (reads the 123 MB .npy: included),
    faiss.Kmeans (random init, niter = 25, its default), sklearn KMeans (k-means++, 1 init)
  ridge primal (M = 1,000 > d = 512): laic ridge --form primal; numpy solve(G, T Xᵀ) (N
    right-hand sides, the reference of bench_cluster_cpu.py) and solve(G, T) then X Aᵀ (d
    right-hand sides, the same algorithm as laic's)

Usage: python3 bench/bench_kmeans_faiss.py [--laic build/laic] [--bench build/bench/bench_kmeans_cpu]
       [--threads 1,2] [--reps 3] [--old-laic /path/to/an/older/laic]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("--laic", default="build/laic")
ap.add_argument("--bench", default="build/bench/bench_kmeans_cpu")
ap.add_argument("--old-laic", default="", help="an older laic binary timed beside (before/after)")
ap.add_argument("--threads", default="1,2")
ap.add_argument("--reps", type=int, default=3)
ap.add_argument("--n", type=int, default=60000)
ap.add_argument("--d", type=int, default=512)
ap.add_argument("--k", type=int, default=100)
ap.add_argument("--m", type=int, default=1000)
ap.add_argument("--tasks", default="iter,init,run,ridge")
args = ap.parse_args()

N, d, K, M = args.n, args.d, args.k, args.m
tasks = args.tasks.split(",")


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# The thread count must be set before numpy / faiss load their BLAS and OpenMP runtimes, so each
# thread count runs in a child process of this script.
if os.environ.get("_BENCH_CHILD") is None:
    tmp = tempfile.mkdtemp(prefix="laic-kmbench-")
    out = {}
    for t in args.threads.split(","):
        env = dict(os.environ, _BENCH_CHILD=tmp, OMP_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t,
                   MKL_NUM_THREADS=t)
        p = subprocess.run([sys.executable] + sys.argv, env=env, capture_output=True, text=True)
        sys.stderr.write(p.stderr)
        if p.returncode:
            sys.exit(f"child with {t} threads failed")
        out[t] = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"\nmachine: {os.cpu_count()} cores; load before/after each thread count in the rows")
    print("| threads | task | laic | faiss | scikit-learn | numpy | notes |")
    print("|---|---|---|---|---|---|---|")
    for t, r in out.items():
        for row in r["rows"]:
            print("| " + t + " | " + " | ".join(row) + " |")
        print(f"| {t} | load | {r['load0']} → {r['load1']} | | | | |")
    sys.exit(0)

# --- child: one thread count --------------------------------------------------------------------
T = int(os.environ["OMP_NUM_THREADS"])
tmp = os.environ["_BENCH_CHILD"]
import numpy as np  # noqa: E402
import faiss  # noqa: E402
from sklearn.cluster import KMeans, kmeans_plusplus  # noqa: E402

faiss.omp_set_num_threads(T)
load0 = load()


def l2n(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


xp = os.path.join(tmp, f"X{K}.npy")
tp = os.path.join(tmp, "T.npy")
if not os.path.exists(xp):
    rng = np.random.default_rng(0)
    means = l2n(rng.standard_normal((K, d)))
    y = rng.integers(0, K, N)
    np.save(xp, l2n(means[y] + rng.standard_normal((N, d)) * (0.8 / np.sqrt(d))).astype(np.float32))
    np.save(tp, l2n(rng.standard_normal((M, d))).astype(np.float32))
X = np.load(xp)
Tm = np.load(tp)


def log(*a):
    print(f"[{T} thr, load {load()}]", *a, file=sys.stderr, flush=True)


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    r = fn()
    return time.perf_counter() - w, time.process_time() - c, r


def laic(cmd):
    w = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"{cmd[0]} failed: {p.stderr}")
    return time.perf_counter() - w, p


rows = []
best = {}


def keep(key, w, c=None):
    b = best.setdefault(key, [1e30, 1e30])
    b[0] = min(b[0], w)
    if c is not None:
        b[1] = min(b[1], c)


# k-means++ centres shared by the per-iteration measurements
C0, _ = kmeans_plusplus(X, K, random_state=0)
C0 = np.ascontiguousarray(C0, dtype=np.float32)
for rep in range(args.reps):
    if "iter" in tasks or "init" in tasks:
        _, p = laic([args.bench, xp, str(K), "10", "1"])
        j = json.loads(p.stdout)
        keep("laic_iter", j["iter_ms"], j["iter_cpu_ms"])
        keep("laic_init", j["init_s"], j["init_cpu_s"])
        log("laic", j)
    if "iter" in tasks:
        tt = {}
        for it in (1, 11):
            km = faiss.Kmeans(d, K, niter=it, nredo=1, seed=1, max_points_per_centroid=N)
            tt[it] = timed(lambda: km.train(X, init_centroids=C0))
        keep("faiss_iter", (tt[11][0] - tt[1][0]) / 10 * 1e3, (tt[11][1] - tt[1][1]) / 10 * 1e3)
        log("faiss per iteration ms", best["faiss_iter"])
        km = KMeans(K, init=C0, n_init=1, max_iter=10, tol=0, algorithm="lloyd")
        w, c, _ = timed(lambda: km.fit(X))
        keep("sk_iter", w / km.n_iter_ * 1e3, c / km.n_iter_ * 1e3)
        log("sklearn per iteration ms", w / km.n_iter_ * 1e3, "iters", km.n_iter_)
    if "init" in tasks:
        w, c, _ = timed(lambda: kmeans_plusplus(X, K, random_state=rep))
        keep("sk_init", w, c)
        log("sklearn kmeans_plusplus s", w)
    if "run" in tasks:
        lab = os.path.join(tmp, "lab.npy")
        for init in ("kmeans++", "random"):
            w, p = laic([args.laic, "kmeans", "--in", xp, "--k", str(K), "--restarts", "1",
                         "--init", init, "--out", lab])
            it = int(p.stderr.split("after ")[1].split()[0])
            keep(f"laic_run_{init}", w)
            best[f"laic_run_{init}_it"] = it
            log(f"laic run {init}", w, "s,", it, "iterations")
            if args.old_laic:
                w, p = laic([args.old_laic, "kmeans", "--in", xp, "--k", str(K), "--restarts", "1",
                             "--init", init, "--out", lab])
                keep(f"old_run_{init}", w)
                log(f"old laic run {init}", w)
        km = faiss.Kmeans(d, K, niter=25, nredo=1, seed=rep, max_points_per_centroid=N)
        w, c, _ = timed(lambda: km.train(X))
        keep("faiss_run", w)
        log("faiss run (25 iterations)", w)
        km = KMeans(K, n_init=1, max_iter=300, tol=0, algorithm="lloyd", random_state=rep)
        w, c, _ = timed(lambda: km.fit(X))
        keep("sk_run", w)
        best["sk_run_it"] = km.n_iter_
        log("sklearn run", w, km.n_iter_)
    if "ridge" in tasks:
        cp = os.path.join(tmp, "C.npy")
        w, _ = laic([args.laic, "ridge", "--images", xp, "--texts", tp, "--lambda", "10", "--form",
                     "primal", "--out", cp])
        keep("laic_ridge", w)
        log("laic ridge primal", w)
        if args.old_laic:
            w, _ = laic([args.old_laic, "ridge", "--images", xp, "--texts", tp, "--lambda", "10",
                         "--form", "primal", "--out", cp])
            keep("old_ridge", w)
            log("old laic ridge primal", w)
        G = Tm @ Tm.T + 10 * np.eye(M, dtype=np.float32)
        w, c, Cn = timed(lambda: np.linalg.solve(G, Tm @ X.T).T)
        keep("np_ridge_n", w)
        w, c, Cd = timed(lambda: X @ np.linalg.solve(G, Tm).T)
        keep("np_ridge_d", w)
        Cl = np.load(cp)
        best["ridge_err"] = float(np.abs(Cl - Cn).max() / np.abs(Cn).max())
        log("numpy ridge N rhs / d rhs", best["np_ridge_n"], best["np_ridge_d"])


def f(key, i=0, fmt="{:.1f}"):
    return fmt.format(best[key][i]) if key in best else ""


if "iter" in tasks:
    rows.append(["k-means K=100, ms per Lloyd iteration (wall)", f("laic_iter"), f("faiss_iter"),
                 f("sk_iter"), "", "same k-means++ centres; best of the repeats"])
    rows.append(["k-means K=100, ms per Lloyd iteration (process CPU)", f("laic_iter", 1),
                 f("faiss_iter", 1), f("sk_iter", 1), "", "CPU time: steadier under load"])
if "init" in tasks:
    rows.append(["k-means++ start, s (wall)", f("laic_init", 0, "{:.2f}"), "—",
                 f("sk_init", 0, "{:.2f}"), "", "greedy, 2+⌊ln K⌋ = 6 trials per centre; faiss has none"])
if "run" in tasks:
    note = (f"laic {best.get('laic_run_kmeans++_it')} / {best.get('laic_run_random_it')} iterations "
            f"(k-means++ / random, to convergence); faiss 25 (its default); sklearn "
            f"{best.get('sk_run_it')}")
    if args.old_laic:
        note += f"; before this change: {f('old_run_kmeans++', 0, '{:.2f}')} / {f('old_run_random', 0, '{:.2f}')} s"
    rows.append(["k-means K=100, one run, s (k-means++ / random init)",
                 f"{f('laic_run_kmeans++', 0, '{:.2f}')} / {f('laic_run_random', 0, '{:.2f}')}",
                 f("faiss_run", 0, "{:.2f}") + " (random)", f("sk_run", 0, "{:.2f}") + " (k-means++)",
                 "", note + "; laic as a process reading the 123 MB .npy"])
if "ridge" in tasks:
    note = f"max rel diff of C vs numpy {best.get('ridge_err', 0):.1e}"
    if args.old_laic:
        note += f"; before this change: {f('old_ridge', 0, '{:.2f}')} s"
    rows.append(["ridge primal N=60000 M=1000 d=512, s", f("laic_ridge", 0, "{:.2f}"), "", "",
                 f"{f('np_ridge_n', 0, '{:.2f}')} (N rhs) / {f('np_ridge_d', 0, '{:.2f}')} (d rhs)",
                 note + "; laic as a process (reads X, writes the 240 MB C)"])
print(json.dumps({"rows": rows, "load0": load0, "load1": load()}))
