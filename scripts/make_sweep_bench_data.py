#!/usr/bin/env python3
"""make_sweep_bench_data.py — synthetic cached features for bench/bench_sweep_cpu.sh.

CIFAR-10-sized (N = 60,000, E = 512, 10 classes of 6,000) CLIP-like unit rows: a class direction
plus isotropic noise (cosine to the class direction ~0.5, like CLIP image features), and a noun
bank of Mn unit rows around the same directions (and off them), so that k_c = N/300 = 200 image
centres with γ = 5 select M ≈ 1,000 candidate nouns, the paper's CIFAR-10 sizes.

    python3 scripts/make_sweep_bench_data.py OUT_DIR [--n 60000] [--nouns 20000] [--seed 0]
writes OUT_DIR/X.npy (float32 [N,512]), y.npy (int64 [N]), T.npy (float32 [Mn,512]).
"""
import argparse
import os

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=60000)
    ap.add_argument("--nouns", type=int, default=20000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    K, E = a.classes, a.dim
    C = rng.standard_normal((K, E))
    C /= np.linalg.norm(C, axis=1, keepdims=True)
    y = np.arange(a.n) % K
    rng.shuffle(y)
    # per-row noise of norm ~1.7 against a unit direction: cos(x, class) ≈ 0.5
    X = C[y] + rng.standard_normal((a.n, E)) * (1.7 / np.sqrt(E))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    # a quarter of the nouns near some class, the rest generic (random directions)
    nc = a.nouns // 4
    T = rng.standard_normal((a.nouns, E)) / np.sqrt(E)
    T[:nc] = C[rng.integers(0, K, nc)] + rng.standard_normal((nc, E)) * (1.2 / np.sqrt(E))
    T /= np.linalg.norm(T, axis=1, keepdims=True)
    os.makedirs(a.out, exist_ok=True)
    np.save(os.path.join(a.out, "X.npy"), X.astype(np.float32))
    np.save(os.path.join(a.out, "y.npy"), y.astype(np.int64))
    np.save(os.path.join(a.out, "T.npy"), T.astype(np.float32))
    print(f"{a.out}: X {X.shape}, y {y.shape}, T {T.shape}")


if __name__ == "__main__":
    main()
