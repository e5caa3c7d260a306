#!/usr/bin/env bash
# husk's "main job" on a fresh Debian 12 machine: install what is missing, build, make a busybox
# bundle, run a container that prints what it sees, clean up.
#
#   sudo scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh

if [ "$(id -u)" != 0 ]; then
    echo "scripts/demo.sh: run as root (sudo scripts/demo.sh)" >&2
    exit 1
fi

apt_need busybox-static jq build-essential libseccomp-dev
ensure_cargo
cargo build --release
husk=${DEMO_HUSK:-$(release_bin husk)}

tmp=$(mktemp -d /tmp/husk-demo.XXXXXX)
id=husk-demo-$$
cleanup() {
    "$husk" --root "$tmp/state" delete --force "$id" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

HUSK_BIN=$husk scripts/mkbundle.sh "$tmp/bundle"

read -r -d '' script <<'SH' || true
echo "== hostname";      hostname
echo "== PID 1 (this shell: \$\$ = $$)"; tr '\0' ' ' </proc/1/cmdline; echo; ps -o pid,user,args
echo "== uid map";       cat /proc/self/uid_map
echo "== capabilities";  grep Cap /proc/self/status
echo "== mounts";        cat /proc/self/mountinfo
SH
jq --arg script "$script" '
    .process.terminal = false
  | .process.args = ["sh", "-c", $script]
  | .hostname = "husk-demo"
' "$tmp/bundle/config.json" >"$tmp/config.json"
mv "$tmp/config.json" "$tmp/bundle/config.json"

echo ">> $husk run $id" >&2
status=0
"$husk" --root "$tmp/state" run --bundle "$tmp/bundle" "$id" || status=$?
echo ">> the container exited with $status" >&2
exit $status
