//! Making the rootfs a mount point before the mounts, and switching into it after them.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags, StatxFlags};
use rustix::io::Errno;
use rustix::mount::UnmountFlags;

use super::mount_api::{attach, clone_fd, setattr};
use super::mount_options::{Attrs, PROP_PRIVATE, PROP_SLAVE};
use crate::error::Context;

type Result<T, E = crate::error::Error> = std::result::Result<T, E>;

/// Bind the rootfs onto itself (recursively); returns the new mount's root: the directory fd
/// every path inside the container is resolved from, and the new root pivot_root switches to.
///
/// pivot_root needs the parent of the new root not to be shared, and our bind must not propagate
/// to other namespaces: the mount under the rootfs is made slave (for slave rootfsPropagation, so
/// that the container still receives the host's mount events, runc alike) or private first,
/// unless the propagation just set on every mount already is that.
pub fn bind_rootfs(rootfs: BorrowedFd<'_>, shown: &Path, prop: u64, recursive: bool) -> Result<OwnedFd> {
    let what = |step: &str| format!("root.path: {}: {step}", shown.display());
    let parent_prop = if prop == PROP_SLAVE { PROP_SLAVE } else { PROP_PRIVATE };
    if !(recursive && prop == parent_prop) {
        let parent = mount_root(rootfs).ctx(|| what("find the parent mount"))?;
        setattr(parent.as_fd(), false, Attrs::default(), parent_prop)
            .ctx(|| what("set the parent mount's propagation"))?;
    }
    let tree = clone_fd(rootfs, true).ctx(|| what("bind"))?;
    attach(tree.as_fd(), rootfs).ctx(|| what("bind"))?;
    Ok(tree)
}

/// The rootfs `create` opened (in husk's mount namespace), opened again in the container's new
/// one, where mounts can be made on it (the kernel refuses a mount made through an fd of another
/// namespace's mount). By the path the kernel gives the first fd now (symlink-free, wherever a
/// rename took it), without following symlinks, and checked to be the same directory: a
/// component swapped in between is refused, never entered.
pub fn reopen_in_namespace(created: BorrowedFd<'_>, shown: &Path) -> Result<OwnedFd> {
    use std::os::unix::ffi::OsStringExt;
    let what = |step: &str| format!("root.path: {}: {step}", shown.display());
    let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&created));
    let path = rustix::fs::readlink(link, Vec::new()).ctx(|| what("find the opened rootfs"))?;
    let path = std::path::PathBuf::from(std::ffi::OsString::from_vec(path.into_bytes()));
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let how = rustix::fs::ResolveFlags::NO_SYMLINKS | rustix::fs::ResolveFlags::NO_MAGICLINKS;
    let fd = rustix::fs::openat2(rustix::fs::CWD, &path, flags, Mode::empty(), how)
        .ctx(|| what(&format!("open {} in the container's mount namespace", path.display())))?;
    let id = |fd: BorrowedFd<'_>| rustix::fs::fstat(fd).map(|st| (st.st_dev, st.st_ino));
    if id(fd.as_fd()).ctx(|| what("stat"))? != id(created).ctx(|| what("stat"))? {
        return Err(crate::error::Error::field(
            "root.path",
            format!("{}: replaced while the container was being created", shown.display()),
        ));
    }
    Ok(fd)
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

/// pivot_root(".", ".") with the new root (the rootfs bind `bind_rootfs` made, never the path
/// again) as cwd stacks the old root on top of it; detach that (rslave first so the unmount
/// cannot reach the host) and the cwd ends up at the new `/`.
pub fn pivot_root(new_root: BorrowedFd<'_>) -> Result<()> {
    let old_root = open_slash()?;
    rustix::process::fchdir(new_root).ctx(|| "chdir to the rootfs")?;
    rustix::process::pivot_root(".", ".").ctx(|| "pivot_root")?;
    // The kernel leaves the cwd on the old root today; fchdir makes that a guarantee.
    rustix::process::fchdir(&old_root).ctx(|| "chdir to the old root")?;
    setattr(old_root.as_fd(), true, Attrs::default(), PROP_SLAVE).ctx(|| "make the old root rslave")?;
    rustix::mount::unmount(".", UnmountFlags::DETACH).ctx(|| "unmount the old root")?;
    rustix::process::chdir("/").ctx(|| "chdir /")
}

/// --no-pivot: move the rootfs mount over `/` and chroot into it.
pub fn move_root(new_root: BorrowedFd<'_>) -> Result<()> {
    rustix::process::fchdir(new_root).ctx(|| "chdir to the rootfs")?;
    rustix::mount::mount_move(".", "/").ctx(|| "move the rootfs to /")?;
    chroot_here()
}

/// No mount namespace of the container's own: chroot into the rootfs, mounting nothing.
pub fn chroot(root: BorrowedFd<'_>) -> Result<()> {
    rustix::process::fchdir(root).ctx(|| "chdir to the rootfs")?;
    chroot_here()
}

fn chroot_here() -> Result<()> {
    rustix::process::chroot(".").ctx(|| "chroot")?;
    rustix::process::chdir("/").ctx(|| "chdir /")
}

/// `/` as an O_PATH directory fd.
pub fn open_slash() -> Result<OwnedFd> {
    let dir = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    rustix::fs::open("/", dir, Mode::empty()).ctx(|| "open /")
}
