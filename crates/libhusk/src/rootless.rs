//! What running husk without root changes outside the namespaces: the default state directory
//! and runc's `--rootless auto` rule. The user namespace work is `userns.rs`; cgroups without
//! delegation `cgroups/rootless.rs`.

use std::path::PathBuf;

/// `/run/husk`, or `$XDG_RUNTIME_DIR/husk` (a directory the user owns and that goes away with the
/// user's last session) when runc would use `$XDG_RUNTIME_DIR/runc`: for a non-root caller, and
/// for root inside a user namespace unless `$USER` is root (rootless Podman runs the runtime as
/// root in its user namespace, with its own user's XDG_RUNTIME_DIR and no --root).
pub fn default_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        let honour = !rustix::process::geteuid().is_root()
            || (crate::userns::in_user_namespace() && !matches!(std::env::var_os("USER"), Some(u) if u == "root"));
        if honour {
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
