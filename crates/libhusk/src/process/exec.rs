//! Finding the program the way runc does (PATH from the container's env) and executing it
//! (through the trampoline that keeps the husk binary out of the container's reach).

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::process::trampoline::{self, Trampoline};
use crate::seccomp::Prepared;

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
/// Entries were checked for the `NAME=VALUE` form with the config (`config::check_env`).
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

    /// Run the program; returns only on failure. With a trampoline (see trampoline.rs) the
    /// final execve is the trampoline's, and if that one fails it reports the errno on `report`
    /// (a socket the caller reads: `decode_report`). `report` is close-on-exec either way.
    ///
    /// `Start::Replace`: this process becomes the program. `Start::Fork`: a child that is our
    /// parent's (CLONE_PARENT) becomes it, born in the pid namespace we joined for our children;
    /// we report its pid on `report` (`Msg::Pid`) and exit. Forked by the trampoline, the child
    /// never runs the husk binary (see trampoline.rs).
    ///
    /// `filter`: the seccomp filter still to load, right before the execve (by the trampoline,
    /// else here).
    pub fn exec(
        &self,
        trampoline: Option<&Trampoline>,
        report: BorrowedFd<'_>,
        start: Start,
        filter: Option<&Prepared>,
    ) -> Error {
        let envp: Vec<*const libc::c_char> =
            self.env.iter().map(|e| e.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
        if let Some(t) = trampoline {
            let handoff = match filter.map(Prepared::handoff).transpose() {
                Ok(h) => h,
                Err(e) => return e,
            };
            let flags = match start {
                Start::Replace => "",
                Start::Fork { terminal: false } => "f",
                Start::Fork { terminal: true } => "t",
            };
            self.exec_via(t, report, &envp, flags, None, handoff.as_ref());
            // The kernel refused the trampoline itself (an LSM, a noexec policy): go direct.
        }
        if let Some(f) = filter {
            if let Err(e) = f.load() {
                return e;
            }
        }
        if let Start::Fork { terminal } = start {
            return self.fork_direct(report, &envp, terminal);
        }
        self.execve(&envp)
    }

    fn execve(&self, envp: &[*const libc::c_char]) -> Error {
        let argv: Vec<*const libc::c_char> =
            self.args.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
        // SAFETY: argv and envp are NULL-terminated arrays of pointers into CStrings owned by self,
        // all alive for the call.
        unsafe { libc::execve(self.path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL);
        exec_error(&self.path, errno)
    }

    /// `Start::Fork` without a trampoline (another architecture, or the memfd refused): the same
    /// protocol from husk's code, unprotected: the child runs the husk binary until its execve.
    fn fork_direct(&self, report: BorrowedFd<'_>, envp: &[*const libc::c_char], terminal: bool) -> Error {
        let pid = match crate::syscalls::clone_sibling() {
            Ok(pid) => pid,
            Err(e) => {
                send_report(report, trampoline::CLONE_FAILED_TAG, e.raw_os_error());
                crate::process::setup::exit(126)
            }
        };
        if pid > 0 {
            send_report(report, trampoline::PID_TAG, pid);
            crate::process::setup::exit(0)
        }
        if terminal {
            if let Err(e) = rustix::process::setsid().and_then(|_| rustix::process::ioctl_tiocsctty(stdin())) {
                send_report(report, trampoline::REPORT_TAG, e.raw_os_error());
                crate::process::setup::exit(126)
            }
        }
        let err = self.execve(envp);
        let errno = err.errno().unwrap_or(libc::EINVAL);
        send_report(report, trampoline::REPORT_TAG, errno);
        crate::process::setup::exit(exec_failure_status(Some(errno)))
    }

    /// The init of a created container: the trampoline reports Ready on `sync`, waits there for
    /// Created and on `listener` for `start`, then execs the program (see trampoline.rs, `w`).
    /// Returns only if the kernel refused the trampoline: the caller then waits itself.
    pub fn exec_waiting(
        &self,
        t: &Trampoline,
        sync: BorrowedFd<'_>,
        listener: BorrowedFd<'_>,
        filter: Option<&Prepared>,
    ) -> Result<()> {
        let envp: Vec<*const libc::c_char> =
            self.env.iter().map(|e| e.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
        let handoff = filter.map(Prepared::handoff).transpose()?;
        self.exec_via(t, sync, &envp, "w", Some(listener), handoff.as_ref());
        Ok(())
    }

    fn exec_via(
        &self,
        t: &Trampoline,
        report: BorrowedFd<'_>,
        envp: &[*const libc::c_char],
        flags: &str,
        listener: Option<BorrowedFd<'_>>,
        filter: Option<&(OwnedFd, u32)>,
    ) {
        let mut first = format!("{flags}{}{}", if filter.is_some() { "s" } else { "" }, report.as_raw_fd());
        if let Some(l) = listener {
            first.push_str(&format!(",{}", l.as_raw_fd()));
        }
        if let Some((fd, bits)) = filter {
            first.push_str(&format!(",{},{bits}", fd.as_raw_fd()));
        }
        let Ok(fd_arg) = CString::new(first) else { return };
        // The trampoline marks `report` close-on-exec again before its own execve, and closes the
        // listener once `start` came and the filter's fd once read.
        let fds = [Some(report), listener, filter.map(|(fd, _)| fd.as_fd())];
        let set = |cloexec: bool| {
            let flags = if cloexec { rustix::io::FdFlags::CLOEXEC } else { rustix::io::FdFlags::empty() };
            fds.iter().flatten().all(|fd| rustix::io::fcntl_setfd(fd, flags).is_ok())
        };
        if !set(false) {
            set(true);
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
        set(true);
    }
}

/// How the prepared process starts its program (see `Program::exec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Replace,
    /// `terminal`: the child takes fd 0 (a pty slave) as its controlling terminal first.
    Fork {
        terminal: bool,
    },
}

fn stdin() -> BorrowedFd<'static> {
    // SAFETY: fd 0 is stdio, open for the life of the process and owned by no Rust object here.
    unsafe { BorrowedFd::borrow_raw(0) }
}

/// `[tag, value as i32 little-endian]` on the report socket, as the trampoline sends it.
fn send_report(report: BorrowedFd<'_>, tag: u8, value: i32) {
    let v = value.to_le_bytes();
    let _ = rustix::net::send(report, &[tag, v[0], v[1], v[2], v[3]], rustix::net::SendFlags::NOSIGNAL);
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
