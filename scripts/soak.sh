#!/bin/sh
# Soak test of pvgpu: eight 3D contexts rendering, a 2D scanout flushing
# at 60 Hz, and QMP queried and reconfigured ten times a second, together,
# for SECONDS (default 600).  Every fenced request must be answered OK
# within 10 s, the rendered pixels must stay right, and QEMU's resident
# memory must stay flat after the first fifth of the run.  Prints the
# figures and the verdict; exits non-zero on failure.
set -eu

usage() {
    cat <<EOF
usage: $0 [SECONDS]

Runs the qtest soak/load (tests/qtest/pvgpu-test.c) for SECONDS (default
600) and prints its SOAK figures and verdict.

environment:
  QTEST_QEMU_BINARY=PATH   run against another QEMU (e.g. an ASan build);
                           default build/qemu-system-x86_64, built first
  PVGPU_SOAK_RSS_KB=N      RSS growth after the warm-up that fails
                           (default 4096; raise it for ASan's quarantine)
  PVGPU_SOAK_LEAK_KB=N     grow QEMU by N KiB a second on purpose
                           (object-add), to see the RSS verdict fail
The whole log is kept in \$PVGPU_CACHE/soak.log.
EOF
}

secs=600
case "${1:-}" in
-h|--help) usage; exit 0 ;;
'') ;;
*[!0-9]*) usage >&2; exit 2 ;;
*) secs=$1 ;;
esac
[ "$secs" -gt 0 ] && [ $# -le 1 ] || { usage >&2; exit 2; }

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${PVGPU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pvgpu}
"$repo/scripts/setup.sh"
"$repo/scripts/build.sh" --tests
export QTEST_QEMU_BINARY="${QTEST_QEMU_BINARY:-$repo/build/qemu-system-x86_64}"
export PVGPU_SOAK_SECONDS="$secs"
path=$("$repo/build/tests/qtest/qos-test" -l | grep '/soak/load$')
log="$cache/soak.log"
echo "soak: $secs s against $QTEST_QEMU_BINARY (log: $log)"
# a hung QEMU must not hang the script: the run gets 5 minutes extra
status=0
timeout -s ABRT $((secs + 300)) \
    "$repo/build/tests/qtest/qos-test" --tap -p "$path" >"$log" 2>&1 ||
    status=$?
sed -n 's/^# SOAK /  /p; /^not ok/p; /Sanitizer/p; /^\*\*/p' "$log"
if [ "$status" = 0 ] && grep -q '^ok ' "$log"; then
    echo "soak: PASS"
else
    tail -n 3 "$log" | sed 's/^/  | /'
    echo "soak: FAIL (exit status $status; see $log)"
    exit 1
fi
