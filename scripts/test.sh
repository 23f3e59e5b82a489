#!/bin/sh
# Run the whole pvgpu test suite on a fresh Debian 12 machine or a warm one:
# installs what it needs, builds incrementally, then runs
#   1. unit tests of the QEMU-independent code (tests/unit, ASan+UBSan),
#   2. the qtests through the libqos pvgpu driver (the device fuzzer among
#      them), again with virglrenderer in a render process, then all of
#      them again under ASan+UBSan,
#   3. the real guest tests (Debian kernel, stock virtio_gpu driver; Mesa
#      guests with GL, alone and two sharing a GPU pool).
# Each suite prints TAP; the last line is "N passed, N failed".
#
# Usage: scripts/test.sh   (no arguments; -h, --help prints this)
#
# Environment:
#   PVGPU_CACHE          the cache (default ~/.cache/pvgpu); see also
#                        scripts/build.sh --help
#   PVGPU_FUZZ_AVOID     patterns the device fuzzer leaves out with the
#                        renderer in QEMU (default bad-shader; below says
#                        why); on a render process it avoids nothing
#   PVGPU_FUZZ_SEED      the fuzzer slice's seed (default 11)
#   PVGPU_FUZZ_SEED_SAN  the seed of its slice under ASan (default 12)
set -u

. "$(dirname "$0")/args.sh"
no_args "$@"

repo=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${PVGPU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pvgpu}
export PVGPU_CACHE="$CACHE"
cd "$repo" || exit 1

passed=0
failed=0
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# run_suite NAME TIMEOUT COMMAND...: run a TAP-producing suite and count it
run_suite() {
    name=$1
    limit=$2
    shift 2
    echo "=== $name"
    timeout -k 10 "$limit" "$@" > "$out/$name.tap" 2>&1
    rc=$?
    cat "$out/$name.tap"
    ok=$(grep -c '^ok ' "$out/$name.tap")
    bad=$(grep -c '^not ok ' "$out/$name.tap")
    if [ "$rc" != 0 ] && [ "$bad" = 0 ]; then
        # crashed, timed out or bailed out without reporting a failure
        echo "not ok - $name exited with status $rc"
        bad=1
    fi
    echo "=== $name: $ok passed, $bad failed"
    passed=$((passed + ok))
    failed=$((failed + bad))
}

step() {
    echo "=== $*"
    if ! "$@"; then
        echo "=== $* failed"
        echo "$passed passed, $((failed + 1)) failed"
        exit 1
    fi
}

step scripts/setup.sh
step scripts/build.sh --tests
guest=$(scripts/mkguest.sh) || { echo "0 passed, 1 failed"; exit 1; }

# 1. unit tests
# meson records the source directory: a cache shared by clones at other
# paths (or a clone since deleted) needs the unit build set up again
unit="$CACHE/unit-build"
if [ ! -f "$unit/build.ninja" ] || [ "$(cat "$unit/.pvgpu-source" 2>/dev/null)" != "$repo" ]; then
    rm -rf "$unit"
    meson setup "$unit" "$repo" > /dev/null || { echo "0 passed, 1 failed"; exit 1; }
    echo "$repo" > "$unit/.pvgpu-source"
fi
step ninja -C "$unit"
run_suite unit-cmd 300 "$unit/test-pvgpu-cmd" --tap
run_suite unit-sched 300 "$unit/test-pvgpu-sched" --tap
run_suite unit-settings 300 "$unit/test-pvgpu-settings" --tap
run_suite unit-deps 300 "$unit/test-pvgpu-deps" --tap
run_suite unit-pool-proto 300 "$unit/test-pvgpu-pool-proto" --tap
run_suite unit-pool-sched 300 "$unit/test-pvgpu-pool-sched" --tap
run_suite scripts-help 120 sh tests/scripts-help.sh

# 2. qtests: every test the qos graph derives for the pvgpu node
export QTEST_QEMU_BINARY="$repo/build/qemu-system-x86_64"
# The device fuzzer (pvgpu-fuzz-test.c) leaves out the patterns of bugs
# still open (PVGPU_FUZZ_AVOID; scripts/fuzz.sh reads the same variable):
# bad-shader, streams whose shaders are mutated.  When a bound shader
# fails to compile for a draw, virglrenderer (0.10.4, and upstream main
# alike) leaves the shader without a variant and dereferences it on the
# next selection of a neighbouring stage (vrend_shader_select,
# vrend_fill_shader_key): a SEGV on the render thread.  See docs/pvgpu.rst,
# "Limitations".  Fixed or worked around since, and no longer left out:
# ctx-destroy (Mesa 22.3's llvmpipe; setup.sh installs Mesa 25.0) and
# unclaimed-blob (virglrenderer's leak, freed by pvgpu-virgl.c).
export PVGPU_FUZZ_AVOID="${PVGPU_FUZZ_AVOID-bad-shader}"
# The suite's slices replay fixed seeds, so that a run fails only when the
# device changed (long runs of virglrenderer 0.10.4 still hit rare crashes
# of its own); scripts/fuzz.sh explores new seeds.
export PVGPU_FUZZ_SEED="${PVGPU_FUZZ_SEED-11}"
qos="$repo/build/tests/qtest/qos-test"
paths=$("$qos" -l 2>/dev/null | grep -E '/pvgpu-pci/|/pvgpu/' | sed 's/^/-p /')
if [ -z "$paths" ]; then
    echo "not ok - qos-test lists no pvgpu tests"
    failed=$((failed + 1))
else
    # shellcheck disable=SC2086
    run_suite qtest 1200 "$qos" --tap $paths
fi
# the same qos tests with virglrenderer in a render process
# (render-process=on, guest RAM a shared memfd; libqos/pvgpu.c), the fuzzer
# among them avoiding nothing: virglrenderer's own crashes end the render
# process, not QEMU, and the fuzzer checks that QEMU answers on
paths_rp=$("$qos" -l 2>/dev/null | grep -E '/pvgpu-pci/' | sed 's/^/-p /')
# shellcheck disable=SC2086
run_suite qtest-process 1200 env PVGPU_QTEST_RENDER_PROCESS=1 \
    PVGPU_FUZZ_AVOID= "$qos" --tap ${paths_rp:--p /none}
# every QMP example of the QAPI schemas, against QEMU and pvgpu-poold
run_suite qapi-examples 120 python3 tests/qapi-examples.py \
    --qemu "$repo/build/qemu-system-x86_64"
run_suite metrics 180 python3 tests/metrics-test.py --qemu "$repo/build/qemu-system-x86_64"

# 2b. the same qtests, the fuzzer among them, under ASan and UBSan: any
# sanitizer report aborts QEMU and fails its test, leaks are checked when
# QEMU exits (see tests/qtest/lsan-pvgpu.supp).  The fuzzer runs a bounded
# slice here; scripts/fuzz.sh runs it for as long as one likes.
if scripts/build.sh --sanitize --tests; then
    qos_san="$repo/build-san/tests/qtest/qos-test"
    # /x86_64/pvgpu/3d/hotplug runs without the leak check: QEMU's
    # graphic_console_init() (ui/console.c) leaks the gl_unblock_timer of
    # a console it reuses for a newly plugged display device (48 bytes);
    # with glib built without frame pointers the leak's stack cannot be
    # matched by a suppression.
    # The fuzzer's slice runs on its own below, with a time limit.
    paths_san=$("$qos_san" -l 2>/dev/null | grep -E '/pvgpu-pci/|/pvgpu/' |
                grep -v -e '/pvgpu/3d/hotplug$' -e '/pvgpu-tests/fuzz$' |
                sed 's/^/-p /')
    fuzz_san=$("$qos_san" -l 2>/dev/null | grep '/pvgpu-tests/fuzz$' |
               head -n 1)
    # the DRI driver stays loaded for LSan, as in scripts/fuzz.sh
    preload=$("$repo/scripts/san-preload.sh")
    san="detect_leaks=1:fast_unwind_on_malloc=1:abort_on_error=1:halt_on_error=1:print_stacktrace=1:detect_stack_use_after_return=0"
    if [ -z "$paths_san" ]; then
        echo "not ok - the sanitizer build's qos-test lists no pvgpu tests"
        failed=$((failed + 1))
        paths_san="-p /none"
    fi
    # shellcheck disable=SC2086
    run_suite qtest-asan 2400 env \
        QTEST_QEMU_BINARY="env LD_PRELOAD=$preload $repo/build-san/qemu-system-x86_64" \
        ASAN_OPTIONS="$san" \
        UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:abort_on_error=1" \
        LSAN_OPTIONS="suppressions=$repo/tests/qtest/lsan-pvgpu.supp:print_suppressions=0" \
        "$qos_san" --tap $paths_san
    run_suite qtest-asan-hotplug 600 env \
        QTEST_QEMU_BINARY="env LD_PRELOAD=$preload $repo/build-san/qemu-system-x86_64" \
        ASAN_OPTIONS="$(echo "$san" | sed 's/detect_leaks=1/detect_leaks=0/')" \
        UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:abort_on_error=1" \
        "$qos_san" --tap -p /x86_64/pvgpu/3d/hotplug
    run_suite qtest-asan-fuzz 600 env \
        QTEST_QEMU_BINARY="env LD_PRELOAD=$preload $repo/build-san/qemu-system-x86_64" \
        ASAN_OPTIONS="$san" \
        LSAN_OPTIONS="suppressions=$repo/tests/qtest/lsan-pvgpu.supp:print_suppressions=0" \
        UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:abort_on_error=1" \
        PVGPU_FUZZ_SEED="${PVGPU_FUZZ_SEED_SAN-12}" \
        PVGPU_FUZZ_COMMANDS=15000 PVGPU_FUZZ_SECONDS=90 \
        "$qos_san" --tap -p "${fuzz_san:-/none}"
    # and on a render process, avoiding nothing (both processes are
    # sanitized: the helper is built with QEMU)
    run_suite qtest-asan-fuzz-process 600 env \
        QTEST_QEMU_BINARY="env LD_PRELOAD=$preload $repo/build-san/qemu-system-x86_64" \
        ASAN_OPTIONS="$san" \
        LSAN_OPTIONS="suppressions=$repo/tests/qtest/lsan-pvgpu.supp:print_suppressions=0" \
        UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:abort_on_error=1" \
        PVGPU_QTEST_RENDER_PROCESS=1 PVGPU_FUZZ_AVOID= \
        PVGPU_FUZZ_SEED="${PVGPU_FUZZ_SEED_SAN-12}" \
        PVGPU_FUZZ_COMMANDS=15000 PVGPU_FUZZ_SECONDS=90 \
        "$qos_san" --tap -p "${fuzz_san:-/none}"
    # its render process deaths, sorted by their sanitizer reports: one
    # blamed on pvgpu's own code, or without a report, is a failure
    if deaths=$(scripts/fuzz-deaths.sh --strict \
                    "$out/qtest-asan-fuzz-process.tap" 2>&1); then
        echo "ok - render process deaths in qtest-asan-fuzz-process" \
             "(in a library, hung, ours, unsorted): $(echo "$deaths" | tail -n 1)"
        passed=$((passed + 1))
    else
        echo "$deaths" | sed 's/^/# /'
        echo "not ok - render process deaths in qtest-asan-fuzz-process:" \
             "pvgpu's own, or without a sanitizer report"
        failed=$((failed + 1))
    fi
else
    echo "not ok - scripts/build.sh --sanitize --tests"
    failed=$((failed + 1))
fi

# 3. the real guest: 3D-capable device (the default), then 2D only
run_suite guest 600 python3 tests/guest/guest-test.py \
    --qemu "$repo/build/qemu-system-x86_64" --guest "$guest"
run_suite guest-2d 600 python3 tests/guest/guest-test.py \
    --qemu "$repo/build/qemu-system-x86_64" --guest "$guest" \
    --device pvgpu-pci,virgl=off
run_suite guest-libvirt 600 python3 tests/guest/libvirt-guest.py --qemu "$repo/build/qemu-system-x86_64" --guest "$guest"

# 4. a Mesa guest: GL through virgl on pvgpu, headless
guest_gl=$(scripts/mkguest-gl.sh) || { echo "not ok - mkguest-gl.sh"; failed=$((failed + 1)); }
if [ -n "${guest_gl:-}" ]; then
    run_suite guest-gl 1500 python3 tests/guest/gl-guest.py \
        --qemu "$repo/build/qemu-system-x86_64" --guest "$guest_gl" \
        --device pvgpu-pci,xres=800,yres=600,hostmem=256M --display none
    # the same guest on a render process, which is crashed (SIGSEGV) in
    # the middle of glmark2: QEMU and the guest must run on
    run_suite guest-gl-process 900 python3 tests/guest/gl-guest.py \
        --qemu "$repo/build/qemu-system-x86_64" --guest "$guest_gl" \
        --device pvgpu-pci,xres=800,yres=600 --display none \
        --render-process --crash-renderer 2 --kmscube-frames 0
    # 5. two Mesa guests sharing the GPU through a pool (pvgpu-poold)
    run_suite guest-pool 900 python3 tests/guest/pool-guest.py \
        --qemu "$repo/build/qemu-system-x86_64" --guest "$guest_gl"
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
