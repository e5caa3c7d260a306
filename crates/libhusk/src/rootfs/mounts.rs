//! The config's `mounts`, in order, each onto a destination resolved inside the rootfs by fd.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::Mount;
use rustix::fs::FileType;

use super::mount_api::{attach, clone_path, new_fs, setattr};
use super::mount_options::{self, Attrs, Data, MountOptions};
use super::{cgroupfs, copyup, idmap, safe_path, RootfsContext};
use crate::error::{Error, Result};

pub fn mount_all(ctx: &RootfsContext, root: BorrowedFd<'_>) -> Result<()> {
    for (i, m) in ctx.spec.mounts().iter().flatten().enumerate() {
        let field = format!("mounts[{i}]");
        // Errors that name a field of the mount already (`mounts[3].uidMappings`) keep it alone.
        mount_one(ctx, root, i, m).map_err(|e| if e.message().starts_with(&field) { e } else { e.context(field) })?;
    }
    Ok(())
}

/// Whether `m` is a bind mount: by type, or by a `bind`/`rbind` option (type is optional).
pub fn is_bind(m: &Mount, opts: &MountOptions) -> bool {
    opts.bind || matches!(m.typ().as_deref(), Some("bind") | Some("rbind"))
}

fn mount_one(ctx: &RootfsContext, root: BorrowedFd<'_>, i: usize, m: &Mount) -> Result<()> {
    let dest = m.destination();
    let opts = mount_options::parse(m.options().as_deref().unwrap_or(&[]))
        .map_err(|e| e.context(format!("options of {}", dest.display())))?;
    if is_bind(m, &opts) {
        return bind(ctx, root, i, m, &opts);
    }
    idmap::request(i, m, &opts, None, false)?;
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
    let fresh = opts.attrs.on_fresh_mount(&opts.rec_attrs);
    let mut data = opts.data.clone();
    let target = mkdir(root, dest)?;
    if opts.copy_up && !data.iter().any(|d| matches!(d, Data::Value(k, _) if k == "mode")) {
        // A copy of the directory has its mode too (as in runc); an explicit mode= still wins.
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
    propagate(mnt.as_fd(), &opts).map_err(|e| e.context(what()))
}

fn bind(ctx: &RootfsContext, root: BorrowedFd<'_>, i: usize, m: &Mount, opts: &MountOptions) -> Result<()> {
    let dest = m.destination();
    let source =
        m.source().as_ref().ok_or_else(|| Error::msg(format!("{}: bind source is missing", dest.display())))?;
    let source = if source.is_absolute() { source.clone() } else { ctx.bundle.join(source) };
    let what = || format!("bind {} on {}", source.display(), dest.display());
    if let Some((_, tree)) = ctx.idmapped.iter().find(|(n, _)| *n == i) {
        // Made and idmapped by husk as root before the clone: only attaching is left.
        return attach_tree(root, dest, tree.as_fd(), opts).map_err(|e| e.context(what()));
    }
    let linux = ctx.spec.linux().as_ref();
    let new_user = ctx.in_userns && linux.is_some_and(|l| l.uid_mappings().as_ref().is_some_and(|m| !m.is_empty()));
    let idmap = idmap::request(i, m, opts, linux, new_user)?;
    let tree = clone_path(&source, opts.recursive_bind).map_err(|e| Error::from(e).context(what()))?;
    if let Some(req) = &idmap {
        idmap::apply_in_container(i, tree.as_fd(), req, &source)?;
    }
    set_attrs(tree.as_fd(), opts).map_err(|e| e.context(what()))?;
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

/// Propagation once attached: a detached mount has no peers to speak of.
pub fn propagate(mnt: BorrowedFd<'_>, opts: &MountOptions) -> Result<()> {
    for &(prop, recursive) in &opts.propagation {
        setattr(mnt, recursive, Attrs::default(), prop)?;
    }
    Ok(())
}

pub fn mkdir(root: BorrowedFd<'_>, dest: &Path) -> Result<OwnedFd> {
    safe_path::mkdir_all(root, dest, 0o755)
        .map_err(|e| Error::os(format!("mkdir {}", dest.display()), e.raw_os_error()))
}
