//! A container's state on disk: `<root>/<id>/state.json`, replaced atomically, one lock per
//! container, and a status that is derived from the live process so a dead or recycled pid is
//! never reported as running.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Hooks;
use rustix::fs::{flock, FlockOperation, Mode, OFlags};
use serde::{Deserialize, Serialize};

use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result};

pub const STATE_FILE: &str = "state.json";
/// The init of a created container listens here; `start` connects. Its presence is what tells
/// "created" from "running", like runc's exec.fifo.
pub const START_SOCKET: &str = "start.sock";

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
        let stat = read_stat(pid).ok_or_else(|| Error::msg(format!("process {pid}: no such process")))?;
        Ok(ProcessId { pid, start_time: stat.start_time })
    }

    /// Alive means: the pid exists, is not a zombie, and started when ours did.
    pub fn is_alive(&self) -> bool {
        self.pid > 0 && read_stat(self.pid).is_some_and(|s| s.start_time == self.start_time && !s.zombie)
    }
}

struct Stat {
    start_time: u64,
    zombie: bool,
}

fn read_stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?;
    // Field 22 (starttime) is the 20th after the state field.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(Stat { start_time, zombie: state == "Z" || state == "X" })
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
    pub owner: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: &'a BTreeMap<String, String>,
}

impl State {
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
        match self.status {
            Status::Creating if self.creator.is_alive() => Status::Creating,
            Status::Creating => Status::Stopped,
            _ if !self.init.is_alive() => Status::Stopped,
            // A frozen container is paused whether it was created or running (runc alike).
            _ if self.cgroup.is_frozen() => Status::Paused,
            _ if dir.path.join(START_SOCKET).exists() => Status::Created,
            _ => Status::Running,
        }
    }
}

/// `<root>/<id>`, held open; `lock()` serialises husk calls that change the container.
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
    /// Claim `<root>/<id>`: mkdir is the atomic "this id is ours" step.
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
        let fd = open_dir(&path)?;
        Ok(StateDir { path, fd })
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

    pub fn load(&self) -> Result<State> {
        let file = self.path.join(STATE_FILE);
        let data = std::fs::read(&file).map_err(|e| {
            let e = Error::from(e);
            if e.errno() == Some(libc::ENOENT) {
                Error::msg(format!("container does not exist: {}", file.display()))
            } else {
                e.context(format!("read {}", file.display()))
            }
        })?;
        serde_json::from_slice(&data).map_err(|e| Error::msg(format!("{}: corrupt state: {e}", file.display())))
    }

    pub fn save(&self, state: &State) -> Result<()> {
        let data = serde_json::to_vec(state).map_err(|e| Error::msg(format!("encode state: {e}")))?;
        write_atomic(&self.path.join(STATE_FILE), &data)
    }

    pub fn remove(self) -> Result<()> {
        std::fs::remove_dir_all(&self.path).ctx(|| format!("remove {}", self.path.display()))
    }
}

fn open_dir(path: &Path) -> Result<OwnedFd> {
    rustix::fs::open(path, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .ctx(|| format!("open {}", path.display()))
}

/// Replace `path` with `data` so that a crash leaves either the old or the new content: write a
/// temp file, fsync it, rename it over, fsync the directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = File::options().write(true).create(true).truncate(true).open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.ctx(|| format!("write {}", path.display()))
}

/// Every container under `root`, by id (unreadable entries are skipped by the caller).
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::from(e).context(format!("read {}", root.display()))),
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
}
