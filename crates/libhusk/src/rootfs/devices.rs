//! /dev: the default devices and symlinks, then `linux.devices`. Every node is made fd-relative in
//! a `/dev` resolved inside the rootfs, so an image whose `/dev` is a symlink (CVE-2026-41579)
//! gets its devices inside the rootfs, never on the host.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::mount_api::{attach, clone_path};
use super::mounts::is_bind;
use super::{mount_options, safe_path, RootfsContext};
use crate::error::{Error, Result};

/// (name, major, minor) of the character devices every container gets (config-linux.md).
const DEFAULT_DEVICES: [(&str, u32, u32); 6] =
    [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];

const SYMLINKS: [(&str, &str); 4] = [
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
];

struct Node<'a> {
    kind: FileType,
    major: u32,
    minor: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    /// The same device on the host, bound instead of mknod'ed in a user namespace.
    host: &'a Path,
}

/// Like runc: nothing to do when the config binds a /dev from the host.
pub fn setup(ctx: &RootfsContext, root: BorrowedFd<'_>) -> Result<()> {
    let binds_dev = ctx.spec.mounts().iter().flatten().any(|m| {
        safe_path::relative(m.destination()) == Path::new("dev")
            && mount_options::parse(m.options().as_deref().unwrap_or(&[])).is_ok_and(|o| is_bind(m, &o))
    });
    if binds_dev {
        return Ok(());
    }
    // One umask change instead of a chmod per node: modes are the config's, exactly.
    let old = rustix::process::umask(Mode::empty());
    let result = setup_dev(ctx, root);
    rustix::process::umask(old);
    result
}

fn setup_dev(ctx: &RootfsContext, root: BorrowedFd<'_>) -> Result<()> {
    let devices: &[LinuxDevice] = ctx.spec.linux().as_ref().and_then(|l| l.devices().as_deref()).unwrap_or(&[]);
    let dev =
        safe_path::mkdir_all(root, Path::new("/dev"), 0o755).map_err(|e| Error::os("mkdir /dev", e.raw_os_error()))?;
    for (name, major, minor) in DEFAULT_DEVICES {
        let path = format!("/dev/{name}");
        if devices.iter().any(|d| d.path() == Path::new(&path)) {
            continue;
        }
        let node =
            Node { kind: FileType::CharacterDevice, major, minor, mode: 0o666, uid: 0, gid: 0, host: Path::new(&path) };
        make(ctx, dev.as_fd(), OsStr::new(name), &node)
            .map_err(|e| if ctx.in_userns { e.context(&path) } else { e })?;
    }
    for (target, name) in SYMLINKS {
        symlink(dev.as_fd(), target, name)?;
    }
    if rustix::fs::access("/proc/kcore", rustix::fs::Access::EXISTS).is_ok() {
        symlink(dev.as_fd(), "/proc/kcore", "core")?;
    }
    // The container's own devpts: /dev/ptmx must lead to it, whatever the image had there.
    match rustix::fs::unlinkat(&dev, "ptmx", AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => return Err(Error::os("remove /dev/ptmx", e.raw_os_error())),
    }
    symlink(dev.as_fd(), "pts/ptmx", "ptmx")?;
    for (i, d) in devices.iter().enumerate() {
        device(ctx, root, d).map_err(|e| e.context(format!("linux.devices[{i}].path: {}", d.path().display())))?;
    }
    Ok(())
}

fn device(ctx: &RootfsContext, root: BorrowedFd<'_>, d: &LinuxDevice) -> Result<()> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => FileType::CharacterDevice,
        LinuxDeviceType::B => FileType::BlockDevice,
        LinuxDeviceType::P => FileType::Fifo,
        LinuxDeviceType::A => return Err(Error::msg("type \"a\" is not a device")),
    };
    let (Ok(major), Ok(minor)) = (u32::try_from(d.major()), u32::try_from(d.minor())) else {
        return Err(Error::msg("major and minor must be non-negative 32-bit numbers"));
    };
    let node = Node {
        kind,
        major,
        minor,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
        host: d.path(),
    };
    let (parent, name) =
        safe_path::split(root, d.path()).map_err(|e| Error::os("parent directory", e.raw_os_error()))?;
    make(ctx, parent.as_fd(), name, &node)
}

fn make(ctx: &RootfsContext, dir: BorrowedFd<'_>, name: &OsStr, n: &Node) -> Result<()> {
    let shown = || n.host.display().to_string();
    if ctx.in_userns && n.kind != FileType::Fifo {
        return bind_host(dir, name, n);
    }
    let dev = rustix::fs::makedev(n.major, n.minor);
    let mode = Mode::from_raw_mode(n.mode);
    let mut made = rustix::fs::mknodat(dir, name, n.kind, mode, dev);
    if made == Err(Errno::EXIST) {
        // Replace what the image had there, like runc.
        rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(|e| Error::os(shown(), e.raw_os_error()))?;
        made = rustix::fs::mknodat(dir, name, n.kind, mode, dev);
    }
    made.map_err(|e| Error::os(format!("mknod {}", shown()), e.raw_os_error()))?;
    if n.uid != 0 || n.gid != 0 {
        let (uid, gid) = (rustix::fs::Uid::from_raw(n.uid), rustix::fs::Gid::from_raw(n.gid));
        rustix::fs::chownat(dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Error::os(format!("chown {}", shown()), e.raw_os_error()))?;
    }
    Ok(())
}

/// In a user namespace mknod is refused: bind the host's node onto an empty file, after checking
/// the host path really is that device. Errors leave the path to the caller's context.
fn bind_host(dir: BorrowedFd<'_>, name: &OsStr, n: &Node) -> Result<()> {
    let tree = clone_path(n.host, false).map_err(|e| match e {
        Errno::NOENT => Error::msg("no such device on the host to bind (a user namespace cannot mknod)")
            .with_errno(e.raw_os_error()),
        e => Error::os("bind the host's node", e.raw_os_error()),
    })?;
    let st = rustix::fs::fstat(&tree)?;
    let want = rustix::fs::makedev(n.major, n.minor);
    if FileType::from_raw_mode(st.st_mode) != n.kind || st.st_rdev != want {
        let (major, minor) = (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
        return Err(Error::msg(format!(
            "the host's node is {major}:{minor}, which is not device {}:{} (a user namespace cannot mknod)",
            n.major, n.minor
        )));
    }
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => return Err(e.into()),
    }
    let flags = OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC;
    let target: OwnedFd = rustix::fs::openat(dir, name, flags, Mode::empty())?;
    attach(tree.as_fd(), target.as_fd())?;
    Ok(())
}

fn symlink(dev: BorrowedFd<'_>, target: &str, name: &str) -> Result<()> {
    match rustix::fs::symlinkat(target, dev, name) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(Error::os(format!("symlink /dev/{name}"), e.raw_os_error())),
    }
}
