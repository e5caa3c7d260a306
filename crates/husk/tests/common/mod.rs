//! Shared helpers for husk's integration tests.
//!
//! Every test makes a [`Ctx`]: its own temp dir (under `/tmp/husk-tests/`), its own `--root`, its own
//! bundle (a copy of a busybox bundle built once by `scripts/mkbundle.sh`), unique container ids, and
//! a `Drop` that `delete --force`s the containers it made and removes the temp dir.
//!
//! The runtime under test is `$HUSK_BIN` (default: the husk binary cargo built), so the same suite
//! runs against runc: `HUSK_BIN=/usr/sbin/runc cargo test --release -p husk`.
//!
//! Runtime invocations never use pipes for stdio: a created container keeps its caller's stdio (see
//! host.md), so stdout/stderr go to files in the test dir, which the test reads after the call (and
//! again later for the container's own output).
#![allow(dead_code)]

pub mod audit;
pub mod criu;
pub mod watchdog;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[allow(unused_imports)]
pub use watchdog::{output, output_for, spawn, spawn_for, status, Guarded, BACKGROUND, TIMEOUT};

pub mod rootless;

/// The runtime binary under test.
pub fn bin() -> PathBuf {
    match std::env::var_os("HUSK_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_husk")),
    }
}

/// The first line of `--version`.
pub fn version_line() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        let o = output(Command::new(bin()).arg("--version"));
        String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").to_string()
    })
}

/// Is the runtime under test husk (and not runc or another peer)? Assertions about husk's own
/// wording (JSON paths in config errors) are made only then.
pub fn is_husk() -> bool {
    version_line().starts_with("husk")
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The base bundle, built once per test process by scripts/mkbundle.sh under target/tmp, with the
/// config from `$HUSK_BIN spec` (runc's as the fallback while that does not work). Fresh per
/// process, so a config from an older binary is never reused; dirs of dead processes are swept.
pub fn base_bundle() -> &'static Path {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| {
        let top = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        if let Ok(rd) = fs::read_dir(&top) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("base-bundle.").and_then(|p| p.parse::<u32>().ok()) {
                    if !Path::new(&format!("/proc/{pid}")).exists() {
                        let _ = fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let dir = top.join(format!("base-bundle.{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let st = status(
            Command::new(repo_root().join("scripts/mkbundle.sh")).arg(&dir).env("HUSK_BIN", bin()).stdin(Stdio::null()),
        );
        assert!(st.success(), "scripts/mkbundle.sh failed");
        dir
    })
}

/// The result of one runtime (or other) invocation.
#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
}

impl Out {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Assert exit 0; return self for chaining.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(self.success(), "expected success, got {self}");
        self.no_panic()
    }

    /// Assert a non-zero exit (not a signal, not a panic).
    #[track_caller]
    pub fn fails(self) -> Self {
        assert!(matches!(self.code, Some(c) if c != 0), "expected failure, got {self}");
        self.no_panic()
    }

    #[track_caller]
    pub fn no_panic(self) -> Self {
        assert!(!self.stderr.contains("panicked"), "runtime panicked: {self}");
        assert!(!self.stderr.contains("RUST_BACKTRACE"), "runtime panicked: {self}");
        self
    }

    /// Assert a failure whose stderr mentions `what` (case-insensitive).
    #[track_caller]
    pub fn fails_with(self, what: &str) -> Self {
        let o = self.fails();
        assert!(o.stderr.to_lowercase().contains(&what.to_lowercase()), "expected stderr to contain {what:?}, got {o}");
        o
    }

    /// The stdout file read again now (a created container writes there after `start`).
    pub fn stdout_now(&self) -> String {
        fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// The lines of stderr that are not blank.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| !l.trim().is_empty()).collect()
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?} signal {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.signal, self.stdout, self.stderr
        )
    }
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn seq() -> usize {
    SEQ.fetch_add(1, Ordering::SeqCst)
}

/// Run `cmd` with stdout/stderr redirected to fresh files in `dir`, stdin from /dev/null unless the
/// caller set it; past `timeout` the watchdog ends it (and what it started) and the test fails
/// with what it printed.
#[track_caller]
pub fn run_cmd(mut cmd: Command, dir: &Path, timeout: Duration) -> Out {
    use std::os::unix::process::ExitStatusExt;
    let n = seq();
    let stdout_path = dir.join(format!("out.{n}"));
    let stderr_path = dir.join(format!("err.{n}"));
    let so = fs::File::create(&stdout_path).unwrap();
    let se = fs::File::create(&stderr_path).unwrap();
    cmd.stdout(so).stderr(se);
    let status = spawn_for(&mut cmd, timeout)
        .wait_or_hang()
        .unwrap_or_else(|hang| panic!("{hang}\nstdout: {}\nstderr: {}", tail_of(&stdout_path), tail_of(&stderr_path)));
    Out {
        code: status.code(),
        signal: status.signal(),
        stdout: fs::read_to_string(&stdout_path).unwrap_or_default(),
        stderr: fs::read_to_string(&stderr_path).unwrap_or_default(),
        stdout_path,
        stderr_path,
    }
}

/// The last 2000 characters of a file (what a hung command printed last).
pub fn tail_of(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    match text.char_indices().rev().nth(1999) {
        Some((i, _)) => format!("...{}", &text[i..]),
        None => text,
    }
}

/// A runtime process started in the background (`Ctx::spawn`), its output going to files; past
/// [`BACKGROUND`] from its start the watchdog ends it.
pub struct Spawned {
    pub child: Guarded,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
}

impl Spawned {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// Wait until its stdout contains `what` (or panic after 20 s).
    #[track_caller]
    pub fn wait_stdout(&self, what: &str) {
        let ok = wait_for(20, || self.stdout().contains(what));
        assert!(ok, "no {what:?} on stdout: {:?}, stderr: {:?}", self.stdout(), fs::read_to_string(&self.stderr_path));
    }

    pub fn signal(&self, sig: i32) {
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0, "kill {}", self.pid());
    }

    /// Wait for it to exit (its bound: [`BACKGROUND`] from its start) and collect what it printed.
    #[track_caller]
    pub fn wait(mut self) -> Out {
        use std::os::unix::process::ExitStatusExt;
        let status = self.child.wait_or_hang().unwrap_or_else(|hang| {
            panic!("{hang}\nstdout: {}\nstderr: {}", tail_of(&self.stdout_path), tail_of(&self.stderr_path))
        });
        Out {
            code: status.code(),
            signal: status.signal(),
            stdout: self.stdout(),
            stderr: fs::read_to_string(&self.stderr_path).unwrap_or_default(),
            stdout_path: self.stdout_path,
            stderr_path: self.stderr_path,
        }
    }
}

/// Accept one connection on `listener` and receive one fd by SCM_RIGHTS (a console socket or
/// pidfd socket receiver, as containerd and runc's recvtty are).
pub fn recv_fd(listener: std::os::unix::net::UnixListener) -> std::io::Result<std::os::fd::OwnedFd> {
    let (stream, _) = listener.accept()?;
    recv_with_fd(&stream).map(|(_, fd)| fd)
}

/// Receive one message with one fd (SCM_RIGHTS) on a connected stream: its bytes and the fd.
pub fn recv_with_fd(stream: &std::os::unix::net::UnixStream) -> std::io::Result<(Vec<u8>, std::os::fd::OwnedFd)> {
    use std::os::fd::{AsRawFd, FromRawFd, RawFd};
    let mut buf = vec![0u8; 64 * 1024];
    let mut cmsg = [0u8; 64];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: a zeroed msghdr is valid; every pointer set below outlives the recvmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = cmsg.len();
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    // SAFETY: walking the control buffer the kernel just filled, with libc's macros.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const RawFd);
                return Ok((buf, std::os::fd::OwnedFd::from_raw_fd(fd)));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Err(std::io::Error::other("no SCM_RIGHTS in the message"))
}

/// Read what is available on a non-blocking fd until `done` says so (or 20 s pass).
pub fn read_until(fd: std::os::fd::BorrowedFd<'_>, done: impl Fn(&str) -> bool) -> String {
    use std::os::fd::AsRawFd;
    let raw = fd.as_raw_fd();
    unsafe { libc::fcntl(raw, libc::F_SETFL, libc::fcntl(raw, libc::F_GETFL) | libc::O_NONBLOCK) };
    let mut got = Vec::new();
    wait_for(20, || {
        let mut b = [0u8; 4096];
        loop {
            let n = unsafe { libc::read(raw, b.as_mut_ptr().cast(), b.len()) };
            if n <= 0 {
                break;
            }
            got.extend_from_slice(&b[..n as usize]);
        }
        done(&String::from_utf8_lossy(&got))
    });
    String::from_utf8_lossy(&got).replace('\r', "")
}

/// One test's world: temp dir, state root, bundle, config, container ids.
pub struct Ctx {
    pub name: String,
    pub dir: PathBuf,
    pub root: PathBuf,
    pub bundle: PathBuf,
    pub config: Value,
    ids: Mutex<Vec<String>>,
    netns: Mutex<Vec<String>>,
    /// Runtime calls run as this user ([`Ctx::rootless`]); root when None.
    pub user: Option<rootless::User>,
    /// Extra environment of runtime calls.
    pub env: Vec<(String, String)>,
    /// A command runtime calls run under (`systemd-run --user --scope --`): empty for none.
    pub wrap: Vec<String>,
    /// Global flags of every runtime call, after `--root` (`--systemd-cgroup`).
    pub global: Vec<String>,
}

pub const CGROUP_PARENT: &str = "husk-tests";
pub const V1_CONTROLLERS: &[&str] = &["memory", "pids", "cpu", "cpuacct", "cpuset", "devices", "freezer", "blkio"];

impl Ctx {
    /// A fresh test context. The config is the default spec with `terminal: false` and args
    /// `["true"]`; edit `ctx.config` and it is written before each create/run.
    pub fn new(name: &str) -> Ctx {
        let base = base_bundle();
        let top = Path::new("/tmp/husk-tests");
        fs::create_dir_all(top).unwrap();
        let dir = top.join(format!("{name}-{}-{}", std::process::id(), seq()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let root = dir.join("root");
        let bundle = dir.join("bundle");
        fs::create_dir_all(&bundle).unwrap();
        let st = status(Command::new("cp").arg("-a").arg(base.join("rootfs")).arg(bundle.join("rootfs")));
        assert!(st.success(), "copy rootfs");
        let mut config: Value = serde_json::from_slice(&fs::read(base.join("config.json")).unwrap()).unwrap();
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(["true"]);
        Ctx {
            name: name.to_string(),
            dir,
            root,
            bundle,
            config,
            ids: Mutex::new(vec![]),
            netns: Mutex::new(vec![]),
            user: None,
            env: vec![],
            wrap: vec![],
            global: vec![],
        }
    }

    pub fn rootfs(&self) -> PathBuf {
        self.bundle.join("rootfs")
    }

    /// A new unique container id, remembered for cleanup.
    pub fn id(&self) -> String {
        let id = format!("{}-{}-{}", self.name, std::process::id(), seq());
        self.ids.lock().unwrap().push(id.clone());
        id
    }

    /// Set the process to `sh -c script`.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.config["process"]["args"] = json!(["sh", "-c", script]);
        self
    }

    /// Write the config, with `linux.cgroupsPath` set to `/husk-tests/<id>` unless the test set one.
    pub fn write_config(&self, id: &str) {
        let mut c = self.config.clone();
        if c["linux"].get("cgroupsPath").is_none() {
            c["linux"]["cgroupsPath"] = json!(format!("/{CGROUP_PARENT}/{id}"));
        }
        fs::write(self.bundle.join("config.json"), serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    }

    /// The cgroup dirs a container with `id` would get from `write_config`: one on a pure v2 host;
    /// otherwise one per v1 controller, plus the name=systemd and unified (cgroup2) hierarchies of
    /// a hybrid host.
    pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
        let top = Path::new("/sys/fs/cgroup");
        if Feature::Cgroup2.present() {
            return vec![top.join(CGROUP_PARENT).join(id)];
        }
        let extra = ["systemd", "unified"].into_iter().filter(|h| top.join(h).join("cgroup.procs").exists());
        V1_CONTROLLERS.iter().copied().chain(extra).map(|c| top.join(c).join(CGROUP_PARENT).join(id)).collect()
    }

    /// A runtime command with this test's `--root`.
    pub fn cmd(&self) -> Command {
        let mut c = match self.wrap.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        c.arg("--root").arg(&self.root).args(&self.global).stdin(Stdio::null()).current_dir(&self.dir);
        if let Some(u) = &self.user {
            rootless::as_user(&mut c, u, &self.dir);
        }
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Run the runtime with `args` (after `--root`).
    pub fn husk(&self, args: &[&str]) -> Out {
        let mut c = self.cmd();
        c.args(args);
        run_cmd(c, &self.dir, TIMEOUT)
    }

    /// Start the runtime with `args` in the background, output to files in the test dir.
    pub fn spawn(&self, args: &[&str]) -> Spawned {
        let mut c = self.cmd();
        c.args(args);
        self.spawn_cmd(c)
    }

    pub fn spawn_cmd(&self, mut c: Command) -> Spawned {
        let n = seq();
        let stdout_path = self.dir.join(format!("out.{n}"));
        let stderr_path = self.dir.join(format!("err.{n}"));
        c.stdout(fs::File::create(&stdout_path).unwrap()).stderr(fs::File::create(&stderr_path).unwrap());
        let child = spawn_for(&mut c, BACKGROUND);
        Spawned { child, stdout_path, stderr_path }
    }

    /// `run -d` of `sh -c script`: its id and init pid.
    pub fn running(&mut self, script: &str) -> (String, u32) {
        self.sh(script);
        let id = self.id();
        self.run_with(&id, &["-d"]).ok();
        let pid = self.state(&id)["pid"].as_u64().unwrap() as u32;
        (id, pid)
    }

    /// Run any command with output to files in the test dir.
    pub fn exec(&self, cmd: Command) -> Out {
        run_cmd(cmd, &self.dir, TIMEOUT)
    }

    /// `create --bundle B ID` (config written first); container stdio goes to the Out's files.
    pub fn create(&self, id: &str) -> Out {
        self.create_with(id, &[])
    }

    pub fn create_with(&self, id: &str, extra: &[&str]) -> Out {
        self.write_config(id);
        let b = self.bundle.to_str().unwrap().to_string();
        let mut args = vec!["create", "--bundle", &b];
        args.extend_from_slice(extra);
        args.push(id);
        self.husk(&args)
    }

    /// `run --bundle B ID` in the foreground: returns when the container exits.
    pub fn run(&self, id: &str) -> Out {
        self.run_with(id, &[])
    }

    pub fn run_with(&self, id: &str, extra: &[&str]) -> Out {
        self.write_config(id);
        let b = self.bundle.to_str().unwrap().to_string();
        let mut args = vec!["run", "--bundle", &b];
        args.extend_from_slice(extra);
        args.push(id);
        self.husk(&args)
    }

    /// Run `script` in a fresh container and return its stdout, asserting success.
    #[track_caller]
    pub fn run_sh(&mut self, script: &str) -> String {
        self.sh(script);
        let id = self.id();
        let o = self.run(&id);
        assert!(o.success(), "run {script:?}: {o}");
        o.stdout
    }

    /// `state ID` parsed; panics if it fails.
    #[track_caller]
    pub fn state(&self, id: &str) -> Value {
        let o = self.husk(&["state", id]).ok();
        serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("state is not JSON ({e}): {o}"))
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap_or("").to_string()
    }

    /// Wait until `state ID` reports `want` (or panic after 10 s).
    #[track_caller]
    pub fn wait_status(&self, id: &str, want: &str) {
        let start = Instant::now();
        loop {
            let s = self.status(id);
            if s == want {
                return;
            }
            if start.elapsed() > Duration::from_secs(10) {
                panic!("container {id} is {s:?}, not {want:?}, after 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Create a named network namespace, removed on drop.
    pub fn netns(&self) -> String {
        let name = format!("husktest-{}-{}", std::process::id(), seq());
        let st = status(Command::new("ip").args(["netns", "add", &name]));
        assert!(st.success(), "ip netns add {name}");
        self.netns.lock().unwrap().push(name.clone());
        name
    }

    /// Everything that must be true after a failed `create` of `id`: no state dir under --root, no
    /// process left over, no cgroup dir, no host mount mentioning the test dir.
    #[track_caller]
    pub fn assert_nothing_left(&self, id: &str, mounts_before: &str) {
        assert!(!self.root.join(id).exists(), "state dir {} left behind", self.root.join(id).display());
        let st = self.husk(&["state", id]);
        assert!(!st.success(), "state {id} still works after a failed create: {st}");
        // Leftover processes: give a slow reaper a moment.
        let start = Instant::now();
        loop {
            let procs = procs_of(id, &self.dir);
            if procs.is_empty() {
                break;
            }
            if start.elapsed() > Duration::from_secs(3) {
                panic!("processes left behind by {id}: {procs:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for d in Ctx::cgroup_dirs(id) {
            assert!(!d.exists(), "cgroup dir {} left behind", d.display());
        }
        let after = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let key = self.dir.to_str().unwrap();
        let before: Vec<&str> = mounts_before.lines().filter(|l| l.contains(key)).collect();
        let new: Vec<&str> = after.lines().filter(|l| l.contains(key) && !before.contains(l)).collect();
        assert!(new.is_empty(), "host mounts left behind: {new:?}");
    }
}

impl Ctx {
    /// What the leak audit looks at for this test: its ids so far, its dir, its `--root`, its
    /// netns (see `audit.rs`). Make the ids before taking the first snapshot.
    pub fn audit_scope(&self) -> audit::Scope {
        audit::Scope {
            ids: self.ids.lock().unwrap().iter().cloned().collect(),
            dir: self.dir.clone(),
            roots: vec![self.root.clone()],
            netns: self.netns.lock().unwrap().clone(),
        }
    }

    /// A leak-audit snapshot of this test's world.
    pub fn audit(&self) -> audit::Snapshot {
        audit::Snapshot::take(&self.audit_scope())
    }

    /// Fail if anything this test's containers could have left is there now and was not in
    /// `before` (dying processes get 5 s).
    #[track_caller]
    pub fn assert_no_leaks(&self, before: &audit::Snapshot) {
        let leaks = audit::wait_clean(&self.audit_scope(), before, Duration::from_secs(5));
        assert!(leaks.is_empty(), "left behind:\n  {}", leaks.join("\n  "));
    }
}

/// Live processes whose command line mentions `id` or whose cwd or root is inside `dir`.
pub fn procs_of(id: &str, dir: &Path) -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut v = vec![];
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == me {
            continue;
        }
        let p = e.path();
        let stat = fs::read_to_string(p.join("stat")).unwrap_or_default();
        if let Some(i) = stat.rfind(')') {
            if stat[i + 1..].trim_start().starts_with('Z') {
                continue;
            }
        }
        let cmdline = fs::read(p.join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let inside = |l: &str| fs::read_link(p.join(l)).map(|t| t.starts_with(dir)).unwrap_or(false);
        if cmdline.contains(id) || inside("cwd") || inside("root") {
            v.push((pid, cmdline));
        }
    }
    v
}

impl Drop for Ctx {
    fn drop(&mut self) {
        for id in self.ids.lock().unwrap().iter() {
            if self.root.join(id).exists() {
                let mut c = self.cmd();
                c.args(["delete", "--force", id]);
                let _ = run_cmd(c, &self.dir, Duration::from_secs(20));
            }
            for d in Ctx::cgroup_dirs(id) {
                let _ = fs::remove_dir(d);
            }
        }
        for n in self.netns.lock().unwrap().iter() {
            status(Command::new("ip").args(["netns", "delete", n]));
        }
        if std::env::var_os("HUSK_TEST_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Write an executable script file.
pub fn write_script(path: &Path, body: &str) {
    let mut f = fs::File::create(path).unwrap();
    f.write_all(body.as_bytes()).unwrap();
    drop(f);
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// `readlink /proc/self/ns/<ns>` of the test process.
pub fn host_ns(ns: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{ns}")).unwrap().to_string_lossy().into_owned()
}

/// The default config's capability set as /proc/<pid>/status would print it.
pub fn caps_mask(names: &[&str]) -> u64 {
    const CAPS: &[&str] = &[
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETPCAP",
        "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_IPC_LOCK",
        "CAP_IPC_OWNER",
        "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO",
        "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT",
        "CAP_SYS_ADMIN",
        "CAP_SYS_BOOT",
        "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG",
        "CAP_MKNOD",
        "CAP_LEASE",
        "CAP_AUDIT_WRITE",
        "CAP_AUDIT_CONTROL",
        "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN",
        "CAP_SYSLOG",
        "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND",
        "CAP_AUDIT_READ",
        "CAP_PERFMON",
        "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    ];
    names.iter().fold(0, |m, n| m | 1u64 << CAPS.iter().position(|c| c == n).unwrap_or_else(|| panic!("cap {n}")))
}

/// Parse `key:\tvalue` lines (as in /proc/self/status) into a lookup.
pub fn status_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')).map(|v| v.trim()))
}

/// Copy the rootfs and chown it to `uid:gid` (for user-namespace tests).
pub fn chown_rootfs(ctx: &Ctx, uid: u32, gid: u32) {
    let st = status(Command::new("chown").arg("-R").arg("-h").arg(format!("{uid}:{gid}")).arg(ctx.rootfs()));
    assert!(st.success());
}

/// The pid in a `--pid-file`.
pub fn read_pid_file(p: &Path) -> u32 {
    fs::read_to_string(p).unwrap().trim().parse().unwrap()
}

/// Is `pid` alive (and not a zombie)?
pub fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s.rfind(')').map(|i| !s[i + 1..].trim_start().starts_with('Z')).unwrap_or(false),
        Err(_) => false,
    }
}

/// Wait up to `secs` for `f` to become true.
pub fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// Host features some tests need. Tests that need one are named with its prefix (`cgroup2_`,
/// `systemd_`, `apparmor_`, `criu_`, `selinux_`) so the guest run (pure cgroup v2, systemd,
/// AppArmor, CRIU) can select them by name, and call [`require`] first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// A pure cgroup v2 host (cgroup2 mounted at /sys/fs/cgroup).
    Cgroup2,
    /// systemd is PID 1 with D-Bus (`--systemd-cgroup`).
    Systemd,
    AppArmor,
    SELinux,
    /// `criu check` passes.
    Criu,
}

impl Feature {
    pub fn name(self) -> &'static str {
        match self {
            Feature::Cgroup2 => "cgroup2",
            Feature::Systemd => "systemd",
            Feature::AppArmor => "apparmor",
            Feature::SELinux => "selinux",
            Feature::Criu => "criu",
        }
    }

    pub fn present(self) -> bool {
        match self {
            Feature::Cgroup2 => Path::new("/sys/fs/cgroup/cgroup.controllers").exists(),
            Feature::Systemd => Path::new("/run/systemd/system").is_dir(),
            Feature::AppArmor => {
                fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.trim() == "Y")
            }
            Feature::SELinux => Path::new("/sys/fs/selinux/enforce").exists(),
            Feature::Criu => {
                which("criu")
                    && status(
                        Command::new("criu")
                            .arg("check")
                            .stdin(Stdio::null())
                            .stdout(Stdio::null())
                            .stderr(Stdio::null()),
                    )
                    .success()
            }
        }
    }
}

/// Whether the test may go on: true when the host has `f`. When it lacks it the test is skipped
/// (returns false after printing which test and why, uncaptured) — unless `HUSK_REQUIRE` (a
/// comma-separated list of feature names, set by the guest run) names it: a required feature
/// that is missing fails the test, so a guest run can never pass by skipping.
#[track_caller]
pub fn require(f: Feature) -> bool {
    if f.present() {
        return true;
    }
    let required = std::env::var("HUSK_REQUIRE").unwrap_or_default();
    if required.split(',').any(|r| r.trim() == f.name()) {
        panic!("HUSK_REQUIRE names {} but this host lacks it", f.name());
    }
    // Straight to stderr in one write, past libtest's capture (which holds a passing test's
    // eprintln!), so a run shows what it skipped.
    let test = std::thread::current().name().unwrap_or("").to_string();
    let line = format!("skipped {test} at {}: this host lacks {}\n", std::panic::Location::caller(), f.name());
    let _ = std::io::stderr().write_all(line.as_bytes());
    false
}

/// Whether `program` is in $PATH (a test that needs it skips or fails by this, not by a spawn
/// error).
pub fn which(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(d.join(program)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// Add a new namespace of type `ty` to `config` unless it has one (the default spec's set depends
/// on the host: a pure cgroup v2 host gets a cgroup namespace).
pub fn add_namespace(config: &mut Value, ty: &str) {
    let ns = config["linux"]["namespaces"].as_array_mut().expect("linux.namespaces");
    if !ns.iter().any(|n| n["type"] == ty) {
        ns.push(json!({ "type": ty }));
    }
}

/// Copy the dynamic loader and libraries `binary` needs (per ldd) to the same paths in `rootfs`.
pub fn copy_shared_libraries(binary: &std::path::Path, rootfs: &std::path::Path) {
    let out = output(std::process::Command::new("ldd").arg(binary));
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        let Some(path) = path.filter(|p| p.starts_with('/')) else { continue };
        let dest = rootfs.join(&path[1..]);
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::copy(path, &dest).unwrap();
    }
}

/// CVE-2019-5736 as exploited, run in a container: hold every /proc/<pid>/exe that is not the
/// container's busybox, wait for its process to go, then try to reopen it for writing; what it
/// could reopen is listed in /dev/shm/opened (nothing is ever written to it).
pub const REOPEN_EXE_ATTACK: &str = r#"while :; do for p in /proc/[0-9]*; do
             t=$(readlink $p/exe 2>/dev/null) || continue
             case "$t" in /bin/busybox) continue;; esac
             exec 3<$p/exe 2>/dev/null || continue
             while [ -e $p/exe ]; do :; done
             n=0
             while [ $n -lt 3000 ]; do
               if true 2>/dev/null >>/proc/self/fd/3; then echo "$t" >>/dev/shm/opened; break; fi
               n=$((n+1))
             done
             exec 3<&-
           done; done"#;
