//! Finding the program the way runc does (PATH from the container's env) and executing it.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Resolve `args[0]` inside the container, before `create` returns, so a missing program fails
/// `create` with the wording callers map to exit 127.
pub fn lookup(name: &str, env: &[String]) -> Result<PathBuf> {
    if name.contains('/') {
        return check_executable(Path::new(name)).map(|()| PathBuf::from(name)).map_err(|e| {
            Error::msg(format!("exec: {name:?}: stat {name}: {}", crate::error::errno_text(e))).with_errno(e)
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

fn check_executable(path: &Path) -> std::result::Result<(), i32> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| e.raw_os_error().unwrap_or(libc::ENOENT))?;
    if meta.is_dir() {
        return Err(libc::EISDIR);
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(libc::EACCES);
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

    /// Replace this process; returns only on failure.
    pub fn exec(&self) -> Error {
        let argv: Vec<*const libc::c_char> =
            self.args.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
        let envp: Vec<*const libc::c_char> =
            self.env.iter().map(|e| e.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
        // SAFETY: argv and envp are NULL-terminated arrays of pointers into CStrings owned by self,
        // all alive for the call.
        unsafe { libc::execve(self.path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL);
        Error::os(format!("exec {:?}", self.path), errno)
    }
}
