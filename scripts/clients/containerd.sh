#!/usr/bin/env bash
# Drive husk through containerd 1.6 and its runc v2 shim, the path Docker and Kubernetes take:
# a private containerd (own root, state, socket), an imported busybox image, `ctr run` with husk
# as the shim's runc binary (BinaryName) and a runtime --root of the script's own (the shim's
# Root option). Exits non-zero if any check fails; removes, and checks gone, all it made.
#   scripts/clients/containerd.sh [HUSK_BIN]
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/deps.sh
husk=${1:-$(release_bin husk)}
client=containerd
. scripts/clients/lib.sh
work=$(mktemp -d /tmp/husk-containerd.XXXXXX)
sock=$work/containerd.sock
# ctr's default cgroupsPath is /<namespace>/<id>: a namespace per run keeps them apart.
ns=husktest$$
image=docker.io/library/huskbox:latest
ctr() { command ctr --address "$sock" --namespace "$ns" "$@"; }
# (ctr keeps the fifos of a detached exec in its --fifo-dir for good: use one of our own)
R=(--runc-binary "$husk" --runc-root "$work/runtime" --fifo-dir "$work/fifo")
texec() { ctr task exec --fifo-dir "$work/fifo" "$@"; }
status_of() { ctr task ls | awk -v id="$1" '$1==id {print $3}'; }
pid_of() { ctr task ls | awk -v id="$1" '$1==id {print $2}'; }
teardown() {
    local id p
    if [ -f "$work/containerd.pid" ]; then # (ctr waits 10 s for a containerd that is gone)
        for id in $(ctr task ls -q 2>/dev/null); do ctr task rm -f "$id" >/dev/null 2>&1 || true; done
        for id in $(ctr container ls -q 2>/dev/null); do ctr container rm "$id" >/dev/null 2>&1 || true; done
        stop_containerd
    fi
    # a shim whose task could not be deleted outlives containerd
    for p in $(left_processes "-address $sock"); do kill -9 "$p" 2>/dev/null || true; done
    for id in $("$husk" --root "$work/runtime/$ns" list -q 2>/dev/null); do
        "$husk" --root "$work/runtime/$ns" delete -f "$id" 2>/dev/null || true
    done
    umount_under "$work"
    rmdir /sys/fs/cgroup/*/"$ns" 2>/dev/null || true
}
trap 'teardown; rm -rf "$work"' EXIT
cat >"$work/config.toml" <<TOML
version = 2
root = "$work/root"
state = "$work/state"
[grpc]
  address = "$sock"
[plugins."io.containerd.grpc.v1.cri"]
  disable_apparmor = true
TOML
start_containerd
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done

HUSK_BIN=$husk scripts/mkbundle.sh "$work/bundle" >/dev/null
scripts/clients/oci-image.sh "$work/bundle/rootfs" "$work/image.tar" "$image"
ctr image import "$work/image.tar" >/dev/null

check "ctr run --rm echo" "hello" "$(ctr run --rm "${R[@]}" $image c1 echo hello 2>&1)"
set +e
ctr run --rm "${R[@]}" $image c2 sh -c 'exit 7' >/dev/null 2>&1
check "exit status" "7" "$?"
set -e
check "pid 1 inside" "1" "$(ctr run --rm "${R[@]}" $image c3 sh -c 'echo $$' 2>&1)"
# ctr -t wants a terminal of its own: script(1) gives it one. The container's pty echoes the NUL
# that script sends at the end of its (empty) input as "^@".
check "ctr run -t: a pty via the console socket" "/dev/pts/0" \
    "$(script -qec "ctr --address $sock --namespace $ns run --rm -t ${R[*]} $image c4 tty" /dev/null </dev/null | tr -d '\r' | sed 's/\^@//g')"

# A counter in the container's /tmp (replaced, never half-written), read from the host through
# /proc/<pid>/root.
ctr run -d "${R[@]}" $image c5 sh -c 'i=0; while :; do i=$((i+1)); echo $i >/tmp/m; mv /tmp/m /tmp/n; sleep 0.1; done' >/dev/null
check "detached task running" "RUNNING" "$(status_of c5)"
pid=$(pid_of c5)
# The shim's exec: `exec --process <tmp.json> --detach --pid-file ...`, the process JSON from the spec.
check "ctr task exec" "exec-ok sh" \
    "$(texec --exec-id e1 c5 sh -c 'echo exec-ok; cat /proc/1/comm' 2>&1 | tr '\n' ' ' | sed 's/ $//')"
set +e
texec --exec-id e2 c5 sh -c 'exit 4' >/dev/null 2>&1
check "exec exit status" "4" "$?"
set -e
# `ps --format json`: the init and a detached exec'd process, by their host pids (beside the
# counter's `sleep 0.1` or `mv` of the moment).
texec -d --exec-id e3 c5 sleep 100
cmds=$(for p in $(ctr task ps c5 | awk 'NR > 1 {print $1}'); do
    [ "$p" = "$pid" ] && echo init || tr '\0' ' ' </proc/"$p"/cmdline 2>/dev/null | sed 's/ $//'
    echo; done | grep -x -e init -e 'sleep 100' | sort | tr '\n' ',')
check "ctr task ps: the init and the exec'd process" "init,sleep 100," "$cmds"
ctr task pause c5
check "pause: PAUSED" "PAUSED" "$(status_of c5)"
n1=$(cat /proc/"$pid"/root/tmp/n)
sleep 0.5
check "pause: the counter stands still" "$n1" "$(cat /proc/"$pid"/root/tmp/n)"
ctr task resume c5
sleep 0.5
check "resume: RUNNING, the counter goes on" "RUNNING yes" \
    "$(status_of c5) $([ "$(cat /proc/"$pid"/root/tmp/n)" -gt "$n1" ] && echo yes)"
ctr task kill -s SIGKILL c5 >/dev/null
for _ in $(seq 50); do [ "$(status_of c5)" = STOPPED ] && break; sleep 0.1; done
check "killed task stopped" "STOPPED" "$(status_of c5)"
ctr task rm c5 >/dev/null 2>&1 && ctr container rm c5 >/dev/null
ctr run -d "${R[@]}" $image c6 sleep 100 >/dev/null
ctr task rm -f c6 >/dev/null 2>&1 && ctr container rm c6 >/dev/null
check "task and container removed (also a running one, rm -f)" "" "$(ctr container ls -q)"

# The runtime's error reaches the user: the shim reads the last error of husk's --log (JSON).
set +e
out=$(ctr run --rm "${R[@]}" --mount type=bind,src=/nonexistent-husk,dst=/x,options=rbind $image c7 true 2>&1)
status=$?
set -e
check_match "a failed create: ctr shows the runtime's log message" \
    'OCI runtime create failed: .*/nonexistent-husk.*no such file or directory' "$status $out"
# runc 1.1 differs: "error mounting "/nonexistent-husk" to rootfs at "/x"", no field named.
check_match "husk's message names the field" 'mounts\[[0-9]+\]: bind /nonexistent-husk on /x' "$out"
ctr container rm c7 >/dev/null 2>&1 || true
check "not found in \$PATH, as runc says it" "exec: \"nosuchcmd\": executable file not found in \$PATH" \
    "$(ctr run --rm "${R[@]}" $image c8 nosuchcmd 2>&1 | grep -o 'exec: "nosuchcmd": executable file not found in \$PATH')"
ctr container rm c8 >/dev/null 2>&1 || true

check "nothing left: runtime state" "" "$(ls "$work/runtime/$ns" 2>/dev/null)"
check "nothing left: container cgroups" "" "$(find /sys/fs/cgroup/*/"$ns" -mindepth 1 -type d 2>/dev/null | head -3)"
check "nothing left: container rootfs mounts" "" "$(left_mounts "$work/state")"
check "nothing left: shims" "" "$(left_processes "-address $sock")"
teardown
check "nothing left: containerd, cgroup parent, mounts" "" \
    "$(left_processes "$work/config.toml")$(ls -d /sys/fs/cgroup/*/"$ns" 2>/dev/null)$(left_mounts "$work")"
exit_showing_log "$work/containerd.log"
