//! `NOTIFY_SOCKET` through a container, as runc does it, so that a containerised service's
//! `READY=1` reaches the supervisor (systemd with `Type=notify`, Podman) that started husk:
//!
//! - `create` (with NOTIFY_SOCKET set) makes `<root>/<id>/notify/`, bind-mounts it read-only
//!   (nosuid, nodev, noexec) at `/run/notify` in the container and gives the container process
//!   `NOTIFY_SOCKET=/run/notify/notify.sock`.
//! - `start` (or `run`) binds the datagram socket there (mode 0777, any container user may
//!   notify) before it lets the container run: nothing is forwarded before the container has
//!   started.
//! - `start` and `run -d` return once the first datagram that begins with `READY=` arrived, or
//!   the init exited: husk sends its first line, then `MAINPID=<init pid>`, then `BARRIER=1`
//!   with a pipe (sd_notify_barrier) and waits up to 30 s for the supervisor to close it.
//!   A foreground `run` forwards READY while it waits, with MAINPID = husk's own pid.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::Mode;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use crate::error::{Context, Error, Result};
use crate::state::StateDir;

pub const DIR: &str = "notify";
pub const IN_CONTAINER: &str = "/run/notify/notify.sock";

/// The supervisor's socket, when husk was given one.
pub fn host_socket() -> Option<String> {
    std::env::var("NOTIFY_SOCKET").ok().filter(|s| !s.is_empty())
}

/// `create`: the directory, the mount and the env entry the container gets.
pub fn prepare(spec: &mut oci_spec::runtime::Spec, dir: &StateDir) -> Result<String> {
    let host_dir = dir.path.join(DIR);
    std::fs::DirBuilder::new().create(&host_dir).ctx(|| format!("NOTIFY_SOCKET: mkdir {}", host_dir.display()))?;
    let mount = oci_spec::runtime::MountBuilder::default()
        .destination("/run/notify")
        .typ("bind")
        .source(host_dir)
        .options(["bind", "nosuid", "noexec", "nodev", "ro"].map(String::from).to_vec())
        .build()
        .map_err(|e| Error::msg(format!("NOTIFY_SOCKET: mount: {e}")))?;
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(mount);
    spec.set_mounts(Some(mounts));
    Ok(format!("NOTIFY_SOCKET={IN_CONTAINER}"))
}

/// The socket husk listens on for the container, bound in its state dir.
pub struct NotifySocket {
    sock: OwnedFd,
    host: String,
}

/// Bind the container's socket, if husk has a supervisor's socket and the container was created
/// with one (a container created without NOTIFY_SOCKET has nowhere to send).
pub fn bind(dir: &StateDir) -> Result<Option<NotifySocket>> {
    let Some(host) = host_socket() else { return Ok(None) };
    if !dir.path.join(DIR).is_dir() {
        tracing::debug!("NOTIFY_SOCKET is set but the container was created without it");
        return Ok(None);
    }
    let sock = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .ctx(|| "NOTIFY_SOCKET: socket")?;
    let name = format!("{DIR}/notify.sock");
    // Through the dir fd, so a long --root cannot overflow sun_path.
    let path = format!("/proc/self/fd/{}/{name}", dir.fd.as_raw_fd());
    let addr = SocketAddrUnix::new(path.as_str()).ctx(|| "NOTIFY_SOCKET: address")?;
    rustix::net::bind(&sock, &addr).ctx(|| format!("NOTIFY_SOCKET: bind {}", dir.path.join(&name).display()))?;
    rustix::fs::chmodat(&dir.fd, name.as_str(), Mode::from_raw_mode(0o777), rustix::fs::AtFlags::empty())
        .ctx(|| "NOTIFY_SOCKET: chmod")?;
    Ok(Some(NotifySocket { sock, host }))
}

impl AsFd for NotifySocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl NotifySocket {
    /// Read what the container sent; once a datagram begins with `READY=`, tell the supervisor
    /// (with `MAINPID=mainpid`) and return true. Other messages are dropped, as runc drops them.
    pub fn handle(&self, mainpid: i32) -> Result<bool> {
        let mut buf = [0u8; 4096];
        loop {
            match rustix::net::recv(&self.sock, &mut buf, rustix::net::RecvFlags::empty()) {
                Ok((n, _)) => {
                    let got = &buf[..n.min(buf.len())];
                    if got.starts_with(b"READY=") {
                        let line = got.split(|b| *b == b'\n').next().unwrap_or(got);
                        self.tell_host(line, mainpid)?;
                        return Ok(true);
                    }
                }
                Err(rustix::io::Errno::AGAIN) => return Ok(false),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(Error::from(e).context("NOTIFY_SOCKET: receive")),
            }
        }
    }

    /// `start` and `run -d`: until the container reports READY or the init (`pidfd`) exits.
    pub fn wait_ready(&self, pidfd: &OwnedFd, mainpid: i32) -> Result<()> {
        loop {
            let mut fds = [PollFd::new(&self.sock, PollFlags::IN), PollFd::new(pidfd, PollFlags::IN)];
            match poll(&mut fds, None) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(Error::from(e).context("NOTIFY_SOCKET: wait")),
            }
            let (sock_ready, exited) = (!fds[0].revents().is_empty(), !fds[1].revents().is_empty());
            if sock_ready && self.handle(mainpid)? {
                return Ok(());
            }
            if exited {
                return Ok(());
            }
        }
    }

    fn tell_host(&self, ready: &[u8], mainpid: i32) -> Result<()> {
        let what = || format!("NOTIFY_SOCKET {}", self.host);
        let addr = match self.host.strip_prefix('@') {
            Some(name) => SocketAddrUnix::new_abstract_name(name.as_bytes()),
            None => SocketAddrUnix::new(self.host.as_str()),
        }
        .ctx(what)?;
        let client =
            rustix::net::socket_with(AddressFamily::UNIX, SocketType::DGRAM, SocketFlags::CLOEXEC, None).ctx(what)?;
        rustix::net::connect(&client, &addr).ctx(what)?;
        let mut msg = ready.to_vec();
        msg.push(b'\n');
        send(&client, &msg).ctx(what)?;
        send(&client, format!("MAINPID={mainpid}\n").as_bytes()).ctx(what)?;
        barrier(&client).ctx(what)
    }
}

fn send(sock: &OwnedFd, data: &[u8]) -> rustix::io::Result<()> {
    rustix::net::send(sock, data, rustix::net::SendFlags::NOSIGNAL).map(|_| ())
}

/// sd_notify_barrier: the supervisor closes the pipe's write end once it has processed what we
/// sent before, so husk does not exit (and the supervisor see its main pid die) ahead of it.
fn barrier(client: &OwnedFd) -> Result<()> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    crate::fdpass::send_fd(client, b"BARRIER=1", write.as_fd())?;
    drop(write);
    let timeout = Duration::from_secs(30);
    let ts = Timespec { tv_sec: timeout.as_secs() as i64, tv_nsec: 0 };
    let mut fds = [PollFd::new(&read, PollFlags::IN)];
    loop {
        match poll(&mut fds, Some(&ts)) {
            Ok(0) => {
                tracing::warn!("NOTIFY_SOCKET: no barrier acknowledgement after 30 s; going on");
                return Ok(());
            }
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}
