//! OCI hooks: run a hook list with the container state on stdin.
//!
//! The caller may be the container's init, which must stay single-threaded: no helper threads, and
//! waiting is event-driven (a pidfd and the stdin pipe in one poll(2) with the hook's deadline).
//! Requirements on the caller: SIGPIPE ignored (Rust's default for binaries), so a hook that does
//! not read its stdin gives EPIPE instead of killing us; SIGCHLD not set to SIG_IGN, so the hook
//! stays reapable.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;
use rustix::event::{poll, Nsecs, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};

use crate::error::{Error, Result};

/// Run `hooks` in order; the first failure is an error in runc's words, `error running <kind>
/// hook #<i>:`, then the field, `hooks.<kind>[i]`, and what went wrong.
pub fn run(kind: &str, hooks: &[Hook], state_json: &[u8]) -> Result<()> {
    run_all(kind, hooks, state_json, None)
}

/// `startContainer` hooks: one without `env` (or with an empty one) gets the container
/// process's environment, as runc gives it (de facto, not in the spec: runc keeps it for the
/// hooks that rely on it).
pub fn run_with_default_env(kind: &str, hooks: &[Hook], state_json: &[u8], env: &[String]) -> Result<()> {
    run_all(kind, hooks, state_json, Some(env))
}

fn run_all(kind: &str, hooks: &[Hook], state_json: &[u8], default_env: Option<&[String]>) -> Result<()> {
    for (i, hook) in hooks.iter().enumerate() {
        tracing::debug!(kind, index = i, path = %hook.path().display(), "running hook");
        run_one(hook, state_json, default_env).map_err(|e| failed(kind, i, e))?;
    }
    Ok(())
}

fn failed(kind: &str, i: usize, e: Error) -> Error {
    e.context(format!("hooks.{kind}[{i}]")).context(format!("error running {kind} hook #{i}"))
}

/// For poststop, where the spec says a failure is logged and the remaining hooks still run.
pub fn run_warning(kind: &str, hooks: &[Hook], state_json: &[u8]) {
    for (i, hook) in hooks.iter().enumerate() {
        if let Err(e) = run_one(hook, state_json, None) {
            tracing::warn!("{}", failed(kind, i, e));
        }
    }
}

fn run_one(hook: &Hook, state: &[u8], default_env: Option<&[String]>) -> Result<()> {
    let path = hook.path();
    if !path.is_absolute() {
        return Err(Error::msg(format!("path {:?} is not absolute", path.display().to_string())));
    }
    let timeout = match hook.timeout() {
        Some(t) if t <= 0 => return Err(Error::msg(format!("timeout {t} must be greater than zero"))),
        Some(t) => Some(Duration::from_secs(t.unsigned_abs())),
        None => None,
    };
    let what = path.display();
    let mut child = spawn(hook, default_env).map_err(|e| e.context(&what))?;
    let stdin = child.stdin.take();
    let status = match pid_fd(&child) {
        Ok(Some(pidfd)) => wait_deadline(&mut child, &pidfd, stdin, state, timeout),
        Err(e) => Err(e),
        Ok(None) => {
            // pidfd_open needs Linux 5.3: without it we cannot wait with a deadline and no thread.
            if timeout.is_some() {
                tracing::warn!(path = %what, "no pidfd support: hook timeout not enforced");
            }
            feed_blocking(stdin, state).and_then(|()| child.wait().map_err(Error::from))
        }
    };
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            // Never leave a hook running behind a failure; the child is unreaped, so its pid is ours.
            let _ = child.kill();
            let _ = child.wait();
            return Err(e.context(&what));
        }
    };
    check_status(status).map_err(|e| e.context(&what))
}

fn spawn(hook: &Hook, default_env: Option<&[String]>) -> Result<Child> {
    let mut cmd = Command::new(hook.path());
    // args as given, args[0] as argv[0] (it may differ from path); without args, argv[0] is the
    // path (as in runc).
    if let Some([argv0, rest @ ..]) = hook.args().as_deref() {
        cmd.arg0(argv0).args(rest);
    }
    // The hook sees exactly its configured environment (or the one the caller gives hooks
    // without one), never ours. An entry without '=' cannot be expressed through Command and is
    // meaningless to getenv(3), so it is dropped.
    cmd.env_clear();
    let own = hook.env().as_deref().unwrap_or_default();
    let env = match default_env {
        Some(default) if own.is_empty() => default,
        _ => own,
    };
    for entry in env {
        if let Some((key, value)) = entry.split_once('=') {
            cmd.env(key, value);
        }
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::inherit()).stderr(Stdio::inherit());
    // SAFETY: the closure only makes one raw syscall (close_range), which is async-signal-safe and
    // allocates nothing; it runs in the forked child before execve.
    unsafe {
        cmd.pre_exec(|| {
            // Like runc, a hook gets stdio only: fds the init keeps for the container (sync socket,
            // --preserve-fds) must not leak into it. Old kernels lack CLOSE_RANGE_CLOEXEC; go on.
            let _ = crate::syscalls::cloexec_range(3, u32::MAX);
            Ok(())
        });
    }
    Ok(cmd.spawn()?)
}

/// A pidfd for the hook; None only where the kernel has no pidfd_open.
fn pid_fd(child: &Child) -> Result<Option<OwnedFd>> {
    let pid = i32::try_from(child.id()).ok().and_then(Pid::from_raw).ok_or_else(|| Error::msg("bad child pid"))?;
    match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOSYS) => Ok(None),
        Err(e) => Err(Error::from(e).context("pidfd_open")),
    }
}

/// Feed the state to the hook's stdin while waiting for it to exit, until `timeout` passes.
fn wait_deadline(
    child: &mut Child,
    pidfd: &OwnedFd,
    mut stdin: Option<ChildStdin>,
    state: &[u8],
    timeout: Option<Duration>,
) -> Result<ExitStatus> {
    let deadline = timeout.map(|t| Instant::now() + t);
    if let Some(w) = &stdin {
        // A hook that never reads must not block us on a full pipe past its deadline.
        rustix::io::ioctl_fionbio(w, true)?;
    }
    let mut rest = state;
    loop {
        if let Some(w) = &stdin {
            if !feed_some(w, &mut rest)? {
                stdin = None; // closing it gives the hook EOF
            }
        }
        let left = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(timespec(left)),
                _ => return Err(timed_out(pidfd, child, timeout)),
            },
            None => None,
        };
        let mut fds = vec![PollFd::new(pidfd, PollFlags::IN)];
        if let Some(w) = &stdin {
            fds.push(PollFd::new(w, PollFlags::OUT));
        }
        match poll(&mut fds, left.as_ref()) {
            Ok(_) if fds[0].revents().contains(PollFlags::IN) => break,
            Ok(_) | Err(Errno::INTR) => continue,
            Err(e) => return Err(Error::from(e).context("poll")),
        }
    }
    drop(stdin);
    Ok(child.wait()?)
}

/// Write what the pipe takes now; false once everything is written or the hook closed its stdin.
fn feed_some(w: &ChildStdin, rest: &mut &[u8]) -> Result<bool> {
    while !rest.is_empty() {
        match rustix::io::write(w, rest) {
            Ok(n) => *rest = &rest[n..],
            Err(Errno::AGAIN) => return Ok(true),
            Err(Errno::INTR) => continue,
            // The hook exited or closed stdin without reading it all: runc ignores that too.
            Err(Errno::PIPE) => return Ok(false),
            Err(e) => return Err(Error::from(e).context("write state to stdin")),
        }
    }
    Ok(false)
}

fn feed_blocking(stdin: Option<ChildStdin>, state: &[u8]) -> Result<()> {
    let Some(mut w) = stdin else { return Ok(()) };
    match w.write_all(state) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::from(e).context("write state to stdin")),
        _ => Ok(()),
    }
}

fn timed_out(pidfd: &OwnedFd, child: &mut Child, timeout: Option<Duration>) -> Error {
    // The pidfd names exactly our hook, even if it has already exited.
    let _ = pidfd_send_signal(pidfd.as_fd(), Signal::KILL);
    let _ = child.wait();
    Error::msg(format!("timed out after {}s", timeout.unwrap_or_default().as_secs()))
}

fn timespec(d: Duration) -> Timespec {
    Timespec { tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX), tv_nsec: d.subsec_nanos() as Nsecs }
}

fn check_status(status: ExitStatus) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    match (status.code(), status.signal()) {
        (Some(code), _) => Err(Error::msg(format!("exit status {code}"))),
        (None, Some(sig)) => Err(Error::msg(format!("killed by signal {sig}"))),
        (None, None) => Err(Error::msg(format!("{status}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn hook(path: &str, args: &[&str], env: Option<&[&str]>, timeout: Option<i64>) -> Hook {
        let mut h = Hook::default();
        h.set_path(PathBuf::from(path));
        h.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
        h.set_env(env.map(|e| e.iter().map(|s| s.to_string()).collect()));
        h.set_timeout(timeout);
        h
    }

    fn sh(script: &str) -> Hook {
        hook("/bin/sh", &["sh", "-c", script], None, None)
    }

    fn scratch(name: &str) -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("husk-hooks-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    fn err(kind: &str, hooks: &[Hook]) -> String {
        match run(kind, hooks, b"{}") {
            Ok(()) => panic!("hooks {kind} succeeded"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn success_and_empty_list() {
        run("prestart", &[], b"{}").unwrap();
        run("prestart", &[sh("exit 0"), sh("true")], b"{}").unwrap();
    }

    #[test]
    fn exit_status_names_the_index() {
        let e = err("poststart", &[sh("exit 0"), sh("exit 3")]);
        assert_eq!(e, "error running poststart hook #1: hooks.poststart[1]: /bin/sh: exit status 3");
    }

    #[test]
    fn failure_stops_the_list() {
        let marker = scratch("marker");
        let second = sh(&format!("touch {}", marker.display()));
        err("createRuntime", &[sh("exit 1"), second]);
        assert!(!marker.exists());
    }

    #[test]
    fn signal_death() {
        let e = err("prestart", &[sh("kill -9 $$")]);
        assert_eq!(e, "error running prestart hook #0: hooks.prestart[0]: /bin/sh: killed by signal 9");
    }

    #[test]
    fn timeout_kills_the_hook() {
        let started = Instant::now();
        let e = err("createContainer", &[hook("/bin/sh", &["sh", "-c", "exec sleep 5"], None, Some(1))]);
        assert_eq!(e, "error running createContainer hook #0: hooks.createContainer[0]: /bin/sh: timed out after 1s");
        assert!(started.elapsed() < Duration::from_secs(5), "hook was not killed");
    }

    #[test]
    fn timeout_not_reached() {
        run("prestart", &[hook("/bin/sh", &["sh", "-c", "exit 0"], None, Some(30))], b"{}").unwrap();
    }

    #[test]
    fn bad_timeout_and_relative_path() {
        let e = err("prestart", &[hook("/bin/true", &["true"], None, Some(0))]);
        assert_eq!(e, "error running prestart hook #0: hooks.prestart[0]: timeout 0 must be greater than zero");
        let e = err("poststop", &[hook("bin/true", &["true"], None, None)]);
        assert_eq!(e, "error running poststop hook #0: hooks.poststop[0]: path \"bin/true\" is not absolute");
    }

    #[test]
    fn missing_binary() {
        let e = err("startContainer", &[hook("/nonexistent/hook", &["hook"], None, None)]);
        assert_eq!(
            e,
            "error running startContainer hook #0: hooks.startContainer[0]: /nonexistent/hook: no such file or directory"
        );
    }

    #[test]
    fn state_on_stdin() {
        let out = scratch("stdin");
        let state = br#"{"ociVersion":"1.3.0","id":"c1","status":"creating","pid":1,"bundle":"/b"}"#;
        let h = sh(&format!("cat > {}", out.display()));
        run("prestart", std::slice::from_ref(&h), state).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), state);
        // The same through the timed path.
        let mut timed = h;
        timed.set_timeout(Some(10));
        run("prestart", &[timed], state).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), state);
    }

    #[test]
    fn large_state_unread_is_fine() {
        let state = vec![b' '; 4 << 20];
        run("poststop", &[sh("exit 0")], &state).unwrap();
        run("poststop", &[hook("/bin/sh", &["sh", "-c", "exit 0"], None, Some(10))], &state).unwrap();
    }

    #[test]
    fn env_exactly_as_given() {
        let out = scratch("env");
        // /proc/$$/environ is the block execve gave the shell, before the shell adds PWD.
        let script = format!("tr '\\0' '\\n' < /proc/$$/environ > {}", out.display());
        let env: &[&str] = &["A=1", "B=two words", "C=x=y"];
        run("prestart", &[hook("/bin/sh", &["sh", "-c", &script], Some(env), None)], b"{}").unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "A=1\nB=two words\nC=x=y\n");
        run("prestart", &[hook("/bin/sh", &["sh", "-c", &script], None, None)], b"{}").unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "");
        // startContainer: the given environment when there is none (or an empty one), else its own.
        let process_env = ["PATH=/bin".to_string(), "FROM=process".to_string()];
        for none in [None, Some(&[][..])] {
            let h = hook("/bin/sh", &["sh", "-c", &script], none, None);
            run_with_default_env("startContainer", &[h], b"{}", &process_env).unwrap();
            assert_eq!(std::fs::read_to_string(&out).unwrap(), "FROM=process\nPATH=/bin\n");
        }
        let h = hook("/bin/sh", &["sh", "-c", &script], Some(&["OWN=1"]), None);
        run_with_default_env("startContainer", &[h], b"{}", &process_env).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "OWN=1\n");
    }

    #[test]
    fn argv0_may_differ_from_path() {
        let out = scratch("argv0");
        let script = format!("echo \"$0\" > {}", out.display());
        run("prestart", &[hook("/bin/sh", &["custom-name", "-c", &script], None, None)], b"{}").unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "custom-name\n");
    }

    #[test]
    fn only_stdio_is_inherited() {
        let out = scratch("fds");
        let leak = std::fs::File::open("/dev/null").unwrap();
        // std opens fds close-on-exec; clear that to stand in for a --preserve-fds fd.
        rustix::io::fcntl_setfd(&leak, rustix::io::FdFlags::empty()).unwrap();
        run("prestart", &[sh(&format!("ls /proc/$$/fd > {}", out.display()))], b"{}").unwrap();
        let fds = std::fs::read_to_string(&out).unwrap();
        let fds: Vec<&str> = fds.lines().filter(|l| l.parse::<u32>().is_ok_and(|n| n > 2)).collect();
        // The shell's own redirection may hold one extra fd for the output file, never ours.
        let leaked = leak.as_fd();
        let leaked = std::os::fd::AsRawFd::as_raw_fd(&leaked).to_string();
        assert!(!fds.contains(&leaked.as_str()), "fd {leaked} leaked into the hook: {fds:?}");
    }
}
