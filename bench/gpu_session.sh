#!/usr/bin/env bash
# gpu_session.sh — the GPU session in a few commands: build, GPU tests under compute-sanitizer,
# and the three GPU benchmarks, each stage short enough for one 10-minute device command.
#
#   bash bench/gpu_session.sh [--dry-run] STAGE...
#
# The first GPU window is short (15 minutes of device time in all, start-up included, commands of at
# most 10 minutes), so two plans each fit one device command of under 9 minutes:
#   quick           build (laic + test_gpu only), test_gpu, encoders (laic bf16 WMMA and cuBLAS and
#                   fp32 beside PyTorch eager fp32/bf16, images), the WordNet noun bank, kNN fused
#                   vs exact on 60,000 rows, one training step and one epoch; torch.compile last,
#                   only when the time left covers it
#   deep            build, the headline `laic run configs/cifar10-test.ini` end to end (random
#                   full-size weights, train.enabled=true, stage timings), compute-sanitizer
#                   memcheck + racecheck on a reduced set, the clustering bench vs cuSOLVER/torch,
#                   20 epochs of training with the CUDA graph
# Each step has planned seconds and a timeout; all run under one deadline (BUDGET, 520 s), so
# the command ends in time whatever a step does, and a step that no longer fits is skipped and
# says so. Every step writes a timestamped line to summary.txt, and the plan's results file
# (bench/results/<date>-gpu-quick.md or -gpu-deep.md) is rewritten after every step, so a run
# cut off still tells what it reached. `--dry-run quick` prints the plan with its total.
# DEVICE=cpu runs either plan here on the CPU (tiny model, small sizes) to check the script.
#
# Single stages (the earlier plan, each < 9 min on an H100 with 16 cores):
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
#   all             every single stage above except fetch-deps, in order
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
# BUDGET=520 (quick/deep deadline, s), DEVICE=cuda|cpu (quick/deep), KNN_N=60000,
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
    fetch-deps | build | test | bench-encoders | bench-cluster | bench-train | quick | deep) STAGES+=("$a") ;;
    all) STAGES+=(build test bench-encoders bench-cluster bench-train) ;;
    *) echo "gpu_session: unknown stage '$a' (quick, deep, fetch-deps, build, test, bench-encoders, bench-cluster, bench-train, all; --dry-run)" >&2; exit 2 ;;
    esac
done
[ ${#STAGES[@]} -gt 0 ] || { echo "usage: bash bench/gpu_session.sh [--dry-run] STAGE... (--help)" >&2; exit 2; }
DEVICE=${DEVICE:-cuda}
case "$DEVICE" in cuda | cpu) ;; *) echo "gpu_session: DEVICE must be cuda or cpu" >&2; exit 2 ;; esac
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
    # deep's headline run reads the CIFAR-10 test JPEGs; ../shared is not on the device
    if [ -f ../shared/data/cifar10-test-jpeg.tar ]; then
        x mkdir -p "$DEPS/data" && x cp ../shared/data/cifar10-test-jpeg.tar "$DEPS/data/"
    else
        say "no ../shared/data/cifar10-test-jpeg.tar: deep's headline run will be skipped"
    fi
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

# --- quick and deep: planned steps under one deadline -------------------------------------------
# A step is "name|planned s|timeout s|function|must or if-time". All steps of a plan share one
# deadline (BUDGET seconds from the plan's start): a step's commands get min(its timeout, time
# left) through step_left, a must-step that finds under 15 s left is skipped, an if-time step
# runs only when its whole timeout fits.
BUDGET=${BUDGET:-520}
QUICK_STEPS=(
    "build|110|200|qstep_build|must"
    "test-gpu|70|120|qstep_test_gpu|must"
    "encoders|110|150|qstep_encoders|must"
    "noun-bank|25|50|qstep_noun_bank|must"
    "knn|35|60|qstep_knn|must"
    "train|60|90|qstep_train|must"
    "compile|90|130|qstep_compile|if-time"
)
DEEP_STEPS=(
    "build|110|200|qstep_build|must"
    "headline|180|260|qstep_headline|must"
    "sanitizers|90|120|qstep_sanitizers|must"
    "cluster|70|110|qstep_cluster|must"
    "train-20|50|90|qstep_train20|must"
)
# test_gpu filters for the reduced compute-sanitizer pass: one test per kernel file (memcheck)
# and the kernels that share memory between threads (racecheck)
MEMCHECK_SET=${MEMCHECK_SET:-"gpu_matmul_bf16_wmma gpu_attention gpu_layernorm gpu_im2col gpu_token_embed gpu_backward_attention gpu_cluster_cholesky_and gpu_cluster_kmeans_ops gpu_knn_fused_vs_cpu gpu_train_loss_vs gpu_train_sgd gpu_optim_adam gpu_augment_batch"}
RACECHECK_SET=${RACECHECK_SET:-"gpu_attention gpu_matmul_bf16_wmma gpu_knn_fused_vs_cpu gpu_cluster_cholesky_and gpu_train_loss_vs"}

STEP_END=0
step_left() {   # seconds the current step may still use (at least 1)
    local l=$((STEP_END - $(date +%s)))
    [ $l -lt 1 ] && l=1
    echo $l
}
# xs CMD...: x under the step's remaining time
xs() { xt "$(step_left)" "$@"; }

plan_dry_run() {   # prints the plan; non-zero when its planned seconds exceed the budget
    local name=$1 total=0 must=0 st n p t f k
    shift
    printf '%s plan (DEVICE=%s, deadline %d s after the start):\n' "$name" "$DEVICE" "$BUDGET"
    printf '  %-12s %8s %9s  %s\n' step planned timeout when
    for st in "$@"; do
        IFS='|' read -r n p t f k <<< "$st"
        printf '  %-12s %7ss %8ss  %s\n' "$n" "$p" "$t" "$k"
        total=$((total + p))
        [ "$k" = must ] && must=$((must + p))
    done
    printf '  %-12s %7ss            (must-steps %d s; budget %d s)\n' total "$total" "$must" "$BUDGET"
    [ $total -le "$BUDGET" ] || { echo "  PLAN OVER BUDGET by $((total - BUDGET)) s"; return 1; }
}

# The plan's results file: summary lines, then each step's section, rewritten after every step.
render_plan() {
    [ $DRY = 1 ] && return 0
    {
        echo "# GPU session, $PLAN_NAME plan ($(date -u +%Y-%m-%d))"
        echo
        echo "- command: \`DEVICE=$DEVICE bash bench/gpu_session.sh $PLAN_NAME\`, commit $(git rev-parse --short=12 HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (dirty tree)')"
        if [ "$DEVICE" = cpu ]; then
            echo "- device: CPU ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores) — **DEVICE=cpu: a check of the script with tiny sizes, not GPU figures**"
        else
            echo "- device: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)"
        fi
        echo "- host: $(uname -n), $(nproc) cores; torch $(python3 -c 'import torch; print(torch.__version__)' 2>/dev/null || echo absent)"
        echo
        echo "## Steps"
        echo
        echo '```'
        cat "$PLAN_SUMMARY" 2>/dev/null
        echo '```'
        local f
        for f in "$PLAN_DIR"/section-*.md; do
            [ -f "$f" ] && { echo; cat "$f"; }
        done
    } > "$PLAN_MD.tmp" && mv "$PLAN_MD.tmp" "$PLAN_MD"
}

run_plan() {
    PLAN_NAME=$1
    shift
    if [ $DRY = 1 ]; then plan_dry_run "$PLAN_NAME" "$@"; return; fi
    PLAN_DIR=$LOGDIR/$PLAN_NAME
    rm -rf "$PLAN_DIR" && mkdir -p "$PLAN_DIR"
    PLAN_SUMMARY=$PLAN_DIR/summary.txt
    : > "$PLAN_SUMMARY"
    local suffix=""
    [ "$DEVICE" = cpu ] && suffix=-cpu-check
    PLAN_MD=bench/results/$(date -u +%Y-%m-%d)-gpu-$PLAN_NAME$suffix.md
    RESULTS+=("$PLAN_MD")
    local t0 deadline st n p t f k left rc=0 src s0 el i=0
    ENC_SECTION=""
    t0=$(date +%s)
    deadline=$((t0 + BUDGET))
    for st in "$@"; do
        IFS='|' read -r n p t f k <<< "$st"
        i=$((i + 1))
        left=$((deadline - $(date +%s)))
        if { [ "$k" = if-time ] && [ $left -lt "$t" ]; } || [ $left -lt 15 ]; then
            src="skipped ($left s left, needs $t s)"
        else
            STEP_END=$(($(date +%s) + (t < left ? t : left)))
            s0=$(date +%s)
            say "--- $PLAN_NAME/$n (plan $p s, timeout $((STEP_END - s0)) s) ---"
            STEP_NOTE=""
            SECTION=$PLAN_DIR/section-$(printf %02d $i)-$n.md   # the step's part of the results file
            "$f"
            local r=$?
            el=$(($(date +%s) - s0))
            if [ $r = 0 ]; then src="ok"; else src="FAILED (exit $r)"; rc=1; fi
            [ $(date +%s) -ge $STEP_END ] && src="$src, reached its time limit"
            src="$src in $el s (plan $p s)${STEP_NOTE:+; $STEP_NOTE}"
        fi
        local line="$(date -u +%H:%M:%SZ) $PLAN_NAME/$n: $src"
        echo "$line" >> "$PLAN_SUMMARY"
        summary "$PLAN_NAME/$n: $src"
        render_plan
        collect_plan
    done
    summary "$PLAN_NAME: done in $(($(date +%s) - t0)) s of $BUDGET"
    render_plan
    return $rc
}

# $OUT after every step: summary.txt, the plan's .md, test_gpu.log, logs.tar.gz (a cut-off run
# keeps what it reached)
collect_plan() {
    [ -n "${OUT:-}" ] || return 0
    mkdir -p "$OUT"
    cp "$SUMMARY" "$OUT/summary.txt" 2>/dev/null
    cp "$PLAN_MD" "$OUT/" 2>/dev/null
    [ -f "$LOGDIR/test_gpu.log" ] && cp "$LOGDIR/test_gpu.log" "$OUT/"
    local tmp f
    tmp=$(mktemp -d)
    for f in "$LOGDIR"/*.log "$PLAN_DIR"/*; do [ -f "$f" ] && tail -c 4000000 "$f" > "$tmp/$(basename "$f")"; done
    tar -czf "$OUT/logs.tar.gz" -C "$tmp" . 2>/dev/null
    rm -rf "$tmp"
}

# --- the steps ---------------------------------------------------------------------------------
# Model sizes per DEVICE: the GPU runs the real sizes; DEVICE=cpu the tiny model, small batches.
if [ "$DEVICE" = cpu ]; then
    ARCH=tiny PREC_FAST=fp32 IMG_B=8 ITERS=2 WARM=1 KNN_N=${KNN_N:-3000} TRAIN_N=96 TH="--threads 2"
else
    ARCH=vit-b-32 PREC_FAST=bf16 IMG_B=256 ITERS=10 WARM=2 KNN_N=${KNN_N:-60000} TRAIN_N=10000 TH=""
fi
WEIGHTS_Q=$LOGDIR/vit_random.safetensors   # shared by the steps of one plan
# weights for the noun bank and the headline run: those of the encoder table on the GPU; the
# tiny model on the CPU check (the full-size text tower runs ~8 prompts/s on 2 cores)
run_weights() {
    local w=$WEIGHTS_Q
    [ "$DEVICE" = cpu ] && w=$LOGDIR/tiny_random.safetensors
    [ -f "$w" ] || "$LAIC" init-weights --arch "$ARCH" --seed 0 --out "$w" > /dev/null
    echo "$w"
}

qstep_build() {
    [ "$DEVICE" = cuda ] && x nvidia-smi
    x nvcc --version
    local targets="$BUILD/laic $BUILD/bench/bench_text_backward"
    command -v nvcc > /dev/null && targets="$targets $BUILD/test_gpu"
    [ "$PLAN_NAME" = deep ] && targets="$targets $BUILD/bench/bench_cluster_gpu"
    local cuda=1
    [ "$DEVICE" = cpu ] && cuda=auto
    xs make BUILD="$BUILD" CUDA=$cuda -j"$JOBS" $targets
}

qstep_test_gpu() {
    local tl=$LOGDIR/test_gpu.log rc
    if [ ! -x "$BUILD/test_gpu" ]; then STEP_NOTE="no $BUILD/test_gpu (CPU-only build)"; return 0; fi
    echo "+ $BUILD/test_gpu > $tl" | tee -a "$LOG"
    LAIC_BIN=$LAIC timeout --kill-after=5 "$(step_left)" "$BUILD/test_gpu" > "$tl" 2>&1
    rc=$?
    tail -5 "$tl" | tee -a "$LOG"
    if [ $rc = 77 ]; then STEP_NOTE="waived: no CUDA device"; return 0; fi
    STEP_NOTE="$(counts "$tl")$(grep -a '^\[ *FAIL' "$tl" | tr -s ' ' | tr '\n' ';' | sed 's/^/; /')"
    { echo "## test_gpu"; echo; echo "$STEP_NOTE"; } > "$SECTION"
    return $rc
}

# The encoder table: PyTorch eager (which also writes the random-init ViT-B/32 laic loads) and
# laic on the same weights; JSON lines in $PLAN_DIR/encoders.jsonl, rendered into the section of
# the first step that wrote any (the noun bank and torch.compile add rows to it).
enc_section() {
    [ -n "$ENC_SECTION" ] || ENC_SECTION=$SECTION
    {
        echo "## Encoders (random-init ViT-B/32 unless DEVICE=cpu; images batch $IMG_B, median of $ITERS after $WARM warm-up)"
        echo
        python3 bench/encoders_table.py "$PLAN_DIR/encoders.jsonl" 2>&1
    } > "$ENC_SECTION"
}
qstep_encoders() {
    local js=$PLAN_DIR/encoders.jsonl dev=$DEVICE
    : > "$js"
    local torch_ok=1 p
    python3 -c 'import sys, torch, transformers; sys.exit(0 if sys.argv[1] == "cpu" or torch.cuda.is_available() else 1)' "$DEVICE" 2>/dev/null || torch_ok=0
    if [ $torch_ok = 1 ]; then
        local precs=fp32,bf16
        [ "$DEVICE" = cpu ] && precs=fp32
        xj "$js" "$(step_left)" python3 bench/bench_encoders.py --device "$dev" ${TH:+--threads 2} \
            --modes eager --precisions $precs --benches encode-images --image-batch "$IMG_B" \
            --iters "$ITERS" --warmup "$WARM" --save-weights "$WEIGHTS_Q"
    else
        STEP_NOTE="no torch with CUDA here: laic only"
    fi
    [ -f "$WEIGHTS_Q" ] || xs "$LAIC" init-weights --arch vit-b-32 --seed 0 --out "$WEIGHTS_Q" > /dev/null
    local paths="fp32/cublas bf16/cublas bf16/wmma"
    [ "$DEVICE" = cpu ] && paths="fp32/cublas"
    for p in $paths; do
        set -- ${p/\// }
        xj "$js" "$(step_left)" "$LAIC" bench encode-images --weights "$WEIGHTS_Q" --device "$dev" $TH \
            --precision "$1" --gemm "$2" --batch "$IMG_B" --iters "$ITERS" --warmup "$WARM"
    done
    enc_section
    ! grep -q '"error"' "$js"
}

qstep_noun_bank() {
    local js=$PLAN_DIR/encoders.jsonl lim=""
    [ "$DEVICE" = cpu ] && lim="--limit 2048"
    xj "$js" "$(step_left)" "$LAIC" bench encode-text --weights "$(run_weights)" --device "$DEVICE" $TH \
        --precision "$PREC_FAST" --noun-bank --batch 1024 --warmup 1 $lim
    local rc=$?
    enc_section
    return $rc
}

# kNN on KNN_N random unit rows of width 512: the exact fp32 path and the fused bf16 kernel
# (GPU), wall time of each CLI call and the overlap of the two neighbour lists.
qstep_knn() {
    local d=$PLAN_DIR/knn rc=0 t0 t1 te tf=""
    mkdir -p "$d"
    xs python3 -c 'import sys, numpy as np
n = int(sys.argv[2]); x = np.random.default_rng(0).standard_normal((n, 512)).astype(np.float32)
x /= np.linalg.norm(x, axis=1, keepdims=True); np.save(sys.argv[1], x)' "$d/X.npy" "$KNN_N" || return 1
    t0=$(date +%s.%N)
    xs "$LAIC" knn --in "$d/X.npy" --k 10 --out "$d/exact.npy" --device "$DEVICE" --precision fp32 || rc=1
    t1=$(date +%s.%N)
    te=$(printf %.2f "$(echo "$t1 - $t0" | bc)")
    if [ "$DEVICE" = cuda ]; then
        t0=$(date +%s.%N)
        xs "$LAIC" knn --in "$d/X.npy" --k 10 --out "$d/fused.npy" --device cuda --precision bf16 || rc=1
        t1=$(date +%s.%N)
        tf=$(printf %.2f "$(echo "$t1 - $t0" | bc)")
    fi
    local agree="(no fused run)"
    [ -f "$d/fused.npy" ] && agree=$(python3 -c 'import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
same = np.mean([len(set(r) & set(s)) / len(r) for r, s in zip(a, b)])
print(f"mean overlap of the top-10 lists {100 * same:.3f} %, identical rows {100 * np.mean((a == b).all(1)):.2f} %")' "$d/exact.npy" "$d/fused.npy" 2>&1)
    {
        echo "## kNN, $KNN_N × 512 random unit rows, k = 10 (wall time of the CLI call, .npy I/O included)"
        echo
        echo "| path | wall s |"
        echo "| --- | --- |"
        echo "| exact fp32 (\`laic knn --device $DEVICE --precision fp32\`) | $te |"
        [ -n "$tf" ] && echo "| fused bf16 GEMM + top-k, exact re-rank (\`--precision bf16\`) | $tf |"
        echo
        echo "fused vs exact: $agree"
    } > "$SECTION"
    rm -f "$d"/*.npy
    return $rc
}

# train.sh cases via bench/bench_gpu_train.sh; its own markdown is included as this section.
train_bench() {   # CASES N EPOCHS
    local md=$PLAN_DIR/train-$1.md
    xs env DEVICE="$DEVICE" CASES="$1" N="$2" EPOCHS="$3" LAIC_BIN="$LAIC" \
        BWD_BIN="$BUILD/bench/bench_text_backward" OUT="$md" bash bench/bench_gpu_train.sh
    local rc=$?
    [ -f "$md" ] && sed 's/^# /## /' "$md" > "$SECTION"
    return $rc
}
qstep_train() { train_bench step,graph "$TRAIN_N" 1; }
qstep_train20() {
    local n=50000 e=20
    [ "$DEVICE" = cpu ] && n=96 e=2
    train_bench graph $n $e
}

qstep_compile() {
    local js=$PLAN_DIR/encoders.jsonl
    [ "$DEVICE" = cpu ] && { STEP_NOTE="torch.compile is not run on the CPU check"; return 0; }
    xj "$js" "$(step_left)" python3 bench/bench_encoders.py --device cuda --modes compile \
        --precisions bf16 --benches encode-images --image-batch "$IMG_B" --iters "$ITERS" --warmup "$WARM"
    local rc=$?
    enc_section
    return $rc
}

# The headline: `laic run configs/cifar10-test.ini` end to end on random full-size weights with
# prompt learning, the CIFAR-10 test JPEGs carried in build-deps/data (fetch-deps).
qstep_headline() {
    local tar=$DEPS/data/cifar10-test-jpeg.tar data=$PLAN_DIR/data rd=$PLAN_DIR/headline-run
    [ -f "$tar" ] || [ ! -f ../shared/data/cifar10-test-jpeg.tar ] || tar=../shared/data/cifar10-test-jpeg.tar
    [ -f "$tar" ] || { STEP_NOTE="no $tar (run fetch-deps with ../shared beside the checkout)"; return 1; }
    mkdir -p "$data" && xs tar -xf "$tar" -C "$data" || return 1
    local over="model.weights=$(run_weights) model.device=$DEVICE model.precision=$PREC_FAST train.enabled=true run.dir=$rd run.cache_dir=$PLAN_DIR/cache"
    [ "$DEVICE" = cpu ] && over="$over data.subsample=300 nouns.subset=3000 train.epochs=1 centers.k=8"
    rm -rf "$rd" "$rd.partial"
    xs "$LAIC" run configs/cifar10-test.ini data.path="$data/cifar10-test" $over
    local rc=$?
    {
        echo "## Headline: \`laic run configs/cifar10-test.ini\` (random weights, train.enabled=true)"
        echo
        echo "overrides: \`$over\`"
        echo
        if [ -f "$rd/report.json" ]; then
            python3 - "$rd/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("| stage | seconds |")
print("| --- | --- |")
for k, v in r.get("timings_s", {}).items():
    print(f"| {k} | {v:.2f} |")
print()
print("| method | NMI | ACC | ARI |")
print("| --- | --- | --- | --- |")
for k, v in r.get("methods", {}).items():
    if "nmi" in v:
        print(f"| {k} | {100 * v['nmi']:.1f} | {100 * v['acc']:.1f} | {100 * v['ari']:.1f} |")
print()
print("(random weights: the metrics only show that every stage ran)")
PY
        else
            echo "no report.json (exit $rc); the end of the log:"
            echo '```'
            tail -20 "$LOG"
            echo '```'
        fi
    } > "$SECTION"
    return $rc
}

qstep_sanitizers() {
    if [ ! -x "$BUILD/test_gpu" ] || [ "$DEVICE" = cpu ]; then
        STEP_NOTE="no GPU: compute-sanitizer skipped"
        return 0
    fi
    local f l rc=0 lines=()
    for f in $MEMCHECK_SET; do
        l=$LOGDIR/memcheck-$f.log
        LAIC_BIN=$LAIC timeout --kill-after=5 "$(step_left)" compute-sanitizer --tool memcheck \
            --leak-check full --report-api-errors no --error-exitcode 99 --print-limit 20 \
            "$BUILD/test_gpu" "$f" > "$l" 2>&1
        local r=$?
        lines+=("| memcheck | $f | $r | $(grep -a -m1 'ERROR SUMMARY' "$l" || echo 'no summary') |")
        [ $r = 0 ] || [ $r = 77 ] || rc=1
    done
    for f in $RACECHECK_SET; do
        l=$LOGDIR/racecheck-$f.log
        LAIC_BIN=$LAIC timeout --kill-after=5 "$(step_left)" compute-sanitizer --tool racecheck \
            --racecheck-report all --error-exitcode 99 --print-limit 20 "$BUILD/test_gpu" "$f" > "$l" 2>&1
        local r=$?
        lines+=("| racecheck | $f | $r | $(grep -a -m1 'ERROR SUMMARY\|RACECHECK SUMMARY' "$l" || echo 'no summary') |")
        [ $r = 0 ] || [ $r = 77 ] || rc=1
    done
    { echo "## compute-sanitizer (reduced set)"; echo; echo "| tool | test filter | exit | summary |"; echo "| --- | --- | --- | --- |"; printf '%s\n' "${lines[@]}"; } > "$SECTION"
    return $rc
}

qstep_cluster() {
    local md=$PLAN_DIR/cluster.md args=() b="BUILD=$BUILD"
    # the CPU check builds its own CPU-only tree (build-cpu-bench), never a CUDA=0 build in $BUILD
    [ "$DEVICE" = cpu ] && args=(--cpu 3000) b=BUILD=build-cpu-bench
    xs env "$b" OUT="$md" bash bench/bench_gpu_cluster.sh "${args[@]}"
    local rc=$?
    [ -f "$md" ] && sed 's/^# /## /' "$md" > "$SECTION"
    return $rc
}

stage_quick() { run_plan quick "${QUICK_STEPS[@]}"; }
stage_deep() { run_plan deep "${DEEP_STEPS[@]}"; }

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
