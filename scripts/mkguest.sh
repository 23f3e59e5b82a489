#!/bin/sh
# Build the demo/test guest: Debian's stock kernel (linux-image-amd64) and
# an initramfs with busybox, the kernel's own virtio/DRM modules and
# contrib/pvgpu-fbdemo.  Everything comes from Debian's archive; the
# result is cached and rebuilt only when its inputs change.
#
# Prints the guest directory (holding vmlinuz and initrd.img).
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${PVGPU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pvgpu}
out="$CACHE/guest"
debs="$CACHE/debs"
mkdir -p "$out" "$debs"

log() { echo "pvgpu-guest: $*" >&2; }

# Resolve linux-image-amd64 to the versioned kernel package it points at.
kpkg=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n 1)
[ -n "$kpkg" ] || { log "cannot resolve linux-image-amd64"; exit 1; }
kver=${kpkg#linux-image-}

inputs=$(printf '%s\n' "$kpkg" "$(sha256sum "$0" "$repo/contrib/pvgpu-fbdemo.c" "$repo/tests/guest/init")" | sha256sum | cut -c1-16)
if [ -f "$out/initrd.img" ] && [ "$(cat "$out/stamp" 2>/dev/null)" = "$inputs" ]; then
    echo "$out"
    exit 0
fi

fetch() {
    # $1 package; extracts it under $debs/root-$1 and prints that directory
    dir="$debs/root-$1"
    if [ ! -d "$dir" ]; then
        (cd "$debs" && apt-get download "$1" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2)
        mkdir -p "$dir.tmp"
        dpkg-deb -x "$(ls "$debs"/"$1"_*.deb | head -n 1)" "$dir.tmp"
        mv "$dir.tmp" "$dir"
    fi
    echo "$dir"
}

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
# modules.dep is made by depmod at install time, not shipped in the .deb
[ -f "$moddir/modules.dep" ] || /sbin/depmod -b "$kroot" "$kver"
resolve() {
    local m deps path d
    for m in "$@"; do
        deps=$(grep "^[^:]*/$m.ko:" "$moddir/modules.dep" | cut -d: -f2)
        path=$(grep -o "^[^:]*/$m.ko" "$moddir/modules.dep")
        [ -n "$path" ] || { log "module $m not found"; exit 1; }
        for d in $deps; do
            resolve "$(basename "$d" .ko)"
        done
        echo "$path"
    done
}
resolve virtio_pci virtio-gpu | awk '!seen[$0]++' > "$root/modules.order"
grep -q virtio-gpu.ko "$root/modules.order" || { log "module resolution failed"; exit 1; }
while read -r m; do
    cp "$moddir/$m" "$root/lib/modules/"
done < "$root/modules.order"
sed -i 's|.*/||' "$root/modules.order"
log "modules: $(tr '\n' ' ' < "$root/modules.order")"

# The demo program draws on the guest's framebuffer.
gcc -static -O2 -Wall -Werror -o "$root/bin/pvgpu-fbdemo" "$repo/contrib/pvgpu-fbdemo.c"

(cd "$root" && find . | cpio -o -H newc --quiet) | gzip -1 > "$out/initrd.img.tmp"
mv "$out/initrd.img.tmp" "$out/initrd.img"
cp "$kroot/boot/vmlinuz-$kver" "$out/vmlinuz"
echo "$inputs" > "$out/stamp"
log "built $out"
echo "$out"
