#!/usr/bin/env bash
# gpu_session.sh — the GPU session in a few commands: build, GPU tests under compute-sanitizer,
# and the three GPU benchmarks, each stage short enough for one 10-minute device command.
#
#   bash bench/gpu_session.sh [--dry-run] STAGE...
#
# Stages (each < 9 min on an H100 with 16 cores; every command has its own timeout):
#   fetch-deps      (HERE, on a machine with apt) downloads the Debian packages laic builds
#                   against (+ wordnet-base, pkgconf) and the BPE vocabulary into build-deps/
#                   (git-ignored, ~21 MB): pass `carry: ["build-deps"]` to the device's run.
#   build           nvidia-smi, nvcc --version, then make BUILD=build-cuda CUDA=1 -j16 all bench
#                   and build-cuda/test_gpu
#   test            build-cuda/test_gpu (what `make test-gpu` runs, but keeping its exit status:
#                   77 = no device, waived), then compute-sanitizer memcheck over all of it and
#                   racecheck over the shared-memory kernels' tests (attention, wmma matmul,
#                   knn, cholesky)
#   bench-encoders  bench/bench_gpu_encoders.sh (laic vs PyTorch, needs `import torch` with
#                   CUDA); without torch: laic-only figures (random-init ViT-B/32, --arch), and
#                   the file says why; then the WordNet noun bank with laic
#   bench-cluster   bench/bench_gpu_cluster.sh (laic's CUDA clustering vs cuSOLVER/torch)
#   bench-train     bench/bench_gpu_train.sh (laic training step, 20 epochs graph on/off, the
#                   PyTorch loop, text backward)
#   all             every stage above except fetch-deps, in order
#
# A failing stage never stops the stages after it. Each stage appends one line to the summary
# and copies what it made into $OUT when $OUT is set (the device tool brings back at most 8 files:
# summary.txt, <stage>.log and the stage's results .md; everything else in logs.tar.gz).
# --dry-run prints the commands instead of running them.
#
# Missing build dependencies on the device (its image has CUDA, PyTorch, no Debian -dev
# packages and no network): when pkg-config cannot find them and build-deps/debs exists, the
# .debs are unpacked into /tmp/laic-deps-root (DEPS_ROOT; dpkg -x, never into /, never into the
# carried tree) and pkg-config, the compiler, the linker and the loader are pointed there
# (PKG_CONFIG_LIBDIR + PKG_CONFIG_SYSROOT_DIR, LIBRARY_PATH, LD_LIBRARY_PATH, LAIC_VOCAB).
#
# Knobs (environment): BUILD=build-cuda, JOBS=nproc, DEPS=build-deps, LOGDIR=$BUILD/session,
# T_TEST=180 T_MEMCHECK=300 T_RACE=60 (seconds per racecheck filter), T_ENC=420 T_BANK=100
# T_CLUSTER=500 T_TRAIN=500, RACE_FILTERS="attention wmma knn cholesky", FORCE_DEPS=1 (use
# build-deps even when the system has the packages: to check it on a machine that has them).
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${BUILD:-build-cuda}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 4)}
DEPS=${DEPS:-build-deps}
LOGDIR=${LOGDIR:-$BUILD/session}
RACE_FILTERS=${RACE_FILTERS:-attention wmma knn cholesky}
LAIC=$BUILD/laic
DRY=0
STAGES=()
for a in "$@"; do
    case "$a" in
    --dry-run) DRY=1 ;;
    -h | --help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    fetch-deps | build | test | bench-encoders | bench-cluster | bench-train) STAGES+=("$a") ;;
    all) STAGES+=(build test bench-encoders bench-cluster bench-train) ;;
    *) echo "gpu_session: unknown stage '$a' (fetch-deps, build, test, bench-encoders, bench-cluster, bench-train, all; --dry-run)" >&2; exit 2 ;;
    esac
done
[ ${#STAGES[@]} -gt 0 ] || { echo "usage: bash bench/gpu_session.sh [--dry-run] STAGE... (--help)" >&2; exit 2; }
[ $DRY = 1 ] && LOGDIR=$(mktemp -d)   # a dry run leaves nothing behind in the tree
mkdir -p "$LOGDIR"
SUMMARY=$LOGDIR/summary.txt
LOG=/dev/null   # the current stage's log

say() { echo "$*" | tee -a "$LOG"; }
# x CMD...: prints and logs the command, runs it (output to the stage log and the terminal);
# returns its status. In a dry run only prints.
x() {
    echo "+ $*" | tee -a "$LOG" >&2
    [ $DRY = 1 ] && return 0
    "$@" 2>&1 | tee -a "$LOG"
    return "${PIPESTATUS[0]}"
}
# xt SECONDS CMD...: x under a timeout (status 124 when it ran out)
xt() {
    local s=$1
    shift
    x timeout --kill-after=10 "$s" "$@"
}
# xj FILE SECONDS CMD...: runs CMD under a timeout, its stdout (JSON lines) appended to FILE,
# its stderr to the stage log and the terminal; on failure a JSON line with the error goes to FILE
xj() {
    local f=$1 s=$2
    shift 2
    echo "+ $* >> $f" | tee -a "$LOG" >&2
    [ $DRY = 1 ] && return 0
    timeout --kill-after=10 "$s" "$@" >> "$f" 2> >(tee -a "$LOG" >&2)
    local rc=$?
    [ $rc = 0 ] || echo "{\"error\": \"exit $rc\", \"command\": \"$*\"}" >> "$f"
    return $rc
}
summary() {
    if [ $DRY = 1 ]; then echo "(dry run) $*"; else echo "$(date -u +%H:%M:%SZ) $*" | tee -a "$SUMMARY"; fi
}

# --- dependencies --------------------------------------------------------------------------
PKGS="inih libcjson libjpeg libpng zlib openblas"
DEBS="libinih-dev libinih1 libinireader0 libcjson-dev libcjson1 libjpeg62-turbo-dev
      libjpeg62-turbo libpng-dev libpng16-16 zlib1g-dev libopenblas-dev libopenblas-openmp-dev
      libopenblas0-openmp libgfortran5 zlib1g wordnet-base pkgconf pkgconf-bin libpkgconf3"

stage_fetch_deps() {
    if [ $DRY = 1 ]; then
        echo "+ mkdir -p $DEPS/debs && cd $DEPS/debs && apt-get download" $DEBS
    else
        mkdir -p "$DEPS/debs" && (cd "$DEPS/debs" && x apt-get download $DEBS) || return 1
    fi
    local v=""
    for c in assets/bpe_simple_vocab_16e6.txt.gz ../shared/assets/bpe_simple_vocab_16e6.txt.gz; do
        [ -f "$c" ] && { v=$c; break; }
    done
    [ -n "$v" ] && x cp "$v" "$DEPS/" || say "no BPE vocabulary found (make setup): noun-bank benches will fail"
    [ $DRY = 1 ] || summary "fetch-deps: $(ls "$DEPS"/debs/*.deb | wc -l) packages, $(du -sh "$DEPS" | cut -f1) in $DEPS: pass carry [\"$DEPS\"] to the device's run"
}

# Points the build and the binaries at the unpacked packages when the system lacks them.
use_deps() {
    local R=${DEPS_ROOT:-/tmp/laic-deps-root} MA=x86_64-linux-gnu   # outside the tree: never carried
    [ -f "$ROOT/$DEPS/bpe_simple_vocab_16e6.txt.gz" ] && [ -z "${LAIC_VOCAB:-}" ] &&
        export LAIC_VOCAB=$ROOT/$DEPS/bpe_simple_vocab_16e6.txt.gz
    if [ "${FORCE_DEPS:-0}" = 0 ] && command -v pkg-config >/dev/null &&
        pkg-config --exists $PKGS 2>/dev/null; then return 0; fi
    if [ ! -d "$ROOT/$DEPS/debs" ]; then
        say "build dependencies missing and no $DEPS/debs: run 'bash bench/gpu_session.sh fetch-deps' where apt works and carry $DEPS"
        return 1
    fi
    if [ ! -f "$R/.unpacked" ]; then
        say "unpacking $DEPS/debs into $R (dpkg -x)"
        [ $DRY = 1 ] || { mkdir -p "$R" && for d in "$ROOT/$DEPS"/debs/*.deb; do dpkg -x "$d" "$R" || return 1; done; } || return 1
        # absolute links (libz.so -> /lib/.../libz.so.1.2.13) would point into the device's own
        # /lib, where that version need not exist: point them at the unpacked copy
        local l t
        [ $DRY = 1 ] || while IFS= read -r l; do
            t=$(readlink "$l")
            case "$t" in /*) [ -e "$R$t" ] && ln -sfn "$R$t" "$l" ;; esac
        done < <(find "$R" -type l)
        [ $DRY = 1 ] || touch "$R/.unpacked"
    fi
    export PATH=$R/usr/bin:$PATH
    export LD_LIBRARY_PATH=$R/usr/lib/$MA/openblas-openmp:$R/usr/lib/$MA${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    export PKG_CONFIG_LIBDIR=$R/usr/lib/$MA/openblas-openmp/pkgconfig:$R/usr/lib/$MA/pkgconfig:$R/usr/share/pkgconfig
    export PKG_CONFIG_SYSROOT_DIR=$R
    # the libraries' own dependencies (libgfortran, libgomp) resolve at link time from here
    export LIBRARY_PATH=$R/usr/lib/$MA${LIBRARY_PATH:+:$LIBRARY_PATH}
    # WordNet's default path (/usr/share/wordnet/data.noun) on a bare, throwaway device machine
    if [ ! -e /usr/share/wordnet ] && [ -w /usr/share ] && [ -d "$R/usr/share/wordnet" ]; then
        [ $DRY = 1 ] || ln -s "$R/usr/share/wordnet" /usr/share/wordnet
    fi
    say "using unpacked dependencies in $R"
}

# --- stages --------------------------------------------------------------------------------
stage_build() {
    x nvidia-smi
    x nvcc --version
    x make BUILD="$BUILD" CUDA=1 -j"$JOBS" all bench "$BUILD/test_gpu"
    local rc=$?
    [ $rc = 0 ] && summary "build: ok ($LAIC, $BUILD/test_gpu, $BUILD/bench/)" ||
        summary "build: FAILED (make exit $rc; see build.log)"
    return $rc
}

# cnt PATTERN FILE: number of matching lines (0 when none or no file)
cnt() {
    local c
    c=$(grep -a -c -- "$1" "$2" 2>/dev/null)
    echo "${c:-0}"
}

# pass/fail counts from a test log ("N passed, N failed, N skipped")
counts() { grep -a -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -1; }

stage_test() {
    [ -x "$BUILD/test_gpu" ] || [ $DRY = 1 ] || { summary "test: no $BUILD/test_gpu (run the build stage)"; return 1; }
    local tl=$LOGDIR/test_gpu.log rc
    echo "+ LAIC_BIN=$LAIC timeout ${T_TEST:-180} $BUILD/test_gpu > $tl" | tee -a "$LOG"
    if [ $DRY = 1 ]; then
        rc=0
    else
        LAIC_BIN=$LAIC timeout --kill-after=10 "${T_TEST:-180}" "$BUILD/test_gpu" > "$tl" 2>&1
        rc=$?
        tee -a "$LOG" < "$tl"
    fi
    if [ $rc = 77 ]; then
        summary "test: waived (exit 77: no CUDA device); sanitizers skipped"
        return 0
    fi
    local res="test_gpu exit $rc: $(counts "$tl" 2>/dev/null)"
    [ $rc = 124 ] && res="$res TIMEOUT after ${T_TEST:-180} s"
    local fails
    fails=$(grep -a '^\[ *FAIL' "$tl" 2>/dev/null | tr -s ' ' | tr '\n' ';')
    # memcheck over everything: out-of-bounds and misaligned accesses, leaks of device memory.
    # API errors are not reported: the OOM test provokes one on purpose, and laic checks every
    # CUDA call itself (cudaCheck exits on an unexpected one, which fails the run anyway)
    local ml=$LOGDIR/memcheck.log mrc
    echo "+ compute-sanitizer --tool memcheck --leak-check full --report-api-errors no --error-exitcode 99 $BUILD/test_gpu > $ml" | tee -a "$LOG"
    if [ $DRY = 1 ]; then mrc=0; else
        LAIC_BIN=$LAIC timeout --kill-after=10 "${T_MEMCHECK:-300}" compute-sanitizer --tool memcheck \
            --leak-check full --report-api-errors no --error-exitcode 99 --print-limit 50 \
            "$BUILD/test_gpu" > "$ml" 2>&1
        mrc=$?
        tail -40 "$ml" | tee -a "$LOG"
    fi
    res="$res; memcheck exit $mrc ($(grep -a -m1 'ERROR SUMMARY' "$ml" 2>/dev/null || echo 'no summary'))"
    [ $mrc = 124 ] && res="$res TIMEOUT after ${T_MEMCHECK:-300} s at $(grep -a '^\[ RUN' "$ml" | tail -1)"
    # racecheck on the kernels that share memory between threads, one filter at a time
    local f rl rrc bad=0
    for f in $RACE_FILTERS; do
        rl=$LOGDIR/racecheck-$f.log
        echo "+ compute-sanitizer --tool racecheck --error-exitcode 99 $BUILD/test_gpu $f > $rl" | tee -a "$LOG"
        [ $DRY = 1 ] && continue
        LAIC_BIN=$LAIC timeout --kill-after=10 "${T_RACE:-60}" compute-sanitizer --tool racecheck \
            --racecheck-report all --error-exitcode 99 --print-limit 50 "$BUILD/test_gpu" "$f" > "$rl" 2>&1
        rrc=$?
        tail -15 "$rl" | tee -a "$LOG"
        res="$res; racecheck $f exit $rrc ($(grep -a -m1 'ERROR SUMMARY\|RACECHECK SUMMARY' "$rl" || echo 'no summary'))"
        [ $rrc = 0 ] || bad=1
    done
    summary "test: $res${fails:+; failed: $fails}"
    [ $rc = 0 ] && [ $mrc = 0 ] && [ $bad = 0 ]
}

stage_bench_encoders() {
    local md=bench/results/$(date -u +%Y-%m-%d)-encoders-gpu.md torch_err
    torch_err=$(python3 -c 'import torch, transformers; assert torch.cuda.is_available(), "torch.cuda.is_available() is False"' 2>&1 | tail -1)
    if [ $DRY = 1 ] || [ -z "$torch_err" ]; then
        # laic vs PyTorch; the noun bank separately below (its own timeout)
        xt "${T_ENC:-420}" env BUILD="$BUILD" SKIP_BANK=1 bash bench/bench_gpu_encoders.sh "$md"
        local rc=$?
        summary "bench-encoders: bench_gpu_encoders.sh exit $rc -> $md ($(cnt '^| ' "$md") table lines, $(cnt FAILED "$md") FAILED)"
    else
        md=bench/results/$(date -u +%Y-%m-%d)-encoders-gpu-laic-only.md
        say "import torch failed ($torch_err): laic-only figures"
        local js=$LOGDIR/encoders.jsonl p set
        : > "$js"
        for p in fp32/cublas tf32/cublas bf16/cublas bf16/wmma; do
            set -- ${p/\// }
            local C="--arch vit-b-32 --device cuda --precision $1 --gemm $2 --iters 20 --warmup 3"
            xj "$js" 90 "$LAIC" bench encode-images $C --batch 256
            xj "$js" 90 "$LAIC" bench encode-text $C --batch 1024 --seq-len 77
            xj "$js" 60 "$LAIC" bench encode-text $C --batch 1024 --seq-len 12
        done
        [ $DRY = 1 ] || {
            echo "# Encoder benchmark: laic only (PyTorch unavailable) on $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)"
            echo
            echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); commit $(git rev-parse --short=12 HEAD 2>/dev/null)"
            echo "- PyTorch comparison skipped: \`import torch, transformers\` with CUDA failed: $torch_err"
            echo "- model: random-init ViT-B/32 (laic bench --arch vit-b-32, seed 0); batches 256 images / 1024 prompts; median of 20 after 3 warm-up"
            echo
            echo '```'
            cat "$js"
            echo '```'
        } > "$md"
        summary "bench-encoders: laic only (no torch: $torch_err) -> $md ($(cnt items_per_s "$js") figures, $(cnt '"error"' "$js") failed)"
    fi
    # the whole WordNet noun bank (146,347 nouns x 7 templates) with laic, fp32 and bf16
    local bank=$LOGDIR/noun-bank.jsonl brc=0
    : > "$bank"
    for p in fp32 bf16; do
        xj "$bank" "${T_BANK:-100}" "$LAIC" bench encode-text --arch vit-b-32 --device cuda \
            --precision $p --noun-bank --batch 1024 --warmup 2 || brc=1
    done
    [ $DRY = 1 ] || { echo; echo "## Noun bank (laic, random-init ViT-B/32)"; echo; echo '```'; cat "$bank"; echo '```'; } >> "$md"
    summary "bench-encoders: noun bank $([ $brc = 0 ] && echo ok || echo FAILED) ($(grep -o '"seconds_encode":[^,]*' "$bank" 2>/dev/null | tr '\n' ' '))"
    RESULTS+=("$md")
}

stage_bench_cluster() {
    local md=bench/results/$(date -u +%Y-%m-%d)-cluster-gpu.md
    xt "${T_CLUSTER:-500}" env BUILD="$BUILD" OUT="$md" bash bench/bench_gpu_cluster.sh
    local rc=$?
    summary "bench-cluster: exit $rc -> $md ($(cnt '^\[exit 0' "$md") steps ok, $(cnt '^\[exit [1-9]' "$md") failed)"
    RESULTS+=("$md")
    return $rc
}

stage_bench_train() {
    if [ ! -f bench/bench_gpu_train.sh ]; then
        summary "bench-train: skipped (bench/bench_gpu_train.sh does not exist)"
        return 0
    fi
    local md=bench/results/$(date -u +%Y-%m-%d)-train-gpu.md
    xt "${T_TRAIN:-500}" env LAIC_BIN="$LAIC" BWD_BIN="$BUILD/bench/bench_text_backward" OUT="$md" \
        bash bench/bench_gpu_train.sh
    local rc=$?
    RESULTS+=("$md")
    summary "bench-train: exit $rc -> $md ($( [ -f "$md" ] && echo written || echo 'not written'))"
    return $rc
}

# Copies into $OUT what comes back (the device tool returns at most 8 files): summary.txt and
# logs.tar.gz always (every log and result of the session so far, each capped at 4 MB), then
# this stage's results and log while fewer than 8 files are there.
collect() {
    [ -n "${OUT:-}" ] && [ $DRY = 0 ] || return 0
    mkdir -p "$OUT"
    cp "$SUMMARY" "$OUT/summary.txt" 2>/dev/null
    local f
    for f in "${RESULTS[@]}" "$LOG"; do
        [ -f "$f" ] || continue
        if [ -e "$OUT/$(basename "$f")" ] || [ "$(ls "$OUT" | grep -v -c '^logs.tar.gz$')" -lt 7 ]; then
            cp "$f" "$OUT/"
        fi
    done
    local tmp
    tmp=$(mktemp -d)
    for f in "$LOGDIR"/* "${ALL_RESULTS[@]}"; do
        [ -f "$f" ] && tail -c 4000000 "$f" > "$tmp/$(basename "$f")"
    done
    tar -czf "$OUT/logs.tar.gz" -C "$tmp" . 2>/dev/null
    rm -rf "$tmp"
}

status=0
ALL_RESULTS=()
for s in "${STAGES[@]}"; do
    LOG=$LOGDIR/$s.log
    : > "$LOG"
    RESULTS=()
    say "=== $s ($(date -u +%Y-%m-%dT%H:%M:%SZ)) ==="
    if [ "$s" != fetch-deps ] && ! use_deps; then
        summary "$s: FAILED (build dependencies missing)"
        status=1
        collect
        continue
    fi
    t0=$(date +%s)
    "stage_${s//-/_}" || status=1
    ALL_RESULTS+=("${RESULTS[@]}")
    say "=== $s done in $(($(date +%s) - t0)) s ==="
    collect
done
if [ $DRY = 1 ]; then
    rm -rf "$LOGDIR"
else
    echo
    echo "--- summary ($SUMMARY) ---"
    cat "$SUMMARY" 2>/dev/null
fi
exit $status
