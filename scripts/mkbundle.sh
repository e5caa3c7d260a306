#!/usr/bin/env bash
# Make a busybox OCI bundle in DIR: DIR/rootfs (busybox + its applet symlinks, a few empty
# directories, minimal /etc/passwd and /etc/group) and DIR/config.json (the runtime's default spec).
#
#   scripts/mkbundle.sh DIR
#
# The config comes from `"$HUSK_BIN" spec` when HUSK_BIN is set and works, else from `runc spec`
# (husk's `spec` output equals runc's). Idempotent: an existing rootfs is completed, not rebuilt,
# and an existing config.json is kept.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1
rootfs=$dir/rootfs

if [ ! -x /bin/busybox ] || ! /bin/busybox --list 2>/dev/null | grep -qx sh; then
    echo "mkbundle: installing busybox-static" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q busybox-static >&2
fi
# Must be static: it runs in a rootfs without a dynamic loader.
if ldd /bin/busybox >/dev/null 2>&1; then
    echo "mkbundle: /bin/busybox is not static (install busybox-static)" >&2
    exit 1
fi

mkdir -p "$rootfs/bin"
for d in proc sys dev tmp etc root; do
    mkdir -p "$rootfs/$d"
done
chmod 1777 "$rootfs/tmp"
chmod 700 "$rootfs/root"

if ! cmp -s /bin/busybox "$rootfs/bin/busybox"; then
    cp /bin/busybox "$rootfs/bin/busybox.tmp"
    mv -f "$rootfs/bin/busybox.tmp" "$rootfs/bin/busybox"
fi
if [ ! -e "$rootfs/bin/sh" ]; then
    chroot "$rootfs" /bin/busybox --install -s /bin
fi

if [ ! -e "$rootfs/etc/passwd" ]; then
    cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
fi
if [ ! -e "$rootfs/etc/group" ]; then
    cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
fi

if [ ! -s "$dir/config.json" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    made=
    if [ -n "${HUSK_BIN:-}" ] && [ -x "$HUSK_BIN" ]; then
        if (cd "$tmp" && timeout -k 5 60 "$HUSK_BIN" spec) >/dev/null 2>&1 && [ -s "$tmp/config.json" ]; then
            made=1
        else
            rm -f "$tmp/config.json"
        fi
    fi
    if [ -z "$made" ]; then
        (cd "$tmp" && runc spec)
    fi
    mv "$tmp/config.json" "$dir/config.json"
fi
