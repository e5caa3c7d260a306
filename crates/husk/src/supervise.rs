//! Foreground `run` and `exec`: forward the signals husk receives to the container process,
//! reap what husk inherits as a subreaper, and return the process's exit status (128+signal when
//! it was killed).

use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use libhusk::notify::NotifySocket;
use libhusk::{Error, Result};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::process::{Pid, WaitOptions};

/// What runc forwards: every catchable asynchronous signal but SIGCHLD (husk's own) — the
/// synchronous fault signals (SEGV, BUS, ILL, FPE, TRAP, SYS) cannot be blocked usefully, and
/// SIGPIPE is ignored by husk. The real-time signals follow.
const FORWARDED: &[libc::c_int] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGABRT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGTERM,
    libc::SIGSTKFLT,
    libc::SIGCONT,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGURG,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGWINCH,
    libc::SIGIO,
    libc::SIGPWR,
];

/// The main process being supervised.
pub struct Main<'a> {
    pub pid: i32,
    pub pidfd: &'a OwnedFd,
}

/// A signalfd over the forwarded signals (and SIGCHLD when husk is a subreaper), blocked before
/// the container process is cloned so none is lost; the child unblocks them before its execve.
pub struct Signals {
    fd: OwnedFd,
    reap_orphans: bool,
    /// The main process's status, if a reap of orphans collected it first.
    main_status: std::cell::Cell<Option<u8>>,
}

impl Signals {
    pub fn block(reap_orphans: bool) -> Result<Signals> {
        // SAFETY: sigset manipulation on a local set, then sigprocmask/signalfd on our own thread;
        // the returned fd is new and owned only here.
        let raw = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in FORWARDED.iter().copied().chain(libc::SIGRTMIN()..=libc::SIGRTMAX()) {
                libc::sigaddset(&mut set, s);
            }
            if reap_orphans {
                libc::sigaddset(&mut set, libc::SIGCHLD);
            }
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
        };
        if raw < 0 {
            return Err(Error::from(std::io::Error::last_os_error()).context("signalfd"));
        }
        // SAFETY: signalfd returned a fresh fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Signals { fd, reap_orphans, main_status: std::cell::Cell::new(None) })
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Handle what is pending: SIGWINCH goes to `on_winch` when there is one (a terminal husk
    /// proxies), SIGCHLD reaps orphans, the rest is forwarded to the main process.
    pub fn handle(&self, main: &Main, on_winch: Option<&dyn Fn()>) {
        while let Some(sig) = self.read() {
            match sig {
                libc::SIGWINCH if on_winch.is_some() => {
                    if let Some(f) = on_winch {
                        f()
                    }
                }
                libc::SIGCHLD => self.reap_orphans(main.pid),
                _ => {
                    if let Some(s) = rustix::process::Signal::from_named_raw(sig) {
                        let _ = rustix::process::pidfd_send_signal(main.pidfd, s);
                    }
                }
            }
        }
    }

    fn read(&self) -> Option<i32> {
        let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
        let n = rustix::io::read(self.fd.as_fd(), &mut info).ok()?;
        if n != info.len() {
            return None;
        }
        // ssi_signo is the first u32 of signalfd_siginfo.
        Some(u32::from_ne_bytes([info[0], info[1], info[2], info[3]]) as i32)
    }

    /// As a subreaper husk inherits the container's orphans (no pid namespace of its own):
    /// collect them so they do not stay zombies while we wait.
    fn reap_orphans(&self, main: i32) {
        if !self.reap_orphans {
            return;
        }
        loop {
            // Any child: rustix's `waitpid(None)` is wait4(0), our own process group only, and
            // the container's processes are in a session of their own.
            match rustix::process::wait(WaitOptions::NOHANG) {
                Ok(Some((pid, st))) => {
                    if pid.as_raw_nonzero().get() == main {
                        self.main_status.set(Some(exit_code(st)));
                    }
                }
                _ => return,
            }
        }
    }

    /// The main process's exit status once its pidfd is readable.
    pub fn reap(&self, main: &Main) -> Result<u8> {
        if let Some(code) = self.main_status.get() {
            return Ok(code);
        }
        let pid = Pid::from_raw(main.pid).ok_or_else(|| Error::msg("bad pid"))?;
        match rustix::process::waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, st))) => Ok(exit_code(st)),
            Ok(None) => Ok(0),
            // Collected by a SIGCHLD reap between the pidfd waking us and now.
            Err(rustix::io::Errno::CHILD) => Ok(self.main_status.get().unwrap_or(0)),
            Err(e) => Err(Error::from(e).context("wait for container")),
        }
    }

    /// Wait for the main process, forwarding signals meanwhile (and a service's READY=1 from
    /// `notify` to the caller's NOTIFY_SOCKET, once); its exit status.
    pub fn wait(&self, main: &Main, notify: Option<&NotifySocket>) -> Result<u8> {
        let mut notify = notify;
        loop {
            let mut fds = vec![PollFd::new(main.pidfd, PollFlags::IN), PollFd::new(&self.fd, PollFlags::IN)];
            if let Some(n) = notify {
                fds.push(PollFd::new(n, PollFlags::IN));
            }
            match poll(&mut fds, None) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(Error::from(e).context("wait for container")),
            }
            let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
            drop(fds);
            if ready[1] {
                self.handle(main, None);
            }
            if ready.get(2) == Some(&true) {
                // runc tells the caller husk's own pid in the foreground: husk is what it runs.
                if notify.is_some_and(|n| n.handle(std::process::id() as i32).unwrap_or(true)) {
                    notify = None;
                }
            }
            if ready[0] {
                return self.reap(main);
            }
        }
    }
}

fn exit_code(st: rustix::process::WaitStatus) -> u8 {
    match st.exit_status() {
        Some(code) => code as u8,
        None => 128u8.wrapping_add(st.terminating_signal().unwrap_or(0) as u8),
    }
}
