//! The container's root filesystem: mounts, /dev, pivot_root, masked and read-only paths.

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
}

/// Before pivot_root: propagation, the rootfs bind, `mounts`, /dev and `linux.devices`.
pub fn prepare(_ctx: &RootfsContext) -> Result<()> {
    Err(Error::msg("rootfs: not implemented"))
}

/// Write `linux.sysctl` through a private, checked procfs handle.
pub fn apply_sysctls(_ctx: &RootfsContext) -> Result<()> {
    Ok(())
}

/// pivot_root into the rootfs (or chroot with --no-pivot); afterwards the cwd is `/`.
pub fn pivot(_ctx: &RootfsContext) -> Result<()> {
    Err(Error::msg("rootfs: not implemented"))
}

/// After pivot: maskedPaths, readonlyPaths, and the read-only root.
pub fn finalize(_ctx: &RootfsContext) -> Result<()> {
    Ok(())
}
