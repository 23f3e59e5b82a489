#!/bin/sh
# The main job: build QEMU with pvgpu, boot the demo guest headless on
# -device pvgpu-pci and show it rendering: the guest's stock virtio_gpu
# driver brings up DRM and fbcon, then draws a test pattern, and the frame
# is saved as a PNG (default pvgpu-demo.png).
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
shot=${1:-pvgpu-demo.png}
"$repo/scripts/setup.sh"
"$repo/scripts/build.sh"
guest=$("$repo/scripts/mkguest.sh")
python3 "$repo/tests/guest/guest-test.py" \
    --qemu "$repo/build/qemu-system-x86_64" --guest "$guest" \
    --screenshot "$shot"
