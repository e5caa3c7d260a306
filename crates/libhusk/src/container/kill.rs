//! `kill`: signal the init (or, with --all, every process of the container) through pidfds, so a
//! recycled pid is never hit.

use std::os::fd::AsFd;
use std::path::Path;

use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};

use crate::error::{Error, Result};
use crate::state::{ProcessId, State, StateDir, Status};

/// `9`, `KILL`, `SIGKILL`, `sigkill` all name SIGKILL; `0` is `None`: no signal, only the check
/// that the init is there (`kill ID 0`, as kill(1) and runc take it).
pub fn parse_signal(text: &str) -> Result<Option<Signal>> {
    let bad = || Error::msg(format!("invalid signal: unknown signal {text:?}"));
    if let Ok(n) = text.parse::<i32>() {
        if n == 0 {
            return Ok(None);
        }
        return Signal::from_named_raw(n).or_else(|| realtime(n)).map(Some).ok_or_else(bad);
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    // RTMIN+n and RTMAX-n, as runc names them (systemd stops on SIGRTMIN+3).
    let rt = |base: i32, rest: &str, sign: i32| -> Result<Signal> {
        let off: i32 = if rest.is_empty() { 0 } else { rest.parse().map_err(|_| bad())? };
        realtime(base + sign * off).ok_or_else(bad)
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt(libc::SIGRTMIN(), rest.strip_prefix('+').unwrap_or(rest), 1).map(Some);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt(libc::SIGRTMAX(), rest.strip_prefix('-').unwrap_or(rest), -1).map(Some);
    }
    let sig = match name {
        "HUP" => Signal::HUP,
        "INT" => Signal::INT,
        "QUIT" => Signal::QUIT,
        "ILL" => Signal::ILL,
        "TRAP" => Signal::TRAP,
        "ABRT" | "IOT" => Signal::ABORT,
        "BUS" => Signal::BUS,
        "FPE" => Signal::FPE,
        "KILL" => Signal::KILL,
        "USR1" => Signal::USR1,
        "SEGV" => Signal::SEGV,
        "USR2" => Signal::USR2,
        "PIPE" => Signal::PIPE,
        "ALRM" => Signal::ALARM,
        "TERM" => Signal::TERM,
        "STKFLT" => Signal::STKFLT,
        "CHLD" => Signal::CHILD,
        "CONT" => Signal::CONT,
        "STOP" => Signal::STOP,
        "TSTP" => Signal::TSTP,
        "TTIN" => Signal::TTIN,
        "TTOU" => Signal::TTOU,
        "URG" => Signal::URG,
        "XCPU" => Signal::XCPU,
        "XFSZ" => Signal::XFSZ,
        "VTALRM" => Signal::VTALARM,
        "PROF" => Signal::PROF,
        "WINCH" => Signal::WINCH,
        "IO" | "POLL" => Signal::IO,
        "PWR" => Signal::POWER,
        "SYS" => Signal::SYS,
        _ => return Err(bad()),
    };
    Ok(Some(sig))
}

/// A realtime signal number (SIGRTMIN..=SIGRTMAX as the C library counts them).
fn realtime(n: i32) -> Option<Signal> {
    if !(libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&n) {
        return None;
    }
    // SAFETY: n is a valid, non-zero realtime signal number for this system.
    Some(unsafe { Signal::from_raw_unchecked(n) })
}

/// `signal` None: signal 0, which only checks that the init is alive (and is never sent to every
/// process: nothing is frozen for it).
pub fn kill(root: &Path, id: &str, signal: Option<Signal>, all: bool) -> Result<()> {
    let dir = StateDir::open(root, id)?;
    let all = all && signal.is_some();
    // --all freezes and thaws the cgroup: exclusive with pause/resume, and with a delete that
    // would remove the cgroup between our freeze and thaw. So may SIGKILL (below).
    if all || signal == Some(Signal::KILL) {
        dir.lock()?;
    }
    let state = dir.load()?;
    let running = matches!(state.status(&dir), Status::Created | Status::Running | Status::Paused);
    let number = signal.map_or(0, |s| s.as_raw());
    // SIGKILL of a container whose processes outlive its init (the host's pid namespace, or a
    // joined one) kills all of them, as runc does: else they live on after the container
    // reads `stopped`. Also once the init is gone: what is left is still the container's.
    let by_cgroup = all || (signal == Some(Signal::KILL) && outlive_init(&state, running));
    let Some(signal) = signal.filter(|_| by_cgroup) else {
        if !running {
            return Err(Error::msg("container not running"));
        }
        tracing::debug!("kill {id}: signal {number} to init {}", state.init.pid);
        return signal_pid(state.init.pid, Some(state.init), signal);
    };
    if !running && container_pids(&state)?.is_empty() {
        return if all { Ok(()) } else { Err(Error::msg("container not running")) };
    }
    tracing::debug!("kill {id}: signal {number} to every process of the container");
    kill_all(&state, signal)
}

/// Whether processes of the container can outlive its init: unless the init is PID 1 of a pid
/// namespace of its own (the kernel kills everything in a namespace whose PID 1 dies). Once the
/// init is gone, whatever is left lived on.
fn outlive_init(state: &State, running: bool) -> bool {
    !running || state.exec.as_ref().is_some_and(|e| e.namespaces & libc::CLONE_NEWPID as u64 == 0 || e.pid_ns_joined)
}

/// Signal every process of the cgroup. SIGKILL goes through cgroup v2's `cgroup.kill` where it
/// can (runc 1.2 alike). Otherwise the cgroup is frozen meanwhile, as runc does, so that nothing
/// forks past the list; thawed afterwards unless the container was paused and the signal can
/// wait (a frozen v1 task cannot even die of SIGKILL until thawed). A cgroup husk did not make
/// for the container is neither killed nor frozen whole: only the container's processes in it
/// are signalled (see [`container_pids`]).
pub(crate) fn kill_all(state: &State, signal: Signal) -> Result<()> {
    let cgroup = &state.cgroup;
    if signal == Signal::KILL && cgroup.kill() {
        // On a hybrid host a paused container is frozen by the v1 freezer.
        if cgroup.is_frozen() {
            cgroup.thaw()?;
        }
        return Ok(());
    }
    let owned = cgroup.owned();
    let was_paused = cgroup.is_frozen();
    let froze = owned && !was_paused && cgroup.freeze().is_ok();
    let pids = container_pids(state);
    for &pid in pids.as_deref().unwrap_or_default() {
        // A process that exits meanwhile is not an error.
        let _ = signal_pid(pid, None, Some(signal));
    }
    if froze || (was_paused && signal == Signal::KILL) {
        cgroup.thaw()?;
    }
    pids.map(|_| ())
}

/// Every process of the container: its cgroup's, or without one (rootless husk without cgroup
/// delegation) those in the init's pid namespace when it has its own, else the init alone. In a
/// cgroup husk did not make for this container (it existed before, and may be shared) only the
/// processes that are provably the container's: those in its own pid namespace, else the init.
pub(crate) fn container_pids(state: &State) -> Result<Vec<i32>> {
    if has_cgroup(state) {
        let pids = state.cgroup.pids()?;
        if state.cgroup.owned() {
            return Ok(pids);
        }
        let n = pids.len();
        let mine = in_init_pid_ns(state, pids);
        if mine.len() < n {
            tracing::warn!(
                "the container's cgroup was not made by husk for it: {} process(es) in it that are not provably the \
                 container's are left alone",
                n - mine.len()
            );
        }
        return Ok(mine);
    }
    // A dead init (a zombie still shows its pid namespace) leaves nothing: a pid namespace dies
    // with its init, and without one of its own the init was all there was.
    if !state.init.is_alive() {
        return Ok(Vec::new());
    }
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let init = state.init.pid.to_string();
    let Some(theirs) = ns(&init) else { return Ok(Vec::new()) };
    if ns("self").as_ref() == Some(&theirs) {
        return Ok(vec![state.init.pid]);
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").map_err(|e| Error::from(e).context("read /proc"))?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        if ns(&pid.to_string()).as_ref() == Some(&theirs) {
            out.push(pid);
        }
    }
    Ok(out)
}

/// Of `pids`, those in the init's pid namespace when it is not husk's own; else the init alone
/// (in the host's pid namespace nothing tells the container's processes from the host's).
fn in_init_pid_ns(state: &State, pids: Vec<i32>) -> Vec<i32> {
    if !state.init.is_alive() {
        return Vec::new();
    }
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let init = state.init.pid.to_string();
    let Some(theirs) = ns(&init) else { return Vec::new() };
    if ns("self").as_ref() == Some(&theirs) {
        return pids.into_iter().filter(|&p| p == state.init.pid).collect();
    }
    pids.into_iter().filter(|p| ns(&p.to_string()).as_ref() == Some(&theirs)).collect()
}

fn has_cgroup(state: &State) -> bool {
    !state.cgroup.placements.is_empty() || state.cgroup.systemd.is_some()
}

/// Signal `pid` via a pidfd (`None`: signal 0, a check); with `expect`, only if it is still that
/// same process.
pub(crate) fn signal_pid(pid: i32, expect: Option<ProcessId>, signal: Option<Signal>) -> Result<()> {
    let not_running = || Error::msg("container not running");
    let pid = Pid::from_raw(pid).ok_or_else(not_running)?;
    let fd = pidfd_open(pid, PidfdFlags::empty()).map_err(|_| not_running())?;
    // Checked after the pidfd is open: from now on the pid cannot be recycled under us.
    if expect.is_some_and(|p| !p.is_alive()) {
        return Err(not_running());
    }
    let sent = match signal {
        Some(signal) => pidfd_send_signal(&fd, signal),
        None => crate::syscalls::pidfd_check(fd.as_fd()),
    };
    sent.map_err(|e| match e {
        rustix::io::Errno::SRCH => not_running(),
        e => Error::from(e).context(format!("kill {}", pid.as_raw_nonzero())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_forms() {
        let sig = |s: &str| parse_signal(s).unwrap().unwrap();
        for s in ["9", "KILL", "SIGKILL", "sigkill", "kill"] {
            assert_eq!(sig(s), Signal::KILL, "{s}");
        }
        assert_eq!(sig("15"), Signal::TERM);
        assert!(parse_signal("NOPE").is_err());
        let rtmin = libc::SIGRTMIN();
        assert_eq!(sig("SIGRTMIN+3").as_raw(), rtmin + 3);
        assert_eq!(sig("RTMIN").as_raw(), rtmin);
        assert_eq!(sig("RTMAX-1").as_raw(), libc::SIGRTMAX() - 1);
        assert_eq!(sig(&(rtmin + 3).to_string()).as_raw(), rtmin + 3);
        assert!(parse_signal("RTMIN+99").is_err() && parse_signal("RTMIN+x").is_err());
        // 0 is no signal: the liveness check.
        assert_eq!(parse_signal("0").unwrap(), None);
        assert!(parse_signal("-1").is_err() && parse_signal("65").is_err());
    }
}
