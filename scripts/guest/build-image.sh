#!/usr/bin/env bash
# Build (once, cached) a Debian 12 guest image for tests that need what this host lacks: pure
# cgroup v2, systemd as PID 1 with D-Bus, AppArmor, a working CRIU. Only Debian packages.
#
#   scripts/guest/build-image.sh            # no-op when the cache has an image for this script
#   scripts/guest/build-image.sh --force    # rebuild
#
# Prints the image's directory on stdout (everything else goes to stderr): disk.img (ext4, 4G
# sparse), vmlinuz, initrd.img, stamp. The cache is the machine's, not the checkout's, so every
# checkout and CI run on a machine shares it: $HUSK_GUEST_CACHE (default /var/cache/husk-guest)/KEY,
# where KEY is the sha256 of this script and the mirror: edit the script and the next run
# rebuilds, into a new directory (a guest booted from the old one is not disturbed). Builds are
# serialised by a lock; images not used for 3 days are removed after a build. Downloaded .debs
# are kept in $HUSK_GUEST_CACHE/debs, so a rebuild does not download them again.
# The chroot work runs in a private mount namespace (unshare -m): nothing stays mounted on the host.
#
# The guest boots (scripts/guest/run.sh) straight from vmlinuz + initrd.img; at boot the unit
# husk-guest-job.service mounts the 9p share (tag "share") at /mnt/share, runs the job named by
# husk.job=PATH on the kernel command line (relative to the share; default .guest-job.sh) with
# its output on /dev/ttyS0, writes its exit status to husk.status=PATH, and powers off.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
self=$repo/scripts/guest/build-image.sh
mirror=${GUEST_MIRROR:-http://deb.debian.org/debian}
key=$({ cat "$self"; echo "$mirror"; } | sha256sum | cut -c1-16)
top=${HUSK_GUEST_CACHE:-/var/cache/husk-guest}
cache=$top/$key

force=
[ "${1:-}" = --force ] && force=1

up_to_date() {
    [ -s "$cache/stamp" ] && [ "$(cat "$cache/stamp")" = "$key" ] &&
        [ -s "$cache/disk.img" ] && [ -s "$cache/vmlinuz" ] && [ -s "$cache/initrd.img" ]
}
if [ -z "$force" ] && up_to_date; then
    touch "$cache/used" 2>/dev/null || true
    echo ">> guest image up to date ($cache)" >&2
    echo "$cache"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "build-image: needs root (debootstrap, chroot)" >&2
    exit 1
fi
mkdir -p "$top/debs"
exec 9>"$top/lock"
if ! flock -n 9; then
    echo ">> build-image: waiting for another build in $top" >&2
    flock 9
fi
if [ -z "$force" ] && up_to_date; then # built meanwhile
    touch "$cache/used"
    echo ">> guest image up to date ($cache)" >&2
    echo "$cache"
    exit 0
fi

. "$repo/scripts/lib/deps.sh"
apt_need debootstrap e2fsprogs

packages=(
    linux-image-amd64 systemd-sysv dbus udev kmod
    apparmor apparmor-utils criu iptables busybox-static
    libpam-systemd dbus-user-session uidmap jq iproute2 procps util-linux e2fsprogs runc
    podman containernetworking-plugins
)

start=$(date +%s)
build=$top/build.$key
root=$build/root
rm -rf "$build"
mkdir -p "$root"

echo ">> debootstrap bookworm into $root" >&2
debootstrap --variant=minbase --cache-dir="$top/debs" \
    --include="$(IFS=,; echo "${packages[*]}")" bookworm "$root" "$mirror" >&2
t_deboot=$(($(date +%s) - start))

# --- files of the guest ------------------------------------------------------------------------
echo husk-guest >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 husk-guest\n::1 localhost\n' >"$root/etc/hosts"
echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' >"$root/etc/fstab"

# Small initrd: only the modules a virtio guest with a 9p share needs.
sed -i 's/^MODULES=.*/MODULES=list/' "$root/etc/initramfs-tools/initramfs.conf"
printf '%s\n' virtio_pci virtio_blk virtio_console virtio_rng 9p 9pnet 9pnet_virtio ext4 \
    crc32c_generic >"$root/etc/initramfs-tools/modules"
# 9p at boot for the job unit (not needed in the initrd, but loaded early and cheaply).
printf '%s\n' 9p 9pnet_virtio >"$root/etc/modules-load.d/husk-guest.conf"

# All controllers accounted by systemd, so they are enabled in the root's subtree_control.
mkdir -p "$root/etc/systemd/system.conf.d" "$root/etc/systemd/system/user@.service.d"
cat >"$root/etc/systemd/system.conf.d/husk-guest.conf" <<'EOF'
[Manager]
DefaultCPUAccounting=yes
DefaultIOAccounting=yes
DefaultMemoryAccounting=yes
DefaultTasksAccounting=yes
DefaultTimeoutStopSec=10s
EOF
# Delegation to unprivileged users (rootless husk under user@UID.service); husk lingers, so
# user@1000.service runs from boot.
cat >"$root/etc/systemd/system/user@.service.d/delegate.conf" <<'EOF'
[Service]
Delegate=cpu cpuset io memory pids
EOF

cat >"$root/usr/local/sbin/husk-guest-job" <<'EOF'
#!/bin/sh
# Run the job from the 9p share, output on the serial console, then power off.
exec </dev/null >/dev/ttyS0 2>&1
arg() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" /proc/cmdline; }
job=$(arg husk.job); job=${job:-.guest-job.sh}
status=$(arg husk.status); status=${status:-.guest-status}
mkdir -p /mnt/share
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 share /mnt/share; then
    echo "husk-guest: cannot mount the 9p share (tag share)"
    systemctl poweroff --no-block || poweroff -f
    exit 1
fi
# Enable every available controller for delegation below the root.
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
    echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null ||
        echo "husk-guest: cannot enable controller $c in the root"
done
echo "$(cut -d' ' -f1 /proc/uptime)" >"/mnt/share/$job.started" 2>/dev/null || true
cd /mnt/share
rc=0
HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/bash "/mnt/share/$job" || rc=$?
echo "$rc" >"/mnt/share/$status"
sync
cd /
systemctl poweroff --no-block || poweroff -f
EOF
chmod 755 "$root/usr/local/sbin/husk-guest-job"

cat >"$root/etc/systemd/system/husk-guest-job.service" <<'EOF'
[Unit]
Description=husk guest job (from the 9p share)
After=local-fs.target dbus.service systemd-user-sessions.service systemd-modules-load.service
Wants=dbus.service

[Service]
Type=simple
ExecStart=/usr/local/sbin/husk-guest-job
StandardInput=null
StandardOutput=journal+console
StandardError=journal+console
TimeoutStopSec=5s

[Install]
WantedBy=multi-user.target
EOF

# --- chroot work, in a private mount namespace ----------------------------------------------------
echo ">> configuring the guest (chroot, private mount namespace)" >&2
unshare -m --propagation private /bin/bash -euo pipefail -c '
    root=$1
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"
    mount --rbind /dev "$root/dev"
    chroot "$root" /bin/bash -euo pipefail -c "
        export DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin
        systemctl enable husk-guest-job.service
        systemctl mask serial-getty@ttyS0.service getty@tty1.service systemd-timesyncd.service \
            apt-daily.timer apt-daily-upgrade.timer e2scrub_reap.service 2>/dev/null || true
        passwd -d root >/dev/null
        id husk >/dev/null 2>&1 || useradd -m -s /bin/bash husk
        grep -q ^husk: /etc/subuid || echo husk:100000:65536 >>/etc/subuid
        grep -q ^husk: /etc/subgid || echo husk:100000:65536 >>/etc/subgid
        mkdir -p /var/lib/systemd/linger && touch /var/lib/systemd/linger/husk
        update-initramfs -u -k all >/dev/null
        apt-get clean
    "
' bash "$root" >&2

kver=$(ls "$root/boot" | sed -n 's/^vmlinuz-//p' | sort -V | tail -1)
cp "$root/boot/vmlinuz-$kver" "$build/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$build/initrd.img"

echo ">> packing the root into disk.img (ext4, 4G sparse)" >&2
mkfs.ext4 -q -L husk-guest -d "$root" "$build/disk.img" 4G >&2
rm -rf "$root"
echo "$key" >"$build/stamp"
touch "$build/used"
rm -rf "$cache.old"
[ -e "$cache" ] && mv "$cache" "$cache.old"
mv "$build" "$cache"
rm -rf "$cache.old"
echo ">> guest image built in $(($(date +%s) - start)) s (debootstrap ${t_deboot} s) in $cache; kernel $kver," \
    "initrd $(du -h "$cache/initrd.img" | cut -f1), image $(du -h "$cache/disk.img" | cut -f1) used" >&2

# Images of other versions of this script that nobody booted for 3 days.
for d in "$top"/*; do
    [ -f "$d/stamp" ] && [ "$d" != "$cache" ] || continue
    if [ -z "$(find "$d/used" "$d/stamp" -maxdepth 0 -mtime -3 2>/dev/null)" ]; then
        echo ">> removing the unused guest image $d" >&2
        rm -rf "$d"
    fi
done
echo "$cache"
