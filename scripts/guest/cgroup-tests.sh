#!/bin/bash
# The cgroup2_ and systemd_ integration tests, in the guest (pure cgroup v2, systemd):
#   cargo test --release --no-run && scripts/guest/run.sh --timeout 900 -- scripts/guest/cgroup-tests.sh "$PWD"
# The test binaries were built on the host and name their files by the host's paths (the husk
# binary, scripts/mkbundle.sh, target/tmp): the repository is linked there, then every test whose
# name starts with cgroup2_ or systemd_ runs, with HUSK_REQUIRE set so none of them can skip.
set -u
host_repo=${1:?usage: cgroup-tests.sh HOST_REPO_PATH}
if [ "$(readlink -f "$host_repo" 2>/dev/null)" != "$(pwd -P)" ]; then
    mkdir -p "$(dirname "$host_repo")"
    ln -sfn "$(pwd -P)" "$host_repo"
fi
export HUSK_REQUIRE=cgroup2,systemd
status=0
for src in crates/husk/tests/*.rs; do
    name=$(basename "$src" .rs)
    bin=$(ls -t target/release/deps/"$name"-* 2>/dev/null | grep -v '\.d$' | head -n1)
    [ -n "$bin" ] || { echo "no test binary for $name: run cargo test --release --no-run first"; status=1; continue; }
    grep -qE 'fn (cgroup2|systemd)_' "$src" || continue
    echo "== $name"
    "$bin" --test-threads=2 cgroup2_ systemd_ || status=1
done
exit $status
