//! The container's init: runs in the child of clone3, inside the new namespaces. It builds the
//! container around itself, reports `Ready`, waits for `start`, then execs the user program.
//!
//! husk is single-threaded when it clones, so this child is a clean single-threaded copy: it may
//! allocate and run ordinary code. It never returns: it execs or exits.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use rustix::net::{accept_with, SocketFlags};
use rustix::process::{Gid, Uid};

use crate::capabilities::CapSets;
use crate::cgroups::Cgroup;
use crate::config::Bundle;
use crate::error::{Context, Error, Result};
use crate::lsm::ExecLabels;
use crate::namespaces::{self, NsPlan};
use crate::process::{exec, rlimits, sched, user};
use crate::rootfs::{self, RootfsContext};
use crate::seccomp::{self, LoadPoint, Prepared};
use crate::state::{State, Status};
use crate::sync::{Channel, Msg};
use crate::{console, hooks};

pub struct InitArgs<'a> {
    pub bundle: &'a Bundle,
    pub plan: &'a NsPlan,
    pub cgroup: &'a Cgroup,
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
    /// `linux.seccomp`, compiled by the parent.
    pub seccomp: Option<&'a Prepared>,
    /// An unprivileged parent writes our id maps (or has newuidmap do it): our /proc files must
    /// be ours, not root's, until then.
    pub dumpable_until_mapped: bool,
    /// Idmapped bind trees made by husk as root, by `mounts` index, for the rootfs to attach.
    pub idmapped: &'a [(usize, OwnedFd)],
}

/// What is left to do after `start`: the labels and the filter applied last, then execve.
struct Final<'a> {
    program: exec::Program,
    labels: ExecLabels,
    seccomp: Option<&'a Prepared>,
}

/// The child's entry point after clone3.
pub fn run(args: InitArgs) -> ! {
    set_comm(crate::state::INIT_COMM);
    // Until exec nothing in the container may ptrace us or read our memory. Nothing of the
    // container exists before `Go`, which comes once the maps are written.
    if !args.dumpable_until_mapped {
        set_dumpable(false);
    }
    let err = match setup(&args) {
        Ok(last) => match args.sync.send(&Msg::Ready) {
            Ok(()) => {
                crate::crashpoint::here("init:ready");
                if args.sync.expect(Msg::Created).is_err() {
                    // husk died (or failed) before the container was recorded as created.
                    exit(1);
                }
                crate::crashpoint::here("init:created");
                let InitArgs { sync, start_listener, state, .. } = args;
                drop(sync);
                wait_for_start_and_exec(start_listener, state, &last)
            }
            Err(e) => e,
        },
        Err(e) => e,
    };
    let _ = args.sync.send(&Msg::Error(err.to_string()));
    exit(1)
}

fn set_dumpable(on: bool) {
    // SAFETY: PR_SET_DUMPABLE takes an integer.
    unsafe {
        libc::prctl(
            libc::PR_SET_DUMPABLE,
            on as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
}

/// What `ps` and `state` see until exec replaces it.
fn set_comm(name: &str) {
    let Ok(name) = std::ffi::CString::new(name) else { return };
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes; `name` outlives it.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit skips atexit handlers and stdio flushing that belong to the parent's copy.
    unsafe { libc::_exit(code) }
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
    args.sync.expect(Msg::Go)?;
    set_dumpable(false);
    crate::crashpoint::here("init:go");

    if args.plan.new_user {
        become_namespace_root(linux)?;
    }
    for (i, t, path) in &args.plan.join {
        if *t != oci_spec::runtime::LinuxNamespaceType::Pid {
            namespaces::join(*i, *t, path)?;
        }
        if *t == oci_spec::runtime::LinuxNamespaceType::User {
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
        join_session_keyring(&args.state.id)?;
    }

    let ctx = RootfsContext {
        spec,
        bundle: &args.bundle.dir,
        rootfs: &args.bundle.rootfs,
        no_pivot: args.no_pivot,
        in_userns: args.plan.in_userns,
        in_cgroupns: args.plan.new_cgroup,
        cgroup: args.cgroup,
        idmapped: args.idmapped,
    };
    rootfs::prepare(&ctx)?;
    crate::crashpoint::here("init:rootfs");
    rootfs::apply_sysctls(&ctx)?;
    if args.parent_hooks {
        args.sync.send(&Msg::RunHooks)?;
        args.sync.expect(Msg::HooksDone)?;
    }
    if let Some(h) = spec.hooks().as_ref().and_then(|h| h.create_container().as_ref()) {
        hooks::run("createContainer", h, &hook_state(args.state, Status::Creating))?;
    }
    rootfs::pivot(&ctx)?;
    if process.terminal() == Some(true) {
        let sock = args.console_socket.as_ref().ok_or_else(|| Error::msg("process.terminal: no console socket"))?;
        let sock = sock.try_clone().ctx(|| "console socket")?;
        console::setup(sock, process.console_size().as_ref())?;
    } else {
        // A session of its own, as runc's init has, terminal or not: the container does not
        // share the caller's session and process group (and CRIU can dump it without
        // --shell-job).
        rustix::process::setsid().ctx(|| "setsid")?;
        reopen_dev_null();
    }
    create_cwd(process.cwd())?;
    rootfs::finalize(&ctx)?;

    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    env.extend(args.extra_env.iter().cloned());
    let proc_args = process.args().as_deref().unwrap_or_default();
    let path = exec::lookup(&proc_args[0], &env)?;
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user::home_dir(process.user().uid())));
    }
    let program = exec::Program::new(&path, proc_args, &env)?;

    if let Some(rl) = process.rlimits() {
        rlimits::apply(rl)?;
    }
    apply_placement(process, linux)?;
    close_stray_fds(args)?;
    enter_cwd(process.cwd())?;
    let labels = ExecLabels::open(process)?;

    let caps = CapSets::from_config(process.capabilities().as_ref());
    let no_new_privs = process.no_new_privileges() == Some(true);
    let point = args.seccomp.map(|f| seccomp::load_point(f, no_new_privs, caps.effective & CAP_SYS_ADMIN != 0));
    if point == Some(LoadPoint::BeforeCapDrop) {
        load_seccomp(args)?;
    }
    caps.drop_bounding()?;
    set_keepcaps(true)?;
    user::switch(process.user(), crate::userns::setgroups_allowed())?;
    set_keepcaps(false)?;
    caps.apply()?;
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(process.user().umask().unwrap_or(0o022)));
    if no_new_privs {
        rustix::thread::set_no_new_privs(true).ctx(|| "process.noNewPrivileges")?;
    }
    if point == Some(LoadPoint::BeforeReady) {
        load_seccomp(args)?;
    }
    let seccomp = args.seccomp.filter(|_| point == Some(LoadPoint::BeforeExec));
    Ok(Final { program, labels, seccomp })
}

const CAP_SYS_ADMIN: u64 = 1 << 21;

/// Load the filter now; a notify fd goes to husk, which hands it to the agent.
fn load_seccomp(args: &InitArgs) -> Result<()> {
    let Some(filter) = args.seccomp else { return Ok(()) };
    if let Some(fd) = filter.load()? {
        args.sync.send_with_fd(&Msg::SeccompFd, fd.as_fd())?;
    }
    Ok(())
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

/// Scheduler, I/O priority, personality and NUMA policy: before the capability drop, since
/// real-time policies need CAP_SYS_NICE.
fn apply_placement(process: &oci_spec::runtime::Process, linux: Option<&oci_spec::runtime::Linux>) -> Result<()> {
    if let Some(s) = process.scheduler() {
        sched::apply_scheduler(s)?;
    }
    if let Some(p) = process.io_priority() {
        sched::apply_io_priority(p)?;
    }
    if let Some(p) = linux.and_then(|l| l.personality().as_ref()) {
        sched::apply_personality(p)?;
    }
    if let Some(m) = linux.and_then(|l| l.memory_policy().as_ref()) {
        sched::apply_memory_policy(m)?;
    }
    Ok(())
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

fn join_session_keyring(id: &str) -> Result<()> {
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

fn set_keepcaps(on: bool) -> Result<()> {
    rustix::thread::set_keep_capabilities(on).ctx(|| "keep capabilities across setuid")
}

/// Close every fd the container must not see before we chdir (CVE-2024-21626: a leaked host
/// directory fd plus `cwd=/proc/self/fd/N` would put the process outside the rootfs).
fn close_stray_fds(args: &InitArgs) -> Result<()> {
    let mut keep: Vec<u32> = vec![args.sync.fd().as_raw_fd() as u32, args.start_listener.as_raw_fd() as u32];
    keep.sort_unstable();
    let mut next = args.keep_fds;
    for fd in keep {
        if fd > next {
            crate::syscalls::close_range(next, fd - 1).ctx(|| "close fds")?;
        }
        next = next.max(fd + 1);
    }
    crate::syscalls::close_range(next, u32::MAX).ctx(|| "close fds")?;
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

fn enter_cwd(cwd: &std::path::Path) -> Result<()> {
    rustix::process::chdir(cwd).ctx(|| format!("process.cwd: chdir {}", cwd.display()))?;
    // getcwd fails (or does not start with '/') when the cwd is not under our root.
    match rustix::process::getcwd(Vec::new()) {
        Ok(p) if p.as_bytes().starts_with(b"/") => Ok(()),
        _ => Err(Error::field("process.cwd", format!("{} is outside the container's root", cwd.display()))),
    }
}

/// Block until `start` connects, then run startContainer hooks and exec. Errors go back over the
/// connection so `start` can report them.
fn wait_for_start_and_exec(listener: OwnedFd, state: &State, last: &Final) -> ! {
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
    let err = start_container_hooks(state).and_then(|()| {
        reset_signals();
        // Last, so nothing husk still does needs what they forbid.
        last.labels.apply()?;
        if let Some(f) = last.seccomp {
            f.load()?;
        }
        Ok(())
    });
    let err = match err {
        Ok(()) => last.program.exec(),
        Err(e) => e,
    };
    let mut conn = conn;
    let _ = conn.write_all(err.to_string().as_bytes());
    exit(if err.errno() == Some(libc::ENOENT) { 127 } else { 126 })
}

fn start_container_hooks(state: &State) -> Result<()> {
    match state.hooks.as_ref().and_then(|h| h.start_container().as_ref()) {
        Some(h) => hooks::run("startContainer", h, &hook_state(state, Status::Created)),
        None => Ok(()),
    }
}

/// husk ignores SIGPIPE (Rust's default) and `run` blocks forwarded signals; neither may leak into
/// the container, since ignored dispositions and the mask survive execve.
fn reset_signals() {
    // SAFETY: resetting dispositions and the mask of our own single thread, right before execve.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}
