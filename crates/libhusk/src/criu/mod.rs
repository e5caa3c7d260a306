//! CRIU, driven over its RPC interface (`criu swrk`, protobuf messages) as runc drives it: the
//! version check, the request plumbing, and the errors a user can act on (CRIU missing or too
//! old, the first error of CRIU's own log).

pub mod externals;
pub mod rpc;
pub mod swrk;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use rpc::{Req, ReqType};

/// External network namespaces (3.11), the cgroup v2 freezer (3.14): below this, too old.
pub const MIN_VERSION: u32 = 31100;
/// `--lsm-profile` and `--lsm-mount-context` (older CRIU ignores a changed profile).
pub const LSM_VERSION: u32 = 31600;
/// A cgroup v2 host needs CRIU's cgroup2 and freezer support.
pub const V2_VERSION: u32 = 31400;
/// An external pid namespace (`linux.namespaces` joins one by path).
pub const EXT_PID_NS_VERSION: u32 = 31500;

/// The annotation naming CRIU's configuration file for a container (runc's).
pub const CONFIG_ANNOTATION: &str = "org.criu.config";
/// The file CRIU reads without that annotation: runc's, so one file serves both runtimes.
pub const DEFAULT_CONFIG: &str = "/etc/criu/runc.conf";

/// CRIU's configuration file for a container with this `org.criu.config` annotation, as runc
/// picks it (libcontainer/criu_linux.go): a path names the file, an empty value means none,
/// no annotation means [`DEFAULT_CONFIG`]. CRIU reads it after the RPC options, so its
/// settings win; a file that does not exist it ignores.
pub fn config_file(annotation: Option<&str>) -> Option<String> {
    match annotation {
        Some("") => None,
        Some(path) => Some(path.to_string()),
        None => Some(DEFAULT_CONFIG.to_string()),
    }
}

pub fn show_version(v: u32) -> String {
    match v % 100 {
        0 => format!("{}.{}", v / 10000, v / 100 % 100),
        sub => format!("{}.{}.{sub}", v / 10000, v / 100 % 100),
    }
}

/// The CRIU binary to run: `--criu PATH`, else `criu` from $PATH.
#[derive(Debug, Clone)]
pub struct Criu {
    pub path: PathBuf,
    pub version: u32,
}

impl Criu {
    /// Find CRIU and ask its version (the VERSION request exists since CRIU 3.0); refuse one
    /// older than `MIN_VERSION`, naming what is needed.
    pub fn probe(path: Option<&Path>) -> Result<Criu> {
        let path = path.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("criu"));
        let (swrk, _) = swrk::Swrk::spawn(&path, &[])?;
        let req = Req { r#type: ReqType::Version as i32, ..Default::default() };
        let resp = swrk.call(&req, &mut |_| Ok(())).map_err(|e| {
            e.context(format!(
                "{}: no answer to a version request: husk needs CRIU {} or newer",
                path.display(),
                show_version(MIN_VERSION)
            ))
        })?;
        let v = resp.version.ok_or_else(|| Error::msg("criu: the version response has no version"))?;
        let mut version = (v.major_number.max(0) as u32) * 10000
            + (v.minor_number.max(0) as u32) * 100
            + v.sublevel.unwrap_or(0).max(0) as u32;
        if v.gitid.as_deref().is_some_and(|g| !g.is_empty()) {
            // A git build is ahead of its last release (runc counts it as the next minor).
            version = version - version % 100 + 100;
        }
        let criu = Criu { path, version };
        criu.require(MIN_VERSION, "checkpoint and restore")?;
        Ok(criu)
    }

    pub fn require(&self, min: u32, what: &str) -> Result<()> {
        if self.version < min {
            return Err(Error::msg(format!(
                "CRIU {} ({}) is too old: {what} needs CRIU {} or newer",
                show_version(self.version),
                self.path.display(),
                show_version(min)
            )));
        }
        Ok(())
    }
}

/// The error for a CRIU that cannot be started, naming what to install.
pub fn spawn_error(path: &Path, e: std::io::Error) -> Error {
    let need = format!("checkpoint and restore need CRIU {} or newer", show_version(MIN_VERSION));
    if e.kind() == std::io::ErrorKind::NotFound {
        let hint = if path.components().count() == 1 { " in $PATH" } else { "" };
        return Error::msg(format!(
            "criu: {} not found{hint}: {need} (Debian and Ubuntu: apt-get install criu; or pass --criu PATH)",
            path.display()
        ))
        .with_errno(libc::ENOENT);
    }
    Error::from(e).context(format!("criu: run {} ({need})", path.display()))
}

/// A failed CRIU call, with the first error CRIU logged and where the whole log is.
pub fn with_log(err: Error, log: &Path) -> Error {
    let text = match first_log_error(log) {
        // CRIU's own error message is often that same line.
        Some(line) if err.message().contains(&line) => format!("{err} (full log: {})", log.display()),
        Some(line) => format!("{err}: {line} (full log: {})", log.display()),
        None => format!("{err} (see {})", log.display()),
    };
    match err.errno() {
        Some(errno) => Error::msg(text).with_errno(errno),
        None => Error::msg(text),
    }
}

/// CRIU's first `Error` line is the cause; the ones after it are the unwinding.
fn first_log_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().find(|l| l.contains("Error") || l.contains("error:"))?;
    Some(log_message(line))
}

/// "(00.012345) Error (criu/files-reg.c:1711): Can't lookup mount=..." → "Can't lookup mount=...".
pub(crate) fn log_message(line: &str) -> String {
    let line = line.trim();
    let line = line.trim_start_matches(|c: char| c == '(' || c == ')' || c == '.' || c.is_ascii_digit()).trim();
    let msg = match line.find("): ") {
        Some(i) if line.starts_with("Error (") => &line[i + 3..],
        _ => line,
    };
    msg.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_as_runc_picks_it() {
        assert_eq!(config_file(None).as_deref(), Some("/etc/criu/runc.conf"));
        assert_eq!(config_file(Some("")), None);
        assert_eq!(config_file(Some("/etc/criu/mine.conf")).as_deref(), Some("/etc/criu/mine.conf"));
    }

    #[test]
    fn versions_read_like_criu_prints_them() {
        assert_eq!(show_version(31701), "3.17.1");
        assert_eq!(show_version(31100), "3.11");
        assert_eq!(show_version(40000), "4.0");
    }

    #[test]
    fn first_error_of_the_log() {
        let dir = std::env::temp_dir().join(format!("husk-criu-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("dump.log");
        std::fs::write(
            &log,
            "(00.000100) Version: 3.17.1\n(00.002000) Error (criu/files-reg.c:1711): Can't lookup mount=29 for fd=1 path=/x\n(00.002100) Error (criu/cr-dump.c:1670): Dump files (pid: 7) failed with -1\n",
        )
        .unwrap();
        let e = with_log(Error::msg("criu dump failed"), &log);
        assert_eq!(
            e.to_string(),
            format!("criu dump failed: Can't lookup mount=29 for fd=1 path=/x (full log: {})", log.display())
        );
        let e = with_log(Error::msg("criu dump failed: Can't lookup mount=29 for fd=1 path=/x"), &log);
        assert_eq!(
            e.to_string(),
            format!("criu dump failed: Can't lookup mount=29 for fd=1 path=/x (full log: {})", log.display())
        );
        assert_eq!(log_message("Error (criu/mount-v2.c:891): mnt-v2: Failed\n"), "mnt-v2: Failed");
        let e = with_log(Error::msg("criu dump failed"), &dir.join("missing.log"));
        assert!(e.to_string().starts_with("criu dump failed (see "), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_criu_names_what_is_needed() {
        let e = spawn_error(Path::new("criu"), std::io::Error::from_raw_os_error(libc::ENOENT));
        let s = e.to_string();
        assert!(
            s.contains("criu not found in $PATH") && s.contains("3.11 or newer") && s.contains("apt-get install criu"),
            "{s}"
        );
        let e = spawn_error(Path::new("/opt/criu"), std::io::Error::from_raw_os_error(libc::ENOENT));
        assert!(e.to_string().starts_with("criu: /opt/criu not found: "), "{e}");
    }
}
