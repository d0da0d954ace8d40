#!/usr/bin/env bash
# bench_heads_gpu.sh — SIC (100 epochs) and TAC trained (20 epochs) on N = 50,000 × 512 cached
# features, K = 10, on one GPU: laic (CUDA backend, graphs on and off) and, when PyTorch with
# CUDA plus faiss and scikit-learn are importable, the PyTorch mirror of the authors' code with
# its training loop on the GPU (bench/bench_heads_torch.py --device cuda). Goal: SIC's 100 epochs
# in < 5 s on an H100 (the "train" line). Written before any GPU run.
#
#   bash bench/bench_heads_gpu.sh [OUT.md]     # BIN=build/bench/bench_heads, TEST_GPU=build/test_gpu
#
# Order (each step under `timeout`, the results file rewritten after every step, so a run cut off
# by the device's time limit keeps what it measured): the head-op GPU tests, the op timings,
# laic SIC with graphs, laic TAC with graphs, laic SIC without graphs, then PyTorch.
# Data: `bench_heads gen` (C, no Python needed). Knobs: N=50000, DIR, T_STEP=240 (s per step).
set -u
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bench/bench_heads}
TEST_GPU=${TEST_GPU:-build/test_gpu}
N=${N:-50000}
DIR=${DIR:-/tmp/laic-bench-heads-$N}
OUT=${1:-bench/results/$(date -u +%Y-%m-%d)-heads-gpu.md}
T_STEP=${T_STEP:-240}
DEVICE=${DEVICE:-cuda}   # DEVICE=cpu checks the script on a machine without a GPU
LOG=$(mktemp)
write() {
    {
        echo "# SIC and TAC (trained) on one GPU: laic vs a PyTorch mirror of the authors' code ($(date -u +%Y-%m-%d))"
        echo
        echo "Device: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1);"
        echo "host $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc --all) cores."
        echo "Data: \`$BIN gen $DIR $N\` (planted, K = 10, 512-d raw features; bank 82,113; 1,000 nouns)."
        echo "Command: \`bash bench/bench_heads_gpu.sh\`. Goal: SIC 100 epochs < 5 s (laic's \"train\" line)."
        echo
        echo '```'
        cat "$LOG"
        echo '```'
    } > "$OUT.tmp" && mv "$OUT.tmp" "$OUT"
}
step() {   # step NAME CMD...
    echo "\$ ${*:2}" >> "$LOG"
    timeout "$T_STEP" "${@:2}" 2>&1 | grep -v '^\[' | tail -40 >> "$LOG"
    echo "($1: exit ${PIPESTATUS[0]})" >> "$LOG"
    write
}
[ -x "$BIN" ] || { echo "bench_heads_gpu: $BIN missing (make bench)"; exit 1; }
[ -f "$DIR/bank.npy" ] || "$BIN" gen "$DIR" "$N" >> "$LOG"
[ -x "$TEST_GPU" ] && step test "$TEST_GPU" gpu_heads
step ops "$BIN" ops
step sic-graph "$BIN" sic "$DIR" 100 "$DEVICE"
step tac-graph "$BIN" tac "$DIR" 20 "$DEVICE"
step sic-nograph env BENCH_NOGRAPH=1 "$BIN" sic "$DIR" 100 "$DEVICE"
if python3 -c 'import torch, faiss, sklearn; assert torch.cuda.is_available()' 2>/dev/null; then
    step torch-sic python3 bench/bench_heads_torch.py sic "$DIR" --device cuda --loader tensor --threads "$(nproc)"
    step torch-tac python3 bench/bench_heads_torch.py tac "$DIR" --device cuda --loader tensor --threads "$(nproc)"
    step torch-tac-authors python3 bench/bench_heads_torch.py tac "$DIR" --device cuda --loader authors --threads "$(nproc)"
else
    echo "(PyTorch with CUDA, faiss or scikit-learn not importable here: PyTorch rows skipped)" >> "$LOG"
    write
fi
echo "wrote $OUT"
rm -f "$LOG"
