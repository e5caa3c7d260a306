#!/usr/bin/env bash
# Drive husk the way Kubernetes does: the kubelet's CRI calls (runtime.v1, gRPC) to containerd
# 1.6's CRI plugin, with husk as the runtime handler "husk" (what a RuntimeClass names; runc
# stays the default handler, as on a node), its runc v2 shim options BinaryName and Root. A
# private containerd (own root, state, socket, CNI config: a bridge of its own with its own
# subnet and IPAM dir); locally imported images, one of them the sandbox (pause) image. The CRI
# client is scripts/clients/cri/cri.py (Debian's python3-grpcio; api_pb2 made by protoc from
# scripts/clients/cri/api.proto). Removes, and checks gone, all it made.
#   scripts/clients/cri.sh [HUSK_BIN]
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/deps.sh
repo=$PWD
husk=${1:-$(release_bin husk)}
client=cri
. scripts/clients/lib.sh
work=$(mktemp -d /tmp/husk-cri.XXXXXX)
tag=$$
sock=$work/containerd.sock
bridge=hkcri$tag
subnet=10.215.$((tag % 250 + 1))
cgparent=/husk-tests/cri-$tag
# the shim's runtime --root is <Root>/<containerd namespace>, and the CRI's namespace is k8s.io
state_root=$work/runtime/k8s.io
forward=$(cat /proc/sys/net/ipv4/ip_forward)
cni_cache=$([ -e /var/lib/cni ] || echo /var/lib/cni) # CNI caches results there, whatever the config
# Debian's python3 with Debian's python3-grpcio, not another python3 that PATH may find first
cri() { /usr/bin/python3 "$repo/scripts/clients/cri/cri.py" "$sock" "$work/pb" "$@"; }
teardown() {
    local id p
    if [ -f "$work/containerd.pid" ]; then
        for id in $(cri ListPodSandbox 2>/dev/null | jq -r '.items[].id'); do
            cri StopPodSandbox "{\"pod_sandbox_id\": \"$id\"}" >/dev/null 2>&1 || true
            cri RemovePodSandbox "{\"pod_sandbox_id\": \"$id\"}" >/dev/null 2>&1 || true
        done
        stop_containerd
    fi
    for p in $(left_processes "-address $sock"); do kill -9 "$p" 2>/dev/null || true; done
    for id in $("$husk" --root "$state_root" list -q 2>/dev/null); do
        "$husk" --root "$state_root" delete -f "$id" 2>/dev/null || true
    done
    umount_under "$work"
    ip link del "$bridge" 2>/dev/null || true
    echo "$forward" >/proc/sys/net/ipv4/ip_forward
    [ -z "$cni_cache" ] || rmdir "$cni_cache/results" "$cni_cache" 2>/dev/null || true
    find /sys/fs/cgroup/*/husk-tests -depth -type d -path "*/cri-$tag*" -exec rmdir {} + 2>/dev/null || true
}
trap 'teardown; rm -rf "$work"' EXIT
mkdir -p "$work/cni" "$work/pb" "$work/logs"
# restrict_oom_score_adj: the sandbox asks for oom_score_adj -998, which needs CAP_SYS_RESOURCE;
# where root lacks it (this host), runc and husk alike fail the create with EACCES.
cat >"$work/config.toml" <<TOML
version = 2
root = "$work/root"
state = "$work/state"
[grpc]
  address = "$sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/library/huskpause:latest"
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.husk]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.husk.options]
      BinaryName = "$husk"
      Root = "$work/runtime"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$work/cni"
TOML
cat >"$work/cni/10-husk.conflist" <<JSON
{"cniVersion": "0.4.0", "name": "husk-cri-$tag", "plugins": [{"type": "bridge", "bridge": "$bridge",
 "isGateway": true, "ipam": {"type": "host-local", "dataDir": "$work/cni-ipam",
 "ranges": [[{"subnet": "$subnet.0/24", "gateway": "$subnet.1"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
 {"type": "loopback"}]}
JSON
netns_dir_shared # before this manager makes a netns (lib.sh)
start_containerd
protoc -I scripts/clients/cri --python_out="$work/pb" scripts/clients/cri/api.proto
HUSK_BIN=$husk scripts/mkbundle.sh "$work/bundle" >/dev/null
scripts/clients/oci-image.sh "$work/bundle/rootfs" "$work/image.tar" docker.io/library/huskbox:latest
# the pause image: the same rootfs, a process that only waits
scripts/clients/oci-image.sh "$work/bundle/rootfs" "$work/pause.tar" docker.io/library/huskpause:latest \
    '["sleep", "infinity"]'
for _ in $(seq 100); do cri Version >/dev/null 2>&1 && break; sleep 0.1; done
for img in image pause; do
    ctr --address "$sock" --namespace k8s.io image import "$work/$img.tar" >/dev/null
done

check "Version: containerd, CRI v1" "containerd v1" "$(cri Version '{"version": "v1"}' | jq -r '"\(.runtime_name) \(.runtime_api_version)"')"
check "Status: RuntimeReady and NetworkReady" "RuntimeReady=true NetworkReady=true" \
    "$(cri Status | jq -r '[.status.conditions[] | "\(.type)=\(.status)"] | join(" ")')"
check "ImageStatus: the locally imported sandbox image" "docker.io/library/huskpause:latest" \
    "$(cri ImageStatus '{"image": {"image": "docker.io/library/huskpause:latest"}}' | jq -r '.image.repo_tags[0]')"

# What a kubelet sends for a pod whose RuntimeClass has handler "husk".
pod_config=$(jq -nc --arg logs "$work/logs" --arg cg "$cgparent" '{
    metadata: {name: "huskpod", uid: "husk-uid-1", namespace: "husk-tests"}, hostname: "huskpod",
    log_directory: $logs, linux: {cgroup_parent: $cg,
        security_context: {namespace_options: {pid: "CONTAINER"}}}}')
pod=$(cri RunPodSandbox "$(jq -nc --argjson c "$pod_config" '{config: $c, runtime_handler: "husk"}')" |
    jq -r .pod_sandbox_id)
status=$(cri PodSandboxStatus "{\"pod_sandbox_id\": \"$pod\", \"verbose\": true}")
check "RunPodSandbox (handler husk): ready" "SANDBOX_READY husk" "$(jq -r '"\(.status.state) \(.status.runtime_handler)"' <<<"$status")"
check "the sandbox (pause) container runs through husk" "running" \
    "$("$husk" --root "$state_root" state "$pod" 2>&1 | jq -r .status 2>&1)"
pod_ip=$(jq -r .status.network.ip <<<"$status")
check_match "the pod has an address from the CNI bridge" "^$subnet\.[0-9]+$" "$pod_ip"
pod_netns=$(jq -r '.info.info | fromjson | .runtimeSpec.linux.namespaces[] | select(.type == "network") | .path' <<<"$status")

container_config=$(jq -nc '{metadata: {name: "box"}, image: {image: "docker.io/library/huskbox:latest"},
    command: ["sh", "-c", "trap \"echo got-term; exit 0\" TERM; echo started; sleep 1000 & wait"],
    log_path: "box.log", linux: {resources: {memory_limit_in_bytes: 67108864},
        security_context: {namespace_options: {pid: "CONTAINER"}, seccomp: {profile_type: "RuntimeDefault"}}}}')
ct=$(cri CreateContainer "$(jq -nc --arg p "$pod" --argjson c "$container_config" --argjson s "$pod_config" \
    '{pod_sandbox_id: $p, config: $c, sandbox_config: $s}')" | jq -r .container_id)
cri StartContainer "{\"container_id\": \"$ct\"}" >/dev/null
check "CreateContainer + StartContainer: running" "CONTAINER_RUNNING" \
    "$(cri ContainerStatus "{\"container_id\": \"$ct\"}" | jq -r .status.state)"
for _ in $(seq 30); do grep -q started "$work/logs/box.log" 2>/dev/null && break; sleep 0.1; done
check "the container's log (CRI format)" "stdout F started" "$(head -1 "$work/logs/box.log" 2>&1 | cut -d' ' -f2-)"
execsync() { # CMD...: ExecSync's stdout and exit code
    # (jq 1.6 would take a "-c" among --args for its own option, and stops reading at a NUL)
    cri ExecSync "$(printf '%s\037' "$@" | jq -Rsc --arg c "$ct" '{container_id: $c, cmd: split("\u001f")[:-1], timeout: 10}')" |
        jq -r '"\(.stdout)\(.exit_code)"' | tr '\n' ' ' | sed 's/ $//'
}
check "ExecSync: output and exit code 0" "exec-ok huskpod 0" "$(execsync sh -c 'echo exec-ok; hostname')"
check "ExecSync: exit code" "3" "$(execsync sh -c 'exit 3')"
check "the memory limit seen inside" "67108864 0" "$(execsync cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"
check "RuntimeDefault seccomp profile applied" "2 0" "$(execsync sh -c 'grep ^Seccomp: /proc/self/status | cut -f2')"
check "the pod's network namespace: eth0 has the pod's address" "inet $pod_ip/24 0" \
    "$(execsync sh -c "ip -4 -o addr show eth0 | grep -o 'inet $pod_ip/[0-9]*'")"
check "a pid namespace of its own: PID 1 is the container's sh" "sh 0" "$(execsync cat /proc/1/comm)"

cri StopContainer "{\"container_id\": \"$ct\", \"timeout\": 20}" >/dev/null
check "StopContainer: SIGTERM first, exited 0" "CONTAINER_EXITED 0 got-term" \
    "$(cri ContainerStatus "{\"container_id\": \"$ct\"}" | jq -r '"\(.status.state) \(.status.exit_code)"') $(tail -1 "$work/logs/box.log" | cut -d' ' -f4)"
cri RemoveContainer "{\"container_id\": \"$ct\"}" >/dev/null
check "RemoveContainer" "0" "$(cri ListContainers | jq '.containers | length')"
cri StopPodSandbox "{\"pod_sandbox_id\": \"$pod\"}" >/dev/null
cri RemovePodSandbox "{\"pod_sandbox_id\": \"$pod\"}" >/dev/null
check "StopPodSandbox + RemovePodSandbox" "0" "$(cri ListPodSandbox | jq '.items | length')"

check "nothing left: runtime state" "" "$(ls "$state_root" 2>/dev/null)"
check "nothing left: cgroups" "" "$(find /sys/fs/cgroup/*/husk-tests/cri-$tag -mindepth 1 -type d 2>/dev/null | head -3)"
check "nothing left: shims" "" "$(left_processes "-address $sock")"
check "nothing left: rootfs mounts, the pod's netns" "" "$(left_mounts "$work/state")$(ls "$pod_netns" 2>/dev/null)"
teardown
check "nothing left: containerd, mounts, bridge, cgroup parent" "" \
    "$(left_processes "$work/config.toml")$(left_mounts "$work")$(ip -br link show "$bridge" 2>/dev/null)$(ls -d /sys/fs/cgroup/*/husk-tests/cri-$tag 2>/dev/null)"
exit_showing_log "$work/containerd.log"
