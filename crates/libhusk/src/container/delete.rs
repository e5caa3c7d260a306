//! `delete`: kill what is left (with --force, or a created container), wait for it without
//! polling, remove the cgroup and the state, run poststop hooks.

use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::event::{poll, PollFd, PollFlags};
use rustix::process::{pidfd_open, Pid, PidfdFlags, Signal};

use crate::error::{Error, Result};
use crate::hooks;
use crate::state::{State, StateDir, Status};

pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let dir = match StateDir::open(root, id) {
        Ok(d) => d,
        Err(e) if force && e.message().contains("does not exist") => return Ok(()),
        Err(e) => return Err(e),
    };
    dir.lock()?;
    crate::crashpoint::here("delete:locked");
    let state = match dir.load() {
        Ok(s) => s,
        // A create killed before its first save, or a delete killed after it removed the state:
        // nothing else was made. runc removes such a directory too, with or without --force.
        Err(e) if e.errno() == Some(libc::ENOENT) => {
            dir.remove_unclaimed().map_err(|e| e.context(format!("container does not exist: {id}")))?;
            return if force { Ok(()) } else { Err(Error::msg(format!("container does not exist: {id}"))) };
        }
        Err(e) if force => match dir.load_plan() {
            Ok(plan) => {
                tracing::warn!("{e}; cleaning up from what create planned");
                plan
            }
            Err(_) => {
                tracing::warn!("{e}; removing the state directory anyway");
                return dir.remove();
            }
        },
        Err(e) => return Err(e),
    };
    let status = state.status(&dir);
    match status {
        Status::Stopped | Status::Created => {}
        _ if force => {}
        other => {
            return Err(Error::msg(format!("cannot delete container {id} that is not stopped: {}", other.as_str())))
        }
    }
    tracing::debug!("delete {id}: {} container, removing what husk made", status.as_str());
    destroy(dir, &state, status)
}

/// Kill whatever is left of the container, remove its cgroup and state, run poststop hooks.
/// `dir` is locked by the caller; `status` is the container's as the caller last read it.
pub(crate) fn destroy(dir: StateDir, state: &State, status: Status) -> Result<()> {
    // A stopped container's cgroups are usually empty: then one rmdir each is all (no reading
    // of cgroup.procs, freezer.state or the tree below). Otherwise what is left in its own
    // cgroup after the init died (an init whose creator died before it was created, children
    // of a shared pid namespace) goes too, as runc does.
    if status == Status::Stopped && state.cgroup.remove_if_empty()? {
        // Nothing was left to kill.
        crate::crashpoint::here("delete:killed");
    } else {
        kill_and_wait(state)?;
        crate::crashpoint::here("delete:killed");
        state.cgroup.destroy()?;
    }
    crate::crashpoint::here("delete:cgroup-removed");
    if let Some(rdt) = &state.intel_rdt {
        crate::intel_rdt::remove(rdt);
    }
    let poststop = state.hooks.as_ref().and_then(|h| h.poststop().clone());
    let json = serde_json::to_vec(&state.oci_with(Status::Stopped)).unwrap_or_default();
    dir.remove()?;
    if let Some(h) = poststop {
        hooks::run_warning("poststop", &h, &json);
    }
    Ok(())
}

/// SIGKILL the init and everything in the container's cgroup, then wait until they are gone.
/// In a cgroup the container did not create (joined, maybe shared) only the processes that are
/// provably the container's (`kill::container_pids`).
pub(crate) fn kill_and_wait(state: &State) -> Result<()> {
    let mut fds: Vec<OwnedFd> = Vec::new();
    if state.init.is_alive() {
        if let Some(fd) = Pid::from_raw(state.init.pid).and_then(|p| pidfd_open(p, PidfdFlags::empty()).ok()) {
            if state.init.is_alive() {
                let _ = rustix::process::pidfd_send_signal(&fd, Signal::KILL);
                fds.push(fd);
            }
        }
    }
    let pids = super::kill::container_pids(state);
    for pid in pids.unwrap_or_default() {
        if let Some(fd) = Pid::from_raw(pid).and_then(|p| pidfd_open(p, PidfdFlags::empty()).ok()) {
            let _ = rustix::process::pidfd_send_signal(&fd, Signal::KILL);
            fds.push(fd);
        }
    }
    // A paused container's tasks die of SIGKILL only once thawed (v1 freezer).
    if state.cgroup.is_frozen() {
        state.cgroup.thaw()?;
    }
    wait_exit(&fds)
}

/// A pidfd becomes readable when its process exits; wait for all of them (bounded, no polling).
fn wait_exit(fds: &[OwnedFd]) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut pending: Vec<&OwnedFd> = fds.iter().collect();
    while !pending.is_empty() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(Error::msg("processes of the container did not exit after SIGKILL"));
        }
        let mut polls: Vec<PollFd> = pending.iter().map(|fd| PollFd::new(*fd, PollFlags::IN)).collect();
        let timeout = rustix::event::Timespec { tv_sec: left.as_secs() as i64, tv_nsec: left.subsec_nanos() as i64 };
        match poll(&mut polls, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::from(e).context("wait for container processes")),
        }
        let done: Vec<bool> = polls.iter().map(|p| !p.revents().is_empty()).collect();
        pending = pending.into_iter().zip(done).filter(|(_, d)| !d).map(|(fd, _)| fd).collect();
    }
    Ok(())
}
