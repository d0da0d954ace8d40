#!/usr/bin/env bash
# bench_heads_cpu.sh — SIC (100 epochs) and TAC trained (20 epochs) on N = 50,000 × 512 cached
# features, K = 10: laic (build/bench/bench_heads, CPU backend) against the PyTorch CPU mirror of
# the authors' code (bench/bench_heads_torch.py), on the same files, in the same run.
#
#   bash bench/bench_heads_cpu.sh [OUT.md]      # THREADS=1 (default) or 2, N=50000, DIR=/tmp/...
#
# Each side runs its setup (SIC: 21 L2 neighbours, k-means n_init 20, semantic space; TAC: text
# counterparts, 50 neighbours in X and in t) and then its epochs, with the test ACC after every
# epoch (as the authors' loops do). The PyTorch loop runs with the authors' Dataset/DataLoader
# ("authors") and with vectorised index draws ("tensor"). The results file gets the commands, the
# machine, the load average before and after, and every printed line.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-1}
N=${N:-50000}
DIR=${DIR:-/tmp/laic-bench-heads-$N}
OUT=${1:-bench/results/$(date -u +%Y-%m-%d)-heads-cpu.md}
BIN=${BIN:-build/bench/bench_heads}
[ -x "$BIN" ] || make bench >/dev/null
[ -f "$DIR/bank.npy" ] || "$BIN" gen "$DIR" "$N"
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
LOG=$(mktemp)
run() { echo "\$ $*" >> "$LOG"; "$@" 2>/dev/null | tee -a "$LOG"; }
load0=$(cut -d' ' -f1-3 /proc/loadavg)
run "$BIN" sic "$DIR" 100 cpu
run python3 bench/bench_heads_torch.py sic "$DIR" --epochs 100 --threads "$THREADS" --loader authors
run python3 bench/bench_heads_torch.py sic "$DIR" --epochs 100 --threads "$THREADS" --loader tensor
run "$BIN" tac "$DIR" 20 cpu
run python3 bench/bench_heads_torch.py tac "$DIR" --epochs 20 --threads "$THREADS" --loader authors
run python3 bench/bench_heads_torch.py tac "$DIR" --epochs 20 --threads "$THREADS" --loader tensor
load1=$(cut -d' ' -f1-3 /proc/loadavg)
{
    echo "# SIC and TAC (trained) on cached features, CPU: laic vs a PyTorch mirror of the authors' code ($(date -u +%Y-%m-%d))"
    echo
    echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc --all) cores, shared;"
    echo "load average $load0 before, $load1 after. $THREADS thread(s) on both sides"
    echo "(OMP_NUM_THREADS, torch.set_num_threads, faiss.omp_set_num_threads); torch $(python3 -c 'import torch; print(torch.__version__)')."
    echo "Data: \`$BIN gen $DIR $N\` (planted, K = 10, 512-d raw features; bank 82,113; 1,000 nouns)."
    echo "Command: \`THREADS=$THREADS bash bench/bench_heads_cpu.sh\`"
    echo
    echo '```'
    cat "$LOG"
    echo '```'
} > "$OUT"
rm -f "$LOG"
echo "wrote $OUT"
