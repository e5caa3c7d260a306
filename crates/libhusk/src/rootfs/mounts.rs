//! The config's `mounts`, in order, each onto a destination resolved inside the rootfs by fd.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::Mount;
use rustix::fs::{FileType, OFlags};
use rustix::io::Errno;

use super::mount_api::{attach, clone_fd, clone_path, new_fs, setattr};
use super::mount_options::{self, Attrs, Data, MountOptions, ATTR_ATIME_MASK, ATTR_NODIRATIME, ATTR_RDONLY};
use super::{cgroupfs, copyup, idmap, safe_path, RootfsContext};
use crate::error::{Error, Result};

pub fn mount_all(ctx: &RootfsContext, root: BorrowedFd<'_>, read_only_later: &mut Vec<(OwnedFd, bool)>) -> Result<()> {
    for (i, m) in ctx.spec.mounts().iter().flatten().enumerate() {
        let field = format!("mounts[{i}]");
        // Errors that name a field of the mount already (`mounts[3].uidMappings`) keep it alone.
        mount_one(ctx, root, i, m, read_only_later).map_err(|e| {
            if e.message().starts_with(&field) {
                e
            } else {
                e.context(field)
            }
        })?;
    }
    Ok(())
}

/// Whether `m` is a bind mount: by type, or by a `bind`/`rbind` option (type is optional).
pub fn is_bind(m: &Mount, opts: &MountOptions) -> bool {
    opts.bind || matches!(m.typ().as_deref(), Some("bind") | Some("rbind"))
}

fn mount_one(
    ctx: &RootfsContext,
    root: BorrowedFd<'_>,
    i: usize,
    m: &Mount,
    read_only_later: &mut Vec<(OwnedFd, bool)>,
) -> Result<()> {
    let dest = m.destination();
    let clean = safe_path::lexical_clean(dest);
    if clean == Path::new("/") {
        // The root is the mount pivot_root switches to: a mount on top of it would be left
        // underneath (runc refuses these too).
        return Err(Error::msg(format!("{}: a mount on the top of the rootfs is not supported", dest.display())));
    }
    let opts = mount_options::parse(m.options().as_deref().unwrap_or(&[]))
        .map_err(|e| e.context(format!("options of {}", dest.display())))?;
    if is_bind(m, &opts) {
        return bind(ctx, root, i, m, &opts);
    }
    idmap::request(i, m, &opts, idmap::Userns::None)?;
    let fstype = match m.typ().as_deref() {
        Some(t) if !t.is_empty() => t,
        _ => return Err(Error::msg(format!("{}: type is missing", dest.display()))),
    };
    let what = || format!("mount {fstype} on {}", dest.display());
    if opts.copy_up && fstype != "tmpfs" {
        return Err(Error::msg(format!("{}: option \"tmpcopyup\" is for tmpfs mounts, not {fstype}", dest.display())));
    }
    if fstype == "cgroup" {
        let target = mkdir(root, dest)?;
        return cgroupfs::mount(ctx, target.as_fd(), &opts).map_err(|e| e.context(what()));
    }
    let source = m.source().as_ref().and_then(|s| s.to_str());
    let mut fresh = opts.attrs.on_fresh_mount(&opts.rec_attrs);
    // A read-only tmpfs or /dev is mounted writable and made read-only once the rootfs is done
    // (runc alike): devices, the console, mount points of later mounts and copies go inside.
    let delay_read_only = fresh & ATTR_RDONLY != 0 && (fstype == "tmpfs" || clean == Path::new("/dev"));
    if delay_read_only {
        fresh &= !ATTR_RDONLY;
    }
    let (target, made) =
        if fstype == "proc" || fstype == "sysfs" { ordinary_dir(root, dest, fstype)? } else { mkdir_made(root, dest)? };
    let mut data = opts.data.clone();
    let has_mode = data.iter().any(|d| matches!(d, Data::Value(k, _) if k == "mode"));
    if fstype == "tmpfs" && !has_mode && (!made || opts.copy_up) {
        // A tmpfs over a directory of the image takes that directory's mode (runc 1.2+; a copy
        // of it too); an explicit mode= still wins.
        let st = rustix::fs::fstat(&target).map_err(|e| Error::from(e).context(what()))?;
        data.push(Data::Value("mode".into(), format!("{:o}", st.st_mode & 0o7777)));
    }
    if let Some(label) = crate::lsm::mount_label(ctx.spec).filter(|_| crate::lsm::labels_fstype(fstype)) {
        data.push(crate::lsm::mount_label_option(label));
    }
    let mnt = match new_fs(fstype, source, &data, fresh) {
        Ok(mnt) => mnt,
        // In a user namespace without its own network namespace the kernel refuses a new sysfs:
        // bind the host's, like runc.
        Err(e) if fstype == "sysfs" && ctx.in_userns && e.errno() == Some(libc::EPERM) => {
            let mnt = clone_path(Path::new("/sys"), true).map_err(|e| Error::from(e).context(what()))?;
            let all = Attrs { set: fresh, clear: 0 };
            setattr(mnt.as_fd(), true, all, 0).map_err(|e| Error::from(e).context(what()))?;
            mnt
        }
        // Only filesystems the kernel marks as mountable in a user namespace (tmpfs, proc, mqueue,
        // devpts, ...) work rootless; the rest need real root.
        Err(e) if ctx.in_userns && e.errno() == Some(libc::EPERM) => {
            return Err(e.context(format!(
                "{}: the kernel lets only real root mount {fstype}, not a user namespace (bind-mount it from the host \
                 instead)",
                what()
            )))
        }
        Err(e) => return Err(e.context(what())),
    };
    if opts.copy_up {
        copyup::copy_dir_contents(target.as_fd(), mnt.as_fd()).map_err(|e| e.context(what()))?;
    }
    attach(mnt.as_fd(), target.as_fd()).map_err(|e| Error::from(e).context(what()))?;
    propagate(mnt.as_fd(), &opts).map_err(|e| e.context(what()))?;
    if delay_read_only {
        read_only_later.push((mnt, opts.rec_attrs.set & ATTR_RDONLY != 0));
    }
    Ok(())
}

/// `finalize`'s half of a delayed read-only mount.
pub fn make_read_only(mnt: BorrowedFd<'_>, recursive: bool) -> Result<()> {
    setattr(mnt, recursive, Attrs { set: ATTR_RDONLY, clear: 0 }, 0)
        .map_err(|e| Error::os("make a read-only mount read-only", e.raw_os_error()))
}

/// proc and sysfs go on a directory of the rootfs, never on a symlink (which the container's
/// later view of `/proc` would not follow to where it was mounted) nor on anything else, in
/// runc's words.
fn ordinary_dir(root: BorrowedFd<'_>, dest: &Path, fstype: &str) -> Result<(OwnedFd, bool)> {
    match safe_path::open(root, dest, OFlags::DIRECTORY | OFlags::NOFOLLOW) {
        Ok(fd) => Ok((fd, false)),
        Err(Errno::NOTDIR) => Err(Error::msg(format!(
            "filesystem {fstype:?} must be mounted on ordinary directory ({} is a symlink or not a directory)",
            dest.display()
        ))),
        Err(Errno::NOENT) => mkdir_made(root, dest),
        Err(e) => Err(Error::os(format!("open {}", dest.display()), e.raw_os_error())),
    }
}

fn bind(ctx: &RootfsContext, root: BorrowedFd<'_>, i: usize, m: &Mount, opts: &MountOptions) -> Result<()> {
    let dest = m.destination();
    opts.check_bind().map_err(|e| e.context(format!("options of {}", dest.display())))?;
    let source =
        m.source().as_ref().ok_or_else(|| Error::msg(format!("{}: bind source is missing", dest.display())))?;
    let source = if source.is_absolute() { source.clone() } else { ctx.bundle.join(source) };
    let what = || format!("bind {} on {}", source.display(), dest.display());
    if let Some((_, tree)) = ctx.idmapped.iter().find(|(n, _)| *n == i) {
        // Made and idmapped by husk as root before the clone: only attaching is left.
        return attach_tree(root, dest, tree.as_fd(), opts).map_err(|e| e.context(what()));
    }
    let idmap = idmap::request(i, m, opts, ctx.userns)?;
    let tree = match clone_path(&source, opts.recursive_bind) {
        Ok(tree) => tree,
        // Our user namespace's root may not reach the source (a directory only a host user may
        // enter): husk, outside it, opens it for us (runc's mount source requests).
        Err(Errno::ACCESS | Errno::PERM) if ctx.source_broker.is_some() => {
            let broker = ctx.source_broker.ok_or_else(|| Error::msg("no mount source broker"))?;
            let fd = broker(i).map_err(|e| e.context(what()))?;
            clone_fd(fd.as_fd(), opts.recursive_bind).map_err(|e| Error::from(e).context(what()))?
        }
        Err(e) => return Err(Error::from(e).context(what())),
    };
    if let Some(req) = &idmap {
        idmap::apply_in_container(i, tree.as_fd(), req, &source)?;
    }
    set_bind_attrs(tree.as_fd(), opts).map_err(|e| e.context(what()))?;
    attach_tree(root, dest, tree.as_fd(), opts).map_err(|e| e.context(what()))
}

/// Attach a detached bind tree on `dest`, made a directory or a file to match it.
fn attach_tree(root: BorrowedFd<'_>, dest: &Path, tree: BorrowedFd<'_>, opts: &MountOptions) -> Result<()> {
    let is_dir = rustix::fs::fstat(tree).map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)?;
    let target = if is_dir {
        mkdir(root, dest)?
    } else {
        safe_path::create_file(root, dest)
            .map_err(|e| Error::os(format!("create {}", dest.display()), e.raw_os_error()))?
    };
    attach(tree, target.as_fd())?;
    propagate(tree, opts)
}

/// Plain attributes first, then the recursive ones (runc's order): on a detached tree, so the
/// container never sees the mount before its flags are right.
pub fn set_attrs(mnt: BorrowedFd<'_>, opts: &MountOptions) -> Result<()> {
    if !opts.attrs.is_empty() {
        setattr(mnt, false, opts.attrs, 0)?;
    }
    if !opts.rec_attrs.is_empty() {
        setattr(mnt, true, opts.rec_attrs, 0)?;
    }
    Ok(())
}

/// The per-mount flags a user namespace can find locked on a mount it inherited (MNT_LOCK_*),
/// as mount(2) flags.
#[allow(clippy::unnecessary_cast)]
const MS_ATIME: u64 = (libc::MS_NOATIME | libc::MS_RELATIME | libc::MS_STRICTATIME | libc::MS_NODIRATIME) as u64;
#[allow(clippy::unnecessary_cast)]
const MS_LOCKABLE: u64 = (libc::MS_RDONLY | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_NOSUID) as u64 | MS_ATIME;

/// A bind mount's flags as runc 1.2+ sets them. No per-mount option at all: the source's flags
/// stay. Otherwise `mount --bind -o OPTS`: the flags asked for, every other per-mount flag
/// cleared (the atime ones kept unless one was asked for). Where that fails because the source's
/// flags are locked (inherited into a user namespace), its lockable flags are kept on top of the
/// request, except that clearing a locked flag, or asking for another atime than the locked
/// one, is an error rather than a mount other than asked for.
pub fn set_bind_attrs(mnt: BorrowedFd<'_>, opts: &MountOptions) -> Result<()> {
    if !opts.attrs.is_empty() {
        let want = remount_attrs(&opts.attrs);
        match setattr(mnt, false, want, 0) {
            Ok(()) => {}
            Err(Errno::PERM) => {
                let src = ms_flags_of(mnt)?;
                let cannot = src & opts.ms_clear & MS_LOCKABLE;
                if cannot != 0 {
                    return Err(Error::os(
                        format!("cannot clear locked flags {} (the source's, in a user namespace)", ms_names(cannot)),
                        libc::EPERM,
                    ));
                }
                let asked_atime = opts.ms_set & MS_ATIME;
                if asked_atime != 0 && asked_atime != src & MS_ATIME {
                    return Err(Error::os(
                        format!(
                            "cannot change locked atime flags {} (the source's, in a user namespace)",
                            ms_names(src & MS_ATIME)
                        ),
                        libc::EPERM,
                    ));
                }
                let keep = attrs_of_ms(src & MS_LOCKABLE & !MS_ATIME);
                let retry = Attrs { set: want.set | keep, clear: want.clear & !keep };
                setattr(mnt, false, retry, 0).map_err(|e| {
                    Error::os(
                        format!("remount with locked flags {} re-applied", ms_names(src & MS_LOCKABLE)),
                        e.raw_os_error(),
                    )
                })?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !opts.rec_attrs.is_empty() {
        setattr(mnt, true, opts.rec_attrs, 0)?;
    }
    Ok(())
}

/// `mount --bind -o ...`'s remount: what was asked for, and every other per-mount flag cleared;
/// the atime family is left alone unless one of it was asked for (then it is exactly that,
/// relatime unless noatime or strictatime, as the kernel's MS_REMOUNT takes it).
fn remount_attrs(asked: &Attrs) -> Attrs {
    use super::mount_options::{ATTR_NODEV, ATTR_NOEXEC, ATTR_NOSUID, ATTR_NOSYMFOLLOW};
    let plain = ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC | ATTR_NOSYMFOLLOW;
    let mut out = Attrs { set: asked.set & plain, clear: plain & !asked.set };
    let atime_asked = asked.clear & ATTR_ATIME_MASK != 0 || (asked.set | asked.clear) & ATTR_NODIRATIME != 0;
    if atime_asked {
        out.set |= asked.set & (ATTR_ATIME_MASK | ATTR_NODIRATIME);
        out.clear |= ATTR_ATIME_MASK | (ATTR_NODIRATIME & !asked.set);
    }
    out
}

/// The mount's per-mount flags as mount(2) flags, from statvfs (runc's statfsToMountFlags): an
/// atime that is neither noatime nor relatime is strictatime.
fn ms_flags_of(mnt: BorrowedFd<'_>) -> Result<u64> {
    let st = rustix::fs::fstatvfs(mnt).map_err(|e| Error::os("statfs the bind source", e.raw_os_error()))?;
    let f = st.f_flag.bits();
    #[allow(clippy::unnecessary_cast)]
    let table: [(u64, u64); 7] = [
        (libc::ST_RDONLY as u64, libc::MS_RDONLY as u64),
        (libc::ST_NOSUID as u64, libc::MS_NOSUID as u64),
        (libc::ST_NODEV as u64, libc::MS_NODEV as u64),
        (libc::ST_NOEXEC as u64, libc::MS_NOEXEC as u64),
        (libc::ST_NOATIME as u64, libc::MS_NOATIME as u64),
        (libc::ST_NODIRATIME as u64, libc::MS_NODIRATIME as u64),
        (libc::ST_RELATIME as u64, libc::MS_RELATIME as u64),
    ];
    let mut ms = table.iter().filter(|(st, _)| f & st == *st).fold(0, |acc, (_, ms)| acc | ms);
    #[allow(clippy::unnecessary_cast)]
    if ms & (libc::MS_NOATIME | libc::MS_RELATIME) as u64 == 0 {
        ms |= libc::MS_STRICTATIME as u64;
    }
    Ok(ms)
}

/// mount(2) per-mount flags (no atime) as mount_setattr attributes.
#[allow(clippy::unnecessary_cast)]
fn attrs_of_ms(ms: u64) -> u64 {
    use super::mount_options::{ATTR_NODEV, ATTR_NOEXEC, ATTR_NOSUID};
    [
        (libc::MS_RDONLY as u64, ATTR_RDONLY),
        (libc::MS_NOSUID as u64, ATTR_NOSUID),
        (libc::MS_NODEV as u64, ATTR_NODEV),
        (libc::MS_NOEXEC as u64, ATTR_NOEXEC),
    ]
    .iter()
    .filter(|(m, _)| ms & m != 0)
    .fold(0, |acc, (_, a)| acc | a)
}

/// The option names of mount(2) flags, for errors ("nosuid|nodev").
#[allow(clippy::unnecessary_cast)]
fn ms_names(ms: u64) -> String {
    let names = [
        (libc::MS_RDONLY as u64, "ro"),
        (libc::MS_NOSUID as u64, "nosuid"),
        (libc::MS_NODEV as u64, "nodev"),
        (libc::MS_NOEXEC as u64, "noexec"),
        (libc::MS_NOATIME as u64, "noatime"),
        (libc::MS_RELATIME as u64, "relatime"),
        (libc::MS_STRICTATIME as u64, "strictatime"),
        (libc::MS_NODIRATIME as u64, "nodiratime"),
    ];
    names.iter().filter(|(m, _)| ms & m != 0).map(|(_, n)| *n).collect::<Vec<_>>().join("|")
}

/// Propagation once attached: a detached mount has no peers to speak of.
pub fn propagate(mnt: BorrowedFd<'_>, opts: &MountOptions) -> Result<()> {
    for &(prop, recursive) in &opts.propagation {
        setattr(mnt, recursive, Attrs::default(), prop)?;
    }
    Ok(())
}

pub fn mkdir(root: BorrowedFd<'_>, dest: &Path) -> Result<OwnedFd> {
    mkdir_made(root, dest).map(|(fd, _)| fd)
}

fn mkdir_made(root: BorrowedFd<'_>, dest: &Path) -> Result<(OwnedFd, bool)> {
    safe_path::mkdir_all_made(root, dest, 0o755)
        .map_err(|e| Error::os(format!("mkdir {}", dest.display()), e.raw_os_error()))
}
