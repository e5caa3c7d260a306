#!/usr/bin/env bash
# The measuring half of scripts/bench.sh (see there), run by it in a private mount namespace:
#
#   bench-inner.sh WORK REPS "ROW..." NAME=BINARY...
#
# The first NAME is the one the ratios are about (husk, or B against A in --ab mode). Times are
# bash's own clock (EPOCHREALTIME, µs): no `date` process inside a measured interval. CPU is
# bash's `times` for its children (user + sys of the call and of what the call itself reaped),
# read through a file so that no subshell is forked.
set -uo pipefail
work=$1 reps=$2 rows=$3
shift 3
names=()
declare -A bin
for nb in "$@"; do
    names+=("${nb%%=*}")
    bin[${nb%%=*}]=${nb#*=}
done
if [ ${#names[@]} = 2 ]; then names=("${names[1]}" "${names[0]}"); fi   # --ab: B first, ratio B/A
mkdir -p "$work/s" "$work/f"
: >"$work/errors"
# crun keeps a directory per container on this tmpfs (a page or two each): room for the
# 1000-container row.
mount -t tmpfs -o size=256m,mode=755 none /sys/fs/cgroup/unified

cleanup() {
    local d rt
    for d in "$work"/{root,conc,full,empty}-*; do
        [ -d "$d" ] || continue
        rt=${d##*-}
        ls "$d" | xargs -r -P 2 -I{} "${bin[$rt]}" --root "$d" delete -f {} >/dev/null 2>&1
    done
}
trap cleanup EXIT

# R RT ROOT ARGS...: the runtime RT on its root named ROOT.
R() {
    local rt=$1 root=$2
    shift 2
    "${bin[$rt]}" --root "$work/$root-$rt" "$@"
}
quiet() { "$@" </dev/null >/dev/null 2>&1; }

# The rotating order of rep I: every runtime goes first as often as the others.
order() {
    local i=$1 k n=${#names[@]}
    for ((k = 0; k < n; k++)); do echo "${names[(i + k) % n]}"; done
}

# child_cpu: CPU (µs) of the reaped children so far, into CPU. No subshell: a forked one would
# see children of its own.
CPU=0
child_cpu() {
    local _u _s cu cs re='([0-9]+)m([0-9]+)\.([0-9]+)s' u=0 s=0
    times >"$work/times"
    { read -r _u _s; read -r cu cs; } <"$work/times"
    [[ $cu =~ $re ]] && u=$(( (BASH_REMATCH[1] * 60 + 10#${BASH_REMATCH[2]}) * 1000000 + 10#${BASH_REMATCH[3]} * 1000 ))
    [[ $cs =~ $re ]] && s=$(( (BASH_REMATCH[1] * 60 + 10#${BASH_REMATCH[2]}) * 1000000 + 10#${BASH_REMATCH[3]} * 1000 ))
    CPU=$((u + s))
}

# sample ROW RT I CMD...: time CMD (stdio closed) and keep the sample unless I is the warm-up.
T=0
sample() {
    local row=$1 rt=$2 i=$3 t0 c0 rc
    shift 3
    child_cpu
    c0=$CPU
    t0=${EPOCHREALTIME/./}
    "$@" </dev/null >/dev/null 2>>"$work/errors"
    rc=$?
    T=$(( ${EPOCHREALTIME/./} - t0 ))
    if [ $rc = 0 ]; then
        if [ "$i" -gt 0 ]; then
            echo "$T" >>"$work/s/$row.$rt"
            child_cpu
            echo $((CPU - c0)) >>"$work/s/cpu-$row.$rt"
        fi
    else
        echo "$row $rt rep $i: exit $rc" >>"$work/errors"
        echo "$i" >>"$work/f/$row.$rt"
    fi
    return $rc
}

state_of() { local rt=$1 root=$2 id=$3; R "$rt" "$root" state "$id" 2>/dev/null | jq -r .status 2>/dev/null; }
wait_stopped() { # RT ROOT ID
    local k
    for ((k = 0; k < 300; k++)); do
        [ "$(state_of "$@")" = stopped ] && return 0
        sleep 0.01
    done
    return 1
}

loads=()
note_load() { loads+=("$(cut -d' ' -f1 /proc/loadavg)"); }

# --- the rows ---------------------------------------------------------------------------------

row_run() { # ROW BUNDLE [cold]
    local row=$1 bundle=$2 cold=${3:-} i rt
    for ((i = 0; i < reps; i++)); do
        for rt in $(order $i); do
            [ -n "$cold" ] && rm -rf "$work/root-$rt/.cache:seccomp" "$work/root-$rt/.cache/seccomp"
            sample "$row" "$rt" $i R "$rt" root run -b "$work/$bundle" "$row-$i"
        done
    done
}

row_create() {
    local i rt
    for ((i = 0; i < reps; i++)); do
        for rt in $(order $i); do
            sample create "$rt" $i R "$rt" root create -b "$work/plain" "create-$i"
            quiet R "$rt" root delete -f "create-$i"
        done
    done
}

# row_on_created OP: OP timed on a container just created (and deleted after).
row_on_created() {
    local op=$1 i rt
    for ((i = 0; i < reps; i++)); do
        for rt in $(order $i); do
            quiet R "$rt" root create -b "$work/plain" "$op-$i"
            sample "$op" "$rt" $i R "$rt" root "$op" "$op-$i"
            quiet R "$rt" root delete -f "$op-$i"
        done
    done
}
row_start() { row_on_created start; }
row_state() { row_on_created state; }

row_delete() { # of a stopped container
    local i rt
    for ((i = 0; i < reps; i++)); do
        for rt in $(order $i); do
            quiet R "$rt" root run -d -b "$work/plain" "delete-$i"
            wait_stopped "$rt" root "delete-$i" || echo "delete-$i of $rt did not stop" >>"$work/errors"
            sample delete "$rt" $i R "$rt" root delete "delete-$i" || quiet R "$rt" root delete -f "delete-$i"
        done
    done
}

row_exec() {
    local i rt
    for rt in "${names[@]}"; do quiet R "$rt" root run -d -b "$work/sleeper" exec-probe; done
    for ((i = 0; i < reps; i++)); do
        for rt in $(order $i); do
            sample exec "$rt" $i R "$rt" root exec exec-probe /bin/true
        done
    done
    for rt in "${names[@]}"; do quiet R "$rt" root delete -f exec-probe; done
}

row_delete_force() { # of a running container
    local i rt
    for ((i = 0; i < reps; i++)); do
        for rt in $(order $i); do
            quiet R "$rt" root run -d -b "$work/sleeper" "force-$i"
            sample delete-force "$rt" $i R "$rt" root delete -f "force-$i"
        done
    done
}

row_kill_all() { # `kill --all KILL` of a running container (deleted after, untimed)
    local i rt
    for ((i = 0; i < reps; i++)); do
        for rt in $(order $i); do
            quiet R "$rt" root run -d -b "$work/sleeper" "killall-$i"
            sample kill-all "$rt" $i R "$rt" root kill --all "killall-$i" KILL
            quiet R "$rt" root delete -f "killall-$i"
        done
    done
}

rss_commands="run run-seccomp create state list ps update start pause resume exec kill delete delete-force"
# rss_one NAME RT I ROOT ARGS...: the peak RSS (KiB) of one call, by GNU time (wait4's rusage).
rss_one() {
    local name=$1 rt=$2 i=$3 root=$4
    shift 4
    if /usr/bin/time -f %M -o "$work/rss.out" "${bin[$rt]}" --root "$work/$root-$rt" "$@" \
        </dev/null >/dev/null 2>>"$work/errors"; then
        [ "$i" -gt 0 ] && tail -1 "$work/rss.out" >>"$work/s/rss-$name.$rt"
    else
        echo "rss $name $rt rep $i: failed" >>"$work/errors"
        echo "$i" >>"$work/f/rss-$name.$rt"
    fi
}
row_rss() {
    local i rt id n=6
    echo '{"pids":{"limit":100}}' >"$work/resources.json"
    # Each binary's page cache dropped (POSIX_FADV_DONTNEED on that file) and read back by the
    # warm-up: the kernel maps a file's pages as its page cache holds them, and a binary just
    # copied or linked sits there in other folios than one read from disk (a cp'd husk maps
    # 0.4 MiB more here). So all three are measured as read, the way an installed binary is.
    # Synced first: the drop skips dirty pages, and a binary copied a moment ago still has them
    # (an A/B right after `cp` measured the copy 0.1-0.25 MiB larger on every command).
    for rt in "${names[@]}"; do
        sync "${bin[$rt]}" 2>/dev/null || true
        dd if="${bin[$rt]}" iflag=nocache count=0 status=none 2>/dev/null || true
    done
    for ((i = 0; i < n; i++)); do
        for rt in $(order $i); do
            id=rss-$i
            rss_one run "$rt" $i root run -b "$work/plain" "$id-run"
            rss_one run-seccomp "$rt" $i root run -b "$work/docker" "$id-sec"
            rss_one create "$rt" $i root create -b "$work/sleeper" "$id"
            rss_one state "$rt" $i root state "$id"
            rss_one list "$rt" $i root list
            rss_one ps "$rt" $i root ps --format json "$id"
            rss_one update "$rt" $i root update -r "$work/resources.json" "$id"
            rss_one start "$rt" $i root start "$id"
            rss_one pause "$rt" $i root pause "$id"
            rss_one resume "$rt" $i root resume "$id"
            rss_one exec "$rt" $i root exec "$id" /bin/true
            rss_one kill "$rt" $i root kill "$id" KILL
            wait_stopped "$rt" root "$id"
            rss_one delete "$rt" $i root delete "$id"
            quiet R "$rt" root run -d -b "$work/sleeper" "$id-f"
            rss_one delete-force "$rt" $i root delete -f "$id-f"
        done
    done
}

row_concurrent() { # 50 `run -d` at once, then 50 `delete -f` at once, on one root
    local n=50 c=$(( reps / 8 > 3 ? reps / 8 : 3 )) i k rt t0 t1 t2 bad pids
    for ((i = 0; i <= c; i++)); do
        for rt in $(order $i); do
            bad=0 pids=()
            t0=${EPOCHREALTIME/./}
            for ((k = 0; k < n; k++)); do
                R "$rt" conc run -d -b "$work/sleeper" "c$i-$k" </dev/null >/dev/null 2>>"$work/errors" &
                pids+=($!)
            done
            for k in "${pids[@]}"; do wait "$k" || bad=$((bad + 1)); done
            t1=${EPOCHREALTIME/./}
            pids=()
            for ((k = 0; k < n; k++)); do
                R "$rt" conc delete -f "c$i-$k" </dev/null >/dev/null 2>>"$work/errors" &
                pids+=($!)
            done
            for k in "${pids[@]}"; do wait "$k" || bad=$((bad + 1)); done
            t2=${EPOCHREALTIME/./}
            left=$(ls "$work/conc-$rt" | wc -l)
            if [ "$i" -gt 0 ]; then
                echo $((t2 - t0)) >>"$work/s/concurrent.$rt"
                echo $((t1 - t0)) >>"$work/s/concurrent-run.$rt"
                echo $((t2 - t1)) >>"$work/s/concurrent-delete.$rt"
            fi
            if [ $bad != 0 ] || [ "$left" != 0 ]; then
                echo "concurrent $rt rep $i: $bad calls failed, $left containers left" >>"$work/errors"
                echo "$i" >>"$work/f/concurrent.$rt"
                ls "$work/conc-$rt" | xargs -r -I{} "${bin[$rt]}" --root "$work/conc-$rt" delete -f {} >/dev/null 2>&1
            fi
        done
    done
}

populate() { # RT FROM TO: stopped containers full-FROM..full-(TO-1) on the root "full"
    local rt=$1
    # The runtime's stdio is /dev/null (a created container keeps its caller's), xargs reads seq.
    seq "$2" $(( $3 - 1 )) | xargs -P 2 -I{} sh -c 'exec "$0" --root "$1" run -d -b "$2" "full-$3" </dev/null >/dev/null' \
        "${bin[$rt]}" "$work/full-$rt" "$work/plain" {} 2>>"$work/errors"
    local have
    have=$(ls "$work/full-$rt" | grep -c '^full-')
    [ "$have" = "$3" ] || echo "populate $rt: $have containers instead of $3" >>"$work/errors"
}
row_root1000() {
    local r=$(( reps / 4 > 5 ? reps / 4 : 5 )) i rt
    for rt in "${names[@]}"; do
        populate "$rt" 0 100
        quiet R "$rt" full run -d -b "$work/sleeper" probe
        quiet R "$rt" empty run -d -b "$work/sleeper" probe
    done
    for ((i = 0; i <= r; i++)); do
        for rt in $(order $i); do sample list-100 "$rt" $i R "$rt" full list; done
    done
    for rt in "${names[@]}"; do populate "$rt" 100 1000; done
    for ((i = 0; i <= r; i++)); do
        for rt in $(order $i); do
            sample state-empty "$rt" $i R "$rt" empty state probe
            sample state-1000 "$rt" $i R "$rt" full state probe
            sample exec-empty "$rt" $i R "$rt" empty exec probe /bin/true
            sample exec-1000 "$rt" $i R "$rt" full exec probe /bin/true
            sample list-1000 "$rt" $i R "$rt" full list
        done
    done
}

# --- the report -------------------------------------------------------------------------------

median() { sort -n "$1" | awk '{a[NR]=$1} END {if (NR) print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# cell KEY RT SCALE DIGITS: the median of the samples KEY.RT divided by SCALE, with its failures.
cell() {
    local f=$work/s/$1.$2 m out
    m=$( [ -s "$f" ] && median "$f")
    if [ -n "$m" ]; then out=$(awk -v m="$m" -v s="$3" -v d="$4" 'BEGIN {printf "%.*f", d, m / s}'); else out="–"; fi
    [ -s "$work/f/$1.$2" ] && out="$out ($(wc -l <"$work/f/$1.$2") failed)"
    echo "$out"
}
ratio() {
    local a b
    a=$( [ -s "$work/s/$1.$2" ] && median "$work/s/$1.$2") b=$( [ -s "$work/s/$1.$3" ] && median "$work/s/$1.$3")
    if [ -n "$a" ] && [ -n "$b" ] && [ "$b" != 0 ]; then awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", a / b}'; else echo "–"; fi
}
line() { # LABEL KEY SCALE DIGITS UNIT
    local rt out="| $1"
    for rt in "${names[@]}"; do out="$out | $(cell "$2" "$rt" "$3" "$4")$5"; done
    for rt in "${names[@]:1}"; do out="$out | $(ratio "$2" "${names[0]}" "$rt")"; done
    echo "$out |"
}
header() {
    local rt out="| $1" sep="| ---"
    for rt in "${names[@]}"; do out="$out | $rt"; sep="$sep | ---"; done
    for rt in "${names[@]:1}"; do out="$out | ${names[0]}/$rt"; sep="$sep | ---"; done
    echo "$out |"
    echo "$sep |"
}

versions() {
    local rt v
    for rt in "${names[@]}"; do
        v=$("${bin[$rt]}" --version 2>/dev/null | head -1)
        echo "  $rt: ${bin[$rt]} ($v)"
    done
}

echo "husk benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), kernel $(uname -r), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
versions
echo "reps: $reps per call row (first is a warm-up), rows: $rows"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for row in $rows; do
    note_load
    echo ">> $row (load $(cut -d' ' -f1 /proc/loadavg))" >&2
    case $row in
        run) row_run run plain ;;
        run-seccomp) row_run run-seccomp docker ;;
        run-seccomp-cold) row_run run-seccomp-cold docker cold ;;
        create) row_create ;;
        start) row_start ;;
        state) row_state ;;
        delete) row_delete ;;
        exec) row_exec ;;
        delete-force) row_delete_force ;;
        kill-all) row_kill_all ;;
        rss) row_rss ;;
        concurrent) row_concurrent ;;
        root1000) row_root1000 ;;
        *) echo "unknown row $row" >&2 ;;
    esac
done
note_load
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg); 1-minute load at each row's start and at the end: ${loads[*]}"
echo
header "median (ms unless said)"
for row in $rows; do
    case $row in
        run) line "full \`run\` of /bin/true" run 1000 2 "" ;;
        run-seccomp) line "\`run\`, Docker's seccomp profile (husk's cache warm)" run-seccomp 1000 2 "" ;;
        run-seccomp-cold) line "\`run\`, Docker's seccomp profile (husk's cache cold)" run-seccomp-cold 1000 2 "" ;;
        create | start | state | delete) line "\`$row\`" "$row" 1000 2 "" ;;
        exec) line "\`exec /bin/true\`" exec 1000 2 "" ;;
        delete-force) line "\`delete --force\` of a running container" delete-force 1000 2 "" ;;
        kill-all) line "\`kill --all ID KILL\` of a running container" kill-all 1000 2 "" ;;
        concurrent)
            line "50 concurrent \`run -d\` + 50 concurrent \`delete -f\`, total" concurrent 1000 0 ""
            line "… of which the 50 \`run -d\`" concurrent-run 1000 0 ""
            line "… of which the 50 \`delete -f\`" concurrent-delete 1000 0 "" ;;
        root1000)
            line "\`state\`, root with 1 container" state-empty 1000 2 ""
            line "\`state\`, root with 1001 containers" state-1000 1000 2 ""
            line "\`exec /bin/true\`, root with 1 container" exec-empty 1000 2 ""
            line "\`exec /bin/true\`, root with 1001 containers" exec-1000 1000 2 ""
            line "\`list\`, 101 containers" list-100 1000 2 ""
            line "\`list\`, 1001 containers" list-1000 1000 2 "" ;;
    esac
done
if [[ " $rows " == *" rss "* ]]; then
    echo
    header "peak RSS (MiB, median of 5)"
    for c in $rss_commands; do line "\`$c\`" "rss-$c" 1024 2 ""; done
fi
echo
header "CPU per call (ms, user + sys of the call and what it reaped, mean)"
for f in "$work"/s/cpu-*."${names[0]}"; do
    [ -e "$f" ] || continue
    k=${f##*/cpu-}
    k=${k%."${names[0]}"}
    out="| $k"
    for rt in "${names[@]}"; do
        out="$out | $(awk '{s+=$1} END {if (NR) printf "%.2f", s/NR/1000; else printf "–"}' "$work/s/cpu-$k.$rt" 2>/dev/null)"
    done
    for rt in "${names[@]:1}"; do
        out="$out | $(awk 'NR==FNR {a+=$1; n++; next} {b+=$1; m++} END {if (n && m && b) printf "%.2f", (a/n)/(b/m); else printf "–"}' \
            "$work/s/cpu-$k.${names[0]}" "$work/s/cpu-$k.$rt" 2>/dev/null)"
    done
    echo "$out |"
done
if [ -s "$work/errors" ]; then
    echo
    echo "errors ($(wc -l <"$work/errors") lines; the first 20):"
    head -20 "$work/errors"
fi
