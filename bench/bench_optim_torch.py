#!/usr/bin/env python3
"""bench_optim_torch.py — PyTorch side of bench/bench_optim.c: one AdamW step on n float32
parameters (foreach=False, the single-tensor path laic follows; foreach=True; fused on CUDA) and
the weight gradient of a Linear layer (dW = doutᵀ·inp, one matmul) on the ViT-B/32 block shapes.

    python3 bench/bench_optim_torch.py [n]      (default 10,000,000; CPU, and CUDA if present)
Printed in the same format as bench_optim. Medians of 5 runs after a warm-up.
"""
import sys
import time

import torch


def med(fn, sync=lambda: None):
    fn(); sync()
    ts = []
    for _ in range(5):
        t0 = time.perf_counter(); fn(); sync(); ts.append(1e3 * (time.perf_counter() - t0))
    return sorted(ts)[2]


def bench(dev, n):
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    p = torch.randn(n, device=dev, requires_grad=True)
    p.grad = torch.randn(n, device=dev)
    variants = [("foreach=False", dict(foreach=False)), ("foreach=True", dict(foreach=True))]
    if dev == "cuda":
        variants.append(("fused", dict(fused=True)))
    for name, kw in variants:
        opt = torch.optim.AdamW([p], lr=5e-5, weight_decay=1e-2, **kw)
        ms = med(opt.step, sync)
        print(f"torch AdamW {name} | {dev} | n = {n} | {ms:8.3f} ms | {28.0 * n / (ms * 1e6):7.1f} GB/s")
    for M, K, N in [(6400, 768, 2304), (6400, 768, 768), (6400, 768, 3072), (6400, 3072, 768)]:
        a = torch.randn(M, K, device=dev); d = torch.randn(M, N, device=dev)
        ms = med(lambda: d.T @ a, sync)
        print(f"torch dW = doutᵀ·inp | {dev} | M {M} K {K} N {N} | {ms:8.3f} ms | {2.0 * M * K * N / (ms * 1e9):6.2f} TFLOP/s")


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
    torch.set_num_threads(2)
    bench("cpu", n)
    if torch.cuda.is_available():
        bench("cuda", 151_277_313)
