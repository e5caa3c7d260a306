//! The container's root filesystem: mounts, /dev, pivot_root, masked and read-only paths.
//!
//! Everything here runs in the container's init, single-threaded, inside its new mount namespace.
//! Paths inside the rootfs are resolved by fd (RESOLVE_IN_ROOT) and mounts are made with the new
//! mount API onto and from fds, so no symlink or rename in the image can redirect them.

mod cgroupfs;
mod copyup;
pub mod criu_root;
mod devices;
pub mod idmap;
mod masked;
mod mount_api;
pub mod mount_options;
mod mounts;
mod pivot;
pub(crate) mod procfs;
pub mod safe_path;
mod sysctl;

#[cfg(test)]
mod harness;

use std::os::fd::AsFd;
use std::path::Path;

use oci_spec::runtime::Spec;

use crate::cgroups::Cgroup;
use crate::error::{Error, Result};

/// What rootfs setup needs to know; runs in the container's init, inside its new mount namespace.
pub struct RootfsContext<'a> {
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub no_pivot: bool,
    /// In a new user namespace: devices are bind-mounted from the host instead of mknod'ed.
    pub in_userns: bool,
    /// In a new cgroup namespace: `cgroup` mounts mount cgroupfs instead of binding our cgroup.
    pub in_cgroupns: bool,
    pub cgroup: &'a Cgroup,
    /// Idmapped bind trees husk made before the clone (as root), by `mounts` index.
    pub idmapped: &'a [(usize, std::os::fd::OwnedFd)],
}

/// Before pivot_root: propagation, the rootfs bind, `mounts`, /dev and `linux.devices`.
///
/// `bundle` and `rootfs` must be absolute (the cwd is not ours to rely on).
pub fn prepare(ctx: &RootfsContext) -> Result<()> {
    let linux = ctx.spec.linux().as_ref();
    let (prop, recursive) = mount_options::rootfs_propagation(linux.and_then(|l| l.rootfs_propagation().as_deref()))?;
    let slash = pivot::open_slash()?;
    mount_api::setattr(slash.as_fd(), recursive, mount_options::Attrs::default(), prop)
        .map_err(|e| Error::os("linux.rootfsPropagation: set the propagation of /", e.raw_os_error()))?;
    drop(slash);
    // After a recursive slave/private/unbindable nothing below / is shared: no need to check.
    let parent_private = !recursive || prop == mount_options::PROP_SHARED;
    let root = pivot::bind_rootfs(ctx.rootfs, parent_private)?;
    mounts::mount_all(ctx, root.as_fd())?;
    devices::setup(ctx, root.as_fd())
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

/// pivot_root into the rootfs (or chroot with --no-pivot); afterwards the cwd is `/`.
pub fn pivot(ctx: &RootfsContext) -> Result<()> {
    if ctx.no_pivot {
        pivot::move_root(ctx.rootfs)
    } else {
        pivot::pivot_root(ctx.rootfs)
    }
}

/// After pivot: maskedPaths, readonlyPaths, and the read-only root.
pub fn finalize(ctx: &RootfsContext) -> Result<()> {
    let linux = ctx.spec.linux().as_ref();
    let masked = linux.and_then(|l| l.masked_paths().as_deref()).unwrap_or(&[]);
    let readonly = linux.and_then(|l| l.readonly_paths().as_deref()).unwrap_or(&[]);
    let readonly_root = ctx.spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false);
    if masked.is_empty() && readonly.is_empty() && !readonly_root {
        return Ok(());
    }
    let root = pivot::open_slash()?;
    masked::mask(root.as_fd(), masked, crate::lsm::mount_label(ctx.spec))?;
    masked::read_only(root.as_fd(), readonly)?;
    if readonly_root {
        masked::read_only_root(root.as_fd())?;
    }
    Ok(())
}
