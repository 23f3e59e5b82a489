#!/bin/sh
# Check the README's two commands on a fresh Debian 12: debootstrap a new
# minbase bookworm system, clone the repository's committed HEAD (or REF)
# into it as /root/pvgpu and run there, as root and exactly as the README
# writes them, scripts/demo.sh and then scripts/test.sh.  Anything the
# scripts use that scripts/setup.sh does not install fails here.
#
# Usage: scripts/check-fresh.sh [OPTION]... [REF]
#
#   REF                  the commit to check (default HEAD).  Only committed
#                        state is checked: the working tree's changes are not.
#   --dir DIR            work directory (default $PVGPU_FRESH_DIR, else
#                        /var/tmp/pvgpu-fresh)
#   --mirror URL         Debian mirror (default http://deb.debian.org/debian)
#   --demo-timeout SECS  limit for scripts/demo.sh (default 5400)
#   --test-timeout SECS  limit for scripts/test.sh (default 7200)
#   --clean              remove the chroot at the end (default: keep it for
#                        inspection until the next run)
#   -h, --help           print this and exit
#
# The work directory holds:
#   debs/         debootstrap's download cache (--cache-dir), so reruns
#                 download only what changed; the system is made anew by
#                 every run
#   root/         the chroot, removed and re-made by every run
#   logs/STAMP/   one run: debootstrap.log, demo.log, test.log, summary and
#                 the demo's PNGs
#
# The chroot is bind-mounted onto itself (its / is a mount point, as on a
# machine) and /proc, /sys, /dev, /dev/pts and /dev/shm into it.  On
# exit, on failure and on Ctrl-C every process left in the chroot is
# stopped and everything mounted under it (also what a nested debootstrap
# left behind) is unmounted; nothing under it is removed while anything
# is still mounted there.
#
# Needs root, debootstrap, git, findmnt, flock and the network.
# Exit status: 0 if both commands succeeded, 1 if not, 2 for a usage error.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${PVGPU_FRESH_DIR:-/var/tmp/pvgpu-fresh}
mirror=http://deb.debian.org/debian
suite=bookworm
demo_timeout=5400
test_timeout=7200
clean=no
ref=HEAD

log() { echo "pvgpu-check-fresh: $*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '2,/^set -eu$/{/^set -eu$/d;s/^# \{0,1\}//;p}' "$0"
}

need_arg() {
    [ $# -ge 2 ] || { log "$1 needs an argument"; exit 2; }
}

while [ $# -gt 0 ]; do
    case "$1" in
    -h|--help) usage; exit 0 ;;
    --dir) need_arg "$@"; dir=$2; shift ;;
    --mirror) need_arg "$@"; mirror=$2; shift ;;
    --demo-timeout) need_arg "$@"; demo_timeout=$2; shift ;;
    --test-timeout) need_arg "$@"; test_timeout=$2; shift ;;
    --clean) clean=yes ;;
    -*) log "unknown option $1 (see --help)"; exit 2 ;;
    *) ref=$1 ;;
    esac
    shift
done

for t in "$demo_timeout" "$test_timeout"; do
    case "$t" in
    ''|*[!0-9]*) log "timeout must be a number of seconds, not '$t'"; exit 2 ;;
    esac
done

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, mount, chroot)"
for tool in debootstrap git findmnt flock timeout chroot; do
    command -v "$tool" > /dev/null || die "$tool not found"
done

sha=$(git -C "$repo" rev-parse --verify -q "$ref^{commit}") ||
    die "$ref is not a commit in $repo"

mkdir -p "$dir"
dir=$(cd "$dir" && pwd -P)
case "$dir" in
/|*[!A-Za-z0-9/._+-]*) die "work directory '$dir' must not be / and needs a plain path" ;;
esac
root="$dir/root"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
logs="$dir/logs/$stamp"

# one run per work directory at a time
exec 9> "$dir/lock"
flock -n 9 || die "another check-fresh.sh is running in $dir"

# --- mounts, processes and cleanup ------------------------------------------

# every mount point at or under $root, deepest first
mounts_under_root() {
    findmnt -rn -o TARGET | awk -v r="$root" '$0 == r || index($0, r "/") == 1' |
        sort -r
}

# every process whose root directory is the chroot or a chroot inside it
pids_in_root() {
    for p in /proc/[0-9]*; do
        r=$(readlink "$p/root" 2> /dev/null) || continue
        case "$r" in
        "$root"|"$root"/*) echo "${p#/proc/}" ;;
        esac
    done
}

stop_chroot_processes() {
    for sig in TERM TERM KILL KILL; do
        pids=$(pids_in_root)
        [ -n "$pids" ] || return 0
        log "stopping processes left in the chroot (SIG$sig): $(echo "$pids" | tr "\n" " ")"
        # shellcheck disable=SC2086
        kill -s "$sig" $pids 2> /dev/null || true
        sleep 3
    done
    pids=$(pids_in_root)
    [ -z "$pids" ] || log "warning: processes still in the chroot: $(echo "$pids" | tr "\n" " ")"
}

unmount_root() {
    for _ in 1 2 3; do
        m=$(mounts_under_root)
        [ -n "$m" ] || return 0
        for t in $m; do
            umount "$t" 2> /dev/null || true
        done
        [ -n "$(mounts_under_root)" ] || return 0
        sleep 2
    done
    for t in $(mounts_under_root); do
        log "warning: $t is busy; detaching it lazily"
        umount -l "$t" || true
    done
    [ -z "$(mounts_under_root)" ]
}

# rm -rf the chroot, only when nothing at all is mounted under it
remove_root() {
    [ -e "$root" ] || return 0
    m=$(mounts_under_root)
    [ -z "$m" ] || die "refusing to remove $root, still mounted: $(echo "$m" | tr "\n" " ")"
    rm -rf --one-file-system "$root"
}

job=
cleanup() {
    status=$?
    # a second Ctrl-C must not cut the unmounting short
    trap '' INT TERM HUP
    trap - EXIT
    if [ -n "$job" ]; then
        kill -s TERM "$job" 2> /dev/null || true
        wait "$job" 2> /dev/null || true
    fi
    stop_chroot_processes
    if unmount_root; then
        log "unmounted everything under $root"
    else
        log "error: still mounted under $root: $(mounts_under_root | tr "\n" " ")"
        status=1
    fi
    if [ "$clean" = yes ] && [ -z "$(mounts_under_root)" ]; then
        rm -rf --one-file-system "$root"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP

bind() {
    # $1 host path, mounted onto the same path in the chroot
    mkdir -p "$root$1"
    mount --bind "$1" "$root$1"
    mount --make-private "$root$1"
}

# --- 1. a fresh system --------------------------------------------------------

mkdir -p "$logs" "$dir/debs"
# a previous run's chroot, and anything it may have left mounted
stop_chroot_processes
unmount_root || die "cannot unmount what is left under $root"
remove_root

log "commit $sha ($ref)"
log "logs in $logs"
t0=$(date +%s)
begin=$t0
log "debootstrap --variant=minbase $suite from $mirror"
# in the background, like the commands below, so that a signal reaches
# the trap at once rather than when debootstrap is done
debootstrap --variant=minbase --cache-dir="$dir/debs" "$suite" "$root" "$mirror" \
    > "$logs/debootstrap.log" 2>&1 < /dev/null 9>&- &
job=$!
rc=0
wait "$job" || rc=$?
job=
if [ "$rc" != 0 ]; then
    tail -n 20 "$logs/debootstrap.log" >&2
    die "debootstrap failed with status $rc (log: $logs/debootstrap.log)"
fi
log "debootstrap done in $(($(date +%s) - t0))s"

# the chroot's / a mount point of its own, as a machine's root is: a test
# may make it private in a mount namespace (unshare --propagation private,
# tests/guest/libvirt-guest.py), which fails on a plain directory
mount --bind "$root" "$root"
mount --make-private "$root"
bind /proc
bind /sys
bind /dev
bind /dev/pts
[ -d /dev/shm ] && bind /dev/shm
rm -f "$root/etc/resolv.conf"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"

# --- 2. a clone of the commit (the chroot has no git) -------------------------

clone="$root/root/pvgpu"
git clone -q --no-hardlinks --no-checkout "$repo" "$clone"
git -C "$clone" cat-file -e "$sha^{commit}" 2> /dev/null ||
    git -C "$clone" fetch -q "$repo" "$ref"
git -C "$clone" checkout -q --detach "$sha"
[ -z "$(git -C "$clone" status --porcelain)" ] || die "the clone is not clean"

# --- 3. the README's two commands, as root in the chroot ----------------------

fmt_time() {
    printf '%dm%02ds' $(($1 / 60)) $(($1 % 60))
}

# run NAME TIMEOUT COMMAND: run COMMAND in the clone inside the chroot with
# a login-like environment; sets rc and secs
run() {
    name=$1
    limit=$2
    log "$name: $3 (timeout $(fmt_time "$limit"), log $logs/$name.log)"
    start=$(date +%s)
    timeout -k 60 "$limit" chroot "$root" /usr/bin/env -i \
        HOME=/root USER=root LOGNAME=root SHELL=/bin/sh TERM=dumb \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        /bin/sh -c "cd /root/pvgpu && $3" \
        > "$logs/$name.log" 2>&1 < /dev/null 9>&- &
    job=$!
    rc=0
    wait "$job" || rc=$?
    job=
    secs=$(($(date +%s) - start))
    if [ "$rc" = 124 ]; then
        log "$name: timed out after $(fmt_time "$secs")"
    else
        log "$name: exit status $rc after $(fmt_time "$secs")"
    fi
    # whatever it left running (a QEMU, a nested chroot) must not outlive it
    stop_chroot_processes
}

run demo "$demo_timeout" scripts/demo.sh
demo_rc=$rc
demo_secs=$secs
run test "$test_timeout" scripts/test.sh
test_rc=$rc
test_secs=$secs

# --- 4. report ------------------------------------------------------------------

ok=yes
describe_rc() {
    case "$1" in
    0) echo "exit status 0" ;;
    124) echo "timed out (exit status 124)" ;;
    *) echo "exit status $1" ;;
    esac
}

# failures LOG: the first failed checks and bail-outs of a TAP log
failures() {
    grep -E '^(not ok|Bail out!)' "$1" | head -n 10 | sed 's/^/  /'
}

{
    echo "check-fresh: commit $sha ($ref), minbase $suite from $mirror"
    echo "demo: scripts/demo.sh: $(describe_rc "$demo_rc"), wall time $(fmt_time "$demo_secs")"
    [ "$demo_rc" = 0 ] || ok=no
    for png in pvgpu-demo.png pvgpu-demo-gl.png; do
        f="$clone/$png"
        if [ -s "$f" ]; then
            cp "$f" "$logs/$png"
            echo "  $png: $(stat -c %s "$f") bytes"
        else
            echo "  $png: missing"
            ok=no
        fi
    done
    failures "$logs/demo.log"
    final=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$logs/test.log" | tail -n 1 || true)
    echo "test: scripts/test.sh: $(describe_rc "$test_rc"), wall time $(fmt_time "$test_secs")"
    echo "  ${final:-no final \"N passed, N failed\" line}"
    failures "$logs/test.log"
    case "$final" in
    *" 0 failed") ;;
    *) ok=no ;;
    esac
    [ "$test_rc" = 0 ] || ok=no
    echo "total wall time $(fmt_time $(($(date +%s) - begin))) (debootstrap, demo, test)"
    if [ "$ok" = yes ]; then
        echo "result: PASS"
    else
        echo "result: FAIL (logs: $logs)"
    fi
} > "$logs/summary"

if [ "$demo_rc" != 0 ]; then
    echo "--- last lines of demo.log:"
    tail -n 25 "$logs/demo.log"
fi
if [ "$test_rc" != 0 ]; then
    echo "--- last lines of test.log:"
    tail -n 25 "$logs/test.log"
fi
cat "$logs/summary"
grep -q '^result: PASS$' "$logs/summary"
