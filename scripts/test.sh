#!/usr/bin/env bash
# THE test command of husk: install what the tests need, build release, run every unit and
# integration test against the husk binary (or against $HUSK_BIN, e.g. HUSK_BIN=/usr/sbin/runc).
#
#   scripts/test.sh                      # everything
#   scripts/test.sh --test lifecycle     # extra args go to `cargo test`
#   HUSK_BIN=/usr/sbin/runc scripts/test.sh   # the same suite against runc (8 tests differ)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh
. scripts/lib/layout.sh

start=$(date +%s)
if [ "$(id -u)" != 0 ]; then
    echo "scripts/test.sh: the integration tests need root (namespaces, cgroups, mounts)" >&2
    exit 1
fi

# What the tests need, one list with the reason for each: scripts/test-packages.txt
# (tests/suite.rs checks that every command the suite runs comes from it).
# shellcheck disable=SC2046
apt_need $(sed 's/#.*//' scripts/test-packages.txt)
ensure_cargo

cargo build --release --workspace
# The function layout (scripts/lib/layout.sh): a stale crates/husk/symbol-order.txt fails the run.
layout=0
check_symbol_order "$(release_bin husk)" || layout=1
export HUSK_BIN="${HUSK_BIN:-$(release_bin husk)}"
# scripts/mkbundle.sh takes the default config from `$HUSK_BIN spec`; runc is the fallback while
# that does not work yet.
probe=$(mktemp -d)
if ! (cd "$probe" && timeout -k 5 60 "$HUSK_BIN" spec >/dev/null 2>&1 && [ -s config.json ]); then
    apt_need runc
fi
rm -rf "$probe"

echo ">> cargo test --workspace --release (HUSK_BIN=$HUSK_BIN)" >&2
status=0
cargo test --workspace --release --no-fail-fast "$@" || status=$?
if [ "$layout" != 0 ]; then
    echo ">> scripts/test.sh: crates/husk/symbol-order.txt is stale (above)" >&2
    [ "$status" = 0 ] && status=1
fi
echo ">> scripts/test.sh: exit $status after $(($(date +%s) - start)) s" >&2
exit $status
