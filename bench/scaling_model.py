#!/usr/bin/env python3
"""scaling_model.py — a model (not a measurement) of laic's data-parallel run on many GPUs:
bytes communicated vs compute per stage and per training step, and the predicted efficiency,
for ImageNet-1k (encode + candidates + k-means + ridge + kNN + 20 epochs of prompt learning).

Machines: 8 x H100 SXM on NVLink (one node), and 2 nodes x 8 H100 on 400 Gb/s InfiniBand.
Every hardware figure below is an ASSUMPTION (nothing of laic has run on a GPU yet); change
them on the command line (--help). The communication volumes and the work split are read off
the code (host/run/stages.c, host/cluster/cluster.c, host/train/trainer.c).

Usage: python3 bench/scaling_model.py [--markdown]
"""
import argparse
import math

ap = argparse.ArgumentParser()
ap.add_argument("--bf16-tflops", type=float, default=400.0, help="achieved bf16 tensor-core TFLOP/s (peak 989)")
ap.add_argument("--fp32-tflops", type=float, default=45.0, help="achieved fp32 (SGEMM, TF32 off) TFLOP/s (peak 67)")
ap.add_argument("--fp64-tflops", type=float, default=45.0, help="achieved fp64 TFLOP/s (peak 67)")
ap.add_argument("--nvlink-busbw", type=float, default=360.0, help="NCCL bus bandwidth in one node, GB/s (NVLink 900 GB/s)")
ap.add_argument("--ib-busbw", type=float, default=45.0, help="NCCL bus bandwidth across nodes per GPU, GB/s (one 400 Gb/s NIC per GPU)")
ap.add_argument("--lat-nvlink-us", type=float, default=15.0)
ap.add_argument("--lat-ib-us", type=float, default=30.0)
ap.add_argument("--batch-per-rank", type=int, default=32, help="train.batch / ranks")
ap.add_argument("--text-batch", type=int, default=100, help="train.text_batch (prompts per chunk); "
                "the table adds rows with ceil(K / ranks), which balances the ranks")
ap.add_argument("--markdown", action="store_true")
a = ap.parse_args()

# --- the job ------------------------------------------------------------------------------------
N, NE = 1281167, 50000       # ImageNet-1k train (fit) and val (eval) images
E = D = 512                  # feature width, text width
K = 1000                     # clusters = prompts
MCTX = 4                     # learnable vectors per prompt
T_PROMPT = 10                # prompt tokens: SOT + "a photo of a" (4) + 4 vectors + EOT
NOUN_PROMPTS = 146347 * 7    # WordNet bank x 7 templates
NOUN_TOKENS = 8              # mean tokens of a bucketed noun prompt
M = 21000                    # candidate nouns (issue 17)
KC = round(N / 300)          # image centres (centers.k = 0)
KC_ROWS = min(N, 256 * KC)   # centers.sample_per_center = 256
EPOCHS = 20
GF_IMG = 8.8                 # GFLOP per ViT-B/32 image forward (2 per MAC)
GF_TOK = 2 * 37.8e6 / 1e9    # GFLOP per text token (2 x text-tower parameters)
ITERS = {"centres": (10, 100), "kmeans": (10, 100), "tac": (20, 100)}   # restarts, iterations (assumed)

def t_allgather(nbytes, P, bw, lat):
    return 0.0 if P == 1 else lat * 1e-6 + nbytes * (P - 1) / P / (bw * 1e9)

def t_allreduce(nbytes, P, bw, lat):
    return 0.0 if P == 1 else lat * 1e-6 + 2 * nbytes * (P - 1) / P / (bw * 1e9)

def machines():
    yield "1 x H100", 1, a.nvlink_busbw, a.lat_nvlink_us
    yield "8 x H100, NVLink", 8, a.nvlink_busbw, a.lat_nvlink_us
    yield "2 x 8 H100, IB 400 Gb/s", 16, a.ib_busbw, a.lat_ib_us

# --- stages: (name, FLOP, TFLOP/s, how the work splits, bytes moved, #collectives) --------------------
def stages(P):
    out = []
    # image encoding: batches dealt out; the kept rows gathered (fp32 features)
    fl = (N + NE) * GF_IMG * 1e9
    out.append(("encode images (fit + eval)", fl, a.bf16_tflops, 1 / P, ("ag", (N + NE) * E * 4, 2)))
    # noun bank: 16384-prompt chunks dealt out (63 chunks), rows gathered
    ch = math.ceil(NOUN_PROMPTS / 16384)
    fl = NOUN_PROMPTS * NOUN_TOKENS * GF_TOK * 1e9
    out.append(("encode noun bank", fl, a.bf16_tflops, math.ceil(ch / P) / ch, ("ag", NOUN_PROMPTS * E * 4, 1)))
    # image centres: spherical k-means, k_c centres on 256 k_c rows; per iteration an allreduce of
    # the (k_c, d) int64 sums + counts; k-means++ not used (centers.init = random)
    r, it = ITERS["centres"]
    fl = r * it * 2 * KC_ROWS * KC * E
    out.append((f"centres k-means (k_c = {KC}, {r}x{it} it.)", fl, a.fp32_tflops, 1 / P,
                ("ar", KC * E * 8, r * it)))
    # nouns -> centres scores: 4096-noun chunks dealt out
    fl = 2 * 146347 * KC * E
    out.append(("noun -> centre scores", fl, a.fp32_tflops, 1 / P, ("ag", 146347 * 24, 1)))
    # ridge reduction: two d x d Gram matrices (6 blocks of 4096 rows, partials gathered), the
    # solve of M rows (split), Z = X L (8192-row blocks, gathered)
    fl64 = 2 * 2 * M * E * E + 2 * M * E * E
    out.append(("ridge Grams + solve (fp64)", fl64, a.fp64_tflops, 1 / P, ("ag", 2 * math.ceil(M / 4096) * E * E * 8, 2)))
    out.append(("ridge Z = X L", 2 * N * E * E, a.fp32_tflops, 1 / P, ("ag", N * E * 4, 1)))
    # k-means on Z: K clusters, k-means++ start (gathers of block potentials: small, per step)
    r, it = ITERS["kmeans"]
    fl = r * it * 2 * N * K * E + r * (K * (2 + math.log(K)) * 2 * N * E)
    out.append((f"k-means K = {K} ({r}x{it} it. + k-means++)", fl, a.fp32_tflops, 1 / P,
                ("ar", K * E * 8, r * it)))
    # kNN (k = 5) on Z: the CUDA op has no row range yet: every rank computes every row
    out.append(("kNN filter (bf16 fused), NOT split on GPUs", 2 * N * N * E, a.bf16_tflops, 1.0, ("ag", 0, 0)))
    # TAC baseline: features (two N x M products, 1024-row chunks dealt out) + spherical k-means
    fl = 2 * 2 * NE * M * E
    out.append(("TAC features (eval split)", fl, a.fp32_tflops, 1 / P, ("ag", NE * 2 * E * 4, 1)))
    r, it = ITERS["tac"]
    rows = min(NE, 256 * K)
    out.append((f"TAC k-means ({r}x{it} it.)", r * it * 2 * rows * K * 2 * E, a.fp32_tflops, 1 / P,
                ("ar", K * 2 * E * 8, r * it)))
    return out

def train_step(P, bw, lat, text_batch):
    """One step of prompt learning with a global batch of P x b samples."""
    b = a.batch_per_rank
    B = P * b
    img = 2 * b * GF_IMG * 1e9 / (a.bf16_tflops * 1e12)                  # this rank's views
    chunks = math.ceil(K / text_batch)
    my = math.ceil(chunks / P)                                             # the busiest rank
    text_all = 3 * K * T_PROMPT * GF_TOK * 1e9                             # fwd + bwd + re-fwd
    if chunks == 1:
        text_all = 2 * K * T_PROMPT * GF_TOK * 1e9
    text = text_all * my / chunks / (a.fp32_tflops * 1e12)                 # text tower in fp32
    loss = 2 * 2 * B * K * E * 2 / (a.fp32_tflops * 1e12)                 # replicated, small
    byts = {"features F (2B, E) fp32": 2 * B * E * 4, "text features U (K, E)": K * E * 4,
            "gradient G (K, M, D)": K * MCTX * D * 4}
    comm = (t_allgather(byts["features F (2B, E) fp32"] / 2, P, bw, lat) * 2 +
            t_allgather(byts["text features U (K, E)"], P, bw, lat) +
            t_allgather(byts["gradient G (K, M, D)"], P, bw, lat))
    return dict(B=B, img=img, text=text, loss=loss, comm=comm, bytes=byts, steps=EPOCHS * math.ceil(N / B))

def fmt_s(t):
    return f"{t:.3g} s" if t >= 1 else f"{t * 1e3:.3g} ms" if t >= 1e-3 else f"{t * 1e6:.3g} µs"

lines = []
pr = lines.append
pr("### Stages of one ImageNet-1k run (before training)\n")
pr("| stage | FLOP | bytes gathered / reduced | " + " | ".join(m[0] for m in machines()) + " |")
pr("|---|---|---|" + "---|" * 3)
tot = {m[0]: 0.0 for m in machines()}
tot1 = 0.0
for i, st in enumerate(stages(1)):
    name, fl, tf, _, (kind, nb, ncoll) = st
    cells = []
    for mname, P, bw, lat in machines():
        _, _, _, share, _ = stages(P)[i]
        comp = fl / (tf * 1e12) * share
        c = ncoll * (t_allgather(nb, P, bw, lat) if kind == "ag" else t_allreduce(nb, P, bw, lat))
        tot[mname] += comp + c
        cells.append(f"{fmt_s(comp)} + {fmt_s(c)} comm" if P > 1 else fmt_s(comp))
    vol = f"{nb / 1e6:.3g} MB x {ncoll}" if ncoll else "—"
    pr(f"| {name} | {fl / 1e15:.3g} P | {vol} | " + " | ".join(cells) + " |")
t1 = tot["1 x H100"]
pr("| **total** | | | " + " | ".join(
    f"**{fmt_s(tot[m])}**" + ("" if P == 1 else f" (efficiency {t1 / (P * tot[m]) * 100:.0f} %)")
    for m, P, _, _ in machines()) + " |")
pr("")
pr("### One prompt-learning step (train.batch = ranks x %d, K = %d prompts)\n" % (a.batch_per_rank, K))
pr("| machine | text_batch | global batch | image views (bf16) | text tower (fp32, busiest rank) | "
   "loss | comm | step | steps for 20 epochs | 20 epochs | efficiency vs 1 GPU at the same global batch |")
pr("|---|---|---|---|---|---|---|---|---|---|---|")
for mname, P, bw, lat in machines():
    for tb in sorted({a.text_batch, math.ceil(K / P)}, reverse=True):
        s = train_step(P, bw, lat, tb)
        step = s["img"] + s["text"] + s["loss"] + s["comm"]
        one = train_step(1, bw, lat, tb)
        # one GPU doing the same global batch: P x the views, all text chunks
        step1 = P * one["img"] + one["text"] + s["loss"]
        eff = step1 / (P * step)
        pr(f"| {mname} | {tb} | {s['B']} | {fmt_s(s['img'])} | {fmt_s(s['text'])} | {fmt_s(s['loss'])} | "
           f"{fmt_s(s['comm'])} | {fmt_s(step)} | {s['steps']:,} | {fmt_s(step * s['steps'])} | {eff * 100:.0f} % |")
s = train_step(8, a.nvlink_busbw, a.lat_nvlink_us, a.text_batch)
pr("\nBytes per step (all ranks receive them; ring allgather moves (P−1)/P of each): " +
   ", ".join(f"{k} {v / 1e6:.3g} MB" for k, v in s["bytes"].items()) +
   f" (at global batch {s['B']}).")
print("\n".join(lines))
