//! `create`: everything but the user program. The parent side of the handshake lives here; the
//! child side is `process::init`.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use rustix::net::{bind, listen, socket_with, AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use crate::cgroups::{self, Cgroup};
use crate::config::Bundle;
use crate::error::{Context, Error, Result};
use crate::namespaces::{self, NsPlan};
use crate::process::init::{self, InitArgs};
use crate::process::setup;
use crate::process::trampoline::Trampoline;
use crate::seccomp::{self, notify, Prepared};
use crate::state::{self, ProcessId, State, StateDir, Status, START_SOCKET};
use crate::syscalls::{self, Forked};
use crate::{console, crashpoint, hooks, intel_rdt, lsm, netdevices, sync, userns};

#[derive(Debug, Default, Clone)]
pub struct CreateOptions {
    pub root: PathBuf,
    pub id: String,
    pub bundle: PathBuf,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// Foreground `run`: with `process.terminal` and no console socket, husk takes the pty
    /// master itself (returned in `Created::console`).
    pub own_console: bool,
    /// `--pidfd-socket`: receives a pidfd of the init.
    pub pidfd_socket: Option<PathBuf>,
    /// `--systemd-cgroup`: a transient systemd scope instead of cgroupfs directories.
    pub systemd_cgroup: bool,
    /// `--rootless` (true, or auto for a non-root caller): cgroups the user may not make are
    /// done without rather than failing create.
    pub rootless: bool,
}

/// A created container: its init waits for `start`.
pub struct Created {
    pub pid: i32,
    pub pidfd: OwnedFd,
    /// The pty master when husk made its own console socket.
    pub console: Option<OwnedFd>,
    pub state_dir: StateDir,
}

pub fn create(opts: &CreateOptions) -> Result<Created> {
    let mut bundle = Bundle::load(&opts.bundle)?;
    tracing::debug!("create {}: bundle {}, rootfs {}", opts.id, bundle.dir.display(), bundle.rootfs.display());
    lsm::check(&bundle.spec)?;
    // Checked and compiled (or found in the cache) before anything exists to clean up.
    let filter = match bundle.spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(seccomp::prepare(s, Some(&opts.root.join(seccomp::cache::DIR_NAME)))?),
        None => None,
    };
    // Connected before anything exists: a missing agent fails here (runc's words), and the
    // notify fd goes over this connection once the init loaded the filter.
    let agent = match (&filter, bundle.spec.linux().as_ref().and_then(|l| l.seccomp().as_ref())) {
        (Some(f), Some(s)) if f.uses_notify() => Some(notify::connect_agent(
            s.listener_path().as_deref().ok_or_else(|| Error::field("linux.seccomp.listenerPath", "missing"))?,
        )?),
        _ => None,
    };
    let plan = NsPlan::from_config(bundle.spec.linux().as_ref())?;
    if !plan.own_mount {
        crate::rootfs::check_without_mount_ns(&bundle.spec)?;
    } else if opts.no_pivot {
        crate::rootfs::check_no_pivot(&bundle.spec)?;
    }
    if !userns::privileged() && !plan.in_userns {
        return Err(Error::field(
            "linux.namespaces",
            "husk is not running as root: the container needs a user namespace with uidMappings and gidMappings \
             (as `husk spec --rootless` writes)",
        ));
    }
    netdevices::check(bundle.spec.linux().as_ref().and_then(|l| l.net_devices().as_ref()), plan.new_net)?;
    crate::rootfs::check_sysctls(&bundle.spec, &plan)?;
    let terminal = bundle.spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    if terminal && opts.console_socket.is_none() && !opts.own_console {
        return Err(Error::field("process.terminal", "a terminal needs --console-socket when husk detaches"));
    }
    let dir = StateDir::create(&opts.root, &opts.id)?;
    crashpoint::here("create:state-dir");
    let mut undo = Undo { dir: Some(dir), cgroup: None, child: None, rdt: None };
    // The container's process as configured, before husk adds anything: exec's defaults.
    let exec_config = super::exec::exec_config(&bundle.spec, &plan, opts.no_new_keyring);
    let mut extra_env = Vec::new();
    if crate::notify::host_socket().is_some() {
        let dir = undo.dir.as_ref().ok_or_else(|| Error::msg("state dir lost"))?;
        extra_env.push(crate::notify::prepare(&mut bundle.spec, dir)?);
    }
    let seccomp = SeccompSetup { filter: filter.as_ref(), agent };
    match create_in(opts, &bundle, &plan, seccomp, exec_config, extra_env, &mut undo) {
        Ok((pid, pidfd, console)) => {
            let state_dir = undo.dir.take().ok_or_else(|| Error::msg("state dir lost"))?;
            undo.cgroup = None;
            undo.child = None;
            undo.rdt = None;
            state_dir.unlock()?;
            Ok(Created { pid, pidfd, console, state_dir })
        }
        Err(e) => Err(e),
    }
}

/// The container's compiled filter and, for a notify profile, the connection to its agent.
struct SeccompSetup<'a> {
    filter: Option<&'a Prepared>,
    agent: Option<OwnedFd>,
}

/// Undoes a failed create: nothing may be left behind (process, cgroup, state).
struct Undo {
    dir: Option<StateDir>,
    cgroup: Option<Cgroup>,
    child: Option<(i32, OwnedFd)>,
    rdt: Option<intel_rdt::RdtPlacement>,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some((pid, pidfd)) = self.child.take() {
            let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
            let _ =
                rustix::process::waitpid(rustix::process::Pid::from_raw(pid), rustix::process::WaitOptions::empty());
        }
        if let Some(cg) = self.cgroup.take() {
            if let Err(e) = cg.destroy() {
                tracing::warn!("cleanup after failed create: {e}");
            }
        }
        if let Some(rdt) = self.rdt.take() {
            intel_rdt::remove(&rdt);
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.remove();
        }
    }
}

fn create_in(
    opts: &CreateOptions,
    bundle: &Bundle,
    plan: &NsPlan,
    seccomp: SeccompSetup,
    exec_config: Option<crate::state::ExecConfig>,
    notify_env: Vec<String>,
    undo: &mut Undo,
) -> Result<(i32, OwnedFd, Option<OwnedFd>)> {
    let spec = &bundle.spec;
    let linux = spec.linux().as_ref();
    let SeccompSetup { filter, mut agent } = seccomp;
    let dir = undo.dir.as_ref().ok_or_else(|| Error::msg("state dir lost"))?;
    let mut state = State::creating(&opts.id, bundle, exec_config)?;
    if let (Some(f), Some(s)) = (filter, linux.and_then(|l| l.seccomp().as_ref())) {
        state.seccomp = Some(f.save(&dir.fd, s)?);
    }
    // The plan (the first save) names the cgroup dirs before they exist: a husk killed from
    // here on leaves a state from which `delete` removes what was made.
    let cgroups_path = linux.and_then(|l| l.cgroups_path().as_deref());
    let resources = linux.and_then(|l| l.resources().as_ref());
    let mut record = |plan: &Cgroup| -> Result<()> {
        state.cgroup = plan.clone();
        dir.save_plan(&state)?;
        crashpoint::here("create:state-saved");
        Ok(())
    };
    let cgroup = if opts.systemd_cgroup {
        // Nothing exists before the unit starts (with the init's pid, below): record the plan.
        let cg = Cgroup::create_systemd(cgroups_path, &opts.id, resources, opts.rootless)?;
        record(&cg)?;
        cg
    } else if let Some(why) = rootless_refusal(opts, cgroups_path)? {
        let none = Cgroup::rootless_none(resources, &why)?;
        record(&none)?;
        none
    } else {
        match Cgroup::create_recorded(cgroups_path, &opts.id, resources, record) {
            Ok(cg) => cg,
            Err(e) if opts.rootless && cgroups::is_permission_error(&e) => {
                // The plan named dirs that were never made (or were removed again): forget them.
                let none = Cgroup::rootless_none(resources, &e)?;
                state.cgroup = none.clone();
                dir.save(&state)?;
                none
            }
            Err(e) => return Err(e),
        }
    };
    crashpoint::here("create:cgroup-made");
    tracing::debug!(
        "create {}: cgroup {}",
        opts.id,
        cgroup.placements.iter().map(|p| p.dir.display().to_string()).collect::<Vec<_>>().join(" ")
    );
    state.cgroup = cgroup.clone();
    undo.cgroup = Some(cgroup.clone());

    let terminal = spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    let (own_listener, console_socket) = match opts.console_socket.as_deref() {
        Some(path) => (None, Some(console::connect(path)?)),
        None if terminal && opts.own_console => {
            let (listener, client) = console::own_socket(dir)?;
            (Some(listener), Some(client))
        }
        None => (None, None),
    };
    let start_listener = bind_start_socket(dir)?;
    let (parent_end, child_end) = sync::pair()?;
    let (listen_fds, mut extra_env) = socket_activation();
    extra_env.extend(notify_env);
    // The CLI has checked that every one of them is open (so the sum is small); wrapping would
    // close stdio.
    let keep_fds = 3u32
        .checked_add(listen_fds)
        .and_then(|n| n.checked_add(opts.preserve_fds))
        .ok_or_else(|| Error::msg(format!("--preserve-fds {}: more fds than there can be", opts.preserve_fds)))?;
    let hooks = spec.hooks().as_ref();
    let prestart = hooks.and_then(|h| h.prestart().clone()).unwrap_or_default();
    let create_runtime = hooks.and_then(|h| h.create_runtime().clone()).unwrap_or_default();
    let parent_hooks = !prestart.is_empty() || !create_runtime.is_empty();

    let rdt_root = linux.and_then(|l| l.intel_rdt().as_ref()).map(|_| intel_rdt::resctrl_root()).transpose()?;
    // Inherited by the init through the clone; closed in the parent when this returns.
    let userns = match (plan.new_user, plan.user_ns_path()) {
        (true, _) => crate::rootfs::idmap::Userns::New(linux),
        (false, Some((_, _, path))) => crate::rootfs::idmap::Userns::Joined(path),
        (false, None) => crate::rootfs::idmap::Userns::None,
    };
    let idmapped = crate::rootfs::idmap::prepare(spec, &bundle.dir, userns)?;
    // As root outside the container's user namespace, husk can open bind sources its root
    // cannot reach (a directory only a host user may enter), when the init asks.
    let mount_source_broker = plan.in_userns && plan.own_mount && userns::privileged();
    // The init joins its cgroups itself, as an exec'd process does (cgroups/join.rs): born in
    // the cgroup2 one (CLONE_INTO_CGROUP), it writes `0` to each v1 hierarchy's `tasks` first
    // thing. The parent writing the init's pid to `cgroup.procs` instead takes the kernel's
    // global threadgroup lock, whose writer waits for an RCU grace period: 3-16 ms of a create
    // on this v1 host. A systemd scope is started with the pid, by the parent, below.
    let joining = if cgroup.systemd.is_none() { Some(cgroup.for_exec(&[])?) } else { None };
    let v2_fd = joining.as_ref().and_then(|j| j.v2.as_ref());
    let trampoline = Trampoline::new()?;
    let entered = namespaces::enter_pid_ns_for_children(plan)?;
    let pid_ns_restore = entered.own;
    // The cgroup namespace is unshared by the init once it is in its cgroups (see init.rs), so
    // that the namespace's root is the container's cgroup.
    let clone_flags = plan.clone_flags & !(libc::CLONE_NEWCGROUP as u64);
    // Decided before the clone: in the child, geteuid() changes once the parent has mapped it.
    let dumpable_until_mapped = plan.new_user && !userns::privileged();
    // Inherited by the init: nothing in the container may ptrace it or open its /proc/<pid>/exe
    // (the husk binary) before it execs, not even in the instant after the clone. An
    // unprivileged parent can write only a dumpable child's id maps; the init turns undumpable
    // on `Go`, before anything of the container exists.
    if !dumpable_until_mapped {
        setup::set_undumpable();
    }
    let forked = syscalls::clone3(clone_flags, v2_fd.map(|f| f.as_fd()));
    let (pid, pidfd) = match forked {
        Err(e) => {
            if let Some(own) = pid_ns_restore {
                namespaces::restore_pid_ns_for_children(own)?;
            }
            return Err(Error::from(e).context("clone3 container init"));
        }
        Ok(Forked::Child) => {
            // Both processes return from clone3: nothing below this arm may run in the child.
            // The child's copy of the locked state dir fd goes first, so an init that outlives
            // a killed husk cannot keep the container locked.
            // SAFETY: the fd is open and, since the child never returns, never closed again.
            unsafe { libc::close(std::os::fd::AsRawFd::as_raw_fd(&dir.fd)) };
            drop(pid_ns_restore);
            drop(parent_end);
            init::run(InitArgs {
                bundle,
                plan,
                cgroup: &cgroup,
                join_cgroups: joining.as_ref(),
                state: &state,
                sync: child_end,
                start_listener,
                console_socket,
                no_pivot: opts.no_pivot,
                no_new_keyring: opts.no_new_keyring,
                keep_fds,
                extra_env,
                parent_hooks,
                trampoline: trampoline.as_ref(),
                seccomp: filter,
                dumpable_until_mapped,
                idmapped: &idmapped,
                user_ns_joined: entered.user_joined,
                mount_source_broker,
            })
        }
        Ok(Forked::Parent { pid, pidfd }) => {
            if let Some(own) = pid_ns_restore {
                namespaces::restore_pid_ns_for_children(own)?;
            }
            (pid, pidfd)
        }
    };
    drop(child_end);
    drop(start_listener);
    drop(console_socket);
    drop(trampoline);
    drop(joining);
    undo.child = Some((pid, pidfd.try_clone().ctx(|| "dup pidfd")?));
    crashpoint::here("create:cloned");
    tracing::debug!("create {}: init cloned as pid {pid} (namespaces {:#x})", opts.id, clone_flags);

    if plan.new_user {
        if let Some(l) = linux {
            userns::write_maps(
                pid,
                &userns::ranges(l.uid_mappings().as_ref()),
                &userns::ranges(l.gid_mappings().as_ref()),
            )?;
        }
    }
    if cgroup.systemd.is_some() {
        cgroup.add_process(pid, false)?;
    }
    crashpoint::here("create:in-cgroup");
    // The init is in its new network namespace and waits for Go: move the devices in now.
    if let Some(devices) = linux.and_then(|l| l.net_devices().as_ref()).filter(|d| !d.is_empty()) {
        netdevices::move_into(devices, pid)?;
    }
    if let Some(adj) = spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
        std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string())
            .ctx(|| format!("process.oomScoreAdj: set {adj}"))?;
    }
    if let (Some(root), Some(rdt)) = (&rdt_root, linux.and_then(|l| l.intel_rdt().as_ref())) {
        let placement = intel_rdt::apply(root, rdt, &opts.id, pid)?;
        undo.rdt = Some(placement.clone());
        state.intel_rdt = Some(placement);
    }
    parent_end.send(&sync::Msg::Go)?;
    crashpoint::here("create:go-sent");
    tracing::debug!("create {}: init told to go on (maps, cgroup, devices in place)", opts.id);
    let (pid, pidfd) =
        if plan.unshare_pid() { adopt_late_init(pid, &parent_end, &mut undo.child)? } else { (pid, pidfd) };
    state.init = ProcessId::of(pid)?;
    // Nothing in the state changes from here on but its status: write and sync the final one
    // now, while the init sets up, and only rename it into place once the init is ready.
    state.status = Status::Created;
    let final_state = dir.prepare_save(&state)?;

    let sources = MountSources { spec, bundle: &bundle.dir, init: pid };
    if parent_hooks {
        wait_for(&parent_end, sync::Msg::RunHooks, &state, &sources, &mut agent)?;
        let json = serde_json::to_vec(&state.oci_with(Status::Creating)).unwrap_or_default();
        hooks::run("prestart", &prestart, &json)?;
        hooks::run("createRuntime", &create_runtime, &json)?;
        parent_end.send(&sync::Msg::HooksDone)?;
    }
    wait_for(&parent_end, sync::Msg::Ready, &state, &sources, &mut agent)?;
    crashpoint::here("create:ready");
    tracing::debug!("create {}: init {pid} ready, waiting for start", opts.id);
    let console = own_listener.as_ref().map(console::receive_master).transpose()?;

    final_state.commit()?;
    crashpoint::here("create:saved");
    if let Some(pid_file) = &opts.pid_file {
        let path = std::path::absolute(pid_file).unwrap_or_else(|_| pid_file.clone());
        state::write_atomic(&path, pid.to_string().as_bytes()).map_err(|e| e.context("--pid-file"))?;
        crashpoint::here("create:pid-file");
    }
    if own_listener.is_some() {
        dir.remove_file("console.sock");
    }
    if let Some(path) = &opts.pidfd_socket {
        super::exec::send_pidfd(path, &pidfd)?;
    }
    // Until this the init exits if we die: a container is created only once its state says so.
    parent_end.send(&sync::Msg::Created)?;
    Ok((pid, pidfd, console))
}

/// After a pid namespace made late (a joined user namespace), the init we cloned forks the real
/// one as our child and exits: take the new one as the container's init.
fn adopt_late_init(first: i32, sync: &sync::Channel, child: &mut Option<(i32, OwnedFd)>) -> Result<(i32, OwnedFd)> {
    let pid = match sync.recv()? {
        Some(sync::Msg::Pid(pid)) => pid,
        Some(sync::Msg::Error(text)) => return Err(Error::msg(text)),
        _ => return Err(Error::msg("container init exited during setup")),
    };
    let _ = rustix::process::waitpid(rustix::process::Pid::from_raw(first), rustix::process::WaitOptions::empty());
    let raw = rustix::process::Pid::from_raw(pid).ok_or_else(|| Error::msg("bad init pid"))?;
    let pidfd =
        rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty()).ctx(|| "pidfd of container init")?;
    *child = Some((pid, pidfd.try_clone().ctx(|| "dup pidfd")?));
    Ok((pid, pidfd))
}

/// The socket the init waits on. Bound through /proc/self/fd so a long --root cannot overflow
/// sun_path.
fn bind_start_socket(dir: &StateDir) -> Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let sock =
        socket_with(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None).ctx(|| "start socket")?;
    let path = format!("/proc/self/fd/{}/{START_SOCKET}", dir.fd.as_raw_fd());
    let addr = SocketAddrUnix::new(path.as_str()).ctx(|| "start socket address")?;
    bind(&sock, &addr).ctx(|| format!("bind {}", dir.path.join(START_SOCKET).display()))?;
    listen(&sock, 1).ctx(|| "listen on start socket")?;
    Ok(sock)
}

/// Rootless: why the caller may make no cgroup for the container, when the filesystem says so
/// up front (create then goes on without one).
fn rootless_refusal(opts: &CreateOptions, cgroups_path: Option<&std::path::Path>) -> Result<Option<Error>> {
    if !opts.rootless {
        return Ok(None);
    }
    Cgroup::refused_to_caller(cgroups_path, &opts.id)
}

/// systemd socket activation: with LISTEN_FDS set for us (LISTEN_PID is our pid, as
/// sd_listen_fds requires), those fds follow stdio into the container.
fn socket_activation() -> (u32, Vec<String>) {
    let for_us = std::env::var("LISTEN_PID").ok().and_then(|v| v.parse::<u32>().ok()) == Some(std::process::id());
    match std::env::var("LISTEN_FDS").ok().and_then(|v| v.parse::<u32>().ok()) {
        Some(n) if n > 0 && for_us => (n, vec![format!("LISTEN_FDS={n}"), "LISTEN_PID=1".to_string()]),
        _ => (0, Vec::new()),
    }
}

/// Wait for `want` from the init (`RunHooks`, `Ready`), serving what it asks for meanwhile: a
/// seccomp notify fd goes to the agent (connected before anything existed), a bind source it
/// cannot reach is opened for it.
fn wait_for(
    sync: &sync::Channel,
    want: sync::Msg,
    state: &State,
    sources: &MountSources,
    agent: &mut Option<OwnedFd>,
) -> Result<()> {
    loop {
        match sync.recv_with_fd()? {
            (Some(m), _) if m == want => return Ok(()),
            // runc sends the state as it is at this moment: still creating.
            (Some(sync::Msg::SeccompFd), Some(fd)) => {
                seccomp_to_agent(state, Status::Creating, state.init.pid, &fd, agent.take())?
            }
            (Some(sync::Msg::MountSource(i)), _) => match sources.open(i as usize) {
                Ok(fd) => sync.send_with_fd(&sync::Msg::MountSourceFd, fd.as_fd())?,
                Err(e) => sync.send(&sync::Msg::Error(e.to_string()))?,
            },
            (Some(sync::Msg::Error(text)), _) => return Err(Error::msg(text)),
            (Some(other), _) => return Err(Error::msg(format!("sync: expected {want:?}, got {other:?}"))),
            (None, _) => return Err(Error::msg("container init exited during setup")),
        }
    }
}

/// Bind sources opened for an init whose user namespace cannot reach them.
struct MountSources<'a> {
    spec: &'a oci_spec::runtime::Spec,
    bundle: &'a std::path::Path,
    /// The init, in whose mount namespace the source is looked up (it may lie under a mount
    /// the init made), from its own root, as it would have.
    init: i32,
}

impl MountSources<'_> {
    fn open(&self, i: usize) -> Result<OwnedFd> {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        let m =
            self.spec.mounts().as_ref().and_then(|m| m.get(i)).ok_or_else(|| Error::msg(format!("no mounts[{i}]")))?;
        let source = m.source().as_ref().ok_or_else(|| Error::field(format!("mounts[{i}].source"), "missing"))?;
        let source = if source.is_absolute() { source.clone() } else { self.bundle.join(source) };
        let dir = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root = rustix::fs::open(format!("/proc/{}/root", self.init), dir, Mode::empty())
            .map_err(|e| Error::os("open the container init's root", e.raw_os_error()))?;
        let rel = crate::rootfs::safe_path::relative(&source);
        let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        rustix::fs::openat2(&root, rel, OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), how)
            .map_err(|e| Error::os(format!("open bind source {}", source.display()), e.raw_os_error()))
    }
}

/// A seccomp notify fd from the container process `pid` goes to the agent at `listenerPath`
/// with the container's state, as runc sends it (for the init and exec'd processes alike), over
/// the connection made before the process was (`agent`).
pub(crate) fn seccomp_to_agent(
    state: &State,
    status: Status,
    pid: i32,
    fd: &OwnedFd,
    agent: Option<OwnedFd>,
) -> Result<()> {
    let record = state.seccomp.as_ref().ok_or_else(|| Error::msg("seccomp notify fd without a filter"))?;
    let listener =
        record.listener_path.as_deref().ok_or_else(|| Error::field("linux.seccomp.listenerPath", "missing"))?;
    let agent = agent.ok_or_else(|| Error::msg("seccomp notify: a second notify fd for one process"))?;
    let container = notify::Container {
        oci_version: &state.oci_version,
        id: &state.id,
        status: status.as_str(),
        bundle: &state.bundle,
        annotations: &state.annotations,
    };
    let payload = notify::payload(&container, pid, record.listener_metadata.as_deref());
    notify::send_to_agent(agent, listener, &payload, fd.as_fd())
}

pub(crate) fn connect_start(dir: &StateDir) -> Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let sock =
        socket_with(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None).ctx(|| "start socket")?;
    let path = format!("/proc/self/fd/{}/{START_SOCKET}", dir.fd.as_raw_fd());
    let addr = SocketAddrUnix::new(path.as_str()).ctx(|| "start socket address")?;
    rustix::net::connect(&sock, &addr).ctx(|| format!("connect {}", dir.path.join(START_SOCKET).display()))?;
    Ok(sock)
}
