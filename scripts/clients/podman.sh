#!/usr/bin/env bash
# Drive husk through Podman 4.3 and conmon: its own storage, runroot and containers.conf (this
# host's hard rlimits are below Podman's defaults; Podman's default seccomp profile applies),
# a netns made here and joined by path, so the host gets no bridge or firewall rules.
#   scripts/clients/podman.sh [HUSK_BIN]
set -euo pipefail
cd "$(dirname "$0")/../.."
husk=${1:-$PWD/target/release/husk}
work=$(mktemp -d /tmp/husk-podman.XXXXXX)
netns=huskpm$$
export CONTAINERS_CONF=$work/containers.conf
P=(podman --root "$work/storage" --runroot "$work/run" --cgroup-manager cgroupfs --runtime husk)
cleanup() {
    "${P[@]}" rm -af -t 0 >/dev/null 2>&1 || true
    "${P[@]}" system reset -f >/dev/null 2>&1 || true
    grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    ip netns del "$netns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cat >"$CONTAINERS_CONF" <<TOML
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime_supports_json = ["husk"]
[engine.runtimes]
husk = ["$husk"]
TOML
ip netns add "$netns"
HUSK_BIN=$husk scripts/mkbundle.sh "$work/bundle" >/dev/null
scripts/clients/oci-image.sh "$work/bundle/rootfs" "$work/image.tar" docker.io/library/huskbox:latest
"${P[@]}" load -q -i "$work/image.tar" >/dev/null
net=(--network "ns:/run/netns/$netns")
fail=0
check() { # name expected actual
    if [ "$2" = "$3" ]; then echo "ok   podman: $1"; else echo "FAIL podman: $1: expected [$2], got [$3]"; fail=1; fi
}
check "run --rm echo" "hi" "$("${P[@]}" run --rm "${net[@]}" huskbox echo hi 2>&1)"
check "Podman's default seccomp profile applied" "2" \
    "$("${P[@]}" run --rm "${net[@]}" huskbox sh -c 'grep ^Seccomp: /proc/self/status | cut -f2')"
set +e
"${P[@]}" run --rm "${net[@]}" huskbox sh -c 'exit 5' >/dev/null 2>&1
check "exit status" "5" "$?"
"${P[@]}" run --rm "${net[@]}" huskbox nosuchcmd >/dev/null 2>&1
check "missing command is 127" "127" "$?"
set -e
check "joined netns by path" "$(stat -L -c %i "/run/netns/$netns")" \
    "$("${P[@]}" run --rm "${net[@]}" huskbox sh -c 'stat -L -c %i /proc/self/ns/net')"
check "tty via console socket" "/dev/pts/0" "$("${P[@]}" run --rm -t "${net[@]}" huskbox tty </dev/null | tr -d '\r')"
"${P[@]}" run -d --name pmd "${net[@]}" huskbox sleep 100 >/dev/null
check "detached running" "running" "$("${P[@]}" inspect -f '{{.State.Status}}' pmd)"
# conmon's exec: `exec --pid-file P --process F --detach [--console-socket S]`.
check "exec" "exec-ok" "$("${P[@]}" exec pmd echo exec-ok 2>&1)"
set +e
"${P[@]}" exec pmd sh -c 'exit 3' >/dev/null 2>&1
check "exec exit status" "3" "$?"
set -e
check "exec -t via console socket" "tty" "$("${P[@]}" exec -t pmd sh -c 'test -t 0 && echo tty' </dev/null | tr -d '\r')"
"${P[@]}" stop -t 1 pmd >/dev/null 2>&1
check "stopped" "exited" "$("${P[@]}" inspect -f '{{.State.Status}}' pmd)"
"${P[@]}" rm pmd >/dev/null
check "removed" "" "$("${P[@]}" ps -aq)"
exit $fail
