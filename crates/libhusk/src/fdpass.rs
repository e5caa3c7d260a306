//! Unix sockets that carry file descriptors (SCM_RIGHTS): the console socket, the pidfd
//! socket, and husk's own channels.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage,
    SendFlags,
};

use crate::error::{Context, Result};

/// Connect a stream socket to `path` (a caller's --console-socket or --pidfd-socket); `flag`
/// names the option in errors.
pub fn connect(path: &Path, flag: &str) -> Result<OwnedFd> {
    use rustix::net::{socket_with, AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let sock = socket_with(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None)
        .ctx(|| format!("{flag}: socket"))?;
    let addr = SocketAddrUnix::new(path).ctx(|| format!("{flag} {}", path.display()))?;
    rustix::net::connect(&sock, &addr).ctx(|| format!("{flag}: connect {}", path.display()))?;
    Ok(sock)
}

/// Send `data` with `fd` attached. The data is what runc's receivers (recvtty, containerd,
/// conmon) read as the file's name.
pub fn send_fd(socket: &impl AsFd, data: &[u8], fd: BorrowedFd<'_>) -> Result<()> {
    let fds = [fd];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = SendAncillaryBuffer::new(&mut space);
    cmsg.push(SendAncillaryMessage::ScmRights(&fds));
    loop {
        match sendmsg(socket, &[IoSlice::new(data)], &mut cmsg, SendFlags::NOSIGNAL) {
            Err(rustix::io::Errno::INTR) => continue,
            r => return r.map(|_| ()).ctx(|| "send fd"),
        }
    }
}

/// Receive one message into `buf`, with the fd that came with it (close-on-exec), if any.
pub fn recv_fd(socket: &impl AsFd, buf: &mut [u8]) -> Result<(usize, Option<OwnedFd>)> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let n = loop {
        match recvmsg(socket, &mut [IoSliceMut::new(buf)], &mut cmsg, RecvFlags::CMSG_CLOEXEC) {
            Err(rustix::io::Errno::INTR) => continue,
            r => break r.ctx(|| "receive fd")?.bytes,
        }
    };
    let mut fd = None;
    for msg in cmsg.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
            fd = fd.or_else(|| fds.next());
        }
    }
    Ok((n, fd))
}
