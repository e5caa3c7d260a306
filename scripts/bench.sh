#!/usr/bin/env bash
# Side-by-side timings of husk, crun and runc on the same busybox bundle (runc's default spec,
# /bin/true), all in one private mount namespace with a tmpfs over the cgroup2 mount, which is
# how crun runs on this hybrid host (shared/reference/host.md). Prints medians and ratios.
# Not a test: nothing fails on a timing.
#
#   sudo scripts/bench.sh [REPS]        (default 40)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh
[ "$(id -u)" = 0 ] || { echo "scripts/bench.sh: run as root" >&2; exit 1; }
apt_need busybox-static jq crun runc bc time libseccomp-dev
ensure_cargo
cargo build --release -q
reps=${1:-40}
husk=$PWD/target/release/husk
work=$(mktemp -d /tmp/husk-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
HUSK_BIN=$husk scripts/mkbundle.sh "$work/bundle" >/dev/null
# crun 1.8 refuses ociVersion 1.3.0; the measurement is about the same work, so use 1.0.2.
jq '.process.terminal=false | .process.args=["/bin/true"] | .ociVersion="1.0.2"' \
    "$work/bundle/config.json" >"$work/c.json" && mv "$work/c.json" "$work/bundle/config.json"

unshare -m --propagation private bash -s "$husk" "$work" "$reps" <<'INNER'
set -euo pipefail
husk=$1 work=$2 reps=$3
mount -t tmpfs -o size=16m,mode=755 none /sys/fs/cgroup/unified
now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
declare -A med
for op in run create start state delete; do
  for rt in husk crun runc; do
    case $rt in husk) bin=$husk ;; *) bin=$(command -v $rt) ;; esac
    root=$work/root-$rt
    : >"$work/t"
    for i in $(seq 0 "$reps"); do
      id=$rt-$op-$i
      case $op in
        run)    t0=$(now); "$bin" --root "$root" run -b "$work/bundle" "$id" </dev/null >/dev/null 2>&1; t1=$(now) ;;
        create) t0=$(now); "$bin" --root "$root" create -b "$work/bundle" "$id" </dev/null >/dev/null 2>&1; t1=$(now)
                "$bin" --root "$root" delete -f "$id" >/dev/null 2>&1 ;;
        start|state|delete)
                "$bin" --root "$root" create -b "$work/bundle" "$id" </dev/null >/dev/null 2>&1
                [ "$op" = delete ] && { "$bin" --root "$root" start "$id"; sleep 0.05; }
                t0=$(now); "$bin" --root "$root" "$op" "$id" </dev/null >/dev/null 2>&1; t1=$(now)
                "$bin" --root "$root" delete -f "$id" >/dev/null 2>&1 || true ;;
      esac
      [ "$i" = 0 ] || echo $(( (t1 - t0) / 1000 )) >>"$work/t"   # first run is warm-up
    done
    med[$op,$rt]=$(median <"$work/t")
  done
  printf '%-7s husk %7.2f ms  crun %7.2f ms  runc %7.2f ms   husk/crun %.2f  husk/runc %.2f\n' "$op" \
    "$(echo "${med[$op,husk]}/1000" | bc -l)" "$(echo "${med[$op,crun]}/1000" | bc -l)" \
    "$(echo "${med[$op,runc]}/1000" | bc -l)" \
    "$(echo "${med[$op,husk]}/${med[$op,crun]}" | bc -l)" "$(echo "${med[$op,husk]}/${med[$op,runc]}" | bc -l)"
done
for rt in husk crun runc; do
  case $rt in husk) bin=$husk ;; *) bin=$(command -v $rt) ;; esac
  rss=$( { /usr/bin/time -f %M "$bin" --root "$work/root-$rt" run -b "$work/bundle" rss-$rt </dev/null >/dev/null; } 2>&1 | tail -1)
  echo "peak RSS of run: $rt ${rss} KiB"
done
INNER
