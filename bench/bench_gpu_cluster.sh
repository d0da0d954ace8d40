#!/usr/bin/env bash
# bench_gpu_cluster.sh — the one command a GPU session runs for the clustering comparison:
# laic's CUDA ops (bench_cluster_gpu: laic Cholesky+solve vs cuSOLVER, batched k-means, kNN on
# every path: tiled kernel 1 fp32/tf32/bf16 and the fused bf16 kernel 2, at N and 10000 rows),
# the torch baselines (bench/bench_cluster_torch.py, same sizes, same GPU, same run) and laic's
# CLI on the same data, all into ONE results file with date, device and the commands run.
#
#   bash bench/bench_gpu_cluster.sh                 # GPU: N=60000 d=512 → bench/results/<date>-cluster-gpu.md
#   bash bench/bench_gpu_cluster.sh --cpu [N]       # no GPU: torch on the CPU beside laic's CPU CLI
#                                                   # (default N=6000) → <date>-cluster-torch-cpu.md
# Env: BUILD (default build-cuda, build-cpu-bench with --cpu), THREADS (CPU threads, default 2),
#      OUT (results file). Exits non-zero when any step fails (the file says which).
set -u
cd "$(dirname "$0")/.."
MODE=gpu N=60000
if [ "${1:-}" = "--cpu" ]; then MODE=cpu; N=${2:-6000}; fi
D=512 M=512 THREADS=${THREADS:-2}
DATE=$(date +%Y-%m-%d)
if [ $MODE = gpu ]; then
  BUILD=${BUILD:-build-cuda}; DEV=cuda; TORCHDEV=cuda
  OUT=${OUT:-bench/results/$DATE-cluster-gpu.md}
else
  BUILD=${BUILD:-build-cpu-bench}; DEV=cpu; TORCHDEV=cpu
  OUT=${OUT:-bench/results/$DATE-cluster-torch-cpu.md}
fi
DATA=$(mktemp -d); trap 'rm -rf "$DATA"' EXIT
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
status=0
LOG="$DATA/log.md"

run() {   # run CMD...: records the command and its output (fenced) in the log
  echo '```' >>"$LOG"; echo "\$ $*" >>"$LOG"
  local t0=$(date +%s.%N)
  "$@" >>"$LOG" 2>&1; local rc=$?
  local t1=$(date +%s.%N)
  echo "[exit $rc, wall $(echo "$t1 - $t0" | bc) s]" >>"$LOG"; echo '```' >>"$LOG"
  [ $rc -eq 0 ] || [ $rc -eq 77 ] || status=1
  write_out   # after every step: a run cut off by a time limit keeps what it measured
  return $rc
}

write_out() {
  [ -f "$LOG.head" ] || return 0
  mkdir -p "$(dirname "$OUT")"
  cat "$LOG.head" "$LOG" >"$OUT.tmp" && mv "$OUT.tmp" "$OUT"
}

{
  echo "# Clustering ops: laic vs torch ($MODE, $DATE)"
  echo
  echo "Command: \`bash bench/bench_gpu_cluster.sh $*\` at commit $(git rev-parse --short=12 HEAD)"
  echo "$(git status --porcelain -- kernels host bench | grep -q . && echo '(working tree has local changes in kernels/host/bench)')"
  echo
  echo "Host: $(uname -srm), $(nproc) cores, threads=$THREADS; $(python3 -c 'import torch;print("torch",torch.__version__)')"
  if [ $MODE = gpu ]; then
    echo "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1)"
  fi
  echo "Sizes: N=$N d=$D M=$M; k-means K=10, 300 it x 10 restarts (k-means++); kNN k=10."
  echo
} >"$LOG.head"

if [ $MODE = gpu ]; then
  run make BUILD="$BUILD" CUDA=1 -j"$(nproc)" all bench
  echo "## laic CUDA ops vs cuSOLVER (bench_cluster_gpu)" >>"$LOG"
  # the kNN part tables every path (kernel 1 fp32/tf32/bf16, fused kernel 2) at N and 10000
  run "./$BUILD/bench/bench_cluster_gpu" "$N" "$D" "$M"
else
  run make BUILD="$BUILD" CUDA=0 -j"$(nproc)" all
fi

echo "## torch baselines (bench/bench_cluster_torch.py, JSON lines)" >>"$LOG"
TORCH="python3 bench/bench_cluster_torch.py --device $TORCHDEV --threads $THREADS --n $N --d $D --m $M"
run $TORCH --save-data "$DATA" --repeats 3
for p in tf32 bf16; do
  [ $MODE = gpu ] && run $TORCH --ops knn --knn-precision $p --repeats 3
done

echo "## laic CLI on the same data (--device $DEV, whole process incl. .npy I/O)" >>"$LOG"
L="./$BUILD/laic"
run "$L" kmeans --in "$DATA/X.npy" --k 10 --iters 300 --restarts 10 --seed 0 \
  --out "$DATA/lab.npy" --device $DEV --threads "$THREADS"
run "$L" knn --in "$DATA/X.npy" --k 10 --out "$DATA/idx.npy" --device $DEV --threads "$THREADS"
if [ $MODE = gpu ]; then   # the fused bf16 GEMM + top-k kernel, exact re-rank
  run "$L" knn --in "$DATA/X.npy" --k 10 --out "$DATA/idx_bf16.npy" --device $DEV \
    --precision bf16 --threads "$THREADS"
fi
run "$L" ridge --images "$DATA/X.npy" --texts "$DATA/T.npy" --lambda 10 --form primal \
  --out "$DATA/C.npy" --device $DEV --threads "$THREADS"
run "$L" ridge --images "$DATA/X.npy" --texts "$DATA/T.npy" --lambda 10 --form dual \
  --out "$DATA/C.npy" --device $DEV --threads "$THREADS"

write_out
echo "bench_gpu_cluster: wrote $OUT (status $status)"
exit $status
