#!/bin/sh
# Benchmark of the GPU pool (pvgpu-poold) with real virgl work: three VMs
# at pool weights 1:2:4 (shares against targets, how soon they settle, a
# run-time weight change), throughput with the pool against without it
# (the daemon killed) in interleaved rounds (PVGPU_BENCH_POOL_ROUNDS,
# default 4), with one and with two submissions in flight per VM and with
# the default and with long grants (--batch-quanta;
# PVGPU_BENCH_POOL_LONG_BATCH, default 128), the longest wait for a fence
# when the daemon is killed, a light VM's fence p99 next to a greedy one,
# and the host's CPU steal during the run.  Prints; asserts nothing.  See
# docs/pvgpu-pool.rst.  Builds pvgpu with scripts/build.sh --tests first
# (PVGPU_CACHE, default ~/.cache/pvgpu).
#
# Usage: scripts/bench-pool.sh   (no arguments; -h, --help prints this)
set -eu

. "$(dirname "$0")/args.sh"
. "$(dirname "$0")/bench-lib.sh"
no_args "$@"

repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/build.sh" --tests >&2
export QTEST_QEMU_BINARY="$repo/build/qemu-system-x86_64"
# shellcheck disable=SC2046
set -- $(cpu_ticks)
PVGPU_BENCH_POOL=1 "$repo/build/tests/qtest/qos-test" --tap \
    -p /x86_64/pvgpu/bench/pool 2>&1 |
    grep -E '^(# (pool|weight|one VM|throughput|longest|light)|ok|not ok)'
steal_report "$@"
