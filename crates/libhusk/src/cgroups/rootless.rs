//! cgroups for rootless husk: going on without any where the user may not make them (as runc
//! does), and the clear error of the commands that need one.

use std::path::Path;

use oci_spec::runtime::LinuxResources;
use rustix::fs::{Access, AtFlags, CWD};

use super::{resources, Cgroup};
use crate::error::{Error, Result};

/// Did making cgroups fail for want of permission (an unprivileged user without delegation)?
pub fn is_permission_error(e: &Error) -> bool {
    matches!(e.errno(), Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS))
}

impl Cgroup {
    /// Rootless husk that may not make cgroups here (cgroup v1, or v2 without delegation) goes on
    /// without one, as runc does, unless the config asks for a limit only a cgroup can enforce.
    /// Device rules need no cgroup then: a user namespace cannot create device nodes, and husk
    /// binds the configured ones from the host.
    pub fn rootless_none(res: Option<&LinuxResources>, why: &Error) -> Result<Cgroup> {
        if let Some(r) = res {
            let field = resources::wanted(r).first().map(|w| w.field().to_owned()).or_else(|| {
                r.unified().as_ref().filter(|u| !u.is_empty()).map(|_| "linux.resources.unified".to_owned())
            });
            if let Some(field) = field {
                return Err(Error::field(
                    field,
                    format!("cannot be applied: rootless husk could not create the container's cgroup ({why})"),
                ));
            }
            if r.devices().as_ref().is_some_and(|d| !d.is_empty()) {
                tracing::debug!(
                    "rootless: linux.resources.devices not applied (no cgroup; devices are bound from the host)"
                );
            }
        }
        tracing::debug!(
            "rootless: no cgroup for the container ({why}); continuing without one: pause, resume, update, ps, \
             events and resource limits need cgroup delegation (cgroup v2 with --systemd-cgroup)"
        );
        Ok(Cgroup::default())
    }

    /// Rootless: why the caller may not make (or join) the container's cgroup, asked of the
    /// filesystem before anything is recorded or made, so that a host without delegation (v1)
    /// costs no plan, no failed mkdir and no second state save. None: go ahead and try.
    pub fn refused_to_caller(cgroups_path: Option<&Path>, id: &str) -> Result<Option<Error>> {
        let hierarchies = super::host_hierarchies()?;
        let Ok(cg) = Self::placements_in(&hierarchies, cgroups_path, id) else { return Ok(None) };
        for p in &cg.placements {
            // An existing cgroup is joined through its cgroup.procs; a new one is made in its
            // nearest existing ancestor.
            let (what, path, access) = if p.dir.exists() {
                ("write", p.dir.join("cgroup.procs"), Access::WRITE_OK)
            } else {
                let mut dir = p.dir.as_path();
                while let Some(parent) = dir.parent().filter(|_| !dir.exists()) {
                    dir = parent;
                }
                ("mkdir", dir.to_path_buf(), Access::WRITE_OK | Access::EXEC_OK)
            };
            if let Err(e) = rustix::fs::accessat(CWD, &path, access, AtFlags::EACCESS) {
                let shown = if what == "mkdir" { p.dir.display() } else { path.display() };
                return Ok(Some(Error::os(format!("{what} {shown}"), e.raw_os_error())));
            }
        }
        Ok(None)
    }

    /// Commands that need the container's cgroup fail with this when it has none.
    pub fn require(&self, command: &str) -> Result<()> {
        if self.placements.is_empty() && self.systemd.is_none() {
            return Err(Error::msg(format!(
                "{command}: the container has no cgroup: husk ran it rootless without cgroup delegation \
                 (use cgroup v2 with --systemd-cgroup for {command})"
            )));
        }
        Ok(())
    }
}

impl Cgroup {
    /// Where the calling process is, in every hierarchy a container would be placed in (nothing
    /// is created): what a container without a cgroup of its own sees at a `cgroup` mount.
    pub fn current() -> Result<Cgroup> {
        let hierarchies = super::host_hierarchies()?;
        let own = super::mountinfo::read_proc_cgroup()?;
        let mut cg = Cgroup { mode: Some(super::Mode::of(&hierarchies)), ..Cgroup::default() };
        for h in super::usable(&hierarchies) {
            let rel = super::mountinfo::own_relative(h, &own)?;
            cg.placements.push(super::Placement {
                mount: h.mount.clone(),
                controllers: h.controllers.clone(),
                v2: h.v2,
                dir: h.mount.join(rel),
                created: Vec::new(),
            });
        }
        Ok(cg)
    }
}
