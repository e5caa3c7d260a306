//! `process.terminal`: a pty made inside the container, its master sent to the caller's
//! `--console-socket` (or to husk, which proxies it), its slave as the process's stdio and, for
//! the init, `/dev/console`.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::mount::{move_mount, open_tree, MoveMountFlags, OpenTreeFlags};
use rustix::pty::{ioctl_tiocgptpeer, openpt, ptsname, unlockpt, OpenptFlags};

use crate::error::{Context, Error, Result};
use crate::fdpass;

/// Connect to the caller's console socket (done by husk before clone, in the host's namespaces).
pub fn connect(path: &Path) -> Result<OwnedFd> {
    fdpass::connect(path, "--console-socket")
}

/// husk's own console socket for a foreground `run` with a terminal and no --console-socket:
/// a listener bound in the state directory and a connected client end for the init.
pub fn own_socket(dir: &crate::state::StateDir) -> Result<(OwnedFd, OwnedFd)> {
    use rustix::net::{bind, connect, listen, socket_with, AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    use std::os::fd::AsRawFd;
    let listener =
        socket_with(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None).ctx(|| "console socket")?;
    let path = format!("/proc/self/fd/{}/console.sock", dir.fd.as_raw_fd());
    let addr = SocketAddrUnix::new(path.as_str()).ctx(|| "console socket address")?;
    bind(&listener, &addr).ctx(|| "bind console socket")?;
    listen(&listener, 1).ctx(|| "listen on console socket")?;
    let client =
        socket_with(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None).ctx(|| "console socket")?;
    connect(&client, &addr).ctx(|| "connect console socket")?;
    Ok((listener, client))
}

/// Accept the init's connection on our own console socket and take the pty master it sent,
/// made ready for husk to proxy ([`for_proxy`]). `create` calls this before `start`, so the
/// program's first output already passes through it.
pub fn receive_master(listener: &OwnedFd) -> Result<OwnedFd> {
    use rustix::net::{accept_with, SocketFlags};
    let conn = accept_with(listener, SocketFlags::CLOEXEC).ctx(|| "accept on console socket")?;
    let mut buf = [0u8; 256];
    match fdpass::recv_fd(&conn, &mut buf).ctx(|| "receive pty master")? {
        (_, Some(fd)) => {
            for_proxy(&fd)?;
            Ok(fd)
        }
        (_, None) => Err(Error::msg("console socket: no pty master received")),
    }
}

/// A pty husk proxies to its own stdout (foreground `run` and `exec -t`) writes `\n`, not
/// `\r\n`: ONLCR off, as runc clears it on the pty it proxies (`console.ClearONLCR` in runc's
/// tty.go), so output captured from `husk run -t` has no trailing `\r`. The caller's own
/// terminal, in raw mode meanwhile, shows it as before. A pty sent to a --console-socket is
/// left as the kernel makes it: its receiver decides (runc's init leaves it alone too).
pub fn for_proxy(master: &OwnedFd) -> Result<()> {
    use rustix::termios::{tcgetattr, tcsetattr, OptionalActions, OutputModes};
    let mut t = tcgetattr(master).ctx(|| "console: get terminal attributes")?;
    t.output_modes.remove(OutputModes::ONLCR);
    tcsetattr(master, OptionalActions::Now, &t).ctx(|| "console: clear ONLCR")
}

/// A new pty, opened through the `/dev/ptmx` of the mount namespace we are in (the container's
/// own devpts instance), with `process.consoleSize` applied.
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

pub fn open_pty(size: Option<&oci_spec::runtime::Box>) -> Result<Pty> {
    // Under runc, a 0x0 size leaves the kernel's default (runc resizes only when both are set).
    let size = size.filter(|b| b.height() != 0 && b.width() != 0);
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).ctx(|| "open /dev/ptmx")?;
    unlockpt(&master).ctx(|| "unlockpt")?;
    // The slave comes from the master itself, never by path (CVE-2025-52565).
    let slave = ioctl_tiocgptpeer(&master, OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
        .ctx(|| "open pty slave")?;
    if let Some(b) = size {
        let ws = rustix::termios::Winsize {
            ws_row: b.height() as u16,
            ws_col: b.width() as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&master, ws).ctx(|| "process.consoleSize")?;
    }
    Ok(Pty { master, slave })
}

impl Pty {
    /// Send the master to a console socket, named by its pts path as runc's receivers expect.
    pub fn send_master(&self, socket: &OwnedFd) -> Result<()> {
        let name = ptsname(&self.master, Vec::new()).ctx(|| "ptsname")?;
        fdpass::send_fd(socket, name.as_bytes(), self.master.as_fd()).ctx(|| "--console-socket: send pty master")
    }

    /// The slave as stdio, owned by the process's `uid` (see [`give_to`]); the process that runs
    /// the program makes it its controlling terminal.
    pub fn into_stdio(self, uid: u32) -> Result<()> {
        drop(self.master);
        give_to(&self.slave, uid)?;
        for target in 0..3 {
            dup_onto(&self.slave, target)?;
        }
        Ok(())
    }

    /// Become a session leader with the slave as controlling terminal and stdio, owned by the
    /// process's `uid` (see [`give_to`]).
    pub fn become_terminal(self, uid: u32) -> Result<()> {
        drop(self.master);
        give_to(&self.slave, uid)?;
        rustix::process::setsid().ctx(|| "setsid")?;
        rustix::process::ioctl_tiocsctty(&self.slave).ctx(|| "set controlling terminal")?;
        for target in 0..3 {
            dup_onto(&self.slave, target)?;
        }
        Ok(())
    }
}

/// The terminal belongs to the user the process runs as, or a process that is not root could
/// not reopen it (`/dev/tty`, `/proc/self/fd/0`) nor change its modes (`mesg`, `stty` through a
/// path): runc's fixStdioPermissions does the same. Only the owner: the group is the one the
/// devpts mount gives (`gid=5`, tty, in the default config), which runc leaves as well. A new
/// pty belongs to whoever made it, root in the container, so uid 0 needs nothing. EPERM (an
/// owner not mapped in our user namespace) and EROFS leave it as it is, as runc does.
fn give_to(slave: &OwnedFd, uid: u32) -> Result<()> {
    if uid == 0 {
        return Ok(());
    }
    match rustix::fs::fchown(slave, Some(rustix::process::Uid::from_raw(uid)), None) {
        Ok(()) | Err(rustix::io::Errno::PERM) | Err(rustix::io::Errno::ROFS) => Ok(()),
        Err(e) => Err(Error::from(e).context(format!("process.user.uid: give the terminal to uid {uid}"))),
    }
}

/// The init's console: runs after pivot_root, so `/dev/ptmx` is the container's own devpts.
/// Without a mount namespace of its own (`bind_console` false) /dev/console is left as it is: a
/// bind there would be a mount in the host's namespace.
pub fn setup(socket: OwnedFd, size: Option<&oci_spec::runtime::Box>, bind_console: bool, uid: u32) -> Result<()> {
    let pty = open_pty(size)?;
    if bind_console {
        bind_dev_console(&pty.slave)?;
    }
    pty.send_master(&socket)?;
    drop(socket);
    pty.become_terminal(uid)
}

fn bind_dev_console(slave: &OwnedFd) -> Result<()> {
    let dev =
        rustix::fs::open("/dev", OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
            .ctx(|| "open /dev")?;
    match rustix::fs::openat(
        &dev,
        "console",
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o666),
    ) {
        Ok(_) => {}
        Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(Error::from(e).context("create /dev/console")),
    }
    let target = rustix::fs::openat(&dev, "console", OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
        .ctx(|| "open /dev/console")?;
    let tree = open_tree(
        slave,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_EMPTY_PATH,
    )
    .ctx(|| "clone pty slave mount")?;
    move_mount(
        tree.as_fd(),
        "",
        target.as_fd(),
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .ctx(|| "bind pty onto /dev/console")
}

/// Send a pty master made elsewhere (CRIU's, after a restore) to a console socket, named by its
/// slave's path as `setup` names a new one.
pub fn send_master(socket: &OwnedFd, master: &OwnedFd) -> Result<()> {
    let name = ptsname(master, Vec::new()).map(|n| n.into_bytes()).unwrap_or_else(|_| b"/dev/ptmx".to_vec());
    fdpass::send_fd(socket, &name, master.as_fd()).ctx(|| "--console-socket: send pty master")
}

fn dup_onto(fd: &OwnedFd, target: i32) -> Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: dup2 onto 0..2 replaces stdio, which this process owns; no Rust object owns them.
    if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
        return Err(Error::from(std::io::Error::last_os_error()).context(format!("dup pty onto fd {target}")));
    }
    Ok(())
}
