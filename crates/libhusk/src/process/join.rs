//! A process exec'd into a container: the child of husk's clone3, born in husk's own pid
//! namespace and, on cgroup v2, in the container's cgroup. It joins the v1 cgroups and then every
//! namespace of the init in one setns through the init's pidfd (the pid namespace only for its
//! children), sets itself up exactly as the init does (`process::setup`) and has the exec
//! trampoline fork the program's process into the container's pid namespace, as a child of husk
//! (`Start::Fork`): nothing in the container ever sees a process that runs the husk binary (see
//! trampoline.rs). It never returns.
//!
//! It is a single-threaded copy of husk, so it may allocate and run ordinary code.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use oci_spec::runtime::Process;

use crate::cgroups::ExecCgroups;
use crate::console;
use crate::error::{Context, Result};
use crate::namespaces;
use crate::process::setup::{self, exit, Finish};
use crate::process::trampoline::Trampoline;
use crate::process::{exec, sched};
use crate::seccomp::Prepared;
use crate::sync::{Channel, Msg};

/// Where the exec'd process's terminal goes, if it has one.
pub enum ExecConsole {
    None,
    /// The caller's --console-socket.
    Socket(OwnedFd),
    /// husk proxies it: the master goes back over the sync channel.
    Husk,
}

pub struct JoinArgs<'a> {
    /// The final process: the container's defaults with `exec`'s flags or `--process` applied.
    pub process: &'a Process,
    /// The container's init, whose namespaces we join, and its pid.
    pub init: &'a OwnedFd,
    pub init_pid: i32,
    /// CLONE_NEW* flags to join (the pid namespace for our children; time comes next).
    pub namespaces: u64,
    /// The init's `time_for_children`: the container's time namespace, when it has one.
    pub time_ns: Option<&'a OwnedFd>,
    /// The init's root, for a container without a mount namespace of its own (the init chrooted).
    pub chroot_to: Option<&'a OwnedFd>,
    pub cgroups: &'a ExecCgroups,
    pub sync: Channel,
    pub console: ExecConsole,
    /// fds 0..keep_fds reach the program (stdio and --preserve-fds).
    pub keep_fds: u32,
    /// The container id (its session keyring is `_ses.<id>`).
    pub id: &'a str,
    pub no_new_keyring: bool,
    pub trampoline: Option<&'a Trampoline>,
    /// The container's seccomp filter (from its state dir).
    pub seccomp: Option<&'a Prepared>,
    /// Born outside the container's cgroup: wait for `Go`, once the parent had us moved in.
    pub wait_for_cgroup: bool,
    /// The container's personality, memory policy and cpuset, as the init has them.
    pub placement: setup::Placement<'a>,
}

pub fn run(args: JoinArgs) -> ! {
    let terminal = args.process.terminal() == Some(true);
    // The channel lives until the execve closes it.
    crate::sync::log_through(&args.sync);
    let err = match setup(&args) {
        Ok((program, last)) => {
            setup::reset_signals();
            // Last, so nothing husk still does needs what they forbid; the filter, if it is not
            // loaded yet, by the trampoline right before the program's execve.
            match last.apply_labels() {
                Ok(()) => program.exec(args.trampoline, args.sync.fd(), exec::Start::Fork { terminal }, last.filter()),
                Err(e) => e,
            }
        }
        Err(e) => e,
    };
    let _ = args.sync.send(&Msg::Error(err.to_string()));
    exit(exec::exec_failure_status(err.errno()))
}

fn setup<'a>(args: &JoinArgs<'a>) -> Result<(exec::Program, setup::Last<'a>)> {
    let process = args.process;
    if args.wait_for_cgroup {
        args.sync.expect(Msg::Go)?;
    }
    // Still in the host's mount namespace: cgroupfs and our own /proc are reachable.
    args.cgroups.join_v1()?;
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .ctx(|| format!("process.oomScoreAdj: set {adj}"))?;
    }
    // In the container's cgroup now (runc main's order: `initial` before, `final` after).
    let affinity = process.exec_cpu_affinity().as_ref();
    let given = |s: Option<&String>| s.is_some_and(|s| !s.is_empty());
    match affinity {
        Some(a) if given(a.cpu_affinity_final().as_ref()) => {
            sched::set_affinity("process.execCPUAffinity.final", a.cpu_affinity_final().as_deref().unwrap_or(""))?
        }
        // The spec: without `final`, the kernel decides what follows `initial`.
        Some(a) if given(a.initial().as_ref()) => {}
        // Not husk's caller's affinity (a `taskset` around `husk exec`): every CPU the cgroup has.
        _ => sched::reset_affinity(),
    }
    // Read while /proc is still ours: in the container's mount namespace /proc is a procfs of
    // its pid namespace, which we are not in.
    let setgroups_allowed = args.namespaces & libc::CLONE_NEWUSER as u64 == 0
        || crate::userns::setgroups_allowed(&args.init_pid.to_string());
    namespaces::join_process(args.init.as_fd(), args.namespaces).map_err(|e| match e.errno() {
        Some(libc::ESRCH) => crate::error::Error::msg("cannot exec in a stopped container: container not running"),
        _ => e,
    })?;
    tracing::debug!("exec: joined the container's namespaces ({:#x})", args.namespaces);
    if let Some(fd) = args.time_ns {
        namespaces::join_process(fd.as_fd(), libc::CLONE_NEWTIME as u64)?;
    }
    if let Some(root) = args.chroot_to {
        rustix::process::fchdir(root).ctx(|| "chdir to the container's root")?;
        rustix::process::chroot(".").ctx(|| "chroot to the container's root")?;
    }
    if !args.no_new_keyring {
        setup::join_session_keyring(args.id)?;
    }
    if process.terminal() == Some(true) {
        let pty = console::open_pty(process.console_size().as_ref())?;
        match &args.console {
            ExecConsole::Socket(sock) => pty.send_master(sock)?,
            ExecConsole::Husk => {
                // Before the master goes: the program may write before husk reads this message.
                console::for_proxy(&pty.master)?;
                args.sync.send_with_fd(&Msg::Console, pty.master.as_fd())?
            }
            ExecConsole::None => {}
        }
        // The pty becomes the controlling terminal of the program's process, which the
        // trampoline forks: a session leader of its own (see `Start::Fork`).
        pty.into_stdio(process.user().uid())?;
    }

    let env = exec::prepare_env(process.env().clone().unwrap_or_default(), process.user().uid());
    let proc_args = process.args().as_deref().unwrap_or_default();
    let path = exec::lookup(&proc_args[0], &env)?;
    let program = exec::Program::new(&path, proc_args, &env)?;
    tracing::debug!("exec: program {}", path.display());

    let mut keep = vec![args.sync.fd().as_raw_fd()];
    keep.extend(args.trampoline.map(|t| t.fd().as_raw_fd()));
    let last = setup::finish(&Finish {
        process,
        placement: args.placement,
        keep_below: args.keep_fds,
        also_keep: &keep,
        seccomp: args.seccomp,
        sync: &args.sync,
        setgroups_allowed: Some(setgroups_allowed),
    })?;
    Ok((program, last))
}
