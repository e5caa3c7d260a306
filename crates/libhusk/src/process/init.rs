//! The container's init: runs in the child of clone3, inside the new namespaces. It builds the
//! container around itself, reports `Ready`, waits for `start`, then execs the user program.
//!
//! husk is single-threaded when it clones, so this child is a clean single-threaded copy: it may
//! allocate and run ordinary code. It never returns: it execs or exits.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use rustix::net::{accept_with, SocketFlags};
use rustix::process::{Gid, Uid};

use crate::cgroups::{Cgroup, ExecCgroups};
use crate::config::Bundle;
use crate::error::{Context, Error, Result};
use crate::namespaces::{self, NsPlan};
use crate::process::exec;
use crate::process::sched;
use crate::process::setup::{self, exit, Finish};
use crate::process::trampoline::Trampoline;
use crate::rootfs::{self, RootfsContext};
use crate::seccomp::Prepared;
use crate::state::{State, Status};
use crate::sync::{Channel, Msg};
use crate::{console, hooks};

pub struct InitArgs<'a> {
    pub bundle: &'a Bundle,
    pub plan: &'a NsPlan,
    pub cgroup: &'a Cgroup,
    /// The v1 hierarchies' `tasks`, opened by the parent: the init joins them first thing.
    pub join_cgroups: Option<&'a ExecCgroups>,
    pub state: &'a State,
    pub sync: Channel,
    pub start_listener: OwnedFd,
    pub console_socket: Option<OwnedFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// fds 0..keep_fds survive into the container (stdio, LISTEN_FDS, --preserve-fds).
    pub keep_fds: u32,
    /// Added to the process env (LISTEN_FDS/LISTEN_PID with socket activation).
    pub extra_env: Vec<String>,
    /// Whether the parent runs prestart/createRuntime hooks (then we stop and let it).
    pub parent_hooks: bool,
    /// The exec trampoline that keeps the husk binary out of the container's reach.
    pub trampoline: Option<&'a Trampoline>,
    /// `linux.seccomp`, compiled by the parent.
    pub seccomp: Option<&'a Prepared>,
    /// An unprivileged parent writes our id maps (or has newuidmap do it): our /proc files must
    /// be ours, not root's, until then.
    pub dumpable_until_mapped: bool,
    /// Idmapped bind trees made by husk as root, by `mounts` index, for the rootfs to attach.
    pub idmapped: &'a [(usize, OwnedFd)],
    /// The parent joined the config's user namespace already (to enter its pid namespace).
    pub user_ns_joined: bool,
    /// The parent, as root outside our user namespace, opens bind sources we cannot reach.
    pub mount_source_broker: bool,
}

/// What is left to do after `start`: the labels and the filter applied last, then execve.
struct Final<'a> {
    program: exec::Program,
    last: setup::Last<'a>,
    /// The labels went on already (before the trampoline was tried).
    applied: bool,
    /// The process's environment, for startContainer hooks without their own (empty when
    /// there are none).
    hook_env: Vec<String>,
}

/// The child's entry point after clone3.
pub fn run(args: InitArgs) -> ! {
    // Undumpable from the clone on (the parent made itself so before it), except where an
    // unprivileged parent still has to write our id maps: then from `Go` (see setup), before
    // anything of the container exists.
    set_comm(crate::state::INIT_COMM);
    crate::sync::log_through(&args.sync);
    let err = match setup(&args).and_then(|last| wait_as_trampoline(&args, last)) {
        Ok(last) => match args.sync.send(&Msg::Ready) {
            Ok(()) => {
                crate::crashpoint::here("init:ready");
                if args.sync.expect(Msg::Created).is_err() {
                    // husk died (or failed) before the container was recorded as created.
                    exit(1);
                }
                crate::crashpoint::here("init:created");
                let InitArgs { sync, start_listener, state, trampoline, .. } = args;
                crate::sync::stop_logging();
                drop(sync);
                wait_for_start_and_exec(start_listener, state, &last, trampoline)
            }
            Err(e) => e,
        },
        Err(e) => e,
    };
    let _ = args.sync.send(&Msg::Error(err.to_string()));
    exit(1)
}

/// Everything is set up: unless startContainer hooks must run after `start` (husk's code, in
/// here), the labels go on now and the wait for `start` is the exec trampoline's (`w`, see
/// trampoline.rs), which reports Ready itself and loads the seccomp filter (if it is not loaded
/// yet) right before its execve: from then on nothing in the container's pid namespace runs the
/// husk binary, not even for a process exec'd into the created container. Returns (with the
/// labels applied) only where there is no trampoline or the kernel refused it: the init then
/// waits itself.
fn wait_as_trampoline<'a>(args: &InitArgs<'a>, mut last: Final<'a>) -> Result<Final<'a>> {
    let start_hooks =
        args.state.hooks.as_ref().and_then(|h| h.start_container().as_ref()).is_some_and(|h| !h.is_empty());
    let Some(t) = args.trampoline.filter(|_| !start_hooks) else { return Ok(last) };
    crate::crashpoint::here("init:ready");
    setup::reset_signals();
    last.last.apply_labels()?;
    last.applied = true;
    last.program.exec_waiting(t, args.sync.fd(), args.start_listener.as_fd(), last.last.filter())?;
    tracing::debug!("exec trampoline refused: the init waits for start itself");
    Ok(last)
}

/// What `ps` and `state` see until exec replaces it.
fn set_comm(name: &str) {
    let Ok(name) = std::ffi::CString::new(name) else { return };
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes; `name` outlives it.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

fn hook_state(state: &State, status: Status) -> Vec<u8> {
    let mut s = state.clone();
    s.init.pid = rustix::process::getpid().as_raw_nonzero().get();
    serde_json::to_vec(&s.oci_with(status)).unwrap_or_default()
}

fn setup<'a>(args: &InitArgs<'a>) -> Result<Final<'a>> {
    let spec = &args.bundle.spec;
    let linux = spec.linux().as_ref();
    let process = spec.process().as_ref().ok_or_else(|| Error::field("process", "missing"))?;
    // Before anything else, so that everything the init does or starts is accounted to the
    // container; single-threaded as we are, `tasks` moves the whole process.
    if let Some(join) = args.join_cgroups {
        join.join_v1()?;
        close_inherited(join);
    }
    args.sync.expect(Msg::Go)?;
    if args.dumpable_until_mapped {
        setup::set_undumpable();
    }
    // In every cgroup of the container by now (a systemd scope took us before `Go`): the
    // caller's CPU affinity (a `taskset` around husk) is not the container's, as in runc.
    sched::reset_affinity();
    crate::crashpoint::here("init:go");
    tracing::debug!("init: setting up the container");

    if args.plan.new_user {
        become_namespace_root(linux)?;
    }
    for (i, t, path) in &args.plan.join {
        let user = *t == oci_spec::runtime::LinuxNamespaceType::User;
        if *t != oci_spec::runtime::LinuxNamespaceType::Pid && !(user && args.user_ns_joined) {
            namespaces::join(*i, *t, path)?;
        }
        if user {
            // setns gave us every capability there; be its root too where 0 is mapped, so what
            // we create belongs to the container's root. Unmapped, the ids stay as they were.
            let _ = rustix::thread::set_thread_res_gid(Gid::ROOT, Gid::ROOT, Gid::ROOT);
            let _ = rustix::thread::set_thread_res_uid(Uid::ROOT, Uid::ROOT, Uid::ROOT);
        }
    }
    unshare(args.plan.unshare_now(), "linux.namespaces: new namespaces in the joined user namespace")?;
    if args.plan.new_cgroup {
        // Only now are we in the container's cgroups (and user namespace), which the new
        // namespace takes as its root and owner.
        unshare(libc::CLONE_NEWCGROUP as u64, "linux.namespaces: new cgroup namespace")?;
    }
    if args.plan.new_time {
        unshare(libc::CLONE_NEWTIME as u64, "linux.namespaces: new time namespace")?;
        if let Some(l) = linux {
            namespaces::write_time_offsets(l)?;
        }
        namespaces::enter_time_ns_for_children()?;
    }
    if args.plan.unshare_pid() {
        enter_late_pid_namespace(&args.sync)?;
    }
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        rustix::system::sethostname(h.as_bytes()).ctx(|| format!("hostname: set {h:?}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        crate::syscalls::set_domainname(d.as_bytes()).ctx(|| format!("domainname: set {d:?}"))?;
    }
    if args.plan.new_net {
        namespaces::loopback_up()?;
    }
    if !args.no_new_keyring {
        setup::join_session_keyring(&args.state.id)?;
    }

    let broker = |i: usize| -> Result<OwnedFd> {
        let index = u32::try_from(i).map_err(|_| Error::msg("too many mounts"))?;
        args.sync.send(&Msg::MountSource(index))?;
        match args.sync.recv_with_fd()? {
            (Some(Msg::MountSourceFd), Some(fd)) => Ok(fd),
            (Some(Msg::Error(text)), _) => Err(Error::msg(text)),
            (other, _) => Err(Error::msg(format!("sync: expected a mount source, got {other:?}"))),
        }
    };
    let userns = match (args.plan.new_user, args.plan.user_ns_path()) {
        (true, _) => rootfs::idmap::Userns::New(linux),
        (false, Some((_, _, path))) => rootfs::idmap::Userns::Joined(path),
        (false, None) => rootfs::idmap::Userns::None,
    };
    let ctx = RootfsContext {
        spec,
        bundle: &args.bundle.dir,
        rootfs: &args.bundle.rootfs,
        rootfs_fd: args.bundle.rootfs_fd.as_fd(),
        no_pivot: args.no_pivot,
        own_mount_ns: args.plan.own_mount,
        in_userns: args.plan.in_userns,
        in_cgroupns: args.plan.new_cgroup,
        cgroup: args.cgroup,
        userns,
        idmapped: args.idmapped,
        source_broker: if args.mount_source_broker { Some(&broker) } else { None },
    };
    let prepared = rootfs::prepare(&ctx)?;
    crate::crashpoint::here("init:rootfs");
    tracing::debug!("init: root filesystem prepared");
    rootfs::apply_sysctls(&ctx)?;
    if args.parent_hooks {
        args.sync.send(&Msg::RunHooks)?;
        args.sync.expect(Msg::HooksDone)?;
    }
    if let Some(h) = spec.hooks().as_ref().and_then(|h| h.create_container().as_ref()) {
        hooks::run("createContainer", h, &hook_state(args.state, Status::Creating))?;
    }
    rootfs::pivot(&ctx, &prepared)?;
    if process.terminal() == Some(true) {
        let sock = args.console_socket.as_ref().ok_or_else(|| Error::msg("process.terminal: no console socket"))?;
        let sock = sock.try_clone().ctx(|| "console socket")?;
        console::setup(sock, process.console_size().as_ref(), args.plan.own_mount, process.user().uid())?;
    } else {
        // A session of its own, as runc's init has, terminal or not: the container does not
        // share the caller's session and process group (and CRIU can dump it without
        // --shell-job).
        rustix::process::setsid().ctx(|| "setsid")?;
        reopen_dev_null();
    }
    create_cwd(process.cwd())?;
    rootfs::finalize(&ctx, prepared)?;

    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    env.extend(args.extra_env.iter().cloned());
    let env = exec::prepare_env(env, process.user().uid());
    let proc_args = process.args().as_deref().unwrap_or_default();
    let path = exec::lookup(&proc_args[0], &env)?;
    let program = exec::Program::new(&path, proc_args, &env)?;
    tracing::debug!("init: program {}", path.display());
    let hook_env = match args.state.hooks.as_ref().and_then(|h| h.start_container().as_ref()) {
        Some(h) if !h.is_empty() => env,
        _ => Vec::new(),
    };

    let mut keep = vec![args.sync.fd().as_raw_fd(), args.start_listener.as_raw_fd()];
    keep.extend(args.trampoline.map(|t| t.fd().as_raw_fd()));
    let last = setup::finish(&Finish {
        process,
        placement: setup::Placement {
            personality: linux.and_then(|l| l.personality().as_ref()),
            memory_policy: linux.and_then(|l| l.memory_policy().as_ref()),
            cpuset: setup::Placement::cpuset_in(linux),
        },
        keep_below: args.keep_fds,
        also_keep: &keep,
        seccomp: args.seccomp,
        sync: &args.sync,
        setgroups_allowed: None,
    })?;
    Ok(Final { program, last, applied: false, hook_env })
}

/// The parent's cgroup fds, which our copy no longer needs: the rootfs setup has the caller's
/// fd limit to itself, as it had when the parent joined us to the cgroups.
fn close_inherited(join: &ExecCgroups) {
    let fds = join.v1_tasks.iter().map(|(fd, _)| fd).chain(join.v2.as_ref());
    for fd in fds {
        // SAFETY: these fds belong to the parent's `ExecCgroups`, which the init, never
        // returning into the parent's code, never drops: nothing else closes or uses them here.
        unsafe { libc::close(fd.as_raw_fd()) };
    }
}

fn unshare(flags: u64, what: &str) -> Result<()> {
    if flags == 0 {
        return Ok(());
    }
    let flags = rustix::thread::UnshareFlags::from_bits_retain(flags as _);
    // SAFETY: only namespace flags reach here; none unshares the fd table or fs state that Rust
    // objects rely on.
    unsafe { rustix::thread::unshare_unsafe(flags) }.ctx(|| what.to_string())
}

/// A pid namespace unshared after joining a user namespace holds only our children: fork the
/// container's pid 1 as husk's child (CLONE_PARENT), tell husk its pid, and leave.
fn enter_late_pid_namespace(sync: &Channel) -> Result<()> {
    unshare(libc::CLONE_NEWPID as u64, "linux.namespaces: new pid namespace")?;
    let pid = crate::syscalls::clone_sibling().ctx(|| "fork the container's pid 1")?;
    if pid == 0 {
        return Ok(());
    }
    let code = if sync.send(&Msg::Pid(pid)).is_ok() { 0 } else { 1 };
    exit(code)
}

/// Stdio that is the host's /dev/null becomes the container's own, as runc does: the container
/// holds no file of the host's mounts (CRIU cannot dump one: "Can't lookup mount"). Runs after
/// pivot_root; left as it is when the container's /dev/null is not the null device.
fn reopen_dev_null() {
    let null_dev = rustix::fs::makedev(1, 3);
    let is_null = |st: &rustix::fs::Stat| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::CharacterDevice
            && st.st_rdev == null_dev
    };
    let flags = rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC;
    let Ok(ours) = rustix::fs::open("/dev/null", flags, rustix::fs::Mode::empty()) else { return };
    let Ok(our_st) = rustix::fs::fstat(&ours) else { return };
    if !is_null(&our_st) {
        return;
    }
    for target in 0..3 {
        // SAFETY: fds 0-2 are stdio, owned by no Rust object here.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(target) };
        match rustix::fs::fstat(fd) {
            Ok(st) if is_null(&st) && (st.st_dev, st.st_ino) != (our_st.st_dev, our_st.st_ino) => {
                // SAFETY: dup2 onto a stdio fd, which this process owns.
                unsafe { libc::dup2(ours.as_raw_fd(), target) };
            }
            _ => {}
        }
    }
}

/// In a new user namespace we start as the overflow uid; become the namespace's root so files we
/// create are owned by the container's root.
fn become_namespace_root(linux: Option<&oci_spec::runtime::Linux>) -> Result<()> {
    let maps_root =
        |m: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| m.iter().flatten().any(|e| e.container_id() == 0);
    let Some(l) = linux else { return Ok(()) };
    if maps_root(l.gid_mappings()) {
        rustix::thread::set_thread_res_gid(Gid::ROOT, Gid::ROOT, Gid::ROOT).ctx(|| "setgid 0 in user namespace")?;
    }
    if maps_root(l.uid_mappings()) {
        rustix::thread::set_thread_res_uid(Uid::ROOT, Uid::ROOT, Uid::ROOT).ctx(|| "setuid 0 in user namespace")?;
    }
    Ok(())
}

/// runc creates a missing cwd; after pivot_root, `/` is the container's root. Made fd by fd
/// inside it (no symlink in the image or a shared volume can lead the mkdir elsewhere), before
/// the root may become read-only.
fn create_cwd(cwd: &std::path::Path) -> Result<()> {
    use rustix::fs::{Mode, OFlags};
    let root =
        rustix::fs::open("/", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).ctx(|| "open /")?;
    rootfs::safe_path::mkdir_all(root.as_fd(), cwd, 0o755)
        .map(drop)
        .map_err(|e| Error::os(format!("process.cwd: create {}", cwd.display()), e.raw_os_error()))
}

/// Block until `start` connects, then run startContainer hooks and exec. Errors go back over the
/// connection so `start` can report them.
fn wait_for_start_and_exec(listener: OwnedFd, state: &State, last: &Final, trampoline: Option<&Trampoline>) -> ! {
    let conn = loop {
        match accept_with(listener.as_fd(), SocketFlags::CLOEXEC) {
            Ok(c) => {
                let mut byte = [0u8; 1];
                let mut file = std::fs::File::from(c);
                if matches!(file.read(&mut byte), Ok(1)) {
                    break file;
                }
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => exit(1),
        }
    };
    drop(listener);
    crate::crashpoint::here("init:accepted");
    let err = start_container_hooks(state, &last.hook_env).and_then(|()| {
        if last.applied {
            return Ok(());
        }
        setup::reset_signals();
        last.last.apply_labels()
    });
    let err = match err {
        // The filter last, so nothing husk still does needs what it forbids.
        Ok(()) => last.program.exec(trampoline, conn.as_fd(), exec::Start::Replace, last.last.filter()),
        Err(e) => e,
    };
    let mut conn = conn;
    let _ = conn.write_all(err.to_string().as_bytes());
    exit(exec::exec_failure_status(err.errno()))
}

fn start_container_hooks(state: &State, env: &[String]) -> Result<()> {
    match state.hooks.as_ref().and_then(|h| h.start_container().as_ref()) {
        Some(h) => hooks::run_with_default_env("startContainer", h, &hook_state(state, Status::Created), env),
        None => Ok(()),
    }
}
