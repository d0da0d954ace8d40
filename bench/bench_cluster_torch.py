#!/usr/bin/env python3
"""bench_cluster_torch.py — well-written PyTorch baselines for laic's clustering ops.

The "torch" column of the GPU comparison (bench/bench_gpu_cluster.sh); runs on CPU or CUDA.

  kmeans  Lloyd with ALL restarts batched: centres (R*K, d) in one matrix, one matmul per
          iteration for every restart (‖x‖² − 2 X Cᵀ + ‖c‖², argmin over K), centre update by
          a one-hot matmul (onehotᵀ X, a GEMM of the same size: deterministic, no atomics),
          empty clusters keep their centre; init k-means++ (one trial per centre, batched over
          restarts). A restart stops updating when its labels no longer change; the loop checks
          (one host sync) every `--check` iterations and stops when all restarts have stopped.
          Same data generator and sizes as bench_cluster_gpu (K=10, 300 it × 10 restarts).
  knn     cosine top-k, self excluded: row tiles S = F[t] Fᵀ (matmul), self masked, torch.topk.
          --knn-precision fp32|tf32|bf16 (tf32: torch.backends.cuda.matmul.allow_tf32; bf16:
          operands cast to bfloat16, fp32 output).
  ridge   primal factor + solve in float64, the op bench_cluster_gpu times against cuSOLVER:
          G = T Tᵀ + λI (M×M), L = torch.linalg.cholesky(G), C = (X Tᵀ) G⁻¹ by
          torch.cholesky_solve; and the dual (d×d push-through) form end to end.

Output: one JSON object per line on stdout: impl, op, device, sizes, ms (median of --repeats
timed runs after one warm-up; CUDA timings synchronise before reading the clock), plus what
each op checks (objective, iterations, agreement of reduced-precision kNN with fp32).
--save-data DIR writes the generated X.npy (N,d) and T.npy (M,d) so laic's CLI can be timed
on the very same data (bench_gpu_cluster.sh does).
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import torch


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn, dev, repeats):
    """Median milliseconds of fn() over `repeats` runs after one warm-up; returns (ms, result)."""
    out = fn()
    sync(dev)
    ts = []
    for _ in range(repeats):
        sync(dev)
        t0 = time.perf_counter()
        out = fn()
        sync(dev)
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts), out


def make_data(n, d, m, seed):
    """bench_cluster_gpu's blobs: N(0,1) plus 3 on column (row % 10); T: M Gaussian rows."""
    g = np.random.default_rng(seed)
    X = g.standard_normal((n, d), dtype=np.float32)
    X[np.arange(n), np.arange(n) % 10 % d] += 3.0
    T = g.standard_normal((m, d), dtype=np.float32)
    return X, T


# --- k-means ---------------------------------------------------------------------------------
def kmeans_pp_batched(X, xx, K, R, gen):
    """k-means++ (one trial per centre) for R restarts at once: C (R, K, d)."""
    N, d = X.shape
    dev = X.device
    first = torch.randint(0, N, (R,), generator=gen, device=dev)
    C = torch.empty(R, K, d, device=dev, dtype=X.dtype)
    C[:, 0] = X[first]
    closest = (xx[None, :] - 2 * C[:, 0] @ X.T + (C[:, 0] ** 2).sum(1)[:, None]).clamp_min_(0)
    for c in range(1, K):
        # one sample per restart, probability ∝ D²
        pick = torch.multinomial(closest + 1e-30, 1, generator=gen).squeeze(1)
        C[:, c] = X[pick]
        dc = (xx[None, :] - 2 * C[:, c] @ X.T + (C[:, c] ** 2).sum(1)[:, None]).clamp_min_(0)
        closest = torch.minimum(closest, dc)
    return C


def kmeans_batched(X, K, R, iters, check, seed):
    """Returns (best objective, iterations run, objectives per restart)."""
    N, d = X.shape
    dev = X.device
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed)
    xx = (X * X).sum(1)
    C = kmeans_pp_batched(X, xx, K, R, gen).reshape(R * K, d)
    offs = (torch.arange(R, device=dev) * K)[None, :]          # (1,R)
    running = torch.ones(R, dtype=torch.bool, device=dev)
    labels = None
    it = 0
    for it in range(1, iters + 1):
        D = xx[:, None] - 2 * (X @ C.T) + (C * C).sum(1)[None, :]   # (N, R*K)
        new = D.view(N, R, K).argmin(2)                               # (N, R)
        if labels is not None:
            running &= (new != labels).any(0)
        labels = new
        onehot = torch.zeros(N, R * K, device=dev, dtype=X.dtype)
        onehot.scatter_(1, labels + offs, 1.0)
        counts = onehot.sum(0)                                        # (R*K)
        sums = onehot.T @ X                                           # (R*K, d)
        upd = (counts > 0)[:, None] & running.repeat_interleave(K)[:, None]
        C = torch.where(upd, sums / counts.clamp_min(1)[:, None], C)
        if it % check == 0 and not bool(running.any()):
            break
    D = (xx[:, None] - 2 * (X @ C.T) + (C * C).sum(1)[None, :]).view(N, R, K)
    mind = D.min(2).values.clamp_min(0).double()                      # (N, R)
    objs = mind.sum(0)
    return float(objs.min()), it, objs.tolist()


# --- kNN -------------------------------------------------------------------------------------
def knn_topk(F, k, tile, precision):
    N = F.shape[0]
    Fm = F.to(torch.bfloat16) if precision == "bf16" else F
    idx = torch.empty(N, k, dtype=torch.int64, device=F.device)
    sims = torch.empty(N, k, dtype=torch.float32, device=F.device)
    for r0 in range(0, N, tile):
        r1 = min(N, r0 + tile)
        S = (Fm[r0:r1] @ Fm.T).float()
        S[torch.arange(r1 - r0, device=F.device), torch.arange(r0, r1, device=F.device)] = -math.inf
        v, i = torch.topk(S, k, dim=1)
        idx[r0:r1], sims[r0:r1] = i, v
    return idx, sims


# --- ridge -----------------------------------------------------------------------------------
def ridge_primal_factor_solve(G, B):
    """C (N,M) = B G⁻¹ for B (N,M), G (M,M) SPD, float64: Cholesky + two triangular solves."""
    L = torch.linalg.cholesky(G)
    return torch.cholesky_solve(B.T, L).T


def ridge_dual(X, T, lam):
    Td = T.double()
    H = Td.T @ Td + lam * torch.eye(T.shape[1], dtype=torch.float64, device=T.device)
    A = torch.cholesky_solve(Td.T, torch.linalg.cholesky(H))   # (d,M)
    return X @ A.float()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--ops", default="kmeans,knn,ridge")
    ap.add_argument("--n", type=int, default=60000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--m", type=int, default=512, help="texts for ridge")
    ap.add_argument("--clusters", type=int, default=10)
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--restarts", type=int, default=10)
    ap.add_argument("--check", type=int, default=10, help="k-means convergence check period")
    ap.add_argument("--knn-k", type=int, default=10)
    ap.add_argument("--knn-tile", type=int, default=4096)
    ap.add_argument("--knn-precision", default="fp32", choices=["fp32", "tf32", "bf16"])
    ap.add_argument("--lam", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-data", metavar="DIR", help="write X.npy and T.npy there")
    a = ap.parse_args()

    dev = torch.device(a.device)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    Xh, Th = make_data(a.n, a.d, a.m, a.seed)
    if a.save_data:
        os.makedirs(a.save_data, exist_ok=True)
        np.save(os.path.join(a.save_data, "X.npy"), Xh)
        np.save(os.path.join(a.save_data, "T.npy"), Th)
    X = torch.from_numpy(Xh).to(dev)
    T = torch.from_numpy(Th).to(dev)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu x%d" % torch.get_num_threads()
    base = {"impl": "torch", "torch": torch.__version__, "device": name, "N": a.n, "d": a.d}

    def emit(**kw):
        print(json.dumps({**base, **kw}), flush=True)

    ops = a.ops.split(",")
    if "kmeans" in ops:
        ms, (obj, it, objs) = timed(
            lambda: kmeans_batched(X, a.clusters, a.restarts, a.iters, a.check, a.seed), dev,
            a.repeats)
        emit(op="kmeans", K=a.clusters, iters=a.iters, restarts=a.restarts, ms=round(ms, 3),
             iterations_run=it, best_objective=obj, ms_per_iteration=round(ms / max(it, 1), 4))
    if "knn" in ops:
        F = torch.nn.functional.normalize(X, dim=1)
        if a.knn_precision == "tf32":
            torch.backends.cuda.matmul.allow_tf32 = True
        ms, (idx, _) = timed(lambda: knn_topk(F, a.knn_k, a.knn_tile, a.knn_precision), dev,
                             a.repeats)
        torch.backends.cuda.matmul.allow_tf32 = False
        extra = {}
        if a.knn_precision != "fp32":   # agreement with the fp32 neighbours (set overlap)
            ref, _ = knn_topk(F, a.knn_k, a.knn_tile, "fp32")
            same = (idx.sort(1).values == ref.sort(1).values).all(1).float().mean()
            extra["rows_equal_to_fp32"] = round(float(same), 6)
        emit(op="knn", k=a.knn_k, precision=a.knn_precision, tile=a.knn_tile, ms=round(ms, 3),
             gemm_tflops=round(2.0 * a.n * a.n * a.d / (ms * 1e-3) * 1e-12, 3), **extra)
    if "ridge" in ops:
        Td = T.double()
        G = Td @ Td.T + a.lam * torch.eye(a.m, dtype=torch.float64, device=dev)
        B = torch.randn(a.n, a.m, dtype=torch.float64, device=dev,
                        generator=torch.Generator(device=dev).manual_seed(a.seed))
        ms, C = timed(lambda: ridge_primal_factor_solve(G, B), dev, a.repeats)
        res = float((C @ G - B).abs().max() / B.abs().max())
        gf = (a.m ** 3 / 3 + 2.0 * a.n * a.m * a.m) * 1e-9
        emit(op="ridge_factor_solve", M=a.m, ms=round(ms, 3), gflops=round(gf / ms * 1e3, 2),
             rel_residual=res)
        ms, _ = timed(lambda: ridge_dual(X, T, a.lam), dev, a.repeats)
        emit(op="ridge_dual", M=a.m, lam=a.lam, ms=round(ms, 3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
