#!/usr/bin/env bash
# Side-by-side timings of husk, crun and runc on the same busybox bundle (runc's default spec,
# /bin/true), all in one private mount namespace with a tmpfs over the cgroup2 mount, which is
# how crun runs on this hybrid host (shared/reference/host.md). Prints medians and ratios.
# Not a test: nothing fails on a timing.
#
# Also `exec /bin/true` into a running container (a `sleep`), the three runtimes interleaved rep
# by rep so that the machine's noise hits them alike, and the CPU time per exec (user + system of
# the runtime and the exec'd process, over 100 execs; the loop's own fork costs the same for all three).
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

exec unshare -m --propagation private bash -s "$husk" "$work" "$reps" <<'INNER'
set -euo pipefail
husk=$1 work=$2 reps=$3
mount -t tmpfs -o size=16m,mode=755 none /sys/fs/cgroup/unified
# Times are bash's own clock (EPOCHREALTIME, µs): no `date` process inside a measured interval.
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
        run)    t0=${EPOCHREALTIME/./}; "$bin" --root "$root" run -b "$work/bundle" "$id" </dev/null >/dev/null 2>&1; t1=${EPOCHREALTIME/./} ;;
        create) t0=${EPOCHREALTIME/./}; "$bin" --root "$root" create -b "$work/bundle" "$id" </dev/null >/dev/null 2>&1; t1=${EPOCHREALTIME/./}
                "$bin" --root "$root" delete -f "$id" >/dev/null 2>&1 ;;
        start|state|delete)
                "$bin" --root "$root" create -b "$work/bundle" "$id" </dev/null >/dev/null 2>&1
                [ "$op" = delete ] && { "$bin" --root "$root" start "$id"; sleep 0.05; }
                t0=${EPOCHREALTIME/./}; "$bin" --root "$root" "$op" "$id" </dev/null >/dev/null 2>&1; t1=${EPOCHREALTIME/./}
                "$bin" --root "$root" delete -f "$id" >/dev/null 2>&1 || true ;;
      esac
      [ "$i" = 0 ] || echo $(( t1 - t0 )) >>"$work/t"   # µs; the first run is warm-up
    done
    med[$op,$rt]=$(median <"$work/t")
  done
  printf '%-7s husk %7.2f ms  crun %7.2f ms  runc %7.2f ms   husk/crun %.2f  husk/runc %.2f\n' "$op" \
    "$(echo "${med[$op,husk]}/1000" | bc -l)" "$(echo "${med[$op,crun]}/1000" | bc -l)" \
    "$(echo "${med[$op,runc]}/1000" | bc -l)" \
    "$(echo "${med[$op,husk]}/${med[$op,crun]}" | bc -l)" "$(echo "${med[$op,husk]}/${med[$op,runc]}" | bc -l)"
done
bin_of() { case $1 in husk) echo "$husk" ;; *) command -v "$1" ;; esac; }
mkdir -p "$work/sleeper"
jq --arg root "$work/bundle/rootfs" '.process.args=["sleep","100000"] | .root.path=$root' \
    "$work/bundle/config.json" >"$work/sleeper/config.json"
for rt in husk crun runc; do
  "$(bin_of $rt)" --root "$work/root-$rt" run -d -b "$work/sleeper" exec-$rt </dev/null >/dev/null 2>&1
  : >"$work/t-$rt"
done
for i in $(seq 0 "$reps"); do
  for rt in husk crun runc; do
    bin=$(bin_of $rt)
    t0=${EPOCHREALTIME/./}; "$bin" --root "$work/root-$rt" exec exec-$rt /bin/true </dev/null >/dev/null 2>&1; t1=${EPOCHREALTIME/./}
    [ "$i" = 0 ] || echo $(( t1 - t0 )) >>"$work/t-$rt"
  done
done
for rt in husk crun runc; do med[exec,$rt]=$(median <"$work/t-$rt"); done
printf '%-7s husk %7.2f ms  crun %7.2f ms  runc %7.2f ms   husk/crun %.2f  husk/runc %.2f\n' exec \
  "$(echo "${med[exec,husk]}/1000" | bc -l)" "$(echo "${med[exec,crun]}/1000" | bc -l)" \
  "$(echo "${med[exec,runc]}/1000" | bc -l)" \
  "$(echo "${med[exec,husk]}/${med[exec,crun]}" | bc -l)" "$(echo "${med[exec,husk]}/${med[exec,runc]}" | bc -l)"
for rt in husk crun runc; do
  cpu=$( { /usr/bin/time -f '%U %S' bash -c 'for i in $(seq 100); do "$0" --root "$1" exec "$2" /bin/true; done' \
      "$(bin_of $rt)" "$work/root-$rt" exec-$rt </dev/null >/dev/null; } 2>&1 | tail -1)
  printf 'CPU per exec: %s %.2f ms\n' "$rt" "$(echo "(${cpu% *} + ${cpu#* }) * 1000 / 100" | bc -l)"
  "$(bin_of $rt)" --root "$work/root-$rt" delete -f exec-$rt >/dev/null 2>&1 || true
done
for rt in husk crun runc; do
  case $rt in husk) bin=$husk ;; *) bin=$(command -v $rt) ;; esac
  rss=$( { /usr/bin/time -f %M "$bin" --root "$work/root-$rt" run -b "$work/bundle" rss-$rt </dev/null >/dev/null; } 2>&1 | tail -1)
  echo "peak RSS of run: $rt ${rss} KiB"
done
INNER
