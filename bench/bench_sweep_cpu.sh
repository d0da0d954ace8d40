#!/bin/sh
# bench_sweep_cpu.sh — seconds per point of a 6-point λ sweep on cached CIFAR-10-sized features
# (issue 8 goal: <= 60 s per point on the 2-core CPU box, <= 1 s on an H100).
#
#   bench/bench_sweep_cpu.sh                     # N = 60,000, E = 512, Mn = 20,000 nouns
#   N=6000 LAIC_BIN=build-x/laic bench/bench_sweep_cpu.sh
#   EXTRA="ridge.form=reduced kmeans.restarts=1" bench/bench_sweep_cpu.sh
#
# Data: scripts/make_sweep_bench_data.py (synthetic CLIP-like unit rows; k_c = N/300 centres,
# γ = 5 → M ≈ 1,000 candidates), passed as precomputed data.image_features / nouns.features, so
# no encoder runs: a point is candidate stage (first point only; then a cache hit) + ridge +
# k-means (10 restarts) + kNN filter + metrics, i.e. method ours-notrain. Prints one line per
# point (time_s from report.json, cache status of the candidate stage) and the mean over the
# points after the first.
set -eu
BIN=${LAIC_BIN:-build/laic}
N=${N:-60000}
NOUNS=${NOUNS:-20000}
DATA=${DATA:-/tmp/laic-sweep-bench-$N}
EXTRA=${EXTRA:-}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-2}
[ -f "$DATA/X.npy" ] || python3 scripts/make_sweep_bench_data.py "$DATA" --n "$N" --nouns "$NOUNS"
rm -rf "$DATA/cache" "$DATA/sweep"
start=$(date +%s.%N)
# shellcheck disable=SC2086
"$BIN" sweep /dev/null sweep.ridge.lambda=0.1,1,5,10,50,100 \
    data.image_features="$DATA/X.npy" data.labels="$DATA/y.npy" nouns.features="$DATA/T.npy" \
    eval.methods=ours-notrain run.cache_dir="$DATA/cache" $EXTRA --dir "$DATA/sweep" 2>"$DATA/sweep.log"
end=$(date +%s.%N)
echo "machine: $(nproc) cores, $(uname -m); OMP_NUM_THREADS=$OMP_NUM_THREADS; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "N = $N, nouns = $NOUNS, extra = '${EXTRA}'; total wall $(echo "$end - $start" | bc) s"
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
         { t = $col["time_s"]; printf "lambda %-5s  %7.2f s  candidates %-4s  ACC %.4f  M %s\n",
                  $col["ridge.lambda"], t, $col["cache.candidates"], $col["ours-notrain.acc"],
                  $col["sizes.candidate_nouns"];
           if (NR > 2) { s += t; n++ } }
         END { if (n) printf "mean over points 2-%d (candidate cache hit): %.2f s per point\n", n + 1, s / n }' \
    "$DATA/sweep/sweep.csv"
grep -h "timings_s" -A12 "$DATA"/sweep/p001*/report.json | tr -d '\t\n' | sed 's/^/p001 (first cache-hit point) stage timings: /; s/$/\n/'
