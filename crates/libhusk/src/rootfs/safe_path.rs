//! Paths inside the container's root, resolved through file descriptors only: symlinks (absolute
//! or `..`) resolve as if the root were `/`, so nothing the image contains can lead outside it.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Component, Path};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// The path relative to the root: leading `/` and `.` dropped, `..` kept (the kernel clamps it).
pub fn relative(path: &Path) -> &Path {
    path.strip_prefix("/").unwrap_or(path)
}

fn is_empty(path: &Path) -> bool {
    path.components().all(|c| matches!(c, Component::RootDir | Component::CurDir))
}

/// Open `path` inside `root` (O_PATH unless `flags` say otherwise).
pub fn open(root: BorrowedFd<'_>, path: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
    let rel = relative(path);
    let rel = if is_empty(rel) { Path::new(".") } else { rel };
    let flags = if flags.intersects(OFlags::WRONLY | OFlags::RDWR) { flags } else { flags | OFlags::PATH };
    rustix::fs::openat2(root, rel, flags | OFlags::CLOEXEC, Mode::empty(), IN_ROOT)
}

/// `mkdir -p` inside `root`; returns an O_PATH fd of the directory.
///
/// Fast path: it exists (one openat2). Otherwise walk the components, creating each missing one
/// with mkdirat in the directory fd resolved so far. A dangling symlink stays unfollowed: mkdirat
/// fails with EEXIST and the open that follows refuses symlinks (ELOOP).
pub fn mkdir_all(root: BorrowedFd<'_>, path: &Path, mode: u32) -> Result<OwnedFd, Errno> {
    mkdir_all_made(root, path, mode).map(|(fd, _)| fd)
}

/// `mkdir_all`, also saying whether the directory was made now (false: it was there).
pub fn mkdir_all_made(root: BorrowedFd<'_>, path: &Path, mode: u32) -> Result<(OwnedFd, bool), Errno> {
    match open(root, path, OFlags::DIRECTORY) {
        Err(Errno::NOENT) => {}
        other => return other.map(|fd| (fd, false)),
    }
    let mut dir = rustix::io::dup(root)?;
    let mut prefix = std::path::PathBuf::new();
    // Once one component had to be made, the ones below it cannot exist yet (barring a race,
    // which EEXIST covers), so skip their lookups from the root.
    let mut making = false;
    let mut made = false;
    for comp in relative(path).components() {
        let name = match comp {
            Component::Normal(name) => name,
            Component::ParentDir if !making => {
                prefix.push("..");
                dir = open(root, &prefix, OFlags::DIRECTORY)?;
                continue;
            }
            Component::ParentDir => return Err(Errno::NOENT),
            _ => continue,
        };
        prefix.push(name);
        if !making {
            match open(root, &prefix, OFlags::DIRECTORY) {
                Err(Errno::NOENT) => making = true,
                other => {
                    dir = other?;
                    continue;
                }
            }
        }
        match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(mode)) {
            Ok(()) => made = true,
            Err(Errno::EXIST) => made = false,
            Err(e) => return Err(e),
        }
        let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_XDEV;
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        dir = rustix::fs::openat2(&dir, name, flags, Mode::empty(), how)?;
    }
    Ok((dir, made))
}

/// `path` with `.` dropped and `..` applied to what precedes it (clamped at `/`), as a path
/// inside the root resolves when no symlink is in it: "/dev/../dev/." is "/dev".
pub fn lexical_clean(path: &Path) -> std::path::PathBuf {
    let mut out = std::path::PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Open a file inside `root`, creating it empty (and its parents) if missing: a mount point for a
/// file bind mount. A dangling symlink at the last component is refused (O_NOFOLLOW → ELOOP).
pub fn create_file(root: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd, Errno> {
    match open(root, path, OFlags::empty()) {
        Err(Errno::NOENT) => {}
        other => return other,
    }
    let (parent, name) = split(root, path)?;
    let flags = OFlags::CREATE | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY;
    rustix::fs::openat(&parent, name, flags, Mode::from_raw_mode(0o644))
}

/// The parent directory (created if missing) and the last component of `path`.
pub fn split<'p>(root: BorrowedFd<'_>, path: &'p Path) -> Result<(OwnedFd, &'p std::ffi::OsStr), Errno> {
    let rel = relative(path);
    match (rel.parent(), rel.file_name()) {
        (Some(parent), Some(name)) => Ok((mkdir_all(root, parent, 0o755)?, name)),
        // "/", "/..": nothing to create a file in.
        _ => Err(Errno::INVAL),
    }
}

/// Open a directory by host path, refusing a symlink as the last component.
pub fn open_dir_nofollow(path: &Path) -> Result<OwnedFd, Errno> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::open(path, flags, Mode::empty())
}
