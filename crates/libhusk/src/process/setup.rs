//! The last steps before a container process runs its program, shared by the init (`create`)
//! and an exec'd process (`exec`) so that both follow one order:
//!
//! rlimits → scheduler and placement → close fds → cwd → LSM label files opened → bounding set →
//! user → capabilities → umask → no_new_privs → … → LSM labels and seccomp, last, right before
//! execve ([`Last::apply`])
//!
//! rlimits and real-time scheduling need privileges we are about to drop; the fds go before the
//! chdir (CVE-2024-21626); the bounding set needs CAP_SETPCAP, so it is dropped before the uid
//! change, and keepcaps carries the permitted set across it. The seccomp filter is loaded where
//! `seccomp::load_point` says: before the capability drop when loading it will need
//! CAP_SYS_ADMIN, before reporting ready when its notify fd must reach husk, else last.

use std::os::fd::{AsFd, RawFd};

use oci_spec::runtime::{Linux, LinuxMemoryPolicy, LinuxPersonality, Process};

use crate::capabilities::CapSets;
use crate::error::{Context, Error, Result};
use crate::lsm::ExecLabels;
use crate::process::{rlimits, sched, user};
use crate::seccomp::{self, LoadPoint, Prepared};
use crate::sync::{Channel, Msg};

/// Container-wide settings applied to every container process, the init and exec'd ones alike
/// (as runc main's setns init does).
#[derive(Debug, Clone, Copy, Default)]
pub struct Placement<'a> {
    pub personality: Option<&'a LinuxPersonality>,
    pub memory_policy: Option<&'a LinuxMemoryPolicy>,
    /// `linux.resources.cpu.cpus` is set: a scheduler the kernel refuses for it (SCHED_DEADLINE
    /// needs every CPU of its root domain) gets runc's explanation.
    pub cpuset: bool,
}

impl Placement<'_> {
    pub fn cpuset_in(linux: Option<&Linux>) -> bool {
        linux
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.cpu().as_ref())
            .and_then(|c| c.cpus().as_ref())
            .is_some_and(|c| !c.trim().is_empty())
    }
}

pub struct Finish<'a, 's> {
    pub process: &'a Process,
    pub placement: Placement<'a>,
    /// fds `0..keep_below` reach the program (stdio, LISTEN_FDS, --preserve-fds).
    pub keep_below: u32,
    /// husk's own fds that must survive until the execve (they are close-on-exec).
    pub also_keep: &'a [RawFd],
    /// `linux.seccomp`, compiled by husk.
    pub seccomp: Option<&'s Prepared>,
    /// husk's end: a notify fd of a filter loaded before the end goes there (for the agent).
    pub sync: &'a Channel,
    /// Whether setgroups is allowed in the process's user namespace, when known already.
    pub setgroups_allowed: Option<bool>,
}

/// What is applied right before execve: the LSM labels (for the next execve) and, unless it had
/// to go earlier, the seccomp filter. What runs under them is the exec trampoline (fcntl,
/// execveat/execve, sendto, exit_group: see trampoline.rs).
pub struct Last<'a> {
    labels: ExecLabels,
    seccomp: Option<&'a Prepared>,
}

impl<'a> Last<'a> {
    /// Both, now: for a process whose own code runs until its execve.
    pub fn apply(&self) -> Result<()> {
        self.labels.apply()?;
        if let Some(f) = self.seccomp {
            f.load()?;
        }
        Ok(())
    }

    /// The LSM labels, which take effect at the next execve (the trampoline's).
    pub fn apply_labels(&self) -> Result<()> {
        self.labels.apply()
    }

    /// The filter still to load right before the execve: the trampoline's to load where there is
    /// one (`Program::exec`), so that what runs under it before is only the execve.
    pub fn filter(&self) -> Option<&'a Prepared> {
        self.seccomp
    }
}

const CAP_SYS_ADMIN: u64 = 1 << 21;

pub fn finish<'s>(f: &Finish<'_, 's>) -> Result<Last<'s>> {
    let process = f.process;
    if let Some(rl) = process.rlimits() {
        rlimits::apply(rl)?;
    }
    apply_placement(process, &f.placement)?;
    close_fds(f.keep_below, f.also_keep)?;
    enter_cwd(process.cwd())?;
    // Opened while we may still mount the private procfs they are opened through.
    let labels = ExecLabels::open(process)?;

    let caps = CapSets::from_config(process.capabilities().as_ref());
    let no_new_privs = process.no_new_privileges() == Some(true);
    let point = f.seccomp.map(|s| seccomp::load_point(s, no_new_privs, caps.effective & CAP_SYS_ADMIN != 0));
    if point == Some(LoadPoint::BeforeCapDrop) {
        load_seccomp(f)?;
    }
    caps.drop_bounding()?;
    set_keepcaps(true)?;
    user::switch(process.user(), f.setgroups_allowed)?;
    set_keepcaps(false)?;
    caps.apply()?;
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(process.user().umask().unwrap_or(0o022)));
    if no_new_privs {
        rustix::thread::set_no_new_privs(true).ctx(|| "process.noNewPrivileges")?;
    }
    if point == Some(LoadPoint::BeforeReady) {
        load_seccomp(f)?;
    }
    Ok(Last { labels, seccomp: f.seccomp.filter(|_| point == Some(LoadPoint::BeforeExec)) })
}

/// Load the filter now; a notify fd goes to husk, which hands it to the agent.
fn load_seccomp(f: &Finish<'_, '_>) -> Result<()> {
    let Some(filter) = f.seccomp else { return Ok(()) };
    if let Some(fd) = filter.load()? {
        f.sync.send_with_fd(&Msg::SeccompFd, fd.as_fd())?;
    }
    Ok(())
}

/// Scheduler, I/O priority, personality and NUMA policy: before the capability drop, since
/// real-time policies need CAP_SYS_NICE.
fn apply_placement(process: &Process, placement: &Placement) -> Result<()> {
    if let Some(s) = process.scheduler() {
        sched::apply_scheduler(s, placement.cpuset)?;
    }
    if let Some(p) = process.io_priority() {
        sched::apply_io_priority(p)?;
    }
    if let Some(p) = placement.personality {
        sched::apply_personality(p)?;
    }
    if let Some(m) = placement.memory_policy {
        sched::apply_memory_policy(m)?;
    }
    Ok(())
}

fn set_keepcaps(on: bool) -> Result<()> {
    rustix::thread::set_keep_capabilities(on).ctx(|| "keep capabilities across setuid")
}

/// Close every fd the container must not see before we chdir (CVE-2024-21626: a leaked host
/// directory fd plus `cwd=/proc/self/fd/N` would put the process outside the rootfs).
fn close_fds(keep_below: u32, also_keep: &[RawFd]) -> Result<()> {
    let mut keep: Vec<u32> = also_keep.iter().map(|fd| *fd as u32).collect();
    keep.sort_unstable();
    let mut next = keep_below;
    for fd in keep {
        if fd > next {
            crate::syscalls::close_range(next, fd - 1).ctx(|| "close fds")?;
        }
        next = next.max(fd + 1);
    }
    crate::syscalls::close_range(next, u32::MAX).ctx(|| "close fds")
}

fn enter_cwd(cwd: &std::path::Path) -> Result<()> {
    rustix::process::chdir(cwd).ctx(|| format!("process.cwd: chdir {}", cwd.display()))?;
    // getcwd fails (or does not start with '/') when the cwd is not under our root.
    match rustix::process::getcwd(Vec::new()) {
        Ok(p) if p.as_bytes().starts_with(b"/") => Ok(()),
        _ => Err(Error::field("process.cwd", format!("{} is outside the container's root", cwd.display()))),
    }
}

/// The container's session keyring `_ses.<id>`: made by the init, joined by exec'd processes
/// (joining by name finds the existing one), so no container process sees the caller's.
pub fn join_session_keyring(id: &str) -> Result<()> {
    let name = std::ffi::CString::new(format!("_ses.{id}")).map_err(|_| Error::msg("keyring name"))?;
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: keyctl(JOIN_SESSION_KEYRING, name) reads a NUL-terminated string that outlives the call.
    let ret = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if ret < 0 {
        let err = std::io::Error::last_os_error();
        // Kernels without keyrings, or quota exhausted by many containers: runc goes on too.
        if !matches!(err.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EDQUOT)) {
            return Err(Error::from(err).context("join session keyring (use --no-new-keyring to skip)"));
        }
    }
    Ok(())
}

/// Until exec nothing in the container may ptrace us or read our memory (and /proc/<pid>/exe,
/// the husk binary, stays closed to it).
pub fn set_undumpable() {
    // SAFETY: PR_SET_DUMPABLE takes an integer.
    unsafe {
        libc::prctl(
            libc::PR_SET_DUMPABLE,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
}

/// The container starts with every signal at its default and none blocked: husk ignores SIGPIPE
/// (Rust's default), `run`/`exec` block the forwarded ones, and a caller may have left some
/// ignored (`nohup` ignores SIGHUP); ignored dispositions and the mask survive execve, and a
/// shell cannot even `trap` a signal that was ignored when it started.
pub fn reset_signals() {
    // The kernel's struct sigaction; the C library's refuses its own signals 32 and 33, which
    // are still ignored if the caller's were (the kernel knows no difference).
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }
    let default = KernelSigaction { handler: libc::SIG_DFL, flags: 0, restorer: 0, mask: 0 };
    // SAFETY: resetting dispositions and the mask of our own single thread, right before execve;
    // rt_sigaction reads `default` only, and fails harmlessly on SIGKILL and SIGSTOP.
    unsafe {
        for sig in 1..=64 {
            libc::syscall(libc::SYS_rt_sigaction, sig, &default as *const KernelSigaction, 0usize, 8usize);
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

pub fn exit(code: i32) -> ! {
    // SAFETY: _exit skips atexit handlers and stdio flushing that belong to the parent's copy.
    unsafe { libc::_exit(code) }
}
