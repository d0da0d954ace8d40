#!/usr/bin/env python3
"""bench_seic_torch.py — PyTorch's time for one SEIC stage-1 step (heads forward, the four losses,
backward, Adam), the comparison for bench/bench_seic.c's "stage-1 step" line. The loss is the
reference of scripts/make_seic_fixtures.py (V4C's design), in float32 here.

    python3 bench/bench_seic_torch.py [b] [K]       (default 1024 10; E = 512)

Prints the median of 5 steps after a warm-up, in ms, with torch's thread count.
"""
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
from make_seic_fixtures import stage1_loss  # noqa: E402

b = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
K = int(sys.argv[2]) if len(sys.argv) > 2 else 10
E = 512
torch.manual_seed(0)
x = F.normalize(torch.randn(b, E), dim=1)
t = F.normalize(torch.randn(b, E), dim=1)
heads = torch.nn.ModuleList([torch.nn.Linear(E, E), torch.nn.Linear(E, K), torch.nn.Linear(E, E),
                             torch.nn.Linear(E, K)])
logs = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
opt = torch.optim.Adam(list(heads.parameters()) + [logs], lr=5e-3)
h = torch.full((K,), 1.0 / K)
cfg = (0.5, 0.5, 0.5, 1.0, 1.0, 2.0, 0.01, 5.0)


def step():
    zi = F.normalize(heads[0](x), dim=1)
    zt = F.normalize(heads[2](t), dim=1)
    pi, pt = torch.softmax(heads[1](zi), 1), torch.softmax(heads[3](zt), 1)
    total = stage1_loss(zi, zt, pi, pt, logs, h, cfg)[0]
    opt.zero_grad()
    total.backward()
    opt.step()


step()
ts = []
for _ in range(5):
    t0 = time.perf_counter()
    step()
    ts.append((time.perf_counter() - t0) * 1e3)
print(f"stage-1 step      | torch {torch.__version__} ({torch.get_num_threads()} threads) | "
      f"b {b:5d} K {K:4d} E {E} | {np.median(ts):8.3f} ms")
