//! Terminals driven the way a person uses them: `husk run` and `husk exec -t` under a real pty
//! made by the test, typed into; the caller's terminal is raw while husk proxies and restored
//! after.
mod common;

use common::*;
use serde_json::json;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;

/// A pty pair with the given window size; the slave will be the runtime's controlling terminal.
fn pty(rows: u16, cols: u16) -> (OwnedFd, OwnedFd) {
    let (mut m, mut s) = (0, 0);
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    assert_eq!(unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), &ws) }, 0);
    unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) }
}

fn termios(fd: &OwnedFd) -> libc::termios {
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) }, 0);
    t
}

fn same_termios(a: &libc::termios, b: &libc::termios) -> bool {
    (a.c_iflag, a.c_oflag, a.c_cflag, a.c_lflag, a.c_cc) == (b.c_iflag, b.c_oflag, b.c_cflag, b.c_lflag, b.c_cc)
}

fn type_in(master: &OwnedFd, text: &str) {
    let n = unsafe { libc::write(master.as_raw_fd(), text.as_ptr().cast(), text.len()) };
    assert_eq!(n, text.len() as isize);
}

/// Run the runtime with `args` on the pty's slave as its controlling terminal and stdio.
fn spawn_on_pty(ctx: &Ctx, slave: &OwnedFd, args: &[&str]) -> Guarded {
    let mut c = std::process::Command::new(bin());
    c.arg("--root").arg(&ctx.root).args(args).current_dir(&ctx.dir);
    let s = slave.as_raw_fd();
    unsafe {
        c.pre_exec(move || {
            if libc::setsid() < 0
                || libc::ioctl(s, libc::TIOCSCTTY, 0) < 0
                || libc::dup2(s, 0) < 0
                || libc::dup2(s, 1) < 0
                || libc::dup2(s, 2) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    spawn_for(&mut c, BACKGROUND)
}

/// Type commands into a shell on the pty and read its answers; the runtime's exit code.
fn drive_shell(master: &OwnedFd, slave: &OwnedFd, mut child: Guarded, cooked: &libc::termios) -> i32 {
    let out = read_until(master.as_fd(), |s| s.contains("# "));
    assert!(out.contains("# "), "no shell prompt: {out:?}");
    assert_eq!(
        termios(slave).c_lflag & (libc::ICANON | libc::ECHO),
        0,
        "the caller's terminal is raw while husk proxies"
    );
    type_in(master, "echo $((6*7)) $(stty size); tty\r");
    let out = read_until(master.as_fd(), |s| s.contains("/dev/pts/"));
    assert!(out.contains("42 50 132\n"), "the answer, in the caller's window size: {out:?}");
    // A resize of the caller's terminal reaches the container's.
    let ws = libc::winsize { ws_row: 33, ws_col: 99, ws_xpixel: 0, ws_ypixel: 0 };
    assert_eq!(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) }, 0);
    std::thread::sleep(std::time::Duration::from_millis(200));
    type_in(master, "stty size | sed s/^/size:/\r");
    let out = read_until(master.as_fd(), |s| s.contains("size:33 99"));
    assert!(out.contains("size:33 99"), "resized: {out:?}");
    type_in(master, "exit 3\r");
    let st = child.wait();
    assert!(same_termios(&termios(slave), cooked), "the caller's terminal is restored");
    st.code().unwrap_or(-1)
}

#[test]
fn run_with_terminal_under_a_real_pty() {
    let mut ctx = Ctx::new("ptyrun");
    ctx.config["process"]["terminal"] = json!(true);
    ctx.config["process"]["args"] = json!(["sh"]);
    let id = ctx.id();
    ctx.write_config(&id);
    let (master, slave) = pty(50, 132);
    let cooked = termios(&slave);
    let b = ctx.bundle.to_str().unwrap().to_string();
    let child = spawn_on_pty(&ctx, &slave, &["run", "--bundle", &b, &id]);
    assert_eq!(drive_shell(&master, &slave, child, &cooked), 3);
    ctx.husk(&["state", &id]).fails_with("does not exist");
}

#[test]
fn exec_tty_under_a_real_pty() {
    let mut ctx = Ctx::new("ptyexec");
    let (id, _) = ctx.running("exec sleep 1000");
    let (master, slave) = pty(50, 132);
    let cooked = termios(&slave);
    let child = spawn_on_pty(&ctx, &slave, &["exec", "-t", &id, "sh"]);
    assert_eq!(drive_shell(&master, &slave, child, &cooked), 3);
    assert_eq!(ctx.status(&id), "running");
}

/// Everything the runtime writes to the pty until it exits, bytes as they are (no `\r`
/// stripped), and its exit code. The caller's pty is raw from the start (no OPOST), so a `\r`
/// seen here was written by the runtime, i.e. came from the container's own pty.
fn capture_raw(ctx: &Ctx, args: &[&str]) -> (Vec<u8>, i32) {
    let (master, slave) = pty(24, 80);
    let mut raw = termios(&slave);
    unsafe { libc::cfmakeraw(&mut raw) };
    assert_eq!(unsafe { libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &raw) }, 0);
    let mut child = spawn_on_pty(ctx, &slave, args);
    let fd = master.as_raw_fd();
    unsafe { libc::fcntl(fd, libc::F_SETFL, libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK) };
    let mut got = Vec::new();
    let read_now = |got: &mut Vec<u8>| loop {
        let mut b = [0u8; 4096];
        let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), b.len()) };
        if n <= 0 {
            break;
        }
        got.extend_from_slice(&b[..n as usize]);
    };
    let start = std::time::Instant::now();
    let code = loop {
        read_now(&mut got);
        if let Some(st) = child.try_wait() {
            break st.code().unwrap_or(-1);
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "runtime hangs: {:?}",
            String::from_utf8_lossy(&got)
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    read_now(&mut got);
    (got, code)
}

#[test]
fn run_terminal_output_is_newline_only() {
    // runc clears ONLCR on the pty it proxies: `run -t`'s captured output has no `\r`.
    // runc 1.1 differs: it clears it in a goroutine racing the program's first output, which
    // a program as quick as printf wins (here every time).
    let mut ctx = Ctx::new("ptyonlcr");
    ctx.config["process"]["terminal"] = json!(true);
    ctx.config["process"]["args"] = json!(["printf", "one\\ntwo\\n"]);
    let id = ctx.id();
    ctx.write_config(&id);
    let b = ctx.bundle.to_str().unwrap().to_string();
    let (out, code) = capture_raw(&ctx, &["run", "--bundle", &b, &id]);
    assert_eq!(code, 0, "{:?}", String::from_utf8_lossy(&out));
    assert_eq!(String::from_utf8_lossy(&out), "one\ntwo\n");
}

#[test]
fn exec_tty_output_is_newline_only() {
    // runc 1.1 differs: as in `run_terminal_output_is_newline_only`.
    let mut ctx = Ctx::new("ptyonlcrexec");
    let (id, _) = ctx.running("exec sleep 1000");
    let (out, code) = capture_raw(&ctx, &["exec", "-t", &id, "printf", "one\\ntwo\\n"]);
    assert_eq!(code, 0, "{:?}", String::from_utf8_lossy(&out));
    assert_eq!(String::from_utf8_lossy(&out), "one\ntwo\n");
}

/// What the process sees of its terminal: owner and group of `tty`, and whether it may open it.
const TTY_OWNER: &str = "ls -ln $(tty) | awk '{print $3, $4}'; echo hi > /dev/tty && echo reopened";

#[test]
fn run_terminal_belongs_to_the_process_user() {
    // runc's fixStdioPermissions: the owner becomes the process's uid; the group stays devpts'
    // gid=5 (tty) of the default config.
    let mut ctx = Ctx::new("ptyowner");
    ctx.config["process"]["terminal"] = json!(true);
    ctx.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    ctx.config["process"]["args"] = json!(["sh", "-c", TTY_OWNER]);
    let id = ctx.id();
    ctx.write_config(&id);
    let b = ctx.bundle.to_str().unwrap().to_string();
    let (out, code) = capture_raw(&ctx, &["run", "--bundle", &b, &id]);
    let out = String::from_utf8_lossy(&out).replace('\r', "");
    assert_eq!(code, 0, "{out:?}");
    assert_eq!(out, "1000 5\nhi\nreopened\n");
}

#[test]
fn exec_tty_belongs_to_the_process_user() {
    let mut ctx = Ctx::new("ptyownerexec");
    let (id, _) = ctx.running("exec sleep 1000");
    let (out, code) = capture_raw(&ctx, &["exec", "-t", "-u", "1000:1000", &id, "sh", "-c", TTY_OWNER]);
    let out = String::from_utf8_lossy(&out).replace('\r', "");
    assert_eq!(code, 0, "{out:?}");
    assert_eq!(out, "1000 5\nhi\nreopened\n");
    // Root's stays root's.
    let (out, _) = capture_raw(&ctx, &["exec", "-t", &id, "sh", "-c", TTY_OWNER]);
    assert_eq!(String::from_utf8_lossy(&out).replace('\r', ""), "0 5\nhi\nreopened\n");
}

#[test]
fn exec_tty_takes_the_console_size() {
    // consoleSize of the process (the container's, for `exec -t`; the JSON's, for --process)
    // when the caller's stdin is no terminal to take a size from.
    // runc 1.1 differs: its foreground `exec -t` needs a terminal of the caller's (`open
    // /dev/tty: no such device or address` without one).
    let mut ctx = Ctx::new("ptysizeexec");
    ctx.config["process"]["consoleSize"] = json!({"height": 33, "width": 77});
    let (id, _) = ctx.running("exec sleep 1000");
    let o = ctx.husk(&["exec", "-t", &id, "stty", "size"]).ok();
    assert_eq!(o.stdout.replace('\r', ""), "33 77\n", "{o}");
    let p = ctx.dir.join("p.json");
    let proc = json!({"terminal": true, "consoleSize": {"height": 21, "width": 55}, "cwd": "/",
        "user": {"uid": 0, "gid": 0},
        "env": ["PATH=/bin"], "args": ["stty", "size"]});
    std::fs::write(&p, serde_json::to_vec(&proc).unwrap()).unwrap();
    let o = ctx.husk(&["exec", "--process", p.to_str().unwrap(), &id]).ok();
    assert_eq!(o.stdout.replace('\r', ""), "21 55\n", "{o}");
}
