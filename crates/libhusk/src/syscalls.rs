//! Raw system calls that neither rustix nor libc wrap. Each `unsafe` block is as small as the call.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use rustix::io::Errno;

fn check(ret: libc::c_long) -> Result<libc::c_long, Errno> {
    if ret < 0 {
        Err(Errno::from_raw_os_error(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL)))
    } else {
        Ok(ret)
    }
}

/// libc's constant is a c_int that cannot hold this bit.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// What clone3 returned in the calling process.
pub enum Forked {
    Parent { pid: i32, pidfd: OwnedFd },
    Child,
}

/// `clone3` without a new stack: fork semantics, plus namespace flags, a pidfd for the parent
/// (so later waits and signals cannot hit a recycled pid) and, on cgroup v2, `CLONE_INTO_CGROUP`
/// so the child is born in its cgroup.
///
/// The caller must be single-threaded: the child then starts as a complete copy of a process
/// whose locks no other thread can hold, so it may allocate and run ordinary Rust code.
pub fn clone3(ns_flags: u64, cgroup: Option<BorrowedFd<'_>>) -> Result<Forked, Errno> {
    let mut pidfd: libc::c_int = -1;
    let mut args: libc::clone_args = unsafe_zeroed_clone_args();
    args.flags = ns_flags | libc::CLONE_PIDFD as u64;
    args.pidfd = &mut pidfd as *mut libc::c_int as u64;
    args.exit_signal = libc::SIGCHLD as u64;
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: clone3 with stack = 0 behaves like fork; args outlives the call and `pidfd` is a
    // valid out-pointer. The single-threaded precondition is the caller's (documented above).
    let ret = check(unsafe {
        libc::syscall(libc::SYS_clone3, &mut args as *mut libc::clone_args, std::mem::size_of::<libc::clone_args>())
    })?;
    if ret == 0 {
        return Ok(Forked::Child);
    }
    // SAFETY: the kernel just gave us this pidfd and nothing else owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    Ok(Forked::Parent { pid: ret as i32, pidfd })
}

/// Fork a sibling: the child's parent is our parent (CLONE_PARENT), so a process that had to
/// unshare a pid namespace can hand its pid-1 child to husk to wait for, and an exec'd process
/// without the trampoline can hand husk the program's process. Returns the child's pid in the
/// caller (and 0 in the child). Plain clone(2), not clone3: a container's seccomp filter may be
/// loaded already, and Docker's refuses clone3 (ENOSYS) to make libc fall back to clone.
pub fn clone_sibling() -> Result<i32, Errno> {
    let flags = (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: clone without CLONE_VM and with a null stack behaves like fork (the child runs on a
    // copy of our memory); the caller is single-threaded, so the copy holds no other thread's
    // locks.
    let ret = check(unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) })?;
    Ok(ret as i32)
}

fn unsafe_zeroed_clone_args() -> libc::clone_args {
    // SAFETY: clone_args is a plain C struct of integers for which all-zero is the documented
    // "no option" value.
    unsafe { std::mem::zeroed() }
}

/// `mount_setattr(2)` with `MOUNT_ATTR_IDMAP`: the mount tree at `fd` (just its top unless
/// `recursive`) shows its files' owners through the id maps of the user namespace `userns`.
pub fn mount_setattr_idmap(fd: BorrowedFd<'_>, recursive: bool, userns: BorrowedFd<'_>) -> Result<(), Errno> {
    let mut flags = libc::AT_EMPTY_PATH as u32;
    if recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    setattr_raw(fd, c"", flags, libc::MOUNT_ATTR_IDMAP, 0, 0, userns.as_raw_fd() as u64)
}

/// `mount_setattr(2)` on a mount fd (or a path relative to it).
pub fn mount_setattr(
    dirfd: BorrowedFd<'_>,
    path: &std::ffi::CStr,
    flags: u32,
    set: u64,
    clear: u64,
    propagation: u64,
) -> Result<(), Errno> {
    setattr_raw(dirfd, path, flags, set, clear, propagation, 0)
}

fn setattr_raw(
    dirfd: BorrowedFd<'_>,
    path: &std::ffi::CStr,
    flags: u32,
    set: u64,
    clear: u64,
    propagation: u64,
    userns_fd: u64,
) -> Result<(), Errno> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr { attr_set: set, attr_clr: clear, propagation, userns_fd };
    // SAFETY: the pointers are valid for the duration of the call and the size matches the
    // struct (MOUNT_ATTR_SIZE_VER0).
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd.as_raw_fd(),
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(|_| ())
}

/// Mark every fd in `first..=last` close-on-exec, so only what we keep survives `execve`.
pub fn cloexec_range(first: u32, last: u32) -> Result<(), Errno> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags; it closes nothing.
    check(unsafe { libc::syscall(libc::SYS_close_range, first, last, libc::CLOSE_RANGE_CLOEXEC) }).map(|_| ())
}

/// Close every fd in `first..=last`.
pub fn close_range(first: u32, last: u32) -> Result<(), Errno> {
    // SAFETY: the caller owns no Rust objects over these fds any more (documented at call sites).
    check(unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) }).map(|_| ())
}

/// `sethostname`/`setdomainname` without going through a libc wrapper that may not exist.
pub fn set_domainname(name: &[u8]) -> Result<(), Errno> {
    // SAFETY: pointer and length describe a live slice.
    check(unsafe { libc::setdomainname(name.as_ptr() as *const libc::c_char, name.len()) } as libc::c_long).map(|_| ())
}

/// `pidfd_send_signal(fd, 0)`: whether the process is still there and ours to signal, sending
/// nothing (`kill ID 0`). rustix's `Signal` cannot be 0.
pub fn pidfd_check(pidfd: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: a null siginfo and no flags; the fd is borrowed for the call.
    check(unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), 0, std::ptr::null::<u8>(), 0) })
        .map(|_| ())
}
