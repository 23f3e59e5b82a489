#!/bin/sh
# Build the GL test guest: Debian's stock kernel (linux-image-amd64, as in
# scripts/mkguest.sh), a small initramfs (busybox + the virtio/ext4/DRM
# modules) that mounts the root filesystem from virtio-blk and
# switch_roots into it, and that root filesystem: a debootstrap'ed Debian
# bookworm (minbase) with Mesa's virgl driver, glmark2-es2-drm, kmscube,
# contrib/pvgpu-glinfo and tests/guest/init-gl as PID 1, packed as a
# read-only ext4 image (mkfs.ext4 -d).
#
# Why a disk and not an initramfs: the root filesystem is ~340 MiB
# (libLLVM alone is 112 MiB).  As an initramfs the kernel has to unpack
# all of it into RAM under TCG before anything runs; from a virtio-blk
# disk the guest reads only the pages it touches.
#
# Everything is cached under $PVGPU_CACHE (default ~/.cache/pvgpu):
#   debs/        kernel and busybox packages (shared with mkguest.sh)
#   gl-debs/     every .deb debootstrap and apt downloaded for the rootfs
#   gl-rootfs/   the installed root filesystem tree
#   guest-gl/    the result: vmlinuz, initrd.img, rootfs.ext4
# The rootfs tree is rebuilt only when ROOTFS_RECIPE changes (bump its
# version when changing how the tree is made); the image and initramfs
# when this script, init-gl, pvgpu-glinfo.c, the tree or the kernel
# change.
#
# Needs root (debootstrap, chroot) and the debootstrap package, which is
# installed with apt-get if missing.
#
# Prints the guest directory.
#
# Usage: scripts/mkguest-gl.sh   (no arguments; -h, --help prints this)
# Environment: PVGPU_CACHE (above), PVGPU_DEBIAN_MIRROR (the Debian
# mirror debootstrap uses, default http://deb.debian.org/debian).
set -eu

. "$(dirname "$0")/args.sh"
no_args "$@"

repo=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${PVGPU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pvgpu}
out="$CACHE/guest-gl"
debs="$CACHE/debs"
gldebs="$CACHE/gl-debs"
tree="$CACHE/gl-rootfs"
mkdir -p "$out" "$debs" "$gldebs"

SUITE=bookworm
MIRROR=${PVGPU_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES="libgl1-mesa-dri libegl-mesa0 libgbm1 kmscube glmark2-es2-drm mesa-utils-bin mesa-utils"
ROOTFS_RECIPE="v1 $SUITE $MIRROR minbase $PACKAGES"

log() { echo "pvgpu-guest-gl: $*" >&2; }

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

. "$repo/scripts/guest-common.sh"

rootfs_stamp=$(echo "$ROOTFS_RECIPE" | sha256sum | cut -c1-16)
inputs=$(printf '%s\n' "$kpkg" "$rootfs_stamp" \
    "$(sha256sum "$0" "$repo/scripts/guest-common.sh" "$repo/contrib/pvgpu-glinfo.c" "$repo/tests/guest/init-gl")" \
    | sha256sum | cut -c1-16)
if [ -f "$out/rootfs.ext4" ] && [ -f "$out/initrd.img" ] && \
   [ "$(cat "$out/stamp" 2>/dev/null)" = "$inputs" ]; then
    echo "$out"
    exit 0
fi


log "kernel $kver"
kroot=$(fetch "$kpkg")
bbroot=$(fetch busybox-static)

# --- the root filesystem tree ---------------------------------------------
if [ ! -d "$tree" ] || [ "$(cat "$CACHE/gl-rootfs.stamp" 2>/dev/null)" != "$rootfs_stamp" ]; then
    if ! command -v debootstrap > /dev/null; then
        log "installing debootstrap"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends debootstrap >&2
    fi
    new="$tree.tmp"
    $SUDO rm -rf "$new"
    log "debootstrap $SUITE (minbase) from $MIRROR"
    $SUDO debootstrap --variant=minbase --cache-dir="$gldebs" "$SUITE" "$new" "$MIRROR" > "$CACHE/gl-debootstrap.log" 2>&1 || {
        tail -n 20 "$CACHE/gl-debootstrap.log" >&2
        log "debootstrap failed (log: $CACHE/gl-debootstrap.log)"
        exit 1
    }
    # apt inside the chroot: hand it the cached .debs and take back what it
    # downloads, so a rebuild downloads nothing but the package lists.
    for f in "$gldebs"/*.deb; do
        if [ -e "$f" ] && [ ! -e "$new/var/cache/apt/archives/${f##*/}" ]; then
            $SUDO cp -l "$f" "$new/var/cache/apt/archives/"
        fi
    done
    log "installing $PACKAGES"
    $SUDO chroot "$new" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        DEBIAN_FRONTEND=noninteractive sh -c \
        "apt-get update -q -o Acquire::Languages=none && apt-get install -y -q --no-install-recommends $PACKAGES" \
        > "$CACHE/gl-apt.log" 2>&1 || {
        tail -n 20 "$CACHE/gl-apt.log" >&2
        log "apt-get in the rootfs failed (log: $CACHE/gl-apt.log)"
        exit 1
    }
    for f in "$new"/var/cache/apt/archives/*.deb; do
        if [ -e "$f" ] && [ ! -e "$gldebs/${f##*/}" ]; then
            $SUDO cp -l "$f" "$gldebs/"
        fi
    done
    # what the guest never reads: apt's lists and caches, docs, locales
    $SUDO rm -rf "$new"/var/lib/apt/lists/* "$new"/var/cache/apt/*.bin \
        "$new"/var/cache/apt/archives/*.deb "$new"/var/cache/debconf/*-old \
        "$new"/usr/share/doc "$new"/usr/share/man "$new"/usr/share/info \
        "$new"/usr/share/locale "$new"/var/log/*.log "$new"/var/log/apt
    $SUDO rm -rf "$tree"
    $SUDO mv "$new" "$tree"
    echo "$rootfs_stamp" > "$CACHE/gl-rootfs.stamp"
    log "rootfs tree $(du -sh "$tree" | cut -f1)"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- our files in the tree, then the ext4 image ---------------------------
# pvgpu-glinfo is built against the host's libEGL/libgbm: the host is
# Debian 12 too, so the binary runs against the rootfs' libraries.
gcc -O2 -Wall -Werror -o "$work/pvgpu-glinfo" "$repo/contrib/pvgpu-glinfo.c" -lEGL -lgbm
$SUDO install -m 755 "$work/pvgpu-glinfo" "$tree/usr/local/bin/pvgpu-glinfo"
$SUDO install -m 755 "$bbroot/bin/busybox" "$tree/usr/local/bin/busybox"
$SUDO install -m 755 "$repo/tests/guest/init-gl" "$tree/usr/local/sbin/init-gl"

used=$(du -sm "$tree" | cut -f1)
size=$((used + used / 5 + 64))
rm -f "$out/rootfs.ext4.tmp"
truncate -s "${size}M" "$out/rootfs.ext4.tmp"
# no journal: the guest mounts it read-only and QEMU opens it read-only
$SUDO mkfs.ext4 -q -F -L pvgpu-gl -O ^has_journal -m 0 -d "$tree" "$out/rootfs.ext4.tmp"
mv "$out/rootfs.ext4.tmp" "$out/rootfs.ext4"

# --- the initramfs: load modules, mount /dev/vda, switch_root --------------
root="$work/root"
mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys" "$root/newroot" "$root/lib/modules"
cp "$bbroot/bin/busybox" "$root/bin/busybox"
cat > "$root/init" <<'EOF'
#!/bin/busybox sh
# Stage 1 of the pvgpu GL guest (made by scripts/mkguest-gl.sh): load the
# modules, mount the root filesystem read-only and hand over to init-gl.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
exec > /dev/ttyS0 2>&1 < /dev/null
say() { echo "PVGPU: $*"; }
die() {
    say "stage1-failed $*"
    poweroff -f
    while true; do sleep 1; done
}
# insmod, unlike modprobe, does not apply module parameters given on the
# kernel command line (e.g. drm.edid_firmware=...): pass them along.
params() {
    n=$(echo "${1%.ko}" | tr - _)
    for a in $(cat /proc/cmdline); do
        case "$a" in
        *.*=*) [ "$(echo "${a%%.*}" | tr - _)" = "$n" ] && echo "${a#*.}" ;;
        esac
    done
}
for m in $(cat /modules.order); do
    insmod "/lib/modules/$m" $(params "$m") || say "insmod-failed $m"
done
i=0
while [ $i -lt 100 ] && [ ! -b /dev/vda ]; do
    sleep 0.1
    i=$((i + 1))
done
[ -b /dev/vda ] || die "no /dev/vda"
mount -t ext4 -o ro /dev/vda /newroot || die "cannot mount /dev/vda"
[ -x /newroot/usr/local/sbin/init-gl ] || die "no init-gl on /dev/vda"
mount --move /dev /newroot/dev
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
exec switch_root /newroot /usr/local/sbin/init-gl
EOF
chmod +x "$root/init"

moddir="$kroot/lib/modules/$kver"
# ext4 and jbd2 get crc32c through the crypto API (a softdep); there is no
# modprobe to load it on demand, so it goes first.
resolve virtio_pci virtio_blk crc32c_generic ext4 virtio-gpu | awk '!seen[$0]++' > "$root/modules.order"
for m in ext4.ko virtio_blk.ko virtio-gpu.ko; do
    grep -q "/$m\$" "$root/modules.order" || { log "module resolution failed ($m)"; exit 1; }
done
while read -r m; do
    cp "$moddir/$m" "$root/lib/modules/"
done < "$root/modules.order"
sed -i 's|.*/||' "$root/modules.order"
log "modules: $(tr '\n' ' ' < "$root/modules.order")"

(cd "$root" && find . | cpio -o -H newc --quiet) | gzip -1 > "$out/initrd.img.tmp"
mv "$out/initrd.img.tmp" "$out/initrd.img"
cp "$kroot/boot/vmlinuz-$kver" "$out/vmlinuz"
echo "$inputs" > "$out/stamp"
log "built $out: rootfs.ext4 $(du -h --apparent-size "$out/rootfs.ext4" | cut -f1) ($(du -h "$out/rootfs.ext4" | cut -f1) allocated), initrd.img $(du -h "$out/initrd.img" | cut -f1)"
echo "$out"
