//! The parent/init handshake during create: a SOCK_SEQPACKET pair, so every message arrives whole
//! and a dead peer reads as end-of-file instead of a hang.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    socketpair, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};

use crate::error::{Error, Result};

#[derive(Debug, PartialEq, Eq)]
pub enum Msg {
    /// parent → init: uid/gid maps are written and the cgroups joined; go on.
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
    /// init → parent: the real init is this pid (its pid-1 child after a late pid namespace).
    Pid(i32),
    /// init → parent: the seccomp notify fd comes with this message (SCM_RIGHTS), for the agent.
    SeccompFd,
    /// Either way: setup failed, with the message to report.
    Error(String),
}

const GO: u8 = 1;
const RUN_HOOKS: u8 = 2;
const HOOKS_DONE: u8 = 3;
const READY: u8 = 4;
const ERROR: u8 = 5;
const PID: u8 = 6;
const SECCOMP_FD: u8 = 7;
const CREATED: u8 = 8;

pub struct Channel(OwnedFd);

pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)
        .map_err(|e| Error::from(e).context("socketpair"))?;
    Ok((Channel(a), Channel(b)))
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> Result<()> {
        let mut buf = Vec::with_capacity(16);
        match msg {
            Msg::Go => buf.push(GO),
            Msg::RunHooks => buf.push(RUN_HOOKS),
            Msg::HooksDone => buf.push(HOOKS_DONE),
            Msg::Ready => buf.push(READY),
            Msg::Created => buf.push(CREATED),
            Msg::SeccompFd => buf.push(SECCOMP_FD),
            Msg::Pid(pid) => {
                buf.push(PID);
                buf.extend_from_slice(&pid.to_ne_bytes());
            }
            Msg::Error(text) => {
                buf.push(ERROR);
                buf.extend_from_slice(text.as_bytes());
            }
        }
        rustix::net::send(self.0.as_fd(), &buf, SendFlags::NOSIGNAL)
            .map_err(|e| Error::from(e).context("sync send"))?;
        Ok(())
    }

    /// Send `msg` with `fd` attached.
    pub fn send_with_fd(&self, msg: &Msg, fd: BorrowedFd<'_>) -> Result<()> {
        let byte = match msg {
            Msg::SeccompFd => [SECCOMP_FD],
            other => return Err(Error::msg(format!("sync: {other:?} carries no fd"))),
        };
        let fds = [fd];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut cmsg = SendAncillaryBuffer::new(&mut space);
        cmsg.push(SendAncillaryMessage::ScmRights(&fds));
        rustix::net::sendmsg(self.0.as_fd(), &[IoSlice::new(&byte)], &mut cmsg, SendFlags::NOSIGNAL)
            .map_err(|e| Error::from(e).context("sync send"))?;
        Ok(())
    }

    /// The next message, or `None` when the peer has gone (closed or died).
    pub fn recv(&self) -> Result<Option<Msg>> {
        self.recv_with_fd().map(|(m, _)| m)
    }

    /// The next message and the fd that came with it, if any.
    pub fn recv_with_fd(&self) -> Result<(Option<Msg>, Option<OwnedFd>)> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut cmsg = RecvAncillaryBuffer::new(&mut space);
        let n = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match rustix::net::recvmsg(self.0.as_fd(), &mut iov, &mut cmsg, RecvFlags::CMSG_CLOEXEC) {
                Ok(r) => break r.bytes,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::from(e).context("sync recv")),
            }
        };
        let mut fd = None;
        for m in cmsg.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = m {
                for f in fds {
                    fd.get_or_insert(f);
                }
            }
        }
        if n == 0 {
            return Ok((None, None));
        }
        Ok((Some(Self::decode(&buf[..n])?), fd))
    }

    fn decode(buf: &[u8]) -> Result<Msg> {
        let n = buf.len();
        let msg = match buf[0] {
            GO => Msg::Go,
            RUN_HOOKS => Msg::RunHooks,
            HOOKS_DONE => Msg::HooksDone,
            READY => Msg::Ready,
            CREATED => Msg::Created,
            ERROR => Msg::Error(String::from_utf8_lossy(&buf[1..n]).into_owned()),
            SECCOMP_FD => Msg::SeccompFd,
            PID if n == 5 => Msg::Pid(i32::from_ne_bytes([buf[1], buf[2], buf[3], buf[4]])),
            other => return Err(Error::msg(format!("sync: unexpected message {other}"))),
        };
        Ok(msg)
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
