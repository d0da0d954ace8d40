#!/bin/sh
# bench_cpu_encoder.sh — CPU image-encoder throughput of laic beside PyTorch, same machine, same run.
#
#   bench/bench_cpu_encoder.sh [LAIC_BIN] [REPEATS]      (default build/laic, 5)
#
# Full-size ViT-B/32 with random weights (scripts/parity_full.py builds a transformers CLIPModel,
# converts it to laic's format), batch 16, 2 threads for both (OMP/OpenBLAS for laic,
# torch.set_num_threads for PyTorch), 64 images per run, laic and PyTorch runs interleaved and the
# best of REPEATS kept (others may be compiling on a shared machine). laic's rate comes from its
# progress line (encode loop only, weights load excluded); PyTorch's excludes model build too.
# Goal: laic's time <= 1.2x PyTorch's. Record results in bench/results/<date>-cpu-image-encoder.md.
set -eu
cd "$(dirname "$0")/.."
LAIC=${1:-build/laic}
REPEATS=${2:-5}
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  host: $(uname -n)  cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')  cores: $(nproc)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 \
    python3 scripts/parity_full.py --laic "$LAIC" --bench --batch 16 --bench-images 64 \
    --threads 2 --repeats "$REPEATS"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
