//! `run`: create + start, then (unless detached) wait for the program, forwarding signals to it,
//! and exit with its status (128+signal when killed), deleting the container unless --keep.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use libhusk::container::{self, CreateOptions};
use libhusk::{Error, Result};
use rustix::event::{poll, PollFd, PollFlags};

/// Signals a terminal or supervisor sends to `husk run` that belong to the container.
const FORWARDED: &[libc::c_int] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCONT,
];

pub fn run(opts: &CreateOptions, detach: bool, keep: bool, no_subreaper: bool) -> Result<u8> {
    if detach {
        container::create(opts)?;
        start_or_cleanup(opts)?;
        return Ok(0);
    }
    if !no_subreaper {
        // Orphans of a container without its own pid namespace come to us, not to PID 1.
        let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
    }
    // Blocked before the clone so nothing is lost; the init unblocks them before exec.
    let signals = block_forwarded()?;
    let opts = CreateOptions { own_console: true, ..opts.clone() };
    let opts = &opts;
    let created = container::create(opts)?;
    start_or_cleanup(opts)?;
    libhusk::crashpoint::here("run:started");
    let code = wait(created.pid, &created.pidfd, created.console.as_ref(), &signals)?;
    libhusk::crashpoint::here("run:exited");
    if !keep {
        container::delete(&opts.root, &opts.id, true)?;
    }
    Ok(code)
}

/// The signals a foreground container gets from us, blocked and readable from a signalfd.
pub(crate) fn block_forwarded() -> Result<SignalFd> {
    SignalFd::block(FORWARDED)
}

/// Wait in the foreground for a running container's init (our child), forwarding signals and
/// proxying its pty when we hold the master; its exit status as `run` reports it.
pub(crate) fn wait(pid: i32, pidfd: &OwnedFd, console: Option<&OwnedFd>, signals: &SignalFd) -> Result<u8> {
    match console {
        Some(master) => crate::tty::proxy(pid, pidfd, signals, master),
        None => wait_forwarding(pid, pidfd, signals),
    }
}

fn start_or_cleanup(opts: &CreateOptions) -> Result<()> {
    container::start(&opts.root, &opts.id).inspect_err(|_| {
        let _ = container::delete(&opts.root, &opts.id, true);
    })
}

fn wait_forwarding(pid: i32, pidfd: &OwnedFd, signals: &SignalFd) -> Result<u8> {
    loop {
        let mut fds = [PollFd::new(pidfd, PollFlags::IN), PollFd::new(&signals.fd, PollFlags::IN)];
        match poll(&mut fds, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::from(e).context("wait for container")),
        }
        if !fds[1].revents().is_empty() {
            if let Some(sig) = signals.read() {
                if let Some(s) = rustix::process::Signal::from_named_raw(sig) {
                    let _ = rustix::process::pidfd_send_signal(pidfd, s);
                }
            }
        }
        if !fds[0].revents().is_empty() {
            return reap(pid);
        }
    }
}

pub(crate) fn reap(pid: i32) -> Result<u8> {
    let pid = rustix::process::Pid::from_raw(pid).ok_or_else(|| Error::msg("bad pid"))?;
    let status = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
        .map_err(|e| Error::from(e).context("wait for container"))?;
    let code = match status {
        Some((_, st)) if st.exit_status().is_some() => st.exit_status().unwrap_or(0) as u8,
        Some((_, st)) => 128u8.wrapping_add(st.terminating_signal().unwrap_or(0) as u8),
        None => 0,
    };
    Ok(code)
}

/// A signalfd over the forwarded signals (rustix does not wrap signalfd).
pub(crate) struct SignalFd {
    pub(crate) fd: OwnedFd,
}

impl SignalFd {
    fn block(signals: &[libc::c_int]) -> Result<SignalFd> {
        // SAFETY: sigset manipulation on a local set, then sigprocmask/signalfd on our own thread;
        // the returned fd is new and owned only here.
        let raw = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in signals {
                libc::sigaddset(&mut set, *s);
            }
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            libc::signalfd(-1, &set, libc::SFD_CLOEXEC)
        };
        if raw < 0 {
            return Err(Error::from(std::io::Error::last_os_error()).context("signalfd"));
        }
        // SAFETY: signalfd returned a fresh fd that nothing else owns.
        Ok(SignalFd { fd: unsafe { OwnedFd::from_raw_fd(raw) } })
    }

    pub(crate) fn read(&self) -> Option<i32> {
        let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
        let n = rustix::io::read(self.fd.as_fd(), &mut info).ok()?;
        if n != info.len() {
            return None;
        }
        // ssi_signo is the first u32 of signalfd_siginfo.
        let _ = self.fd.as_raw_fd();
        Some(u32::from_ne_bytes([info[0], info[1], info[2], info[3]]) as i32)
    }
}
