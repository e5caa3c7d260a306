# Shared helpers for scripts/*.sh: install what is missing, find cargo. Sourced, not run.

# apt_need PKG...: install the Debian packages that are not installed yet (one apt-get call).
apt_need() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo ">> apt-get install ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
        { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
}

# ensure_cargo: put a cargo new enough for the workspace (rust-version 1.80) on PATH.
# Debian 12's own cargo is 1.63, too old: use rustup's, installing it if needed.
ensure_cargo() {
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
    if command -v cargo >/dev/null 2>&1; then
        local v
        v=$(cargo --version | awk '{print $2}')
        if [ "$(printf '%s\n1.80.0\n' "$v" | sort -V | head -1)" = "1.80.0" ]; then
            return 0
        fi
        echo ">> cargo $v is older than 1.80" >&2
    fi
    apt_need curl ca-certificates
    echo ">> installing the Rust toolchain with rustup (https://sh.rustup.rs)" >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >&2
    export PATH="$HOME/.cargo/bin:$PATH"
}

# release_bin NAME: where `cargo build --release` puts the binary NAME (or examples/NAME). The
# build target is set in .cargo/config.toml (husk links glibc statically, which needs an explicit
# target so that build scripts and proc-macros stay dynamic), so the path has its triple;
# CARGO_BUILD_TARGET overrides it as it overrides cargo's.
release_bin() {
    local repo triple
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    triple=${CARGO_BUILD_TARGET:-$(sed -n 's/^target = "\(.*\)"$/\1/p' "$repo/.cargo/config.toml")}
    echo "$repo/target/${triple:+$triple/}release/$1"
}
