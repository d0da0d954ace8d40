#!/usr/bin/env python3
"""make_tac_fixtures.py — goldens for the candidate nouns (SPEC §4) and the TAC no-train
baseline (SPEC §8), from a numpy re-implementation of TAC's code
(XLearning-SCU/2024-ICML-TAC @830e02c) with faiss-cpu's k-means, used by
tests/run/test_tac_golden.c.

TAC's scripts run on a GPU in fp16; here every step runs in float64 (faiss in float32), which is
what laic's fp32 code approximates. The steps, with the file:line they mirror:

  filter_nouns.py:7-16    faiss.Kmeans(d, k_c, spherical=True, niter=300, nredo=10) on the fit
                          features, labels = index.search(X, 1)
  filter_nouns.py:51-54   centre c = normalize(mean of ALL rows with label c)
  filter_nouns.py:56-68   S = centres @ nouns.T; P = softmax(S, dim=0); noun → argmax_c P; each
                          centre keeps the 5 nouns with the highest max P
  retrieve_text.py:30-37  t_i = normalize(softmax(x_i T.T / 0.005) T)
  concat_kmeans.py:12-21  faiss.Kmeans(2d, K, spherical=True, niter=300, nredo=20) on [x | t]

Planted data (seeded): K = 3 classes, E = 32; the image rows are tight blobs around 3 random
unit centres (N = 600, 200 per class, so k_c = 3K = 9 by the paper's rule); the noun bank has
40 "specific" nouns per class (centre + N(0, 0.35²) noise: cosine ≈ 0.45 to their centre),
10 "generic" nouns (the normalised sum of the 3 centres plus a little noise: cosine ≈ 0.58 to
EVERY centre) and 30 random nouns, Mn = 160 in all. Generic nouns beat most specific ones on raw
cosine but have the lowest possible confidence (≈ 1/k_c), so TAC keeps none of them.

Files (tests/fixtures/tac/):
  X.npy [600,32] f32, y.npy [600] i64, T.npy [160,32] f32, names.txt (noun<j>_<kind>)
  sel_labels.npy [600] i64        faiss k_c = 9 labels (filter_nouns.py:7-16) — the input of the
                                  exact selection test (laic's own k-means draws differently)
  sel_tac.npy [M] i64, sel_cosine.npy [M'] i64   selected bank rows (sorted) from sel_labels,
                                  rank by confidence (TAC) and by raw cosine (laic's ablation)
  sel_conf.npy [160] f64, sel_centre.npy [160] i64, sel_cos.npy [160] f64   per-noun P, argmax,
                                  cosine from sel_labels
  e2e_tac.npy [M] i64, e2e_cosine.npy [M'] i64   the same with k_c = 3 (centers.k=3), where
                                  faiss and laic both find the 3 planted blobs (checked here for
                                  faiss; the test checks laic), so a whole `laic run` must give
                                  exactly these sets
  tac_F.npy [600,64] f32          [x | t] over the e2e_tac candidates, τ = 0.005
  tac_init.npy [3] i64, tac_km_labels.npy [600] i64, tac_km_centres.npy [3,64] f32
                                  faiss-style spherical Lloyd (IP assignment, mean, normalise;
                                  300 iterations) from the rows tac_init of tac_F
  tac_faiss_labels.npy [600] i64  faiss.Kmeans(64, 3, spherical, niter 300, nredo 20) on tac_F

Usage: python3 scripts/make_tac_fixtures.py   (from the repository root; needs faiss-cpu)
"""
import os

import faiss
import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "tac")
K, E, PER = 3, 32, 200
N = K * PER
N_SPEC, N_GEN, N_RAND = 40, 10, 30
TAU = 0.005
GAMMA = 5


def save(name, a):
    np.save(os.path.join(OUT, name + ".npy"), np.ascontiguousarray(a))


def l2n(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def faiss_kmeans(X, k, nredo):
    km = faiss.Kmeans(X.shape[1], k, spherical=True, niter=300, nredo=nredo)
    km.train(X.astype(np.float32))
    _, I = km.index.search(X.astype(np.float32), 1)
    return I.reshape(-1).astype(np.int64)


def select(X, labels, T, kc, by):
    """filter_nouns.py:51-68 in float64; by = 'tac' (max P) or 'cosine' (raw cosine)."""
    X = X.astype(np.float64)
    T = l2n(T.astype(np.float64))
    centres = np.stack([X[labels == k].mean(axis=0) for k in range(kc)])
    centres = l2n(centres)
    S = centres @ T.T                                   # (kc, Mn)
    P = np.exp(S - S.max(axis=0, keepdims=True))
    P = P / P.sum(axis=0, keepdims=True)                # softmax over the centres
    pred = P.argmax(axis=0)
    conf = P.max(axis=0)
    cos = S[pred, np.arange(S.shape[1])]
    key = conf if by == "tac" else cos
    chosen = np.zeros(T.shape[0], bool)
    for k in range(kc):
        idx = np.where(pred == k)[0]
        if len(idx) == 0:
            continue
        order = idx[np.argsort(-key[idx], kind="stable")]
        chosen[order[:GAMMA]] = True
        # the fixture must not hinge on rounding: a clear gap at the γ boundary
        if len(order) > GAMMA:
            gap = key[order[GAMMA - 1]] - key[order[GAMMA]]
            assert gap > 1e-5, f"centre {k}: near-tie at the γ boundary ({gap:g}); change the seed"
    return np.where(chosen)[0].astype(np.int64), conf, pred.astype(np.int64), cos


def tac_features(X, T):
    """retrieve_text.py:30-37 (and concat_kmeans.py:58-76) in float64."""
    X = X.astype(np.float64)
    T = l2n(T.astype(np.float64))
    s = X @ T.T / TAU
    s = np.exp(s - s.max(axis=1, keepdims=True))
    s = s / s.sum(axis=1, keepdims=True)
    t = l2n(s @ T)
    return np.concatenate([X, t], axis=1)


def spherical_lloyd(F, init, iters=300):
    """faiss' spherical Lloyd (IP assignment, centroid = mean, normalised) from given rows."""
    C = l2n(F[init].copy())
    for _ in range(iters):
        lab = (F @ C.T).argmax(axis=1)
        newC = np.stack([F[lab == k].mean(axis=0) for k in range(C.shape[0])])
        newC = l2n(newC)
        if np.array_equal(newC, C):
            break
        C = newC
    lab = (F @ C.T).argmax(axis=1)
    return lab.astype(np.int64), C


def same_partition(a, b):
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261206)
    C = l2n(rng.standard_normal((K, E)))
    y = np.repeat(np.arange(K), PER)
    X = l2n(C[y] + 0.1 * rng.standard_normal((N, E))).astype(np.float32)
    spec = C[np.repeat(np.arange(K), N_SPEC)] + 0.35 * rng.standard_normal((K * N_SPEC, E))
    gen = l2n(C.sum(axis=0, keepdims=True)) + 0.02 * rng.standard_normal((N_GEN, E))
    rnd = rng.standard_normal((N_RAND, E))
    T = np.concatenate([spec, gen, rnd]).astype(np.float32)
    names = [f"noun{j}_spec{j // N_SPEC}" for j in range(K * N_SPEC)]
    names += [f"noun{K * N_SPEC + j}_generic" for j in range(N_GEN)]
    names += [f"noun{K * N_SPEC + N_GEN + j}_random" for j in range(N_RAND)]
    generic = set(range(K * N_SPEC, K * N_SPEC + N_GEN))
    save("X", X)
    save("y", y.astype(np.int64))
    save("T", T)
    with open(os.path.join(OUT, "names.txt"), "w") as f:
        f.write("\n".join(names) + "\n")

    # exact selection from given labels (k_c = 3K = 9)
    kc = 3 * K
    lab9 = faiss_kmeans(X, kc, 10)
    assert len(set(lab9.tolist())) == kc
    sel_tac, conf, pred, cos = select(X, lab9, T, kc, "tac")
    sel_cos, _, _, _ = select(X, lab9, T, kc, "cosine")
    save("sel_labels", lab9)
    save("sel_tac", sel_tac)
    save("sel_cosine", sel_cos)
    save("sel_conf", conf)
    save("sel_centre", pred)
    save("sel_cos", cos)
    g_tac = len(generic & set(sel_tac.tolist()))
    g_cos = len(generic & set(sel_cos.tolist()))
    assert g_tac == 0 and g_cos > 0, (g_tac, g_cos)

    # end to end with k_c = 3: faiss finds the planted blobs
    lab3 = faiss_kmeans(X, K, 10)
    assert same_partition(lab3, y), "faiss did not recover the 3 blobs; change the seed"
    e2e_tac, _, _, _ = select(X, lab3, T, K, "tac")
    e2e_cos, _, _, _ = select(X, lab3, T, K, "cosine")
    save("e2e_tac", e2e_tac)
    save("e2e_cosine", e2e_cos)
    assert not (generic & set(e2e_tac.tolist())) and (generic & set(e2e_cos.tolist()))

    # TAC no-train over the e2e candidates (fit = eval = X: precomputed features)
    F = tac_features(X, T[e2e_tac])
    save("tac_F", F.astype(np.float32))
    init = rng.choice(N, K, replace=False).astype(np.int64)
    km_lab, km_C = spherical_lloyd(F, init)
    save("tac_init", init)
    save("tac_km_labels", km_lab)
    save("tac_km_centres", km_C.astype(np.float32))
    fl = faiss_kmeans(F, K, 20)
    assert same_partition(fl, y), "faiss TAC k-means did not recover the blobs"
    save("tac_faiss_labels", fl)
    print(f"tac fixtures: k_c=9 selection M={len(sel_tac)} (tac, {g_tac} generic) / "
          f"{len(sel_cos)} (cosine, {g_cos} generic); e2e M={len(e2e_tac)} / {len(e2e_cos)} "
          f"(cosine keeps {len(generic & set(e2e_cos.tolist()))} generic) -> {OUT}")


if __name__ == "__main__":
    main()
