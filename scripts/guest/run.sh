#!/usr/bin/env bash
# Boot the Debian 12 test guest (scripts/guest/build-image.sh), run COMMAND in it as root in the
# repository directory (shared over 9p at /mnt/share and at the repository's own path), stream
# its output, exit with its status.
#
#   scripts/guest/run.sh [--timeout SECS] [--mem SIZE] [--smp N] -- COMMAND [ARG...]
#   scripts/guest/run.sh -- scripts/guest/smoke.sh
#
# The guest sees this repository (including the husk binary from the host build) read-write;
# the disk image is used with -snapshot and stays pristine. The guest powers itself off after
# COMMAND. After --timeout seconds (default 1200) qemu is killed and run.sh exits 124.
# Exit status: COMMAND's, or 124 (timed out), 125 (the guest ended without running COMMAND),
# 130 (run.sh got SIGINT/SIGTERM and stopped qemu).
# KVM is used when /proc/cpuinfo shows vmx or svm, else TCG emulation (about 10x slower).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=$repo/.cache/guest

timeout_s=1200 mem=2G smp=2
while [ $# -gt 0 ]; do
    case $1 in
    --timeout) timeout_s=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --smp) smp=$2; shift 2 ;;
    --) shift; break ;;
    *) break ;;
    esac
done
if [ $# -eq 0 ]; then
    echo "usage: $0 [--timeout SECS] [--mem SIZE] [--smp N] -- COMMAND [ARG...]" >&2
    exit 2
fi

img=$("$repo/scripts/guest/build-image.sh")
"$repo/scripts/guest/install-qemu.sh"

if grep -qwE 'vmx|svm' /proc/cpuinfo && [ -w /dev/kvm ]; then
    accel=(-accel kvm -cpu host)
else
    accel=(-accel tcg -cpu max)
fi

mkdir -p "$cache/jobs"
jobdir=$(mktemp -d "$cache/jobs/XXXXXX")
rel=${jobdir#"$repo"/}
trap 'rm -rf "$jobdir"' EXIT
# The share is also mounted at the repository's host path, so paths compiled into the host's
# build (CARGO_BIN_EXE_husk, CARGO_MANIFEST_DIR, CARGO_TARGET_TMPDIR) resolve in the guest.
here=$(cd "$repo" && pwd -P)
{
    printf 'mkdir -p %q && mount --bind /mnt/share %q && cd %q || exit 125\n' "$here" "$here" "$here"
    echo "export HUSK_GUEST=1"
    printf 'exec'
    printf ' %q' "$@"
    echo
} >"$jobdir/job.sh"

append="root=/dev/vda rw console=ttyS0 quiet loglevel=3 mitigations=off fsck.mode=skip panic=-1"
append+=" systemd.unified_cgroup_hierarchy=1 apparmor=1 security=apparmor systemd.show_status=0"
append+=" husk.job=$rel/job.sh husk.status=$rel/status"

echo ">> guest: ${accel[1]}, $mem, $smp CPUs, timeout ${timeout_s}s: $*" >&2
t0=$(date +%s.%N)
rc=0
timeout -k 5 "$timeout_s" qemu-system-x86_64 "${accel[@]}" -m "$mem" -smp "$smp" \
    -nographic -nodefaults -serial mon:stdio -no-reboot -snapshot \
    -kernel "$img/vmlinuz" -initrd "$img/initrd.img" -append "$append" \
    -drive file="$img/disk.img",if=virtio,format=raw \
    -virtfs local,path="$repo",mount_tag=share,security_model=none \
    -device virtio-rng-pci \
    </dev/null > >(sed -u 's/\r$//; s/\x1bc\x1b\[?7l\x1b\[2J\(\x1b\[0m\)\?//g') 2>&1 &
qpid=$!
interrupted=
trap 'interrupted=1; kill -TERM $qpid 2>/dev/null || true' INT TERM
while :; do
    wait $qpid && rc=0 || rc=$?
    kill -0 $qpid 2>/dev/null || break
done
t1=$(date +%s.%N)

mtime() { stat -c %.9Y "$1" 2>/dev/null; }
since() { awk -v a="$t0" -v b="$1" 'BEGIN { printf "%.1f", b - a }'; }
started=$(mtime "$jobdir/job.sh.started" || true)
ended=$(mtime "$jobdir/status" || true)
summary="total $(since "$t1") s"
[ -n "$started" ] && summary="boot-to-first-command $(since "$started") s, $summary" &&
    summary+=" (guest uptime at start $(cat "$jobdir/job.sh.started") s)"
[ -n "$started" ] && [ -n "$ended" ] &&
    summary+=", command $(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.1f", b - a }') s"

if [ -n "$interrupted" ]; then
    echo ">> guest: interrupted, qemu stopped ($summary)" >&2
    exit 130
fi
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo ">> guest: TIMED OUT after ${timeout_s} s, qemu killed ($summary)" >&2
    exit 124
fi
if [ ! -s "$jobdir/status" ]; then
    echo ">> guest: ended (qemu status $rc) without a command status ($summary)" >&2
    exit 125
fi
status=$(cat "$jobdir/status")
echo ">> guest: command exited $status; $summary" >&2
exit "$status"
