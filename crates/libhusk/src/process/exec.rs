//! Finding the program the way runc does (PATH from the container's env) and executing it
//! (through the trampoline that keeps the husk binary out of the container's reach).

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::process::trampoline::{self, Trampoline};

/// Resolve `args[0]` inside the container, before `create` returns, so a missing program fails
/// `create` with the wording callers map to exit 127.
pub fn lookup(name: &str, env: &[String]) -> Result<PathBuf> {
    if name.contains('/') {
        // Go's LookPath, as runc reports it: a failed stat names the stat, a file that is no
        // executable (or a directory) is only `permission denied`.
        return check_executable(Path::new(name)).map(|()| PathBuf::from(name)).map_err(|(stat, e)| {
            let text = crate::error::errno_text(e);
            let msg =
                if stat { format!("exec: {name:?}: stat {name}: {text}") } else { format!("exec: {name:?}: {text}") };
            Error::msg(msg).with_errno(e)
        });
    }
    let path_var = env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or("");
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(name);
        if check_executable(&candidate).is_ok() {
            return Ok(candidate);
        }
    }
    Err(Error::msg(format!("exec: {name:?}: executable file not found in $PATH")).with_errno(libc::ENOENT))
}

/// The environment as runc's init makes it (prepareEnv): one entry per name, the last one given
/// winning, in the place of that last one (so PATH for the program lookup is the last PATH);
/// HOME from the container's /etc/passwd for `uid` when none is given or the last is empty.
/// Entries were checked for the `NAME=VALUE` form with the config (`config::validate_env`).
pub fn prepare_env(env: Vec<String>, uid: u32) -> Vec<String> {
    let mut seen = std::collections::HashSet::with_capacity(env.len());
    let mut home = false;
    let mut out: Vec<String> = Vec::with_capacity(env.len() + 1);
    for kv in env.into_iter().rev() {
        let (key, value) = kv.split_once('=').unwrap_or((&kv, ""));
        if !seen.insert(key.to_string()) {
            continue;
        }
        if key == "HOME" {
            if value.is_empty() {
                continue;
            }
            home = true;
        }
        out.push(kv);
    }
    out.reverse();
    if !home {
        out.push(format!("HOME={}", crate::process::user::home_dir(uid)));
    }
    out
}

/// The errno, and whether it was the stat that failed (else: not an executable file).
fn check_executable(path: &Path) -> std::result::Result<(), (bool, i32)> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| (true, e.raw_os_error().unwrap_or(libc::ENOENT)))?;
    if meta.is_dir() || meta.permissions().mode() & 0o111 == 0 {
        return Err((false, libc::EACCES));
    }
    Ok(())
}

/// Everything execve needs, built before the wait for `start` so nothing allocates afterwards.
pub struct Program {
    path: CString,
    args: Vec<CString>,
    env: Vec<CString>,
}

fn cstring(field: &str, s: &[u8]) -> Result<CString> {
    CString::new(s).map_err(|_| Error::field(field, "contains a NUL byte"))
}

impl Program {
    pub fn new(path: &Path, args: &[String], env: &[String]) -> Result<Program> {
        Ok(Program {
            path: cstring("process.args[0]", path.as_os_str().as_bytes())?,
            args: args.iter().map(|a| cstring("process.args", a.as_bytes())).collect::<Result<_>>()?,
            env: env.iter().map(|e| cstring("process.env", e.as_bytes())).collect::<Result<_>>()?,
        })
    }

    pub fn path(&self) -> &std::ffi::CStr {
        &self.path
    }

    /// Replace this process; returns only on failure. With a trampoline (see trampoline.rs) the
    /// final execve is the trampoline's, and if that one fails it reports the errno on `report`
    /// (a socket the caller reads: `decode_report`). `report` is close-on-exec either way.
    pub fn exec(&self, trampoline: Option<&Trampoline>, report: BorrowedFd<'_>) -> Error {
        let envp: Vec<*const libc::c_char> =
            self.env.iter().map(|e| e.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
        if let Some(t) = trampoline {
            self.exec_via(t, report, &envp);
            // The kernel refused the trampoline itself (an LSM, a noexec policy): go direct.
        }
        let argv: Vec<*const libc::c_char> =
            self.args.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
        // SAFETY: argv and envp are NULL-terminated arrays of pointers into CStrings owned by self,
        // all alive for the call.
        unsafe { libc::execve(self.path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL);
        exec_error(&self.path, errno)
    }

    fn exec_via(&self, t: &Trampoline, report: BorrowedFd<'_>, envp: &[*const libc::c_char]) {
        let Ok(fd_arg) = CString::new(report.as_raw_fd().to_string()) else { return };
        // The trampoline marks it close-on-exec again before its own execve.
        if rustix::io::fcntl_setfd(report, rustix::io::FdFlags::empty()).is_err() {
            return;
        }
        let argv: Vec<*const libc::c_char> = [fd_arg.as_ptr(), self.path.as_ptr()]
            .into_iter()
            .chain(self.args.iter().map(|a| a.as_ptr()))
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        // SAFETY: execveat(fd, "", argv, envp, AT_EMPTY_PATH) reads NULL-terminated arrays of
        // pointers into CStrings that outlive the call; it returns only on failure.
        unsafe {
            libc::syscall(
                libc::SYS_execveat,
                t.fd().as_raw_fd(),
                c"".as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        };
        let _ = rustix::io::fcntl_setfd(report, rustix::io::FdFlags::CLOEXEC);
    }
}

/// The error for a failed execve of `path` in runc main's words (Go's PathError of its
/// `linux.Exec`): `exec /run.sh: no such file or directory` for a script whose interpreter is
/// missing, `exec /etc/passwd: permission denied`; callers match those. (A program that is not
/// there at all fails earlier, in `lookup`, as runc's LookPath: `exec: "/x": stat /x: ...`.)
pub fn exec_error(path: &std::ffi::CStr, errno: i32) -> Error {
    Error::os(format!("exec {}", path.to_string_lossy()), errno)
}

/// The trampoline's failure report (`[REPORT_TAG, errno le32]`), if `bytes` is one.
pub fn decode_report(bytes: &[u8]) -> Option<i32> {
    match bytes {
        [tag, a, b, c, d] if *tag == trampoline::REPORT_TAG => Some(i32::from_le_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// The exit status of a process whose execve failed with `errno`, as shells and runc use it.
pub fn exec_failure_status(errno: Option<i32>) -> i32 {
    if errno == Some(libc::ENOENT) {
        127
    } else {
        126
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn env_is_deduplicated_as_runc_does() {
        // The last of each name wins, in its place; a given HOME is kept.
        let out = prepare_env(env(&["PATH=/nope", "A=1", "HOME=/h", "PATH=/bin", "A=2"]), 0);
        assert_eq!(out, ["HOME=/h", "PATH=/bin", "A=2"]);
        // An empty last HOME counts as none (the host's passwd is what this test process reads).
        let out = prepare_env(env(&["HOME=/h", "X=1", "HOME="]), 4_000_000_000);
        assert_eq!(out, ["X=1", "HOME=/"]);
    }

    #[test]
    fn lookup_errors_in_go_lookpaths_words() {
        let e = lookup("/no/such/file", &[]).unwrap_err().to_string();
        assert_eq!(e, "exec: \"/no/such/file\": stat /no/such/file: no such file or directory");
        let e = lookup("/etc/passwd", &[]).unwrap_err().to_string();
        assert_eq!(e, "exec: \"/etc/passwd\": permission denied");
        let e = lookup("/etc", &[]).unwrap_err().to_string();
        assert_eq!(e, "exec: \"/etc\": permission denied");
        let e = lookup("nope-husk", &["PATH=/bin".into()]).unwrap_err().to_string();
        assert_eq!(e, "exec: \"nope-husk\": executable file not found in $PATH");
    }
}
