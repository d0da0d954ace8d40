#!/usr/bin/env python3
"""make_data_fixtures.py — tiny dataset files and goldens for tests/data/test_data.c and
tests/data/test_nouns.c, written into tests/fixtures/data/ (budget 1 MB).

Every golden here is computed independently of the C code, with numpy and PIL only:
  - CIFAR-10/100, STL-10, IDX files in their published byte layouts, with random pixels, and
    the decoded (N,h,w,3) uint8 arrays numpy gets by reshape/transpose (STL-10 is column-major);
  - an ImageFolder and two CSV lists of tiny PNGs, with the expected item order, labels and
    class names, and the RGB pixels PIL decodes (Image.open().convert("RGB"));
  - a tiny synthetic WordNet data.noun (header lines, hex word counts, an adjective marker,
    byte-offset synset ids) and the TSV that `laic nouns` must write for it;
  - counts and CRC-32 checksums of the real files on this machine (Debian wordnet-base
    data.noun; Debian dataset-fashion-mnist), which the C tests check when the files exist.

Run from the repository root:  python3 scripts/make_data_fixtures.py
"""
import gzip
import os
import struct
import zlib

import numpy as np
from PIL import Image

OUT = "tests/fixtures/data"
rng = np.random.default_rng(20240601)


def w(path, data, mode="wb"):
    full = os.path.join(OUT, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, mode) as f:
        f.write(data)


def save_npy(name, a):
    np.save(os.path.join(OUT, name), a)


# --- CIFAR-10: 3 + 2 train records, 3 test records, names from batches.meta.txt ---------------
def cifar_records(n, nlab, label_lists):
    px = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labs = np.array(label_lists, dtype=np.uint8).reshape(nlab, n).T   # (n, nlab)
    return np.concatenate([labs, px], axis=1), px, labs


def cifar_rgb(px):   # (n, 3072) R,G,B planes of 32x32 -> (n,32,32,3)
    return px.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()


rec1, px1, l1 = cifar_records(3, 1, [[9, 0, 4]])
rec2, px2, l2 = cifar_records(2, 1, [[3, 3]])
rect, pxt, lt = cifar_records(3, 1, [[1, 8, 6]])
w("cifar10/data_batch_1.bin", rec1.tobytes())
w("cifar10/data_batch_2.bin", rec2.tobytes())
w("cifar10/test_batch.bin", rect.tobytes())
w("cifar10/batches.meta.txt", "".join(f"c10name{i}\n" for i in range(10)) + "\n\n", "w")
save_npy("cifar10_all_rgb.npy", cifar_rgb(np.concatenate([px1, px2, pxt])))
save_npy("cifar10_all_labels.npy", np.concatenate([l1, l2, lt])[:, 0].astype(np.int64))

# CIFAR-10 without a names file (built-in names), test split only.
recn, pxn, ln = cifar_records(2, 1, [[2, 7]])
w("cifar10-nometa/test_batch.bin", recn.tobytes())
save_npy("cifar10_nometa_labels.npy", ln[:, 0].astype(np.int64))

# --- CIFAR-100: coarse + fine labels; the fine label is the class -----------------------------
r100, p100, l100 = cifar_records(3, 2, [[19, 0, 5], [99, 0, 42]])
r100t, p100t, l100t = cifar_records(2, 2, [[1, 2], [7, 3]])
w("cifar100/train.bin", r100.tobytes())
w("cifar100/test.bin", r100t.tobytes())
w("cifar100/fine_label_names.txt", "".join(f"fine{i:02d}\n" for i in range(100)), "w")
save_npy("cifar100_all_rgb.npy", cifar_rgb(np.concatenate([p100, p100t])))
save_npy("cifar100_all_labels.npy", np.concatenate([l100[:, 1], l100t[:, 1]]).astype(np.int64))

# --- STL-10: column-major 3x96x96, labels 1..10; no class_names.txt (built-in names) ----------
def stl(n, labels):
    x = rng.integers(0, 256, size=(n, 3 * 96 * 96), dtype=np.uint8)
    # As in the STL-10 reference reader: reshape (n,3,96,96) then transpose (0,3,2,1).
    rgb = x.reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1).copy()
    return x, np.array(labels, dtype=np.uint8), rgb


sx, sy, srgb = stl(2, [10, 1])
tx, ty, trgb = stl(1, [5])
w("stl10/stl10_binary/train_X.bin", sx.tobytes())   # inside the archive folder: tests descent
w("stl10/stl10_binary/train_y.bin", sy.tobytes())
w("stl10/stl10_binary/test_X.bin", tx.tobytes())
w("stl10/stl10_binary/test_y.bin", ty.tobytes())
save_npy("stl10_all_rgb.npy", np.concatenate([srgb, trgb]))
save_npy("stl10_all_labels.npy", (np.concatenate([sy, ty]).astype(np.int64) - 1))

# --- IDX: gz train (dash names), plain test (dot variant); 5x7 non-square ------------------
def idx(arr):
    hdr = struct.pack(">I", 0x0800 | arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return hdr + arr.astype(np.uint8).tobytes()


ig = rng.integers(0, 256, size=(4, 5, 7), dtype=np.uint8)
il = np.array([3, 0, 7, 3], dtype=np.uint8)
tg = rng.integers(0, 256, size=(2, 5, 7), dtype=np.uint8)
tl = np.array([1, 2], dtype=np.uint8)
w("idx/train-images-idx3-ubyte.gz", gzip.compress(idx(ig), mtime=0))
w("idx/train-labels-idx1-ubyte.gz", gzip.compress(idx(il), mtime=0))
w("idx/t10k-images.idx3-ubyte", idx(tg))
w("idx/t10k-labels.idx1-ubyte", idx(tl))
g = np.concatenate([ig, tg])
save_npy("idx_all_rgb.npy", np.repeat(g[..., None], 3, axis=3))
save_npy("idx_all_labels.npy", np.concatenate([il, tl]).astype(np.int64))

# --- ImageFolder of tiny PNGs (3x4), one gray; hidden entries and non-images ignored -------
def png(rel, mode):
    a = rng.integers(0, 256, size=(3, 4, 3) if mode == "RGB" else (3, 4), dtype=np.uint8)
    full = os.path.join(OUT, rel)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    Image.fromarray(a, mode).save(full, optimize=True)


files = [("imagefolder/dog/x.png", "RGB"), ("imagefolder/cat/b.png", "RGB"),
         ("imagefolder/cat/a.png", "L"), ("imagefolder/dog/sub/y.png", "RGB"),
         ("imagefolder/bird/z.PNG", "RGB"), ("imagefolder/.hidden/h.png", "RGB"),
         ("imagefolder/bird/.h.png", "RGB")]
for rel, mode in files:
    png(rel, mode)
w("imagefolder/cat/notes.txt", "not an image\n", "w")
w("imagefolder/loose.png", open(os.path.join(OUT, "imagefolder/cat/b.png"), "rb").read())


def walk_imagefolder(root):
    """torchvision-like listing written independently: classes = visible sub-folders sorted,
    images per class sorted by full path."""
    classes = sorted(d for d in os.listdir(root)
                     if not d.startswith(".") and os.path.isdir(os.path.join(root, d)))
    items = []
    for c, name in enumerate(classes):
        found = []
        for dp, dns, fns in os.walk(os.path.join(root, name)):
            dns[:] = [d for d in dns if not d.startswith(".")]
            found += [os.path.join(dp, f) for f in fns if not f.startswith(".")
                      and os.path.splitext(f)[1].lower() in (".jpg", ".jpeg", ".png")]
        items += [(p, c) for p in sorted(found, key=lambda s: s.encode())]
    return classes, items


def expected(name, classes, items):
    lines = ["\t".join(["classes", str(len(classes))] + classes)]
    lines += [f"{lab}\t{os.path.relpath(p, OUT)}" for p, lab in items]
    w(name, "\n".join(lines) + "\n", "w")


classes, items = walk_imagefolder(os.path.join(OUT, "imagefolder"))
expected("imagefolder.expected.txt", classes, items)
save_npy("imagefolder_rgb.npy",
         np.stack([np.asarray(Image.open(p).convert("RGB")) for p, _ in items]))

# --- CSV lists: class-name labels with header and an unlabeled row; integer labels without --
csv_rows = [("imagefolder/dog/x.png", "dog"), ("imagefolder/cat/a.png", "cat"),
            ("imagefolder/bird/z.PNG", ""), ("imagefolder/cat/b.png", "ant")]
w("list.csv", "path,label\r\n" + "".join(f"{p},{l}\r\n" for p, l in csv_rows) + "\n", "w")
names = sorted({l for _, l in csv_rows if l})
expected("list.expected.txt", names,
         [(os.path.join(OUT, p), names.index(l) if l else -1) for p, l in csv_rows])
int_rows = [("imagefolder/cat/b.png", 4), ("imagefolder/dog/sub/y.png", 0)]
w("list_int.csv", "# integer labels, no header\n" + "".join(f"{p}, {l}\n" for p, l in int_rows), "w")
expected("list_int.expected.txt", [str(i) for i in range(5)],
         [(os.path.join(OUT, p), l) for p, l in int_rows])

# --- a tiny data.noun: parsed here by an independent reading of wndb(5) ------------------------
hdr = "".join(f"  {i} license line {i}  \n" for i in range(1, 4))
body_specs = [("03", ["entity"], "003 ~ 00001930 n 0000 | a gloss"),
              ("05", ["ice_cream", "Ice_Cream", "frozen_dessert"], "000 | cold"),
              ("07", [f"w{i}_x" for i in range(11)], "000 | eleven words, w_cnt 0b"),
              ("09", ["red(a)", "Sept._11"], "000 | marker stripped")]
text = hdr
for lex, words, rest in body_specs:
    off = len(text.encode())
    text += f"{off:08d} {lex} n {len(words):02x} " + " ".join(f"{wd} {i % 16:x}" for i, wd in
                                                                 enumerate(words)) + f" {rest}  \n"
w("nouns_tiny/data.noun", text, "w")


def parse_data_noun(path):
    rows, nsyn = [], 0
    with open(path, "rb") as f:
        for raw in f:
            line = raw.decode("ascii")
            if line.startswith("  "):
                continue
            tok = line.split()
            nsyn += 1
            for k in range(int(tok[3], 16)):
                lemma = tok[4 + 2 * k]
                for m in ("(ip)", "(a)", "(p)"):
                    if lemma.endswith(m):
                        lemma = lemma[: -len(m)]
                        break
                rows.append((lemma, int(tok[0])))
    return rows, nsyn


rows, nsyn = parse_data_noun(os.path.join(OUT, "nouns_tiny/data.noun"))
w("nouns_tiny.expected.tsv", "index\tlemma\tsynset_offset\ttext\n" +
  "".join(f"{i}\t{l}\t{o:08d}\t{l.replace('_', ' ')}\n" for i, (l, o) in enumerate(rows)), "w")
w("nouns_tiny.counts.txt", f"rows {len(rows)}\nsynsets {nsyn}\n"
  f"lemmas {len({l.lower() for l, _ in rows})}\n", "w")

# --- the real WordNet 3.0 data.noun (Debian wordnet-base) -----------------------------------
WN = "/usr/share/wordnet/data.noun"
if os.path.exists(WN):
    rows, nsyn = parse_data_noun(WN)
    lem = "\n".join(l for l, _ in rows).encode()
    first, last = rows[0], rows[-1]
    w("wordnet.txt",
      f"rows {len(rows)}\nsynsets {nsyn}\nlemmas {len({l.lower() for l, _ in rows})}\n"
      f"lemma_crc32 {zlib.crc32(lem)}\nfile_bytes {os.path.getsize(WN)}\n"
      f"first {first[0]} {first[1]:08d}\nlast {last[0]} {last[1]:08d}\n", "w")
    print(f"wordnet: {len(rows)} rows, {nsyn} synsets")

# --- Fashion-MNIST (Debian dataset-fashion-mnist): counts and checksums ----------------------
FM = "/usr/share/datasets/fashion-mnist"
if os.path.isdir(FM):
    out = []
    for split, pre in (("train", "train"), ("test", "t10k")):
        with gzip.open(f"{FM}/{pre}-images-idx3-ubyte.gz") as f:
            img = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
        with gzip.open(f"{FM}/{pre}-labels-idx1-ubyte.gz") as f:
            lab = np.frombuffer(f.read(), np.uint8, offset=8)
        counts = np.bincount(lab, minlength=10)
        out.append(f"{split} n {len(lab)} pixel_crc32 {zlib.crc32(img.tobytes())} "
                   f"label_crc32 {zlib.crc32(lab.tobytes())} pixel_sum {int(img.sum(dtype=np.int64))} "
                   f"label0 {lab[0]} counts " + " ".join(str(c) for c in counts))
    w("fashion_mnist.txt", "\n".join(out) + "\n", "w")
    print("fashion-mnist:", out)
print("wrote", OUT)
