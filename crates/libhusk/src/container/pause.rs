//! `pause` and `resume`: freeze and thaw every process of the container (cgroup freezer).

use std::path::Path;

use crate::error::{Error, Result};
use crate::state::{StateDir, Status};

pub fn pause(root: &Path, id: &str) -> Result<()> {
    let dir = StateDir::open(root, id)?;
    dir.lock()?;
    let state = dir.load()?;
    match state.status(&dir) {
        Status::Running | Status::Created => state.cgroup.freeze(),
        Status::Paused => Err(Error::msg("container already paused")),
        _ => Err(Error::msg("container not running")),
    }
}

pub fn resume(root: &Path, id: &str) -> Result<()> {
    let dir = StateDir::open(root, id)?;
    dir.lock()?;
    let state = dir.load()?;
    match state.status(&dir) {
        Status::Paused => state.cgroup.thaw(),
        _ => Err(Error::msg("container not paused")),
    }
}
