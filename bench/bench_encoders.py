#!/usr/bin/env python3
"""
bench_encoders.py — the PyTorch side of the encoder benchmark: transformers CLIPModel eager
(attn_implementation="sdpa") and torch.compile of it, image and text, fp32 / tf32 / bf16
autocast, as JSON lines in the schema of `laic bench` (host/cli/cmd_bench.c), so
bench/bench_gpu_encoders.sh can put laic and PyTorch in one table.

    python3 bench/bench_encoders.py [--device cuda|cpu] [--modes eager,compile]
        [--precisions fp32,tf32,bf16] [--image-batch 256] [--text-batch 1024] [--iters 20]
        [--warmup 3] [--seq-len 77] [--save-weights W.safetensors] [--threads N]

Model: scripts/parity_full.py's build_model (random-init full-size ViT-B/32, quick_gelu, seed 0,
1-D parameters perturbed); --save-weights converts that very model to laic's format
(scripts/convert_weights.py, F32) so laic runs the same weights.
Inputs: seeded random normalised pixels; text rows padded to 77 as PyTorch CLIP does
(SOT, random ids, EOT at --seq-len − 1, zeros after): HF runs all 77 positions whatever the EOT,
so its FLOP count is 77 tokens per prompt (flop_basis "padded to 77") — laic's line counts the
tokens it really runs.
Timing: get_image_features / get_text_features under torch.no_grad() (and autocast(bfloat16)
for bf16; tf32 = torch.backends.cuda.matmul.allow_tf32 and cudnn.allow_tf32), inputs already on
the device, features left on the device; torch.cuda.synchronize() around each iteration, host
clock, median of --iters after --warmup (torch.compile's compilation is in the warm-up and is
reported apart as compile_s). On the CPU only fp32 is timed (tf32 does not exist there and CPU
bf16 autocast is not what the GPU does).
FLOP: the same formulas as laic (clip_image_flop / clip_text_flop in host/model/clip.c).
"""
import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import parity_full  # noqa: E402  (build_model, convert)

# Dense datasheet peaks (TFLOP/s), as host/cli/cmd_bench.c's table (sources there).
PEAKS = {"H100 SXM": (67.0, 494.5, 989.5), "H100 PCIe": (51.0, 378.0, 756.5),
         "H100 NVL": (60.0, 417.5, 835.5), "H200 SXM": (67.0, 494.5, 989.5),
         "H200 NVL": (60.0, 417.5, 835.5)}


def peak_tflops(name, precision):
    nvl = "NVL" in name
    key = None
    if "H200" in name:
        key = "H200 NVL" if nvl else "H200 SXM"
    elif "H100" in name:
        key = ("H100 PCIe" if "PCIe" in name else "H100 NVL" if nvl else
               "H100 SXM" if ("HBM3" in name or "SXM" in name) else None)
    if key is None:
        return None
    return PEAKS[key][("fp32", "tf32", "bf16").index(precision)]


def block_flop(T, C, H):
    return 2.0 * T * (4.0 * C * C + 2.0 * C * H) + 4.0 * T * T * C


def image_flop(c):
    vc = c.vision_config
    G = vc.image_size // vc.patch_size
    NP, C = G * G, vc.hidden_size
    return (2.0 * NP * 3 * vc.patch_size ** 2 * C +
            vc.num_hidden_layers * block_flop(NP + 1, C, vc.intermediate_size) +
            2.0 * C * c.projection_dim)


def text_flop(c, T):
    tc = c.text_config
    return (tc.num_hidden_layers * block_flop(T, tc.hidden_size, tc.intermediate_size) +
            2.0 * tc.hidden_size * c.projection_dim)


def device_name(dev):
    if dev == "cuda":
        return torch.cuda.get_device_name(0)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def sync(dev):
    if dev == "cuda":
        torch.cuda.synchronize()


def time_fn(fn, dev, warmup, iters):
    t0 = time.perf_counter()
    for _ in range(warmup):
        fn()
    sync(dev)
    t_warm = time.perf_counter() - t0
    ts = []
    for _ in range(iters):
        sync(dev)
        t = time.perf_counter()
        fn()
        sync(dev)
        ts.append(time.perf_counter() - t)
    return ts, t_warm


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--modes", default="eager,compile")
    ap.add_argument("--precisions", default=None, help="default fp32,tf32,bf16 (CPU: fp32)")
    ap.add_argument("--benches", default="encode-images,encode-text")
    ap.add_argument("--image-batch", type=int, default=256)
    ap.add_argument("--text-batch", type=int, default=1024)
    ap.add_argument("--seq-len", type=int, default=77, help="EOT position + 1 (HF still runs 77)")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-weights", default=None, help="also write the model for laic here")
    a = ap.parse_args()
    dev = a.device
    if dev == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_encoders.py: --device cuda but torch sees no GPU")
    if a.threads:
        torch.set_num_threads(a.threads)
    precs = (a.precisions or ("fp32,tf32,bf16" if dev == "cuda" else "fp32")).split(",")
    for p in precs:
        if p not in ("fp32", "tf32", "bf16"):
            sys.exit(f"bench_encoders.py: unknown precision '{p}'")
        if dev == "cpu" and p != "fp32":
            sys.exit(f"bench_encoders.py: --precisions {p} is GPU-only here (CPU: fp32)")

    from transformers import CLIPModel
    base = parity_full.build_model(a.seed)
    if a.save_weights:
        with tempfile.TemporaryDirectory() as td:
            w = parity_full.convert(base, td)
            os.replace(w, a.save_weights)
        print(f"# weights for laic: {a.save_weights}", file=sys.stderr)
    # the same parameters under the SDPA attention implementation
    model = CLIPModel._from_config(parity_full.vit_b_32_config(),
                                   attn_implementation="sdpa").eval()
    model.load_state_dict(base.state_dict())
    del base
    model.to(dev)
    cfg = model.config
    dname = device_name(dev)

    g = torch.Generator().manual_seed(a.seed + 1)
    pix = torch.randn(a.image_batch, 3, 224, 224, generator=g).to(dev)
    L, T = 77, a.seq_len
    tok = torch.zeros(a.text_batch, L, dtype=torch.int64)
    tok[:, 0] = 49406
    if T > 2:
        tok[:, 1:T - 1] = torch.randint(1, 49406, (a.text_batch, T - 2), generator=g)
    tok[:, T - 1] = 49407
    tok = tok.to(dev)

    for mode in a.modes.split(","):
        for p in precs:
            if dev == "cuda":
                torch.backends.cuda.matmul.allow_tf32 = p == "tf32"
                torch.backends.cudnn.allow_tf32 = p == "tf32"
            torch._dynamo.reset() if mode == "compile" else None
            img_fn = model.get_image_features
            txt_fn = model.get_text_features
            if mode == "compile":
                img_fn = torch.compile(img_fn)
                txt_fn = torch.compile(txt_fn)
            ac = (torch.autocast(device_type=dev, dtype=torch.bfloat16) if p == "bf16" else
                  torch.autocast(device_type=dev, enabled=False))
            for bench in a.benches.split(","):
                text = bench == "encode-text"
                B = a.text_batch if text else a.image_batch

                def fn():
                    with torch.no_grad(), ac:
                        return txt_fn(input_ids=tok) if text else img_fn(pixel_values=pix)

                ts, t_warm = time_fn(fn, dev, a.warmup, a.iters)
                med = statistics.median(ts)
                fl = text_flop(cfg, L) if text else image_flop(cfg)
                tfl = B * fl / med / 1e12
                pk = peak_tflops(dname, p) if dev == "cuda" else None
                line = {"bench": bench, "impl": f"pytorch-{mode}",
                        "variant": f"{mode}-sdpa-{p}", "device": dev, "device_name": dname,
                        "precision": p, "gemm": "torch", "weights": f"HF random-init vit-b-32 "
                        f"seed {a.seed}", "batch": B}
                if text:
                    line["seq_len"] = L
                    line["eot_position"] = T - 1
                line.update({"unit": "prompt" if text else "img", "iters": a.iters,
                             "warmup": a.warmup, "ms_median": med * 1e3,
                             "ms_min": min(ts) * 1e3, "ms_max": max(ts) * 1e3,
                             "items_per_s": B / med, "gflop_per_item": fl / 1e9,
                             "tflops": tfl, "peak_tflops": pk,
                             "pct_peak": 100.0 * tfl / pk if pk else None,
                             "attn": getattr(cfg, "_attn_implementation", None),
                             "torch": torch.__version__})
                if text:
                    line["flop_basis"] = "padded to 77 (HF runs every position)"
                if mode == "compile":
                    line["compile_s"] = t_warm
                print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
