#!/bin/sh
# Fuzz the whole pvgpu device through its virtqueues under AddressSanitizer
# and UBSan: tests/qtest/pvgpu-fuzz-test.c against the sanitizer build
# (scripts/build.sh --sanitize), in slices of PVGPU_FUZZ_SLICE commands
# with one seed each, until COMMANDS commands ran or one slice failed.
#
# Usage: scripts/fuzz.sh [COMMANDS] [SEED]
#   COMMANDS  total (default 1000000); SEED  first seed (default: random),
#   the next slices use SEED+1, SEED+2, ...; -h, --help prints this.
# The device renders in a render process (render-process=on), and
# nothing is avoided.  Its deaths are contained (QEMU answers the guest
# with errors), and sorted by scripts/fuzz-deaths.sh from the helper's
# sanitizer report: one blamed on virglrenderer, Mesa or LLVM, or a
# helper killed as hung (render-timeout), is counted and listed; one
# blamed on pvgpu's own code, a UBSan report, a malformed message or a
# death without a report fails the slice.
# PVGPU_FUZZ_HELPER=plain runs the helper from build/ without a sanitizer
# (QEMU keeps both): about twice the commands per second; it reports its
# own crashes (their stacks), which are sorted the same way.
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

helper=${PVGPU_FUZZ_HELPER:-asan}
case "$helper" in
asan|plain) ;;
*)
    echo "$0: PVGPU_FUZZ_HELPER is asan or plain, not '$helper'" >&2
    exit 2 ;;
esac

if [ "${PVGPU_FUZZ_NO_BUILD:-0}" != 1 ]; then
    "$repo/scripts/build.sh" --sanitize --tests || exit 1
    if [ "$helper" = plain ]; then
        "$repo/scripts/build.sh" || exit 1
    fi
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
if [ "$helper" = plain ] && [ "${PVGPU_FUZZ_IN_PROCESS:-0}" != 1 ]; then
    # the sanitizer runtime QEMU is started with stays out of the helper
    wrapper="$CACHE/fuzz-helper-plain"
    printf '#!/bin/sh\nunset LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS\nexec %s "$@"\n' \
        "$repo/build/contrib/pvgpu-render/pvgpu-render" > "$wrapper"
    chmod +x "$wrapper"
    export PVGPU_QTEST_RENDER_HELPER="$wrapper"
    where="$where (the helper without a sanitizer)"
fi

done_cmds=0
resets=0
d_ext=0
d_hung=0
d_unknown=0
qresets=0
sresets=0
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
    sorted=$("$repo/scripts/fuzz-deaths.sh" --strict "$log" \
                 2> "$log.deaths")
    drc=$?
    sed 's/^/pvgpu-fuzz:   /' "$log.deaths" >&2
    # shellcheck disable=SC2086
    set -- $sorted 0 0 0 0
    if [ "$rc" != 0 ] || [ -z "$line" ] || grep -aq '^not ok' "$log" ||
       [ "$drc" != 0 ]; then
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
    d_ext=$((d_ext + $1))
    d_hung=$((d_hung + $2))
    d_unknown=$((d_unknown + $4))
    secs=$(awk "BEGIN { print $secs + $(get seconds) }")
    seeds="$seeds $seed"
    echo "pvgpu-fuzz: seed $seed passed: $(get commands) commands," \
         "render process deaths: $1 in a library, $2 hung, $4 unsorted;" \
         "$done_cmds commands in all" >&2
    rm -f "$log" "$log.deaths"
    seed=$((seed + 1))
done
wall=$(($(date +%s) - start))
rate=0
[ "$wall" -gt 0 ] && rate=$((done_cmds / wall))
echo "pvgpu-fuzz: seeds:$seeds"
echo "pvgpu-fuzz: $done_cmds commands ($where), $resets device resets," \
     "$qresets queue resets, $sresets system resets, $qmp QMP calls," \
     "$((d_ext + d_hung + d_unknown)) render process deaths in ${wall} s" \
     "wall (${secs} s" \
     "fuzzing), $rate commands/s under ASan+UBSan"
if [ "${PVGPU_FUZZ_IN_PROCESS:-0}" != 1 ]; then
    echo "pvgpu-fuzz: render process deaths: $d_ext crashes in" \
         "virglrenderer, Mesa or LLVM, $d_hung hung (render-timeout)," \
         "$d_unknown unsorted"
fi
echo "pvgpu-fuzz: $verdict ($failures failing slices)"
[ "$verdict" = PASS ]
