#!/usr/bin/env bash
# The benchmark suite: husk, crun and runc side by side on the same busybox bundle (runc's default
# spec, /bin/true), every row of the performance issue's target table, in one run:
#
#   run                 full `run` of /bin/true
#   run-seccomp         the same with Docker's default seccomp profile (husk's filter cache warm,
#                       its steady state; `run-seccomp-cold` empties husk's cache before each rep)
#   create start state delete    each on its own (setup and teardown untimed)
#   exec                `exec /bin/true` into a running container
#   delete-force        `delete --force` of a running container (a `sleep`)
#   kill-all            `kill --all ID KILL` of a running container (a `sleep`; here the
#                       tmpfs over the cgroup2 mount leaves husk the freezer path, not cgroup.kill)
#   rss                 peak RSS of every command the three runtimes share
#   concurrent          50 containers `run -d` at once on one --root, then 50 `delete --force`
#                       at once: total time, and every call must succeed
#   root1000            1000 containers on one --root: `state` and `exec` against an empty
#                       root, `list` at 100 and at 1000 containers
#
# All runtimes run in one private mount namespace with a tmpfs over the cgroup2 mount (crun
# refuses this hybrid host otherwise; shared/reference/host.md), interleaved rep by rep (the
# order rotates each rep) so that this noisy machine's load hits them alike; the first rep of
# each row is a warm-up. Prints a Markdown table of medians and husk/peer ratios, with the date,
# machine and load average. Not a test: nothing fails on a timing.
#
#   sudo scripts/bench.sh [-n REPS] [-r ROW,ROW...] [--ab OLD_HUSK NEW_HUSK]
#
#   -n REPS   repetitions of the per-call rows (default 41: 40 after the warm-up); the
#             concurrent row takes REPS/8 (at least 3), rss 5, root1000 REPS/4
#   -r ROWS   only these rows (names above)
#   --ab A B  compare two husk binaries instead (A/B of a change): columns A, B and B/A
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh
[ "$(id -u)" = 0 ] || { echo "scripts/bench.sh: run as root" >&2; exit 1; }
reps=41
rows="run run-seccomp run-seccomp-cold create start state delete exec delete-force kill-all rss concurrent root1000"
ab=()
while [ $# -gt 0 ]; do
    case $1 in
        -n) reps=$2; shift 2 ;;
        -r) rows=${2//,/ }; shift 2 ;;
        --ab) ab=("$(realpath "$2")" "$(realpath "$3")"); shift 3 ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "scripts/bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
apt_need busybox-static jq crun runc time python3 golang-github-containers-common libseccomp-dev
if [ ${#ab[@]} = 0 ]; then
    ensure_cargo
    cargo build --release -q
    runtimes="husk=$(release_bin husk) crun=$(command -v crun) runc=$(command -v runc)"
else
    runtimes="A=${ab[0]} B=${ab[1]}"
fi
work=$(mktemp -d /tmp/husk-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
first=${runtimes%% *}
HUSK_BIN=${first#*=} scripts/mkbundle.sh "$work/plain" >/dev/null 2>&1 || scripts/mkbundle.sh "$work/plain" >/dev/null
# crun 1.8 refuses ociVersion 1.3.0; the measurement is about the same work, so use 1.0.2.
jq '.process.terminal=false | .process.args=["/bin/true"] | .ociVersion="1.0.2"' \
    "$work/plain/config.json" >"$work/c.json" && mv "$work/c.json" "$work/plain/config.json"
mkdir -p "$work/sleeper" "$work/docker"
jq --arg root "$work/plain/rootfs" '.process.args=["sleep","100000"] | .root.path=$root' \
    "$work/plain/config.json" >"$work/sleeper/config.json"
python3 scripts/lib/docker-seccomp.py "$work/plain/config.json" /usr/share/containers/seccomp.json \
    >"$work/docker/config.json"
# Not exec: the EXIT trap removes the work dir.
unshare -m --propagation private bash scripts/lib/bench-inner.sh "$work" "$reps" "$rows" $runtimes
