//! Making the rootfs a mount point before the mounts, and switching into it after them.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags, StatxFlags};
use rustix::io::Errno;
use rustix::mount::UnmountFlags;

use super::mount_api::{attach, clone_fd, setattr};
use super::mount_options::{Attrs, PROP_PRIVATE, PROP_SLAVE};
use super::safe_path::open_dir_nofollow;
use crate::error::Context;

type Result<T, E = crate::error::Error> = std::result::Result<T, E>;

/// Bind the rootfs onto itself (recursively); returns the new mount's root: the directory fd
/// every path inside the container is resolved from.
///
/// pivot_root needs the parent of the new root not to be shared, and our bind must not propagate
/// to other namespaces: with `parent_private` the mount under the rootfs is made private first.
pub fn bind_rootfs(rootfs: &Path, parent_private: bool) -> Result<OwnedFd> {
    let what = |step: &str| format!("root.path: {}: {step}", rootfs.display());
    let under = open_dir_nofollow(rootfs).ctx(|| what("open"))?;
    if parent_private {
        let parent = mount_root(under.as_fd()).ctx(|| what("find the parent mount"))?;
        setattr(parent.as_fd(), false, Attrs::default(), PROP_PRIVATE).ctx(|| what("make the parent mount private"))?;
    }
    let tree = clone_fd(under.as_fd(), true).ctx(|| what("bind"))?;
    attach(tree.as_fd(), under.as_fd()).ctx(|| what("bind"))?;
    Ok(tree)
}

/// The root directory of the mount `fd` is on (propagation can only be changed there): walk `..`
/// until the mount id changes or the walk stops at `/`.
fn mount_root(fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    let id = |fd: BorrowedFd<'_>| {
        rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID | StatxFlags::INO)
            .map(|s| (s.stx_mnt_id, s.stx_ino))
    };
    let mut cur = rustix::io::dup(fd)?;
    let mut cur_id = id(cur.as_fd())?;
    loop {
        let up = rustix::fs::openat(&cur, "..", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        let up_id = id(up.as_fd())?;
        if up_id.0 != cur_id.0 || up_id == cur_id {
            return Ok(cur);
        }
        (cur, cur_id) = (up, up_id);
    }
}

/// pivot_root(".", ".") with the new root as cwd stacks the old root on top of it; detach that
/// (rslave first so the unmount cannot reach the host) and the cwd ends up at the new `/`.
pub fn pivot_root(rootfs: &Path) -> Result<()> {
    let old_root = open_slash()?;
    let new_root = open_dir_nofollow(rootfs).ctx(|| format!("root.path: {}", rootfs.display()))?;
    rustix::process::fchdir(&new_root).ctx(|| "chdir to the rootfs")?;
    rustix::process::pivot_root(".", ".").ctx(|| "pivot_root")?;
    // The kernel leaves the cwd on the old root today; fchdir makes that a guarantee.
    rustix::process::fchdir(&old_root).ctx(|| "chdir to the old root")?;
    setattr(old_root.as_fd(), true, Attrs::default(), PROP_SLAVE).ctx(|| "make the old root rslave")?;
    rustix::mount::unmount(".", UnmountFlags::DETACH).ctx(|| "unmount the old root")?;
    rustix::process::chdir("/").ctx(|| "chdir /")
}

/// --no-pivot: move the rootfs mount over `/` and chroot into it.
pub fn move_root(rootfs: &Path) -> Result<()> {
    let new_root = open_dir_nofollow(rootfs).ctx(|| format!("root.path: {}", rootfs.display()))?;
    rustix::process::fchdir(&new_root).ctx(|| "chdir to the rootfs")?;
    rustix::mount::mount_move(".", "/").ctx(|| "move the rootfs to /")?;
    rustix::process::chroot(".").ctx(|| "chroot")?;
    rustix::process::chdir("/").ctx(|| "chdir /")
}

/// `/` as an O_PATH directory fd.
pub fn open_slash() -> Result<OwnedFd> {
    let dir = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    rustix::fs::open("/", dir, Mode::empty()).ctx(|| "open /")
}
