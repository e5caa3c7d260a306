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
