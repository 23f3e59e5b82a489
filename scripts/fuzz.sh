#!/bin/sh
# Fuzz the whole pvgpu device through its virtqueues under AddressSanitizer
# and UBSan: tests/qtest/pvgpu-fuzz-test.c against the sanitizer build
# (scripts/build.sh --sanitize), in slices of PVGPU_FUZZ_SLICE commands
# with one seed each, until COMMANDS commands ran or one slice failed.
#
# Usage: scripts/fuzz.sh [COMMANDS] [SEED]
#   COMMANDS  total (default 1000000); SEED  first seed (default: random),
#   the next slices use SEED+1, SEED+2, ...; -h, --help prints this.
# The device renders in a render process (render-process=on), whose own
# crashes inside virglrenderer are contained: they are counted ("render
# process deaths"), not failures, and nothing is avoided.
# PVGPU_FUZZ_IN_PROCESS=1 fuzzes virglrenderer in QEMU's process instead,
# where such a crash is QEMU's: PVGPU_FUZZ_AVOID then defaults to
# bad-shader, as in scripts/test.sh, which says why.
# Environment: PVGPU_FUZZ_SLICE (default 250000), PVGPU_FUZZ_AVOID and
# PVGPU_FUZZ_TIMEOUT as the fuzzer reads them; PVGPU_FUZZ_NO_BUILD=1 uses
# build-san/ as it is; PVGPU_FUZZ_KEEP_GOING=1 goes on with the next seed
# after a failing slice (the verdict stays FAIL).
#
# A failing slice's log (sanitizer report, protocol violation or hang, and
# the fuzzer's last commands) is kept in $PVGPU_CACHE/fuzz-logs/
# (PVGPU_CACHE: default ~/.cache/pvgpu).
set -u

. "$(dirname "$0")/args.sh"
want_help "${1-}"
if [ $# -gt 2 ]; then
    echo "$0: COMMANDS and SEED are the only arguments; try --help" >&2
    exit 2
fi
for arg in "$@"; do
    case "$arg" in
    *[!0-9]*)
        echo "$0: COMMANDS and SEED are numbers, not '$arg'; try --help" >&2
        exit 2 ;;
    esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${PVGPU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pvgpu}
export PVGPU_CACHE="$CACHE"
total=${1:-1000000}
seed=${2:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
slice=${PVGPU_FUZZ_SLICE:-250000}
if [ "${PVGPU_FUZZ_IN_PROCESS:-0}" = 1 ]; then
    export PVGPU_FUZZ_AVOID="${PVGPU_FUZZ_AVOID-bad-shader}"
    unset PVGPU_QTEST_RENDER_PROCESS
    where="virglrenderer in QEMU"
else
    export PVGPU_FUZZ_AVOID="${PVGPU_FUZZ_AVOID-}"
    export PVGPU_QTEST_RENDER_PROCESS=1
    where="on a render process"
fi

if [ "${PVGPU_FUZZ_NO_BUILD:-0}" != 1 ]; then
    "$repo/scripts/build.sh" --sanitize --tests || exit 1
fi

qos="$repo/build-san/tests/qtest/qos-test"
# Every sanitizer report is fatal; leaks are checked when QEMU exits.  The
# DRI driver is preloaded (after ASan's runtime, which must come first)
# so that eglTerminate's dlclose does not unmap what still points at its
# one-time allocations: LSan would report those (tests/qtest/lsan-pvgpu.supp).
# Stacks are unwound the fast way: the slow unwinder deadlocks in Mesa.
preload=$("$repo/scripts/san-preload.sh")
export QTEST_QEMU_BINARY="env LD_PRELOAD=$preload $repo/build-san/qemu-system-x86_64"
export ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=1:abort_on_error=1:halt_on_error=1:print_stacktrace=1:symbolize=1:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:abort_on_error=1"
export LSAN_OPTIONS="suppressions=$repo/tests/qtest/lsan-pvgpu.supp:print_suppressions=0"

path=$("$qos" -l | grep '/pvgpu/pvgpu-tests/fuzz$' | head -n 1)
[ -n "$path" ] || { echo "pvgpu-fuzz: qos-test lists no fuzz test" >&2; exit 1; }

logs="$CACHE/fuzz-logs"
mkdir -p "$logs"
done_cmds=0
resets=0
qresets=0
sresets=0
deaths=0
qmp=0
secs=0
seeds=""
verdict=PASS
failures=0
start=$(date +%s)
while [ "$done_cmds" -lt "$total" ]; do
    n=$((total - done_cmds))
    [ "$n" -gt "$slice" ] && n=$slice
    log="$logs/seed-$seed.log"
    echo "pvgpu-fuzz: seed $seed, $n commands" >&2
    PVGPU_FUZZ_SEED=$seed PVGPU_FUZZ_COMMANDS=$n "$qos" --tap -p "$path" \
        > "$log" 2>&1
    rc=$?
    line=$(grep -a '^# PVGPU_FUZZ_TOTALS' "$log" | tail -n 1)
    if [ "$rc" != 0 ] || [ -z "$line" ] || grep -aq '^not ok' "$log"; then
        verdict=FAIL
        echo "pvgpu-fuzz: seed $seed FAILED (exit $rc), log $log" >&2
        grep -a -v '^fuzz: ' "$log" | tail -n 80 >&2
        seeds="$seeds $seed(FAIL)"
        failures=$((failures + 1))
        [ "${PVGPU_FUZZ_KEEP_GOING:-0}" = 1 ] || break
        seed=$((seed + 1))
        continue
    fi
    get() { echo "$line" | sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }
    done_cmds=$((done_cmds + $(get commands)))
    resets=$((resets + $(get resets)))
    qresets=$((qresets + $(get queue_resets)))
    sresets=$((sresets + $(get system_resets)))
    qmp=$((qmp + $(get qmp)))
    deaths=$((deaths + $(grep -ac 'pvgpu: the render process .* was killed' "$log")))
    secs=$(awk "BEGIN { print $secs + $(get seconds) }")
    seeds="$seeds $seed"
    echo "pvgpu-fuzz: seed $seed passed: $(get commands) commands," \
         "$(grep -ac 'pvgpu: the render process .* was killed' "$log")" \
         "render process deaths, $done_cmds in all" >&2
    rm -f "$log"
    seed=$((seed + 1))
done
wall=$(($(date +%s) - start))
rate=0
[ "$wall" -gt 0 ] && rate=$((done_cmds / wall))
echo "pvgpu-fuzz: seeds:$seeds"
echo "pvgpu-fuzz: $done_cmds commands ($where), $resets device resets," \
     "$qresets queue resets, $sresets system resets, $qmp QMP calls," \
     "$deaths render process deaths in ${wall} s wall (${secs} s" \
     "fuzzing), $rate commands/s under ASan+UBSan"
echo "pvgpu-fuzz: $verdict ($failures failing slices)"
[ "$verdict" = PASS ]
