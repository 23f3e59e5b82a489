#!/bin/sh
# Install what pvgpu needs on Debian 12 (bookworm): build tools, QEMU's
# build dependencies for our minimal configuration, firmware for qtest and
# the packages the guest test is assembled from, and every tool the scripts
# call that a minbase system lacks (depmod from kmod, patch, python3,
# mkfs.ext4, rst2man from python3-docutils for the man pages, groff for
# their check in tests/scripts-help.sh).  scripts/check-fresh.sh proves
# the list in a minbase chroot.  Idempotent; needs root (or sudo).  Runs
# once per version of this script: a stamp in PVGPU_CACHE (default
# ~/.cache/pvgpu) records it.
#
# Usage: scripts/setup.sh   (no arguments; -h, --help prints this)
set -eu

. "$(dirname "$0")/args.sh"
no_args "$@"

SUDO=
if [ "$(id -u)" != 0 ]; then
    SUDO=sudo
fi

STAMP_DIR=${PVGPU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pvgpu}
mkdir -p "$STAMP_DIR"
here=$(cd "$(dirname "$0")" && pwd)
stamp="$STAMP_DIR/setup.stamp"
sum=$(cat "$here/setup.sh" | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then
    exit 0
fi

# meson >= 1.5 and python3-pycotap come from bookworm-backports; QEMU's
# source comes from trixie's (or bookworm-backports') deb-src.  So does
# Mesa: bookworm's 22.3.6 llvmpipe crashes (SEGV in swrast_dri.so, inside
# virglrenderer) when a guest context draws after another drawing context
# was destroyed; 25.0 does not (tests/qtest/pvgpu-fuzz-repro/virgl-replay.c).
cat <<'SOURCES' | $SUDO tee /etc/apt/sources.list.d/pvgpu.sources >/dev/null
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie bookworm bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# The GL stack and every -dev package built against it come in one
# transaction, so that their versions match (Mesa 25 needs libdrm and
# wayland from bookworm-backports; their -dev packages must follow).
$SUDO apt-get install -y -q -t bookworm-backports meson python3-pycotap \
    libgl1-mesa-dri libegl-mesa0 libglx-mesa0 libgbm1 libgbm-dev \
    libdrm-dev libwayland-dev libvirglrenderer-dev libepoxy-dev libegl-dev
$SUDO apt-get install -y -q --no-install-recommends \
    build-essential ccache pkg-config ninja-build flex bison dpkg-dev \
    python3-venv python3-tomli xz-utils bzip2 cpio busybox-static \
    gcc-multilib libglib2.0-dev libpixman-1-dev zlib1g-dev libpng-dev \
    libsdl2-dev \
    seabios ipxe-qemu debootstrap xvfb xauth \
    kmod patch python3 e2fsprogs diffutils python3-docutils groff-base
# libvirt 9.0 for tests/guest/libvirt-guest.py, which starts a private
# libvirtd of its own and uses no system one (where systemd runs, this
# package's postinst starts one): libvirt-daemon-system rather than the
# bare daemon because libvirtd refuses to start without the libvirt-qemu
# user it creates; virsh is in libvirt-clients, unshare in util-linux.
$SUDO apt-get install -y -q --no-install-recommends \
    libvirt-daemon-system libvirt-clients util-linux
# promtool, which checks scripts/pvgpu-metrics' output in the tests: only
# that binary, taken out of Debian's prometheus package into the cache.
# Installing the package would take 332 MB (its web UI's dependencies)
# and start a Prometheus server where systemd runs.
if [ ! -x "$STAMP_DIR/bin/promtool" ]; then
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download -q prometheus) &&
        dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb |
        tar -x -C "$tmp" ./usr/bin/promtool &&
        mkdir -p "$STAMP_DIR/bin" &&
        mv "$tmp/usr/bin/promtool" "$STAMP_DIR/bin/promtool"
    rm -rf "$tmp"
    [ -x "$STAMP_DIR/bin/promtool" ]
fi
echo "$sum" > "$stamp"
