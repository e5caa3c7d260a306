//! `start`: tell a created init to exec the user program, and report whether it could; with
//! NOTIFY_SOCKET, wait for the container's READY=1 (see notify.rs).

use std::io::{Read, Write};
use std::path::Path;

use rustix::process::{pidfd_open, Pid, PidfdFlags};

use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::notify::{self, NotifySocket};
use crate::process::exec;
use crate::state::{State, StateDir, Status, START_SOCKET};

pub fn start(root: &Path, id: &str) -> Result<()> {
    let (state, notify) = start_container(root, id)?;
    if let Some(n) = notify {
        let pid = Pid::from_raw(state.init.pid).ok_or_else(|| Error::msg("bad init pid"))?;
        // Gone already: nothing will report READY.
        if let Ok(pidfd) = pidfd_open(pid, PidfdFlags::empty()) {
            n.wait_ready(&pidfd, state.init.pid)?;
        }
    }
    Ok(())
}

/// A foreground `run`: start, and hand back the notify socket, which the caller serves while it
/// waits for the container.
pub fn start_foreground(root: &Path, id: &str) -> Result<Option<NotifySocket>> {
    start_container(root, id).map(|(_, n)| n)
}

fn start_container(root: &Path, id: &str) -> Result<(State, Option<NotifySocket>)> {
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
    // Bound before the container runs, so that its first READY=1 cannot be lost.
    let notify = notify::bind(&dir)?;
    let mut conn = std::fs::File::from(super::create::connect_start(&dir)?);
    crate::crashpoint::here("start:connected");
    conn.write_all(b"S").ctx(|| "signal container init to start")?;
    crate::crashpoint::here("start:signalled");
    // From here the container counts as running: the socket's absence is what says so.
    dir.remove_file(START_SOCKET);
    tracing::debug!("start {id}: init {} told to run its program", state.init.pid);
    let mut reply = Vec::new();
    let _ = conn.read_to_end(&mut reply);
    if !reply.is_empty() {
        return Err(start_error(&state, &reply));
    }
    tracing::debug!("start {id}: running");
    if let Some(h) = state.hooks.as_ref().and_then(|h| h.poststart().as_ref()) {
        let json = serde_json::to_vec(&state.oci_with(Status::Running)).unwrap_or_default();
        if let Err(e) = hooks::run("poststart", h, &json) {
            // runtime.md: generate an error and stop the container; runc main kills it and
            // waits for it. It stays, stopped, for `delete` (which runs the poststop hooks);
            // `run` deletes it at once.
            if let Err(k) = super::delete::kill_and_wait(&state) {
                tracing::warn!("kill after failed poststart: {k}");
            }
            return Err(e);
        }
    }
    crate::crashpoint::here("start:done");
    Ok((state, notify))
}

/// The init's reply: its own error text, or the exec trampoline's report (a failed execve or
/// seccomp filter).
fn start_error(state: &State, reply: &[u8]) -> Error {
    if let [crate::process::trampoline::SECCOMP_FAILED_TAG, a, b, c, d] = reply {
        return crate::seccomp::load_error(i32::from_le_bytes([*a, *b, *c, *d]));
    }
    match exec::decode_report(reply) {
        Some(errno) => {
            let arg0 =
                state.exec.as_ref().and_then(|e| e.process.args().as_ref()?.first().cloned()).unwrap_or_default();
            exec::exec_error(&std::ffi::CString::new(arg0).unwrap_or_default(), errno)
        }
        None => Error::msg(String::from_utf8_lossy(reply).into_owned()),
    }
}
