//! The container's root filesystem: mounts, /dev, pivot_root, masked and read-only paths.
//!
//! Everything here runs in the container's init, single-threaded, inside its new mount namespace.
//! The rootfs is the fd `create` opened once (config.rs); paths inside it are resolved by fd
//! (RESOLVE_IN_ROOT) and mounts are made with the new mount API onto and from fds, so no symlink
//! or rename in the image or the bundle path can redirect them.

mod cgroupfs;
mod copyup;
pub mod criu_root;
mod devices;
pub mod idmap;
mod masked;
mod mount_api;
pub mod mount_options;
mod mounts;
mod no_pivot;
mod pivot;
pub(crate) mod procfs;
pub mod safe_path;
mod sysctl;

#[cfg(test)]
mod harness;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::Spec;

use crate::cgroups::Cgroup;
use crate::error::{Error, Result};

/// What rootfs setup needs to know; runs in the container's init, inside its new mount namespace.
pub struct RootfsContext<'a> {
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    /// The rootfs path, for messages and the --no-pivot mount table walk.
    pub rootfs: &'a Path,
    /// The rootfs as `create` opened it: the only handle the init uses.
    pub rootfs_fd: BorrowedFd<'a>,
    pub no_pivot: bool,
    /// The container has a mount namespace of its own (new or joined). Without one it shares the
    /// host's: no mount is made at all, and the init only chroots into the rootfs.
    pub own_mount_ns: bool,
    /// In a new user namespace: devices are bind-mounted from the host instead of mknod'ed.
    pub in_userns: bool,
    /// In a new cgroup namespace: `cgroup` mounts mount cgroupfs instead of binding our cgroup.
    pub in_cgroupns: bool,
    pub cgroup: &'a Cgroup,
    /// The container's user namespace, for `idmap` mounts without mappings.
    pub userns: idmap::Userns<'a>,
    /// Idmapped bind trees husk made before the clone (as root), by `mounts` index.
    pub idmapped: &'a [(usize, std::os::fd::OwnedFd)],
    /// Asks husk (as root, outside the container's user namespace) for a bind source the init
    /// cannot reach itself; None when there is no one to ask (rootless husk).
    pub source_broker: Option<&'a dyn Fn(usize) -> Result<OwnedFd>>,
}

/// What `prepare` made, for `pivot` and `finalize`.
pub struct Prepared {
    /// The root of the container's rootfs mount (the rootfs fd itself without a mount namespace).
    root: OwnedFd,
    /// tmpfs mounts and /dev asked to be read-only: made writable, so that what goes inside them
    /// (devices, mount points, copies) can be made, and made read-only in `finalize`, as runc
    /// does. (mount fd, recursively)
    read_only_later: Vec<(OwnedFd, bool)>,
}

/// Before pivot_root: propagation, the rootfs bind, `mounts`, /dev and `linux.devices`.
///
/// `bundle` and `rootfs` must be absolute (the cwd is not ours to rely on).
pub fn prepare(ctx: &RootfsContext) -> Result<Prepared> {
    if !ctx.own_mount_ns {
        // Everything below would change the host's mount table (runc makes these mounts there);
        // `check_without_mount_ns` refused what needs them before anything existed.
        let root = rustix::io::dup(ctx.rootfs_fd).map_err(|e| Error::os("root.path", e.raw_os_error()))?;
        return Ok(Prepared { root, read_only_later: Vec::new() });
    }
    let linux = ctx.spec.linux().as_ref();
    let (prop, recursive) = mount_options::rootfs_propagation(linux.and_then(|l| l.rootfs_propagation().as_deref()))?;
    let slash = pivot::open_slash()?;
    mount_api::setattr(slash.as_fd(), recursive, mount_options::Attrs::default(), prop)
        .map_err(|e| Error::os("linux.rootfsPropagation: set the propagation of /", e.raw_os_error()))?;
    drop(slash);
    let rootfs = pivot::reopen_in_namespace(ctx.rootfs_fd, ctx.rootfs)?;
    let root = pivot::bind_rootfs(rootfs.as_fd(), ctx.rootfs, prop, recursive)?;
    let mut read_only_later = Vec::new();
    mounts::mount_all(ctx, root.as_fd(), &mut read_only_later)?;
    devices::setup(ctx, root.as_fd())?;
    Ok(Prepared { root, read_only_later })
}

/// Without a mount namespace of its own a container may ask for nothing that husk would have to
/// mount, since that would be mounted in the host's namespace and outlive the container (runc
/// mounts them there). Checked by `create` before anything exists.
pub fn check_without_mount_ns(spec: &Spec) -> Result<()> {
    let why = "needs a mount namespace: without one it would be made in the host's mount namespace \
               (add {\"type\": \"mount\"} to linux.namespaces)";
    if spec.mounts().as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(Error::field("mounts", why));
    }
    let linux = spec.linux().as_ref();
    if linux.and_then(|l| l.masked_paths().as_ref()).is_some_and(|m| !m.is_empty()) {
        return Err(Error::field("linux.maskedPaths", why));
    }
    if linux.and_then(|l| l.readonly_paths().as_ref()).is_some_and(|m| !m.is_empty()) {
        return Err(Error::field("linux.readonlyPaths", why));
    }
    if linux.and_then(|l| l.rootfs_propagation().as_ref()).is_some_and(|p| !p.is_empty()) {
        return Err(Error::field("linux.rootfsPropagation", why));
    }
    if linux.and_then(|l| l.devices().as_ref()).is_some_and(|d| !d.is_empty()) {
        return Err(Error::field("linux.devices", why));
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        return Err(Error::field("root.readonly", why));
    }
    Ok(())
}

/// Whether `m` is a bind mount (by type or by a `bind`/`rbind` option), as husk mounts it.
pub fn is_bind_mount(m: &oci_spec::runtime::Mount) -> bool {
    mount_options::parse(m.options().as_deref().unwrap_or(&[])).is_ok_and(|o| mounts::is_bind(m, &o))
}

/// Refuse every `linux.sysctl` key the container's namespaces do not scope (it would be the
/// host's): before anything of the container exists.
pub fn check_sysctls(spec: &Spec, plan: &crate::namespaces::NsPlan) -> Result<()> {
    match spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        Some(sysctl) => sysctl::check(sysctl, plan),
        None => Ok(()),
    }
}

/// Write `linux.sysctl` through a private, checked procfs handle.
pub fn apply_sysctls(ctx: &RootfsContext) -> Result<()> {
    match ctx.spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        Some(sysctl) => sysctl::apply(sysctl),
        None => Ok(()),
    }
}

/// pivot_root into the rootfs (or chroot with --no-pivot, or without a mount namespace);
/// afterwards the cwd is `/`.
pub fn pivot(ctx: &RootfsContext, prepared: &Prepared) -> Result<()> {
    if !ctx.own_mount_ns {
        return pivot::chroot(prepared.root.as_fd());
    }
    if ctx.no_pivot {
        no_pivot::hide_host_pseudo_filesystems(prepared.root.as_fd(), crate::lsm::mount_label(ctx.spec))?;
        pivot::move_root(prepared.root.as_fd())?;
    } else {
        pivot::pivot_root(prepared.root.as_fd())?;
    }
    Ok(())
}

/// `--no-pivot` keeps the host's mounts under the container's root: with a private root they
/// would no longer see the host unmount them, and hold them busy (runc refuses it too).
pub fn check_no_pivot(spec: &Spec) -> Result<()> {
    let prop = spec.linux().as_ref().and_then(|l| l.rootfs_propagation().as_deref());
    if mount_options::rootfs_propagation(prop)?.0 == mount_options::PROP_PRIVATE {
        return Err(Error::field("linux.rootfsPropagation", "[r]private is not safe without pivot_root (--no-pivot)"));
    }
    Ok(())
}

/// After pivot: the delayed read-only mounts, maskedPaths, readonlyPaths, and the read-only root.
pub fn finalize(ctx: &RootfsContext, prepared: Prepared) -> Result<()> {
    for (mnt, recursive) in &prepared.read_only_later {
        mounts::make_read_only(mnt.as_fd(), *recursive)?;
    }
    let linux = ctx.spec.linux().as_ref();
    let masked = linux.and_then(|l| l.masked_paths().as_deref()).unwrap_or(&[]);
    let readonly = linux.and_then(|l| l.readonly_paths().as_deref()).unwrap_or(&[]);
    let readonly_root = ctx.spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false);
    if !masked.is_empty() || !readonly.is_empty() || readonly_root {
        let root = pivot::open_slash()?;
        masked::mask(root.as_fd(), masked, crate::lsm::mount_label(ctx.spec))?;
        masked::read_only(root.as_fd(), readonly)?;
        if readonly_root {
            masked::read_only_root(root.as_fd())?;
        }
    }
    if !ctx.own_mount_ns {
        return Ok(());
    }
    // shared and unbindable apply to the container's `/` once it is one, as runc applies them;
    // last (runc: right after pivot_root), since an unbindable mount cannot be bound from, as
    // the console and the masks are. slave and private were set on the mount the rootfs was
    // bound from, which the bind inherited.
    let (prop, recursive) = mount_options::rootfs_propagation(linux.and_then(|l| l.rootfs_propagation().as_deref()))?;
    if prop == mount_options::PROP_SHARED || prop == mount_options::PROP_UNBINDABLE {
        mount_api::setattr(prepared.root.as_fd(), recursive, mount_options::Attrs::default(), prop).map_err(|e| {
            Error::os("linux.rootfsPropagation: set the propagation of the container's /", e.raw_os_error())
        })?;
    }
    Ok(())
}
