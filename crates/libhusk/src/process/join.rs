//! A process exec'd into a container: the child of husk's clone3, born in the container's pid
//! namespace (husk entered it for its children) and, on cgroup v2, in its cgroup. It joins the
//! v1 cgroups and then every other namespace of the init in one setns through the init's pidfd,
//! sets itself up exactly as the init does (`process::setup`) and execs. It never returns.
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
use crate::process::{exec, sched, user};
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
    /// The container's init, whose namespaces we join.
    pub init: &'a OwnedFd,
    /// CLONE_NEW* flags to join (the pid namespace is already ours, time comes next).
    pub namespaces: u64,
    /// The init's `time_for_children`: the container's time namespace, when it has one.
    pub time_ns: Option<&'a OwnedFd>,
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
    let err = match setup(&args) {
        Ok((program, last)) => {
            setup::reset_signals();
            // Last, so nothing husk still does needs what they forbid.
            match last.apply() {
                Ok(()) => program.exec(args.trampoline, args.sync.fd()),
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
    namespaces::join_process(args.init.as_fd(), args.namespaces)?;
    if let Some(fd) = args.time_ns {
        namespaces::join_process(fd.as_fd(), libc::CLONE_NEWTIME as u64)?;
    }
    if !args.no_new_keyring {
        setup::join_session_keyring(args.id)?;
    }
    if process.terminal() == Some(true) {
        let pty = console::open_pty(process.console_size().as_ref())?;
        match &args.console {
            ExecConsole::Socket(sock) => pty.send_master(sock)?,
            ExecConsole::Husk => args.sync.send_with_fd(&Msg::Console, pty.master.as_fd())?,
            ExecConsole::None => {}
        }
        pty.become_terminal()?;
    }

    let env: Vec<String> = process.env().clone().unwrap_or_default();
    let proc_args = process.args().as_deref().unwrap_or_default();
    let path = exec::lookup(&proc_args[0], &env)?;
    let mut env = env;
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user::home_dir(process.user().uid())));
    }
    let program = exec::Program::new(&path, proc_args, &env)?;

    let mut keep = vec![args.sync.fd().as_raw_fd()];
    keep.extend(args.trampoline.map(|t| t.fd().as_raw_fd()));
    let last = setup::finish(&Finish {
        process,
        placement: args.placement,
        keep_below: args.keep_fds,
        also_keep: &keep,
        seccomp: args.seccomp,
        sync: &args.sync,
    })?;
    Ok((program, last))
}
