//! cgroup placement: where a container's processes live on v1, v2 and hybrid hosts.
//! (Owned by the cgroups work; see the interface below.)

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A mounted cgroup hierarchy on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where it is mounted, e.g. `/sys/fs/cgroup/memory` or `/sys/fs/cgroup`.
    pub mount: PathBuf,
    /// The path of the mount's root within the hierarchy (mountinfo field 4), usually `/`.
    pub root: PathBuf,
    /// v1 controllers bound to it (`name=systemd` included); empty for cgroup2.
    pub controllers: Vec<String>,
    pub v2: bool,
}

/// Where one container was placed: one entry per hierarchy. Saved in the container's state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cgroup {
    pub placements: Vec<Placement>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Placement {
    pub mount: PathBuf,
    pub controllers: Vec<String>,
    pub v2: bool,
    /// The container's cgroup directory (absolute host path).
    pub dir: PathBuf,
    /// Directories husk created, outermost first: exactly these are removed on delete.
    pub created: Vec<PathBuf>,
}

impl Cgroup {
    pub fn create(
        _cgroups_path: Option<&std::path::Path>,
        _id: &str,
        _resources: Option<&LinuxResources>,
    ) -> Result<Cgroup> {
        Err(Error::msg("cgroups: not implemented"))
    }
    pub fn v2_dir_fd(&self) -> Result<Option<OwnedFd>> {
        Ok(None)
    }
    pub fn add_process(&self, _pid: i32, _skip_v2: bool) -> Result<()> {
        Ok(())
    }
    pub fn pids(&self) -> Result<Vec<i32>> {
        Ok(Vec::new())
    }
    pub fn destroy(&self) -> Result<()> {
        Ok(())
    }
}

pub fn host_hierarchies() -> Result<Vec<Hierarchy>> {
    Ok(Vec::new())
}
