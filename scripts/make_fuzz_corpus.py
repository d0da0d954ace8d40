#!/usr/bin/env python3
"""make_fuzz_corpus.py — writes the committed seed corpora of the libFuzzer harnesses
(tests/fuzz/corpus/<harness>/, see tests/fuzz/README.md), deterministically, from the test
fixtures and small hand-made files. Run from the repository root:

    python3 scripts/make_fuzz_corpus.py

Seeds are valid inputs (plus a few near-misses) for every code path a harness reaches: the
fuzzer mutates them. Crash reproducers found later are added by hand as crash-<what> files and
are kept by this script (it only rewrites the files it names).
"""
import gzip
import io
import json
import os
import struct
import shutil

import numpy as np

OUT = "tests/fuzz/corpus"
SEP = b"\xfe\xedPT"   # tests/fuzz/fuzz.h fuzz_split


def put(harness, name, data):
    d = os.path.join(OUT, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def npy_bytes(a, version=None):
    b = io.BytesIO()
    if version is None:
        np.save(b, a)
    else:
        np.lib.format.write_array(b, a, version=version)
    return b.getvalue()


def npy():
    r = np.random.default_rng(0)
    put("npy", "f32_2d", npy_bytes(r.normal(size=(3, 4)).astype(np.float32)))
    put("npy", "f64_1d", npy_bytes(np.arange(5, dtype=np.float64)))
    put("npy", "i32_2d", npy_bytes(np.arange(6, dtype=np.int32).reshape(2, 3)))
    put("npy", "i64_1d", npy_bytes(np.array([0, -1, 7], dtype=np.int64)))
    put("npy", "u8_3d", npy_bytes(np.arange(12, dtype=np.uint8).reshape(2, 2, 3)))
    put("npy", "f32_empty", npy_bytes(np.zeros((0, 4), np.float32)))
    put("npy", "f32_scalar", npy_bytes(np.float32(1.5).reshape(())))
    put("npy", "v2_header", npy_bytes(np.ones((2, 2), np.float32), version=(2, 0)))
    put("npy", "fortran", npy_bytes(np.asfortranarray(np.ones((2, 3), np.float32))))
    put("npy", "big_endian", npy_bytes(np.ones(3, dtype=">f4")))


def st_file(tensors, meta=None):
    """tensors: list of (name, dtype, shape, bytes); returns a safetensors file."""
    h, off, data = {}, 0, b""
    if meta is not None:
        h["__metadata__"] = meta
    for name, dt, shape, raw in tensors:
        h[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        data += raw
    js = json.dumps(h, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 8)
    return struct.pack("<Q", len(js)) + js + data


def safetensors():
    f = np.arange(6, dtype=np.float32)
    put("safetensors", "two_f32", st_file([("a", "F32", (2, 3), f.tobytes()),
                                           ("b", "F32", (1,), np.float32(2).tobytes())],
                                          {"format": "pt"}))
    put("safetensors", "f16_bf16", st_file([("h", "F16", (3,), f[:3].astype(np.float16).tobytes()),
                                            ("g", "BF16", (2,), b"\x80\x3f\x00\x40")]))
    put("safetensors", "empty_header", struct.pack("<Q", 8) + b"{}      ")
    put("safetensors", "scalar_u8", st_file([("s", "U8", (), b"\x07"), ("z", "I64", (0,), b"")]))
    # the loader's valid input: the micro CLIP of the weights tests (bf16, the smaller one)
    shutil.copy("tests/fixtures/weights/micro_bf16.safetensors", os.path.join(OUT, "safetensors", "micro_bf16"))


def config():
    for name in ["demo.ini", "cifar10.ini", "stl10.ini"]:
        with open(os.path.join("configs", name), "rb") as f:
            put("config", name.replace(".ini", ""), f.read())
    put("config", "overrides", b"[run]\n; comment\n" + SEP +
        b"kmeans.k=10\neval.methods=kmeans\nrun.seed=3")
    put("config", "empty", b"")


def image():
    src = "tests/fixtures/image/syn"
    for n in sorted(os.listdir(src)):
        if n.lower().endswith((".png", ".jpg", ".jpeg")):
            with open(os.path.join(src, n), "rb") as f:
                put("image", n, f.read())


_M64 = (1 << 64) - 1


def hash64(b, seed):
    """host/io/hash.c laic_hash64: four multiply/rotate lanes over 32-byte blocks, then the tail."""
    P1, P2 = 0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F
    rotl = lambda x, r: ((x << r) | (x >> (64 - r))) & _M64
    h = [seed ^ P1, seed ^ P2, (seed + P1) & _M64, (seed - P2) & _M64]
    n, i = len(b), 0
    while i + 32 <= n:
        for l in range(4):
            w = int.from_bytes(b[i + 8 * l:i + 8 * l + 8], "little")
            h[l] ^= (w * P2) & _M64
            h[l] = (rotl(h[l], 31) * P1) & _M64
        i += 32
    x = (n * P1) & _M64
    for l in range(4):
        x = (rotl(x ^ h[l], 27) * P1 + P2) & _M64
    while i < n:
        x = ((x ^ b[i]) * P1) & _M64
        i += 1
    x ^= x >> 33
    x = (x * P2) & _M64
    x ^= x >> 29
    x = (x * P1) & _M64
    return x ^ (x >> 32)


def ckpt():
    # host/train/train.h, version 2: uint32 header[256] = {magic, version, K, M, D, epoch, step lo,
    # step hi, seed lo, seed hi, have_mom, n_rng, settings bytes, checksum lo, checksum hi, 0...},
    # float32 vec (K*M*D), float32 mom, uint64 rng[n][4], the settings text; the checksum chains
    # hash64 over the header (checksum words 0) and each part (train.c ckpt_sum), so the seeds load
    hp = b"train.lr = 0.002\ntrain.batch = 32\n"
    for (K, M, D, n_rng, name) in [(2, 1, 3, 1, "k2m1d3"), (1, 2, 2, 0, "k1m2d2_norng")]:
        h = [20250907, 2, K, M, D, 4, 40, 0, 1234, 0, 1, n_rng, len(hp), 0, 0] + [0] * 241
        n = K * M * D
        vec = np.arange(n, dtype=np.float32).tobytes()
        rng = [struct.pack("<4Q", 1, 2, 3, 4) for _ in range(n_rng)]
        x = hash64(struct.pack("<256I", *h), 0x636B70745F763200)
        for part in [vec, vec] + rng + [hp]:
            x = hash64(part, x)
        h[13], h[14] = x & 0xFFFFFFFF, x >> 32
        put("ckpt", name, struct.pack("<256I", *h) + vec + vec + b"".join(rng) + hp)


def cache():
    # host/run/run.c cache_sum_text: "laic-cache-entry 1\nkey K\ndtype D\nshape S...\nhash H\n",
    # the hash laic_hash64(data, seed "laiccach"); the harness asks for key "fuzz-key"
    seed = 0x6c61696363616368
    for name, a in [("f32_2d", np.arange(6, dtype=np.float32).reshape(2, 3)),
                    ("i64_keep", np.array([0, 2, 5], dtype=np.int64)),
                    ("f32_empty", np.zeros((0, 4), np.float32))]:
        body = npy_bytes(a)
        shape = "".join(" %d" % d for d in a.shape)
        dt = {"float32": "float32", "int64": "int64"}[str(a.dtype)]
        sum_text = "laic-cache-entry 1\nkey fuzz-key\ndtype %s\nshape%s\nhash %016x\n" % (
            dt, shape, hash64(a.tobytes(), seed))
        put("cache", name, sum_text.encode() + SEP + body)
    put("cache", "other_key", b"laic-cache-entry 1\nkey another\\x0akey\ndtype float32\nshape 1\nhash 0\n" +
        SEP + npy_bytes(np.ones(1, np.float32)))
    put("cache", "no_npy", b"laic-cache-entry 1\nkey fuzz-key\n")


def tokenizer():
    with open("tests/fixtures/tokenizer/inputs.txt", "rb") as f:
        lines = [l for l in f.read().split(b"\n") if l.strip()]
    for i, l in enumerate(lines[:60]):
        put("tokenizer", "line%02d" % i, l)
    put("tokenizer", "long", b"a photo of a " * 40)
    put("tokenizer", "html", b"&amp;lt;b&amp;gt; caf\xc3\xa9 &#233; \xe2\x80\x9cquoted\xe2\x80\x9d")


def dataset():
    fx = "tests/fixtures/data"
    rd = lambda p: open(os.path.join(fx, p), "rb").read()
    c10 = rd("cifar10/data_batch_1.bin")
    put("dataset", "cifar10_train", b"\x00" + c10 + SEP + rd("cifar10/test_batch.bin")[:3073] + SEP +
        rd("cifar10/batches.meta.txt"))
    put("dataset", "cifar10_all", b"\x08" + c10[:3073] + SEP + rd("cifar10/test_batch.bin")[:3073])
    put("dataset", "cifar100_all", b"\x09" + rd("cifar100/train.bin")[:3074] + SEP +
        rd("cifar100/test.bin")[:3074] + SEP + rd("cifar100/fine_label_names.txt"))
    img = bytes(range(256)) * 108   # one 3x96x96 image
    put("dataset", "stl10_train", b"\x02" + img + SEP + b"\x03" + SEP + b"a\nb\nc\n")
    ti = gzip.decompress(rd("idx/train-images-idx3-ubyte.gz"))
    tl = gzip.decompress(rd("idx/train-labels-idx1-ubyte.gz"))
    put("dataset", "idx_train", b"\x03" + ti + SEP + tl)
    put("dataset", "idx_all", b"\x0b" + ti + SEP + tl + SEP + b"zero\none\n" + SEP +
        rd("idx/t10k-images.idx3-ubyte") + SEP + rd("idx/t10k-labels.idx1-ubyte"))
    put("dataset", "stl10_all", b"\x0a" + img + SEP + b"\x01" + SEP + SEP + img + SEP + b"\x0a")
    put("dataset", "csv_names", b"\x04" + b"path,label\na.png,cat\nb.png,dog\n# c\n\nc.png,\n")
    put("dataset", "csv_ints", b"\x04" + b"a.png,0\nb.png,2\nc.png,-1\n")


if __name__ == "__main__":
    for fn in [npy, safetensors, config, image, ckpt, cache, tokenizer, dataset]:
        fn()
    for h in sorted(os.listdir(OUT)):
        d = os.path.join(OUT, h)
        print("%-12s %3d files, %7d bytes" % (h, len(os.listdir(d)),
                                                 sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d))))
