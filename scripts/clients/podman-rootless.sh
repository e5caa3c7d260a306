#!/usr/bin/env bash
# Drive husk through rootless Podman 4.3: podman, conmon and husk run as an unprivileged user
# with /etc/subuid and /etc/subgid ranges. Podman maps the user and its subordinate range into
# its user namespace with newuidmap/newgidmap and runs husk there as that namespace's root,
# without --root (husk's state goes to $XDG_RUNTIME_DIR/husk, as runc's to .../runc). Own
# storage (vfs), runroot, XDG_RUNTIME_DIR and containers.conf; no network; no cgroups (this
# host: v1, nothing delegated). Each check prints one line.
#   scripts/clients/podman-rootless.sh [HUSK_BIN] [USER]   (run as root; USER: husk-rootless-test)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/deps.sh
husk=${1:-$(release_bin husk)}
user=${2:-husk-rootless-test}
client=podman-rootless
. scripts/clients/lib.sh
uid=$(id -u "$user")
gid=$(id -g "$user")
subuid=$(awk -F: -v u="$user" '$1 == u { print $2 ":" $3; exit }' /etc/subuid)
subgid=$(awk -F: -v u="$user" '$1 == u { print $2 ":" $3; exit }' /etc/subgid)
[ -n "$subuid" ] && [ -n "$subgid" ] || { echo "FAIL podman-rootless: $user has no /etc/subuid or /etc/subgid range"; exit 1; }
work=$(mktemp -d /tmp/husk-podman-rootless.XXXXXX)
chmod 755 "$work"
as_user() {
    setpriv --reuid "$uid" --regid "$gid" --clear-groups \
        env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin USER="$user" LOGNAME="$user" HOME="$work/home" \
        XDG_RUNTIME_DIR="$work/xdg" CONTAINERS_CONF="$work/containers.conf" "$@"
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
cat >"$work/containers.conf" <<TOML
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime_supports_json = ["husk"]
cgroup_manager = "cgroupfs"
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
