//! A container's state on disk: `<root>/<id>/state.json`, replaced atomically, one lock per
//! container, and a status that is derived from the live process so a dead or recycled pid is
//! never reported as running.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Hooks;
use rustix::fs::{flock, FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result};
use crate::smallfile;

mod summary;
pub use summary::{list, parse_summary, Summary};

pub const STATE_FILE: &str = "state.json";
/// What create recorded before it made anything (the cgroups it is about to make, above all):
/// written once, never replaced, so `delete --force` can still clean up a container whose
/// `state.json` was corrupted. Until create writes `state.json` (once the init is ready), the
/// plan is the container's state: readers fall back to it.
pub const PLAN_FILE: &str = "plan.json";
/// The init of a created container listens here; `start` connects. Its presence is what tells
/// "created" from "running", like runc's exec.fifo.
pub const START_SOCKET: &str = "start.sock";
/// The name (`/proc/<pid>/comm`) the init carries until it execs the user program: with the
/// start socket, what tells a created container from one whose `start` was killed after the
/// init had already taken the start signal.
pub const INIT_COMM: &str = "husk-init";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Stopped,
    Paused,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
            Status::Paused => "paused",
        }
    }
}

/// A process identified by pid plus its start time, so that a recycled pid is not mistaken for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    pub pid: i32,
    pub start_time: u64,
}

impl ProcessId {
    pub fn of(pid: i32) -> Result<ProcessId> {
        let text = stat_text(pid).map_err(|e| match e {
            Errno::NOENT | Errno::SRCH => Error::msg(format!("process {pid}: no such process")),
            // Out of fds, say: that is what the caller must hear, not "no such process".
            e => Error::from(e).context(format!("read /proc/{pid}/stat")),
        })?;
        let stat = parse_stat(&text).ok_or_else(|| Error::msg(format!("/proc/{pid}/stat: cannot parse")))?;
        Ok(ProcessId { pid, start_time: stat.start_time })
    }

    /// Alive means: the pid exists, is not a zombie, and started when ours did.
    pub fn is_alive(&self) -> bool {
        self.live_comm().is_some()
    }

    /// The command name of the process if it is alive (see `is_alive`).
    fn live_comm(&self) -> Option<String> {
        let s = read_stat(self.pid).filter(|s| s.start_time == self.start_time && !s.zombie)?;
        Some(s.comm)
    }
}

struct Stat {
    start_time: u64,
    zombie: bool,
    comm: String,
}

fn read_stat(pid: i32) -> Option<Stat> {
    if pid <= 0 {
        return None;
    }
    parse_stat(&stat_text(pid).ok()?)
}

fn stat_text(pid: i32) -> std::result::Result<String, Errno> {
    smallfile::read_string(format!("/proc/{pid}/stat"), STAT_SIZE)
}

/// A `/proc/PID/stat` line is ~300 bytes; a long command name and large numbers stay under this.
const STAT_SIZE: usize = 512;

fn parse_stat(text: &str) -> Option<Stat> {
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let close = text.rfind(')')?;
    let comm = text.get(text.find('(')? + 1..close)?.to_string();
    let rest = text.get(close + 2..)?;
    let mut fields = rest.split(' ');
    let state = fields.next()?;
    // Field 22 (starttime) is the 20th after the state field.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(Stat { start_time, zombie: state == "Z" || state == "X", comm })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub oci_version: String,
    pub id: String,
    /// What create last recorded: `creating` or `created`; the live status is `status()`.
    pub status: Status,
    pub init: ProcessId,
    /// The husk process that is creating the container; if it died, the container is stopped.
    pub creator: ProcessId,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub cgroup: Cgroup,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Hooks>,
    /// The resctrl group husk placed the container in (`linux.intelRdt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intel_rdt: Option<crate::intel_rdt::RdtPlacement>,
    /// The container's seccomp filter (its program is `seccomp.bpf` in the state dir), for exec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<crate::seccomp::Record>,
    /// What `exec` needs from the config, recorded here so it never re-reads config.json.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecConfig>,
}

/// The container's config as `exec` uses it, recorded by `create`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecConfig {
    /// The container's `process`: the defaults of an exec'd process.
    pub process: oci_spec::runtime::Process,
    /// CLONE_NEW* flags of the container's namespaces (new or joined by path), which an exec'd
    /// process joins through the init's pidfd.
    pub namespaces: u64,
    #[serde(default)]
    pub no_new_keyring: bool,
    /// The pid namespace is joined by path: its PID 1 is not the init, so the container's
    /// processes outlive the init (`kill KILL` kills them by cgroup).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pid_ns_joined: bool,
    /// `linux.personality` and `linux.memoryPolicy`, which runc applies to exec'd processes too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personality: Option<oci_spec::runtime::LinuxPersonality>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_policy: Option<oci_spec::runtime::LinuxMemoryPolicy>,
    /// `linux.resources.cpu.cpus` is set (see `process::setup::Placement::cpuset`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cpuset: bool,
}

/// The OCI state as `state` prints it and hooks receive it, with runc's extra fields.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: &'static str,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    // runc's order (its containerState): annotations, when there are any, before owner.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: &'a BTreeMap<String, String>,
    pub owner: &'a str,
}

impl State {
    /// What `create` and `restore` record first, before anything of the container exists.
    pub fn creating(id: &str, bundle: &crate::config::Bundle, exec: Option<ExecConfig>) -> Result<State> {
        let spec = &bundle.spec;
        Ok(State {
            oci_version: spec.version().clone(),
            id: id.to_owned(),
            status: Status::Creating,
            init: ProcessId::default(),
            creator: ProcessId::of(std::process::id() as i32)?,
            bundle: bundle.dir.clone(),
            rootfs: bundle.rootfs.clone(),
            created: now_rfc3339(),
            owner: owner_name(),
            annotations: spec.annotations().clone().unwrap_or_default().into_iter().collect(),
            cgroup: Cgroup::default(),
            hooks: spec.hooks().clone(),
            intel_rdt: None,
            seccomp: None,
            exec,
        })
    }

    pub fn oci(&self, dir: &StateDir) -> OciState<'_> {
        let status = self.status(dir);
        self.oci_with(status)
    }

    pub fn oci_with(&self, status: Status) -> OciState<'_> {
        let pid = if status == Status::Stopped { 0 } else { self.init.pid };
        OciState {
            oci_version: &self.oci_version,
            id: &self.id,
            pid,
            status: status.as_str(),
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            owner: &self.owner,
            annotations: &self.annotations,
        }
    }

    pub fn status(&self, dir: &StateDir) -> Status {
        live_status(self.status, &self.creator, &self.init, || self.cgroup.is_frozen(), || dir.has(START_SOCKET))
    }
}

/// The live status of a container whose state recorded `recorded`. A `creating` container whose
/// creator died is stopped (runc does the same): nothing will ever finish creating it, and
/// `delete` cleans up what was made. `frozen` and `start_socket` are asked only of a live init.
pub(crate) fn live_status(
    recorded: Status,
    creator: &ProcessId,
    init: &ProcessId,
    frozen: impl FnOnce() -> bool,
    start_socket: impl FnOnce() -> bool,
) -> Status {
    if recorded == Status::Creating {
        return if creator.is_alive() { Status::Creating } else { Status::Stopped };
    }
    match init.live_comm() {
        None => Status::Stopped,
        // A frozen container is paused whether it was created or running (runc alike).
        Some(_) if frozen() => Status::Paused,
        Some(comm) if comm == INIT_COMM && start_socket() => Status::Created,
        Some(_) => Status::Running,
    }
}

/// `<root>/<id>`, held open; `lock()` serialises husk calls that change the container. Every
/// file operation is relative to the open directory, so a call that waited for the lock while
/// the container was deleted (and its id perhaps taken by a new one) sees the old, removed
/// directory — "does not exist" — and never touches the new container.
pub struct StateDir {
    pub path: PathBuf,
    pub fd: OwnedFd,
}

pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::msg(format!("invalid container id format: {id:?}")))
    }
}

impl StateDir {
    /// Claim `<root>/<id>`: mkdir is the atomic "this id is ours" step. The directory comes back
    /// locked, so no other call acts on the container until create is done with it.
    pub fn create(root: &Path, id: &str) -> Result<StateDir> {
        validate_id(id)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .ctx(|| format!("create state root {}", root.display()))?;
        let path = root.join(id);
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::msg(format!("container with given ID already exists: {id}")))
            }
            Err(e) => return Err(Error::from(e).context(format!("create {}", path.display()))),
        }
        let dir = match open_dir(&path) {
            Ok(fd) => StateDir { path, fd },
            Err(e) => {
                let _ = std::fs::remove_dir(&path);
                return Err(e);
            }
        };
        dir.lock()?;
        Ok(dir)
    }

    pub fn open(root: &Path, id: &str) -> Result<StateDir> {
        validate_id(id)?;
        let path = root.join(id);
        match open_dir(&path) {
            Ok(fd) => Ok(StateDir { path, fd }),
            Err(e) if e.errno() == Some(libc::ENOENT) => Err(Error::msg(format!("container does not exist: {id}"))),
            Err(e) => Err(e),
        }
    }

    pub fn lock(&self) -> Result<()> {
        flock(self.fd.as_fd(), FlockOperation::LockExclusive).ctx(|| format!("lock {}", self.path.display()))
    }

    pub fn unlock(&self) -> Result<()> {
        flock(self.fd.as_fd(), FlockOperation::Unlock).ctx(|| format!("unlock {}", self.path.display()))
    }

    /// The state, or while the container is being created (no `state.json` yet) the plan.
    pub fn load(&self) -> Result<State> {
        match self.read(STATE_FILE) {
            Err(e) if e.errno() == Some(libc::ENOENT) => self.read(PLAN_FILE).map_err(|p| not_found_or(e, p)),
            r => r,
        }
    }

    /// The plan create recorded before it made anything (see [`PLAN_FILE`]).
    pub fn load_plan(&self) -> Result<State> {
        self.read(PLAN_FILE)
    }

    fn read(&self, name: &str) -> Result<State> {
        let data = read_file(&self.fd, &self.path, name)?;
        parse_state(&data).map_err(|e| e.context(self.path.join(name).display()))
    }

    /// What `state` prints of the container (see [`Summary`]), without parsing the rest.
    pub fn load_summary(&self) -> Result<Summary> {
        let (name, data) = read_state_or_plan(&self.fd, &self.path, "")?;
        parse_summary(&data).map_err(|e| e.context(self.path.join(name).display()))
    }

    pub fn save(&self, state: &State) -> Result<()> {
        let data = serde_json::to_vec(state).map_err(|e| Error::msg(format!("encode state: {e}")))?;
        write_atomic_at(&self.fd, &self.path, STATE_FILE, &data)
    }

    /// `save` in two halves: the state written and synced under a temp name now, put in place
    /// by [`PendingSave::commit`] later. create syncs its final state while the init is still
    /// setting up, so that the sync is not waited for on the way to `created`.
    pub fn prepare_save(&self, state: &State) -> Result<PendingSave<'_>> {
        let data = serde_json::to_vec(state).map_err(|e| Error::msg(format!("encode state: {e}")))?;
        let tmp = write_temp_at(&self.fd, STATE_FILE, &data, true)
            .ctx(|| format!("write {}", self.path.join(STATE_FILE).display()))?;
        Ok(PendingSave { dir: self, tmp: Some(tmp) })
    }

    /// The first save: the plan, written once, the state of the container until the first
    /// `save` writes `state.json` (see [`PLAN_FILE`]).
    ///
    /// Renamed into place whole, but not synced: the plan matters while a husk that was killed
    /// left cgroups to remove, and the page cache, which outlives a killed process, holds it.
    /// A power loss takes the plan's cgroups and processes with it; a plan torn by one (data
    /// never written) reads as corrupt and `delete --force` removes the directory, since there
    /// is nothing else left to clean. `state.json`, which outlives the create, is synced before
    /// it is renamed into place, so it is never torn.
    pub fn save_plan(&self, state: &State) -> Result<()> {
        let data = serde_json::to_vec(state).map_err(|e| Error::msg(format!("encode state: {e}")))?;
        write_renamed_at(&self.fd, &self.path, PLAN_FILE, &data, false)
    }

    /// Whether `name` exists in the directory.
    pub fn has(&self, name: &str) -> bool {
        rustix::fs::statat(&self.fd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_ok()
    }

    pub fn remove_file(&self, name: &str) {
        let _ = rustix::fs::unlinkat(&self.fd, name, rustix::fs::AtFlags::empty());
    }

    /// Remove a directory that has no `state.json` (a create killed before its first save, a
    /// delete killed half way) — but only if everything in it is a file husk makes there: a
    /// `--root` pointed at the wrong place must not cost the files of a directory named like an id.
    pub fn remove_unclaimed(self) -> Result<()> {
        for (name, kind) in entries(&self.fd).ctx(|| format!("read {}", self.path.display()))? {
            let name = name.to_string_lossy();
            let husk_made = [PLAN_FILE, START_SOCKET, "console.sock", crate::seccomp::STATE_FILE]
                .contains(&name.as_ref())
                || (name.starts_with('.') && name.ends_with(".tmp"));
            let notify_dir = kind == rustix::fs::FileType::Directory && name == crate::notify::DIR;
            if !notify_dir && (!husk_made || kind == rustix::fs::FileType::Directory) {
                return Err(Error::msg(format!(
                    "{} has no state.json and holds {name:?}, which husk does not make: not removed",
                    self.path.display()
                )));
            }
        }
        self.remove()
    }

    /// The NOTIFY_SOCKET directory (notify.rs): its socket, then itself; nothing below it is
    /// followed (no symlink, no deeper directory).
    fn remove_notify_dir(&self) -> rustix::io::Result<()> {
        use rustix::fs::{AtFlags, Mode, OFlags};
        let sub = rustix::fs::openat(
            &self.fd,
            crate::notify::DIR,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        for (name, _) in entries(&sub)? {
            match rustix::fs::unlinkat(&sub, name.as_c_str(), AtFlags::empty()) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(e),
            }
        }
        match rustix::fs::unlinkat(&self.fd, crate::notify::DIR, AtFlags::REMOVEDIR) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Remove the directory, `state.json` last: a call killed half way leaves a container that
    /// the next `delete` still knows. The directory itself goes only while it is still ours.
    pub fn remove(self) -> Result<()> {
        let what = || format!("remove {}", self.path.display());
        // The record goes last: state.json, and before it the plan, which is the record while
        // there is no state.json.
        let names: Vec<(std::ffi::CString, rustix::fs::FileType)> = entries(&self.fd)
            .ctx(what)?
            .into_iter()
            .filter(|(n, _)| n.as_bytes() != STATE_FILE.as_bytes() && n.as_bytes() != PLAN_FILE.as_bytes())
            .collect();
        for (name, kind) in &names {
            if *kind == rustix::fs::FileType::Directory && name.as_bytes() == crate::notify::DIR.as_bytes() {
                self.remove_notify_dir().ctx(what)?;
                continue;
            }
            match rustix::fs::unlinkat(&self.fd, name.as_c_str(), rustix::fs::AtFlags::empty()) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(Error::from(e).context(format!("{}: {}", what(), name.to_string_lossy()))),
            }
        }
        crate::crashpoint::here("delete:files-removed");
        for name in [PLAN_FILE, STATE_FILE] {
            match rustix::fs::unlinkat(&self.fd, name, rustix::fs::AtFlags::empty()) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(Error::from(e).context(format!("{}: {name}", what()))),
            }
        }
        let ours = rustix::fs::fstat(&self.fd).ctx(what)?;
        match rustix::fs::stat(&self.path) {
            Ok(st) if st.st_dev == ours.st_dev && st.st_ino == ours.st_ino => {}
            _ => return Ok(()),
        }
        match rustix::fs::rmdir(&self.path) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(Error::from(e).context(what())),
        }
    }
}

/// A state synced under a temp name in its directory, not in place yet; dropped without
/// `commit`, the temp file goes.
pub struct PendingSave<'a> {
    dir: &'a StateDir,
    tmp: Option<String>,
}

impl PendingSave<'_> {
    /// Rename the synced state over `state.json`.
    pub fn commit(mut self) -> Result<()> {
        let Some(tmp) = self.tmp.take() else { return Ok(()) };
        let d = &self.dir.fd;
        rustix::fs::renameat(d, tmp.as_str(), d, STATE_FILE).map_err(|e| {
            let _ = rustix::fs::unlinkat(d, tmp.as_str(), rustix::fs::AtFlags::empty());
            Error::from(e).context(format!("write {}", self.dir.path.join(STATE_FILE).display()))
        })
    }
}

impl Drop for PendingSave<'_> {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = rustix::fs::unlinkat(&self.dir.fd, tmp.as_str(), rustix::fs::AtFlags::empty());
        }
    }
}

/// The entries of a directory (but `.` and `..`), read through its own fd: no new fd, so a
/// create that failed for want of fds can still clean up after itself.
fn entries(fd: &OwnedFd) -> rustix::io::Result<Vec<(std::ffi::CString, rustix::fs::FileType)>> {
    rustix::fs::seek(fd, rustix::fs::SeekFrom::Start(0))?;
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
    let mut dir = rustix::fs::RawDir::new(fd, &mut buf);
    let mut out = Vec::new();
    while let Some(e) = dir.next() {
        let e = match e {
            Ok(e) => e,
            // Removed meanwhile (by a delete that held the lock before us): it has no entries.
            Err(rustix::io::Errno::NOENT) if out.is_empty() => return Ok(out),
            Err(e) => return Err(e),
        };
        let name = e.file_name();
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            out.push((name.to_owned(), e.file_type()));
        }
    }
    Ok(out)
}

/// `<prefix>state.json` in the directory `dir` (shown as `path`), or the plan if there is no
/// state yet (see [`PLAN_FILE`]): the name read and its content.
fn read_state_or_plan(dir: &OwnedFd, path: &Path, prefix: &str) -> Result<(String, Vec<u8>)> {
    let state = format!("{prefix}{STATE_FILE}");
    match read_file(dir, path, &state) {
        Err(e) if e.errno() == Some(libc::ENOENT) => {
            let plan = format!("{prefix}{PLAN_FILE}");
            read_file(dir, path, &plan).map(|d| (plan, d)).map_err(|p| not_found_or(e, p))
        }
        r => r.map(|d| (state, d)),
    }
}

/// The error of a fallback read: the first one's "does not exist" if the fallback is missing
/// too, else the fallback's own.
fn not_found_or(first: Error, fallback: Error) -> Error {
    if fallback.errno() == Some(libc::ENOENT) {
        first
    } else {
        fallback
    }
}

/// `name` in the directory `dir` (shown as `path`), whole; a missing one says the container
/// does not exist.
fn read_file(dir: &OwnedFd, path: &Path, name: &str) -> Result<Vec<u8>> {
    let file = || path.join(name);
    // A state is 2-3 KiB; annotations or many hooks make it larger (the buffer grows).
    smallfile::read_at(dir.as_fd(), name, 4096).map_err(|e| match e {
        Errno::NOENT => Error::msg(format!("container does not exist: {}", file().display())).with_errno(libc::ENOENT),
        e => Error::from(e).context(format!("read {}", file().display())),
    })
}

/// A state file's content: the one reader of `state.json` (fuzzed in `state::tests`).
pub fn parse_state(data: &[u8]) -> Result<State> {
    serde_json::from_slice(data).map_err(|e| Error::msg(format!("corrupt state: {e}")))
}

fn open_dir(path: &Path) -> Result<OwnedFd> {
    rustix::fs::open(path, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .ctx(|| format!("open {}", path.display()))
}

/// Replace `name` in the directory `dir` (shown as `path` in errors) so that a crash leaves
/// either the old or the new content, whole: a temp file, fsync, rename over.
///
/// No fsync of the directory: it would make the rename durable, not atomic, and a state needs
/// only atomicity. A killed husk loses nothing that is in the page cache. A power loss may undo
/// a rename that was not synced, which brings back the previous whole file (or none, for the
/// first one), never a torn one, because the data was synced before the rename; and after a
/// power loss nothing a state describes (processes, cgroups, mounts) exists any more, so an
/// older state loses nothing: `delete` removes the container from it all the same.
fn write_atomic_at(dir: &OwnedFd, path: &Path, name: &str, data: &[u8]) -> Result<()> {
    write_renamed_at(dir, path, name, data, true)
}

/// A temp file renamed over `name`: readers see the old content or the new, whole; `sync` says
/// whether a power loss can tear it (see `write_atomic_at`).
fn write_renamed_at(dir: &OwnedFd, path: &Path, name: &str, data: &[u8], sync: bool) -> Result<()> {
    let what = || format!("write {}", path.join(name).display());
    let tmp = write_temp_at(dir, name, data, sync).ctx(what)?;
    rustix::fs::renameat(dir, tmp.as_str(), dir, name).map_err(|e| {
        let _ = rustix::fs::unlinkat(dir, tmp.as_str(), rustix::fs::AtFlags::empty());
        Error::from(e).context(what())
    })
}

/// The first half of `write_atomic_at`: `data` in a synced temp file beside `name`, whose name
/// is returned (a dot file ending in `.tmp`, which `remove_unclaimed` knows as husk's).
fn write_temp_at(dir: &OwnedFd, name: &str, data: &[u8], sync: bool) -> rustix::io::Result<String> {
    let tmp = format!(".{name}.{}.tmp", std::process::id());
    let result = (|| -> rustix::io::Result<()> {
        // A new file, never one that is there: the directory may be anyone's (a `--pid-file` on
        // a filesystem without O_TMPFILE), and the name is predictable, so a symlink planted
        // under it must not make us truncate and write its target. What is there is a leftover
        // of a process with our pid (or planted): unlinked (the link itself, never its target),
        // then created anew once; planted again, we fail.
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mode = Mode::from_raw_mode(0o600);
        let f = match rustix::fs::openat(dir, tmp.as_str(), flags, mode) {
            Err(rustix::io::Errno::EXIST) => {
                rustix::fs::unlinkat(dir, tmp.as_str(), rustix::fs::AtFlags::empty())?;
                rustix::fs::openat(dir, tmp.as_str(), flags, mode)?
            }
            r => r?,
        };
        write_all(&f, data)?;
        if sync {
            rustix::fs::fsync(&f)?;
        }
        crate::crashpoint::here("atomic:written");
        Ok(())
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = rustix::fs::unlinkat(dir, tmp.as_str(), rustix::fs::AtFlags::empty());
            Err(e)
        }
    }
}

fn write_all(fd: &OwnedFd, mut data: &[u8]) -> rustix::io::Result<()> {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(0) => return Err(rustix::io::Errno::NOSPC),
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Write `data` to `path` (a file the caller names: `--pid-file`) so that every reader sees it
/// whole or not at all, and a crash leaves no temp file beside it: an unnamed O_TMPFILE, then
/// linked in under its name (or, if the name exists, under a temp name renamed over it).
/// Filesystems without O_TMPFILE get a named temp file.
///
/// Not synced: a pid file names a process of this boot, and after a power loss it is stale
/// whatever it holds (runc and crun do not sync theirs either). Within a boot the page cache is
/// what every reader sees, and a file linked only once written is never seen half-written.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    write_linked(path, data, false)
}

/// `write_atomic`, and durable: the data synced before it is linked, the directory after. For
/// what must outlive a reboot (a checkpoint's images).
pub fn write_durable(path: &Path, data: &[u8]) -> Result<()> {
    write_linked(path, data, true)
}

fn write_linked(path: &Path, data: &[u8], durable: bool) -> Result<()> {
    let dir_path = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| Error::msg(format!("write {}: not a file name", path.display())))?;
    let name = name.to_string_lossy().into_owned();
    let what = || format!("write {}", path.display());
    let dir = open_dir(dir_path).map_err(|e| e.context(what()))?;
    let flags = OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC;
    let f = match rustix::fs::openat(&dir, ".", flags, Mode::from_raw_mode(0o644)) {
        Ok(f) => f,
        Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR | rustix::io::Errno::INVAL) => {
            write_atomic_at(&dir, dir_path, &name, data).map_err(|e| e.context(path.display()))?;
            return if durable { rustix::fs::fsync(&dir).ctx(what) } else { Ok(()) };
        }
        Err(e) => return Err(Error::from(e).context(what())),
    };
    (|| -> rustix::io::Result<()> {
        write_all(&f, data)?;
        if durable {
            rustix::fs::fsync(&f)?;
        }
        crate::crashpoint::here("atomic:written");
        use std::os::fd::AsRawFd;
        let proc_path = format!("/proc/self/fd/{}", f.as_raw_fd());
        let follow = rustix::fs::AtFlags::SYMLINK_FOLLOW;
        match rustix::fs::linkat(rustix::fs::CWD, proc_path.as_str(), &dir, name.as_str(), follow) {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) => {
                let tmp = format!(".{name}.{}.tmp", std::process::id());
                let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), rustix::fs::AtFlags::empty());
                rustix::fs::linkat(rustix::fs::CWD, proc_path.as_str(), &dir, tmp.as_str(), follow)?;
                if let Err(e) = rustix::fs::renameat(&dir, tmp.as_str(), &dir, name.as_str()) {
                    let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), rustix::fs::AtFlags::empty());
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
        if durable {
            rustix::fs::fsync(&dir)?;
        }
        Ok(())
    })()
    .ctx(what)
}

/// Every container under `root`, by id (unreadable entries are skipped by the caller). A root
/// that does not exist holds none unless `must_exist` (a `--root` the caller named: runc fails
/// then, and takes a missing default root as "no container made yet").
pub fn list_ids(root: &Path, must_exist: bool) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => return Ok(Vec::new()),
        Err(e) => return Err(Error::from(e).context(format!("--root: open {}", root.display()))),
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// RFC 3339 with nanoseconds in UTC, as runc writes `created`.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil-from-days (H. Hinnant's algorithm), valid for the whole proleptic Gregorian range.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z", sod / 3600, sod % 3600 / 60, sod % 60)
}

/// The name of the calling user, for the `owner` field (runc shows it in `list`).
pub fn owner_name() -> String {
    let uid = rustix::process::getuid().as_raw();
    let name = std::fs::read_to_string("/etc/passwd").ok().and_then(|p| {
        p.lines().find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
        })
    });
    name.unwrap_or_else(|| format!("#{uid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(1_700_000_000, 5), "2023-11-14T22:13:20.000000005Z");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000000000Z");
    }

    #[test]
    fn ids_are_checked() {
        assert!(validate_id("abc-1_2.3+x").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "x\n"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn own_process_is_alive_and_recycled_pid_is_not() {
        let me = ProcessId::of(std::process::id() as i32).unwrap();
        assert!(me.is_alive());
        assert!(!ProcessId { start_time: me.start_time + 1, ..me }.is_alive());
    }

    #[test]
    fn atomic_write_replaces_content() {
        let dir = std::env::temp_dir().join(format!("husk-state-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("s.json");
        write_atomic(&f, b"one").unwrap();
        write_atomic(&f, b"two").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The named temp file of a `--pid-file` where there is no O_TMPFILE (write_atomic's
    /// fallback, called directly: this host's filesystems all have O_TMPFILE): its name is
    /// predictable, and a symlink planted under it must not lead the write to its target.
    #[test]
    fn temp_file_never_follows_a_planted_symlink() {
        let dir = std::env::temp_dir().join(format!("husk-state-plant-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let planted = dir.join(format!(".pid.{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let fd = open_dir(&dir).unwrap();
        write_atomic_at(&fd, &dir, "pid", b"4242").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious", "the write went through the planted symlink");
        assert_eq!(std::fs::read(dir.join("pid")).unwrap(), b"4242");
        assert!(!planted.exists() && std::fs::symlink_metadata(&planted).is_err(), "the temp name is left");
        // A leftover regular file under the name (a crashed husk with our pid) is replaced too.
        std::fs::write(&planted, b"stale").unwrap();
        write_atomic_at(&fd, &dir, "pid", b"4343").unwrap();
        assert_eq!(std::fs::read(dir.join("pid")).unwrap(), b"4343");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
