//! `exec`: run another process in a created or running container. The parent side lives here:
//! the state (read once, nothing re-parsed from config.json), the status, the process, then one
//! clone3 straight into the container's (cgroup v2) cgroup. The child's side is `process::join`:
//! it joins the container and has the exec trampoline fork the program's process into the
//! container's pid namespace as our child (CLONE_PARENT), so the process we wait for is ours and
//! nothing in the container ever runs the husk binary (trampoline.rs).

mod process;

use std::borrow::Cow;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

pub use process::{parse_process_json, parse_user, ProcessFlags, ProcessSpec};
use rustix::process::{pidfd_open, Pid, PidfdFlags};

use crate::cgroups::ExecCgroups;
use crate::config::Bundle;
use crate::error::{Error, Result};
use crate::namespaces::NsPlan;
use crate::process::join::{self, ExecConsole, JoinArgs};
use crate::process::trampoline::Trampoline;
use crate::process::{exec as program, sched, setup};
use crate::seccomp::{self, Prepared};
use crate::state::{self, ExecConfig, State, StateDir, Status};
use crate::sync::{self, Msg};
use crate::syscalls::{self, Forked};
use crate::{console, fdpass};

#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub root: PathBuf,
    pub id: String,
    pub process: ProcessSpec,
    pub detach: bool,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub pidfd_socket: Option<PathBuf>,
    pub preserve_fds: u32,
    /// `--cgroup`: sub-cgroups of the container's to run in.
    pub cgroup: Vec<String>,
    pub ignore_paused: bool,
}

/// A started exec'd process (it has execve'd its program).
pub struct Exec {
    /// Its pid in husk's pid namespace.
    pub pid: i32,
    pub pidfd: OwnedFd,
    /// The pty master husk proxies: a terminal without --console-socket, in the foreground.
    pub console: Option<OwnedFd>,
}

/// What callers match on (drop-in.md): runc's sentence plus `container not running`.
fn stopped() -> Error {
    Error::msg("cannot exec in a stopped container: container not running")
}

pub fn exec(opts: &ExecOptions) -> Result<Exec> {
    let dir = StateDir::open(&opts.root, &opts.id)?;
    let state = dir.load()?;
    crate::crashpoint::here("exec:loaded");
    // Opened before the status is read: from then on the pid cannot be recycled under us, and
    // the status check is what tells it is still the init.
    let init = Pid::from_raw(state.init.pid).and_then(|p| pidfd_open(p, PidfdFlags::empty()).ok());
    match state.status(&dir) {
        _ if init.is_none() => return Err(stopped()),
        Status::Created | Status::Running => {}
        Status::Paused if opts.ignore_paused => {}
        Status::Paused => {
            return Err(Error::msg("cannot exec in a paused container (use --ignore-paused to override)"))
        }
        Status::Stopped => return Err(stopped()),
        Status::Creating => return Err(Error::msg("cannot exec in a container that is still being created")),
    }
    let init = init.ok_or_else(stopped)?;
    let config = match &state.exec {
        Some(c) => Cow::Borrowed(c),
        None => Cow::Owned(config_from_bundle(&state)?),
    };
    let process = process::build(&opts.process, &config.process)?;
    let terminal = process.terminal() == Some(true);
    if terminal && opts.detach && opts.console_socket.is_none() {
        return Err(Error::msg("cannot allocate tty if husk will detach without setting console socket"));
    }
    if !terminal && opts.console_socket.is_some() {
        return Err(Error::msg("cannot use console socket if husk will not allocate tty"));
    }

    let console = match (&opts.console_socket, terminal) {
        (Some(path), _) => ExecConsole::Socket(console::connect(path)?),
        (None, true) => ExecConsole::Husk,
        (None, false) => ExecConsole::None,
    };
    let cgroups = state.cgroup.for_exec(&opts.cgroup)?;
    // The filter create compiled and saved: no config.json, no libseccomp here.
    let filter = state.seccomp.as_ref().map(|r| Prepared::from_state(&dir.fd, r)).transpose()?;
    // As in create: the agent is connected before the process exists.
    let agent = match state.seccomp.as_ref().filter(|r| r.notify) {
        Some(r) => Some(seccomp::notify::connect_agent(
            r.listener_path.as_deref().ok_or_else(|| Error::field("linux.seccomp.listenerPath", "missing"))?,
        )?),
        None => None,
    };
    let trampoline = Trampoline::new()?;
    let (parent_end, child_end) = sync::pair()?;
    if let Some(cpus) = process.exec_cpu_affinity().as_ref().and_then(|a| a.initial().as_deref()) {
        sched::set_affinity("process.execCPUAffinity.initial", cpus)?;
    }
    // The child inherits this: never dumpable, so nothing can ptrace it or open its
    // /proc/<pid>/exe (the husk binary) before it execs. It stays in our pid namespace, which the
    // container cannot see into (see trampoline.rs).
    setup::set_undumpable();
    // The container's time namespace is the one the init made for its children (and entered
    // itself since namespaces::enter_time_ns_for_children; an older husk's init did not).
    let time_ns = match config.namespaces & libc::CLONE_NEWTIME as u64 {
        0 => None,
        _ => Some(open_proc(&format!("/proc/{}/ns/time_for_children", state.init.pid))?),
    };
    // A container without a mount namespace of its own is its init's chroot: so is the process.
    let chroot_to = match config.namespaces & libc::CLONE_NEWNS as u64 {
        0 => Some(
            rustix::fs::open(
                format!("/proc/{}/root", state.init.pid),
                rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| Error::os("open the container's root", e.raw_os_error()))?,
        ),
        _ => None,
    };
    let mut user_manager =
        if cgroups.v2.is_some() && opts.cgroup.is_empty() { state.cgroup.user_manager()? } else { None };
    // The CLI has checked that every one of them is open; wrapping would close stdio.
    let keep_fds = opts
        .preserve_fds
        .checked_add(3)
        .ok_or_else(|| Error::msg(format!("--preserve-fds {}: more fds than there can be", opts.preserve_fds)))?;
    let (forked, attach_later) = clone_child(&cgroups, user_manager.is_some());
    let (child, child_pidfd) = match forked? {
        Forked::Child => {
            // Both processes return from clone3: nothing below this arm may run in the child.
            drop(parent_end);
            join::run(JoinArgs {
                process: &process,
                init: &init,
                init_pid: state.init.pid,
                namespaces: config.namespaces & !(libc::CLONE_NEWTIME as u64),
                time_ns: time_ns.as_ref(),
                chroot_to: chroot_to.as_ref(),
                cgroups: &cgroups,
                sync: child_end,
                console,
                keep_fds,
                id: &state.id,
                no_new_keyring: config.no_new_keyring,
                trampoline: trampoline.as_ref(),
                seccomp: filter.as_ref(),
                wait_for_cgroup: attach_later,
                placement: setup::Placement {
                    personality: config.personality.as_ref(),
                    memory_policy: config.memory_policy.as_ref(),
                    cpuset: config.cpuset,
                },
            })
        }
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    if let Some(manager) = user_manager.as_mut().filter(|_| attach_later) {
        let attached = manager.attach(child).and_then(|()| parent_end.send(&Msg::Go));
        if let Err(e) = attached {
            let _ = rustix::process::pidfd_send_signal(&child_pidfd, rustix::process::Signal::KILL);
            let _ = rustix::process::waitpid(Pid::from_raw(child), rustix::process::WaitOptions::empty());
            return Err(e.context("exec: join the container's cgroup"));
        }
    }
    drop(child_end);
    drop(console);
    drop(cgroups);
    crate::crashpoint::here("exec:cloned");
    tracing::debug!("exec {}: process cloned as pid {child}", state.id);
    let started = wait_exec(&parent_end, &process, &state, agent);
    // Our child is done either way: it forked the program's process and exited, or failed.
    let _ = rustix::process::waitpid(Pid::from_raw(child), rustix::process::WaitOptions::empty());
    drop(child_pidfd);
    let (pid, master) = started?;
    let raw = Pid::from_raw(pid).ok_or_else(|| Error::msg("exec: bad pid"))?;
    // Our own child (CLONE_PARENT): nobody else can reap it, so the pid is still its own.
    let pidfd =
        pidfd_open(raw, PidfdFlags::empty()).map_err(|e| Error::from(e).context("pidfd of the exec'd process"))?;
    crate::crashpoint::here("exec:started");
    tracing::debug!("exec {}: pid {pid} runs its program", state.id);
    if let Err(e) = hand_over(opts, pid, &pidfd) {
        // A process the caller cannot find must not run on unseen (runc kills it too).
        let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
        let _ = rustix::process::waitpid(Pid::from_raw(pid), rustix::process::WaitOptions::empty());
        return Err(e);
    }
    crate::crashpoint::here("exec:handed-over");
    Ok(Exec { pid, pidfd, console: master })
}

/// `--pid-file` and `--pidfd-socket`: what the caller tracks the process by.
fn hand_over(opts: &ExecOptions, pid: i32, pidfd: &OwnedFd) -> Result<()> {
    if let Some(pid_file) = &opts.pid_file {
        let path = std::path::absolute(pid_file).unwrap_or_else(|_| pid_file.clone());
        state::write_atomic(&path, pid.to_string().as_bytes()).map_err(|e| e.context("--pid-file"))?;
    }
    if let Some(path) = &opts.pidfd_socket {
        send_pidfd(path, pidfd)?;
    }
    Ok(())
}

fn open_proc(path: &str) -> Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map_err(|e| Error::from(e).context(path))
}

/// clone3 straight into the container's cgroup2 cgroup. A rootless husk may not move a process
/// there when its own cgroup and the container's meet only in one of root's (its session scope
/// and a scope of its user manager do): then, with `via_manager`, the child is born here and
/// the user's manager moves it (`true`: it waits for that).
fn clone_child(cgroups: &ExecCgroups, via_manager: bool) -> (Result<Forked>, bool) {
    let into = cgroups.v2.as_ref().map(|f| f.as_fd());
    match syscalls::clone3(0, into) {
        Err(rustix::io::Errno::ACCESS) if via_manager => {
            (syscalls::clone3(0, None).map_err(|e| Error::from(e).context("clone3")), true)
        }
        Err(rustix::io::Errno::ACCESS) if into.is_some() => (
            Err(Error::msg(
                "clone3 into the container's cgroup: permission denied (this user may move a process only \
                 between cgroups whose common ancestor it owns: run husk from inside the delegated subtree, or \
                 use --systemd-cgroup)",
            )),
            false,
        ),
        r => (r.map_err(|e| Error::from(e).context("clone3")), false),
    }
}

/// Until the program runs: the pty master (if husk proxies the terminal), a seccomp notify fd
/// (for the agent), a setup error, the pid of the program's process (forked by the trampoline
/// as our child), or the report of its failed execve. The channel closes when our child has
/// exited and the program's process exec'd. A process that failed to exec is reaped here.
fn wait_exec(
    sync: &sync::Channel,
    process: &oci_spec::runtime::Process,
    state: &State,
    mut agent: Option<OwnedFd>,
) -> Result<(i32, Option<OwnedFd>)> {
    let mut master = None;
    let mut pid = None;
    let mut failed = None;
    // The agent is told the pid of the process that runs the program, which the trampoline
    // forks after the filter was loaded: the fd waits for it (its execve may itself wait for
    // the agent, so not a moment longer).
    let mut notify_fd = None;
    loop {
        match sync.recv_with_fd()? {
            (None, _) => break,
            (Some(Msg::Console), fd) => master = fd,
            (Some(Msg::SeccompFd), Some(fd)) => notify_fd = Some(fd),
            (Some(Msg::Error(text)), _) => return Err(Error::msg(text)),
            (Some(Msg::Pid(p)), _) => {
                pid = Some(p);
                if let Some(fd) = notify_fd.take() {
                    super::create::seccomp_to_agent(state, Status::Running, p, &fd, agent.take())?;
                }
            }
            (Some(Msg::CloneFailed(errno)), _) => {
                failed = Some(Error::os("exec: fork the container process", errno));
            }
            (Some(Msg::SeccompFailed(errno)), _) => failed = Some(crate::seccomp::load_error(errno)),
            (Some(Msg::ExecFailed(errno)), _) => {
                let arg0 = process.args().as_ref().and_then(|a| a.first()).cloned().unwrap_or_default();
                let path = std::ffi::CString::new(arg0).unwrap_or_default();
                failed = Some(program::exec_error(&path, errno));
            }
            (Some(other), _) => return Err(Error::msg(format!("exec: unexpected message {other:?}"))),
        }
    }
    match (pid, failed) {
        (Some(p), None) => Ok((p, master)),
        (p, Some(e)) => {
            if let Some(p) = p.and_then(Pid::from_raw) {
                let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty());
            }
            Err(e)
        }
        (None, None) => Err(Error::msg("exec: the process exited before it started the program")),
    }
}

/// `--pidfd-socket`: the process's pidfd goes to the caller (runc 1.2's protocol: a stream
/// socket, SCM_RIGHTS).
pub fn send_pidfd(path: &std::path::Path, pidfd: &OwnedFd) -> Result<()> {
    let sock = fdpass::connect(path, "--pidfd-socket")?;
    fdpass::send_fd(&sock, b"pidfd", pidfd.as_fd()).map_err(|e| e.context("--pidfd-socket"))
}

/// What exec needs from a container's config, recorded in its state by `create`.
pub(crate) fn exec_config(spec: &oci_spec::runtime::Spec, plan: &NsPlan, no_new_keyring: bool) -> Option<ExecConfig> {
    let process = spec.process().clone()?;
    let linux = spec.linux().as_ref();
    Some(ExecConfig {
        process,
        namespaces: plan.listed,
        no_new_keyring,
        pid_ns_joined: plan.pid_ns_path().is_some(),
        personality: linux.and_then(|l| l.personality().clone()),
        memory_policy: linux.and_then(|l| l.memory_policy().clone()),
        cpuset: setup::Placement::cpuset_in(linux),
    })
}

/// A state written before husk recorded `exec` (an older husk): read the bundle once.
fn config_from_bundle(state: &State) -> Result<ExecConfig> {
    let bundle = Bundle::load(&state.bundle).map_err(|e| e.context("exec: read the container's config"))?;
    let plan = NsPlan::from_config(bundle.spec.linux().as_ref())?;
    exec_config(&bundle.spec, &plan, false).ok_or_else(|| Error::field("process", "missing"))
}

impl std::fmt::Debug for Exec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exec").field("pid", &self.pid).finish()
    }
}
