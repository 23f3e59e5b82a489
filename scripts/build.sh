#!/bin/sh
# Build a qemu-system-x86_64 that contains pvgpu.
#
# The QEMU source is a pinned 10.0.x release: by default Debian's source
# package (apt-get source), or the tree or release tarball named by
# PVGPU_QEMU_SRC.  Our files are overlaid on it as symlinks and
# patches/qemu-10.0.patch adds the few lines that hook them into QEMU's
# build.  The build directory lives in the cache (PVGPU_CACHE, default
# ~/.cache/pvgpu) and is reachable as build/ in the repository; re-running
# this script only rebuilds what changed.
#
# It also builds the man pages of docs/man/ into build/docs/man/ (with
# rst2man, from python3-docutils), each when its .rst changed.
#
# Usage: scripts/build.sh [--tests] [--sanitize]
#   --tests      also build the qtest binaries
#   --sanitize   build the same QEMU with AddressSanitizer and UBSan in a
#                build directory of its own, reachable as build-san/, for
#                the qtests and the device fuzzer (scripts/fuzz.sh); build/
#                is left alone
#   -h, --help   print this and exit
#
# Environment:
#   PVGPU_CACHE            the cache (default ~/.cache/pvgpu)
#   PVGPU_QEMU_SRC         a QEMU 10.0.x source tree or release tarball to
#                          build instead of Debian's source package
#   PVGPU_CONFIGURE_EXTRA  more arguments for QEMU's configure
#   CCACHE_DIR, CCACHE_MAXSIZE  ccache's (default $PVGPU_CACHE/ccache, 5G)
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${PVGPU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pvgpu}
QEMU_DEB_VERSION=1:10.0.13+ds-0+deb13u1
PATCH="$repo/patches/qemu-10.0.patch"

. "$(dirname "$0")/args.sh"

build_tests=no
sanitize=no
for arg in "$@"; do
    case "$arg" in
    -h|--help) usage; exit 0 ;;
    --tests) build_tests=yes ;;
    --sanitize) sanitize=yes ;;
    *) echo "$0: unknown argument '$arg'; try --help" >&2; exit 2 ;;
    esac
done

log() { echo "pvgpu-build: $*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$CACHE/src"

# ccache through its masquerade directory: configure then records plain
# "cc", and every compile (QEMU's and ours) goes through the cache.
if [ -d /usr/lib/ccache ]; then
    PATH=/usr/lib/ccache:$PATH
    export CCACHE_DIR=${CCACHE_DIR:-$CACHE/ccache}
    export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
fi

# --- 1. QEMU source --------------------------------------------------------

extract_tarball() {
    # $1 tarball; prints the directory it was extracted to
    name=$(basename "$1" | sed -E 's/\.tar\.(xz|gz|bz2|zst)$//; s/\.orig$//; s/_/-/; s/\+ds$//')
    dest="$CACHE/src/$name"
    if [ ! -f "$dest/VERSION" ]; then
        log "extracting $1"
        tmp="$dest.tmp"
        rm -rf "$tmp" && mkdir -p "$tmp"
        tar -C "$tmp" -xf "$1"
        top=$(ls "$tmp")
        [ "$(echo "$top" | wc -l)" = 1 ] || die "$1 does not hold one top directory"
        rm -rf "$dest"
        mv "$tmp/$top" "$dest"
        rmdir "$tmp"
    fi
    echo "$dest"
}

debian_source() {
    # Prefer the pinned version; fall back to any 10.0.x deb-src offers.
    cd "$CACHE/src"
    orig=$(ls qemu_10.0.*.orig.tar.* 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -z "$orig" ]; then
        log "fetching QEMU source package $QEMU_DEB_VERSION"
        if ! apt-get source --download-only "qemu=$QEMU_DEB_VERSION" >&2; then
            v=$(apt-cache showsrc qemu | sed -n 's/^Version: //p' |
                grep -E '^(1:)?10\.0\.' | sort -V | tail -n 1)
            [ -n "$v" ] || die "no QEMU 10.0.x in deb-src; run scripts/setup.sh or set PVGPU_QEMU_SRC"
            log "falling back to QEMU source package $v"
            apt-get source --download-only "qemu=$v" >&2
        fi
        orig=$(ls qemu_10.0.*.orig.tar.* | sort -V | tail -n 1)
    fi
    extract_tarball "$CACHE/src/$orig"
}

if [ -n "${PVGPU_QEMU_SRC:-}" ]; then
    if [ -d "$PVGPU_QEMU_SRC" ]; then
        tree=$(cd "$PVGPU_QEMU_SRC" && pwd)
    elif [ -f "$PVGPU_QEMU_SRC" ]; then
        tree=$(extract_tarball "$(cd "$(dirname "$PVGPU_QEMU_SRC")" && pwd)/$(basename "$PVGPU_QEMU_SRC")")
    else
        die "PVGPU_QEMU_SRC=$PVGPU_QEMU_SRC is neither a directory nor a tarball"
    fi
else
    tree=$(debian_source)
fi
version=$(cat "$tree/VERSION")
case "$version" in
10.0.*) ;;
*) die "$tree is QEMU $version; pvgpu needs 10.0.x" ;;
esac
log "QEMU $version in $tree"

# --- 2. patch QEMU's own files (idempotent, follows patch edits) -----------

applied="$tree/.pvgpu-applied.patch"
if ! cmp -s "$PATCH" "$applied"; then
    if [ -f "$applied" ]; then
        log "reverting previous pvgpu patch"
        patch -d "$tree" -p1 -R -s < "$applied"
    fi
    log "applying $(basename "$PATCH")"
    patch -d "$tree" -p1 -s -N < "$PATCH"
    cp "$PATCH" "$applied"
fi

# --- 3. overlay our files as symlinks --------------------------------------

overlay() {
    # $1: path relative to the repository
    src="$repo/$1"
    dst="$tree/$1"
    if [ "$(readlink "$dst" 2>/dev/null)" != "$src" ]; then
        [ -e "$dst" ] && [ ! -L "$dst" ] && die "$dst exists in the QEMU tree"
        mkdir -p "$(dirname "$dst")"
        ln -sfn "$src" "$dst"
    fi
}
overlay hw/display/pvgpu
overlay contrib/pvgpu-pool
overlay contrib/pvgpu-render
for f in "$repo"/include/hw/display/pvgpu*.h "$repo"/qapi/pvgpu*.json \
         "$repo"/tests/qtest/pvgpu*.c "$repo"/tests/qtest/libqos/pvgpu*.[ch]; do
    [ -e "$f" ] && overlay "${f#"$repo"/}"
done

# --- 4. configure (once per configuration) ---------------------------------

build="$CACHE/build-$(basename "$tree")"
[ -n "${PVGPU_QEMU_SRC:-}" ] && [ -d "$PVGPU_QEMU_SRC" ] &&
    build="$CACHE/build-$(echo "$tree" | sha256sum | cut -c1-12)"
link="$repo/build"
if [ "$sanitize" = yes ]; then
    build="$build-san"
    link="$repo/build-san"
fi

# A minimal x86_64 system emulator: TCG (and KVM for real hosts), pixman
# consoles, VNC and PNG screendumps, virglrenderer with EGL/GBM for pvgpu's
# renderer, and SDL+GL so QEMU's own virtio-gpu-gl can be benchmarked
# beside pvgpu in the same build.
CONFIG_FLAGS="--target-list=x86_64-softmmu --without-default-features
  --enable-tcg --enable-kvm --enable-pixman --enable-vnc --enable-png
  --enable-virglrenderer --enable-opengl --enable-sdl
  --disable-docs --disable-install-blobs --disable-download --disable-fdt --disable-werror
  --python=/usr/bin/python3 ${PVGPU_CONFIGURE_EXTRA:-}"
if [ "$sanitize" = yes ]; then
    CONFIG_FLAGS="$CONFIG_FLAGS --enable-asan --enable-ubsan"
fi
# bump when the configuration changes in ways the flags do not show
CONFIG_REV=3  # 2: optionroms need gcc-multilib; 3: ccache
config_sum=$(echo "$CONFIG_REV $CONFIG_FLAGS" | sha256sum | cut -c1-16)
if [ ! -f "$build/build.ninja" ] || [ "$(cat "$build/.pvgpu-config" 2>/dev/null)" != "$config_sum" ]; then
    log "configuring in $build"
    rm -rf "$build"
    mkdir -p "$build"
    # shellcheck disable=SC2086
    (cd "$build" && "$tree/configure" $CONFIG_FLAGS) >&2
    echo "$config_sum" > "$build/.pvgpu-config"
fi
ln -sfn "$build" "$link"

# --- 5. build ---------------------------------------------------------------

targets="qemu-system-x86_64 contrib/pvgpu-pool/pvgpu-poold contrib/pvgpu-render/pvgpu-render"
[ "$build_tests" = yes ] && targets="$targets tests/qtest/qos-test"
log "building $targets"
ninja -C "$build" $targets >&2
# x86 option ROMs (linuxboot_dma.bin, kvmvapic.bin, ...) are built by make
[ -f "$build/pc-bios/optionrom/config.mak" ] && make -s -C "$build/pc-bios/optionrom" >&2

# Debian's tarball has no firmware blobs; qtest and the guests find
# SeaBIOS and iPXE from Debian's packages in the build's data directory.
datadir=$(find "$build/qemu-bundle" -type d -path '*/share/qemu' 2>/dev/null | head -n 1)
[ -n "$datadir" ] || datadir="$build/qemu-bundle/usr/local/share/qemu"
mkdir -p "$datadir"
for fw in /usr/share/seabios/*.bin /usr/lib/ipxe/qemu/*.rom "$build"/pc-bios/optionrom/*.bin; do
    [ -e "$fw" ] || continue
    [ -e "$datadir/$(basename "$fw")" ] || ln -s "$fw" "$datadir/"
done

# --- 6. man pages -----------------------------------------------------------

# Only pages whose .rst is newer are made.  A page that cannot be made is
# left out with a warning, not a failed build: tests/scripts-help.sh
# checks that every page is there and renders.
rst2man=$(command -v rst2man || command -v rst2man.py || true)
mkdir -p "$build/docs/man"
for rst in "$repo"/docs/man/*.rst; do
    [ -e "$rst" ] || continue
    page="$build/docs/man/$(basename "$rst" .rst).1"
    if [ -f "$page" ] && [ -z "$(find "$rst" -newer "$page")" ]; then
        continue
    fi
    if [ -z "$rst2man" ]; then
        log "warning: no rst2man (python3-docutils): man pages not built"
        break
    fi
    log "man page $page"
    if "$rst2man" "$rst" "$page.tmp" >&2; then
        mv "$page.tmp" "$page"
    else
        rm -f "$page.tmp"
        log "warning: rst2man failed on $rst"
    fi
done

log "ready: $link/qemu-system-x86_64"
