#!/bin/sh
# Every script's --help, and the man pages.  Prints TAP.
#
# Each program under scripts/ and tests/guest/ (each executable file) is
# run with --help in a sandbox: an empty current directory, HOME, TMPDIR and
# PVGPU_CACHE of its own, and PATH led by stubs of apt-get, sudo, meson,
# ninja, make, QEMU, debootstrap, pip and the like, which record that they
# were called and fail.  --help must exit 0, print a usage text on stdout,
# call no stub and leave every sandbox directory empty.  An unknown option
# must exit with status 2 and a message, with no stub called and no file
# made.
#
# Then each man page of docs/man/ must have been built by scripts/build.sh
# (build/docs/man/NAME.1, as new as its .rst), rst2man --strict and
# groff -ww must render it without a warning, and every option that
# pvgpu-poold --help and pvgpu-pool --help (and its commands' --help)
# print must be in its man page.  Without build/ these are skipped.
#
# Usage: tests/scripts-help.sh   (no arguments; -h, --help prints this)
set -u

usage() { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; }

case "${1-}" in
-h|--help) usage; exit 0 ;;
esac
if [ $# -gt 0 ]; then
    echo "$0: unknown argument '$1'; try --help" >&2
    exit 2
fi

repo=$(cd "$(dirname "$0")/.." && pwd)
# every program there is, not a list to keep: what is only sourced
# (guest-common.sh) or imported (harness.py) is not executable
SCRIPTS=$(cd "$repo" && for f in scripts/* tests/guest/*.py; do
              [ -f "$f" ] && [ -x "$f" ] && echo "$f"
          done)
STUBS="apt apt-get apt-cache dpkg dpkg-deb sudo su meson ninja make cc gcc
    ccache patch tar git qemu-system-x86_64 qemu-img debootstrap chroot
    mount umount pip pip3 xvfb-run Xvfb mkfs.ext4 cpio curl wget systemctl"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap 'exit 1' INT TERM
calls="$work/calls"
sandbox="$work/sandbox"

# The interpreter itself, not a pyenv shim: the sandbox has its own HOME.
python=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) ||
    python=/usr/bin/python3

mkdir -p "$work/stubs"
for s in $STUBS; do
    printf '#!/bin/sh\necho "%s $*" >> "%s"\nexit 1\n' "$s" "$calls" \
        > "$work/stubs/$s"
done
cat > "$work/stubs/python3" <<EOF
#!/bin/sh
case "\${1-} \${2-}" in
'-m pip'|'-m ensurepip'|'-m venv')
    echo "python3 \$*" >> "$calls"
    exit 1 ;;
esac
exec "$python" "\$@"
EOF
chmod +x "$work/stubs"/*

n=0
# tap DESCRIPTION PROBLEMS: one test point, passed if PROBLEMS is empty
tap() {
    n=$((n + 1))
    if [ -z "$2" ]; then
        echo "ok $n - $1"
    else
        echo "not ok $n - $1"
        printf '%s\n' "$2" | sed '/^$/d; s/^/#   /'
    fi
}

# skip DESCRIPTION REASON
skip() {
    n=$((n + 1))
    echo "ok $n - $1 # SKIP $2"
}

# sandboxed SCRIPT ARG...: run it in a fresh sandbox; sets rc
sandboxed() {
    rm -rf "$sandbox"
    mkdir -p "$sandbox/cwd" "$sandbox/home" "$sandbox/tmp"
    : > "$calls"
    script=$1
    shift
    (cd "$sandbox/cwd" &&
     HOME="$sandbox/home" XDG_CACHE_HOME="$sandbox/home/.cache" \
     TMPDIR="$sandbox/tmp" PVGPU_CACHE="$sandbox/cache" \
     PYTHONDONTWRITEBYTECODE=1 PATH="$work/stubs:$PATH" \
     timeout -k 5 60 "$repo/$script" "$@" \
        > "$work/stdout" 2> "$work/stderr" < /dev/null)
    rc=$?
}

# what the last sandboxed run did that it must not: prints it
side_effects() {
    [ -s "$calls" ] && sed 's/^/called: /' "$calls"
    for d in cwd home tmp; do
        find "$sandbox/$d" -mindepth 1 | sed "s|^$sandbox/|made: |"
    done
    [ -e "$sandbox/cache" ] && echo "made: PVGPU_CACHE"
    return 0
}

for s in $SCRIPTS; do
    for opt in --help -h; do
        sandboxed "$s" "$opt"
        bad=$(side_effects)
        [ "$rc" = 0 ] || bad="$bad
exit status $rc: $(head -c 300 "$work/stderr")"
        grep -qi usage "$work/stdout" || bad="$bad
no usage text on stdout"
        tap "$s $opt" "$bad"
    done

    sandboxed "$s" --no-such-option
    bad=$(side_effects)
    [ "$rc" = 2 ] || bad="$bad
exit status $rc, not 2"
    [ -s "$work/stderr" ] || bad="$bad
no message on stderr"
    tap "$s --no-such-option is refused" "$bad"
done

# --- man pages ----------------------------------------------------------

# options OUTPUT: the options a --help text lists, one a line
options() {
    awk '/^ +-/ {
        sub(/^ +/, ""); sub(/  .*/, "")
        n = split($0, w, /[ ,=]+/)
        for (i = 1; i <= n; i++)
            if (w[i] ~ /^(--[a-z][-a-z]*|-[A-Za-z])$/)
                print w[i]
    }'
}

# missing PAGE_TEXT: the options on stdin that PAGE_TEXT lacks
missing() {
    while read -r o; do
        grep -Eq -- "(^|[^-[:alnum:]])$o([^-[:alnum:]]|\$)" "$1" ||
            printf '%s ' "$o"
    done
}

man_dir="$repo/build/docs/man"
rst2man=$(command -v rst2man || command -v rst2man.py || true)
for rst in "$repo"/docs/man/*.rst; do
    name=$(basename "$rst" .rst)
    page="$man_dir/$name.1"
    if [ ! -d "$repo/build/" ]; then
        skip "man page $name renders without warnings" "no build/"
        continue
    fi
    bad=
    if [ ! -f "$page" ]; then
        bad="$page is missing (scripts/build.sh makes it)"
    elif [ -n "$(find "$rst" -newer "$page")" ]; then
        bad="$page is older than docs/man/$name.rst (run scripts/build.sh)"
    elif ! command -v groff > /dev/null; then
        bad="no groff (scripts/setup.sh installs groff-base)"
    else
        groff -man -Tutf8 -ww -z "$page" > "$work/groff" 2>&1 ||
            bad="groff failed"
        [ -s "$work/groff" ] && bad="$bad
$(cat "$work/groff")"
        if [ -z "$rst2man" ]; then
            bad="$bad
no rst2man (scripts/setup.sh installs python3-docutils)"
        elif ! "$rst2man" --strict "$rst" > /dev/null 2> "$work/rst2man"; then
            bad="$bad
$(cat "$work/rst2man")"
        fi
    fi
    tap "man page $name renders without warnings" "$bad"
    # as plain text, unhyphenated, for the option checks below
    [ -z "$bad" ] && groff -man -rHY=0 -Tascii -P-c -P-b -P-u "$page" \
        > "$work/$name.txt" 2> /dev/null
done

poold="$repo/build/contrib/pvgpu-pool/pvgpu-poold"
if [ ! -x "$poold" ]; then
    skip "pvgpu-poold(1) has every option of --help" "pvgpu-poold not built"
elif [ ! -f "$work/pvgpu-poold.txt" ]; then
    tap "pvgpu-poold(1) has every option of --help" "no man page to read"
else
    lack=$("$poold" --help | options | missing "$work/pvgpu-poold.txt")
    tap "pvgpu-poold(1) has every option of --help" "${lack:+missing: $lack}"
fi

if [ ! -f "$work/pvgpu-pool.txt" ]; then
    if [ -d "$repo/build/" ]; then
        tap "pvgpu-pool(1) has every command's options" "no man page to read"
    else
        skip "pvgpu-pool(1) has every command's options" "no build/"
    fi
else
    lack=$(for c in "" show set policy top; do
               # shellcheck disable=SC2086
               "$python" "$repo/scripts/pvgpu-pool" $c --help
           done | options | sort -u | missing "$work/pvgpu-pool.txt")
    for c in show set policy top; do
        grep -q "^ *$c" "$work/pvgpu-pool.txt" || lack="$lack$c "
    done
    tap "pvgpu-pool(1) has every command's options" "${lack:+missing: $lack}"
fi

echo "1..$n"
