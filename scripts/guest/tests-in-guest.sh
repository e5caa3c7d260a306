#!/usr/bin/env bash
# Run INSIDE the guest by scripts/guest/test.sh, as root in the repository (mounted at its host
# path): the smoke test, then the tests listed in PLAN, one libtest call per test binary, with
# their output streamed to the console.
#
#   scripts/guest/tests-in-guest.sh PLAN OUT
#
# PLAN has one line per test: EXECUTABLE<TAB>TEST NAME. Into OUT (on the share) go OUT/first-test
# (written as the first test starts: its mtime is the host's clock), OUT/results (one line per
# test: "ok|FAILED|ignored|MISSING BINARY::TEST", appended as each binary finishes) and one log
# per binary. Exits 0 only when the smoke test and every planned test passed.
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ $# -ne 2 ]; then
    echo "usage: $0 PLAN OUT" >&2
    exit 2
fi
plan=$1 out=$2
threads=${GUEST_TEST_THREADS:-2}
results=$out/results
: >"$results"
up() { cut -d' ' -f1 /proc/uptime; }

# Test processes build their base bundle in CARGO_TARGET_TMPDIR (target/tmp) and sweep the dirs
# there whose pid is not alive, which in the guest means the guest's pids: a guest-local tmpfs
# keeps the host's own test runs in that dir out of reach (and the bundles off 9p).
mkdir -p target/tmp
if ! mount -t tmpfs -o mode=0755 husk-guest-tmp target/tmp; then
    echo "tests-in-guest: cannot mount a tmpfs on target/tmp"
    exit 1
fi

status=0
up >"$out/first-test"
echo "== guest::smoke (scripts/guest/smoke.sh), guest uptime $(up) s"
if scripts/guest/smoke.sh; then
    echo "ok guest::smoke" >>"$results"
else
    echo "FAILED guest::smoke" >>"$results"
    status=1
fi

for exe in $(cut -f1 "$plan" | uniq); do
    mapfile -t names < <(awk -F'\t' -v e="$exe" '$1 == e { print $2 }' "$plan")
    bin=$(basename "$exe")
    bin=${bin%-*}
    log=$out/$bin.log
    echo
    echo "== $bin: ${#names[@]} tests, guest uptime $(up) s"
    "$exe" --exact --test-threads="$threads" "${names[@]}" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] || status=1
    for n in "${names[@]}"; do
        # libtest's line per test: "test NAME ... ok" (or FAILED, or "ignored[, reason]").
        r=$(awk -v n="$n" '$1 == "test" && $2 == n && $3 == "..." { sub(/,$/, "", $4); print $4; exit }' "$log")
        case $r in
        ok | FAILED | ignored) ;;
        *) r=MISSING status=1 ;;
        esac
        echo "$r $bin::$n" >>"$results"
    done
done

echo
echo "== guest: $(grep -c '^ok ' "$results") passed, $(grep -c '^FAILED ' "$results") failed," \
    "$(grep -c '^ignored ' "$results") ignored, $(grep -c '^MISSING ' "$results") without a result;" \
    "guest uptime $(up) s"
exit $status
