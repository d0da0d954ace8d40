#!/usr/bin/env python3
"""check_preprocess.py — full parity check of `laic preprocess` against PIL (CLIP's _transform).

Unpacks the shared JPEG tars (CIFAR-10 test, 10,000 32x32 images upsampled to 224; DTD-5, 600
photos mostly downsampled), runs the C CLI with --uint8 in chunks, and compares every crop with
PIL: Resize(224, BICUBIC) as torchvision computes the size, CenterCrop(224), convert("RGB").
Prints per-dataset statistics (fraction of identical uint8 values, max |diff|, images with any
difference) and, on a sample, the float32 normalised output against numpy.

    python3 scripts/check_preprocess.py [--laic build/laic] [--shared ../shared] [--size 224]

Exit status 0 iff the target holds: >= 99.9% identical values and max |diff| <= 1, per dataset.
"""
import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np
from PIL import Image

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def clip_crop(path, S):
    """CLIP's _transform up to ToTensor, as uint8 (S,S,3): torchvision Resize(int) + CenterCrop
    on a PIL image, then convert("RGB")."""
    im = Image.open(path)
    w, h = im.size
    if w <= h:
        ow, oh = S, int(S * h / w)
    else:
        oh, ow = S, int(S * w / h)
    if (ow, oh) != (w, h):
        im = im.resize((ow, oh), Image.BICUBIC)
    top, left = int(round((oh - S) / 2.0)), int(round((ow - S) / 2.0))
    im = im.crop((left, top, left + S, top + S)).convert("RGB")
    return np.asarray(im, dtype=np.uint8)


def normalize(crop):
    x = crop.astype(np.float32) / np.float32(255.0)
    x = (x - MEAN) / STD
    return x.transpose(2, 0, 1)


def run_chunks(laic, paths, S, tmp, chunk):
    out = []
    for i in range(0, len(paths), chunk):
        lst = os.path.join(tmp, "list.txt")
        with open(lst, "w") as f:
            f.write("\n".join(paths[i:i + chunk]) + "\n")
        npy = os.path.join(tmp, "out.npy")
        subprocess.run([laic, "preprocess", "--list", lst, "--size", str(S), "--out", npy,
                        "--uint8"], check=True)
        out.append(np.load(npy))
    return np.concatenate(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--laic", default="build/laic")
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--chunk", type=int, default=1000)
    ap.add_argument("--float-sample", type=int, default=50)
    a = ap.parse_args()
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for tarname, sub in (("cifar10-test-jpeg.tar", "cifar10-test"), ("dtd5-jpeg.tar", "dtd5")):
            with tarfile.open(os.path.join(a.shared, "data", tarname)) as t:
                t.extractall(tmp)
            paths = []
            for root, _, files in os.walk(os.path.join(tmp, sub)):
                paths += [os.path.join(root, f) for f in files if f.lower().endswith(".jpg")]
            paths.sort()
            t0 = time.time()
            got = run_chunks(a.laic, paths, a.size, tmp, a.chunk)
            tc = time.time() - t0
            t0 = time.time()
            ref = np.stack([clip_crop(p, a.size) for p in paths])
            tp = time.time() - t0
            d = np.abs(got.astype(np.int16) - ref.astype(np.int16))
            same = float((d == 0).mean())
            per_img_same = (d == 0).reshape(len(paths), -1).mean(1)
            nbad = int((d.reshape(len(paths), -1).max(1) > 0).sum())
            print(f"{sub}: {len(paths)} images, {d.size} uint8 values: identical {100 * same:.5f}%, "
                  f"max |diff| {int(d.max())}, images with any difference {nbad}, "
                  f"worst image {100 * per_img_same.min():.4f}% identical "
                  f"(C {tc:.1f} s, PIL {tp:.1f} s)")
            ok &= same >= 0.999 and d.max() <= 1
            # Float path on a sample: the CLI's float32 output against numpy's computation.
            k = min(a.float_sample, len(paths))
            lst = os.path.join(tmp, "flist.txt")
            with open(lst, "w") as f:
                f.write("\n".join(paths[:k]) + "\n")
            npy = os.path.join(tmp, "f.npy")
            subprocess.run([a.laic, "preprocess", "--list", lst, "--size", str(a.size), "--out",
                            npy], check=True)
            gf = np.load(npy)
            rf = np.stack([normalize(c) for c in got[:k]])
            fd = float(np.abs(gf - rf).max())
            print(f"{sub}: float32 normalised output on {k} images vs numpy: max |diff| {fd:.3g}")
            ok &= fd <= 1e-6
    print("VERDICT:", "OK" if ok else "NOT OK")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
