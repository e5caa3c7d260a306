//! A private procfs for the runtime's own /proc writes: mounted by us in the container's
//! namespaces, never attached anywhere the container can reach, and walked without symlinks or
//! mount crossings, so no image or racing mount can redirect a write (CVE-2025-52881).

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::mount_api::new_fs;
use super::mount_options::{ATTR_NODEV, ATTR_NOEXEC, ATTR_NOSUID};
use crate::error::{Context, Error, Result};

/// A detached procfs mount, checked to be procfs.
pub fn open_private() -> Result<OwnedFd> {
    let proc = new_fs("proc", Some("proc"), &[], ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC)
        .map_err(|e| e.context("private procfs"))?;
    let st = rustix::fs::fstatfs(&proc).ctx(|| "private procfs")?;
    if st.f_type as u32 != libc::PROC_SUPER_MAGIC as u32 {
        return Err(Error::msg("private procfs: not procfs"));
    }
    Ok(proc)
}

/// Open `path` strictly beneath `dir` (a directory of the private procfs).
pub fn open_beneath(dir: BorrowedFd<'_>, path: &Path, flags: OFlags) -> std::result::Result<OwnedFd, Errno> {
    let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_XDEV;
    // openat2 refuses O_PATH with anything but O_DIRECTORY/O_NOFOLLOW/O_CLOEXEC.
    let extra = if flags.contains(OFlags::PATH) { OFlags::CLOEXEC } else { OFlags::CLOEXEC | OFlags::NOCTTY };
    rustix::fs::openat2(dir, path, flags | extra, Mode::empty(), how)
}
