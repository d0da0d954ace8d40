#!/usr/bin/env python3
"""
parity_vit_backward.py — `laic image-backward` against PyTorch autograd at full ViT-B/32 size
(issue 16). Not part of `make test` (minutes on 2 cores); its figures live in tests/README.md.

    python3 scripts/parity_vit_backward.py [--laic build/laic] [--images 4] [--threads 2]

Builds the random-init ViT-B/32 CLIPModel of scripts/parity_full.py (quick_gelu, seed 0, 1-D
parameters perturbed), converts it to F32, and for random normalised pixels P (--images) and a
random G (B,512) runs `laic image-backward --device cpu --dpixels` (L = <G, F>, F the unnormalised
image features) and compares every visual parameter's gradient (named as the weights file, via
make_vit_fixtures.vision_names) and dL/dP with autograd through HF's vision tower in float32 and
float64: max|a-r| / max|r| per tensor. Exit 1 if any tensor's error against float64 exceeds 1e-4.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import parity_full as pf  # noqa: E402
import make_vit_fixtures as mv  # noqa: E402


def autograd(model, pix, G, names):
    model.zero_grad()
    x = pix.clone().requires_grad_(True)
    f = pf.feats(model.get_image_features(pixel_values=x))
    (f * G).sum().backward()
    grads = {k: v.grad for k, v in model.named_parameters() if v.grad is not None}
    out = {n: fn(grads).detach().numpy().astype(np.float64) for n, fn in names}
    out["pixels"] = x.grad.numpy().astype(np.float64)
    model.zero_grad()
    return out


def read_st(path):
    from safetensors.numpy import load_file
    return load_file(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--laic", default=os.path.join(ROOT, "build", "laic"))
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if not os.access(args.laic, os.X_OK):
        sys.exit(f"{args.laic}: not an executable ---> HINT: make, or pass --laic PATH")
    torch.set_num_threads(args.threads)
    model = pf.build_model()
    names = mv.vision_names(model)
    g = torch.Generator().manual_seed(3)
    pix = torch.randn(args.images, 3, 224, 224, generator=g)
    G = torch.randn(args.images, 512, generator=g)
    with tempfile.TemporaryDirectory() as td:
        w = pf.convert(model, td)
        pp, gp = os.path.join(td, "pix.npy"), os.path.join(td, "g.npy")
        out, dp = os.path.join(td, "grads.safetensors"), os.path.join(td, "dp.npy")
        np.save(pp, pix.numpy())
        np.save(gp, G.numpy())
        t0 = time.time()
        pf.run([args.laic, "image-backward", "--weights", w, "--pixels", pp, "--grad", gp,
                "--out", out, "--dpixels", dp, "--device", "cpu", "--threads", str(args.threads)])
        t1 = time.time()
        got = read_st(out)
        got["pixels"] = np.load(dp)
    r32 = autograd(model, pix, G, names)
    t2 = time.time()
    md = model.double()
    r64 = autograd(md, pix.double(), G.double(), names)
    print(f"laic {args.laic}: image-backward of {args.images} images in {t1 - t0:.1f} s (wall, "
          f"incl. weights load); PyTorch fp32 autograd {t2 - t1:.1f} s; torch {torch.__version__}")
    worst, worst32, worst_name = 0.0, 0.0, ""
    for n in [k for k, _ in names] + ["pixels"]:
        a = got[n].astype(np.float64)
        if a.shape != r64[n].shape:
            sys.exit(f"{n}: laic shape {a.shape}, PyTorch {r64[n].shape}")
        rel64 = np.abs(a - r64[n]).max() / np.abs(r64[n]).max()
        rel32 = np.abs(a - r32[n]).max() / np.abs(r32[n]).max()
        h = np.abs(r32[n] - r64[n]).max() / np.abs(r64[n]).max()
        if rel64 > worst:
            worst, worst_name = rel64, n
        worst32 = max(worst32, h)
        print(f"  {n:52s} vs fp64 {rel64:.3g}   vs fp32 {rel32:.3g}   (PyTorch fp32 vs fp64 {h:.3g})")
    ok = worst <= 1e-4
    print(f"verdict: {'OK' if ok else 'NOT OK'} (worst tensor {worst_name}: {worst:.3g} vs fp64, "
          f"limit 1e-4; PyTorch's own fp32 worst {worst32:.3g})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
