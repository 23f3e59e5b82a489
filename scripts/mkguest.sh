#!/bin/sh
# Build the demo/test guest: Debian's stock kernel (linux-image-amd64) and
# an initramfs with busybox, the kernel's own virtio/DRM modules,
# contrib/pvgpu-fbdemo and contrib/pvgpu-cursor.  Everything comes from
# Debian's archive; the result is cached and rebuilt only when its inputs
# change.
#
# Prints the guest directory (holding vmlinuz and initrd.img), which is
# $PVGPU_CACHE/guest (PVGPU_CACHE: default ~/.cache/pvgpu).
#
# Usage: scripts/mkguest.sh   (no arguments; -h, --help prints this)
set -eu

. "$(dirname "$0")/args.sh"
no_args "$@"

repo=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${PVGPU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pvgpu}
out="$CACHE/guest"
debs="$CACHE/debs"
mkdir -p "$out" "$debs"

log() { echo "pvgpu-guest: $*" >&2; }

. "$repo/scripts/guest-common.sh"

inputs=$(printf '%s\n' "$kpkg" "$(sha256sum "$0" "$repo/scripts/guest-common.sh" "$repo/contrib/pvgpu-fbdemo.c" "$repo/contrib/pvgpu-cursor.c" "$repo/tests/guest/init")" | sha256sum | cut -c1-16)
if [ -f "$out/initrd.img" ] && [ "$(cat "$out/stamp" 2>/dev/null)" = "$inputs" ]; then
    echo "$out"
    exit 0
fi


log "kernel $kver"
kroot=$(fetch "$kpkg")
bbroot=$(fetch busybox-static)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys" "$root/lib/modules"
cp "$bbroot/bin/busybox" "$root/bin/busybox"
cp "$repo/tests/guest/init" "$root/init"
chmod +x "$root/init"

# The modules the stock driver needs, dependencies first (modules.dep).
moddir="$kroot/lib/modules/$kver"
resolve virtio_pci virtio-gpu | awk '!seen[$0]++' > "$root/modules.order"
grep -q virtio-gpu.ko "$root/modules.order" || { log "module resolution failed"; exit 1; }
while read -r m; do
    cp "$moddir/$m" "$root/lib/modules/"
done < "$root/modules.order"
sed -i 's|.*/||' "$root/modules.order"
log "modules: $(tr '\n' ' ' < "$root/modules.order")"

# The demo program draws on the guest's framebuffer.
gcc -static -O2 -Wall -Werror -o "$root/bin/pvgpu-fbdemo" "$repo/contrib/pvgpu-fbdemo.c"
# ... and this one shows a cursor through DRM's cursor ioctl.
gcc -static -O2 -Wall -Werror -o "$root/bin/pvgpu-cursor" "$repo/contrib/pvgpu-cursor.c"

(cd "$root" && find . | cpio -o -H newc --quiet) | gzip -1 > "$out/initrd.img.tmp"
mv "$out/initrd.img.tmp" "$out/initrd.img"
cp "$kroot/boot/vmlinuz-$kver" "$out/vmlinuz"
echo "$inputs" > "$out/stamp"
log "built $out"
echo "$out"
