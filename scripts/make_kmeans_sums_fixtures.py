#!/usr/bin/env python3
"""make_kmeans_sums_fixtures.py — goldens for the fixed-point k-means step (issue 17):
kmeans_assign_sums_forward / kmeans_centres_forward (host/cpu/kmeans.c, kernels/kmeans.cu),
checked by tests/cluster/test_kmeans_sums.c.

Writes under tests/fixtures/cluster/ (≈ 30 KB), from a fixed seed:
  ks_X       [301,13] float32: 4 separated blobs (so every label is certain), with
             negative values, exact zeros, and values exactly half-way between two integers
             after scaling (ties: round half to even), and one row ×1e-6 (bits below the scale)
  ks_C       [4,13] float32 centres the rows are assigned to
  ks_shift   [1] int64: the fixed-point scale 2^shift for these rows (kmeans_fixed_shift:
             F = min(50, 62 − bits(N)) fraction bits below the exponent of max|x|)
  ks_labels  [301] int64: argmin over centres of the float64 squared distances
  ks_counts  [4] int64
  ks_sums    [4,13] int64: Σ over each cluster's rows of rint(x · 2^shift) (numpy rint:
             round half to even), computed in float64 then int64 (exact: |x·2^shift| < 2^51)
  ks_centres [4,13] float32: ((float64) sums · 2^-shift / counts) rounded to float32, the
             three roundings the op promises

Usage: python3 scripts/make_kmeans_sums_fixtures.py   (from the repository root)
"""
import math
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "cluster")
rng = np.random.default_rng(20261206)
N, d, K = 301, 13, 4


def save(name, a):
    np.save(os.path.join(OUT, name + ".npy"), np.ascontiguousarray(a))


C = (rng.standard_normal((K, d)) * 3).astype(np.float32)
lab = rng.integers(0, K, N)
X = (C[lab] + rng.standard_normal((N, d)).astype(np.float32) * 0.3).astype(np.float32)
X[5, :4] = 0.0
X[7] *= 1e-6
amax = float(np.abs(X).max())
e = math.frexp(amax)[1]            # amax < 2^e
bits = int(N).bit_length()         # N < 2^bits
F = min(50, 62 - bits)
shift = F - e
# ties: x · 2^shift = k + 1/2 exactly (representable floats), both parities, both signs
for i, k in enumerate([0, 1, 2, 3, -1, -2, 7, 8]):
    X[11 + i, 12] = np.float32((k + 0.5) * 2.0 ** -shift)
assert float(np.abs(X).max()) == amax
X64 = X.astype(np.float64)
D = ((X64[:, None, :] - C.astype(np.float64)[None, :, :]) ** 2).sum(-1)
labels = D.argmin(1).astype(np.int64)
srt = np.sort(D, 1)
assert (srt[:, 1] - srt[:, 0] > 1.0).all(), "labels must not depend on rounding"
q = np.rint(X64 * 2.0 ** shift)
assert np.abs(q).max() < 2.0 ** 51
q = q.astype(np.int64)
sums = np.zeros((K, d), np.int64)
np.add.at(sums, labels, q)
counts = np.bincount(labels, minlength=K).astype(np.int64)
assert (counts > 0).all()
centres = ((sums.astype(np.float64) * 2.0 ** -shift) / counts[:, None]).astype(np.float32)
os.makedirs(OUT, exist_ok=True)
save("ks_X", X)
save("ks_C", C)
save("ks_shift", np.array([shift], np.int64))
save("ks_labels", labels)
save("ks_counts", counts)
save("ks_sums", sums)
save("ks_centres", centres)
print(f"shift {shift}; ties at row 11..18 col 12 -> {q[11:19, 12].tolist()}; wrote ks_* to {os.path.normpath(OUT)}")
