#!/usr/bin/env bash
# Drive husk through Docker 20.10 (dockerd, its own containerd, the runc v2 shim): a dockerd of
# the script's own (--data-root, --exec-root, --pidfile, socket, trust key, cgroup parent) with
# husk added by --add-runtime, started in a network namespace of its own: Docker's default
# bridge (docker0), its iptables chains, NAT and forwarding are all made there, as on any host,
# and vanish with the namespace, so the host's firewall and links are never touched. Removes,
# and checks gone, all it made.
#   scripts/clients/docker.sh [HUSK_BIN]
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/deps.sh
husk=${1:-$(release_bin husk)}
client=docker
. scripts/clients/lib.sh
work=$(mktemp -d /tmp/husk-docker.XXXXXX)
tag=$$
netns=huskdk$tag
cgparent=/husk-tests/docker-$tag
# /usr/local/bin/docker may be a newer client than the engine
D=(/usr/bin/docker -H "unix://$work/docker.sock")
R=(--runtime husk)
innet() { nsenter --net="/run/netns/$netns" "$@"; }
# Docker's shim keeps the runtime's --root in <exec-root>/runtime-<name>/<namespace>.
state_root=$work/exec/runtime-husk/moby
# dockerd makes /run/docker/plugins (plugin sockets) whatever its --exec-root
plugins_dir=$([ -e /run/docker ] || echo /run/docker)
stop_dockerd() { stop_daemon "$work/dockerd.pid" 150; }
teardown() {
    local p id
    if [ -f "$work/dockerd.pid" ]; then
        "${D[@]}" rm -f $("${D[@]}" ps -aq) >/dev/null 2>&1 || true
        stop_dockerd # (it stops its containerd)
    fi
    for p in $(left_processes "$work/exec/containerd"); do kill -9 "$p" 2>/dev/null || true; done
    for id in $("$husk" --root "$state_root" list -q 2>/dev/null); do
        "$husk" --root "$state_root" delete -f "$id" 2>/dev/null || true
    done
    umount_under "$work"
    ip netns del "$netns" 2>/dev/null || true
    find /sys/fs/cgroup/*/husk-tests -depth -type d -path "*/docker-$tag*" -exec rmdir {} + 2>/dev/null || true
    [ -z "$plugins_dir" ] || rmdir "$plugins_dir/plugins" "$plugins_dir" 2>/dev/null || true
}
trap 'teardown; rm -rf "$work"' EXIT
netns_dir_shared # before this manager makes a netns (lib.sh)
ip netns add "$netns"
ip -n "$netns" link set lo up
# The trust key would go to /etc/docker/key.json.
echo "{\"deprecated-key-path\": \"$work/key.json\"}" >"$work/daemon.json"
# $! is dockerd's pid: nsenter execs it (a shell function here would put a subshell between)
nsenter --net="/run/netns/$netns" dockerd --config-file "$work/daemon.json" --data-root "$work/data" --exec-root "$work/exec" \
    --pidfile "$work/docker.pid" -H "unix://$work/docker.sock" --cgroup-parent "$cgparent" \
    --add-runtime "husk=$husk" >"$work/dockerd.log" 2>&1 &
echo $! >"$work/dockerd.pid"
for _ in $(seq 300); do "${D[@]}" version >/dev/null 2>&1 && break; sleep 0.1; done

HUSK_BIN=$husk scripts/mkbundle.sh "$work/bundle" >/dev/null
tar -C "$work/bundle/rootfs" --numeric-owner -cf "$work/rootfs.tar" .
"${D[@]}" import -c 'ENV PATH=/bin' "$work/rootfs.tar" huskbox:latest >/dev/null

check "run --rm echo" "hi" "$("${D[@]}" run --rm "${R[@]}" huskbox echo hi 2>&1)"
set +e
"${D[@]}" run --rm "${R[@]}" huskbox sh -c 'exit 9' >/dev/null 2>&1
check "exit status" "9" "$?"
set -e
check "Docker's default seccomp profile applied" "2" \
    "$("${D[@]}" run --rm "${R[@]}" huskbox sh -c 'grep ^Seccomp: /proc/self/status | cut -f2')"
check "run -t: a pty via the console socket" "/dev/pts/0" "$("${D[@]}" run --rm -t "${R[@]}" huskbox tty | tr -d '\r')"
check "--init: docker-init is PID 1" "docker-init" \
    "$("${D[@]}" run --rm --init "${R[@]}" huskbox sh -c 'cat /proc/1/comm; true')"

# The default bridge: libnetwork moves the veth in from a prestart hook the runtime must run.
"${D[@]}" run -d --name dk1 "${R[@]}" -p 8080:7777 huskbox \
    sh -c 'i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done & while :; do echo served | nc -l -p 7777; done' >/dev/null
check "run -d: running" "running" "$("${D[@]}" inspect -f '{{.State.Status}}' dk1)"
check "exec" "exec-ok" "$("${D[@]}" exec dk1 echo exec-ok 2>&1)"
set +e
"${D[@]}" exec dk1 sh -c 'exit 6' >/dev/null 2>&1
check "exec exit status" "6" "$?"
set -e
ip=$("${D[@]}" inspect -f '{{.NetworkSettings.IPAddress}}' dk1)
gw=$("${D[@]}" inspect -f '{{.NetworkSettings.Gateway}}' dk1)
check "bridge: eth0 has the address Docker gave, the gateway answers" "$ip/16 1" \
    "$("${D[@]}" exec dk1 sh -c "ip -4 -o addr show eth0 | grep -o '$ip/[0-9]*'; ping -c1 -W2 $gw | grep -c '1 packets received'" |
        tr '\n' ' ' | sed 's/ $//')"
served() { # ADDR PORT: what the server in dk1 says, seen from dockerd's network namespace
    local out=
    for _ in $(seq 30); do out=$(innet timeout 2 bash -c "cat </dev/tcp/$1/$2" 2>/dev/null) && [ -n "$out" ] && break; sleep 0.1; done
    echo "$out"
}
check "bridge: a server inside reached over docker0" "served" "$(served "$ip" 7777)"
check "bridge: a published port (-p 8080:7777, iptables DNAT)" "served" "$(served 127.0.0.1 8080)"
"${D[@]}" pause dk1 >/dev/null
check "pause: status" "paused" "$("${D[@]}" inspect -f '{{.State.Status}}' dk1)"
n1=$("${D[@]}" logs dk1 | grep -c .)
sleep 0.5
check "pause: the counter stands still" "$n1" "$("${D[@]}" logs dk1 | grep -c .)"
"${D[@]}" unpause dk1 >/dev/null
sleep 0.5
check "unpause: running, the counter goes on" "running yes" \
    "$("${D[@]}" inspect -f '{{.State.Status}}' dk1) $([ "$("${D[@]}" logs dk1 | grep -c .)" -gt "$n1" ] && echo yes)"
# (Docker 20.10 refuses --memory alone on a container started without a limit, runc or not)
"${D[@]}" update --memory 64m --memory-swap 128m dk1 >/dev/null
check "update --memory: the limits seen inside" "67108864 134217728" \
    "$("${D[@]}" exec dk1 cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes |
        tr '\n' ' ' | sed 's/ $//')"
# sh as PID 1 without a trap ignores SIGTERM: stop ends it with SIGKILL after the timeout.
"${D[@]}" stop -t 1 dk1 >/dev/null
check "stop: SIGKILL after the timeout" "exited 137" "$("${D[@]}" inspect -f '{{.State.Status}} {{.State.ExitCode}}' dk1)"
"${D[@]}" run -d --name dk2 "${R[@]}" huskbox sh -c 'trap "echo got-term; exit 3" TERM; echo ready; sleep 100 & wait' >/dev/null
for _ in $(seq 50); do [ "$("${D[@]}" logs dk2)" = ready ] && break; sleep 0.1; done
"${D[@]}" stop -t 20 dk2 >/dev/null
check "stop: SIGTERM first" "exited 3 got-term" \
    "$("${D[@]}" inspect -f '{{.State.Status}} {{.State.ExitCode}}' dk2) $("${D[@]}" logs dk2 | tail -1)"
"${D[@]}" rm dk1 dk2 >/dev/null
check "rm" "" "$("${D[@]}" ps -aq)"

check "nothing left: runtime state" "" "$(ls "$state_root" 2>/dev/null)"
check "nothing left: container cgroups" "" "$(find /sys/fs/cgroup/*/husk-tests/docker-$tag -mindepth 1 -type d 2>/dev/null | head -3)"
check "nothing left: shims" "" "$(left_processes "containerd-shim-runc-v2 -namespace moby -address $work")"
check "nothing left: container mounts (rootfs, shm)" "" \
    "$(left_mounts "$work/data" | tr ' ' '\n' | grep -E '/merged$|/shm$' || true)"
teardown
check "nothing left: dockerd, containerd, mounts, netns, cgroup parent" "" \
    "$(left_processes "$work/")$(left_mounts "$work")$(ip netns list | grep -w "$netns")$(ls -d /sys/fs/cgroup/*/husk-tests/docker-$tag 2>/dev/null)"
exit_showing_log "$work/dockerd.log"
