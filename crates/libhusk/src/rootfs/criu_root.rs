//! The root CRIU restores a container into. CRIU wants a mount point whose parent is not
//! overmounted, so for the time of a restore the rootfs is bound (recursively) onto a directory
//! in the state dir, like runc's `criu-root`; the mount points of bind mounts are made in it
//! first, since a rootfs on another host may lack them.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::mount::UnmountFlags;

use super::mount_api::{attach, clone_path};
use super::safe_path;
use crate::error::{Context, Error, Result};

/// Bind `rootfs` onto `target` (an empty directory) and make the mount points of `binds`
/// (destination, host source) inside it.
pub fn prepare(rootfs: &Path, target: &Path, binds: &[(PathBuf, PathBuf)]) -> Result<()> {
    let what = || format!("bind {} on {}", rootfs.display(), target.display());
    let tree = clone_path(rootfs, true).ctx(what)?;
    let dir = safe_path::open_dir_nofollow(target).ctx(|| format!("open {}", target.display()))?;
    // Not made private: CRIU copies the sharing of a container root that was a slave of the
    // host's mount from this bind (MOVE_MOUNT_SET_GROUP refuses a private source).
    attach(tree.as_fd(), dir.as_fd()).ctx(what)?;
    for (dest, source) in binds {
        let is_dir = std::fs::metadata(source).map(|m| m.is_dir()).unwrap_or(true);
        let made = if is_dir {
            safe_path::mkdir_all(tree.as_fd(), dest, 0o755)
        } else {
            safe_path::create_file(tree.as_fd(), dest)
        };
        made.map_err(|e| {
            Error::os(format!("restore: mount point {} in the rootfs", dest.display()), e.raw_os_error())
        })?;
    }
    Ok(())
}

/// Undo `prepare`: detach the bind and remove the directory. Safe to call when `prepare`
/// failed half-way or never ran.
pub fn release(target: &Path) {
    match rustix::mount::unmount(target, UnmountFlags::DETACH) {
        Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => tracing::warn!("unmount {}: {e}", target.display()),
    }
    match std::fs::remove_dir(target) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("remove {}: {e}", target.display()),
    }
}
