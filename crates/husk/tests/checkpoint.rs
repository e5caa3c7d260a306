//! `checkpoint` and `restore` with CRIU. Tests named `criu_*` need a CRIU that passes `criu check`
//! (the guest run); the others are the error paths, which hold on any host, this one included
//! (CRIU 3.17 fails here on the vDSO, or is missing).
mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Counts up, one number a line, ten a second.
const COUNTER: &str = "i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done";
/// CRIU under TCG is slow: every runtime call that drives it gets this long.
const CRIU_TIMEOUT: Duration = Duration::from_secs(240);

/// The read end of a pipe whose write end a container holds, read line by line with a deadline.
struct Pipe {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl Pipe {
    /// A new pipe: (reader, write end for the runtime's stdout/stderr).
    fn new() -> (Pipe, OwnedFd) {
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        rustix::fs::fcntl_setfl(&r, rustix::fs::OFlags::NONBLOCK).unwrap();
        (Pipe { fd: r, buf: Vec::new() }, w)
    }

    /// Read what is there within `wait`; false at end of file.
    fn fill(&mut self, wait: Duration) -> bool {
        let mut pfd = [rustix::event::PollFd::new(&self.fd, rustix::event::PollFlags::IN)];
        let ts = rustix::event::Timespec { tv_sec: wait.as_secs() as i64, tv_nsec: wait.subsec_nanos() as i64 };
        let _ = rustix::event::poll(&mut pfd, Some(&ts));
        let mut chunk = [0u8; 4096];
        loop {
            match rustix::io::read(&self.fd, &mut chunk) {
                Ok(0) => return false,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => return true,
            }
        }
    }

    /// The numbers read so far (terminal `\r` dropped, partial last line kept back).
    fn numbers(&self) -> Vec<u64> {
        let text = String::from_utf8_lossy(&self.buf);
        let complete = text.rfind('\n').map_or("", |i| &text[..i]);
        complete.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }

    /// Wait until at least `n` numbers came, or panic.
    #[track_caller]
    fn wait_numbers(&mut self, n: usize, secs: u64) -> Vec<u64> {
        let start = Instant::now();
        while self.numbers().len() < n {
            if start.elapsed() > Duration::from_secs(secs)
                || !self.fill(Duration::from_millis(200)) && self.numbers().len() < n
            {
                panic!("wanted {n} numbers, got {:?} ({:?})", self.numbers(), String::from_utf8_lossy(&self.buf));
            }
        }
        self.numbers()
    }

    /// Everything until the writers are gone (bounded).
    fn drain(&mut self, secs: u64) -> Vec<u64> {
        let start = Instant::now();
        while self.fill(Duration::from_millis(200)) && start.elapsed() < Duration::from_secs(secs) {}
        self.numbers()
    }
}

/// `husk --root ROOT ARGS`, stdin /dev/null; with `out`, stdout and stderr go there (what the
/// container inherits must be no file of the host's: CRIU could not dump it) and the runtime's
/// errors come from its `--log`.
fn husk_with(root: &Path, args: &[&str], out: Option<&OwnedFd>, ctx: &Ctx) -> Out {
    let mut c = Command::new(bin());
    c.arg("--root").arg(root).stdin(Stdio::null()).current_dir(&ctx.dir);
    match out {
        Some(fd) => {
            let n = seq_name(ctx);
            let log = ctx.dir.join(format!("log.{n}"));
            c.arg("--log").arg(&log).args(args);
            c.stdout(Stdio::from(fd.try_clone().unwrap())).stderr(Stdio::from(fd.try_clone().unwrap()));
            let mut child = c.spawn().unwrap();
            let status = wait_child(&mut child, CRIU_TIMEOUT, &c);
            let stderr = fs::read_to_string(&log).unwrap_or_default();
            use std::os::unix::process::ExitStatusExt;
            Out {
                code: status.code(),
                signal: status.signal(),
                stdout: String::new(),
                stderr,
                stdout_path: PathBuf::new(),
                stderr_path: log,
            }
        }
        None => {
            c.args(args);
            run_cmd(c, &ctx.dir, CRIU_TIMEOUT)
        }
    }
}

fn seq_name(_ctx: &Ctx) -> usize {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

fn wait_child(child: &mut std::process::Child, timeout: Duration, cmd: &Command) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("timeout after {timeout:?}: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A counting container started with `run -d`, its stdout and stderr a pipe we read.
fn start_counter(ctx: &mut Ctx, script: &str) -> (String, Pipe) {
    ctx.sh(script);
    ctx.config["root"]["readonly"] = json!(false);
    let id = ctx.id();
    ctx.write_config(&id);
    let (pipe, w) = Pipe::new();
    let b = ctx.bundle.to_str().unwrap().to_string();
    husk_with(&ctx.root, &["run", "-d", "--bundle", &b, &id], Some(&w), ctx).ok();
    (id, pipe)
}

fn criu(ctx: &Ctx, root: &Path, args: &[&str]) -> Out {
    husk_with(root, args, None, ctx)
}

/// `restore -d` from `images` under `root`, its stdout a new pipe.
fn restore(ctx: &Ctx, root: &Path, id: &str, images: &Path, extra: &[&str]) -> (Out, Pipe) {
    restore_from(ctx, &ctx.bundle, root, id, images, extra)
}

fn restore_from(ctx: &Ctx, bundle: &Path, root: &Path, id: &str, images: &Path, extra: &[&str]) -> (Out, Pipe) {
    let (pipe, w) = Pipe::new();
    let b = bundle.to_str().unwrap().to_string();
    let img = images.to_str().unwrap().to_string();
    let mut args = vec!["restore", "-d", "--bundle", &b, "--image-path", &img];
    args.extend_from_slice(extra);
    args.push(id);
    let o = husk_with(root, &args, Some(&w), ctx);
    (o, pipe)
}

/// After a restore, the numbers go on from `last` (the last one seen before the checkpoint):
/// the first is close to it (a line or two may come again from the saved pipe) and none is a
/// fresh start, and they stay consecutive.
#[track_caller]
fn assert_continues(after: &[u64], last: u64) {
    let first = *after.first().expect("no numbers after restore");
    assert!(
        first > 1 && first + 5 >= last && first <= last + 5,
        "restored counter starts at {first}, it was at {last}: {after:?}"
    );
    assert!(after.windows(2).all(|w| w[1] == w[0] + 1), "restored counter skips: {after:?}");
}

/// A root other than the Ctx's (a stand-in for another host); its containers are force-deleted
/// on drop.
struct OtherRoot<'a> {
    ctx: &'a Ctx,
    root: PathBuf,
    ids: Vec<String>,
}

impl Drop for OtherRoot<'_> {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = criu(self.ctx, &self.root, &["delete", "--force", id]);
        }
    }
}

fn images(ctx: &Ctx, name: &str) -> PathBuf {
    ctx.dir.join(name)
}

#[test]
fn criu_counter_continues_after_restore() {
    if !require(Feature::Criu) {
        return;
    }
    let mut ctx = Ctx::new("criu-count");
    let (id, mut out) = start_counter(&mut ctx, COUNTER);
    let before = out.wait_numbers(10, 60);
    let img = images(&ctx, "img");
    criu(&ctx, &ctx.root, &["checkpoint", "--image-path", img.to_str().unwrap(), &id]).ok();
    // Checkpointed and gone, like runc: no state left, the old pipe at end of file.
    ctx.husk(&["state", &id]).fails_with("does not exist");
    let last = *out.drain(20).last().unwrap();
    assert!(last >= *before.last().unwrap());
    assert!(img.join("inventory.img").exists() && img.join("descriptors.json").exists());

    let (o, mut after) = restore(&ctx, &ctx.root, &id, &img, &[]);
    o.ok();
    // The rootfs bind CRIU restored from is gone again.
    assert!(!ctx.root.join(&id).join("criu-root").exists());
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("criu-root"), "{mounts}");
    let st = ctx.state(&id);
    assert_eq!(st["status"], "running", "{st}");
    let pid = st["pid"].as_u64().unwrap() as u32;
    assert!(alive(pid));
    let list = ctx.husk(&["list", "-q"]).ok();
    assert!(list.stdout.lines().any(|l| l == id), "{}", list.stdout);
    assert_continues(&after.wait_numbers(10, 60), last);
    // The restored init is in the container's cgroup, as create puts it.
    let procs: Vec<String> =
        Ctx::cgroup_dirs(&id).iter().filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok()).collect();
    assert!(procs.iter().any(|p| p.lines().any(|l| l == pid.to_string())), "pid {pid} not in {procs:?}");

    ctx.husk(&["kill", &id, "KILL"]).ok();
    ctx.wait_status(&id, "stopped");
    ctx.husk(&["delete", &id]).ok();
    for d in Ctx::cgroup_dirs(&id) {
        assert!(!d.exists(), "{} left", d.display());
    }
}

#[test]
fn criu_leave_running_keeps_it_running() {
    if !require(Feature::Criu) {
        return;
    }
    let mut ctx = Ctx::new("criu-leave");
    let (id, mut out) = start_counter(&mut ctx, COUNTER);
    let before = *out.wait_numbers(10, 60).last().unwrap();
    let img = images(&ctx, "img");
    criu(&ctx, &ctx.root, &["checkpoint", "--leave-running", "--image-path", img.to_str().unwrap(), &id]).ok();
    assert_eq!(ctx.status(&id), "running");
    // The dump was taken between `before` and what the counter printed by the time it returned.
    out.fill(Duration::ZERO);
    let n = out.numbers().len();
    let by_return = out.numbers()[n - 1];
    let later = out.wait_numbers(n + 20, 60);
    assert!(later.windows(2).all(|w| w[1] == w[0] + 1), "the original skipped: {later:?}");

    // The snapshot, restored in place of the original: it goes on from the checkpoint, not from
    // where the original got to.
    ctx.husk(&["delete", "--force", &id]).ok();
    let (o, mut after) = restore(&ctx, &ctx.root, &id, &img, &[]);
    o.ok();
    let after = after.wait_numbers(5, 60);
    assert!(after.windows(2).all(|w| w[1] == w[0] + 1), "restored counter skips: {after:?}");
    assert!(
        after[0] + 2 >= before && after[0] <= by_return + 2,
        "restored counter starts at {}, the dump was taken between {before} and {by_return}",
        after[0]
    );
    assert!(
        after[0] + 10 < *later.last().unwrap(),
        "restored from the checkpoint: {after:?}, original reached {later:?}"
    );
}

#[test]
fn criu_pre_dump_then_final_dump() {
    if !require(Feature::Criu) {
        return;
    }
    let mut ctx = Ctx::new("criu-predump");
    let (id, mut out) = start_counter(&mut ctx, COUNTER);
    out.wait_numbers(5, 60);
    let pre = images(&ctx, "pre");
    let fin = images(&ctx, "final");
    criu(&ctx, &ctx.root, &["checkpoint", "--pre-dump", "--image-path", pre.to_str().unwrap(), &id]).ok();
    assert_eq!(ctx.status(&id), "running", "a pre-dump leaves the container running");
    let n = out.numbers().len();
    out.wait_numbers(n + 5, 60);
    criu(&ctx, &ctx.root, &["checkpoint", "--image-path", fin.to_str().unwrap(), "--parent-path", "../pre", &id]).ok();
    ctx.husk(&["state", &id]).fails_with("does not exist");
    assert!(fin.join("parent").is_symlink(), "the final dump refers to the pre-dump");
    let last = *out.drain(20).last().unwrap();
    let (o, mut after) = restore(&ctx, &ctx.root, &id, &fin, &[]);
    o.ok();
    assert_continues(&after.wait_numbers(5, 60), last);
}

#[test]
fn criu_restore_under_another_root() {
    if !require(Feature::Criu) {
        return;
    }
    let mut ctx = Ctx::new("criu-move");
    let (id, mut out) = start_counter(&mut ctx, COUNTER);
    out.wait_numbers(10, 60);
    let img = images(&ctx, "img");
    let work = ctx.dir.join("work");
    criu(
        &ctx,
        &ctx.root,
        &["checkpoint", "--image-path", img.to_str().unwrap(), "--work-path", work.to_str().unwrap(), &id],
    )
    .ok();
    assert!(work.join("dump.log").exists(), "--work-path holds CRIU's log");
    let last = *out.drain(20).last().unwrap();

    let mut other = OtherRoot { ctx: &ctx, root: ctx.dir.join("other-host"), ids: vec![id.clone()] };
    let (o, mut after) = restore(&ctx, &other.root, &id, &img, &[]);
    o.ok();
    assert_continues(&after.wait_numbers(10, 60), last);
    ctx.husk(&["state", &id]).fails_with("does not exist");
    let st = criu(&ctx, &other.root, &["state", &id]).ok();
    assert!(st.stdout.contains("\"running\""), "{st}");
    criu(&ctx, &other.root, &["kill", &id, "KILL"]).ok();
    assert!(wait_for(20, || criu(&ctx, &other.root, &["state", &id]).stdout.contains("\"stopped\"")));
    criu(&ctx, &other.root, &["delete", &id]).ok();
    other.ids.clear();
}

#[test]
fn criu_bind_mount_comes_back_from_the_new_source() {
    if !require(Feature::Criu) {
        return;
    }
    let mut ctx = Ctx::new("criu-bind");
    let data = ctx.dir.join("data");
    fs::create_dir_all(&data).unwrap();
    let mount = |src: &Path| json!({"destination": "/data", "type": "bind", "source": src, "options": ["rbind", "rw"]});
    ctx.config["mounts"].as_array_mut().unwrap().push(mount(&data));
    let (id, mut out) =
        start_counter(&mut ctx, "i=0; while :; do i=$((i+1)); echo $i; echo $i > /data/count; sleep 0.1; done");
    out.wait_numbers(10, 60);
    let img = images(&ctx, "img");
    criu(&ctx, &ctx.root, &["checkpoint", "--image-path", img.to_str().unwrap(), &id]).ok();
    let last = *out.drain(20).last().unwrap();

    // Another host's copy of the bundle: the rootfs lacks the mount point, the data is elsewhere.
    let bundle2 = ctx.dir.join("bundle2");
    let st = Command::new("cp").arg("-a").arg(&ctx.bundle).arg(&bundle2).status().unwrap();
    assert!(st.success());
    fs::remove_dir(bundle2.join("rootfs/data")).unwrap();
    let data2 = ctx.dir.join("data2");
    fs::create_dir_all(&data2).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_slice(&fs::read(bundle2.join("config.json")).unwrap()).unwrap();
    let mounts = config["mounts"].as_array_mut().unwrap();
    let i = mounts.iter().position(|m| m["destination"] == "/data").unwrap();
    mounts[i] = mount(&data2);
    fs::write(bundle2.join("config.json"), serde_json::to_vec(&config).unwrap()).unwrap();

    let (o, mut after) = restore_from(&ctx, &bundle2, &ctx.root, &id, &img, &[]);
    o.ok();
    assert_continues(&after.wait_numbers(5, 60), last);
    let count = || fs::read_to_string(data2.join("count")).ok().and_then(|c| c.trim().parse::<u64>().ok());
    assert!(wait_for(30, || count().is_some_and(|c| c > last)), "nothing written to the new source: {:?}", count());
    assert!(bundle2.join("rootfs/data").is_dir(), "the mount point was made");
    assert_eq!(ctx.state(&id)["bundle"], bundle2.to_str().unwrap());
}

#[test]
fn criu_joined_network_namespace_stays_the_same() {
    if !require(Feature::Criu) {
        return;
    }
    let mut ctx = Ctx::new("criu-netns");
    let ns = ctx.netns();
    let ns_path = format!("/run/netns/{ns}");
    for n in ctx.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if n["type"] == "network" {
            n["path"] = json!(ns_path);
        }
    }
    let (id, mut out) = start_counter(&mut ctx, COUNTER);
    out.wait_numbers(10, 60);
    let img = images(&ctx, "img");
    criu(&ctx, &ctx.root, &["checkpoint", "--image-path", img.to_str().unwrap(), &id]).ok();
    let last = *out.drain(20).last().unwrap();
    let (o, mut after) = restore(&ctx, &ctx.root, &id, &img, &[]);
    o.ok();
    assert_continues(&after.wait_numbers(5, 60), last);
    let pid = ctx.state(&id)["pid"].as_u64().unwrap();
    use std::os::unix::fs::MetadataExt;
    let want = fs::metadata(&ns_path).unwrap().ino();
    let got = fs::metadata(format!("/proc/{pid}/ns/net")).unwrap().ino();
    assert_eq!(got, want, "the restored container is back in the joined network namespace");
}

#[test]
fn criu_tcp_connection_kept() {
    if !require(Feature::Criu) {
        return;
    }
    let mut ctx = Ctx::new("criu-tcp");
    // A server and a client in the container's network namespace, one connection between them:
    // the client sends a count, the server writes what it receives to a file in the rootfs.
    // busybox nc ends at end of file on its stdin: the server's is a pipe that stays open.
    let script = "sleep 100000 | nc -l -p 5000 > /tmp/received & sleep 1; \
                  (i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done) | nc 127.0.0.1 5000 & wait";
    let (id, _out) = start_counter(&mut ctx, script);
    let received = ctx.rootfs().join("tmp/received");
    let count = || -> Vec<u64> {
        fs::read_to_string(&received).unwrap_or_default().lines().filter_map(|l| l.parse().ok()).collect()
    };
    assert!(wait_for(60, || count().len() >= 10), "nothing received: {:?}", count());
    let img = images(&ctx, "img");
    let imgs = img.to_str().unwrap();
    // Without --tcp-established CRIU refuses, and the container goes on.
    let o = criu(&ctx, &ctx.root, &["checkpoint", "--image-path", imgs, &id]).fails();
    assert!(o.stderr.to_lowercase().contains("tcp") || o.stderr.contains("criu"), "{o}");
    assert_eq!(ctx.status(&id), "running", "a failed checkpoint leaves the container running");
    let n = count().len();
    assert!(wait_for(60, || count().len() > n + 5), "the connection stalled after a failed checkpoint");

    criu(&ctx, &ctx.root, &["checkpoint", "--tcp-established", "--image-path", imgs, &id]).ok();
    let last = *count().last().unwrap();
    let (o, _after) = restore(&ctx, &ctx.root, &id, &img, &["--tcp-established"]);
    o.ok();
    assert!(wait_for(60, || count().len() as u64 > last + 10), "no data over the restored connection: {:?}", count());
    let all = count();
    assert_eq!(all.first(), Some(&1));
    assert!(all.windows(2).all(|w| w[1] == w[0] + 1), "the stream has a gap or repeats: {all:?}");
}

/// Receive the pty master sent to a console socket at `path` (one connection).
fn console_listener(path: &Path) -> std::thread::JoinHandle<std::io::Result<OwnedFd>> {
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept()?;
        let mut buf = [0u8; 4096];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut cmsg = rustix::net::RecvAncillaryBuffer::new(&mut space);
        rustix::net::recvmsg(
            &stream,
            &mut [std::io::IoSliceMut::new(&mut buf)],
            &mut cmsg,
            rustix::net::RecvFlags::CMSG_CLOEXEC,
        )?;
        for m in cmsg.drain() {
            if let rustix::net::RecvAncillaryMessage::ScmRights(mut fds) = m {
                if let Some(fd) = fds.next() {
                    return Ok(fd);
                }
            }
        }
        Err(std::io::Error::other("no fd on the console socket"))
    })
}

fn pty_reader(master: OwnedFd) -> Pipe {
    rustix::fs::fcntl_setfl(&master, rustix::fs::OFlags::NONBLOCK).unwrap();
    Pipe { fd: master, buf: Vec::new() }
}

#[test]
fn criu_terminal_gets_a_new_console() {
    if !require(Feature::Criu) {
        return;
    }
    let mut ctx = Ctx::new("criu-tty");
    ctx.config["process"]["terminal"] = json!(true);
    ctx.sh(COUNTER);
    let id = ctx.id();
    let sock = ctx.dir.join("console.sock");
    let th = console_listener(&sock);
    ctx.run_with(&id, &["-d", "--console-socket", sock.to_str().unwrap()]).ok();
    let mut tty = pty_reader(th.join().unwrap().unwrap());
    tty.wait_numbers(10, 60);
    let img = images(&ctx, "img");
    criu(&ctx, &ctx.root, &["checkpoint", "--image-path", img.to_str().unwrap(), &id]).ok();
    let last = *tty.drain(5).last().unwrap();

    let sock2 = ctx.dir.join("console2.sock");
    let th = console_listener(&sock2);
    let (o, _) = restore(&ctx, &ctx.root, &id, &img, &["--console-socket", sock2.to_str().unwrap()]);
    o.ok();
    let master = th.join().unwrap().expect("restore sent no pty master to --console-socket");
    let mut tty = pty_reader(master);
    assert_continues(&tty.wait_numbers(5, 60), last);
    // Still the container's terminal: what we type comes back as its echo.
    rustix::io::write(&tty.fd, b"typed-in\n").unwrap();
    let start = Instant::now();
    while !String::from_utf8_lossy(&tty.buf).contains("typed-in") && start.elapsed() < Duration::from_secs(30) {
        tty.fill(Duration::from_millis(200));
    }
    assert!(String::from_utf8_lossy(&tty.buf).contains("typed-in"), "no echo from the restored terminal");
    assert_eq!(ctx.status(&id), "running");
}

#[test]
fn criu_foreground_restore_exits_with_the_container() {
    if !require(Feature::Criu) {
        return;
    }
    let mut ctx = Ctx::new("criu-fg");
    let (id, mut out) =
        start_counter(&mut ctx, "i=0; while [ $i -lt 80 ]; do i=$((i+1)); echo $i; sleep 0.1; done; exit 7");
    out.wait_numbers(10, 60);
    let img = images(&ctx, "img");
    criu(&ctx, &ctx.root, &["checkpoint", "--image-path", img.to_str().unwrap(), &id]).ok();
    let last = *out.drain(20).last().unwrap();
    let (pipe, w) = Pipe::new();
    let b = ctx.bundle.to_str().unwrap().to_string();
    let o =
        husk_with(&ctx.root, &["restore", "--bundle", &b, "--image-path", img.to_str().unwrap(), &id], Some(&w), &ctx);
    drop(w);
    assert_eq!(o.code, Some(7), "restore in the foreground exits with the container's status: {o}");
    let mut pipe = pipe;
    let after = pipe.drain(10);
    assert_continues(&after, last);
    assert_eq!(after.last(), Some(&80));
    ctx.husk(&["state", &id]).fails_with("does not exist");
}

#[test]
#[ignore = "needs exec (issue 7)"]
fn criu_restored_container_can_be_exec_d_into() {
    if !require(Feature::Criu) {
        return;
    }
    let mut ctx = Ctx::new("criu-exec");
    ctx.config["hostname"] = json!("restored-host");
    let (id, mut out) = start_counter(&mut ctx, COUNTER);
    out.wait_numbers(5, 60);
    let img = images(&ctx, "img");
    criu(&ctx, &ctx.root, &["checkpoint", "--image-path", img.to_str().unwrap(), &id]).ok();
    let (o, _after) = restore(&ctx, &ctx.root, &id, &img, &[]);
    o.ok();
    let o = criu(&ctx, &ctx.root, &["exec", &id, "hostname"]).ok();
    assert_eq!(o.stdout.trim(), "restored-host");
}

#[test]
fn criu_checkpoint_failure_leaves_it_running() {
    if !require(Feature::Criu) {
        return;
    }
    checkpoint_failure_leaves_it_running("criu-ckfail", true);
}

/// The host's half of the same: here CRIU fails to dump (or is missing); the container goes on.
#[test]
fn checkpoint_failure_leaves_the_container_running() {
    checkpoint_failure_leaves_it_running("ckfail", false);
}

/// A container whose stdout is one end of a unix socket pair we hold: CRIU refuses to dump an
/// external socket without --ext-unix-sk, on any host.
fn checkpoint_failure_leaves_it_running(name: &str, from_criu: bool) {
    let mut ctx = Ctx::new(name);
    ctx.sh(COUNTER);
    ctx.config["root"]["readonly"] = json!(false);
    let id = ctx.id();
    ctx.write_config(&id);
    let (mine, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let theirs = OwnedFd::from(theirs);
    let b = ctx.bundle.to_str().unwrap().to_string();
    husk_with(&ctx.root, &["run", "-d", "--bundle", &b, &id], Some(&theirs), &ctx).ok();
    drop(theirs);
    mine.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut mine = mine;
    let mut b = [0u8; 64];
    assert!(mine.read(&mut b).unwrap() > 0);
    let pid = ctx.state(&id)["pid"].as_u64().unwrap();

    let img = images(&ctx, "img");
    let o = criu(&ctx, &ctx.root, &["checkpoint", "--image-path", img.to_str().unwrap(), &id]).fails();
    assert!(o.stderr.to_lowercase().contains("criu"), "the error names CRIU: {o}");
    if is_husk() {
        assert_eq!(o.stderr_lines().len(), 1, "one line: {o}");
        if from_criu {
            assert!(o.stderr.contains("full log:") && o.stderr.contains("dump.log"), "quotes CRIU's log: {o}");
        }
    }
    let st = ctx.state(&id);
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(st["pid"].as_u64(), Some(pid));
    // Not frozen either: it still writes.
    let mut more = 0;
    for _ in 0..5 {
        more += mine.read(&mut b).unwrap_or(0);
    }
    assert!(more > 0, "the container stopped writing after a failed checkpoint");
    ctx.husk(&["kill", &id, "KILL"]).ok();
    ctx.wait_status(&id, "stopped");
    ctx.husk(&["delete", &id]).ok();
}

#[test]
fn criu_restore_failure_leaves_nothing() {
    if !require(Feature::Criu) {
        return;
    }
    restore_failure_leaves_nothing("criu-rsfail");
}

#[test]
fn restore_failure_leaves_nothing_behind() {
    restore_failure_leaves_nothing("rsfail");
}

/// An image directory without an image: CRIU (or its absence) fails the restore, and no state,
/// cgroup, mount or process is left.
fn restore_failure_leaves_nothing(name: &str) {
    let mut ctx = Ctx::new(name);
    ctx.sh(COUNTER);
    let id = ctx.id();
    ctx.write_config(&id);
    let img = images(&ctx, "empty");
    fs::create_dir_all(&img).unwrap();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let (o, _) = restore(&ctx, &ctx.root, &id, &img, &[]);
    let o = o.fails();
    assert!(o.stderr.to_lowercase().contains("criu"), "{o}");
    ctx.assert_nothing_left(&id, &mounts);
}

#[test]
fn restore_of_an_existing_id_fails_and_leaves_it() {
    let mut ctx = Ctx::new("rsdup");
    ctx.sh(COUNTER);
    let id = ctx.id();
    ctx.run_with(&id, &["-d"]).ok();
    let pid = ctx.state(&id)["pid"].as_u64();
    let img = images(&ctx, "empty");
    fs::create_dir_all(&img).unwrap();
    let (o, _) = restore(&ctx, &ctx.root, &id, &img, &[]);
    o.fails_with("already exists");
    let st = ctx.state(&id);
    assert_eq!((st["status"].as_str(), st["pid"].as_u64()), (Some("running"), pid));
}

#[test]
fn checkpoint_needs_a_running_container() {
    let mut ctx = Ctx::new("ckcreated");
    ctx.sh(COUNTER);
    let id = ctx.id();
    ctx.create(&id).ok();
    let img = images(&ctx, "img");
    criu(&ctx, &ctx.root, &["checkpoint", "--image-path", img.to_str().unwrap(), &id]).fails_with("created");
    assert_eq!(ctx.status(&id), "created");
    criu(&ctx, &ctx.root, &["checkpoint", "nonexistent"]).fails_with("does not exist");
}

#[test]
fn checkpoint_without_criu_says_what_is_needed() {
    let mut ctx = Ctx::new("cknocriu");
    ctx.sh(COUNTER);
    let id = ctx.id();
    ctx.run_with(&id, &["-d"]).ok();
    let img = images(&ctx, "img");
    let imgs = img.to_str().unwrap();
    // runc 1.1 differs: it says only "exec: \"criu\": executable file not found in $PATH".
    let o = criu(&ctx, &ctx.root, &["--criu", "/nonexistent/criu", "checkpoint", "--image-path", imgs, &id]).fails();
    let mut c = ctx.cmd();
    c.env("PATH", "/nonexistent").args(["checkpoint", "--image-path", imgs, &id]);
    let o2 = ctx.exec(c).fails();
    for o in [&o, &o2] {
        assert!(o.stderr.contains("criu"), "{o}");
        if is_husk() {
            assert!(o.stderr.contains("not found") && o.stderr.contains("CRIU 3.11 or newer"), "{o}");
        }
    }
    let o = criu(&ctx, &ctx.root, &["--criu", "/nonexistent/criu", "restore", "--image-path", imgs, "new-id"]).fails();
    assert!(o.stderr.contains("criu"), "{o}");
    assert_eq!(ctx.status(&id), "running");
    assert!(!ctx.root.join("new-id").exists());
}

/// A stand-in `criu` that answers the version request as CRIU 3.5 would.
fn old_criu(dir: &Path) -> PathBuf {
    let path = dir.join("old-criu");
    // criu_resp { type: VERSION (10), success: true, version { major: 3, minor: 5 } }
    write_script(
        &path,
        "#!/usr/bin/python3\nimport os, sys\nfd = int(sys.argv[2])\nos.read(fd, 4096)\n\
         os.write(fd, bytes([0x08, 10, 0x10, 1, 0x52, 4, 0x08, 3, 0x10, 5]))\n",
    );
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn checkpoint_with_too_old_criu_says_so() {
    // runc 1.1 differs: it needs only CRIU 3.0, so a 3.5 passes its check.
    if !is_husk() || !Path::new("/usr/bin/python3").exists() {
        return;
    }
    let mut ctx = Ctx::new("ckoldcriu");
    ctx.sh(COUNTER);
    let id = ctx.id();
    ctx.run_with(&id, &["-d"]).ok();
    let old = old_criu(&ctx.dir);
    let o = criu(&ctx, &ctx.root, &["--criu", old.to_str().unwrap(), "checkpoint", "--image-path", "img", &id]);
    o.fails_with("CRIU 3.5").fails_with("too old").fails_with("3.11 or newer");
    assert_eq!(ctx.status(&id), "running");
}

#[test]
fn checkpoint_and_restore_check_their_flags() {
    let mut ctx = Ctx::new("ckflags");
    ctx.sh(COUNTER);
    let id = ctx.id();
    ctx.run_with(&id, &["-d"]).ok();
    criu(&ctx, &ctx.root, &["checkpoint", "--manage-cgroups-mode", "sloppy", &id]).fails_with("manage-cgroups-mode");
    criu(&ctx, &ctx.root, &["restore", "--manage-cgroups-mode", "sloppy", "other"]).fails_with("manage-cgroups-mode");
    if is_husk() {
        criu(&ctx, &ctx.root, &["checkpoint", "--page-server", "nohost", &id]).fails_with("ADDRESS:PORT");
        criu(&ctx, &ctx.root, &["checkpoint", "--empty-ns", "pid", &id]).fails_with("empty-ns");
    }
    assert_eq!(ctx.status(&id), "running");
}

#[test]
fn features_say_checkpoint_is_supported() {
    let ctx = Ctx::new("ckfeatures");
    let o = ctx.husk(&["features"]).ok();
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["annotations"]["org.opencontainers.runc.checkpoint.enabled"], "true", "{o}");
}
