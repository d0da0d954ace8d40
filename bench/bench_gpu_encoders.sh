#!/bin/sh
# bench_gpu_encoders.sh — the encoder comparison on one GPU, in one run: laic on each GEMM path
# (fp32 cuBLAS, tf32 cuBLAS, bf16 cuBLAS, bf16 WMMA) beside transformers CLIPModel eager (SDPA)
# and torch.compile (fp32, tf32, bf16 autocast), the same random-init full-size ViT-B/32
# (bench_encoders.py builds it and converts it for laic), then the whole WordNet noun bank
# (146,347 nouns × 7 templates) with laic. Writes one markdown file with date, device,
# commands, a table and the raw JSON lines.
#
#   bench/bench_gpu_encoders.sh [OUT.md]        (default bench/results/<UTC date>-encoders-gpu.md)
#
# Knobs (environment): BUILD=build-cuda, IMAGE_BATCH=256, TEXT_BATCH=1024, ITERS=20, WARMUP=3,
# SHORT_LEN=12 (a typical noun prompt: "a photo of a {noun}." is ~8–12 tokens with SOT/EOT),
# MODES=eager,compile, SKIP_BANK=0, DEVICE=cuda. DEVICE=cpu validates the script end to end on
# a machine without a GPU (fp32 only, laic built with CUDA=0, noun bank limited to BANK_LIMIT=2048
# prompts, THREADS=2); such a file holds CPU figures. A failing command is recorded in the file and the rest runs.
# Expect ~5–10 min on an H100 (torch.compile compiles 2 graphs per precision).
set -u
ARGS="$*"
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
BUILD=${BUILD:-build-cuda}
LAIC=$BUILD/laic
IB=${IMAGE_BATCH:-256}
TB=${TEXT_BATCH:-1024}
ITERS=${ITERS:-20}
WARMUP=${WARMUP:-3}
SHORT=${SHORT_LEN:-12}
MODES=${MODES:-eager,compile}
OUT=${1:-bench/results/$(date -u +%Y-%m-%d)-encoders-gpu.md}
TMP=$(mktemp -d)
W=$TMP/vit_b_32_random.safetensors
JS=$TMP/lines.jsonl
CMDS=$TMP/commands.txt
: > "$JS"
: > "$CMDS"

echo "building $LAIC ..." >&2
CUDA=1
[ "$DEVICE" = cpu ] && CUDA=0
make BUILD="$BUILD" CUDA=$CUDA -j"$(nproc)" all > "$TMP/build.log" 2>&1 || { tail -30 "$TMP/build.log"; exit 1; }

# run CMD...: appends its JSON lines; on failure a JSON line with the error (the rest goes on)
run() {
    echo "$*" >> "$CMDS"
    echo "+ $*" >&2
    if ! "$@" >> "$JS" 2> "$TMP/err"; then
        python3 -c 'import json,sys; print(json.dumps({"error": open(sys.argv[1]).read().strip()[-400:], "command": " ".join(sys.argv[2:])}))' "$TMP/err" "$@" >> "$JS"
    fi
    cat "$TMP/err" >&2
}

# PyTorch eager first: it also writes the weights laic then loads (the very same parameters).
# torch.compile (the slow part: it compiles two graphs per precision) runs last, after the
# results file has been written once, so a run cut off by a time limit keeps what it measured.
TH=""
[ "$DEVICE" = cpu ] && TH="--threads ${THREADS:-2}"
TORCH_ARGS="--device $DEVICE $TH --image-batch $IB --text-batch $TB --iters $ITERS --warmup $WARMUP"
FIRST_MODE=${MODES%%,*}
run python3 bench/bench_encoders.py $TORCH_ARGS --modes "$FIRST_MODE" --save-weights "$W"
[ -f "$W" ] || { echo "no weights written: see $JS" >&2; cat "$JS"; exit 1; }

PATHS="fp32/cublas tf32/cublas bf16/cublas bf16/wmma"
BANK_PATHS="fp32/cublas bf16/cublas"
LIMIT=""
if [ "$DEVICE" = cpu ]; then
    PATHS="fp32/cublas"
    BANK_PATHS="fp32/cublas"
    LIMIT="--limit ${BANK_LIMIT:-2048}"
fi
for p in $PATHS; do
    set -- $(echo "$p" | tr / ' ')
    C="--weights $W --device $DEVICE $TH --precision $1 --gemm $2 --iters $ITERS --warmup $WARMUP"
    run "$LAIC" bench encode-images $C --batch "$IB"
    run "$LAIC" bench encode-text $C --batch "$TB" --seq-len 77
    run "$LAIC" bench encode-text $C --batch "$TB" --seq-len "$SHORT"
done
if [ "${SKIP_BANK:-0}" = 0 ]; then
    for p in $BANK_PATHS; do
        set -- $(echo "$p" | tr / ' ')
        run "$LAIC" bench encode-text --weights "$W" --device "$DEVICE" $TH --precision "$1" \
            --gemm "$2" --noun-bank --batch "$TB" --warmup 2 $LIMIT
    done
fi

# The results file, written atomically; called again after each later part.
write_md() {
{
    if [ "$DEVICE" = cpu ]; then
        DN="CPU ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores)"
    else
        DN=$(nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1)
    fi
    echo "# Encoder benchmark: laic vs PyTorch on $DN"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "- commit: $(git rev-parse --short=12 HEAD 2>/dev/null) $(git diff --quiet 2>/dev/null || echo '(dirty tree)')"
    echo "- device: $DN"
    echo "- host: $(uname -n), $(nproc) cores; torch $(python3 -c 'import torch; print(torch.__version__)' 2>/dev/null)"
    echo "- model: random-init full-size ViT-B/32 (scripts/parity_full.py build_model, seed 0), the same parameters for laic (converted, F32) and PyTorch"
    echo "- batches: images $IB, prompts $TB; median of $ITERS iterations after $WARMUP warm-up"
    echo "- FLOP: 8.82 GFLOP/img; text 5.96 GFLOP per 77-token prompt, scaled by the real sequence length (laic runs up to the batch's longest EOT + 1; HF always runs 77)"
    echo "- % of peak: dense datasheet peak for the precision (host/cli/cmd_bench.c)"
    echo
    echo "## Table"
    echo
    python3 bench/encoders_table.py "$JS"
    echo
    echo "## Commands"
    echo
    echo '```'
    echo "DEVICE=$DEVICE BUILD=$BUILD IMAGE_BATCH=$IB TEXT_BATCH=$TB ITERS=$ITERS WARMUP=$WARMUP bench/bench_gpu_encoders.sh $ARGS"
    cat "$CMDS"
    echo '```'
    echo
    echo "## Raw JSON lines"
    echo
    echo '```'
    cat "$JS"
    echo '```'
} > "$OUT.tmp" && mv "$OUT.tmp" "$OUT"
echo "wrote $OUT" >&2
}
write_md
REST_MODES=${MODES#"$FIRST_MODE"}
REST_MODES=${REST_MODES#,}
if [ -n "$REST_MODES" ]; then
    run python3 bench/bench_encoders.py $TORCH_ARGS --modes "$REST_MODES"
    write_md
fi
rm -rf "$TMP"
