#!/bin/sh
# Benchmark pvgpu against QEMU's own virtio-gpu-gl-pci: the same GL guest
# workload (glmark2-es2-drm scenes, kmscube) on both devices, from the same
# QEMU build, in one run, alternating devices round by round.  pvgpu runs
# headless (-display none), with virglrenderer in QEMU's process and in a
# render process (render-process=on); virtio-gpu-gl needs a GL display, so
# it gets SDL with GL under Xvfb.  Prints per-scene fps and the ratios
# pvgpu / virtio-gpu-gl and render process / in QEMU.  Installs and builds what it needs first
# (scripts/setup.sh, scripts/build.sh, scripts/mkguest-gl.sh).
#
# Usage: scripts/bench-gl.sh [ROUNDS]      (default 3)
#   -h, --help   print this and exit
# Environment: PVGPU_BENCH_SCENES overrides the glmark2 scene list;
# PVGPU_CACHE (default ~/.cache/pvgpu) as in scripts/build.sh.
set -eu

. "$(dirname "$0")/args.sh"
want_help "${1-}"
rounds=${1:-3}
case "$rounds" in
*[!0-9]*|0*)
    echo "$0: ROUNDS must be a positive number, not '$rounds'; try --help" >&2
    exit 2 ;;
esac
if [ $# -gt 1 ]; then
    echo "$0: ROUNDS is the only argument; try --help" >&2
    exit 2
fi

repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/setup.sh"
"$repo/scripts/build.sh"
guest=$("$repo/scripts/mkguest-gl.sh")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

scenes=${PVGPU_BENCH_SCENES:-build:use-vbo=true:duration=5,texture:duration=5,shading:duration=5,conditionals:duration=5,jellyfish:duration=5}
run() {
    # $1 name, $2 device, $3 display, $4 gl-guest.py flag or "", then any
    # wrapper command
    name=$1 dev=$2 disp=$3 flag=$4
    shift 4
    # shellcheck disable=SC2086
    "$@" python3 "$repo/tests/guest/gl-guest.py" $flag \
        --qemu "$repo/build/qemu-system-x86_64" --guest "$guest" \
        --device "$dev,xres=800,yres=600" --display "$disp" \
        --scenes "$scenes" --kmscube-frames 300 \
        --json "$out/$name.json" > "$out/$name.log" 2>&1 ||
        { echo "bench: $name failed:"; tail -n 20 "$out/$name.log"; exit 1; }
}

i=1
while [ "$i" -le "$rounds" ]; do
    echo "round $i/$rounds: pvgpu-pci (-display none)"
    run "pvgpu-$i" pvgpu-pci none ""
    echo "round $i/$rounds: pvgpu-pci, render process (-display none)"
    run "process-$i" pvgpu-pci none --render-process
    echo "round $i/$rounds: virtio-gpu-gl-pci (-display sdl,gl=on, Xvfb)"
    run "gl-$i" virtio-gpu-gl-pci sdl,gl=on "" \
        xvfb-run -a -s '-screen 0 1024x768x24'
    i=$((i + 1))
done
python3 "$repo/scripts/bench-report.py" "$out" "$rounds"
