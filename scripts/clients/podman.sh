#!/usr/bin/env bash
# Drive husk through Podman 4.3 and conmon: its own storage, runroot, containers.conf (this host's
# hard rlimits are below Podman's defaults; Podman's default seccomp profile applies), cgroup
# parent and CNI config: a default bridge network of its own (own bridge name, subnet and IPAM
# dir, no firewall or NAT rules), and a netns made here and joined by path for the checks that
# need no network. Everything it made is removed, and checked gone, at the end.
#   scripts/clients/podman.sh [HUSK_BIN]
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/deps.sh
repo=$PWD
husk=${1:-$(release_bin husk)}
client=podman
. scripts/clients/lib.sh
work=$(mktemp -d /tmp/husk-podman.XXXXXX)
tag=$$
netns=huskpm$tag
bridge=hkpm$tag
# a /24 of 10.213.0.0/16 per run, so two runs side by side do not collide
subnet=10.213.$((tag % 250 + 1))
cgparent=/husk-tests/podman-$tag
# Podman passes its --runtime-flag to neither `delete` nor conmon's cleanup: the runtime keeps
# its default --root, /run/<name>.
state_root=/run/$(basename "$husk")
forward=$(cat /proc/sys/net/ipv4/ip_forward)
cni_cache=$([ -e /var/lib/cni ] || echo /var/lib/cni) # CNI caches results there, whatever the config
export CONTAINERS_CONF=$work/containers.conf
P=(podman --root "$work/storage" --runroot "$work/run" --cgroup-manager cgroupfs --runtime husk)
run() { "${P[@]}" run --cgroup-parent "$cgparent" "$@"; }
teardown() {
    "${P[@]}" rm -af -t 0 >/dev/null 2>&1 || true
    "${P[@]}" system reset -f >/dev/null 2>&1 || true
    umount_under "$work"
    ip netns del "$netns" 2>/dev/null || true
    # The CNI bridge plugin leaves its bridge and turns on forwarding (isGateway).
    ip link del "$bridge" 2>/dev/null || true
    echo "$forward" >/proc/sys/net/ipv4/ip_forward
    [ -z "$cni_cache" ] || rmdir "$cni_cache/results" "$cni_cache" 2>/dev/null || true
    # Podman puts conmon in <cgroup parent>/conmon and never removes it.
    find /sys/fs/cgroup/*/husk-tests -depth -type d -path "*/podman-$tag*" -exec rmdir {} + 2>/dev/null || true
}
trap 'teardown; rm -rf "$work"' EXIT
mkdir -p "$work/cni"
cat >"$CONTAINERS_CONF" <<TOML
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime_supports_json = ["husk"]
[engine.runtimes]
husk = ["$husk"]
[network]
network_backend = "cni"
network_config_dir = "$work/cni"
default_network = "husk-$tag"
TOML
cat >"$work/cni/husk.conflist" <<JSON
{"cniVersion": "0.4.0", "name": "husk-$tag", "plugins": [{"type": "bridge", "bridge": "$bridge",
 "isGateway": true, "ipam": {"type": "host-local", "dataDir": "$work/cni-ipam",
 "ranges": [[{"subnet": "$subnet.0/24", "gateway": "$subnet.1"}]], "routes": [{"dst": "0.0.0.0/0"}]}}]}
JSON
netns_dir_shared # before this manager makes a netns (lib.sh)
ip netns add "$netns"
HUSK_BIN=$husk scripts/mkbundle.sh "$work/bundle" >/dev/null
scripts/clients/oci-image.sh "$work/bundle/rootfs" "$work/image.tar" docker.io/library/huskbox:latest
# conmon writes an `oom` file into its working directory: keep it out of the repository.
cd "$work"
"${P[@]}" load -q -i "$work/image.tar" >/dev/null
net=(--network "ns:/run/netns/$netns")

check "run --rm echo" "hi" "$(run --rm "${net[@]}" huskbox echo hi 2>&1)"
check "Podman's default seccomp profile applied" "2" \
    "$(run --rm "${net[@]}" huskbox sh -c 'grep ^Seccomp: /proc/self/status | cut -f2')"
set +e
run --rm "${net[@]}" huskbox sh -c 'exit 5' >/dev/null 2>&1
check "exit status" "5" "$?"
run --rm "${net[@]}" huskbox nosuchcmd >/dev/null 2>&1
check "missing command is 127" "127" "$?"
set -e
check "joined netns by path" "$(stat -L -c %i "/run/netns/$netns")" \
    "$(run --rm "${net[@]}" huskbox sh -c 'stat -L -c %i /proc/self/ns/net')"
check "run -t: a pty via the console socket" "/dev/pts/0" \
    "$(run --rm -t "${net[@]}" huskbox tty </dev/null | tr -d '\r')"

# A counter on stdout: conmon's log shows it, and it stands still while the container is paused.
run -d --name pmd "${net[@]}" huskbox sh -c 'i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done' >/dev/null
check "run -d: running" "running" "$("${P[@]}" inspect -f '{{.State.Status}}' pmd)"
sleep 0.3
check "logs" "1 2" "$("${P[@]}" logs pmd | head -2 | tr '\n' ' ' | sed 's/ $//')"
# conmon's exec: `exec --pid-file P --process F --detach [--console-socket S]`.
check "exec" "exec-ok" "$("${P[@]}" exec pmd echo exec-ok 2>&1)"
set +e
"${P[@]}" exec pmd sh -c 'exit 3' >/dev/null 2>&1
check "exec exit status" "3" "$?"
set -e
check "exec -t via console socket" "tty" "$("${P[@]}" exec -t pmd sh -c 'test -t 0 && echo tty' </dev/null | tr -d '\r')"
"${P[@]}" pause pmd >/dev/null
check "pause: status" "paused" "$("${P[@]}" inspect -f '{{.State.Status}}' pmd)"
n1=$("${P[@]}" logs pmd | wc -l)
sleep 0.5
check "pause: the counter stands still" "$n1" "$("${P[@]}" logs pmd | wc -l)"
"${P[@]}" unpause pmd >/dev/null
sleep 0.5
check "unpause: running, the counter goes on" "running yes" \
    "$("${P[@]}" inspect -f '{{.State.Status}}' pmd) $([ "$("${P[@]}" logs pmd | wc -l)" -gt "$n1" ] && echo yes)"
limit=/sys/fs/cgroup/memory/memory.limit_in_bytes
"${P[@]}" update --memory 64m pmd >/dev/null
check "update --memory: the limit seen inside" "67108864" "$("${P[@]}" exec pmd cat $limit)"
# sh as PID 1 without a trap ignores SIGTERM: stop must end it with SIGKILL after the timeout.
"${P[@]}" stop -t 1 pmd >/dev/null 2>&1
check "stop: SIGKILL after the timeout" "exited 137" "$("${P[@]}" inspect -f '{{.State.Status}} {{.State.ExitCode}}' pmd)"
run -d --name pmt "${net[@]}" huskbox sh -c 'trap "echo got-term; exit 3" TERM; echo ready; sleep 100 & wait' >/dev/null
for _ in $(seq 50); do [ "$("${P[@]}" logs pmt)" = ready ] && break; sleep 0.1; done
"${P[@]}" stop -t 20 pmt >/dev/null 2>&1
check "stop: SIGTERM first" "exited 3 got-term" \
    "$("${P[@]}" inspect -f '{{.State.Status}} {{.State.ExitCode}}' pmt) $("${P[@]}" logs pmt | tail -1)"
"${P[@]}" rm pmd pmt >/dev/null
check "rm" "" "$("${P[@]}" ps -aq)"

# 64 MB held by the shell: killed under a 32 MiB limit, fine without one.
hog="cat $limit; x=\$(head -c 64000000 /dev/zero | tr '\\0' a); echo survived"
set +e
out=$(run --rm "${net[@]}" --memory 32m huskbox sh -c "$hog" 2>&1)
rc=$?
# The kernel picks the OOM victim: when it takes the pipeline first, the shell says "Killed"
# before its own turn comes (the shell holds the 64 MB).
out=$(grep -vx Killed <<<"$out")
check "memory limit: seen inside, enforced (OOM kill)" "33554432 137" "$out $rc"
set -e
check "memory limit: the same without a limit survives" "survived" \
    "$(run --rm "${net[@]}" huskbox sh -c "$hog" 2>&1 | tail -1)"

# --read-only and --tmpfs mount their tmpfs with runc's `tmpcopyup`: it holds a copy of the
# directory it covers.
check "--read-only: the rootfs refuses writes, /tmp (tmpcopyup) takes them" "ro tmp-ok" \
    "$(run --rm "${net[@]}" --read-only huskbox sh -c 'touch /x 2>/dev/null || echo -n "ro "; touch /tmp/y && echo tmp-ok' 2>&1)"
check "--tmpfs /etc: a tmpfs with the image's /etc in it" "tmpfs root:x:0:0:root:/root:/bin/sh" \
    "$(run --rm "${net[@]}" --tmpfs /etc huskbox sh -c "grep ' /etc ' /proc/mounts | cut -d' ' -f3; head -1 /etc/passwd" 2>&1 |
        tr '\n' ' ' | sed 's/ $//')"

# The default network: a bridge, an address from its subnet, the gateway reachable; a server in
# a container reached from the host over the bridge.
check "default bridge: eth0 has an address, the gateway answers" "$subnet.x 1" \
    "$(run --rm huskbox sh -c "ip -4 -o addr show eth0 | grep -o '$subnet\.[0-9]*/24' | sed 's/[0-9]*\/24/x/';
        ping -c1 -W2 $subnet.1 | grep -c '1 packets received'" 2>&1 | tr '\n' ' ' | sed 's/ $//')"
run -d --name pmsrv huskbox sh -c 'echo bridged | nc -l -p 7777' >/dev/null
ip=$("${P[@]}" inspect -f '{{.NetworkSettings.IPAddress}}' pmsrv)
out=
for _ in $(seq 30); do out=$(timeout 2 cat </dev/tcp/"$ip"/7777 2>/dev/null) && break; sleep 0.1; done
check "default bridge: the host reaches a server inside" "bridged" "$out"
check "--network none: lo only" "lo" \
    "$(run --rm --network none huskbox sh -c 'ls /sys/class/net' 2>&1 | tr '\n' ' ' | sed 's/ $//')"

"${P[@]}" rm -af -t 0 >/dev/null 2>&1
check "nothing left: runtime state" "" "$(left_state "$state_root" "$work")"
check "nothing left: container cgroups" "" \
    "$(find /sys/fs/cgroup/*/husk-tests/podman-$tag -mindepth 1 -type d ! -name conmon 2>/dev/null | head -3)"
check "nothing left: conmon" "" "$(left_processes "$work/storage")"
check "nothing left: container mounts (rootfs, shm)" "" \
    "$(left_mounts "$work/storage" | tr ' ' '\n' | grep -E '/merged$|/shm$' || true)"
teardown
check "nothing left: bridge, netns, cgroup parent" "" \
    "$(ip -br link show "$bridge" 2>/dev/null)$(ip netns list | grep -w "$netns")$(ls -d /sys/fs/cgroup/*/husk-tests/podman-$tag 2>/dev/null)"
exit $fail
