//! `start`: tell a created init to exec the user program, and report whether it could.

use std::io::{Read, Write};
use std::path::Path;

use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::state::{StateDir, Status, START_SOCKET};

pub fn start(root: &Path, id: &str) -> Result<()> {
    let dir = StateDir::open(root, id)?;
    dir.lock()?;
    crate::crashpoint::here("start:locked");
    let state = dir.load()?;
    match state.status(&dir) {
        Status::Created => {}
        Status::Stopped => return Err(Error::msg("cannot start a container that has stopped")),
        Status::Running => {
            // A start killed after the init took its signal leaves the socket: it is stale.
            dir.remove_file(START_SOCKET);
            return Err(Error::msg("cannot start an already running container"));
        }
        other => return Err(Error::msg(format!("cannot start a container in the {} state", other.as_str()))),
    }
    let mut conn = std::fs::File::from(super::create::connect_start(&dir)?);
    crate::crashpoint::here("start:connected");
    conn.write_all(b"S").ctx(|| "signal container init to start")?;
    crate::crashpoint::here("start:signalled");
    // From here the container counts as running: the socket's absence is what says so.
    dir.remove_file(START_SOCKET);
    let mut reply = String::new();
    let _ = conn.read_to_string(&mut reply);
    if !reply.is_empty() {
        return Err(Error::msg(reply));
    }
    if let Some(h) = state.hooks.as_ref().and_then(|h| h.poststart().as_ref()) {
        let json = serde_json::to_vec(&state.oci_with(Status::Running)).unwrap_or_default();
        hooks::run_warning("poststart", h, &json);
    }
    crate::crashpoint::here("start:done");
    Ok(())
}
