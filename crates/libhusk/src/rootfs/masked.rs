//! After pivot: `linux.maskedPaths`, `linux.readonlyPaths` and the read-only root. Paths resolve
//! inside the new root by fd; missing ones are skipped like runc, every other failure is fatal.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{FileType, OFlags};
use rustix::io::Errno;

use super::mount_api::{attach, clone_fd, new_fs, setattr};
use super::mount_options::{Attrs, Data, ATTR_NODEV, ATTR_NOEXEC, ATTR_NOSUID, ATTR_RDONLY};
use super::safe_path;
use crate::error::{Error, Result};

const RDONLY: Attrs = Attrs { set: ATTR_RDONLY, clear: 0 };

pub fn mask(root: BorrowedFd<'_>, paths: &[String], label: Option<&str>) -> Result<()> {
    let mut null: Option<OwnedFd> = None;
    // The read-only tmpfs over the first masked directory: every other masked directory gets a
    // bind of it (one superblock for all, as runc 1.2+), once it is attached (kernels before 6.x,
    // Debian 12's 6.1 among them, refuse to clone a detached mount).
    let mut dir_mask: Option<OwnedFd> = None;
    let mut done: Vec<std::path::PathBuf> = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let field = || format!("linux.maskedPaths[{i}]: {path}");
        // A path listed twice is masked once (runc alike): a second mount would only stack.
        let clean = safe_path::lexical_clean(Path::new(path));
        if done.contains(&clean) {
            continue;
        }
        let target = match safe_path::open(root, Path::new(path), OFlags::empty()) {
            Err(Errno::NOENT) => continue,
            other => other.map_err(|e| Error::os(field(), e.raw_os_error()))?,
        };
        done.push(clean);
        let st = rustix::fs::fstat(&target).map_err(|e| Error::os(field(), e.raw_os_error()))?;
        let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
        let mnt = if is_dir {
            match &dir_mask {
                Some(first) => clone_fd(first.as_fd(), false).map_err(|e| Error::os(field(), e.raw_os_error()))?,
                None => read_only_tmpfs(label).map_err(|e| e.context(field()))?,
            }
        } else {
            if null.is_none() {
                null = Some(dev_null(root).map_err(|e| e.context(field()))?);
            }
            let Some(null) = null.as_ref() else { continue };
            clone_fd(null.as_fd(), false).map_err(|e| Error::os(field(), e.raw_os_error()))?
        };
        attach(mnt.as_fd(), target.as_fd()).map_err(|e| Error::os(field(), e.raw_os_error()))?;
        if is_dir && dir_mask.is_none() {
            dir_mask = Some(mnt);
        }
    }
    Ok(())
}

/// The container's /dev/null, refused unless it is the 1:3 character device: an image may make
/// it a symlink to /proc/sys/kernel/core_pattern (CVE-2025-31133).
fn dev_null(root: BorrowedFd<'_>) -> Result<OwnedFd> {
    let fd = safe_path::open(root, Path::new("/dev/null"), OFlags::NOFOLLOW)
        .map_err(|e| Error::os("/dev/null", e.raw_os_error()))?;
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::CharacterDevice || st.st_rdev != rustix::fs::makedev(1, 3) {
        return Err(Error::msg("/dev/null is not the null device (1:3); refusing to mask with it"));
    }
    Ok(fd)
}

/// An empty read-only tmpfs (superblock and mount) to cover a masked directory, with
/// `linux.mountLabel` if there is one (as runc labels it), and room for nothing: one block, one
/// inode (its root), as runc 1.4 bounds it.
fn read_only_tmpfs(label: Option<&str>) -> Result<OwnedFd> {
    let mut data = vec![
        Data::Flag("ro".into()),
        Data::Value("nr_blocks".into(), "1".into()),
        Data::Value("nr_inodes".into(), "1".into()),
    ];
    data.extend(label.map(crate::lsm::mount_label_option));
    new_fs("tmpfs", Some("tmpfs"), &data, ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC)
}

pub fn read_only(root: BorrowedFd<'_>, paths: &[String]) -> Result<()> {
    for (i, path) in paths.iter().enumerate() {
        let field = || format!("linux.readonlyPaths[{i}]: {path}");
        let target = match safe_path::open(root, Path::new(path), OFlags::empty()) {
            Err(Errno::NOENT) => continue,
            other => other.map_err(|e| Error::os(field(), e.raw_os_error()))?,
        };
        let run = || -> std::result::Result<(), Errno> {
            let mnt = clone_fd(target.as_fd(), true)?;
            setattr(mnt.as_fd(), true, RDONLY, 0)?;
            attach(mnt.as_fd(), target.as_fd())
        };
        run().map_err(|e| Error::os(field(), e.raw_os_error()))?;
    }
    Ok(())
}

/// `root.readonly`: the root mount only, like runc's remount of `/`.
pub fn read_only_root(root: BorrowedFd<'_>) -> Result<()> {
    setattr(root, false, RDONLY, 0).map_err(|e| Error::os("root.readonly: remount / read-only", e.raw_os_error()))
}
