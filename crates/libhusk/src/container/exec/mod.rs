//! `exec`: run another process in a created or running container. The parent side lives here:
//! the state (read once, nothing re-parsed from config.json), the status, the process, then one
//! clone3 straight into the container's pid namespace and (cgroup v2) cgroup. The child's side
//! is `process::join`.

mod process;

use std::borrow::Cow;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

pub use process::{parse_process_json, parse_user, ProcessFlags, ProcessSpec};
use rustix::process::{pidfd_open, Pid, PidfdFlags};

use crate::cgroups::ExecCgroups;
use crate::config::Bundle;
use crate::error::{Error, Result};
use crate::namespaces::{self, NsPlan};
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
    // The child inherits this: never dumpable, so nothing in the container can ptrace it or open
    // its /proc/<pid>/exe (the husk binary) before it execs.
    setup::set_undumpable();
    let pid_ns = config.namespaces & libc::CLONE_NEWPID as u64;
    // The container's time namespace is the one the init made for its children (and entered
    // itself since namespaces::enter_time_ns_for_children; an older husk's init did not).
    let time_ns = match config.namespaces & libc::CLONE_NEWTIME as u64 {
        0 => None,
        _ => Some(open_proc(&format!("/proc/{}/ns/time_for_children", state.init.pid))?),
    };
    // Our child is born in the container's pid namespace (husk itself stays where it is), and
    // later children of this process are not.
    let mut own_pid_ns = match pid_ns {
        0 => None,
        _ => Some(open_proc("/proc/self/ns/pid")?),
    };
    // Connected before husk may join the container's user namespace (see UserManager).
    let mut user_manager =
        if cgroups.v2.is_some() && opts.cgroup.is_empty() { state.cgroup.user_manager()? } else { None };
    let joined_user = join_pid_ns_for_children(&init, pid_ns, config.namespaces)?;
    if joined_user {
        // No way back to the host's pid namespace from the container's user namespace; this
        // process makes no other child.
        own_pid_ns = None;
    }
    let keep_fds = 3 + opts.preserve_fds;
    let (forked, attach_later) = clone_child(&cgroups, user_manager.is_some());
    if let (Ok(Forked::Parent { .. }) | Err(_), Some(own)) = (&forked, own_pid_ns) {
        namespaces::restore_pid_ns_for_children(own)?;
    }
    let (pid, pidfd) = match forked? {
        Forked::Child => {
            // Both processes return from clone3: nothing below this arm may run in the child.
            drop(parent_end);
            join::run(JoinArgs {
                process: &process,
                init: &init,
                namespaces: config.namespaces
                    & !pid_ns
                    & !(libc::CLONE_NEWTIME as u64)
                    & if joined_user { !(libc::CLONE_NEWUSER as u64) } else { !0 },
                time_ns: time_ns.as_ref(),
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
        let attached = manager.attach(pid).and_then(|()| parent_end.send(&Msg::Go));
        if let Err(e) = attached {
            let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
            let _ = rustix::process::waitpid(Pid::from_raw(pid), rustix::process::WaitOptions::empty());
            return Err(e.context("exec: join the container's cgroup"));
        }
    }
    drop(child_end);
    drop(console);
    drop(cgroups);
    crate::crashpoint::here("exec:cloned");
    let master = match wait_exec(&parent_end, &process, &state, pid, agent) {
        Ok(master) => master,
        Err(e) => {
            let _ = rustix::process::waitpid(Pid::from_raw(pid), rustix::process::WaitOptions::empty());
            return Err(e);
        }
    };
    crate::crashpoint::here("exec:started");
    if let Err(e) = hand_over(opts, pid, &pidfd) {
        // A process the caller cannot find must not run on unseen (runc kills it too).
        let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
        let _ = rustix::process::waitpid(Pid::from_raw(pid), rustix::process::WaitOptions::empty());
        return Err(e);
    }
    crate::crashpoint::here("exec:handed-over");
    Ok(Exec { pid, pidfd, console: master })
}

/// Make the container's pid namespace the one our next child is born in. setns into a pid
/// namespace needs CAP_SYS_ADMIN in the caller's own user namespace too, which an unprivileged
/// husk (rootless) lacks: it joins the container's user namespace first, in the same setns, and
/// stays there (`true`); the child then joins the rest from inside it.
fn join_pid_ns_for_children(init: &OwnedFd, pid_ns: u64, container_ns: u64) -> Result<bool> {
    let user = libc::CLONE_NEWUSER as u64;
    let gone = |e: Error| match e.errno() {
        Some(libc::ESRCH) => stopped(),
        _ => e,
    };
    match namespaces::join_process(init.as_fd(), pid_ns) {
        Ok(()) => Ok(false),
        Err(e) if e.errno() == Some(libc::EPERM) && pid_ns != 0 && container_ns & user != 0 => {
            namespaces::join_process(init.as_fd(), pid_ns | user).map_err(gone)?;
            Ok(true)
        }
        Err(e) => Err(gone(e)),
    }
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
/// (for the agent), a setup error, or the trampoline's report of a failed execve. The channel closes when the execve succeeds.
fn wait_exec(
    sync: &sync::Channel,
    process: &oci_spec::runtime::Process,
    state: &State,
    pid: i32,
    mut agent: Option<OwnedFd>,
) -> Result<Option<OwnedFd>> {
    let mut master = None;
    loop {
        match sync.recv_with_fd()? {
            (None, _) => return Ok(master),
            (Some(Msg::Console), fd) => master = fd,
            (Some(Msg::SeccompFd), Some(fd)) => {
                super::create::seccomp_to_agent(state, Status::Running, pid, &fd, agent.take())?
            }
            (Some(Msg::Error(text)), _) => return Err(Error::msg(text)),
            (Some(Msg::ExecFailed(errno)), _) => {
                let arg0 = process.args().as_ref().and_then(|a| a.first()).cloned().unwrap_or_default();
                let path = std::ffi::CString::new(arg0).unwrap_or_default();
                return Err(program::exec_error(&path, errno));
            }
            (Some(other), _) => return Err(Error::msg(format!("exec: unexpected message {other:?}"))),
        }
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
