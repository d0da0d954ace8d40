#!/usr/bin/env bash
# bench_train_cpu.sh — CPU cost of the prompt-learning loop (host/train/trainer.c, `laic train-centers`).
#
#   bash bench/bench_train_cpu.sh            # LAIC_BIN=build/laic, THREADS=0 (all cores)
#
# For the tiny and the full ViT-B/32 architecture (random-init weights: the arithmetic and so the
# time are those of the real model), on a CIFAR-like set of random 32x32 images with K = 10
# pseudo-labels (3 of 4 marked high-quality), batch 32:
#   step     one training step (32 images: 64 augmented views through the image encoder, K prompts
#            forward + backward through the text encoder, SGD)
#   epoch    4 steps (128 images)
#   cached   the same 4 steps in feature mode (no views, no image encoder): the per-step cost
#            left if the image features of the views were cached per (epoch, index)
# Prints one line per case with the seconds of the epoch as the trainer logs them, and img/s.
set -euo pipefail
BIN=${LAIC_BIN:-build/laic}
THREADS=${THREADS:-0}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# npy v1 writer: $1 path, $2 descr ('<i8', '|u1', '<f4'), $3 shape ("N," or "N, E"); body on stdin.
npy1() {
    local dict="{'descr': '$2', 'fortran_order': False, 'shape': ($3), }"
    local len=$(( ${#dict} + 1 )) pad
    pad=$(( (64 - (10 + len) % 64) % 64 ))
    local hl=$(( len + pad ))
    { printf '\x93NUMPY\x01\x00'; printf "\\x$(printf %02x $((hl & 255)))\\x$(printf %02x $((hl >> 8)))";
      printf '%s' "$dict"; printf '%*s' "$pad" ''; printf '\n'; cat; } > "$1"
}

make_set() {   # $1 dir, $2 N: CIFAR-10 binary with labels i % 10, random pixels
    mkdir -p "$1"
    : > "$1/data_batch_1.bin"
    for ((i = 0; i < $2; i++)); do
        { printf "\\x$(printf %02x $((i % 10)))"; head -c 3072 /dev/urandom; } >> "$1/data_batch_1.bin"
    done
    cp "$1/data_batch_1.bin" "$1/test_batch.bin"
    for ((i = 0; i < $2; i++)); do printf "\\x$(printf %02x $((i % 10)))\\x00\\x00\\x00\\x00\\x00\\x00\\x00"; done |
        npy1 "$1/y.npy" '<i8' "$2,"
    for ((i = 0; i < $2; i++)); do if ((i % 4)); then printf '\x01'; else printf '\x00'; fi; done |
        npy1 "$1/m.npy" '|u1' "$2,"
}

run_case() {   # $1 label, $2 weights, $3 set dir, $4 N, $5 mode (images|cached), $6 E
    local extra
    if [[ $5 == images ]]; then extra="--data cifar10:$3"
    else
        # clean features for feature mode: any (N,E) float32 rows do for timing
        perl -e 'srand(1); print pack("f<*", map { rand() - 0.5 } 1 .. $ARGV[0] * $ARGV[1])' "$4" "$6" |
            npy1 "$3/X.npy" '<f4' "$4, $6"
        extra="--features $3/X.npy"
    fi
    local log="$TMP/log.txt"
    "$BIN" train-centers --weights "$2" --labels "$3/y.npy" --mask "$3/m.npy" --out "$TMP/c.npy" \
        $extra --epochs 1 --batch 32 --warmup-epochs 0 --device cpu --threads "$THREADS" 2> "$log"
    local secs
    secs=$(sed -n 's/.*steps, \([0-9.]*\)s).*/\1/p' "$log" | tail -1)
    printf '%-28s %4d images  %7.2f s  %7.1f img/s\n' "$1" "$4" "$secs" "$(echo "$4 / $secs" | bc -l)"
}

for arch in tiny vit-b-32; do
    W="$TMP/$arch.safetensors"
    "$BIN" init-weights --arch "$arch" --seed 1 --out "$W" 2> /dev/null
    E=$([[ $arch == tiny ]] && echo 32 || echo 512)
    make_set "$TMP/s32" 32
    make_set "$TMP/s128" 128
    run_case "$arch step" "$W" "$TMP/s32" 32 images "$E"
    run_case "$arch epoch (4 steps)" "$W" "$TMP/s128" 128 images "$E"
    run_case "$arch cached (4 steps)" "$W" "$TMP/s128" 128 cached "$E"
done
