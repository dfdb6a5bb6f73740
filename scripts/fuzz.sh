#!/bin/sh
# Fuzzes one of siamesed's input parsers with libFuzzer under ASan + UBSan.
#
#   scripts/fuzz.sh TARGET [SECONDS] [LIBFUZZER-ARGS...]   fuzz TARGET (default 600 s)
#   scripts/fuzz.sh --minimize TARGET CRASH-FILE           shrink a finding, print its path
#   scripts/fuzz.sh --setup                                only configure and build
#
# TARGET is one of img, request, safetensors, idx, config, route (tests/fuzz/fuzz_TARGET.c).
# The build directory (FUZZ_BUILD, default build-fuzz) is set up on first use with
#   CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
# The in-tree seeds (tests/fuzz/corpus/TARGET) are read, never written: new
# interesting inputs go to FUZZ_WORK/TARGET/corpus (default /tmp/siamese-fuzz),
# findings to FUZZ_WORK/TARGET/artifacts, the log to FUZZ_WORK/TARGET/fuzz.log.
# tests/fuzz/TARGET.dict, where present, is given to libFuzzer as -dict.
# A finding that matters is minimised (--minimize), copied into the seed corpus
# as tests/fuzz/corpus/TARGET/crash-<what>, and fixed.
# Exit status: 0 when the run ended with no finding, 1 when it left one, 2 on misuse.
# The machine has 2 cores: run at most two of these at once.
set -eu
cd "$(dirname "$0")/.."
build=${FUZZ_BUILD:-build-fuzz}
work=${FUZZ_WORK:-/tmp/siamese-fuzz}
targets="img png request safetensors idx config route"

usage() {
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

setup() {
    if ! command -v clang >/dev/null 2>&1; then
        echo "fuzz.sh: clang is needed (apt-get install clang)" >&2
        exit 2
    fi
    if [ ! -f "$build/build.ninja" ]; then
        CC=clang meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined \
            -Db_lundef=false >"$build.setup.log" 2>&1 || {
            cat "$build.setup.log" >&2
            exit 2
        }
        rm -f "$build.setup.log"
    fi
}

build_target() {
    case " $targets " in *" $1 "*) ;; *) echo "fuzz.sh: unknown target '$1' ($targets)" >&2; exit 2 ;; esac
    ninja -C "$build" "tests/fuzz/fuzz_$1" >/dev/null
}

# Sanitizer reports end the run; leaks are findings like crashes.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

[ $# -ge 1 ] || usage
case "$1" in
--setup)
    setup
    ninja -C "$build" $(for t in $targets; do printf 'tests/fuzz/fuzz_%s ' "$t"; done) >/dev/null
    echo "fuzz.sh: built $targets in $build"
    exit 0
    ;;
--minimize)
    [ $# -eq 3 ] || usage
    setup
    build_target "$2"
    out="$work/$2/minimized-$(basename "$3")"
    mkdir -p "$work/$2"
    "$build/tests/fuzz/fuzz_$2" -minimize_crash=1 -max_total_time=120 -runs=200000 \
        -exact_artifact_path="$out" "$3" >"$work/$2/minimize.log" 2>&1 || true
    [ -f "$out" ] || { echo "fuzz.sh: no minimised input (does $3 still fail?)" >&2; exit 1; }
    echo "$out ($(wc -c <"$out") bytes, from $(wc -c <"$3"))"
    exit 0
    ;;
-*) usage ;;
esac

target=$1
seconds=${2:-600}
[ $# -ge 2 ] && shift 2 || shift 1
setup
build_target "$target"
mkdir -p "$work/$target/corpus" "$work/$target/artifacts"
log="$work/$target/fuzz.log"
before=$(ls "$work/$target/artifacts" | wc -l)
echo "fuzz.sh: $target for ${seconds}s, log $log"
dict=""
[ -f "tests/fuzz/$target.dict" ] && dict="-dict=tests/fuzz/$target.dict"
rc=0
"$build/tests/fuzz/fuzz_$target" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$work/$target/artifacts/" $dict "$@" \
    "$work/$target/corpus" "tests/fuzz/corpus/$target" >"$log" 2>&1 || rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
if [ -z "$execs" ]; then # a crash skips the final stats; take the last status line
    execs=$(grep -o '^#[0-9]*' "$log" | tail -n 1 | tr -d '#')
fi
after=$(ls "$work/$target/artifacts" | wc -l)
echo "fuzz.sh: $target: ${execs:-0} executions, $(grep -o 'cov: [0-9]*' "$log" | tail -n 1)," \
    "$(ls "$work/$target/corpus" | wc -l) inputs in $work/$target/corpus," \
    "$((after - before)) new finding(s), libFuzzer exit $rc"
if [ "$after" -gt "$before" ] || [ "$rc" -ne 0 ]; then
    grep -E 'ERROR: |SUMMARY: |runtime error|fuzz check failed|Test unit written' "$log" | head -n 20
    ls -t "$work/$target/artifacts" | head -n $((after - before > 0 ? after - before : 1)) |
        sed "s|^|fuzz.sh: finding: $work/$target/artifacts/|"
    exit 1
fi
exit 0
