#!/usr/bin/env python3
"""make_cluster_fixtures.py — goldens for the clustering numerics (tests/cluster/test_cluster.c).

Writes small .npy files under tests/fixtures/cluster/ (budget 2 MB), all from a fixed seed:

  ridge_*   X [300,32], T_wide [48,32] (M > d), T_narrow [20,32] (M < d), lambda 2.0;
            C = X T^T (T T^T + lambda I)^-1 by numpy.linalg.solve in float64, plain and with
            rows L2-normalised first (--normalize).
  km_*      X [1200,16] (6 overlapping blobs), given init C0 [6,16]; labels and centres of
            plain numpy Lloyd iterations in float64 (euclidean and spherical), and a run whose
            init has a centre far from all data (empty cluster, re-seeded with the row
            farthest from its centre — the rule laic documents in cluster.h).
  knn_*     F [400,24] with duplicated rows and one zero row (exact ties), k = 10: brute-force
            cosine top-k in float64 (self excluded, stable sort → ties to the lowest index),
            labels y and the consistency scores / mask.
  met_*     300 random (pred, true) label pairs with gaps in the label values plus special
            cases, concatenated with offsets; expected NMI, ARI from scikit-learn and ACC
            from scipy.optimize.linear_sum_assignment.

Usage: python3 scripts/make_cluster_fixtures.py   (from the repository root)
"""
import os

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "cluster")
rng = np.random.default_rng(20261123)


def save(name, a):
    np.save(os.path.join(OUT, name + ".npy"), np.ascontiguousarray(a))


def l2n(a):
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


# --- ridge ------------------------------------------------------------------------------------
def ridge(X, T, lam):
    X = X.astype(np.float64)
    T = T.astype(np.float64)
    G = T @ T.T + lam * np.eye(T.shape[0])
    # C G = X T^T  <=>  G C^T = T X^T (G symmetric)
    return np.linalg.solve(G, T @ X.T).T


def make_ridge():
    X = rng.standard_normal((300, 32)).astype(np.float32)
    Tw = rng.standard_normal((48, 32)).astype(np.float32)
    Tn = rng.standard_normal((20, 32)).astype(np.float32)
    lam = 2.0
    save("ridge_X", X)
    save("ridge_T_wide", Tw)
    save("ridge_T_narrow", Tn)
    save("ridge_C_wide", ridge(X, Tw, lam).astype(np.float32))
    save("ridge_C_narrow", ridge(X, Tn, lam).astype(np.float32))
    save("ridge_C_wide_norm", ridge(l2n(X.astype(np.float64)), l2n(Tw.astype(np.float64)), lam)
         .astype(np.float32))


# --- k-means ----------------------------------------------------------------------------------
def assign(X, C):
    D = ((X[:, None, :] - C[None, :, :]) ** 2).sum(-1)   # (N,K) exact float64 distances
    lab = np.argmin(D, axis=1)                            # first minimum: lowest index
    return lab, D[np.arange(len(X)), lab]


def lloyd(X, C0, iters=300, spherical=False, tol=0.0):
    X = X.astype(np.float64)
    C = C0.astype(np.float64).copy()
    if spherical:
        X = l2n(X)
        C = l2n(C)
    K = C.shape[0]
    lab, mind = assign(X, C)
    for _ in range(iters):
        Cold = C.copy()
        counts = np.bincount(lab, minlength=K)
        Cn = C.copy()
        for c in range(K):
            if counts[c]:
                Cn[c] = X[lab == c].mean(axis=0)
        used = np.zeros(len(X), bool)
        for c in range(K):
            if counts[c] == 0:   # re-seed with the farthest row from its centre
                m = np.where(used, -np.inf, mind)
                far = int(np.argmax(m))
                used[far] = True
                Cn[c] = X[far]
        if spherical:
            Cn = l2n(Cn)
        shift = ((Cn - Cold) ** 2).sum()
        C = Cn
        prev = lab
        lab, mind = assign(X, C)
        if (lab == prev).all() or shift <= tol:
            break
    return lab.astype(np.int64), C


def make_kmeans():
    K, d = 6, 16
    means = rng.standard_normal((K, d)) * 2.0
    y = rng.integers(0, K, 1200)
    X = (means[y] + rng.standard_normal((1200, d)) * 1.2 + 0.5).astype(np.float32)
    C0 = X[rng.choice(1200, K, replace=False)].copy()
    save("km_X", X)
    save("km_C0", C0)
    lab, C = lloyd(X, C0)
    save("km_labels", lab)
    save("km_centers", C)
    lab, C = lloyd(X, C0, spherical=True)
    save("km_sph_labels", lab)
    save("km_sph_centers", C)
    C0e = C0.copy()
    C0e[2] = 100.0   # no row is nearest to it: empty at the first update
    save("km_C0_empty", C0e)
    lab, C = lloyd(X, C0e)
    assert len(np.unique(lab)) == K
    save("km_empty_labels", lab)
    save("km_empty_centers", C)


# --- kNN + filter -----------------------------------------------------------------------------
def make_knn():
    N, d, K, k = 400, 24, 5, 10
    means = rng.standard_normal((K, d))
    y = rng.integers(0, K, N)
    F = means[y] + rng.standard_normal((N, d)) * 0.9
    dup_src = rng.choice(N, 20, replace=False)
    dup_dst = rng.choice(np.setdiff1d(np.arange(N), dup_src), 20, replace=False)
    F[dup_dst] = F[dup_src]   # bitwise copies, so float32 ties are exact too
    F[7] = 0.0                      # zero row: all similarities 0, neighbours = lowest indices
    F = F.astype(np.float32)
    Fn = l2n(F.astype(np.float64))
    S = Fn @ Fn.T
    np.fill_diagonal(S, -np.inf)
    idx = np.argsort(-S, axis=1, kind="stable")[:, :k]
    sims = np.take_along_axis(S, idx, axis=1)
    # pseudo-labels: true blobs with 10% flipped, so scores take many values
    yl = y.copy()
    flip = rng.random(N) < 0.1
    yl[flip] = rng.integers(0, K, flip.sum())
    scores = (yl[idx] == yl[:, None]).mean(axis=1)
    save("knn_F", F)
    save("knn_idx", idx.astype(np.int64))
    save("knn_sims", sims.astype(np.float32))
    save("knn_y", yl.astype(np.int64))
    save("knn_scores", scores.astype(np.float32))
    save("knn_mask", (scores == 1).astype(np.uint8))


# --- metrics ----------------------------------------------------------------------------------
def acc_lsa(p, t):
    _, pi = np.unique(p, return_inverse=True)
    _, ti = np.unique(t, return_inverse=True)
    W = np.zeros((pi.max() + 1, ti.max() + 1), np.int64)
    np.add.at(W, (pi, ti), 1)
    r, c = linear_sum_assignment(W, maximize=True)
    return W[r, c].sum() / len(p)


def make_metrics():
    pairs = [
        (np.zeros(1, np.int64), np.zeros(1, np.int64)),                  # n = 1
        (np.zeros(7, np.int64), np.zeros(7, np.int64)),                  # one cluster each
        (np.arange(9), np.arange(9)),                                    # all singletons
        (np.zeros(8, np.int64), np.arange(8) % 3),                       # pred one cluster
        (np.arange(8) % 3, np.full(8, 5)),                               # true one cluster
        (np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])),                # ARI -0.5
        (np.array([3, 3, 9, 9, 100]), np.array([1, 1, 0, 0, 7])),        # perfect, gaps
        (np.arange(12) % 4, np.arange(12) % 2),                          # k_pred > k_true
    ]
    for _ in range(292):
        n = int(rng.integers(2, 200))
        kt = int(rng.integers(1, 12))
        kp = int(rng.integers(1, 15))
        t = rng.integers(0, kt, n)
        p = np.where(rng.random(n) < rng.random(), t % kp, rng.integers(0, kp, n))
        # label values with gaps: map through a random increasing table
        gaps = np.cumsum(rng.integers(1, 50, 20))
        pairs.append((gaps[p], gaps[t] if rng.random() < 0.5 else t))
    pred = np.concatenate([p for p, _ in pairs]).astype(np.int64)
    true = np.concatenate([t for _, t in pairs]).astype(np.int64)
    off = np.cumsum([0] + [len(p) for p, _ in pairs]).astype(np.int64)
    exp = np.array([[normalized_mutual_info_score(t, p), acc_lsa(p, t), adjusted_rand_score(t, p)]
                    for p, t in pairs], np.float64)
    save("met_pred", pred)
    save("met_true", true)
    save("met_off", off)
    save("met_expected", exp)
    # a CLI case: int32 predictions against int64 truth
    p, t = pairs[20]
    save("met_cli_pred", p.astype(np.int32))
    save("met_cli_true", t.astype(np.int64))
    save("met_cli_expected", exp[20])


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    make_ridge()
    make_kmeans()
    make_knn()
    make_metrics()
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total / 1024:.0f} KiB, to {os.path.normpath(OUT)}")
