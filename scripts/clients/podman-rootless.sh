#!/usr/bin/env bash
# Drive husk through rootless Podman 4.3: podman, conmon and husk run as an unprivileged user
# with /etc/subuid and /etc/subgid ranges. Podman maps the user and its subordinate range into
# its user namespace with newuidmap/newgidmap and runs husk there as that namespace's root,
# without --root (husk's state goes to $XDG_RUNTIME_DIR/husk, as runc's to .../runc). Own
# storage (vfs), runroot, XDG_RUNTIME_DIR and containers.conf; no network. Without cgroups
# (MODE cgroupfs, this v1 host: nothing delegated), or with the user's systemd (MODE systemd, the
# guest: cgroup v2, the user's manager on /run/user/UID/bus, Podman's cgroup_manager "systemd",
# husk run with --systemd-cgroup). Each check prints one line.
#   scripts/clients/podman-rootless.sh [HUSK_BIN] [USER] [MODE]   (run as root; USER:
#   husk-rootless-test, MODE: cgroupfs)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/deps.sh
husk=${1:-$(release_bin husk)}
user=${2:-husk-rootless-test}
mode=${3:-cgroupfs}
client=podman-rootless
. scripts/clients/lib.sh
uid=$(id -u "$user")
gid=$(id -g "$user")
subuid=$(awk -F: -v u="$user" '$1 == u { print $2 ":" $3; exit }' /etc/subuid)
subgid=$(awk -F: -v u="$user" '$1 == u { print $2 ":" $3; exit }' /etc/subgid)
[ -n "$subuid" ] && [ -n "$subgid" ] || { echo "FAIL podman-rootless: $user has no /etc/subuid or /etc/subgid range"; exit 1; }
bus=
[ "$mode" = cgroupfs ] || bus=unix:path=/run/user/$uid/bus
# Podman's defaults raise RLIMIT_NPROC beyond what a user may where the limit is lower (the
# guest): the runtime then fails its setrlimit, as runc does.
ulimits='"nofile=20000:20000", "nproc=32768:32768"'
[ "$mode" = cgroupfs ] || ulimits='"nofile=1024:1024"'

work=$(mktemp -d /tmp/husk-podman-rootless.XXXXXX)
chmod 755 "$work"
as_user() {
    setpriv --reuid "$uid" --regid "$gid" --clear-groups \
        env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin USER="$user" LOGNAME="$user" HOME="$work/home" \
        XDG_RUNTIME_DIR="$work/xdg" CONTAINERS_CONF="$work/containers.conf" \
        ${bus:+DBUS_SESSION_BUS_ADDRESS=$bus} "$@"
}
P=(as_user podman --root "$work/storage" --runroot "$work/run" --storage-driver vfs --runtime husk)
cleanup() {
    "${P[@]}" rm -af -t 0 >/dev/null 2>&1 || true
    # Podman's pause process holds its user namespace open for later calls: ours goes with us.
    if [ -s "$work/xdg/libpod/tmp/pause.pid" ]; then kill "$(cat "$work/xdg/libpod/tmp/pause.pid")" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/home" "$work/xdg" "$work/vol"
chmod 700 "$work/xdg"
# Podman hands the runtime its XDG_RUNTIME_DIR, which for a user with a manager holds its bus.
[ -z "$bus" ] || ln -s "/run/user/$uid/bus" "$work/xdg/bus"
cat >"$work/containers.conf" <<TOML
[containers]
default_ulimits = [$ulimits]
[engine]
runtime_supports_json = ["husk"]
cgroup_manager = "$mode"
events_logger = "file"
[engine.runtimes]
husk = ["$husk"]
TOML
HUSK_BIN=$husk scripts/mkbundle.sh "$work/bundle" >/dev/null
scripts/clients/oci-image.sh "$work/bundle/rootfs" "$work/image.tar" docker.io/library/huskbox:latest
chown -R "$uid:$gid" "$work"
"${P[@]}" load -q -i "$work/image.tar" >/dev/null 2>&1
R=("${P[@]}" run --rm --network none)
check "run --rm echo" "hi" "$("${R[@]}" huskbox echo hi 2>&1)"
check "uid map: the user as root, its subuid range from 1" "0 $uid 1,1 ${subuid/:/ }" \
    "$("${R[@]}" huskbox sh -c 'cat /proc/self/uid_map' | awk '{ print $1, $2, $3 }' | paste -sd,)"
check "gid map: the user's group as root, its subgid range from 1" "0 $gid 1,1 ${subgid/:/ }" \
    "$("${R[@]}" huskbox sh -c 'cat /proc/self/gid_map' | awk '{ print $1, $2, $3 }' | paste -sd,)"
"${R[@]}" -v "$work/vol:/vol" huskbox sh -c 'touch /vol/by-root' >/dev/null 2>&1
check "a file made by container root is the user's" "$uid:$gid" "$(stat -c %u:%g "$work/vol/by-root" 2>&1)"
chmod 777 "$work/vol"
"${R[@]}" -v "$work/vol:/vol" --user 1000:1000 huskbox sh -c 'touch /vol/by-1000' >/dev/null 2>&1
check "a file made by container uid 1000 is subuid+999" "$((${subuid%%:*} + 999)):$((${subgid%%:*} + 999))" \
    "$(stat -c %u:%g "$work/vol/by-1000" 2>&1)"
check "Podman's default seccomp profile applied" "2" \
    "$("${R[@]}" huskbox sh -c 'grep ^Seccomp: /proc/self/status | cut -f2')"
set +e
"${R[@]}" huskbox sh -c 'exit 5' >/dev/null 2>&1
check "exit status" "5" "$?"
"${R[@]}" huskbox nosuchcmd >/dev/null 2>&1
check "missing command is 127" "127" "$?"
set -e
check "tty via console socket" "/dev/pts/0" "$("${R[@]}" -t huskbox tty </dev/null | tr -d '\r')"
"${P[@]}" run -d --name pmd --network none huskbox sleep 100 >/dev/null
check "detached running" "running" "$("${P[@]}" inspect -f '{{.State.Status}}' pmd)"
check "exec" "hi" "$("${P[@]}" exec pmd echo hi 2>&1)"
check "exec --user 1000" "1000" "$("${P[@]}" exec --user 1000 pmd id -u 2>&1)"
set +e
"${P[@]}" exec pmd sh -c 'exit 3' >/dev/null 2>&1
check "exec exit status" "3" "$?"
set -e
check "--pid container: joins its pid namespace" "sleep 100" \
    "$("${R[@]}" --pid container:pmd huskbox sh -c 'tr "\0" " " </proc/1/cmdline' 2>&1 | sed 's/ $//')"
if [ "$mode" = systemd ]; then
    check "cgroup: a limit in the container's own cgroup" "67108864" \
        "$("${R[@]}" --memory 64m huskbox cat /sys/fs/cgroup/memory.max 2>&1)"
    pid=$("${P[@]}" inspect -f '{{.State.Pid}}' pmd)
    check_match "cgroup: the container's scope is the user manager's" \
        "^0::/user.slice/user-$uid.slice/user@$uid.service/.*\.scope$" "$(cat "/proc/$pid/cgroup")"
    check "exec lands in the container's cgroup" "0::/" "$("${P[@]}" exec pmd cat /proc/self/cgroup 2>&1)"
    "${P[@]}" pause pmd >/dev/null 2>&1
    check "pause" "paused" "$("${P[@]}" inspect -f '{{.State.Status}}' pmd)"
    "${P[@]}" unpause pmd >/dev/null 2>&1
    check "unpause" "running" "$("${P[@]}" inspect -f '{{.State.Status}}' pmd)"
fi
id=$("${P[@]}" inspect -f '{{.Id}}' pmd)
# runc 1.1 keeps its state in $XDG_RUNTIME_DIR/runc: the runtime's own name.
state=$work/xdg/$(basename "$husk")
check "the runtime's state in \$XDG_RUNTIME_DIR/$(basename "$husk")" "yes" "$([ -d "$state/$id" ] && echo yes)"
"${P[@]}" stop -t 1 pmd >/dev/null 2>&1
check "stopped" "exited" "$("${P[@]}" inspect -f '{{.State.Status}}' pmd)"
"${P[@]}" rm pmd >/dev/null
check "removed" "" "$("${P[@]}" ps -aq)"
check "the runtime's state removed" "" "$(ls "$state" 2>&1 | grep -v '^\.cache' || true)"
exit $fail
