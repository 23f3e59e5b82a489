#!/bin/sh
# The main job: build QEMU with pvgpu, boot the demo guests headless on
# -device pvgpu-pci and show them rendering:
#  1. the guest's stock virtio_gpu driver brings up DRM and fbcon, then
#     draws a test pattern; the frame is saved as pvgpu-demo.png;
#  2. a Debian guest with Mesa renders glmark2 and kmscube through virgl on
#     pvgpu (GL_RENDERER "virgl ..."), virglrenderer in a render process of
#     its own (render-process=on); its last frame is pvgpu-demo-gl.png;
#  3. two such guests share the GPU through a pool (pvgpu-poold) at weights
#     1:3: their shares are printed ("# shares: ...") and each one's screen
#     is saved, pvgpu-demo-pool-pool-a.png and pvgpu-demo-pool-pool-b.png.
# It installs and builds what it needs first (scripts/setup.sh,
# scripts/build.sh, scripts/mkguest.sh, scripts/mkguest-gl.sh).
#
# Usage: scripts/demo.sh [PNG [GL_PNG [POOL_PREFIX]]]
#   PNG          the console guest's frame (default pvgpu-demo.png)
#   GL_PNG       the GL guest's frame (default pvgpu-demo-gl.png)
#   POOL_PREFIX  the pool guests' frames are POOL_PREFIX-NAME.png (default
#                pvgpu-demo-pool)
#   -h, --help   print this and exit
#
# Environment: PVGPU_CACHE (default ~/.cache/pvgpu), PVGPU_QEMU_SRC (see
# scripts/build.sh --help), PVGPU_DEBIAN_MIRROR (scripts/mkguest-gl.sh).
set -eu

. "$(dirname "$0")/args.sh"

for arg in "$@"; do
    case "$arg" in
    -h|--help) usage; exit 0 ;;
    -*) echo "$0: unknown option '$arg'; try --help" >&2; exit 2 ;;
    esac
done
if [ $# -gt 3 ]; then
    echo "$0: at most three file names; try --help" >&2
    exit 2
fi

repo=$(cd "$(dirname "$0")/.." && pwd)
shot=${1:-pvgpu-demo.png}
shot_gl=${2:-pvgpu-demo-gl.png}
shot_pool=${3:-pvgpu-demo-pool}
"$repo/scripts/setup.sh"
"$repo/scripts/build.sh"
guest=$("$repo/scripts/mkguest.sh")
python3 "$repo/tests/guest/guest-test.py" \
    --qemu "$repo/build/qemu-system-x86_64" --guest "$guest" \
    --screenshot "$shot"
guest_gl=$("$repo/scripts/mkguest-gl.sh")
python3 "$repo/tests/guest/gl-guest.py" \
    --qemu "$repo/build/qemu-system-x86_64" --guest "$guest_gl" \
    --device pvgpu-pci,xres=800,yres=600 --display none --render-process \
    --screenshot "$shot_gl"
python3 "$repo/tests/guest/pool-guest.py" \
    --qemu "$repo/build/qemu-system-x86_64" --guest "$guest_gl" \
    --screenshot "$shot_pool"
