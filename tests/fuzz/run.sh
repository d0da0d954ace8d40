#!/usr/bin/env bash
# run.sh BUILD SECONDS NAME... — runs each libFuzzer harness BUILD/fuzz/fuzz_NAME for SECONDS
# (one after the other, one job each) from tests/fuzz/corpus/NAME (read only) plus
# BUILD/corpus/NAME (where new inputs go). Prints one line per harness:
#   fuzz NAME: N runs in S s, cov C, ft F, corpus U units
# and on a crash, leak, timeout or UB report the last lines of its log, the artifact path, and
# exits 1 after the remaining harnesses. Logs: BUILD/logs/NAME.log. Extra libFuzzer flags may
# be given in $FUZZ_FLAGS; the long pass (tests/fuzz/README.md) runs with
#   FUZZ_FLAGS="-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1"
# so that one crash does not end it (the crash count then fails the harness at the end).
set -u
B=$1 S=$2
shift 2
mkdir -p "$B/logs" "$B/artifacts"
fail=0
for n in "$@"; do
    bin="$B/fuzz/fuzz_$n"
    if [ ! -x "$bin" ]; then echo "fuzz $n: no harness $bin" >&2; fail=1; continue; fi
    mkdir -p "$B/corpus/$n"
    seeds="tests/fuzz/corpus/$n"
    [ -d "$seeds" ] || seeds=
    log="$B/logs/$n.log"
    before=$(ls "$B/artifacts" | grep -c "^$n-")
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    "$bin" -max_total_time="$S" -timeout=25 -rss_limit_mb=2560 -malloc_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$B/artifacts/$n-" ${FUZZ_FLAGS:-} \
        "$B/corpus/$n" $seeds > "$log" 2>&1
    rc=$?
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    [ -n "$runs" ] || runs=$(echo "$last" | grep -o '^#[0-9]*' | tr -d '#')   # -fork=N output
    bad=$(echo "$last" | grep -o 'oom/timeout/crash: [0-9/]*' | grep -o '[0-9/]*$')
    case "$bad" in ""|0/0/0) ;; *) [ "$rc" = 0 ] && rc=1 ;; esac   # -fork + -ignore_*: counted, exit 0
    # fork mode does not count every kind of child death (UBSan aborts): the artifacts do
    new=$(( $(ls "$B/artifacts" | grep -c "^$n-") - before ))
    [ "$new" -gt 0 ] && [ "$rc" = 0 ] && rc=1
    cov=$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*')
    ft=$(echo "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*')
    units=$(echo "$last" | grep -o 'corp: [0-9]*' | grep -o '[0-9]*')
    if [ $rc -ne 0 ]; then
        echo "fuzz $n: FAILED (exit $rc${bad:+, oom/timeout/crash $bad}, $new new artifacts) after ${runs:-?} runs; log $log" >&2
        grep -E 'ERROR|SUMMARY|runtime error|==[0-9]+==|Test unit written' "$log" | head -20 >&2
        fail=1
    else
        echo "fuzz $n: ${runs:-?} runs in $S s, cov ${cov:-?}, ft ${ft:-?}, corpus ${units:-?} units${bad:+, oom/timeout/crash $bad}"
    fi
done
exit $fail
