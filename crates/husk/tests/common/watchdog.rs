//! Hangs are bugs: every process a test starts — the runtime, a client script, any other
//! command — runs under a deadline. One watchdog thread per test binary ends whatever runs past
//! its deadline: SIGTERM to the process and every process below it (a script's EXIT trap cleans
//! up), then SIGKILL after a grace period; its owner then fails the test, naming the command and
//! the bound. Nothing is killed by name or by a number that could have been reused: the process
//! itself through a pidfd taken at spawn, those below it by pid and start time.
//!
//! Tests start processes only through [`spawn`] / [`spawn_for`] and what is built on them
//! (`run_cmd`, `Ctx::husk`, `Ctx::spawn`, [`status`], [`output`]); tests/suite.rs fails on any
//! `.spawn()`, `.status()` or `.output()` of a `Command` elsewhere in the tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The bound of a process the test waits for (`run_cmd`'s default).
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// The bound of a background process from its start (`Ctx::spawn`): it lives while the test
/// works beside it.
pub const BACKGROUND: Duration = Duration::from_secs(120);
/// Between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(3);

struct Entry {
    what: String,
    bound: Duration,
    deadline: Instant,
    grace: Duration,
    /// Closed once the owner reaped it: a test counting its own fds (soak.rs) sees none left.
    pidfd: Mutex<Option<OwnedFd>>,
    /// Whether it had a pidfd (without one, the kernel lacks pidfd_open: signalled by pid).
    by_pidfd: bool,
    pid: i32,
    phase: Mutex<Phase>,
}

#[derive(Clone)]
enum Phase {
    Running,
    /// SIGTERM sent at this time to these processes (pid, start time).
    Terminated(Instant, Vec<(i32, u64)>),
    /// SIGKILL sent; how many processes there were below it.
    Killed(usize),
    /// Reaped by its owner: nothing to watch.
    Done,
}

fn registry() -> &'static Mutex<Vec<Arc<Entry>>> {
    static R: OnceLock<Mutex<Vec<Arc<Entry>>>> = OnceLock::new();
    R.get_or_init(|| {
        std::thread::Builder::new().name("watchdog".into()).spawn(watch).expect("start the watchdog thread");
        Mutex::new(Vec::new())
    })
}

fn watch() {
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let entries: Vec<Arc<Entry>> = {
            let mut r = registry().lock().unwrap_or_else(|e| e.into_inner());
            r.retain(|e| !matches!(*e.phase.lock().unwrap_or_else(|p| p.into_inner()), Phase::Done));
            r.clone()
        };
        let now = Instant::now();
        for e in entries {
            let mut phase = e.phase.lock().unwrap_or_else(|p| p.into_inner());
            match phase.clone() {
                Phase::Running if now >= e.deadline => {
                    let tree = descendants(e.pid);
                    e.signal(libc::SIGTERM);
                    for &(pid, start) in &tree {
                        signal_if_same(pid, start, libc::SIGTERM);
                    }
                    *phase = Phase::Terminated(now, tree);
                }
                Phase::Terminated(at, mut tree) if now >= at + e.grace => {
                    // What was below it then, and what is below it now (forked meanwhile).
                    for d in descendants(e.pid) {
                        if !tree.contains(&d) {
                            tree.push(d);
                        }
                    }
                    e.signal(libc::SIGKILL);
                    for &(pid, start) in &tree {
                        signal_if_same(pid, start, libc::SIGKILL);
                    }
                    *phase = Phase::Killed(tree.len());
                }
                _ => {}
            }
        }
    }
}

impl Entry {
    fn signal(&self, sig: i32) {
        match &*self.pidfd.lock().unwrap_or_else(|p| p.into_inner()) {
            // SAFETY: pidfd_send_signal on a pidfd we own; no siginfo.
            Some(fd) => unsafe {
                libc::syscall(libc::SYS_pidfd_send_signal, fd.as_raw_fd(), sig, std::ptr::null::<u8>(), 0);
            },
            // Its pidfd closed: reaped by its owner, nothing to signal.
            None if self.by_pidfd => {}
            // No pidfd at all (a kernel without pidfd_open): the pid; its owner calls this only
            // before it reaps.
            None => unsafe {
                libc::kill(self.pid, sig);
            },
        }
    }

    fn hang(&self) -> Option<String> {
        let below = match &*self.phase.lock().unwrap_or_else(|p| p.into_inner()) {
            Phase::Running | Phase::Done => return None,
            Phase::Terminated(_, tree) => tree.len(),
            Phase::Killed(n) => *n,
        };
        Some(format!(
            "hang: {} ran longer than its bound of {:?}: the watchdog killed it and the {below} processes below it \
             (tests/common/watchdog.rs)",
            self.what, self.bound
        ))
    }
}

/// The start time of `pid` (field 22 of its stat), to tell it from a later process with its
/// number.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].split(' ').nth(19)?.parse().ok()
}

fn parent(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].split(' ').nth(1)?.parse().ok()
}

/// Every process below `root` now, with its start time.
pub fn descendants(root: i32) -> Vec<(i32, u64)> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
            if let Some(pp) = parent(pid) {
                children.entry(pp).or_default().push(pid);
            }
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
            if let Some(start) = start_time(c) {
                out.push((c, start));
                todo.push(c);
            }
        }
    }
    out
}

fn signal_if_same(pid: i32, start: u64, sig: i32) {
    if start_time(pid) == Some(start) {
        // SAFETY: kill(2) of a process we just saw below ours, with the same start time.
        unsafe { libc::kill(pid, sig) };
    }
}

/// A process started under a deadline. Dropped without being waited for, it is killed and
/// reaped (nothing a test starts outlives it).
pub struct Guarded {
    child: Child,
    entry: Arc<Entry>,
    reaped: Option<ExitStatus>,
}

/// [`spawn_for`] with the default bound ([`TIMEOUT`]).
#[track_caller]
pub fn spawn(cmd: &mut Command) -> Guarded {
    spawn_for(cmd, TIMEOUT)
}

/// Start `cmd`; past `bound` the watchdog ends it and what it started.
#[track_caller]
pub fn spawn_for(cmd: &mut Command, bound: Duration) -> Guarded {
    let grace = if bound > TIMEOUT { Duration::from_secs(30) } else { GRACE };
    // The real spawn: the one place in the tests that calls it.
    let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let pid = child.id() as i32;
    // SAFETY: pidfd_open returns a new fd (or -1) that we then own.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    let pidfd = (raw >= 0).then(|| unsafe { OwnedFd::from_raw_fd(raw) });
    let entry = Arc::new(Entry {
        what: format!("{cmd:?}"),
        bound,
        deadline: Instant::now() + bound,
        grace,
        by_pidfd: pidfd.is_some(),
        pidfd: Mutex::new(pidfd),
        pid,
        phase: Mutex::new(Phase::Running),
    });
    registry().lock().unwrap_or_else(|e| e.into_inner()).push(entry.clone());
    Guarded { child, entry, reaped: None }
}

impl Guarded {
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Why it was killed, if the watchdog killed it.
    pub fn hang(&self) -> Option<String> {
        self.entry.hang()
    }

    fn done(&mut self, st: ExitStatus) -> ExitStatus {
        *self.entry.phase.lock().unwrap_or_else(|p| p.into_inner()) = Phase::Done;
        self.entry.pidfd.lock().unwrap_or_else(|p| p.into_inner()).take();
        registry().lock().unwrap_or_else(|e| e.into_inner()).retain(|e| !Arc::ptr_eq(e, &self.entry));
        self.reaped = Some(st);
        st
    }

    /// Wait for it; Err with the hang's description if the watchdog had to end it.
    pub fn wait_or_hang(&mut self) -> Result<ExitStatus, String> {
        let st = match self.reaped {
            Some(st) => st,
            None => {
                let st = self.child.wait().unwrap_or_else(|e| panic!("wait for {}: {e}", self.entry.what));
                // The hang is read before the entry is marked done (which forgets it).
                let hang = self.entry.hang();
                self.done(st);
                if let Some(h) = hang {
                    return Err(h);
                }
                st
            }
        };
        Ok(st)
    }

    /// Wait for it; a hang fails the test.
    #[track_caller]
    pub fn wait(&mut self) -> ExitStatus {
        self.wait_or_hang().unwrap_or_else(|h| panic!("{h}"))
    }

    /// Its status if it has exited; a hang fails the test.
    #[track_caller]
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if let Some(st) = self.reaped {
            return Some(st);
        }
        let hang = self.entry.hang();
        let st = self.child.try_wait().unwrap_or_else(|e| panic!("wait for {}: {e}", self.entry.what))?;
        self.done(st);
        if let Some(h) = hang {
            panic!("{h}");
        }
        Some(st)
    }

    /// SIGKILL it (if it still runs).
    pub fn kill(&mut self) {
        if self.reaped.is_none() {
            self.entry.signal(libc::SIGKILL);
        }
    }

    pub fn stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.stdin.take()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if self.reaped.is_none() {
            self.kill();
            let hang = self.entry.hang();
            if let Ok(st) = self.child.wait() {
                self.done(st);
            }
            if let (Some(h), false) = (hang, std::thread::panicking()) {
                panic!("{h}");
            }
        }
    }
}

/// `cmd`'s exit status, bounded by [`TIMEOUT`] (stdio as the caller set it).
#[track_caller]
pub fn status(cmd: &mut Command) -> ExitStatus {
    spawn(cmd).wait()
}

/// `cmd`'s output, bounded by `bound`: stdout and stderr go to temp files, not pipes, so that
/// a process that outlives it holding them cannot block the reader.
#[track_caller]
pub fn output_for(cmd: &mut Command, bound: Duration) -> Output {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let base = std::env::temp_dir().join(format!("husk-tests-out-{}-{n}", std::process::id()));
    let (out, err) = (base.with_extension("out"), base.with_extension("err"));
    // As Command::output: no stdin.
    cmd.stdout(fs::File::create(&out).unwrap()).stderr(fs::File::create(&err).unwrap()).stdin(Stdio::null());
    let status = spawn_for(cmd, bound).wait();
    let o = Output { status, stdout: fs::read(&out).unwrap_or_default(), stderr: fs::read(&err).unwrap_or_default() };
    let _ = fs::remove_file(&out);
    let _ = fs::remove_file(&err);
    o
}

/// [`output_for`] with the default bound.
#[track_caller]
pub fn output(cmd: &mut Command) -> Output {
    output_for(cmd, TIMEOUT)
}
