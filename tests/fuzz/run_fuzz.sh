#!/usr/bin/env bash
# tests/fuzz/run_fuzz.sh: run every codec fuzzer for a while (CI: 60 s each).
#
#   tests/fuzz/run_fuzz.sh BUILD_DIR [SECONDS]
#
# BUILD_DIR is a build configured with clang, -DLCH_BUILD_FUZZ=ON and
# -DLCH_SANITIZE=address,undefined (the fuzzers are always built with
# -fsanitize=fuzzer,address,undefined). Each fuzzer starts from the committed
# seeds (tests/fuzz/corpus/<target>, read only) and grows a working corpus
# in BUILD_DIR/fuzz-work/<target>; crashes, leaks and timeouts are saved as
# BUILD_DIR/fuzz-work/<target>-artifacts/* and fail the script (add a
# minimised input to the committed corpus as a regression when fixing it).
# The last line per target reports executions per second and corpus size.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=${1:?usage: run_fuzz.sh BUILD_DIR [SECONDS]}
SECONDS_EACH=${2:-60}
status=0

for t in fuzz_decode fuzz_roundtrip; do
    bin="$BUILD/tests/fuzz/$t"
    if [ ! -x "$bin" ]; then
        echo "run_fuzz.sh: $bin not built (LCH_BUILD_FUZZ=ON with clang?)" >&2
        exit 1
    fi
    work="$BUILD/fuzz-work/$t"
    art="$BUILD/fuzz-work/$t-artifacts"
    mkdir -p "$work" "$art"
    log="$BUILD/fuzz-work/$t.log"
    echo "==> $t for ${SECONDS_EACH}s"
    if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
         UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
         "$bin" -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
             -timeout=10 -rss_limit_mb=2048 \
             -dict="$HERE/codec.dict" -artifact_prefix="$art/" \
             "$work" "$HERE/corpus/$t" >"$log" 2>&1; then
        echo "$t FAILED; see $log and $art/" >&2
        tail -n 40 "$log" >&2
        status=1
        continue
    fi
    execs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
    corp=$(sed -E 's/.* corp: ([^ ]+) .*/\1/' <<<"$done_line")
    echo "$t: ${execs} exec/s, corpus ${corp} (units/size), $(ls "$work" | wc -l) files in $work"
done
exit $status
