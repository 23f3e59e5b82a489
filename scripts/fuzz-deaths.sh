#!/bin/sh
# Sort the render process deaths in the output of a device fuzzer run
# (tests/qtest/pvgpu-fuzz-test.c on a render process), by what the
# helper's sanitizer report blames: the first stack frame outside libc
# and the sanitizer runtime.
#
# Prints "LIBRARY HUNG OURS UNSORTED" (counts) on stdout, and each death
# on stderr: "library:" blamed on virglrenderer, Mesa or LLVM (a crash of
# theirs a guest can reach, or one we caused through them: a lead, not an
# acquittal); "hung:" killed by QEMU after render-timeout; "ours:" blamed
# on pvgpu's own code, a UBSan report or a malformed message; "unsorted:"
# no report (a helper killed outright).  A helper built without a
# sanitizer reports its crashes itself ("pvgpu-render[PID]: fatal
# signal"), which are sorted the same way.
# Exits 1 if there is a death of ours, or with --strict (every crash of
# the helper is expected to leave a report) an unsorted one.
#
# Usage: scripts/fuzz-deaths.sh [--strict] LOG
#   -h, --help prints this.  Used by scripts/fuzz.sh and scripts/test.sh.
set -u

. "$(dirname "$0")/args.sh"
want_help "${1-}"
strict=0
if [ "${1-}" = --strict ]; then
    strict=1
    shift
fi
case "${1-}" in
-*)
    echo "$0: unknown option '$1'; try --help" >&2
    exit 2 ;;
esac
if [ $# != 1 ]; then
    echo "$0: one LOG to read; try --help" >&2
    exit 2
fi
if [ ! -r "$1" ]; then
    echo "$0: cannot read '$1'" >&2
    exit 2
fi

counts=$(awk '
function blame_of(pid) { return (pid in blamed) ? blamed[pid] : "" }
/==[0-9]+==ERROR: [A-Za-z]*Sanitizer/ {
    pid = $0; sub(/^==/, "", pid); sub(/==.*/, "", pid)
    cur = pid; first = ""; next
}
cur != "" && /^    #[0-9]+ / {
    if (first == "" &&
        $0 !~ /sysdeps\/|libsanitizer|libc\.so|libasan|unknown module/) {
        first = $0
    }
    next
}
cur != "" && /^SUMMARY:/ { blamed[cur] = first; cur = ""; next }
# the helper built without a sanitizer reports a crash itself
/^pvgpu-render\[[0-9]+\]: fatal signal / {
    own = $0; sub(/^pvgpu-render\[/, "", own); sub(/\].*/, "", own)
    ownfirst = ""; next
}
own != "" && /\) ?\[0x[0-9a-f]+\]$/ {
    if (ownfirst == "" && $0 !~ /libc\.so/) {
        ownfirst = $0
    }
    next
}
own != "" { blamed[own] = ownfirst; own = "" }
/: runtime error: / { ours++; print "ours: " $0 > "/dev/stderr"; next }
/the render process \(pid [0-9]+\)/ && /was killed|exited/ {
    pid = $0; sub(/.*the render process \(pid /, "", pid)
    sub(/\).*/, "", pid)
    b = blame_of(pid)
    sub(/^ +/, "", b)
    if ($0 ~ /render-timeout/) {
        hung++
        # (a sanitized helper prints its stack on SIGABRT with
        # ASAN_OPTIONS=handle_abort=1: one thread of it)
        print "hung: pid " pid (b != "" ? ": " b : "") > "/dev/stderr"
    } else if (b ~ /libvirglrenderer|libgallium|libLLVM|libEGL|_dri\.so/) {
        external++
        print "library: pid " pid ": " b > "/dev/stderr"
    } else if (b != "" || $0 ~ /malformed/) {
        ours++
        print "ours: " $0 > "/dev/stderr"
        if (b != "") print "ours:   blamed on " b > "/dev/stderr"
    } else {
        unknown++
        print "unsorted: " $0 > "/dev/stderr"
    }
}
END { printf "%d %d %d %d\n", external, hung, ours, unknown }' "$1") || exit 2
echo "$counts"
# shellcheck disable=SC2086
set -- $counts
if [ "$3" != 0 ] || { [ "$strict" = 1 ] && [ "$4" != 0 ]; }; then
    exit 1
fi
exit 0
