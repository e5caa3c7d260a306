//! The parent/init handshake during create: a SOCK_SEQPACKET pair, so every message arrives whole
//! and a dead peer reads as end-of-file instead of a hang.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{socketpair, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

use crate::error::{Error, Result};

#[derive(Debug, PartialEq, Eq)]
pub enum Msg {
    /// parent → init: uid/gid maps are written (and the systemd scope started); go on.
    Go,
    /// init → parent: namespaces and mounts are ready; run prestart and createRuntime hooks.
    RunHooks,
    /// parent → init: the hooks succeeded.
    HooksDone,
    /// init → parent: everything is set up; waiting for `start`.
    Ready,
    /// parent → init: the state says created; wait for `start`. An init that reads end-of-file
    /// instead (husk died before it saved the state) exits rather than wait for ever.
    Created,
    /// init → parent: the real init is this pid (its pid-1 child after a late pid namespace);
    /// a forking exec trampoline → parent: the process it forked into the container is this pid.
    Pid(i32),
    /// init or exec'd process → parent: the seccomp notify fd comes with this message
    /// (SCM_RIGHTS), for the agent.
    SeccompFd,
    /// Either way: setup failed, with the message to report.
    Error(String),
    /// exec'd process → parent: the final execve failed with this errno (sent by the
    /// trampoline, see process/trampoline.rs).
    ExecFailed(i32),
    /// exec trampoline → parent: it could not fork the container process (this errno).
    CloneFailed(i32),
    /// exec trampoline → parent: the seccomp filter it was handed did not load (this errno).
    SeccompFailed(i32),
    /// exec'd process → parent: the pty master of a terminal husk proxies itself (with the fd).
    Console,
    /// init → parent: open the source of bind mount `mounts[i]`, which the init's user namespace
    /// cannot reach (runc's mount source request).
    MountSource(u32),
    /// parent → init: the mount source asked for comes with this message (SCM_RIGHTS).
    MountSourceFd,
    /// init or exec'd process → parent: a line for husk's log, at this level (see
    /// [`route_log`]); handled inside `recv`, never returned by it.
    Log(tracing::Level, String),
}

const GO: u8 = 1;
const RUN_HOOKS: u8 = 2;
const HOOKS_DONE: u8 = 3;
const READY: u8 = crate::process::trampoline::READY_TAG;
const ERROR: u8 = 5;
const PID: u8 = crate::process::trampoline::PID_TAG;
const EXEC_FAILED: u8 = crate::process::trampoline::REPORT_TAG;
const CONSOLE: u8 = 8;
const SECCOMP_FD: u8 = 9;
const CREATED: u8 = crate::process::trampoline::CREATED_TAG;
const CLONE_FAILED: u8 = crate::process::trampoline::CLONE_FAILED_TAG;
const SECCOMP_FAILED: u8 = crate::process::trampoline::SECCOMP_FAILED_TAG;
const MOUNT_SOURCE: u8 = 13;
const MOUNT_SOURCE_FD: u8 = 14;
const LOG: u8 = 15;

pub struct Channel(OwnedFd);

pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)
        .map_err(|e| Error::from(e).context("socketpair"))?;
    Ok((Channel(a), Channel(b)))
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> Result<()> {
        let buf = encode(msg);
        rustix::net::send(self.0.as_fd(), &buf, SendFlags::NOSIGNAL)
            .map_err(|e| Error::from(e).context("sync send"))?;
        Ok(())
    }

    /// Send `msg` with `fd` attached (SCM_RIGHTS).
    pub fn send_with_fd(&self, msg: &Msg, fd: BorrowedFd<'_>) -> Result<()> {
        crate::fdpass::send_fd(&self.0, &encode(msg), fd).map_err(|e| e.context("sync send"))
    }

    /// The next message and the fd that came with it, if any. Log lines from the child are
    /// written to husk's log on the way.
    pub fn recv_with_fd(&self) -> Result<(Option<Msg>, Option<OwnedFd>)> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let (n, fd) = crate::fdpass::recv_fd(&self.0, &mut buf).map_err(|e| e.context("sync recv"))?;
            match decode(&buf[..n])? {
                Some(Msg::Log(level, text)) => log_here(level, &text),
                msg => return Ok((msg, fd)),
            }
        }
    }

    /// The next message, or `None` when the peer has gone (closed or died). Log lines from the
    /// child are written to husk's log on the way.
    pub fn recv(&self) -> Result<Option<Msg>> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match rustix::net::recv(self.0.as_fd(), &mut buf, RecvFlags::empty()) {
                Ok((n, _)) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::from(e).context("sync recv")),
            };
            match decode(&buf[..n])? {
                Some(Msg::Log(level, text)) => log_here(level, &text),
                msg => return Ok(msg),
            }
        }
    }

    /// Wait for exactly `want`; an error message from the peer becomes our error.
    pub fn expect(&self, want: Msg) -> Result<()> {
        match self.recv()? {
            Some(m) if m == want => Ok(()),
            Some(Msg::Error(text)) => Err(Error::msg(text)),
            Some(other) => Err(Error::msg(format!("sync: expected {want:?}, got {other:?}"))),
            None => Err(Error::msg("container init exited during setup")),
        }
    }

    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

fn encode(msg: &Msg) -> Vec<u8> {
    let mut buf = Vec::with_capacity(16);
    match msg {
        Msg::Go => buf.push(GO),
        Msg::RunHooks => buf.push(RUN_HOOKS),
        Msg::HooksDone => buf.push(HOOKS_DONE),
        Msg::Ready => buf.push(READY),
        Msg::Created => buf.push(CREATED),
        Msg::Console => buf.push(CONSOLE),
        Msg::SeccompFd => buf.push(SECCOMP_FD),
        Msg::MountSourceFd => buf.push(MOUNT_SOURCE_FD),
        Msg::MountSource(i) => {
            buf.push(MOUNT_SOURCE);
            buf.extend_from_slice(&i.to_ne_bytes());
        }
        Msg::Pid(pid) => {
            buf.push(PID);
            buf.extend_from_slice(&pid.to_le_bytes());
        }
        Msg::CloneFailed(errno) => {
            buf.push(CLONE_FAILED);
            buf.extend_from_slice(&errno.to_le_bytes());
        }
        Msg::SeccompFailed(errno) => {
            buf.push(SECCOMP_FAILED);
            buf.extend_from_slice(&errno.to_le_bytes());
        }
        Msg::ExecFailed(errno) => {
            buf.push(EXEC_FAILED);
            buf.extend_from_slice(&errno.to_le_bytes());
        }
        Msg::Error(text) => {
            buf.push(ERROR);
            buf.extend_from_slice(text.as_bytes());
        }
        Msg::Log(level, text) => {
            buf.push(LOG);
            buf.push(level_byte(*level));
            buf.extend_from_slice(text.as_bytes());
        }
    }
    buf
}

fn level_byte(level: tracing::Level) -> u8 {
    match level {
        tracing::Level::ERROR => 1,
        tracing::Level::WARN => 2,
        tracing::Level::INFO => 3,
        tracing::Level::DEBUG => 4,
        tracing::Level::TRACE => 5,
    }
}

fn byte_level(b: u8) -> tracing::Level {
    match b {
        1 => tracing::Level::ERROR,
        2 => tracing::Level::WARN,
        3 => tracing::Level::INFO,
        4 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    }
}

/// A child's log line, written by husk's subscriber as if husk had said it.
fn log_here(level: tracing::Level, text: &str) {
    match level {
        tracing::Level::ERROR => tracing::error!("{text}"),
        tracing::Level::WARN => tracing::warn!("{text}"),
        tracing::Level::INFO => tracing::info!("{text}"),
        tracing::Level::DEBUG => tracing::debug!("{text}"),
        tracing::Level::TRACE => tracing::trace!("{text}"),
    }
}

/// Where a log line goes in this process. husk itself writes its log; a container process it
/// cloned (the init, an exec'd process) must not: by the time it logs, its copy of the log fd
/// may be closed (every fd the container must not see is) and the number reused by a file of
/// the container's, and its stderr may be the container's terminal. So it sends the line to
/// husk over the sync channel, as runc's init writes to a log pipe, and once that channel is
/// gone (an init waiting for `start`) drops it.
pub enum LogRoute {
    /// husk's own process: write it.
    Here,
    /// A container process: sent to husk (or dropped).
    Sent,
}

/// No channel: this is husk itself.
const NOT_A_CHILD: i32 = -1;
/// A container process whose channel to husk is gone.
const NO_CHANNEL: i32 = -2;
static LOG_CHANNEL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(NOT_A_CHILD);

/// In a container process, first thing after the clone: its log lines go over `channel`.
pub fn log_through(channel: &Channel) {
    use std::os::fd::AsRawFd;
    LOG_CHANNEL.store(channel.0.as_raw_fd(), std::sync::atomic::Ordering::Relaxed);
}

/// Before a container process drops its channel: its later log lines are dropped.
pub fn stop_logging() {
    LOG_CHANNEL.store(NO_CHANNEL, std::sync::atomic::Ordering::Relaxed);
}

/// Called by husk's log subscriber for every line (only lines that pass its level reach here).
pub fn route_log(level: tracing::Level, text: &str) -> LogRoute {
    match LOG_CHANNEL.load(std::sync::atomic::Ordering::Relaxed) {
        NOT_A_CHILD => LogRoute::Here,
        NO_CHANNEL => LogRoute::Sent,
        fd => {
            // SAFETY: `fd` is the channel registered by `log_through`, open until
            // `stop_logging` (the channel's owner calls it before dropping it, or execs).
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            let _ = rustix::net::send(fd, &encode(&Msg::Log(level, text.to_string())), SendFlags::NOSIGNAL);
            LogRoute::Sent
        }
    }
}

/// An empty read is the peer gone: `None`.
fn decode(buf: &[u8]) -> Result<Option<Msg>> {
    let Some(&tag) = buf.first() else { return Ok(None) };
    let msg = match tag {
        GO => Msg::Go,
        RUN_HOOKS => Msg::RunHooks,
        HOOKS_DONE => Msg::HooksDone,
        READY => Msg::Ready,
        CREATED => Msg::Created,
        CONSOLE => Msg::Console,
        SECCOMP_FD => Msg::SeccompFd,
        MOUNT_SOURCE_FD => Msg::MountSourceFd,
        MOUNT_SOURCE if buf.len() == 5 => Msg::MountSource(u32::from_ne_bytes([buf[1], buf[2], buf[3], buf[4]])),
        ERROR => Msg::Error(String::from_utf8_lossy(&buf[1..]).into_owned()),
        LOG if buf.len() >= 2 => Msg::Log(byte_level(buf[1]), String::from_utf8_lossy(&buf[2..]).into_owned()),
        PID if buf.len() == 5 => Msg::Pid(i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]])),
        SECCOMP_FAILED if buf.len() == 5 => Msg::SeccompFailed(i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]])),
        CLONE_FAILED if buf.len() == 5 => Msg::CloneFailed(i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]])),
        EXEC_FAILED => match crate::process::exec::decode_report(buf) {
            Some(errno) => Msg::ExecFailed(errno),
            None => return Err(Error::msg("sync: malformed exec report")),
        },
        other => return Err(Error::msg(format!("sync: unexpected message {other}"))),
    };
    Ok(Some(msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let (a, b) = pair().unwrap();
        for m in [
            Msg::Go,
            Msg::Created,
            Msg::Pid(1234),
            Msg::Error("x: y".into()),
            Msg::ExecFailed(libc::ENOENT),
            Msg::CloneFailed(libc::EAGAIN),
            Msg::SeccompFailed(libc::EINVAL),
            Msg::Console,
            Msg::SeccompFd,
            Msg::MountSource(7),
            Msg::MountSourceFd,
        ] {
            a.send(&m).unwrap();
            assert_eq!(b.recv().unwrap(), Some(m));
        }
        // A child's log line is written on the way, not returned.
        a.send(&Msg::Log(tracing::Level::WARN, "from the init".into())).unwrap();
        a.send(&Msg::Go).unwrap();
        assert_eq!(b.recv().unwrap(), Some(Msg::Go));
        assert_eq!(
            decode(&encode(&Msg::Log(tracing::Level::DEBUG, "x".into()))).unwrap(),
            Some(Msg::Log(tracing::Level::DEBUG, "x".into()))
        );
        let file = std::fs::File::open("/dev/null").unwrap();
        a.send_with_fd(&Msg::Console, file.as_fd()).unwrap();
        let (m, fd) = b.recv_with_fd().unwrap();
        assert_eq!(m, Some(Msg::Console));
        assert!(fd.is_some());
        drop(a);
        assert_eq!(b.recv().unwrap(), None);
    }
}
