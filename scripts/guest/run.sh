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
# A guest whose kernel hangs is killed early: when the console reports a soft lockup of
# HUSK_GUEST_LOCKUP_S seconds (default 120; a CPU stuck in the kernel, preemption off, that
# long is never a slow host: TCG guests were seen to hang so from boot, both CPUs stuck, until
# the timeout) or COMMAND has not started HUSK_GUEST_BOOT_S seconds (default 360) after qemu.
# Exit status: COMMAND's, or 124 (timed out), 125 (the guest ended without running COMMAND),
# 126 (the guest hung: killed early, as above), 130 (run.sh got SIGINT/SIGTERM and stopped qemu).
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

# noinit_itable: mkfs.ext4 leaves the inode tables to be zeroed by the kernel at first mount,
# and with -snapshot every boot is the first: ext4lazyinit would write 64 MiB in the background
# of every test run (it was one of the two tasks stuck in the hung boots). loglevel=5: the
# kernel's warnings reach the console, among them a soft lockup's registers and stack (a boot
# prints ~10 lines of them).
append="root=/dev/vda rootflags=noinit_itable rw console=ttyS0 quiet loglevel=5 mitigations=off fsck.mode=skip panic=-1"
append+=" systemd.unified_cgroup_hierarchy=1 apparmor=1 security=apparmor systemd.show_status=0"
append+=" husk.job=$rel/job.sh husk.status=$rel/status"

lockup_s=${HUSK_GUEST_LOCKUP_S:-120} boot_s=${HUSK_GUEST_BOOT_S:-360}
# Copies the console through and, at the first soft lockup of lockup_s seconds, writes why into
# $jobdir/hung and stops qemu (its pid is in $jobdir/qemu.pid by then: the kernel's watchdog
# reports a lockup after 20 s at the earliest). grep, not awk: mawk fills its input buffer
# before it looks at a line, so it would see the lockup only when qemu exits.
watch_console() {
    tee -p >(grep --line-buffered -o 'soft lockup - CPU#[0-9]* stuck for [0-9]*s' | {
        stopped=
        while read -r report; do
            secs=${report##* for } secs=${secs%s}
            if [ -z "$stopped" ] && [ "$secs" -ge "$lockup_s" ]; then
                echo "a CPU stuck in the kernel for $secs s (soft lockup)" >"$jobdir/hung"
                kill -TERM "$(cat "$jobdir/qemu.pid")" 2>/dev/null || true
                stopped=1
            fi
        done
    })
}

echo ">> guest: ${accel[1]}, $mem, $smp CPUs, timeout ${timeout_s}s: $*" >&2
t0=$(date +%s.%N)
rc=0
timeout -k 5 "$timeout_s" qemu-system-x86_64 "${accel[@]}" -m "$mem" -smp "$smp" \
    -nographic -nodefaults -serial mon:stdio -no-reboot -snapshot \
    -kernel "$img/vmlinuz" -initrd "$img/initrd.img" -append "$append" \
    -drive file="$img/disk.img",if=virtio,format=raw \
    -virtfs local,path="$repo",mount_tag=share,security_model=none \
    -device virtio-rng-pci \
    </dev/null > >(sed -u 's/\r$//; s/\x1bc\x1b\[?7l\x1b\[2J\(\x1b\[0m\)\?//g' | watch_console) 2>&1 &
qpid=$!
echo "$qpid" >"$jobdir/qemu.pid"
(
    sleep "$boot_s" &
    trap 'kill $! 2>/dev/null; exit 0' TERM
    wait $!
    if [ ! -e "$jobdir/job.sh.started" ]; then
        echo "the command had not started ${boot_s} s after qemu" >"$jobdir/hung"
        kill -TERM "$qpid" 2>/dev/null
    fi
) </dev/null >/dev/null 2>&1 &
boot_watch=$!
interrupted=
trap 'interrupted=1; kill -TERM $qpid 2>/dev/null || true' INT TERM
while :; do
    wait $qpid && rc=0 || rc=$?
    kill -0 $qpid 2>/dev/null || break
done
kill "$boot_watch" 2>/dev/null || true
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
if [ -s "$jobdir/hung" ]; then
    echo ">> guest: HUNG, qemu killed: $(cat "$jobdir/hung") ($summary)" >&2
    exit 126
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
