# Sourced by mkguest.sh and mkguest-gl.sh: Debian's stock kernel and the
# packages the guests are made of, downloaded once into the cache.
# Expects $CACHE and log(); sets $debs, $kpkg and $kver.

debs="$CACHE/debs"
mkdir -p "$debs"

# Resolve linux-image-amd64 to the versioned kernel package it points at.
kpkg=$(apt-cache depends linux-image-amd64 |
       sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n 1)
[ -n "$kpkg" ] || { log "cannot resolve linux-image-amd64"; exit 1; }
kver=${kpkg#linux-image-}

# fetch PACKAGE: extract it under $debs/root-PACKAGE, print that directory
fetch() {
    dir="$debs/root-$1"
    if [ ! -d "$dir" ]; then
        (cd "$debs" && apt-get download "$1" 2>&1 |
            grep -v '^W: Download is performed unsandboxed' >&2)
        mkdir -p "$dir.tmp"
        dpkg-deb -x "$(ls "$debs"/"$1"_*.deb | head -n 1)" "$dir.tmp"
        mv "$dir.tmp" "$dir"
    fi
    echo "$dir"
}

# resolve MODULE...: the modules' .ko paths under $moddir, dependencies
# first (modules.dep; made by depmod, which the .deb does not run)
resolve() {
    local m deps path d
    [ -f "$moddir/modules.dep" ] || /sbin/depmod -b "${moddir%/lib/modules/*}" "$kver"
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
