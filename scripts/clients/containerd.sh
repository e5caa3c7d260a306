#!/usr/bin/env bash
# Drive husk through containerd 1.6 and its runc v2 shim, the path Docker and Kubernetes take:
# a private containerd (own root, state, socket), an imported busybox image, `ctr run` with husk
# as the shim's runc binary. Exits non-zero if any check fails; cleans up everything it started.
#   scripts/clients/containerd.sh [HUSK_BIN]
set -euo pipefail
cd "$(dirname "$0")/../.."
husk=${1:-$PWD/target/release/husk}
work=$(mktemp -d /tmp/husk-containerd.XXXXXX)
sock=$work/containerd.sock
# The runc v2 shim keeps the runtime's --root in /run/containerd/runc/<namespace>: one per run.
ns=husktest$$
shim_root=/run/containerd/runc/$ns
ctr() { command ctr --address "$sock" --namespace "$ns" "$@"; }
cleanup() {
    [ -f "$work/containerd.pid" ] && kill "$(cat "$work/containerd.pid")" 2>/dev/null && sleep 0.5
    # the shims outlive containerd; their tasks are gone by now
    pkill -f "containerd-shim-runc-v2 -namespace $ns " 2>/dev/null || true
    for id in $("$husk" --root "$shim_root" list -q 2>/dev/null); do "$husk" --root "$shim_root" delete -f "$id"; done
    rm -rf "$shim_root"
    grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cat >"$work/config.toml" <<TOML
version = 2
root = "$work/root"
state = "$work/state"
[grpc]
  address = "$sock"
[plugins."io.containerd.grpc.v1.cri"]
  disable_apparmor = true
TOML
containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
echo $! >"$work/containerd.pid"
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done

HUSK_BIN=$husk scripts/mkbundle.sh "$work/bundle" >/dev/null
scripts/clients/oci-image.sh "$work/bundle/rootfs" "$work/image.tar" docker.io/library/huskbox:latest
ctr image import "$work/image.tar" >/dev/null
fail=0
check() { # name expected actual
    if [ "$2" = "$3" ]; then echo "ok   containerd: $1"; else echo "FAIL containerd: $1: expected [$2], got [$3]"; fail=1; fi
}
out=$(ctr run --rm --runc-binary "$husk" docker.io/library/huskbox:latest husk-ctr-1 echo hello 2>&1) || true
check "ctr run --rm echo" "hello" "$out"
set +e
ctr run --rm --runc-binary "$husk" docker.io/library/huskbox:latest husk-ctr-2 sh -c 'exit 7' >/dev/null 2>&1
check "exit status" "7" "$?"
set -e
out=$(ctr run --rm --runc-binary "$husk" docker.io/library/huskbox:latest husk-ctr-3 sh -c 'echo $$' 2>&1) || true
check "pid 1 inside" "1" "$out"
ctr run -d --runc-binary "$husk" docker.io/library/huskbox:latest husk-ctr-4 sleep 100 >/dev/null
status=$(ctr task ls | awk '$1=="husk-ctr-4" {print $3}')
check "detached task running" "RUNNING" "$status"
# The shim's exec: `exec --process <tmp.json> --detach --pid-file ...`, the process JSON from the spec.
out=$(ctr task exec --exec-id e1 husk-ctr-4 sh -c 'echo exec-ok; cat /proc/1/comm' 2>&1 | tr '\n' ' ') || true
check "ctr task exec" "exec-ok sleep " "$out"
set +e
ctr task exec --exec-id e2 husk-ctr-4 sh -c 'exit 4' >/dev/null 2>&1
check "exec exit status" "4" "$?"
set -e
ctr task kill -s SIGKILL husk-ctr-4 >/dev/null
for _ in $(seq 50); do [ "$(ctr task ls | awk '$1=="husk-ctr-4" {print $3}')" = STOPPED ] && break; sleep 0.1; done
check "killed task stopped" "STOPPED" "$(ctr task ls | awk '$1=="husk-ctr-4" {print $3}')"
ctr task rm husk-ctr-4 >/dev/null && ctr container rm husk-ctr-4 >/dev/null
check "task and container removed" "" "$(ctr container ls -q | grep husk-ctr || true)"
if [ $fail != 0 ]; then
    echo "--- containerd log (tail)"; tail -20 "$work/containerd.log"
fi
exit $fail
