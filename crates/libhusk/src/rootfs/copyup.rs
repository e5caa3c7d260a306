//! `tmpcopyup` (runc's mount extension): a tmpfs mounted over a directory of the image starts with
//! a copy of what that directory held. Podman asks for it on the tmpfs of `--read-only` (/tmp,
//! /run, /var/tmp) and of systemd containers.
//!
//! The copy is made into the new tmpfs while it is still detached (fsmount's fd), before it is
//! attached over the directory, so the container never sees it half-filled. Every entry is opened
//! by name relative to its parent's fd with O_NOFOLLOW: a symlink is copied as a symlink, never
//! followed, so nothing outside the rootfs is read. Files keep their owner, mode and times;
//! hard links become separate copies and extended attributes are not copied (as in runc).

use std::ffi::CStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Stat, Timespec, Timestamps, Uid};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// Copy the contents of the directory `src` (any fd of it, O_PATH too) into the directory `dst`.
pub fn copy_dir_contents(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> Result<()> {
    let dir = rustix::fs::openat(src, c".", read_dir_flags(), Mode::empty())
        .map_err(|e| Error::os("tmpcopyup: open the directory", e.raw_os_error()))?;
    copy_entries(dir.as_fd(), dst, &mut Vec::new())
}

fn read_dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// `path` is the entry's path below the copied directory, for errors only.
fn copy_entries(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, path: &mut Vec<String>) -> Result<()> {
    let mut entries = rustix::fs::Dir::read_from(src).map_err(|e| fail(path, "read", e))?;
    while let Some(entry) = entries.read() {
        let entry = entry.map_err(|e| fail(path, "read", e))?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        path.push(name.to_string_lossy().into_owned());
        copy_entry(src, dst, name, path)?;
        path.pop();
    }
    Ok(())
}

fn copy_entry(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, name: &CStr, path: &mut Vec<String>) -> Result<()> {
    let st = rustix::fs::statat(src, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| fail(path, "stat", e))?;
    let mode = Mode::from_raw_mode(st.st_mode & 0o7777);
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            rustix::fs::mkdirat(dst, name, Mode::from_raw_mode(0o700)).map_err(|e| fail(path, "mkdir", e))?;
            let from =
                rustix::fs::openat(src, name, read_dir_flags(), Mode::empty()).map_err(|e| fail(path, "open", e))?;
            let to =
                rustix::fs::openat(dst, name, read_dir_flags(), Mode::empty()).map_err(|e| fail(path, "open", e))?;
            copy_entries(from.as_fd(), to.as_fd(), path)?;
            // Owner and mode last: a directory without write permission was still filled.
            finish(to.as_fd(), &st, mode).map_err(|e| fail(path, "set owner, mode and times of", e))
        }
        FileType::RegularFile => {
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC;
            let from = rustix::fs::openat(src, name, flags, Mode::empty()).map_err(|e| fail(path, "open", e))?;
            let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let to = rustix::fs::openat(dst, name, flags, Mode::from_raw_mode(0o600))
                .map_err(|e| fail(path, "create", e))?;
            copy_data(from, &to).map_err(|e| fail(path, "copy", Errno::from_io_error(&e).unwrap_or(Errno::IO)))?;
            finish(to.as_fd(), &st, mode).map_err(|e| fail(path, "set owner, mode and times of", e))
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(src, name, Vec::new()).map_err(|e| fail(path, "readlink", e))?;
            rustix::fs::symlinkat(target.as_c_str(), dst, name).map_err(|e| fail(path, "symlink", e))?;
            finish_at(dst, name, &st, None).map_err(|e| fail(path, "set owner and times of", e))
        }
        kind @ (FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo | FileType::Socket) => {
            rustix::fs::mknodat(dst, name, kind, mode, st.st_rdev as _).map_err(|e| fail(path, "mknod", e))?;
            finish_at(dst, name, &st, Some(mode)).map_err(|e| fail(path, "set owner, mode and times of", e))
        }
        FileType::Unknown => Err(fail(path, "copy (unknown file type)", Errno::INVAL)),
    }
}

fn copy_data(from: OwnedFd, to: &OwnedFd) -> std::io::Result<()> {
    let mut from = File::from(from);
    // std copies between two files with copy_file_range (falling back to read/write).
    let mut to = File::from(to.try_clone()?);
    std::io::copy(&mut from, &mut to).map(drop)
}

fn times(st: &Stat) -> Timestamps {
    Timestamps {
        last_access: Timespec { tv_sec: st.st_atime as _, tv_nsec: st.st_atime_nsec as _ },
        last_modification: Timespec { tv_sec: st.st_mtime as _, tv_nsec: st.st_mtime_nsec as _ },
    }
}

/// Owner before mode: chown clears the set-uid and set-gid bits.
fn finish(fd: BorrowedFd<'_>, st: &Stat, mode: Mode) -> std::result::Result<(), Errno> {
    rustix::fs::fchown(fd, Some(Uid::from_raw(st.st_uid)), Some(Gid::from_raw(st.st_gid)))?;
    rustix::fs::fchmod(fd, mode)?;
    rustix::fs::futimens(fd, &times(st))
}

/// The same by name, for what cannot be opened (symlinks have no mode of their own).
fn finish_at(dir: BorrowedFd<'_>, name: &CStr, st: &Stat, mode: Option<Mode>) -> std::result::Result<(), Errno> {
    let (uid, gid) = (Uid::from_raw(st.st_uid), Gid::from_raw(st.st_gid));
    rustix::fs::chownat(dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)?;
    if let Some(mode) = mode {
        rustix::fs::chmodat(dir, name, mode, AtFlags::empty())?;
    }
    rustix::fs::utimensat(dir, name, &times(st), AtFlags::SYMLINK_NOFOLLOW)
}

fn fail(path: &[String], what: &str, e: Errno) -> Error {
    let shown = if path.is_empty() { ".".to_string() } else { path.join("/") };
    Error::os(format!("tmpcopyup: {what} {shown}"), e.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::Path;

    fn open_path(p: &Path) -> OwnedFd {
        rustix::fs::open(p, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap()
    }

    #[test]
    fn tmpcopyup_copies_a_tree_without_following_symlinks() {
        let top = std::env::temp_dir().join(format!("husk-copyup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&top);
        let (src, dst, outside) = (top.join("src"), top.join("dst"), top.join("outside"));
        std::fs::create_dir_all(src.join("a/b")).unwrap();
        std::fs::create_dir_all(&dst).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "host").unwrap();
        std::fs::write(src.join("a/b/file"), "data").unwrap();
        std::fs::set_permissions(src.join("a/b/file"), std::fs::Permissions::from_mode(0o4751)).unwrap();
        std::fs::set_permissions(src.join("a"), std::fs::Permissions::from_mode(0o500)).unwrap();
        std::os::unix::fs::symlink(&outside, src.join("escape")).unwrap();
        std::os::unix::fs::symlink("../secret", src.join("rel")).unwrap();
        rustix::fs::mknodat(rustix::fs::CWD, src.join("fifo"), FileType::Fifo, Mode::from_raw_mode(0o640), 0).unwrap();
        std::os::unix::fs::lchown(src.join("rel"), Some(1234), Some(5678)).unwrap();

        copy_dir_contents(open_path(&src).as_fd(), open_path(&dst).as_fd()).unwrap();

        assert_eq!(std::fs::read_to_string(dst.join("a/b/file")).unwrap(), "data");
        let meta = std::fs::metadata(dst.join("a/b/file")).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o4751);
        assert_eq!(meta.mtime(), std::fs::metadata(src.join("a/b/file")).unwrap().mtime());
        assert_eq!(std::fs::metadata(dst.join("a")).unwrap().mode() & 0o7777, 0o500);
        // Symlinks stay symlinks: the directory they point at is not copied.
        assert_eq!(std::fs::read_link(dst.join("escape")).unwrap(), outside);
        assert!(std::fs::symlink_metadata(dst.join("escape")).unwrap().file_type().is_symlink());
        let rel = std::fs::symlink_metadata(dst.join("rel")).unwrap();
        assert_eq!((rel.uid(), rel.gid()), (1234, 5678));
        let fifo = std::fs::symlink_metadata(dst.join("fifo")).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&fifo.file_type()));
        assert_eq!(fifo.mode() & 0o7777, 0o640);

        // An entry that exists already in the target is an error naming it, not a silent skip.
        std::fs::create_dir_all(top.join("dst2/a")).unwrap();
        let err = copy_dir_contents(open_path(&src).as_fd(), open_path(&top.join("dst2")).as_fd()).unwrap_err();
        assert!(err.to_string().contains("tmpcopyup: mkdir a"), "{err}");

        std::fs::set_permissions(src.join("a"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(dst.join("a"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::remove_dir_all(&top).unwrap();
    }
}
