//! One CRIU request over `criu swrk`: CRIU runs as our child with one end of a SEQPACKET socket
//! pair, reads the request, sends notifications (each answered before it goes on) and then its
//! response. Files CRIU must inherit (`inherit_fd`) are dup'ed to fds without close-on-exec just
//! for the spawn, so nothing else of ours leaks into it.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use prost::Message;
use rustix::net::{
    recv, recvmsg, send, socketpair, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendFlags,
    SocketFlags, SocketType,
};

use super::rpc::{Notify, Req, ReqType, Resp};
use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result};

/// A notification from CRIU (`post-restore`, `orphan-pts-master`, ...) and the fd it carried.
pub struct Notification {
    pub script: String,
    pub pid: Option<i32>,
    pub fd: Option<OwnedFd>,
}

/// A running `criu swrk`, waiting for its one request.
pub struct Swrk {
    child: Option<Child>,
    sock: OwnedFd,
}

impl Swrk {
    /// Start CRIU. Returns the fd numbers under which CRIU holds `inherit` (for the request's
    /// `inherit_fd` entries).
    pub fn spawn(criu: &Path, inherit: &[BorrowedFd<'_>]) -> Result<(Swrk, Vec<i32>)> {
        let (ours, theirs) = socketpair(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)
            .ctx(|| "criu: socketpair")?;
        // Plain dup: the copies lack close-on-exec, so CRIU inherits exactly these; husk is
        // single-threaded, so no other fork sees them before they are closed below.
        let sock_fd = rustix::io::dup(&theirs).ctx(|| "criu: dup socket")?;
        let inherited: Vec<OwnedFd> =
            inherit.iter().map(rustix::io::dup).collect::<std::result::Result<_, _>>().ctx(|| "criu: dup fd")?;
        let mut cmd = Command::new(criu);
        cmd.arg("swrk").arg(sock_fd.as_raw_fd().to_string());
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit());
        let child = cmd.spawn().map_err(|e| super::spawn_error(criu, e))?;
        let numbers = inherited.iter().map(|f| f.as_raw_fd()).collect();
        Ok((Swrk { child: Some(child), sock: ours }, numbers))
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Put CRIU in the container's cgroups, so what it restores is born there.
    pub fn join(&self, cgroup: &Cgroup) -> Result<()> {
        cgroup.add_process(self.pid(), false).map_err(|e| e.context("criu: join the container's cgroup"))
    }

    /// Send `req` and see it through to its response. `notify` answers each notification; an
    /// error aborts the request (CRIU undoes what it did) and is returned.
    pub fn call(mut self, req: &Req, notify: &mut dyn FnMut(Notification) -> Result<()>) -> Result<Resp> {
        let result = converse(&self.sock, req, notify);
        let status = self.hang_up();
        let resp = result?;
        // A pre-dump leaves CRIU waiting for the next request; it ends, unhappily, when we hang up.
        if resp.r#type != ReqType::PreDump as i32 {
            if let Some(st) = status.filter(|s| !s.success()) {
                return Err(Error::msg(format!("criu exited with {st} after reporting success")));
            }
        }
        Ok(resp)
    }

    fn hang_up(&mut self) -> Option<std::process::ExitStatus> {
        let _ = rustix::net::shutdown(&self.sock, rustix::net::Shutdown::Both);
        let mut child = self.child.take()?;
        match child.wait() {
            Ok(st) => Some(st),
            Err(e) => {
                tracing::warn!("wait for criu: {e}");
                None
            }
        }
    }
}

impl Drop for Swrk {
    /// Never called: CRIU reads end-of-file and exits; wait for it so no zombie is left.
    fn drop(&mut self) {
        self.hang_up();
    }
}

fn converse(sock: &OwnedFd, req: &Req, notify: &mut dyn FnMut(Notification) -> Result<()>) -> Result<Resp> {
    send(sock, &req.encode_to_vec(), SendFlags::NOSIGNAL).ctx(|| "criu: send request")?;
    let want = req.r#type;
    loop {
        let (resp, fd) = receive(sock)?;
        if !resp.success {
            return Err(failure(&resp));
        }
        if resp.r#type == ReqType::Notify as i32 {
            let n = resp.notify.clone().unwrap_or(Notify { script: None, pid: None });
            let script = n.script.unwrap_or_default();
            let outcome = notify(Notification { script: script.clone(), pid: n.pid, fd })
                .map_err(|e| e.context(format!("criu notification {script:?}")));
            let ack =
                Req { r#type: ReqType::Notify as i32, notify_success: Some(outcome.is_ok()), ..Default::default() };
            send(sock, &ack.encode_to_vec(), SendFlags::NOSIGNAL).ctx(|| "criu: answer notification")?;
            outcome?;
            continue;
        }
        if resp.r#type != want {
            return Err(Error::msg(format!("criu: unexpected response of type {}", resp.r#type)));
        }
        return Ok(resp);
    }
}

fn failure(resp: &Resp) -> Error {
    let what = ReqType::try_from(resp.r#type).map(|t| format!("{t:?}").to_lowercase()).unwrap_or_default();
    let mut msg = format!("criu {what} failed");
    if let Some(m) = resp.cr_errmsg.as_deref().map(super::log_message).filter(|m| !m.is_empty()) {
        msg.push_str(&format!(": {m}"));
    }
    match resp.cr_errno.filter(|e| *e != 0) {
        Some(errno) => Error::os(msg, errno),
        None => Error::msg(msg),
    }
}

/// One message, sized first (MSG_PEEK|MSG_TRUNC), with the fd of `orphan-pts-master` if any.
fn receive(sock: &OwnedFd) -> Result<(Resp, Option<OwnedFd>)> {
    let size = loop {
        match recv(sock, &mut [0u8; 0], RecvFlags::PEEK | RecvFlags::TRUNC) {
            Ok((_, n)) => break n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::from(e).context("criu: receive")),
        }
    };
    if size == 0 {
        return Err(Error::msg("criu exited without a response (see its log)"));
    }
    let mut buf = vec![0u8; size];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let got =
        recvmsg(sock, &mut [IoSliceMut::new(&mut buf)], &mut cmsg, RecvFlags::CMSG_CLOEXEC).ctx(|| "criu: receive")?;
    let mut fd = None;
    for m in cmsg.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = m {
            fd = fds.next();
        }
    }
    let resp = Resp::decode(&buf[..got.bytes]).map_err(|e| Error::msg(format!("criu: bad response: {e}")))?;
    Ok((resp, fd))
}
