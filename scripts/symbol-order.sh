#!/usr/bin/env bash
# Regenerate crates/husk/symbol-order.txt, the order in which the linker lays out husk's
# functions (crates/husk/build.rs passes it to lld as --symbol-ordering-file).
#
#   sudo scripts/symbol-order.sh
#
# Why: husk's peak RSS is mostly its text, which the kernel maps 64 KiB around each page fault
# (fault-around). The functions one call runs are spread over the whole 3 MiB of text, so a
# `state` mapped ~2.5 MiB of it. Laid out by use, the code every call runs comes first, then
# the code of fewer and fewer kinds of call, and one call faults in little more than its own code.
#
# How: the release binary itself (Rust's symbol names hash the build's profile, so another
# build, an unstripped one say, would name every Rust function differently; the release profile
# keeps the symbol table) gets a uprobe on every function
# (tracefs), then runs each kind of call of scripts/bench.sh's rows, as
# containerd and Podman pass them (--log, --log-format json, --pid-file), the container's side
# (husk's clone before its execve) included. uprobe_profile's hit counts before and after each
# scenario say which functions it ran. Functions used by more scenarios come first; ties keep
# the address order. Every function is counted, not sampled: one missed function would cost a
# fault (64 KiB) in the cold part. Functions no scenario ran are left where the linker puts them.
#
# Rerun it after changes that add or rename functions on the common paths, or change a
# dependency (its hash is in every name); a stale file still links (unknown names are ignored)
# and only maps more. `sudo scripts/symbol-order.sh --check` says how many of its names the
# current build has, and scripts/test.sh fails when fewer than 90% are left. Measure the result
# with `scripts/bench.sh --ab OLD NEW -r rss` before checking it in: the kernel maps a binary's
# page cache as it holds it (large folios from a read-ahead or a fresh copy map more than 64 KiB
# per fault), so the comparison syncs and drops both binaries first. Takes ~5 min, most of it
# the kernel removing the probes.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh
. scripts/lib/layout.sh
[ "$(id -u)" = 0 ] || { echo "scripts/symbol-order.sh: run as root (uprobes, containers)" >&2; exit 1; }
apt_need busybox-static jq binutils gdb golang-github-containers-common python3
ensure_cargo

out=crates/husk/symbol-order.txt
cargo build --release -q
bin=$(realpath "$(release_bin husk)")
if [ "${1:-}" = --check ]; then
    check_symbol_order "$bin" "$out"
    exit
fi

work=$(mktemp -d /tmp/husk-symorder.XXXXXX)
tracefs=/sys/kernel/tracing
mounted=
group=huskorder
cleanup() {
    set +e
    if [ -d "$tracefs/events/$group" ]; then
        echo 0 >"$tracefs/events/$group/enable"
        # One removal at a time waits for an RCU grace period each (minutes for all of them):
        # when every uprobe is ours, truncating the file removes them at once.
        if grep -qv "^p:$group/" "$tracefs/uprobe_events"; then
            sed -n "s|^p:\($group/[^ ]*\) .*|-:\1|p" "$tracefs/uprobe_events" >"$work/remove"
            while read -r line; do echo "$line"; done <"$work/remove" >>"$tracefs/uprobe_events"
        else
            : >"$tracefs/uprobe_events"
        fi
    fi
    ls "$work/root" 2>/dev/null | xargs -r -I{} "$bin" --root "$work/root" delete -f {} >/dev/null 2>&1
    [ -n "$mounted" ] && umount "$tracefs"
    rm -rf "$work"
}
trap cleanup EXIT
if [ ! -e "$tracefs/uprobe_events" ]; then
    mount -t tracefs nodev "$tracefs"
    mounted=1
fi

# Every function symbol and its file offset (uprobes take offsets in the file). Not probed: the
# functions that start with a vector instruction (glibc's AVX2/EVEX/AVX-512 string functions),
# which the kernel's uprobe single-stepping gets wrong here (the probed process crashes); the
# variants this CPU uses are the ifunc targets, added below from a stopped husk.
python3 - "$bin" "$work/probes" "$work/names" "$group" <<'EOF'
import re, subprocess, sys
binary, probes, names, group = sys.argv[1:5]
run = lambda *a: subprocess.run(a, capture_output=True, text=True, check=True).stdout.splitlines()
segs = []
for line in run("readelf", "-lW", binary):
    f = line.split()
    if f and f[0] == "LOAD" and "E" in f[6:-1]:
        segs.append((int(f[2], 16), int(f[1], 16), int(f[4], 16)))
first = {}
lines = run("objdump", "-d", "--no-show-raw-insn", binary)
for i, line in enumerate(lines[:-1]):
    m = re.match(r"^([0-9a-f]+) <.*>:$", line)
    if m:
        first[int(m.group(1), 16)] = " ".join(lines[i + 1].split("\t")[1:]).strip()
seen = set()
out_p, out_n = open(probes, "w"), open(names, "w")
n = 0
for line in run("readelf", "-sW", binary):
    f = line.split()
    if len(f) < 8 or f[3] != "FUNC" or f[6] == "UND":
        continue
    addr, name = int(f[1], 16), f[7]
    insn = first.get(addr, "")
    if addr in seen or not insn or insn.startswith(("v", "k", ".byte", "rex", "(bad)", "loop")):
        continue
    for vaddr, off, size in segs:
        if vaddr <= addr < vaddr + size:
            seen.add(addr)
            out_p.write("p:%s/f%d %s:0x%x\n" % (group, n, binary, addr - vaddr + off))
            out_n.write("%d %x %s\n" % (n, addr, name))
            n += 1
EOF
# Names that share an address (aliases) are kept as the first one nm lists: one probe each.
while read -r line; do echo "$line"; done <"$work/probes" >>"$tracefs/uprobe_events"
echo 1 >"$tracefs/events/$group/enable"

HUSK_BIN=$bin scripts/mkbundle.sh "$work/plain" >/dev/null 2>&1 || scripts/mkbundle.sh "$work/plain" >/dev/null
jq '.process.terminal=false | .process.args=["/bin/true"]' "$work/plain/config.json" >"$work/c.json"
mv "$work/c.json" "$work/plain/config.json"
mkdir -p "$work/sleeper" "$work/docker"
jq --arg root "$work/plain/rootfs" '.process.args=["sleep","100000"] | .root.path=$root' \
    "$work/plain/config.json" >"$work/sleeper/config.json"
python3 scripts/lib/docker-seccomp.py "$work/plain/config.json" /usr/share/containers/seccomp.json \
    >"$work/docker/config.json"
echo '{"pids":{"limit":100}}' >"$work/resources.json"

# uprobe_profile: "FILE EVENT HITS" per probe; every probe on this binary is ours.
profile() { awk -v b="$bin" '$1 == b {sub(/^f/, "", $2); print $2, $3}' "$tracefs/uprobe_profile"; }
H() { "$bin" --root "$work/root" "$@" </dev/null >/dev/null 2>>"$work/errors"; }
HL() { "$bin" --root "$work/root" --log "$work/log.json" --log-format json "$@" </dev/null >/dev/null 2>>"$work/errors"; }
scenario() { # NAME COMMAND...: the functions COMMAND ran, into $work/hits.NAME
    local name=$1
    shift
    profile >"$work/before"
    "$@" || echo "scenario $name failed" >&2
    profile >"$work/after"
    join <(sort "$work/before") <(sort "$work/after") | awk '$3 > $2 {print $1}' >"$work/hits.$name"
}
scenario run H run -b "$work/plain" r1
scenario run-log HL run -b "$work/plain" r2
rm -rf "$work/root/.cache"
scenario run-seccomp-cold H run -b "$work/docker" r3
scenario run-seccomp H run -b "$work/docker" r4
scenario create HL create -b "$work/sleeper" --pid-file "$work/pid" c1
scenario state H state c1
scenario state-log HL state c1
scenario list H list
scenario ps H ps --format json c1
scenario update H update -r "$work/resources.json" c1
scenario start HL start c1
scenario pause H pause c1
scenario resume H resume c1
scenario exec H exec c1 /bin/true
scenario exec-log HL exec --pid-file "$work/pid2" c1 /bin/true
scenario kill HL kill c1 KILL
for _ in $(seq 100); do [ "$("$bin" --root "$work/root" state c1 2>/dev/null | jq -r .status)" = stopped ] && break; sleep 0.02; done
scenario delete HL delete c1
H run -d -b "$work/sleeper" c2
scenario delete-force HL delete -f c2
scenario run-detached HL run -d -b "$work/plain" c3
H delete -f c3
if [ -s "$work/errors" ]; then echo "scripts/symbol-order.sh: calls failed:" >&2; cat "$work/errors" >&2; exit 1; fi

# The string functions glibc picked for this CPU (its IRELATIVE slots, read at main), which
# every call uses; with the probes off (gdb's breakpoint and a uprobe on one address clash).
echo 0 >"$tracefs/events/$group/enable"
args=()
for slot in $(readelf -rW "$bin" | awk '/IRELATIVE/ {print $1}'); do args+=(-ex "info symbol *(long *)0x$slot"); done
gdb -q -batch -ex 'break main' -ex run "${args[@]}" --args "$bin" --version 2>/dev/null |
    awk '$2 == "in" && $3 == "section" {print $1}' >"$work/ifuncs"
[ -s "$work/ifuncs" ] || { echo "scripts/symbol-order.sh: no ifunc targets read" >&2; exit 1; }

python3 - "$work" "$out" <<'EOF'
import glob, os, sys
work, out = sys.argv[1:3]
names = {}
for line in open(os.path.join(work, "names")):
    n, addr, name = line.split()
    names[n] = (int(addr, 16), name)
uses = {}
scenarios = sorted(glob.glob(os.path.join(work, "hits.*")))
for i, path in enumerate(scenarios):
    for n in open(path).read().split():
        uses[n] = uses.get(n, 0) | 1 << i
order = [names[n][1] for n in sorted(uses, key=lambda n: (-bin(uses[n]).count("1"), uses[n], names[n][0]))]
ifuncs = [l.split()[0] for l in open(os.path.join(work, "ifuncs")) if l.strip()]
order = [n for n in ifuncs if n not in order] + order
with open(out, "w") as f:
    f.write("".join(n + "\n" for n in order))
print("%s: %d functions of %d (%d scenarios, %d ifunc targets)" % (out, len(order), len(names), len(scenarios), len(ifuncs)))
EOF
