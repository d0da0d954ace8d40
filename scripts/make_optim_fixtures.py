#!/usr/bin/env python3
"""make_optim_fixtures.py — goldens for tests/cpu/test_optim.c (the shared training ops).

Writes tests/fixtures/optim/:
  adam_<case>_p0.npy, _g.npy, _p.npy   float32 parameters (n), gradients of T steps (T,n) and
                                       the parameters after each step (T,n) from torch.optim.Adam
                                       / AdamW on float32 tensors (CPU, foreach=False: the
                                       single-tensor arithmetic host/cpu/optim.c follows)
  adam_cases.npy                       (cases, 6) float64: lr, beta1, beta2, eps, weight_decay,
                                       decoupled (1 = AdamW)
  mbw_inp.npy, mbw_dout.npy            inputs of a Linear layer (M,K) and the upstream gradient
                                       (M,N); mbw_dw.npy, mbw_db.npy: autograd's dW (N,K) and
                                       db (N) of sum(out * dout), out = inp @ Wᵀ + b, in float64

Run from the repository root:  python3 scripts/make_optim_fixtures.py
"""
import os

import numpy as np
import torch

OUT = "tests/fixtures/optim"
CASES = [  # lr, beta1, beta2, eps, weight_decay, decoupled
    (1e-3, 0.9, 0.999, 1e-8, 0.0, 0),     # Adam defaults
    (1e-4, 0.9, 0.999, 1e-8, 1e-4, 0),    # SIC: coupled L2 weight decay
    (1e-3, 0.9, 0.99, 1e-8, 0.0, 0),      # TAC (trained): betas (0.9, 0.99)
    (5e-5, 0.9, 0.999, 1e-8, 1e-2, 1),    # AdamW (SEIC stage 2 uses wd 0; 1e-2 tests the decay)
]
N, T = 257, 5


def save(name, a):
    np.save(os.path.join(OUT, name + ".npy"), a)


def make_adam():
    g = np.random.default_rng(11)
    save("adam_cases", np.array(CASES, dtype=np.float64))
    for c, (lr, b1, b2, eps, wd, dec) in enumerate(CASES):
        p0 = g.standard_normal(N).astype(np.float32)
        grads = (g.standard_normal((T, N)) * np.exp(g.uniform(-6, 1, (T, N)))).astype(np.float32)
        grads[:, :3] = 0.0     # zero gradients: m, v stay 0 until weight decay moves them
        p = torch.tensor(p0.copy(), requires_grad=True)
        cls = torch.optim.AdamW if dec else torch.optim.Adam
        opt = cls([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, foreach=False)
        after = []
        for t in range(T):
            p.grad = torch.tensor(grads[t])
            opt.step()
            after.append(p.detach().numpy().copy())
        save(f"adam_{c}_p0", p0)
        save(f"adam_{c}_g", grads)
        save(f"adam_{c}_p", np.stack(after).astype(np.float32))


def make_mbw():
    g = np.random.default_rng(12)
    M, K, Nn = 9, 13, 7
    inp = g.standard_normal((M, K)).astype(np.float32)
    dout = g.standard_normal((M, Nn)).astype(np.float32)
    W = torch.zeros((Nn, K), dtype=torch.float64, requires_grad=True)
    b = torch.zeros(Nn, dtype=torch.float64, requires_grad=True)
    out = torch.tensor(inp, dtype=torch.float64) @ W.T + b
    (out * torch.tensor(dout, dtype=torch.float64)).sum().backward()
    save("mbw_inp", inp)
    save("mbw_dout", dout)
    save("mbw_dw", W.grad.numpy())
    save("mbw_db", b.grad.numpy())


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    make_adam()
    make_mbw()
    print("wrote", OUT)
