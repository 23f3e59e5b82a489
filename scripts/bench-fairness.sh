#!/bin/sh
# Fairness benchmark of pvgpu's GPU-time scheduler with real virgl work
# (render-target clears executed by virglrenderer), driven through the
# qtest/libqos pvgpu driver: weighted shares 1:2:4 and convergence, with
# the default switch budget (batch turns as long as the switches measured
# need) and without (turns of 16 quanta); the cost of scheduling in
# throughput and in the renderer's CPU time, the context switches per
# second and the GPU time each costs, with render targets a switch evicts
# from a CPU renderer's caches and with targets that stay in them; a
# light victim's fence latency next to a greedy aggressor; the host's CPU
# steal during the run (scripts/bench-lib.sh).  Prints the measured
# figures; it asserts nothing.
# Installs and builds what it needs first (scripts/setup.sh,
# scripts/build.sh --tests; PVGPU_CACHE, default ~/.cache/pvgpu).
#
# Usage: scripts/bench-fairness.sh   (no arguments; -h, --help prints this)
set -eu

. "$(dirname "$0")/args.sh"
. "$(dirname "$0")/bench-lib.sh"
no_args "$@"
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/setup.sh"
"$repo/scripts/build.sh" --tests
export QTEST_QEMU_BINARY="$repo/build/qemu-system-x86_64" PVGPU_BENCH=1
path=$("$repo/build/tests/qtest/qos-test" -l | grep '/bench/fairness$')
# shellcheck disable=SC2046
set -- $(cpu_ticks)
"$repo/build/tests/qtest/qos-test" --tap -p "$path" 2>&1 |
    sed -n 's/^# BENCH /  /p; /^not ok/p'
steal_report "$@"
