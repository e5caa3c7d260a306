//! `events`: the container's stats once (`--stats`) or every interval, and OOM events as the
//! kernel reports them, one JSON object per line in runc's shape. Waits with poll on the OOM
//! notification and the init's pidfd: nothing is polled between intervals.

use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::process::{pidfd_open, Pid, PidfdFlags};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::state::{StateDir, Status};

/// One event line in runc's field order (type, id, data); serde_json would sort the keys.
fn event(kind: &str, id: &str, data: Option<Value>) -> String {
    let (kind, id) = (json!(kind), json!(id));
    match data {
        Some(d) => format!(r#"{{"type":{kind},"id":{id},"data":{d}}}"#),
        None => format!(r#"{{"type":{kind},"id":{id}}}"#),
    }
}

/// Print (through `emit`) a stats event now and then every `interval` (unless `stats_only`), and
/// an `oom` event per OOM; returns when the container's init exits or `emit` fails.
pub fn events(
    root: &Path,
    id: &str,
    interval: Duration,
    stats_only: bool,
    mut emit: impl FnMut(&str) -> Result<()>,
) -> Result<()> {
    let dir = StateDir::open(root, id)?;
    let state = dir.load()?;
    if state.status(&dir) == Status::Stopped {
        return Err(Error::msg(format!("container with id {id} is not running")));
    }
    if stats_only {
        return emit(&event("stats", id, Some(state.cgroup.stats())));
    }
    if interval.is_zero() {
        return Err(Error::msg("--interval: duration must be greater than 0"));
    }
    let mut oom = state.cgroup.oom_watch()?;
    let pidfd = Pid::from_raw(state.init.pid).and_then(|p| pidfd_open(p, PidfdFlags::empty()).ok());
    if !state.init.is_alive() {
        return Err(Error::msg(format!("container with id {id} is not running")));
    }
    let mut next = Instant::now();
    loop {
        let now = Instant::now();
        if now >= next {
            emit(&event("stats", id, Some(state.cgroup.stats())))?;
            next = now + interval;
        }
        let left = next.saturating_duration_since(Instant::now());
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(2);
        if let Some(o) = &oom {
            fds.push(PollFd::from_borrowed_fd(o.fd(), PollFlags::IN));
        }
        if let Some(p) = &pidfd {
            fds.push(PollFd::from_borrowed_fd(p.as_fd(), PollFlags::IN));
        }
        let ts = Timespec { tv_sec: left.as_secs() as i64, tv_nsec: left.subsec_nanos() as i64 };
        match poll(&mut fds, Some(&ts)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::from(e).context("wait for events")),
        }
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        drop(fds);
        let mut i = 0;
        if let Some(o) = &mut oom {
            if ready[0] {
                for _ in 0..o.take()? {
                    emit(&event("oom", id, None))?;
                }
                if o.gone() {
                    oom = None;
                }
            }
            i = 1;
        }
        if pidfd.is_some() && ready.get(i).copied().unwrap_or(false) {
            return Ok(());
        }
    }
}
