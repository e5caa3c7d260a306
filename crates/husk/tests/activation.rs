//! What services under systemd rely on: socket activation (LISTEN_FDS with a real listening
//! socket served from inside the container), sd_notify through the container (NOTIFY_SOCKET:
//! READY=1 reaches the caller's socket only once the container runs, and `start` waits for it),
//! and `--pidfd-socket` for create and run.
mod common;

use common::*;
use serde_json::json;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::time::Duration;

/// The host's python3 inside the container (its /usr bind-mounted read-only): a real server
/// for the tests, as a distribution image would have one.
fn with_host_python(ctx: &mut Ctx) {
    ctx.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]
    }));
    for (link, target) in [("lib", "usr/lib"), ("lib64", "usr/lib64")] {
        std::os::unix::fs::symlink(target, ctx.rootfs().join(link)).unwrap();
    }
    ctx.config["process"]["env"] = json!(["PATH=/usr/bin:/bin"]);
}

/// A directory of the test shared read-write with the container at /shared.
fn shared_dir(ctx: &mut Ctx) -> std::path::PathBuf {
    let dir = ctx.dir.join("shared");
    std::fs::create_dir(&dir).unwrap();
    ctx.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/shared", "type": "bind", "source": dir, "options": ["bind", "rw"]
    }));
    dir
}

#[test]
fn listen_fds_socket_served_from_the_container() {
    let mut ctx = Ctx::new("activation");
    with_host_python(&mut ctx);
    ctx.config["process"]["args"] = json!([
        "python3", "-c",
        "import os, socket\n\
         s = socket.socket(fileno=3)\n\
         c, _ = s.accept()\n\
         c.sendall(('served from pid %d, LISTEN_FDS=%s LISTEN_PID=%s\\n' % (os.getpid(), os.environ['LISTEN_FDS'], os.environ['LISTEN_PID'])).encode())\n"
    ]);
    let id = ctx.id();
    ctx.write_config(&id);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Parked on a high fd first: were the listener itself fd 3, dup2(3, 3) would leave it
    // close-on-exec.
    let parked = unsafe { libc::fcntl(listener.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 200) };
    assert!(parked >= 200);
    let parked = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(parked) };
    let raw = parked.as_raw_fd();
    // As systemd starts a socket-activated service: the socket on fd 3, LISTEN_PID = the
    // runtime's own pid.
    let mut c = std::process::Command::new("sh");
    c.arg("-c").arg("LISTEN_PID=$$ exec \"$@\"").arg("sh").arg(bin()).arg("--root").arg(&ctx.root);
    c.args(["run", "-d", "--bundle", ctx.bundle.to_str().unwrap(), &id]).env("LISTEN_FDS", "1");
    c.stdin(std::process::Stdio::null()).current_dir(&ctx.dir);
    unsafe {
        c.pre_exec(move || if libc::dup2(raw, 3) < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) });
    }
    // The container keeps this stdio: what it says lands in the files of this Out.
    let run = ctx.exec(c).ok();
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut got = String::new();
    let read = conn.read_to_string(&mut got);
    let said = || {
        format!("{read:?}; the container wrote {:?} {:?}", run.stdout_now(), std::fs::read_to_string(&run.stderr_path))
    };
    assert_eq!(got, "served from pid 1, LISTEN_FDS=1 LISTEN_PID=1\n", "{}", said());
}

/// The container: waits for /shared/go, then sends `READY=1` (and a second line) to its
/// NOTIFY_SOCKET and keeps running.
fn notify_config(ctx: &mut Ctx) -> std::path::PathBuf {
    with_host_python(ctx);
    let shared = shared_dir(ctx);
    ctx.sh(
        "echo \"$NOTIFY_SOCKET\" >/shared/env; while [ ! -e /shared/go ]; do sleep 0.02; done; \
         python3 -c 'import os, socket; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b\"READY=1\\nSTATUS=up\", os.environ[\"NOTIFY_SOCKET\"])'; \
         exec sleep 1000",
    );
    shared
}

/// The caller's notify socket, read as systemd does: at once, as datagrams arrive (a BARRIER=1's
/// pipe is closed by receiving it without taking the fd).
struct Receiver {
    got: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    path: std::path::PathBuf,
}

impl Receiver {
    fn new(ctx: &Ctx) -> Receiver {
        let path = ctx.dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let g = got.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                g.lock().unwrap().push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        });
        Receiver { got, path }
    }

    fn got(&self) -> Vec<String> {
        self.got.lock().unwrap().clone()
    }
}

/// READY's first line, then MAINPID (then BARRIER=1, which runc 1.1 does not send).
fn check_ready(r: &Receiver, mainpid: u64, shared: &std::path::Path) {
    assert!(wait_for(10, || r.got().len() >= 2), "{:?}", r.got());
    let got = r.got();
    assert_eq!(got[0], "READY=1\n", "{got:?}");
    assert_eq!(got[1], format!("MAINPID={mainpid}\n"), "{got:?}");
    assert_eq!(std::fs::read_to_string(shared.join("env")).unwrap(), "/run/notify/notify.sock\n");
}

#[test]
fn notify_socket_run_detached_waits_for_ready() {
    let mut ctx = Ctx::new("notifyrun");
    let shared = notify_config(&mut ctx);
    let r = Receiver::new(&ctx);
    let id = ctx.id();
    ctx.write_config(&id);
    let mut c = ctx.cmd();
    c.args(["run", "-d", "--bundle", ctx.bundle.to_str().unwrap(), &id]).env("NOTIFY_SOCKET", &r.path);
    let mut run = ctx.spawn_cmd(c);
    assert!(wait_for(20, || shared.join("env").exists()), "the container did not start");
    std::thread::sleep(Duration::from_millis(300));
    assert!(run.child.try_wait().is_none(), "run -d returned before the container was ready");
    assert!(r.got().is_empty(), "something was forwarded before READY: {:?}", r.got());
    std::fs::write(shared.join("go"), "").unwrap();
    run.wait().ok();
    check_ready(&r, ctx.state(&id)["pid"].as_u64().unwrap(), &shared);
}

#[test]
fn notify_socket_create_then_start() {
    // Nothing is forwarded before the container has started; `start` waits for READY.
    let mut ctx = Ctx::new("notifystart");
    let shared = notify_config(&mut ctx);
    std::fs::write(shared.join("go"), "").unwrap();
    let r = Receiver::new(&ctx);
    let id = ctx.id();
    ctx.write_config(&id);
    let mut c = ctx.cmd();
    c.args(["create", "--bundle", ctx.bundle.to_str().unwrap(), &id]).env("NOTIFY_SOCKET", &r.path);
    ctx.exec(c).ok();
    std::thread::sleep(Duration::from_millis(200));
    assert!(r.got().is_empty());
    let mut c = ctx.cmd();
    c.args(["start", &id]).env("NOTIFY_SOCKET", &r.path);
    ctx.exec(c).ok();
    check_ready(&r, ctx.state(&id)["pid"].as_u64().unwrap(), &shared);
}

#[test]
fn notify_socket_foreground_run() {
    // In the foreground the runtime is what the supervisor runs: MAINPID is its own pid.
    let mut ctx = Ctx::new("notifyfg");
    let shared = notify_config(&mut ctx);
    std::fs::write(shared.join("go"), "").unwrap();
    let r = Receiver::new(&ctx);
    let id = ctx.id();
    ctx.write_config(&id);
    let mut c = ctx.cmd();
    c.args(["run", "--bundle", ctx.bundle.to_str().unwrap(), &id]).env("NOTIFY_SOCKET", &r.path);
    let run = ctx.spawn_cmd(c);
    check_ready(&r, run.pid() as u64, &shared);
    ctx.husk(&["kill", &id, "KILL"]).ok();
    let o = run.wait();
    assert_eq!(o.code, Some(137), "{o}");
}

fn pidfd_pid(fd: &OwnedFd) -> u64 {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
    status_field(&info, "Pid").unwrap().parse().unwrap()
}

fn poll_readable(fd: &OwnedFd, ms: i32) -> bool {
    let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    unsafe { libc::poll(&mut p, 1, ms) == 1 }
}

#[test]
fn pidfd_socket_create_and_run() {
    // runc 1.1 differs: --pidfd-socket is runc 1.2's.
    let mut ctx = Ctx::new("pidfdsock");
    ctx.sh("exec sleep 1000");
    for (i, cmd) in [&["create"][..], &["run", "-d"][..]].into_iter().enumerate() {
        let sock = ctx.dir.join(format!("pidfd{i}.sock"));
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let th = std::thread::spawn(move || recv_fd(listener));
        let id = ctx.id();
        let mut extra: Vec<&str> = cmd[1..].to_vec();
        extra.extend(["--pidfd-socket", sock.to_str().unwrap()]);
        if cmd[0] == "create" {
            ctx.create_with(&id, &extra).ok();
        } else {
            ctx.run_with(&id, &extra).ok();
        }
        let pidfd = th.join().unwrap().expect("no pidfd received");
        assert_eq!(pidfd_pid(&pidfd), ctx.state(&id)["pid"].as_u64().unwrap(), "{cmd:?}: the init's pidfd");
        assert!(!poll_readable(&pidfd, 0));
        ctx.husk(&["kill", &id, "KILL"]).ok();
        assert!(poll_readable(&pidfd, 10_000), "{cmd:?}: the pidfd reports the init's exit");
    }
}

#[test]
fn notify_socket_foreground_run_with_terminal() {
    // The same while husk proxies the container's terminal itself.
    if !is_husk() {
        return; // runc 1.1 refuses a terminal on a non-tty stdin (process::foreground_run_with_terminal_proxies_a_pty)
    }
    let mut ctx = Ctx::new("notifytty");
    let shared = notify_config(&mut ctx);
    ctx.config["process"]["terminal"] = json!(true);
    std::fs::write(shared.join("go"), "").unwrap();
    let r = Receiver::new(&ctx);
    let id = ctx.id();
    ctx.write_config(&id);
    let mut c = ctx.cmd();
    c.args(["run", "--bundle", ctx.bundle.to_str().unwrap(), &id]).env("NOTIFY_SOCKET", &r.path);
    let run = ctx.spawn_cmd(c);
    check_ready(&r, run.pid() as u64, &shared);
    ctx.husk(&["kill", &id, "KILL"]).ok();
    let o = run.wait();
    assert_eq!(o.code, Some(137), "{o}");
}
