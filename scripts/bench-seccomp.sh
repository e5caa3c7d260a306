#!/usr/bin/env bash
# What Docker's default seccomp profile costs a full `run` of /bin/true: husk with its filter cache
# cold (emptied before every run) and warm, next to crun and runc, all with and without the
# profile, in one private mount namespace (as scripts/bench.sh runs them). The profile is
# Podman's /usr/share/containers/seccomp.json (Docker's default, from containers-common) turned
# into OCI form for this machine and the default spec's capabilities, as Podman does.
# Prints medians and the extra cost of the profile. Not a test: nothing fails on a timing.
#
#   sudo scripts/bench-seccomp.sh [REPS]        (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh
[ "$(id -u)" = 0 ] || { echo "scripts/bench-seccomp.sh: run as root" >&2; exit 1; }
apt_need busybox-static jq crun runc bc podman python3 libseccomp-dev
ensure_cargo
cargo build --release -q
reps=${1:-30}
husk=$(release_bin husk)
work=$(mktemp -d /tmp/husk-bench-seccomp.XXXXXX)
trap 'rm -rf "$work"' EXIT
HUSK_BIN=$husk scripts/mkbundle.sh "$work/plain" >/dev/null
# crun 1.8 refuses ociVersion 1.3.0; the measurement is about the same work, so use 1.0.2.
jq '.process.terminal=false | .process.args=["/bin/true"] | .ociVersion="1.0.2"' \
    "$work/plain/config.json" >"$work/c.json" && mv "$work/c.json" "$work/plain/config.json"
mkdir -p "$work/docker"
python3 scripts/lib/docker-seccomp.py "$work/plain/config.json" /usr/share/containers/seccomp.json >"$work/docker/config.json"
names=$(jq '[.linux.seccomp.syscalls[].names | length] | add' "$work/docker/config.json")
echo ">> Docker's default profile: $(jq '.linux.seccomp.syscalls | length' "$work/docker/config.json") rules, $names syscall names"
cargo build --release -q -p libhusk --example seccomp_prepare
"$(release_bin examples/seccomp_prepare)" "$work/docker/config.json" 200

unshare -m --propagation private bash -s "$husk" "$work" "$reps" <<'INNER'
set -euo pipefail
husk=$1 work=$2 reps=$3
mount -t tmpfs -o size=16m,mode=755 none /sys/fs/cgroup/unified
now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# time_runs NAME BIN BUNDLE [cold]: median µs of `run`, first run discarded (warm-up).
time_runs() {
    local name=$1 bin=$2 bundle=$3 cold=${4:-} root=$work/root-$1 i t0 t1
    : >"$work/t"
    for i in $(seq 0 "$reps"); do
        [ -n "$cold" ] && rm -rf "$root/.cache:seccomp" "$root/.cache/seccomp"   # husk's, crun's
        t0=$(now); "$bin" --root "$root" run -b "$bundle" "$name-$i" </dev/null >/dev/null 2>&1; t1=$(now)
        [ "$i" = 0 ] || echo $(( (t1 - t0) / 1000 )) >>"$work/t"
    done
    median <"$work/t"
}
ms() { echo "scale=2; ($1)/1000" | bc -l; }
declare -A m
for rt in husk crun runc; do
    case $rt in husk) bin=$husk ;; *) bin=$(command -v $rt) ;; esac
    m[$rt,plain]=$(time_runs $rt-plain "$bin" "$work/plain")
    m[$rt,cold]=$(time_runs $rt-cold "$bin" "$work/docker" cold)
    m[$rt,warm]=$(time_runs $rt-warm "$bin" "$work/docker")
done
row() { # LABEL KEY
    printf '%-32s' "$1"
    for rt in husk crun runc; do printf ' %7s ms' "$(ms "${m[$rt,$2]}")"; done
    echo
}
cost() { # LABEL KEY
    printf '%-32s' "$1"
    for rt in husk crun runc; do printf ' %7s ms' "$(ms "${m[$rt,$2]} - ${m[$rt,plain]}")"; done
    echo
}
printf '%-32s %10s %10s %10s\n' "run /bin/true, median of $reps" husk "crun 1.8.1" "runc 1.1.5"
row "no seccomp" plain
row "Docker's profile, cache cold" cold
row "Docker's profile, cache warm" warm
cost "the profile's cost, cold" cold
cost "the profile's cost, warm" warm
echo "(runc has no filter cache: its cold and warm rows measure the same thing)"
INNER
