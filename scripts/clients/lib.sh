# Shared by scripts/clients/*.sh: one `ok`/`FAIL` line per check (tests/clients.rs counts them)
# and the checks that a manager left nothing behind. Sourced, not run; the sourcing script sets
# `client` (the name in each line) and `husk`.
fail=0

# check NAME EXPECTED ACTUAL
check() {
    if [ "$2" = "$3" ]; then
        echo "ok   $client: $1"
    else
        echo "FAIL $client: $1: expected [$2], got [$3]"
        fail=1
    fi
}

# check_match NAME REGEX ACTUAL: for output that carries a varying part (an address, a time).
check_match() {
    if [[ $3 =~ $2 ]]; then
        echo "ok   $client: $1"
    else
        echo "FAIL $client: $1: expected to match [$2], got [$3]"
        fail=1
    fi
}

# left_state ROOT DIR: the containers the runtime still keeps state for under ROOT whose bundle
# is under DIR (managers that share the runtime's default --root with others).
left_state() {
    "$husk" --root "$1" list -f json 2>/dev/null |
        jq -r --arg d "$2" '.[]? | select(.bundle | startswith($d)) | .id' | head -3 | tr '\n' ' ' | sed 's/ $//'
}

# left_cgroups NAME...: cgroup directories on any hierarchy whose path names one of the NAMEs.
left_cgroups() {
    local pat
    pat=$(printf '%s\n' "$@" | paste -sd'|')
    [ -n "$pat" ] || return 0
    find /sys/fs/cgroup -mindepth 2 -type d 2>/dev/null | grep -E "$pat" | head -5 | tr '\n' ' ' | sed 's/ $//'
}

# left_mounts DIR: mount points under DIR.
left_mounts() {
    awk -v d="$1" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | head -5 | tr '\n' ' ' | sed 's/ $//'
}

# left_processes PATTERN: processes whose command line contains PATTERN (not this shell's).
left_processes() {
    local p
    for p in $(pgrep -f -- "$1" 2>/dev/null); do
        [ "$p" = $$ ] || [ "$p" = "$BASHPID" ] || echo -n "$p:$(cat /proc/"$p"/comm 2>/dev/null) "
    done | sed 's/ $//'
}

# umount_under DIR: lazily unmount everything below DIR, deepest first.
umount_under() {
    awk -v d="$1" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
}

# netns_dir_shared: make /run/netns a shared mount point of its own, as `ip netns add` and
# Podman do the first time they make a named network namespace (a bind mount of /run/netns on
# itself, recursive, then made shared) -- but before any manager mounts a namespace there. Done
# while one is mounted in the plain directory, their recursive bind copies that mount into the
# new /run/netns and hides the original under it: the manager's unmount then takes the copy,
# and its unlink fails with EBUSY, since the hidden original is still a mount point in this
# mount namespace. That is how cri.sh failed on a fresh machine ("failed to remove netns:
# unlinkat /run/netns/cni-...: device or resource busy"): podman.sh and docker.sh, running
# beside it, made their first netns while the pod's was mounted. Not husk's: it makes no mount
# in the host's namespace and holds nothing of the pod's netns after create. Idempotent, and
# serialized between the scripts running at once.
netns_dir_shared() {
    mkdir -p /run/netns /run/lock
    (
        flock 9
        mountpoint -q /run/netns || mount --bind /run/netns /run/netns
        mount --make-shared /run/netns
    ) 9>/run/lock/husk-netns-dir.lock
}

# A private containerd from $work/config.toml (containerd.sh, cri.sh): its pid in
# $work/containerd.pid, its log in $work/containerd.log; stopped with up to 5 s to exit.
start_containerd() {
    containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
    echo $! >"$work/containerd.pid"
}
stop_containerd() { stop_daemon "$work/containerd.pid" 50; }

# stop_daemon PIDFILE TENTHS: SIGTERM to the daemon PIDFILE names, then up to TENTHS tenths of
# a second for it to exit; the pid file goes first, so a second call does nothing.
stop_daemon() {
    local pid
    [ -f "$1" ] || return 0
    pid=$(cat "$1")
    rm -f "$1"
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq "$2"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
}

# exit_showing_log LOG: exit with the checks' status; after a failure, the daemon's last words.
exit_showing_log() {
    if [ "$fail" != 0 ]; then
        echo "--- $(basename "$1") (tail)"
        tail -20 "$1"
    fi
    exit "$fail"
}
