#!/usr/bin/env python3
"""
parity_full.py — laic's CPU forward against HF transformers at full ViT-B/32 size.

    python3 scripts/parity_full.py [--laic build/laic] [--images 4] [--texts 6]
    python3 scripts/parity_full.py --bench [--batch 16] [--bench-images 64] [--repeats 3]

Builds a random-init transformers.CLIPModel with OpenAI ViT-B/32's architecture (hidden_act
quick_gelu, LN eps 1e-5, seed 0; every 1-D parameter perturbed so no LayerNorm is the identity),
converts it with scripts/convert_weights.py --from hf (F32), and:
- parity (default): encodes a few random normalised images (--pixels) and token rows with EOT
  positions from 1 to 76 (--tokens) with `laic encode-images` / `laic encode-text --device cpu`,
  and prints max abs error and max|a-r|/max|r| against HF get_image_features /
  get_text_features, both in float32 and in float64 (the exact reference). Exit 1 if the
  float64 relative error exceeds 1e-4.
- --bench: image-encoder throughput, img/s at --batch with 2 threads, laic (rate of its progress
  line: encode loop only, weights load excluded) beside PyTorch CPU (HF vision tower +
  projection, torch.set_num_threads(2), same batch, after a warm-up), runs interleaved,
  best of --repeats.
Nothing here is used by `make test`.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def vit_b_32_config():
    from transformers import CLIPConfig
    return CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=512, intermediate_size=2048,
                         num_hidden_layers=12, num_attention_heads=8, max_position_embeddings=77,
                         hidden_act="quick_gelu", layer_norm_eps=1e-5, bos_token_id=49406,
                         eos_token_id=49407),
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                           num_attention_heads=12, image_size=224, patch_size=32,
                           hidden_act="quick_gelu", layer_norm_eps=1e-5),
        projection_dim=512)


def build_model(seed=0):
    from transformers import CLIPModel
    torch.manual_seed(seed)
    m = CLIPModel(vit_b_32_config()).eval()
    with torch.no_grad():
        for _, p in m.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return m


def convert(model, td):
    hf = os.path.join(td, "hf")
    model.save_pretrained(hf, safe_serialization=True)
    w = os.path.join(td, "vit_b_32_random.safetensors")
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "convert_weights.py"),
                    "--from", "hf", hf, w, "--dtype", "f32"], check=True, stdout=subprocess.DEVNULL)
    return w


def feats(r):
    return r if torch.is_tensor(r) else r.pooler_output


def errs(a, r):
    d = np.abs(a.astype(np.float64) - r.astype(np.float64))
    return d.max(), d.max() / np.abs(r).max()


def run(cmd, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    return p


def parity(args, model, w, td):
    g = torch.Generator().manual_seed(1)
    pix = torch.randn(args.images, 3, 224, 224, generator=g)
    eots = np.linspace(1, 76, args.texts).round().astype(int)
    tok = torch.zeros(args.texts, 77, dtype=torch.int64)
    for i, e in enumerate(eots):
        tok[i, 0] = 49406
        tok[i, 1:e] = torch.randint(1, 49406, (int(e) - 1,), generator=g)
        tok[i, e] = 49407
    pp, tp = os.path.join(td, "pix.npy"), os.path.join(td, "tok.npy")
    np.save(pp, pix.numpy())
    np.save(tp, tok.numpy().astype(np.int32))
    io, to = os.path.join(td, "img.npy"), os.path.join(td, "txt.npy")
    t0 = time.time()
    run([args.laic, "encode-images", "--weights", w, "--pixels", pp, "--out", io, "--device", "cpu",
         "--threads", str(args.threads)])
    t1 = time.time()
    run([args.laic, "encode-text", "--weights", w, "--tokens", tp, "--out", to, "--device", "cpu",
         "--threads", str(args.threads)])
    t2 = time.time()
    li, lt = np.load(io), np.load(to)
    with torch.no_grad():
        ri32 = feats(model.get_image_features(pixel_values=pix)).numpy()
        rt32 = feats(model.get_text_features(input_ids=tok)).numpy()
        md = model.double()
        ri64 = feats(md.get_image_features(pixel_values=pix.double())).numpy()
        rt64 = feats(md.get_text_features(input_ids=tok)).numpy()
        model.float()
    print(f"laic {args.laic}: {args.images} images in {t1 - t0:.1f} s, {args.texts} texts "
          f"(EOT at {', '.join(map(str, eots))}) in {t2 - t1:.1f} s (wall, incl. weights load)")
    worst = 0
    for name, a, r32, r64 in (("images", li, ri32, ri64), ("texts", lt, rt32, rt64)):
        a32, rel32 = errs(a, r32)
        a64, rel64 = errs(a, r64)
        h64, hrel64 = errs(r32, r64)
        worst = max(worst, rel64)
        print(f"{name:6s} [{a.shape[0]}x{a.shape[1]}]  vs HF fp32: max abs {a32:.3g}, "
              f"max|a-r|/max|r| {rel32:.3g}   vs HF fp64: max abs {a64:.3g}, rel {rel64:.3g}   "
              f"(HF fp32 vs fp64: rel {hrel64:.3g})")
    ok = worst <= 1e-4
    print(f"verdict: {'OK' if ok else 'NOT OK'} (max rel vs fp64 {worst:.3g}, limit 1e-4)")
    return 0 if ok else 1


def bench(args, model, w, td):
    B, N = args.batch, args.bench_images
    g = torch.Generator().manual_seed(2)
    pix = torch.randn(N, 3, 224, 224, generator=g)
    pp, out = os.path.join(td, "bpix.npy"), os.path.join(td, "bout.npy")
    np.save(pp, pix.numpy())
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads))
    env.pop("LAIC_QUIET", None)
    torch.set_num_threads(args.threads)
    with torch.no_grad():
        model.get_image_features(pixel_values=pix[:B])   # warm-up
    # interleaved (laic, PyTorch) pairs so background load hits both alike
    laic_rates, torch_rates = [], []
    for _ in range(args.repeats):
        p = run([args.laic, "encode-images", "--weights", w, "--pixels", pp, "--out", out,
                 "--device", "cpu", "--batch", str(B), "--threads", str(args.threads)], env)
        m = re.findall(r"([0-9.]+) img/s\s+took", p.stderr)
        if not m:
            sys.exit(f"no progress line in laic's stderr: {p.stderr!r}")
        laic_rates.append(float(m[-1]))
        with torch.no_grad():
            t0 = time.perf_counter()
            for i in range(0, N, B):
                model.get_image_features(pixel_values=pix[i:i + B])
            torch_rates.append(N / (time.perf_counter() - t0))
    lb, tb = max(laic_rates), max(torch_rates)
    print(f"image encoder, ViT-B/32 random init, batch {B}, {N} images, {args.threads} threads, "
          f"best of {args.repeats}")
    print(f"  laic CPU : {lb:6.2f} img/s   (runs: {', '.join(f'{r:.2f}' for r in laic_rates)})")
    print(f"  PyTorch  : {tb:6.2f} img/s   (runs: {', '.join(f'{r:.2f}' for r in torch_rates)}; "
          f"torch {torch.__version__})")
    print(f"  time ratio laic/PyTorch = {tb / lb:.2f} (goal <= 1.2)")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--laic", default=os.path.join(ROOT, "build", "laic"))
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--texts", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--bench-images", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--weights", help="reuse this converted file (must be this script's model)")
    args = ap.parse_args()
    if not os.access(args.laic, os.X_OK):
        sys.exit(f"{args.laic}: not an executable ---> HINT: make, or pass --laic PATH")
    torch.set_num_threads(args.threads)
    model = build_model()
    with tempfile.TemporaryDirectory() as td:
        w = args.weights or convert(model, td)
        rc = bench(args, model, w, td) if args.bench else parity(args, model, w, td)
    sys.exit(rc)


if __name__ == "__main__":
    main()
