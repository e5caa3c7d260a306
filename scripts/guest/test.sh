#!/usr/bin/env bash
# The guest test run (CI's second step, after scripts/test.sh): build husk and its test binaries
# on the host, boot the Debian guest ONCE (pure cgroup v2, systemd, AppArmor, CRIU), and run there
# the smoke test and every test, from every test binary, whose name starts with a guest prefix
# (cgroup2_ systemd_ apparmor_ criu_), with HUSK_REQUIRE naming those features so none can pass
# by skipping. Output is streamed; the exit status is non-zero when any test failed or the guest
# timed out; it ends with the list of tests and their results and the timings.
#
#   scripts/guest/test.sh                       # everything
#   scripts/guest/test.sh cgroup2_memory        # only guest tests whose name contains a filter
#   scripts/guest/test.sh --timeout 2400 ...    # kill the guest after that many seconds (1500)
#   HUSK_BIN=/usr/sbin/runc scripts/guest/test.sh   # the same tests against the guest's runc 1.1
#
# The guest is Debian 12 x86_64 like the host, so the host's binaries run there; the repository
# is shared at its own path (scripts/guest/run.sh), so the paths compiled into the test binaries
# resolve. Results and logs are in target/guest/.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/deps.sh

timeout_s=1500
while [ $# -gt 0 ]; do
    case $1 in
    --timeout) timeout_s=$2; shift 2 ;;
    --) shift; break ;;
    -*) echo "usage: $0 [--timeout SECS] [FILTER...]" >&2; exit 2 ;;
    *) break ;;
    esac
done
filters=("$@")
read -ra prefixes <<<"${GUEST_TEST_PREFIXES:-cgroup2_ systemd_ apparmor_ criu_}"
require=${GUEST_REQUIRE:-cgroup2,systemd,apparmor,criu}

if [ "$(id -u)" != 0 ]; then
    echo "scripts/guest/test.sh: needs root (image build, qemu, the tests themselves)" >&2
    exit 1
fi
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
t_start=$(now)

apt_need build-essential jq libseccomp-dev
ensure_cargo
out=target/guest
mkdir -p "$out"
rm -rf "$out"/*.log "$out"/results "$out"/first-test "$out"/plan* "$out"/boot[0-9]*

echo ">> guest tests: building husk and the test binaries (release) on the host" >&2
cargo build --release --workspace
cargo test --release --workspace --no-run --message-format=json-render-diagnostics >"$out/artifacts.json"
mapfile -t exes < <(jq -r 'select(.reason == "compiler-artifact" and .profile.test and .executable != null)
    | .executable' "$out/artifacts.json" | sort -u)
t_built=$(now)

# The plan: every test whose last path segment starts with a guest prefix (and, when filters are
# given, whose name contains one of them).
selected() {
    local name=$1 last=${1##*::} p f
    for p in "${prefixes[@]}"; do
        if [[ $last == "$p"* ]]; then
            [ ${#filters[@]} -eq 0 ] && return 0
            for f in "${filters[@]}"; do
                [[ $name == *"$f"* ]] && return 0
            done
            return 1
        fi
    done
    return 1
}
for exe in "${exes[@]}"; do
    "$exe" --list --format terse 2>/dev/null | sed -n 's/: test$//p' | while read -r name; do
        if selected "$name"; then printf '%s\t%s\n' "$exe" "$name"; fi
    done
done >"$out/plan"
planned=$(wc -l <"$out/plan")
if [ "$planned" -eq 0 ]; then
    echo "scripts/guest/test.sh: no test matches the prefixes (${prefixes[*]})${filters:+ and filters (${filters[*]})}" >&2
    exit 1
fi
echo ">> guest tests: $planned tests from $(cut -f1 "$out/plan" | sort -u | wc -l) test binaries, plus the smoke test" >&2

t_img=$(now)
img=$(scripts/guest/build-image.sh)
t_img_done=$(now)
scripts/guest/install-qemu.sh

env_args=(HUSK_REQUIRE="$require")
[ -n "${HUSK_BIN:-}" ] && env_args+=(HUSK_BIN="$HUSK_BIN")
[ -n "${GUEST_TEST_THREADS:-}" ] && env_args+=(GUEST_TEST_THREADS="$GUEST_TEST_THREADS")
# A guest whose kernel hangs (run.sh exits 126: seen under TCG, both CPUs stuck from boot) is
# booted once more, for the tests that have no result yet; a test that hangs the guest twice
# fails the run. Results and logs of a hung boot are kept in target/guest/bootN/.
boots=${GUEST_BOOTS:-2}
# Plan lines (EXE<TAB>NAME) with no line in the results file $2 yet.
without_result() {
    local exe name bin
    while IFS=$'\t' read -r exe name; do
        bin=$(basename "$exe")
        grep -qF " ${bin%-*}::$name" "$2" || printf '%s\t%s\n' "$exe" "$name"
    done <"$1"
}
t0=$(now)
boot=1 plan=$out/plan
: >"$out/results.hung-boots"
while :; do
    rc=0 t_boot=$(now)
    scripts/guest/run.sh --timeout "$timeout_s" -- \
        env "${env_args[@]}" scripts/guest/tests-in-guest.sh "$plan" "$out" || rc=$?
    [ "$rc" -eq 126 ] && [ "$boot" -lt "$boots" ] || break
    kept=$out/boot$boot
    rm -rf "$kept" && mkdir -p "$kept"
    touch "$out/results"
    mv "$out/results" "$out"/*.log "$kept/" 2>/dev/null || true
    grep -v ' guest::smoke$' "$kept/results" >>"$out/results.hung-boots" || true
    boot=$((boot + 1))
    plan=$out/plan.boot$boot
    without_result "$out/plan" "$out/results.hung-boots" >"$plan"
    echo ">> guest tests: the guest hung in boot $((boot - 1)); boot $boot of $boots for the" \
        "$(wc -l <"$plan") tests without a result (boot $((boot - 1))'s results and logs: $kept)" >&2
done
t1=$(now)
# The results of the hung boots first, then the last boot's (which has the one smoke result).
touch "$out/results"
cat "$out/results.hung-boots" "$out/results" >"$out/results.all" && mv "$out/results.all" "$out/results"
rm -f "$out/results.hung-boots"

echo
echo "== guest test results (target/guest/results)"
touch "$out/results"
sed 's/^/  /' "$out/results"
# Tests that never started (the guest died or timed out first).
without_result "$out/plan" "$out/results" | while IFS=$'\t' read -r exe name; do
    bin=$(basename "$exe")
    echo "  NOT RUN ${bin%-*}::$name"
done
[ "$boot" -eq 1 ] || echo "   ($boot boots, the guest hung in $((boot - 1 + (rc == 126))) of them)"
passed=$(grep -c '^ok ' "$out/results" || true)
failed=$(grep -c -e '^FAILED ' -e '^MISSING ' "$out/results" || true)
ignored=$(grep -c '^ignored ' "$out/results" || true)
ran=$(wc -l <"$out/results")
echo "   $passed passed, $failed failed, $ignored ignored, $((planned + 1 - ran)) not run (of $planned + smoke)"

first=
[ -s "$out/first-test" ] && first=$(secs "$t_boot" "$(stat -c %.9Y "$out/first-test")")
echo ">> guest timings: image $(secs "$t_img" "$t_img_done") s (build or cache check)," \
    "boot-to-first-test ${first:-n/a} s, total guest $(secs "$t0" "$t1") s (qemu start to power-off);" \
    "host build $(secs "$t_start" "$t_built") s; whole run $(secs "$t_start" "$t1") s" >&2
if [ "$rc" -eq 0 ] && { [ "$failed" -ne 0 ] || [ "$ran" -ne $((planned + 1)) ]; }; then
    rc=1
fi
echo ">> scripts/guest/test.sh: exit $rc" >&2
exit "$rc"
