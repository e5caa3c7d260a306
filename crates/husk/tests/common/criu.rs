//! Helpers for the checkpoint/restore tests (tests/criu.rs, tests/checkpoint.rs): containers
//! whose stdio is a pipe the test reads (CRIU cannot dump a host file a container holds, and a
//! restore hands it new pipes), runtime calls with CRIU's slowness in mind, console sockets.

use super::*;
use serde_json::json;
use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Counts up, one number a line, ten a second.
pub const COUNTER: &str = "i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done";
/// CRIU under TCG is slow: every runtime call that drives it gets this long.
pub const CRIU_TIMEOUT: Duration = Duration::from_secs(240);

/// The read end of a pipe whose write end a container holds, read line by line with a deadline.
pub struct Pipe {
    pub fd: OwnedFd,
    pub buf: Vec<u8>,
}

impl Pipe {
    /// A new pipe: (reader, write end for the runtime's stdout/stderr).
    pub fn new() -> (Pipe, OwnedFd) {
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        rustix::fs::fcntl_setfl(&r, rustix::fs::OFlags::NONBLOCK).unwrap();
        (Pipe { fd: r, buf: Vec::new() }, w)
    }

    /// Read what is there within `wait`; false at end of file.
    pub fn fill(&mut self, wait: Duration) -> bool {
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
    pub fn numbers(&self) -> Vec<u64> {
        let text = String::from_utf8_lossy(&self.buf);
        let complete = text.rfind('\n').map_or("", |i| &text[..i]);
        complete.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }

    /// Wait until at least `n` numbers came, or panic.
    #[track_caller]
    pub fn wait_numbers(&mut self, n: usize, secs: u64) -> Vec<u64> {
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
    pub fn drain(&mut self, secs: u64) -> Vec<u64> {
        let start = Instant::now();
        while self.fill(Duration::from_millis(200)) && start.elapsed() < Duration::from_secs(secs) {}
        self.numbers()
    }
}

/// `husk --root ROOT ARGS`, stdin /dev/null; with `out`, stdout and stderr go there (what the
/// container inherits must be no file of the host's: CRIU could not dump it) and the runtime's
/// errors come from its `--log`.
pub fn husk_with(root: &Path, args: &[&str], out: Option<&OwnedFd>, ctx: &Ctx) -> Out {
    let mut c = Command::new(bin());
    c.arg("--root").arg(root).stdin(Stdio::null()).current_dir(&ctx.dir);
    match out {
        Some(fd) => {
            let n = seq_name(ctx);
            let log = ctx.dir.join(format!("log.{n}"));
            c.arg("--log").arg(&log).args(args);
            c.stdout(Stdio::from(fd.try_clone().unwrap())).stderr(Stdio::from(fd.try_clone().unwrap()));
            let status = spawn_for(&mut c, CRIU_TIMEOUT).wait();
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

pub fn seq_name(_ctx: &Ctx) -> usize {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

/// A counting container started with `run -d`, its stdout and stderr a pipe we read.
pub fn start_counter(ctx: &mut Ctx, script: &str) -> (String, Pipe) {
    ctx.sh(script);
    ctx.config["root"]["readonly"] = json!(false);
    let id = ctx.id();
    ctx.write_config(&id);
    let (pipe, w) = Pipe::new();
    let b = ctx.bundle.to_str().unwrap().to_string();
    husk_with(&ctx.root, &["run", "-d", "--bundle", &b, &id], Some(&w), ctx).ok();
    (id, pipe)
}

pub fn criu(ctx: &Ctx, root: &Path, args: &[&str]) -> Out {
    husk_with(root, args, None, ctx)
}

/// `restore -d` from `images` under `root`, its stdout a new pipe.
pub fn restore(ctx: &Ctx, root: &Path, id: &str, images: &Path, extra: &[&str]) -> (Out, Pipe) {
    restore_from(ctx, &ctx.bundle, root, id, images, extra)
}

pub fn restore_from(ctx: &Ctx, bundle: &Path, root: &Path, id: &str, images: &Path, extra: &[&str]) -> (Out, Pipe) {
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
pub fn assert_continues(after: &[u64], last: u64) {
    let first = *after.first().expect("no numbers after restore");
    assert!(
        first > 1 && first + 5 >= last && first <= last + 5,
        "restored counter starts at {first}, it was at {last}: {after:?}"
    );
    assert!(after.windows(2).all(|w| w[1] == w[0] + 1), "restored counter skips: {after:?}");
}

/// A root other than the Ctx's (a stand-in for another host); its containers are force-deleted
/// on drop.
pub struct OtherRoot<'a> {
    pub ctx: &'a Ctx,
    pub root: PathBuf,
    pub ids: Vec<String>,
}

impl Drop for OtherRoot<'_> {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = criu(self.ctx, &self.root, &["delete", "--force", id]);
        }
    }
}

pub fn images(ctx: &Ctx, name: &str) -> PathBuf {
    ctx.dir.join(name)
}

/// Receive the pty master sent to a console socket at `path` (one connection).
pub fn console_listener(path: &Path) -> std::thread::JoinHandle<std::io::Result<OwnedFd>> {
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

pub fn pty_reader(master: OwnedFd) -> Pipe {
    rustix::fs::fcntl_setfl(&master, rustix::fs::OFlags::NONBLOCK).unwrap();
    Pipe { fd: master, buf: Vec::new() }
}
