#!/usr/bin/env python3
"""make_image_fixtures.py — PIL goldens for tests/model/test_image.c (tests/fixtures/image/).

Reference = OpenAI CLIP's _transform on a PIL image up to ToTensor: torchvision Resize(S)
(shorter side to S, longer int(S*long/short), PIL BICUBIC), CenterCrop(S)
(top = int(round((h-S)/2.0)), Python's half-even round), convert("RGB"); then numpy float32
(x/255 - mean)/std for the normalised goldens.

Writes (all small; budget 6 MB):
  real.txt          "<tar> <member> <S> <golden.png>" for real JPEGs from ../shared/data tars
                    (the C test extracts them); goldens are PIL's uint8 crops stored as
                    lossless RGB PNG to fit the budget.
  real/*.png        those goldens
  syn/*             synthetic inputs made with PIL (and a minimal PNG writer for bit depths PIL
                    cannot save): gray/CMYK/progressive/4:2:2/4:4:4 JPEG, RGBA/LA/P/1-bit/2-bit/
                    4-bit/16-bit/tRNS PNG, 1xN, Nx1, 1x1, odd aspect ratios, up- and downscaling,
                    identity resizes with odd crop offsets (half-even rounding).
  cases.txt         "<input> <S> <crop.npy> <decoded.npy>" per synthetic case: crop is PIL's
                    uint8 (S,S,3); decoded is Image.open(f).convert("RGB") as (h,w,3) uint8.
  norm_<name>.npy   float32 (3,S,S) normalised goldens for two cases, with norm.txt naming them.
  rgb_in.npy, rgb_crop_<S>.npy   a raw RGB array and PIL's crops of it, for
                    image_resize_crop_rgb8 called on memory (no decoding involved).

    python3 scripts/make_image_fixtures.py [--shared ../shared]
"""
import argparse
import os
import struct
import tarfile
import tempfile
import zlib

import numpy as np
from PIL import Image

OUT = "tests/fixtures/image"
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def clip_crop_img(im, S):
    w, h = im.size
    if w <= h:
        ow, oh = S, int(S * h / w)
    else:
        oh, ow = S, int(S * w / h)
    if (ow, oh) != (w, h):
        im = im.resize((ow, oh), Image.BICUBIC)
    top, left = int(round((oh - S) / 2.0)), int(round((ow - S) / 2.0))
    return np.asarray(im.crop((left, top, left + S, top + S)).convert("RGB"), dtype=np.uint8)


def clip_crop(path, S):
    return clip_crop_img(Image.open(path), S)


def normalize(crop):
    x = crop.astype(np.float32) / np.float32(255.0)
    return ((x - MEAN) / STD).transpose(2, 0, 1).copy()


def write_png(path, arr, bitdepth, ctype, palette=None, trns=None):
    """Minimal PNG writer (non-interlaced) for depths PIL cannot save (2/4/16-bit gray, 16-bit
    RGB/RGBA, gray+alpha 16). arr: (h, w) or (h, w, c) integer samples."""
    arr = np.asarray(arr)
    h, w = arr.shape[:2]
    if bitdepth == 16:
        rows = arr.astype(">u2").reshape(h, -1).view(np.uint8)
    elif bitdepth == 8:
        rows = arr.astype(np.uint8).reshape(h, -1)
    else:
        per = 8 // bitdepth
        a = arr.astype(np.uint8).reshape(h, w)
        pad = (-w) % per
        a = np.pad(a, ((0, 0), (0, pad)))
        a = a.reshape(h, -1, per)
        packed = np.zeros(a.shape[:2], np.uint8)
        for i in range(per):
            packed |= (a[:, :, i] << (8 - bitdepth * (i + 1))).astype(np.uint8)
        rows = packed
    raw = b"".join(b"\x00" + r.tobytes() for r in rows)

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bitdepth, ctype, 0, 0, 0))
    if palette is not None:
        data += chunk(b"PLTE", bytes(np.asarray(palette, np.uint8).ravel()))
    if trns is not None:
        data += chunk(b"tRNS", trns)
    data += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def smooth_rgb(rng, h, w):
    """A natural-ish test pattern: gradients + texture + noise, with hard edges."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 128 + 100 * np.sin(x / max(w, 1) * 7 + y / max(h, 1) * 3)
    g = 255 * x / max(w - 1, 1)
    b = np.where((x // 5 + y // 4) % 2 == 0, 230, 20).astype(np.float32)
    a = np.stack([r, g, b], -1) + rng.normal(0, 12, (h, w, 3))
    return np.clip(a, 0, 255).astype(np.uint8)


def synthetic(rng, d):
    """Returns [(filename, S)] after writing the inputs into d."""
    cases = []

    def add(name, S_list):
        for S in S_list:
            cases.append((name, S))

    # JPEGs: subsampling variants, odd sizes (fancy-upsampling edges), gray, CMYK, progressive.
    img = Image.fromarray(smooth_rgb(rng, 37, 53))
    img.save(os.path.join(d, "rgb420_53x37.jpg"), quality=85, subsampling=2)
    add("rgb420_53x37.jpg", [16, 24, 37, 48])
    img.save(os.path.join(d, "rgb422_53x37.jpg"), quality=90, subsampling=1)
    add("rgb422_53x37.jpg", [20])
    img.save(os.path.join(d, "rgb444_53x37.jpg"), quality=95, subsampling=0)
    add("rgb444_53x37.jpg", [30])
    img.save(os.path.join(d, "progressive_53x37.jpg"), quality=80, progressive=True)
    add("progressive_53x37.jpg", [25])
    Image.fromarray(smooth_rgb(rng, 31, 19)[:, :, 1]).save(os.path.join(d, "gray_19x31.jpg"), quality=90)
    add("gray_19x31.jpg", [12, 40])
    Image.fromarray(smooth_rgb(rng, 21, 26)).convert("CMYK").save(os.path.join(d, "cmyk_26x21.jpg"), quality=90)
    add("cmyk_26x21.jpg", [14, 33])
    # Identity resizes (short side already S): only the crop, with odd offsets 1, 3, 5 (half-even).
    for w_ in (17, 19, 21):
        n = f"ident_{w_}x16.png"
        Image.fromarray(smooth_rgb(rng, 16, w_)).save(os.path.join(d, n))
        add(n, [16])
    # Tiny and extreme shapes, up- and downscaling.
    Image.fromarray(smooth_rgb(rng, 1, 7)).save(os.path.join(d, "tiny_7x1.png"))
    add("tiny_7x1.png", [8, 3])
    Image.fromarray(smooth_rgb(rng, 9, 1)).save(os.path.join(d, "tiny_1x9.png"))
    add("tiny_1x9.png", [5, 11])
    Image.fromarray(smooth_rgb(rng, 1, 1)).save(os.path.join(d, "tiny_1x1.png"))
    add("tiny_1x1.png", [4])
    Image.fromarray(smooth_rgb(rng, 2, 3)).save(os.path.join(d, "tiny_3x2.png"))
    add("tiny_3x2.png", [7])
    Image.fromarray(smooth_rgb(rng, 13, 97)).save(os.path.join(d, "wide_97x13.png"))
    add("wide_97x13.png", [6, 13, 29])
    Image.fromarray(smooth_rgb(rng, 211, 23)).save(os.path.join(d, "tall_23x211.png"))
    add("tall_23x211.png", [10, 22])
    # Alpha: RGBA (premultiplied resize in PIL) with alpha 0, 255 and in between; LA.
    rgba = np.concatenate([smooth_rgb(rng, 29, 34), rng.integers(0, 256, (29, 34, 1), dtype=np.uint8)], -1)
    rgba[:5, :, 3] = 0
    rgba[5:10, :, 3] = 255
    Image.fromarray(rgba, "RGBA").save(os.path.join(d, "rgba_34x29.png"))
    add("rgba_34x29.png", [12, 50])
    la = np.stack([smooth_rgb(rng, 18, 25)[:, :, 0], rng.integers(0, 256, (18, 25), dtype=np.uint8)], -1)
    Image.fromarray(la, "LA").save(os.path.join(d, "la_25x18.png"))
    add("la_25x18.png", [9, 31])
    # Palette (PIL forces NEAREST), with and without tRNS, 8-bit and 4-bit indices; 1-bit gray.
    pal_img = Image.fromarray(smooth_rgb(rng, 27, 41)).quantize(colors=40)
    pal_img.save(os.path.join(d, "pal8_41x27.png"))
    add("pal8_41x27.png", [11, 30])
    pal_img.save(os.path.join(d, "pal8_trns_41x27.png"), transparency=3)
    add("pal8_trns_41x27.png", [17])
    pal16 = rng.integers(0, 16, (22, 15))
    write_png(os.path.join(d, "pal4_15x22.png"), pal16, 4, 3,
              palette=rng.integers(0, 256, (16, 3)))
    add("pal4_15x22.png", [7, 23])
    bw = (smooth_rgb(rng, 23, 30)[:, :, 2] > 128)
    Image.fromarray(bw).save(os.path.join(d, "bw1_30x23.png"))
    add("bw1_30x23.png", [13, 35])
    # Gray PNGs: 8-bit (+tRNS, ignored by convert("RGB")), 2- and 4-bit, 16-bit (I;16).
    g8 = smooth_rgb(rng, 19, 28)[:, :, 0]
    Image.fromarray(g8).save(os.path.join(d, "gray8_28x19.png"))
    add("gray8_28x19.png", [9, 40])
    write_png(os.path.join(d, "gray8_trns_28x19.png"), g8, 8, 0, trns=struct.pack(">H", 100))
    add("gray8_trns_28x19.png", [15])
    write_png(os.path.join(d, "gray2_21x17.png"), rng.integers(0, 4, (17, 21)), 2, 0)
    add("gray2_21x17.png", [8])
    write_png(os.path.join(d, "gray4_21x17.png"), rng.integers(0, 16, (17, 21)), 4, 0)
    add("gray4_21x17.png", [26])
    # 16-bit gray: low values exercise the 16-bit filter, high ones PIL's saturation at 255.
    g16 = np.concatenate([rng.integers(0, 300, (12, 24)), rng.integers(0, 65536, (12, 24))], 0)
    write_png(os.path.join(d, "gray16_24x24.png"), g16, 16, 0)
    add("gray16_24x24.png", [10, 37])
    write_png(os.path.join(d, "rgb16_20x14.png"), rng.integers(0, 65536, (14, 20, 3)), 16, 2)
    add("rgb16_20x14.png", [9, 21])
    write_png(os.path.join(d, "rgba16_20x14.png"), rng.integers(0, 65536, (14, 20, 4)), 16, 6)
    add("rgba16_20x14.png", [9])
    write_png(os.path.join(d, "la16_20x14.png"), rng.integers(0, 65536, (14, 20, 2)), 16, 4)
    add("la16_20x14.png", [18])
    # Extension check is case-insensitive; content decides the decoder.
    Image.fromarray(smooth_rgb(rng, 12, 12)).save(os.path.join(d, "upper_12x12.JPEG"), format="JPEG")
    add("upper_12x12.JPEG", [5])
    return cases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="../shared")
    a = ap.parse_args()
    rng = np.random.default_rng(20240611)
    os.makedirs(os.path.join(OUT, "syn"), exist_ok=True)
    os.makedirs(os.path.join(OUT, "real"), exist_ok=True)
    for sub in ("syn", "real"):
        for f in os.listdir(os.path.join(OUT, sub)):
            os.remove(os.path.join(OUT, sub, f))

    # --- synthetic cases
    cases = synthetic(rng, os.path.join(OUT, "syn"))
    lines, decoded_done = [], set()
    for name, S in cases:
        p = os.path.join(OUT, "syn", name)
        stem = os.path.splitext(name)[0]
        crop_name = f"syn/{stem}_S{S}.npy"
        np.save(os.path.join(OUT, crop_name), clip_crop(p, S))
        dec_name = f"syn/{stem}_rgb.npy"
        if name not in decoded_done:
            np.save(os.path.join(OUT, dec_name), np.asarray(Image.open(p).convert("RGB"), np.uint8))
            decoded_done.add(name)
        lines.append(f"syn/{name} {S} {crop_name} {dec_name}")
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write("# input S crop_golden decoded_golden (see scripts/make_image_fixtures.py)\n")
        f.write("\n".join(lines) + "\n")

    # --- normalised float goldens (numpy float32, torchvision's order of operations)
    norm = [("rgb420_53x37.jpg", 24), ("rgba_34x29.png", 12)]
    with open(os.path.join(OUT, "norm.txt"), "w") as f:
        for name, S in norm:
            out = f"norm_{os.path.splitext(name)[0]}_S{S}.npy"
            np.save(os.path.join(OUT, out), normalize(clip_crop(os.path.join(OUT, "syn", name), S)))
            f.write(f"syn/{name} {S} {out}\n")

    # --- image_resize_crop_rgb8 on a raw array
    raw = smooth_rgb(rng, 45, 61)
    np.save(os.path.join(OUT, "rgb_in.npy"), raw)
    for S in (20, 45, 64):
        np.save(os.path.join(OUT, f"rgb_crop_{S}.npy"), clip_crop_img(Image.fromarray(raw), S))

    # --- real JPEGs from the shared tars
    real = []
    with tempfile.TemporaryDirectory() as tmp:
        for tarname in ("cifar10-test-jpeg.tar", "dtd5-jpeg.tar"):
            with tarfile.open(os.path.join(a.shared, "data", tarname)) as t:
                t.extractall(tmp)
        # CIFAR-10: 32x32 upsampled; 24 at 224 (the real use) and 16 at other sizes, including
        # a downscale (S=24) and odd factors.
        classes = sorted(os.listdir(os.path.join(tmp, "cifar10-test")))
        k = 0
        for ci, cl in enumerate(classes):
            for j in range(4):
                member = f"cifar10-test/{cl}/{(ci * 97 + j * 251) % 1000:04d}.jpg"
                S = 224 if k % 5 < 3 else (96, 57, 24, 33)[k % 4]
                real.append(("cifar10-test-jpeg.tar", member, S))
                k += 1
        # DTD: pick gray, 4:2:2, 4:4:4 and non-square photos first, then fill up.
        members = []
        for cl in sorted(os.listdir(os.path.join(tmp, "dtd5"))):
            members += [f"dtd5/{cl}/{f}" for f in sorted(os.listdir(os.path.join(tmp, "dtd5", cl)))]
        kinds = {}
        for m in members:
            im = Image.open(os.path.join(tmp, m))
            sub = str(getattr(im, "layer", ""))
            key = (im.mode, sub, im.size[0] == im.size[1])
            kinds.setdefault(key, []).append(m)
        picked = []
        for key in sorted(kinds):
            picked += kinds[key][:2]
        for m in members[::101]:
            if m not in picked:
                picked.append(m)
        for i, m in enumerate(picked[:14]):
            real.append(("dtd5-jpeg.tar", m, 224 if i < 8 else (50, 37, 80)[i % 3]))
        with open(os.path.join(OUT, "real.txt"), "w") as f:
            f.write("# tar member S golden_png (PIL crops; see scripts/make_image_fixtures.py)\n")
            for tarname, member, S in real:
                g = "real/" + member.replace("/", "_").replace(".jpg", f"_S{S}.png")
                Image.fromarray(clip_crop(os.path.join(tmp, member), S)).save(
                    os.path.join(OUT, g), optimize=True)
                f.write(f"{tarname} {member} {S} {g}\n")
    total = 0
    for root, _, files in os.walk(OUT):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print(f"{len(cases)} synthetic cases, {len(real)} real images, {total / 1e6:.2f} MB in {OUT}")


if __name__ == "__main__":
    main()
