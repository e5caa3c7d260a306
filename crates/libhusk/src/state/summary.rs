//! What `state` and `list` read of a container: the fields they print and what the live status
//! needs. The rest of `state.json` (the container's process and hooks, which exec, start and
//! delete use, the seccomp record) is skipped unparsed, and the cgroup placements are parsed only
//! when a live init makes the freezer worth asking: `list` reads one of these per container
//! (measured: 40 µs a container with the whole state, most of it building the process and hooks
//! it never looks at).

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{live_status, read_state_or_plan, validate_id, OciState, ProcessId, Status, START_SOCKET};
use crate::cgroups::Cgroup;
use crate::error::{Error, Result};

/// The part of [`super::State`] that `state` and `list` print (same field names, so any
/// `state.json` is one).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub oci_version: String,
    pub id: String,
    status: Status,
    pub init: ProcessId,
    creator: ProcessId,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    cgroup: Option<Box<RawValue>>,
}

impl Summary {
    /// The live status (as [`super::State::status`]); `start_socket` says whether the start
    /// socket is still there.
    pub fn status(&self, start_socket: impl FnOnce() -> bool) -> Status {
        let frozen = || {
            self.cgroup
                .as_ref()
                .and_then(|raw| serde_json::from_str::<Cgroup>(raw.get()).ok())
                .is_some_and(|cg| cg.is_frozen())
        };
        live_status(self.status, &self.creator, &self.init, frozen, start_socket)
    }

    pub fn oci_with(&self, status: Status) -> OciState<'_> {
        let pid = if status == Status::Stopped { 0 } else { self.init.pid };
        OciState {
            oci_version: &self.oci_version,
            id: &self.id,
            pid,
            status: status.as_str(),
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            owner: &self.owner,
            annotations: &self.annotations,
        }
    }
}

/// A state file's content as a summary (fuzzed with `parse_state`).
pub fn parse_summary(data: &[u8]) -> Result<Summary> {
    serde_json::from_slice(data).map_err(|e| Error::msg(format!("corrupt state: {e}")))
}

/// Every container under `root` with its live status, by id; unreadable ones are skipped like
/// runc. Read through one fd of the root: no open of each container's directory. `must_exist`:
/// see `list_ids`.
pub fn list(root: &Path, must_exist: bool) -> Result<Vec<(Summary, Status)>> {
    let ids = super::list_ids(root, must_exist)?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let fd: OwnedFd = match rustix::fs::open(root, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
    {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(Vec::new()),
        Err(e) => return Err(Error::from(e).context(format!("open {}", root.display()))),
    };
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if validate_id(&id).is_err() {
            continue;
        }
        let Ok((_, data)) = read_state_or_plan(&fd, root, &format!("{id}/")) else { continue };
        let Ok(summary) = parse_summary(&data) else { continue };
        let socket = format!("{id}/{START_SOCKET}");
        let status = summary.status(|| rustix::fs::statat(&fd, socket.as_str(), AtFlags::SYMLINK_NOFOLLOW).is_ok());
        out.push((summary, status));
    }
    Ok(out)
}
