//! Foreground `run` of a container with `process.terminal` and no --console-socket: husk holds
//! the pty master, puts the caller's terminal in raw mode (restored on exit), and copies bytes
//! both ways until the container exits.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use libhusk::{Error, Result};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::OFlags;
use rustix::io::Errno;
use rustix::termios::{tcgetattr, tcgetwinsize, tcsetattr, tcsetwinsize, OptionalActions, Termios};

use crate::supervise::{Main, Signals};
use libhusk::notify::NotifySocket;

/// Puts the caller's terminal back as it was, however we leave.
struct RawMode(Option<Termios>);

impl RawMode {
    fn enter(stdin: BorrowedFd<'_>) -> RawMode {
        let Ok(saved) = tcgetattr(stdin) else { return RawMode(None) };
        let mut raw = saved.clone();
        raw.make_raw();
        let _ = tcsetattr(stdin, OptionalActions::Now, &raw);
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = tcsetattr(rustix::stdio::stdin(), OptionalActions::Now, t);
        }
    }
}

fn copy_size(from: BorrowedFd<'_>, master: &OwnedFd) {
    if let Ok(ws) = tcgetwinsize(from) {
        let _ = tcsetwinsize(master, ws);
    }
}

/// Write all of `buf`, waiting (poll, not spinning) while a non-blocking fd is full.
fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        match rustix::io::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(Errno::AGAIN) => {
                let _ = poll(&mut [PollFd::new(&fd, PollFlags::OUT)], None);
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(Error::from(e).context("console write")),
        }
    }
    Ok(())
}

/// Copy what the master has now to stdout; false once the pty has no writer left (EIO).
fn pump_master(master: &OwnedFd, buf: &mut [u8]) -> Result<bool> {
    loop {
        match rustix::io::read(master, &mut *buf) {
            Ok(0) | Err(Errno::IO) => return Ok(false),
            Ok(n) => write_all(rustix::stdio::stdout(), &buf[..n])?,
            Err(Errno::AGAIN) => return Ok(true),
            Err(Errno::INTR) => {}
            Err(e) => return Err(Error::from(e).context("console read")),
        }
    }
}

/// `notify`: a NOTIFY_SOCKET to serve meanwhile (foreground `run`), forwarded once as in
/// `Signals::wait`.
pub fn proxy(main: &Main, signals: &Signals, master: &OwnedFd, notify: Option<&NotifySocket>) -> Result<u8> {
    let mut notify = notify;
    let stdin = rustix::stdio::stdin();
    let flags = rustix::fs::fcntl_getfl(master).map_err(|e| Error::from(e).context("console"))?;
    rustix::fs::fcntl_setfl(master, flags | OFlags::NONBLOCK).map_err(|e| Error::from(e).context("console"))?;
    let interactive = rustix::termios::isatty(stdin);
    let _raw = if interactive { RawMode::enter(stdin) } else { RawMode(None) };
    if interactive {
        copy_size(stdin, master);
    }
    let mut stdin_open = true;
    let mut master_open = true;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let mut fds = vec![PollFd::new(main.pidfd, PollFlags::IN), PollFd::new(signals.fd(), PollFlags::IN)];
        let master_at = master_open.then(|| {
            fds.push(PollFd::new(master, PollFlags::IN));
            fds.len() - 1
        });
        let stdin_at = stdin_open.then(|| {
            fds.push(PollFd::new(&stdin, PollFlags::IN));
            fds.len() - 1
        });
        let notify_at = notify.map(|n| {
            fds.push(PollFd::new(n, PollFlags::IN));
            fds.len() - 1
        });
        match poll(&mut fds, None) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(Error::from(e).context("console poll")),
        }
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        drop(fds);
        if notify_at.is_some_and(|i| ready[i])
            && notify.is_some_and(|n| n.handle(std::process::id() as i32).unwrap_or(true))
        {
            notify = None;
        }
        if ready[1] {
            let resize = || copy_size(stdin, master);
            signals.handle(main, interactive.then_some(&resize as &dyn Fn()));
        }
        if master_at.is_some_and(|i| ready[i]) {
            master_open = pump_master(master, &mut buf)?;
        }
        if stdin_at.is_some_and(|i| ready[i]) {
            match rustix::io::read(stdin, &mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => write_all(master.as_fd(), &buf[..n])?,
            }
        }
        if ready[0] {
            // The container is gone: what it wrote last is still in the pty.
            if master_open {
                pump_master(master, &mut buf)?;
            }
            return signals.reap(main);
        }
    }
}
