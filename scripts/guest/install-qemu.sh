#!/usr/bin/env bash
# Install qemu-system-x86 from the machine's Debian sources without removing anything.
#
#   scripts/guest/install-qemu.sh            # no-op when qemu-system-x86_64 runs
#   scripts/guest/install-qemu.sh --plan     # print the apt-get arguments it would use, install nothing
#
# Why not just `apt-get install qemu-system-x86`: a machine may carry a qemu package of another
# release installed from a .deb (the CI machines have qemu-utils 10.0.2 from bookworm-backports,
# with no backports source configured). Installing bookworm's qemu-system-x86 next to it makes apt
# remove that package. Instead, each qemu package apt would remove is installed again in the
# version that matches qemu-system-x86's candidate (a downgrade, --allow-downgrades), picked from
# `apt-cache madison`, so qemu-img & co. stay installed and match the emulator. Anything else apt
# would remove, or a qemu package without a matching version, stops the script with the list.
# apt-get and apt-cache honour APT_CONFIG, which is how the plan can be tried on a copy of the
# dpkg status.
set -euo pipefail

plan_only=
[ "${1:-}" = --plan ] && plan_only=1

if [ -z "$plan_only" ] && command -v qemu-system-x86_64 >/dev/null && qemu-system-x86_64 --version >/dev/null 2>&1; then
    exit 0
fi
if [ -z "$plan_only" ] && [ "$(id -u)" != 0 ]; then
    echo "install-qemu: needs root (apt-get install qemu-system-x86)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive

candidate() { apt-cache policy "$1" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }'; }
# The simulated install: prints the packages apt would remove, one a line.
removals() { apt-get -s -q --no-install-recommends "$@" 2>&1 | awk '$1 == "Remv" { print $2 }'; }

cand=$(candidate qemu-system-x86)
if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then
    [ -n "$plan_only" ] || apt-get update -q >&2
    cand=$(candidate qemu-system-x86)
fi
if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then
    echo "install-qemu: no qemu-system-x86 in the configured Debian sources" >&2
    exit 1
fi

args=(qemu-system-x86)
gone=$(removals install "${args[@]}")
if [ -n "$gone" ]; then
    # Binary NMUs (+bN) exist only for arch-specific packages: qemu-system-data of the same
    # source has the version without the suffix.
    base=${cand%+b[0-9]*}
    for p in $gone; do
        case $p in
        qemu-*) ;;
        *)
            echo "install-qemu: installing qemu-system-x86 $cand would remove $p; not touching it" >&2
            exit 1
            ;;
        esac
        versions=$(apt-cache madison "$p" 2>/dev/null | awk -F'|' '{ gsub(/ /, "", $2); print $2 }')
        v=$(grep -Fx -- "$cand" <<<"$versions" || grep -Fx -- "$base" <<<"$versions" || true)
        if [ -z "$v" ]; then
            echo "install-qemu: installing qemu-system-x86 $cand would remove $p, and the sources have no" \
                "$p $cand to install instead (they have: $(echo $versions))" >&2
            exit 1
        fi
        args+=("$p=$v")
    done
    args=(--allow-downgrades "${args[@]}")
    still=$(removals install "${args[@]}")
    if [ -n "$still" ]; then
        echo "install-qemu: even as 'apt-get install ${args[*]}', apt would remove: $(echo $still)" >&2
        exit 1
    fi
fi

if [ -n "$plan_only" ]; then
    echo "${args[*]}"
    exit 0
fi
echo ">> apt-get install --no-install-recommends ${args[*]}" >&2
apt-get install -y -q --no-install-recommends "${args[@]}" >&2
qemu-system-x86_64 --version | head -1 >&2
