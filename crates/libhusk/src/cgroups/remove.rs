//! Removing cgroup directories. rmdir fails with EBUSY while the cgroup still has tasks, which
//! happens for a moment after the processes were killed: wait for exactly those tasks to exit
//! (pidfds polled together, no sleeping), then retry.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{pidfd_open, Pid, PidfdFlags};

use crate::error::{Context, Error, Result};

/// How long destroy waits for dying processes before giving up on a directory.
pub const WAIT_LIMIT: Duration = Duration::from_secs(5);

/// `dir` and every cgroup below it, deepest first.
pub fn subtree(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), false)];
    while let Some((d, visited)) = stack.pop() {
        if visited {
            out.push(d);
            continue;
        }
        let entries = match std::fs::read_dir(&d) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            r => r.ctx(|| format!("read {}", d.display()))?,
        };
        stack.push((d.clone(), true));
        for e in entries {
            let e = e.ctx(|| format!("read {}", d.display()))?;
            if e.file_type().ctx(|| format!("stat {}", e.path().display()))?.is_dir() {
                stack.push((e.path(), false));
            }
        }
    }
    Ok(out)
}

/// The numbers listed in a cgroup file (`cgroup.procs`, `tasks`, `cgroup.threads`); a cgroup
/// removed meanwhile has none.
pub fn read_ids(file: &Path) -> Result<Vec<i32>> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) || e.raw_os_error() == Some(libc::ENODEV) => Ok(Vec::new()),
        Err(e) => Err(Error::from(e).context(format!("read {}", file.display()))),
    }
}

// PIDFD_THREAD (Linux 6.9): a pidfd for a thread that is not a group leader.
const PIDFD_THREAD: u32 = libc::O_EXCL as u32;

/// Wait until every listed task has exited, or until `deadline`. Returns false on timeout.
fn wait_exit(ids: &[i32], threads: bool, deadline: Instant) -> Result<bool> {
    let mut fds: Vec<OwnedFd> = Vec::with_capacity(ids.len());
    for &id in ids {
        let Some(pid) = Pid::from_raw(id) else { continue };
        let mut r = pidfd_open(pid, PidfdFlags::from_bits_retain(if threads { PIDFD_THREAD } else { 0 }));
        if threads && matches!(r, Err(Errno::INVAL)) {
            // Older kernels: only group leaders have pidfds.
            r = pidfd_open(pid, PidfdFlags::empty());
        }
        match r {
            Ok(fd) => fds.push(fd),
            // Gone already, or a thread we cannot watch on this kernel (its leader is watched).
            Err(Errno::SRCH) | Err(Errno::INVAL) => {}
            Err(e) => return Err(Error::os(format!("pidfd_open {id}"), e.raw_os_error())),
        }
    }
    while !fds.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let mut pfds: Vec<PollFd<'_>> = fds.iter().map(|f| PollFd::new(f, PollFlags::IN)).collect();
        let ts = Timespec { tv_sec: left.as_secs() as i64, tv_nsec: left.subsec_nanos() as i64 };
        match poll(&mut pfds, Some(&ts)) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(Error::os("poll pidfds", e.raw_os_error())),
        }
        let exited: Vec<bool> = pfds.iter().map(|p| !p.revents().is_empty()).collect();
        drop(pfds);
        let mut i = 0;
        fds.retain(|_| {
            i += 1;
            !exited[i - 1]
        });
    }
    Ok(true)
}

/// rmdir that waits for the cgroup's remaining tasks. `v2` picks the thread list's file name.
pub fn rmdir_waiting(dir: &Path, v2: bool, deadline: Instant) -> Result<()> {
    // Each round waits for every task we can see; a round without any task to wait for can only
    // be the few instructions between a task leaving cgroup.procs and leaving the cgroup.
    for _ in 0..8 {
        match rustix::fs::rmdir(dir) {
            Ok(()) | Err(Errno::NOENT) => return Ok(()),
            Err(Errno::BUSY) => {}
            Err(e) => return Err(Error::os(format!("rmdir {}", dir.display()), e.raw_os_error())),
        }
        let mut ids = read_ids(&dir.join("cgroup.procs"))?;
        let mut threads = false;
        if ids.is_empty() {
            ids = read_ids(&dir.join(if v2 { "cgroup.threads" } else { "tasks" }))?;
            threads = true;
        }
        if !wait_exit(&ids, threads, deadline)? {
            break;
        }
    }
    match rustix::fs::rmdir(dir) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::BUSY) => Err(Error::msg(format!(
            "rmdir {}: processes still in the cgroup after {} s",
            dir.display(),
            WAIT_LIMIT.as_secs()
        ))),
        Err(e) => Err(Error::os(format!("rmdir {}", dir.display()), e.raw_os_error())),
    }
}
