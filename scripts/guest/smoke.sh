#!/usr/bin/env bash
# First guest smoke test, run INSIDE the guest as root in the repository directory:
#
#   scripts/guest/run.sh -- scripts/guest/smoke.sh
#
# Checks the guest environment (pure cgroup v2, controllers, systemd, AppArmor, CRIU) and runs one
# husk container with a 64 MiB memory limit in the cgroup /husk-smoke: memory.max must read
# 67108864 inside the container (cgroup namespace) and from the guest side.
# Exits non-zero when anything is off; every check prints its result first.
set -uo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/deps.sh
husk=${HUSK_BIN:-$(release_bin husk)}
failed=()
fail() { echo "SMOKE FAIL: $*"; failed+=("$1"); }
section() { echo; echo "== $*"; }

section "kernel"
uname -r

section "stat -fc %T /sys/fs/cgroup"
fs=$(stat -fc %T /sys/fs/cgroup)
echo "$fs"
[ "$fs" = cgroup2fs ] || fail cgroup2 "/sys/fs/cgroup is $fs, not cgroup2fs"

section "cgroup.controllers / root cgroup.subtree_control"
cat /sys/fs/cgroup/cgroup.controllers
cat /sys/fs/cgroup/cgroup.subtree_control
for c in cpuset cpu io memory pids; do
    grep -qw "$c" /sys/fs/cgroup/cgroup.subtree_control || fail "controller-$c" "$c not delegated below the root"
done

section "systemctl is-system-running"
state=$(timeout 120 systemctl is-system-running --wait 2>&1)
echo "$state (PID 1: $(cat /proc/1/comm))"
[ "$state" = running ] || {
    systemctl --failed --no-legend --plain || true
    fail systemd "system state $state"
}
busctl --system list --no-legend >/dev/null 2>&1 && echo "D-Bus system bus: ok" || fail dbus "no system bus"

section "aa-status --enabled"
if aa-status --enabled; then echo "apparmor on"; else fail apparmor "AppArmor not enabled"; fi

section "criu check"
criu_out=$(criu check 2>&1); criu_rc=$?
echo "$criu_out"
[ $criu_rc -eq 0 ] || fail criu "criu check exited $criu_rc"

section "unprivileged user"
id husk && grep ^husk: /etc/subuid /etc/subgid || fail user "no husk user with subuid/subgid"
uid=$(id -u husk)
timeout 60 systemctl start "user@$uid.service" || fail user-manager "user@$uid.service does not start"
ucg=/sys/fs/cgroup/user.slice/user-$uid.slice/user@$uid.service
echo "delegated to user@$uid.service ($(stat -c %U "$ucg" 2>/dev/null) owns it): $(cat "$ucg/cgroup.controllers" 2>&1)"
for c in cpuset cpu io memory pids; do
    grep -qw "$c" "$ucg/cgroup.controllers" 2>/dev/null || fail "user-delegation-$c" "$c not delegated to user@$uid.service"
done

section "husk run: memory.limit 64 MiB in /husk-smoke"
"$husk" --version 2>&1 || "$husk" -V 2>&1 || true
b=/tmp/husk-smoke-bundle
rm -rf "$b"
HUSK_BIN=$husk scripts/mkbundle.sh "$b" || fail mkbundle "scripts/mkbundle.sh failed"
jq '.process.terminal = false
    | .process.args = ["sh", "-c", "cat /sys/fs/cgroup/memory.max; cat /proc/self/cgroup; sleep 3"]
    | .linux.resources.memory.limit = 67108864
    | .linux.cgroupsPath = "/husk-smoke"
    | .linux.namespaces |= (map(select(.type != "cgroup")) + [{"type": "cgroup"}])' \
    "$b/config.json" >"$b/config.json.new" && mv "$b/config.json.new" "$b/config.json"
# run_container BUNDLE: husk run it in the background, read memory.max from the guest side
# while it runs; sets hrc, inside, outside.
run_container() {
    local b=$1 out=/tmp/husk-smoke.out hpid
    "$husk" run --bundle "$b" husk-smoke >"$out" 2>&1 </dev/null &
    hpid=$!
    outside=
    # Read it once the container has printed its first line: the limit is set by then (a runtime
    # may make the directory before it writes the limit).
    for _ in $(seq 100); do
        if [ -s "$out" ]; then
            outside=$(cat /sys/fs/cgroup/husk-smoke/memory.max 2>/dev/null)
            break
        fi
        kill -0 $hpid 2>/dev/null || break
        sleep 0.1
    done
    wait $hpid; hrc=$?
    echo "husk run exited $hrc; container output:"
    sed 's/^/  | /' "$out"
    echo "guest side: /sys/fs/cgroup/husk-smoke/memory.max = ${outside:-<not seen>}"
    inside=$(head -1 "$out")
    [ -e /sys/fs/cgroup/husk-smoke ] && echo "note: /sys/fs/cgroup/husk-smoke still exists after run"
    "$husk" delete --force husk-smoke >/dev/null 2>&1 || true
}
run_container "$b"
if [ $hrc -ne 0 ] && grep -q 'linux.maskedPaths' /tmp/husk-smoke.out; then
    fail husk-masked-dirs "husk run with the default maskedPaths exited $hrc"
    section "husk run again without the masked directories (diagnostic)"
    dirs=$(jq -r '.linux.maskedPaths[]' "$b/config.json" | while read -r p; do [ -d "$p" ] && echo "$p"; done |
        jq -R . | jq -sc .)
    echo "masked paths that are directories here: $dirs"
    jq --argjson d "$dirs" '.linux.maskedPaths -= $d' "$b/config.json" >"$b/config.json.new" &&
        mv "$b/config.json.new" "$b/config.json"
    jq -Mc .linux.maskedPaths "$b/config.json"
    run_container "$b"
fi
[ $hrc -eq 0 ] || fail husk-run "husk run exited $hrc"
[ "$inside" = 67108864 ] || fail memory-inside "memory.max inside the container: '$inside', want 67108864"
[ "$outside" = 67108864 ] || fail memory-outside "memory.max from the guest side: '${outside:-}', want 67108864"

echo
if [ ${#failed[@]} -eq 0 ]; then
    echo "SMOKE OK"
    exit 0
fi
echo "SMOKE FAILED: ${failed[*]}"
exit 1
