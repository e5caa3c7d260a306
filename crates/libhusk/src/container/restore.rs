//! `restore`: a container made from the bundle's config and a checkpoint image instead of a new
//! init. husk claims the id and makes the cgroups as `create` does, binds the rootfs where CRIU
//! wants it, hands CRIU what lies outside the container (bind-mount sources, joined namespaces,
//! new stdio pipes, the console), and records the restored init. A failure undoes all of it.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::checkpoint::{absolute, DESCRIPTORS};
use crate::cgroups::{self, Cgroup};
use crate::config::Bundle;
use crate::criu::rpc::{CgMode, CgroupRoot, InheritFd, Opts, Req, ReqType};
use crate::criu::{self, externals, swrk::Swrk, Criu};
use crate::error::{Context, Error, Result};
use crate::namespaces::NsPlan;
use crate::rootfs::criu_root;
use crate::seccomp;
use crate::state::{self, ProcessId, State, StateDir, Status};
use crate::{console, hooks};

/// The directory in the state dir the rootfs is bound on while CRIU restores (runc's name).
const CRIU_ROOT: &str = "criu-root";

#[derive(Debug, Default, Clone)]
pub struct RestoreOptions {
    pub root: PathBuf,
    pub id: String,
    pub bundle: PathBuf,
    pub criu: Option<PathBuf>,
    pub image_path: PathBuf,
    pub work_path: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    /// Accepted like runc's: CRIU sets up the root itself, pivot_root or not.
    pub no_pivot: bool,
    pub tcp_established: bool,
    pub tcp_close: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub auto_dedup: bool,
    pub lazy_pages: bool,
    pub manage_cgroups_mode: Option<CgMode>,
    pub empty_ns: u32,
    pub lsm_profile: Option<String>,
    pub lsm_mount_context: Option<String>,
    /// Foreground restore of a terminal container without --console-socket: husk keeps the
    /// new pty master (`Restored::console`).
    pub own_console: bool,
}

/// A restored container: its init runs (as husk's child: CRIU restores it as our sibling).
pub struct Restored {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub console: Option<OwnedFd>,
}

pub fn restore(opts: &RestoreOptions) -> Result<Restored> {
    let bundle = Bundle::load(&opts.bundle)?;
    let plan = NsPlan::from_config(bundle.spec.linux().as_ref())?;
    let terminal = bundle.spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    if terminal && opts.console_socket.is_none() && !opts.own_console {
        return Err(Error::field("process.terminal", "a terminal needs --console-socket when husk detaches"));
    }
    let criu = Criu::probe(opts.criu.as_deref())?;
    if cgroups::current_mode()? == cgroups::Mode::V2 {
        criu.require(criu::V2_VERSION, "restore on a cgroup v2 host")?;
    }
    if opts.lsm_profile.is_some() || opts.lsm_mount_context.is_some() {
        criu.require(criu::LSM_VERSION, "--lsm-profile and --lsm-mount-context")?;
    }
    if plan.pid_ns_path().is_some() {
        criu.require(criu::EXT_PID_NS_VERSION, "restore into a joined pid namespace")?;
    }
    let images = open_dir(&opts.image_path, "--image-path")?;
    let stdio = read_stdio(&opts.image_path)?;
    let work = opts.work_path.as_deref().map(|p| make_dir(p, "--work-path")).transpose()?;
    let log = absolute(opts.work_path.as_deref().unwrap_or(&opts.image_path)).join("restore.log");

    let dir = StateDir::create(&opts.root, &opts.id)?;
    let mut undo = Undo { dir: Some(dir), cgroup: None, child: None, criu_root: None };
    let dirs = Dirs { images: &images, work: work.as_ref(), log: &log };
    let restored = restore_in(opts, &bundle, &plan, &criu, &dirs, &stdio, &mut undo)
        .map_err(|e| e.context(format!("restore {}", opts.id)))?;
    undo.dir = None;
    undo.cgroup = None;
    undo.child = None;
    Ok(restored)
}

/// Where CRIU reads the images and writes its work files and log.
struct Dirs<'a> {
    images: &'a OwnedFd,
    work: Option<&'a OwnedFd>,
    log: &'a Path,
}

/// Undoes a failed restore: nothing may be left (process, mount, cgroup, state).
struct Undo {
    dir: Option<StateDir>,
    cgroup: Option<Cgroup>,
    child: Option<OwnedFd>,
    criu_root: Option<PathBuf>,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(pidfd) = self.child.take() {
            let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
            let _ = rustix::event::poll(&mut [rustix::event::PollFd::new(&pidfd, rustix::event::PollFlags::IN)], None);
        }
        // Always: once CRIU is done, the restored mount namespace holds its own copy.
        if let Some(root) = self.criu_root.take() {
            criu_root::release(&root);
        }
        if let Some(cg) = self.cgroup.take() {
            if let Err(e) = cg.destroy() {
                tracing::warn!("cleanup after failed restore: {e}");
            }
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.remove();
        }
    }
}

fn restore_in(
    opts: &RestoreOptions,
    bundle: &Bundle,
    plan: &NsPlan,
    criu: &Criu,
    dirs: &Dirs,
    stdio: &[String],
    undo: &mut Undo,
) -> Result<Restored> {
    let spec = &bundle.spec;
    let linux = spec.linux().as_ref();
    let dir = undo.dir.as_ref().ok_or_else(|| Error::msg("state dir lost"))?;
    let mut state = State::creating(&opts.id, bundle, super::exec::exec_config(spec, plan, false))?;
    // CRIU restores the processes' own filters; `exec` into the restored container loads the
    // one create would have saved.
    if let Some(s) = linux.and_then(|l| l.seccomp().as_ref()) {
        let filter = seccomp::prepare(s, Some(&opts.root.join(seccomp::cache::DIR_NAME)))?;
        state.seccomp = Some(filter.save(&dir.fd, s)?);
    }
    // As in create: the plan names the cgroup dirs before they exist.
    let cgroup = Cgroup::create_recorded(
        linux.and_then(|l| l.cgroups_path().as_deref()),
        &opts.id,
        linux.and_then(|l| l.resources().as_ref()),
        |plan| {
            state.cgroup = plan.clone();
            dir.save_plan(&state)
        },
    )?;
    state.cgroup = cgroup.clone();
    undo.cgroup = Some(cgroup.clone());

    let ext = externals::mounts(spec, &bundle.dir, &bundle.rootfs, plan, &cgroup)?;
    let root = dir.path.join(CRIU_ROOT);
    std::fs::create_dir(&root).ctx(|| format!("create {}", root.display()))?;
    undo.criu_root = Some(root.clone());
    criu_root::prepare(&bundle.rootfs, &root, &mount_points(spec, &ext))?;

    let console_socket = match &opts.console_socket {
        Some(path) => Some(console::connect(path)?),
        None => None,
    };
    let (ns_fds, join_ns) = externals::restore_namespaces(plan)?;
    // What CRIU inherits: the new stdio for the init's old pipes, then the joined namespaces.
    let pipes: Vec<(String, BorrowedFd<'_>)> = stdio
        .iter()
        .enumerate()
        .filter(|(_, s)| s.starts_with("pipe:"))
        .map(|(i, s)| (s.clone(), stdio_fd(i)))
        .collect();
    let mut inherit: Vec<BorrowedFd<'_>> = pipes.iter().map(|(_, fd)| *fd).collect();
    inherit.extend(ns_fds.iter().map(|(_, fd)| fd.as_fd()));
    let keys: Vec<String> =
        pipes.iter().map(|(k, _)| k.clone()).chain(ns_fds.iter().map(|(k, _)| k.to_string())).collect();

    let (swrk, numbers) = Swrk::spawn(&criu.path, &inherit)?;
    swrk.join(&cgroup)?;
    let mut o = Opts {
        images_dir_fd: dirs.images.as_raw_fd(),
        work_dir_fd: dirs.work.map(|w| w.as_raw_fd()),
        evasive_devices: Some(true),
        log_level: Some(4),
        log_file: Some("restore.log".into()),
        rst_sibling: Some(true),
        root: Some(root.to_string_lossy().into_owned()),
        manage_cgroups: Some(true),
        manage_cgroups_mode: Some(opts.manage_cgroups_mode.unwrap_or(CgMode::Default) as i32),
        notify_scripts: Some(true),
        shell_job: Some(opts.shell_job),
        ext_unix_sk: Some(opts.ext_unix_sk),
        tcp_established: Some(opts.tcp_established),
        tcp_close: opts.tcp_close.then_some(true),
        file_locks: Some(opts.file_locks),
        empty_ns: Some(opts.empty_ns),
        orphan_pts_master: Some(true),
        auto_dedup: Some(opts.auto_dedup),
        lazy_pages: Some(opts.lazy_pages),
        lsm_profile: opts.lsm_profile.clone(),
        lsm_mount_context: opts.lsm_mount_context.clone(),
        ext_mnt: externals::restore_map(&ext),
        join_ns,
        cg_root: cgroup_roots(swrk.pid())?,
        config_file: criu::config_file(
            spec.annotations().as_ref().and_then(|a| a.get(criu::CONFIG_ANNOTATION)).map(String::as_str),
        ),
        ..Default::default()
    };
    o.inherit_fd = keys.into_iter().zip(numbers).map(|(key, fd)| InheritFd { key, fd }).collect();
    let req = Req { r#type: ReqType::Restore as i32, opts: Some(o), ..Default::default() };

    let mut restored_pid = None;
    let mut master = None;
    let prestart = spec.hooks().as_ref().and_then(|h| h.prestart().clone()).unwrap_or_default();
    let create_runtime = spec.hooks().as_ref().and_then(|h| h.create_runtime().clone()).unwrap_or_default();
    let resp = swrk
        .call(&req, &mut |n| {
            match n.script.as_str() {
                // The namespaces exist, nothing runs yet: the hooks that prepare them (networking).
                "setup-namespaces" => {
                    let mut s = state.clone();
                    s.init.pid = n.pid.unwrap_or(0);
                    let json = serde_json::to_vec(&s.oci_with(Status::Creating)).unwrap_or_default();
                    hooks::run("prestart", &prestart, &json)?;
                    hooks::run("createRuntime", &create_runtime, &json)?;
                }
                "post-restore" => restored_pid = n.pid,
                // The container's terminal, made anew by CRIU: its master goes where create sends it.
                "orphan-pts-master" => {
                    let fd = n.fd.ok_or_else(|| Error::msg("criu sent no pty master"))?;
                    match &console_socket {
                        Some(sock) => console::send_master(sock, &fd)?,
                        None => master = Some(fd),
                    }
                }
                _ => {}
            }
            Ok(())
        })
        .map_err(|e| criu::with_log(e, dirs.log))?;
    let pid =
        resp.restore.map(|r| r.pid).or(restored_pid).ok_or_else(|| Error::msg("criu did not say the restored pid"))?;
    let raw = rustix::process::Pid::from_raw(pid).ok_or_else(|| Error::msg(format!("criu restored bad pid {pid}")))?;
    let pidfd =
        rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty()).ctx(|| "pidfd of the restored init")?;
    undo.child = Some(pidfd.try_clone().ctx(|| "dup pidfd")?);
    if let Some(root) = undo.criu_root.take() {
        criu_root::release(&root);
    }

    state.init = ProcessId::of(pid)?;
    state.status = Status::Running;
    dir.save(&state)?;
    if let Some(pid_file) = &opts.pid_file {
        let path = absolute(pid_file);
        state::write_atomic(&path, pid.to_string().as_bytes()).map_err(|e| e.context("--pid-file"))?;
    }
    let terminal = spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    if terminal && master.is_none() && console_socket.is_none() {
        return Err(Error::msg("process.terminal: criu restored no terminal"));
    }
    Ok(Restored { pid, pidfd, console: master })
}

/// Mount points to make in the rootfs: those of bind mounts, unless a tmpfs of the config
/// holds them (CRIU restores a tmpfs with its content, mount points included).
fn mount_points(spec: &oci_spec::runtime::Spec, ext: &[externals::External]) -> Vec<(PathBuf, PathBuf)> {
    let tmpfs: Vec<PathBuf> = spec
        .mounts()
        .iter()
        .flatten()
        .filter(|m| m.typ().as_deref() == Some("tmpfs"))
        .map(|m| m.destination().clone())
        .collect();
    ext.iter()
        .filter(|e| e.bind && !tmpfs.iter().any(|t| e.dest.starts_with(t) && e.dest != *t))
        .map(|e| (e.dest.clone(), e.source.clone()))
        .collect()
}

/// Where CRIU must put the restored tasks: the cgroups CRIU itself was just moved into, per
/// hierarchy as /proc/<criu>/cgroup lists them (no controller name on cgroup v2).
fn cgroup_roots(criu_pid: i32) -> Result<Vec<CgroupRoot>> {
    let path = format!("/proc/{criu_pid}/cgroup");
    let text = std::fs::read_to_string(&path).ctx(|| format!("read {path}"))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctrl), Some(p)) = (f.next(), f.next(), f.next()) else { continue };
        out.push(CgroupRoot { ctrl: (!ctrl.is_empty()).then(|| ctrl.to_string()), path: p.to_string() });
    }
    Ok(out)
}

/// The init's stdio at checkpoint time (runc's descriptors.json); none recorded is no error.
fn read_stdio(images: &Path) -> Result<Vec<String>> {
    let path = images.join(DESCRIPTORS);
    // A regular file of bounded size (smallfile.rs): the image directory is the caller's.
    match crate::smallfile::read_document(&path) {
        Ok(data) => serde_json::from_slice(&data).map_err(|e| Error::msg(format!("{}: {e}", path.display()))),
        Err(e) if e.errno() == Some(libc::ENOENT) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn stdio_fd(i: usize) -> BorrowedFd<'static> {
    match i {
        0 => rustix::stdio::stdin(),
        1 => rustix::stdio::stdout(),
        _ => rustix::stdio::stderr(),
    }
}

fn open_dir(path: &Path, flag: &str) -> Result<OwnedFd> {
    rustix::fs::open(path, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .ctx(|| format!("{flag} {}", path.display()))
}

fn make_dir(path: &Path, flag: &str) -> Result<OwnedFd> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path).ctx(|| format!("{flag} {}", path.display()))?;
    open_dir(path, flag)
}
