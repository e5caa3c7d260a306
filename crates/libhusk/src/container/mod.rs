//! The lifecycle commands: create, start, state, list, kill, delete, run, checkpoint, restore;
//! the cgroup ones: update, pause, resume, ps, events; exec.

mod checkpoint;
mod create;
mod delete;
mod events;
mod exec;
mod kill;
mod pause;
mod restore;
mod start;
mod update;

pub use checkpoint::{checkpoint, parse_cg_mode, parse_empty_ns, CheckpointOptions};
pub use create::{create, CreateOptions, Created};
pub use delete::delete;
pub use events::events;
pub use exec::{exec, parse_process_json, parse_user, send_pidfd, Exec, ExecOptions, ProcessFlags, ProcessSpec};
pub use kill::{kill, parse_signal};
pub use pause::{pause, resume};
pub use restore::{restore, RestoreOptions, Restored};
pub use start::{start, start_foreground};
pub use update::{parse_resources, update, RdtUpdate};

use std::path::Path;

use crate::error::Result;
use crate::state::{OciState, StateDir, Summary};

/// `state ID`: the OCI state with runc's extras.
pub fn state(root: &Path, id: &str) -> Result<String> {
    let dir = StateDir::open(root, id)?;
    let summary = dir.load_summary()?;
    let oci = summary.oci_with(summary.status(|| dir.has(crate::state::START_SOCKET)));
    Ok(serde_json::to_string_pretty(&oci).unwrap_or_default())
}

/// `ps`: the pids of every process in the container's cgroup.
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>> {
    let dir = StateDir::open(root, id)?;
    let state = dir.load()?;
    state.cgroup.require("ps")?;
    state.cgroup.pids()
}

/// Every container under `root` with its live status; unreadable ones are skipped like runc. A
/// missing root is an error only when `root_given` (the caller named it, as runc).
pub fn list(root: &Path, root_given: bool) -> Result<Vec<(Summary, crate::state::Status)>> {
    crate::state::list(root, root_given)
}

/// The containers as `list -f json` prints them: runc's one-line array, its keys in runc's order
/// (a `Value` would sort them); `null` when there are none, as Go encodes an empty list.
pub fn list_json(containers: &[(Summary, crate::state::Status)]) -> String {
    if containers.is_empty() {
        return "null".to_string();
    }
    let all: Vec<OciState> = containers.iter().map(|(s, st)| s.oci_with(*st)).collect();
    serde_json::to_string(&all).unwrap_or_default()
}
