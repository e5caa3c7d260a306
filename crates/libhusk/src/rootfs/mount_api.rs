//! Thin helpers over the new mount API, shared by the rootfs modules.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::io::Errno;
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags};

use super::mount_options::{Attrs, Data};
use crate::error::Error;
use crate::syscalls;

/// `mount_setattr` on the mount `fd` refers to (and below it with `recursive`).
pub fn setattr(fd: BorrowedFd<'_>, recursive: bool, attrs: Attrs, propagation: u64) -> Result<(), Errno> {
    let mut flags = libc::AT_EMPTY_PATH as u32;
    if recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    syscalls::mount_setattr(fd, c"", flags, attrs.set, attrs.clear, propagation)
}

/// Attach the mount `mnt` (from open_tree or fsmount) on top of whatever `target` refers to.
pub fn attach(mnt: BorrowedFd<'_>, target: BorrowedFd<'_>) -> Result<(), Errno> {
    let flags = MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH;
    rustix::mount::move_mount(mnt, "", target, "", flags)
}

/// A detached copy of the mount tree at `fd` (just the top mount unless `recursive`).
pub fn clone_fd(fd: BorrowedFd<'_>, recursive: bool) -> Result<OwnedFd, Errno> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_EMPTY_PATH;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    rustix::mount::open_tree(fd, "", flags)
}

/// A detached copy of the mount tree at a host path (symlinks followed: host paths are the
/// caller's to trust, like runc's bind sources).
pub fn clone_path(path: &Path, recursive: bool) -> Result<OwnedFd, Errno> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    rustix::mount::open_tree(rustix::fs::CWD, path, flags)
}

/// A new, detached filesystem mount: fsopen, fsconfig (source, data), fsmount with `attrs`.
/// Errors carry the kernel's own message from the fs context log when there is one.
pub fn new_fs(fstype: &str, source: Option<&str>, data: &[Data], attrs: u64) -> crate::error::Result<OwnedFd> {
    let fs = rustix::mount::fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| Error::os(format!("filesystem type {fstype:?}"), e.raw_os_error()))?;
    let fail = |what: &str, e: Errno| fs_error(fs.as_fd(), what, e);
    if let Some(src) = source.filter(|s| !s.is_empty()) {
        rustix::mount::fsconfig_set_string(&fs, "source", src).map_err(|e| fail("source", e))?;
    }
    for d in data {
        match d {
            Data::Flag(k) => rustix::mount::fsconfig_set_flag(&fs, k.as_str()).map_err(|e| fail(k, e))?,
            Data::Value(k, v) => rustix::mount::fsconfig_set_string(&fs, k.as_str(), v.as_str())
                .map_err(|e| fail(&format!("{k}={v}"), e))?,
        }
    }
    rustix::mount::fsconfig_create(&fs).map_err(|e| fail("create", e))?;
    let attrs = MountAttrFlags::from_bits_retain(attrs as u32);
    rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs).map_err(|e| fail("fsmount", e))
}

/// The errno plus the last line the kernel logged on the fs context ("e tmpfs: Bad value for 'mode'").
fn fs_error(fs: BorrowedFd<'_>, what: &str, e: Errno) -> Error {
    let mut buf = [0u8; 256];
    let mut last = None;
    while let Ok(n) = rustix::io::read(fs, &mut buf) {
        if n == 0 {
            break;
        }
        last = Some(String::from_utf8_lossy(&buf[..n]).trim_end().to_string());
    }
    let err = Error::os(what, e.raw_os_error());
    match last {
        Some(msg) => err.context(msg.get(2..).unwrap_or(&msg)),
        None => err,
    }
}
