#!/usr/bin/env bash
# Rootless side by side: husk, crun and runc run by an unprivileged user (USER, default the
# tests' husk-rootless-test with /etc/subuid ranges) on the same busybox bundle from
# `husk spec --rootless` (/bin/true): `run` with the user's own id mapped (written directly),
# `run` with the user and its subordinate range mapped (newuidmap/newgidmap), and create,
# start, delete. No cgroups (this host: v1, nothing delegated). As scripts/bench.sh, in a
# private mount namespace with a tmpfs over the cgroup2 mount, where crun runs on this hybrid
# host. Prints medians and ratios. Not a test: nothing fails on a timing.
#
#   sudo scripts/bench-rootless.sh [REPS] [USER]      (default 40)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh
[ "$(id -u)" = 0 ] || { echo "scripts/bench-rootless.sh: run as root (it drops to USER)" >&2; exit 1; }
apt_need busybox-static jq crun runc bc uidmap
ensure_cargo
cargo build --release -q
reps=${1:-40}
user=${2:-husk-rootless-test}
uid=$(id -u "$user") gid=$(id -g "$user")
subuid=$(awk -F: -v u="$user" '$1 == u { print $2, $3; exit }' /etc/subuid)
subgid=$(awk -F: -v u="$user" '$1 == u { print $2, $3; exit }' /etc/subgid)
[ -n "$subuid" ] && [ -n "$subgid" ] || { echo "$user has no /etc/subuid or /etc/subgid range" >&2; exit 1; }
husk=$PWD/target/release/husk
work=$(mktemp -d /tmp/husk-bench-rootless.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
HUSK_BIN=$husk scripts/mkbundle.sh "$work/single" >/dev/null
rm "$work/single/config.json"
chown "$uid:$gid" "$work/single"
(cd "$work/single" && setpriv --reuid "$uid" --regid "$gid" --clear-groups "$husk" spec --rootless)
# crun 1.8 refuses ociVersion 1.3.0; the measurement is about the same work, so use 1.0.2.
jq '.process.terminal=false | .process.args=["/bin/true"] | .ociVersion="1.0.2"' "$work/single/config.json" >"$work/c"
mv "$work/c" "$work/single/config.json"
mkdir "$work/multi"
read -r su sn <<<"$subuid"
read -r sg gn <<<"$subgid"
jq --arg root "$work/single/rootfs" --argjson u "$uid" --argjson g "$gid" --argjson su "$su" --argjson sn "$sn" --argjson sg "$sg" --argjson gn "$gn" \
    '.root.path=$root | .linux.uidMappings=[{containerID:0,hostID:$u,size:1},{containerID:1,hostID:$su,size:$sn}]
     | .linux.gidMappings=[{containerID:0,hostID:$g,size:1},{containerID:1,hostID:$sg,size:$gn}]' \
    "$work/single/config.json" >"$work/multi/config.json"
mkdir -m 700 "$work/xdg"
chown -R "$uid:$gid" "$work"

unshare -m --propagation private bash -s "$husk" "$work" "$reps" "$uid" "$gid" <<'INNER'
set -euo pipefail
husk=$1 work=$2 reps=$3 uid=$4 gid=$5
mount -t tmpfs -o size=16m,mode=755 none /sys/fs/cgroup/unified
as_user() { setpriv --reuid "$uid" --regid "$gid" --clear-groups env XDG_RUNTIME_DIR="$work/xdg" HOME="$work" "$@"; }
# One user-side loop per runtime and operation, timed by the user's own shell.
as_user bash -s "$husk" "$work" "$reps" <<'USER'
set -euo pipefail
husk=$1 work=$2 reps=$3
now() { date +%s%N; }
# A failed call is reported, not timed away silently.
fail() { echo "$rt $op $id failed: $(tr '\n' ' ' <"$work/log")" >&2; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
declare -A med
for op in run-single run-multi create start delete; do
  for rt in husk crun runc; do
    case $rt in husk) bin=$husk ;; *) bin=$(command -v $rt) ;; esac
    root=$work/root-$rt
    b=$work/single
    [ "$op" = run-multi ] && b=$work/multi
    : >"$work/t"
    for i in $(seq 0 "$reps"); do
      id=$rt-$op-$i
      case $op in
        run-*)  t0=$(now); "$bin" --root "$root" run -b "$b" "$id" </dev/null >"$work/log" 2>&1 || fail; t1=$(now) ;;
        create) t0=$(now); "$bin" --root "$root" create -b "$b" "$id" </dev/null >"$work/log" 2>&1 || fail; t1=$(now)
                "$bin" --root "$root" delete -f "$id" >/dev/null 2>&1 || true ;;
        start|delete)
                "$bin" --root "$root" create -b "$b" "$id" </dev/null >"$work/log" 2>&1 || fail
                if [ "$op" = delete ]; then "$bin" --root "$root" start "$id" >"$work/log" 2>&1 || fail; sleep 0.05; fi
                t0=$(now); "$bin" --root "$root" "$op" "$id" </dev/null >"$work/log" 2>&1 || fail; t1=$(now)
                "$bin" --root "$root" delete -f "$id" >/dev/null 2>&1 || true ;;
      esac
      [ "$i" = 0 ] || echo $(( (t1 - t0) / 1000 )) >>"$work/t"   # first run is warm-up
    done
    med[$op,$rt]=$(median <"$work/t")
  done
  printf '%-10s husk %7.2f ms  crun %7.2f ms  runc %7.2f ms   husk/crun %.2f  husk/runc %.2f\n' "$op" \
    "$(echo "${med[$op,husk]}/1000" | bc -l)" "$(echo "${med[$op,crun]}/1000" | bc -l)" \
    "$(echo "${med[$op,runc]}/1000" | bc -l)" \
    "$(echo "${med[$op,husk]}/${med[$op,crun]}" | bc -l)" "$(echo "${med[$op,husk]}/${med[$op,runc]}" | bc -l)"
done
USER
INNER
