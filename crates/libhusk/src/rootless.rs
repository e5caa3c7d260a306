//! What running husk without root changes outside the namespaces: the default state directory
//! and runc's `--rootless auto` rule. The user namespace work is `userns.rs`; cgroups without
//! delegation `cgroups/rootless.rs`.

use std::path::PathBuf;

/// `/run/husk`, or for a non-root caller `$XDG_RUNTIME_DIR/husk` (runc: `$XDG_RUNTIME_DIR/runc`),
/// a directory the user owns and that goes away with the user's last session.
pub fn default_root() -> PathBuf {
    if !rustix::process::geteuid().is_root() {
        if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir).join("husk");
        }
    }
    PathBuf::from("/run/husk")
}

/// `--rootless auto`: not root, or root only inside a user namespace (husk inside a rootless
/// container), where the host's cgroups are not ours to make either.
pub fn is_rootless_caller() -> bool {
    !rustix::process::geteuid().is_root() || crate::userns::in_user_namespace()
}
