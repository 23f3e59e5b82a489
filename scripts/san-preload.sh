#!/bin/sh
# Print the LD_PRELOAD list for running the sanitizer build of QEMU:
# ASan's runtime first (it must come first), then the host's Mesa driver,
# kept loaded so that eglTerminate's dlclose does not unmap what still
# points at Mesa's one-time allocations (LeakSanitizer would report them).
# Mesa up to 24.1 keeps its driver in dri/swrast_dri.so; later releases
# in libgallium-<version>.so, which the dri/ stubs load.
# Used by scripts/test.sh and scripts/fuzz.sh.
#
# Usage: scripts/san-preload.sh   (no arguments; -h, --help prints this)
set -eu

. "$(dirname "$0")/args.sh"
no_args "$@"
preload=$(gcc -print-file-name=libasan.so)
for lib in /usr/lib/*/dri/swrast_dri.so /usr/lib/*/libgallium-*.so; do
    [ -e "$lib" ] && preload="$preload:$lib"
done
echo "$preload"
