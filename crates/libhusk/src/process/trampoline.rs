//! Binary protection (CVE-2019-5736) without copying the husk binary.
//!
//! husk never re-executes itself: the container's init and an exec'd process are forks of the
//! husk process, so until their final `execve` their `/proc/self/exe` is the host's husk binary.
//! Two ways reach it from the container, and the trampoline closes both:
//!
//! - A container program that is `#!/proc/self/exe` (or `exec --process` with `args[0] =
//!   /proc/self/exe`) makes the final execve run the husk binary inside the container; a process
//!   there holds `/proc/<pid>/exe` and reopens it for writing once it exits. So the last execve
//!   is the trampoline's: a few hundred bytes of static ELF in a sealed, execute-only memfd (made
//!   per call, ~20 µs), entered with `execveat`. Its `/proc/self/exe` is the memfd, so the
//!   interpreter trick reaches only a sealed in-memory copy of these bytes (not readable by the
//!   container, so not even dumpable).
//! - A container process with CAP_SYS_PTRACE (in the user namespace husk runs in: a container
//!   without a user namespace, `--cap-add SYS_PTRACE`) may open `/proc/<pid>/exe` of any
//!   process of its pid namespace, non-dumpable or not, and reopen that handle for writing
//!   later. So nothing husk puts into a container's pid namespace may run the husk binary while
//!   anything else there can see it: `exec` prepares its process outside that pid namespace
//!   (having joined it only for its children) and lets the trampoline fork the process that
//!   enters it (`f`/`t`); the init of a created container waits for `start` as the trampoline
//!   (`w`), so a process exec'd into a created container finds only the memfd there.
//!
//! Measured on the 2-core test VM: memfd setup 17–25 µs, the extra execve of the trampoline about
//! 50 µs; a memfd copy of the 3.3 MB husk binary, as runc 1.1 does, costs milliseconds.
//!
//! The trampoline's contract, x86_64 (its source is `trampoline_x86_64.S`, assembled with GNU as):
//! `argv = [FLAGS report_fd [',' listen_fd] [',' bpf_fd ',' seccomp_flags], path, arg0, ...]`,
//! envp passed through. FLAGS are any of `f`, `t`, `w`, `s`. It marks `report_fd` close-on-exec,
//! then
//! - `f`: forks with `CLONE_PARENT` (the child is a child of the trampoline's parent, born in the
//!   pid namespace the caller joined for its children); the parent sends `[PID_TAG, child pid as
//!   i32 little-endian]` on `report_fd` and exits 0, the child goes on;
//! - `t`: as `f`, and the child first becomes a session leader with fd 0 (a pty slave) as its
//!   controlling terminal (setsid, TIOCSCTTY), which only the process that stays may do;
//! - `w` (the init of a created container; `report_fd` is the create handshake's socket): names
//!   itself `husk-init`, sends `[READY, 0]` on `report_fd`, then polls it and `listen_fd`: a
//!   `CREATED` message lets it stop watching `report_fd`, end-of-file (husk died before it recorded
//!   the container) makes it exit 1; a connection on `listen_fd` that sends a byte is `start`: it
//!   closes `listen_fd`, and that connection (close-on-exec) becomes `report_fd`;
//! - `s`: reads the seccomp program (`struct sock_filter`s, at most 32 KiB) from `bpf_fd`, closes
//!   it and loads it with `seccomp(SECCOMP_SET_MODE_FILTER, seccomp_flags)`, so that only the
//!   execve (and a failure report) runs under the container's filter: a profile need not allow
//!   what husk or the trampoline do before (the fork, the wait for `start`); a failure sends
//!   `[SECCOMP_FAILED_TAG, errno]` and exits 126;
//! - then `execve(path, &argv[2], envp)`.
//!
//! Only if the execve (or setsid/TIOCSCTTY) fails does it send `[REPORT_TAG, errno as i32
//! little-endian]` on `report_fd` (a socket, MSG_NOSIGNAL) and exit 127 (ENOENT) or 126; a failed
//! fork sends `[CLONE_FAILED_TAG, errno]` and exits 126. Bad arguments (e.g. re-entered through
//! `#!/proc/self/exe`) exit 126.
//!
//! ```text
//! _start:   argc >= 3, else bad
//!           flags from the letters f (fork), t (fork, tty), w (wait) of argv[0]
//!           report_fd = number(); with w: ',' listen_fd = number(); then NUL, else bad
//!           fcntl(report_fd, F_SETFD, FD_CLOEXEC) ; js fail                  # syscall 72
//!           fork: clone(CLONE_PARENT | SIGCHLD, 0, 0, 0, 0)                    # syscall 56
//!                 < 0: clonefail ; > 0: forked ; tty: setsid ; ioctl(0, TIOCSCTTY, 0)  # 112, 16
//! waiting:  w: prctl(PR_SET_NAME, "husk-init") ; report(READY, 0) ; js quit    # 157, 44
//! poll:        poll([listen_fd, sync], 2, -1) (EINTR: again)                  # syscall 7
//!              sync readable: read: CREATED -> sync = -1 ; else (EOF, error) quit   # syscall 0
//!              listen readable: accept4(CLOEXEC) (EINTR/ECONNABORTED: again)  # syscall 288
//!                 read 1 byte: started ; else close(conn), poll               # 0, 3
//! started:     close(listen_fd) ; report_fd = conn
//! exec:     s: read(bpf_fd, buf, 32768) > 0, close(bpf_fd),                   # 0, 3
//!              seccomp(SET_MODE_FILTER, flags, {n / 8, buf}) ; js seccompfail # syscall 317
//!           execve(argv[1], &argv[2], envp)                                   # syscall 59
//! fail:     report(REPORT_TAG, errno), exit(errno == ENOENT ? 127 : 126)
//! clonefail: report(CLONE_FAILED_TAG, errno), exit(126)
//! seccompfail: report(SECCOMP_FAILED_TAG, errno or EINVAL), exit(126)
//! forked:   report(PID_TAG, pid), exit(0)
//! quit:     exit(1)            bad: exit(126)                                 # syscall 231
//! report:   sendto(report_fd, [tag, value le32], 5, MSG_NOSIGNAL, 0, 0)
//! ```
//!
//! A unit test re-assembles the source and compares it with `CODE`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{Mode, OFlags};

use crate::error::{Context, Result};

/// The first byte of the trampoline's failure report; the errno follows (4 bytes, little endian).
pub const REPORT_TAG: u8 = 7;
/// The first byte of a forking trampoline's report of its child; the pid follows (4 bytes, little
/// endian). The same tag as the sync channel's `Msg::Pid`.
pub const PID_TAG: u8 = 6;
/// The first byte of a forking trampoline's report that it could not fork; the errno follows.
pub const CLONE_FAILED_TAG: u8 = 11;
/// The first byte of the report that the seccomp program handed to the trampoline did not load.
pub const SECCOMP_FAILED_TAG: u8 = 12;
/// What a waiting trampoline (`w`) sends first, and the byte that tells it the container is
/// recorded as created: the create handshake's `Msg::Ready` and `Msg::Created`.
pub const READY_TAG: u8 = 4;
pub const CREATED_TAG: u8 = 10;

#[cfg(target_arch = "x86_64")]
const CODE: [u8; 895] = [
    0x48, 0x89, 0xe3, 0x48, 0x83, 0xec, 0x40, 0x4c, 0x8b, 0x33, 0x49, 0x83, 0xfe, 0x03, 0x0f, 0x82, 0xff, 0x02, 0x00,
    0x00, 0x48, 0x8b, 0x73, 0x08, 0x45, 0x31, 0xff, 0x0f, 0xb6, 0x06, 0x83, 0xf8, 0x66, 0x75, 0x06, 0x41, 0x83, 0xcf,
    0x01, 0xeb, 0x1f, 0x83, 0xf8, 0x74, 0x75, 0x06, 0x41, 0x83, 0xcf, 0x03, 0xeb, 0x14, 0x83, 0xf8, 0x77, 0x75, 0x06,
    0x41, 0x83, 0xcf, 0x04, 0xeb, 0x09, 0x83, 0xf8, 0x73, 0x75, 0x09, 0x41, 0x83, 0xcf, 0x08, 0x48, 0xff, 0xc6, 0xeb,
    0xce, 0xe8, 0xfb, 0x02, 0x00, 0x00, 0x41, 0x89, 0xc4, 0x41, 0xf7, 0xc7, 0x04, 0x00, 0x00, 0x00, 0x74, 0x13, 0x80,
    0x3e, 0x2c, 0x0f, 0x85, 0xac, 0x02, 0x00, 0x00, 0x48, 0xff, 0xc6, 0xe8, 0xde, 0x02, 0x00, 0x00, 0x89, 0xc5, 0x41,
    0xf7, 0xc7, 0x08, 0x00, 0x00, 0x00, 0x74, 0x28, 0x80, 0x3e, 0x2c, 0x0f, 0x85, 0x90, 0x02, 0x00, 0x00, 0x48, 0xff,
    0xc6, 0xe8, 0xc2, 0x02, 0x00, 0x00, 0x89, 0x43, 0xf8, 0x80, 0x3e, 0x2c, 0x0f, 0x85, 0x7c, 0x02, 0x00, 0x00, 0x48,
    0xff, 0xc6, 0xe8, 0xae, 0x02, 0x00, 0x00, 0x89, 0x43, 0xf0, 0x80, 0x3e, 0x00, 0x0f, 0x85, 0x68, 0x02, 0x00, 0x00,
    0xb8, 0x48, 0x00, 0x00, 0x00, 0x44, 0x89, 0xe7, 0xbe, 0x02, 0x00, 0x00, 0x00, 0xba, 0x01, 0x00, 0x00, 0x00, 0x0f,
    0x05, 0x48, 0x85, 0xc0, 0x0f, 0x88, 0xeb, 0x01, 0x00, 0x00, 0x41, 0xf7, 0xc7, 0x01, 0x00, 0x00, 0x00, 0x74, 0x57,
    0xb8, 0x38, 0x00, 0x00, 0x00, 0xbf, 0x11, 0x80, 0x00, 0x00, 0x31, 0xf6, 0x31, 0xd2, 0x45, 0x31, 0xd2, 0x45, 0x31,
    0xc0, 0x0f, 0x05, 0x48, 0x85, 0xc0, 0x0f, 0x88, 0xdb, 0x01, 0x00, 0x00, 0x0f, 0x85, 0xf8, 0x01, 0x00, 0x00, 0x41,
    0xf7, 0xc7, 0x02, 0x00, 0x00, 0x00, 0x74, 0x29, 0xb8, 0x70, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x48, 0x85, 0xc0, 0x0f,
    0x88, 0xa4, 0x01, 0x00, 0x00, 0xb8, 0x10, 0x00, 0x00, 0x00, 0x31, 0xff, 0xbe, 0x0e, 0x54, 0x00, 0x00, 0x31, 0xd2,
    0x0f, 0x05, 0x48, 0x85, 0xc0, 0x0f, 0x88, 0x8b, 0x01, 0x00, 0x00, 0x41, 0xf7, 0xc7, 0x04, 0x00, 0x00, 0x00, 0x0f,
    0x84, 0x12, 0x01, 0x00, 0x00, 0xb8, 0x9d, 0x00, 0x00, 0x00, 0xbf, 0x0f, 0x00, 0x00, 0x00, 0x48, 0x8d, 0x35, 0x2f,
    0x02, 0x00, 0x00, 0x0f, 0x05, 0xb9, 0x04, 0x00, 0x00, 0x00, 0x31, 0xc0, 0xe8, 0xcb, 0x01, 0x00, 0x00, 0x48, 0x85,
    0xc0, 0x0f, 0x88, 0xaa, 0x01, 0x00, 0x00, 0x45, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x20, 0x89, 0x2c, 0x24, 0xc7, 0x44,
    0x24, 0x04, 0x01, 0x00, 0x00, 0x00, 0x44, 0x89, 0x6c, 0x24, 0x08, 0xc7, 0x44, 0x24, 0x0c, 0x01, 0x00, 0x00, 0x00,
    0xb8, 0x07, 0x00, 0x00, 0x00, 0x48, 0x89, 0xe7, 0xbe, 0x02, 0x00, 0x00, 0x00, 0xba, 0xff, 0xff, 0xff, 0xff, 0x0f,
    0x05, 0x48, 0x83, 0xf8, 0xfc, 0x74, 0xce, 0x48, 0x85, 0xc0, 0x0f, 0x88, 0x68, 0x01, 0x00, 0x00, 0x66, 0xf7, 0x44,
    0x24, 0x0e, 0x19, 0x00, 0x74, 0x31, 0x31, 0xc0, 0x44, 0x89, 0xef, 0x48, 0x8d, 0x74, 0x24, 0x10, 0xba, 0x10, 0x00,
    0x00, 0x00, 0x0f, 0x05, 0x48, 0x83, 0xf8, 0xfc, 0x74, 0xa5, 0x48, 0x85, 0xc0, 0x0f, 0x8e, 0x3f, 0x01, 0x00, 0x00,
    0x80, 0x7c, 0x24, 0x10, 0x0a, 0x0f, 0x85, 0x34, 0x01, 0x00, 0x00, 0x41, 0xbd, 0xff, 0xff, 0xff, 0xff, 0x66, 0xf7,
    0x44, 0x24, 0x06, 0x19, 0x00, 0x74, 0x82, 0xb8, 0x20, 0x01, 0x00, 0x00, 0x89, 0xef, 0x31, 0xf6, 0x31, 0xd2, 0x41,
    0xba, 0x00, 0x00, 0x08, 0x00, 0x0f, 0x05, 0x48, 0x83, 0xf8, 0xfc, 0x0f, 0x84, 0x65, 0xff, 0xff, 0xff, 0x48, 0x83,
    0xf8, 0x99, 0x0f, 0x84, 0x5b, 0xff, 0xff, 0xff, 0x48, 0x85, 0xc0, 0x0f, 0x88, 0xf5, 0x00, 0x00, 0x00, 0x41, 0x89,
    0xc0, 0x31, 0xc0, 0x44, 0x89, 0xc7, 0x48, 0x8d, 0x74, 0x24, 0x10, 0xba, 0x01, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x48,
    0x83, 0xf8, 0x01, 0x74, 0x0f, 0xb8, 0x03, 0x00, 0x00, 0x00, 0x44, 0x89, 0xc7, 0x0f, 0x05, 0xe9, 0x29, 0xff, 0xff,
    0xff, 0xb8, 0x03, 0x00, 0x00, 0x00, 0x89, 0xef, 0x0f, 0x05, 0x45, 0x89, 0xc4, 0x41, 0xf7, 0xc7, 0x08, 0x00, 0x00,
    0x00, 0x74, 0x4f, 0x48, 0x81, 0xec, 0x10, 0x80, 0x00, 0x00, 0x31, 0xc0, 0x8b, 0x7b, 0xf8, 0x48, 0x8d, 0x74, 0x24,
    0x10, 0xba, 0x00, 0x80, 0x00, 0x00, 0x0f, 0x05, 0x48, 0x85, 0xc0, 0x7e, 0x6c, 0xc1, 0xe8, 0x03, 0x66, 0x89, 0x04,
    0x24, 0x48, 0x8d, 0x44, 0x24, 0x10, 0x48, 0x89, 0x44, 0x24, 0x08, 0xb8, 0x03, 0x00, 0x00, 0x00, 0x8b, 0x7b, 0xf8,
    0x0f, 0x05, 0xb8, 0x3d, 0x01, 0x00, 0x00, 0xbf, 0x01, 0x00, 0x00, 0x00, 0x8b, 0x73, 0xf0, 0x48, 0x89, 0xe2, 0x0f,
    0x05, 0x48, 0x85, 0xc0, 0x78, 0x3a, 0x48, 0x8b, 0x7b, 0x10, 0x48, 0x8d, 0x73, 0x18, 0x4a, 0x8d, 0x54, 0xf3, 0x10,
    0xb8, 0x3b, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xf7, 0xd8, 0xbf, 0x7e, 0x00, 0x00, 0x00, 0x83, 0xf8, 0x02, 0x75, 0x05,
    0xbf, 0x7f, 0x00, 0x00, 0x00, 0xb9, 0x07, 0x00, 0x00, 0x00, 0xeb, 0x2a, 0xf7, 0xd8, 0xbf, 0x7e, 0x00, 0x00, 0x00,
    0xb9, 0x0b, 0x00, 0x00, 0x00, 0xeb, 0x1c, 0xf7, 0xd8, 0x75, 0x05, 0xb8, 0x16, 0x00, 0x00, 0x00, 0xbf, 0x7e, 0x00,
    0x00, 0x00, 0xb9, 0x0c, 0x00, 0x00, 0x00, 0xeb, 0x07, 0x31, 0xff, 0xb9, 0x06, 0x00, 0x00, 0x00, 0x41, 0x89, 0xfd,
    0xe8, 0x22, 0x00, 0x00, 0x00, 0x44, 0x89, 0xef, 0xb8, 0xe7, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xbf, 0x01, 0x00, 0x00,
    0x00, 0xb8, 0xe7, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xbf, 0x7e, 0x00, 0x00, 0x00, 0xb8, 0xe7, 0x00, 0x00, 0x00, 0x0f,
    0x05, 0x48, 0x83, 0xec, 0x18, 0x88, 0x0c, 0x24, 0x89, 0x44, 0x24, 0x01, 0xb8, 0x2c, 0x00, 0x00, 0x00, 0x44, 0x89,
    0xe7, 0x48, 0x89, 0xe6, 0xba, 0x05, 0x00, 0x00, 0x00, 0x41, 0xba, 0x00, 0x40, 0x00, 0x00, 0x45, 0x31, 0xc0, 0x45,
    0x31, 0xc9, 0x0f, 0x05, 0x48, 0x83, 0xc4, 0x18, 0xc3, 0x31, 0xc0, 0x0f, 0xb6, 0x0e, 0x83, 0xe9, 0x30, 0x83, 0xf9,
    0x09, 0x77, 0xb9, 0x6b, 0xc0, 0x0a, 0x01, 0xc8, 0x3d, 0x00, 0x00, 0x10, 0x00, 0x77, 0xad, 0x48, 0xff, 0xc6, 0x0f,
    0xb6, 0x0e, 0x83, 0xe9, 0x30, 0x83, 0xf9, 0x09, 0x76, 0xe6, 0xc3, 0x68, 0x75, 0x73, 0x6b, 0x2d, 0x69, 0x6e, 0x69,
    0x74, 0x00,
];

/// A static ELF64 executable: header, a PT_LOAD of the whole file (read + execute) and a
/// PT_GNU_STACK (non-executable stack, so no READ_IMPLIES_EXEC reaches the container program),
/// then the code. ET_DYN without an interpreter: the kernel loads it at a random base.
#[cfg(target_arch = "x86_64")]
fn image() -> Vec<u8> {
    const EHDR: usize = 64;
    const PHDR: usize = 56;
    let code_at = (EHDR + 2 * PHDR) as u64;
    let total = code_at + CODE.len() as u64;
    let mut elf = Vec::with_capacity(total as usize);
    elf.extend_from_slice(b"\x7fELF");
    elf.extend_from_slice(&[2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // 64-bit, little endian, v1, SysV
    elf.extend_from_slice(&3u16.to_le_bytes()); // ET_DYN
    elf.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    elf.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    elf.extend_from_slice(&code_at.to_le_bytes()); // e_entry
    elf.extend_from_slice(&(EHDR as u64).to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    for half in [EHDR as u16, PHDR as u16, 2, 0, 0, 0] {
        elf.extend_from_slice(&half.to_le_bytes()); // ehsize, phentsize, phnum, shentsize, shnum, shstrndx
    }
    let phdr = |elf: &mut Vec<u8>, kind: u32, flags: u32, size: u64, align: u64| {
        elf.extend_from_slice(&kind.to_le_bytes());
        elf.extend_from_slice(&flags.to_le_bytes());
        for v in [0, 0, 0, size, size, align] {
            elf.extend_from_slice(&v.to_le_bytes()); // offset, vaddr, paddr, filesz, memsz, align
        }
    };
    phdr(&mut elf, 1, 5, total, 0x1000); // PT_LOAD, R+X
    phdr(&mut elf, 0x6474_e551, 6, 0, 16); // PT_GNU_STACK, R+W
    elf.extend_from_slice(&CODE);
    elf
}

#[cfg(not(target_arch = "x86_64"))]
fn image() -> Vec<u8> {
    Vec::new()
}

/// The sealed trampoline, opened read-only for `execveat`. Made by husk before it clones the
/// init or an exec'd process, which inherit it.
pub struct Trampoline(OwnedFd);

impl Trampoline {
    /// `None` where husk has no trampoline for the architecture or the kernel refuses executable
    /// memfds (`vm.memfd_noexec = 2`, a seccomp or LSM policy): the final execve is then direct,
    /// and unprotected. Running out of fds or memory is an error instead: a transient shortage
    /// must not quietly cost the protection (and the clone that follows would fail anyway).
    pub fn new() -> Result<Option<Trampoline>> {
        let image = image();
        if image.is_empty() {
            tracing::debug!("no exec trampoline for this architecture: the husk binary is not protected");
            return Ok(None);
        }
        match make(&image) {
            Ok(t) => Ok(Some(t)),
            Err(e) if matches!(e.errno(), Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM)) => {
                Err(e.context("exec trampoline"))
            }
            Err(e) => {
                tracing::warn!("exec trampoline unavailable ({e}): the husk binary is not protected");
                Ok(None)
            }
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

fn make(image: &[u8]) -> Result<Trampoline> {
    use rustix::fs::{MemfdFlags, SealFlags};
    let base = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    // MFD_EXEC says we mean it where vm.memfd_noexec = 1; kernels before 6.3 reject the flag.
    let fd = match rustix::fs::memfd_create("husk-exec", base | MemfdFlags::EXEC) {
        Err(rustix::io::Errno::INVAL) => rustix::fs::memfd_create("husk-exec", base),
        other => other,
    }
    .ctx(|| "memfd_create")?;
    let mut rest = image;
    while !rest.is_empty() {
        let n = rustix::io::write(&fd, rest).ctx(|| "write trampoline")?;
        rest = &rest[n..];
    }
    // execve refuses a file that is open for writing on older kernels (ETXTBSY): keep only a
    // read-only handle. Opened before the chmod below, which leaves no read bit: an unprivileged
    // husk (rootless) could not open it afterwards, root only because it bypasses the mode.
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    let ro =
        rustix::fs::open(path.as_str(), OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ctx(|| "reopen trampoline")?;
    // Execute-only: a container process cannot read it, so the kernel makes the trampoline's
    // process non-dumpable and its /proc/<pid>/exe unreachable from the container.
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o111)).ctx(|| "chmod trampoline")?;
    let seals = SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL;
    rustix::fs::fcntl_add_seals(&fd, seals).ctx(|| "seal trampoline")?;
    Ok(Trampoline(ro))
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::fd::AsRawFd;

    /// Run `path` through the trampoline in a forked child: its exit status and what it reported
    /// on the socket (empty when the execve succeeded and closed it).
    fn through(t: &Trampoline, path: &str) -> (i32, Vec<u8>) {
        let (a, b) = crate::sync::pair().unwrap();
        let (pid, _) = start(t, "", path, &b);
        drop(b);
        let mut buf = [0u8; 16];
        let n = rustix::net::recv(a.fd(), &mut buf, rustix::net::RecvFlags::empty()).unwrap().0;
        (wait(pid), buf[..n].to_vec())
    }

    fn wait(pid: i32) -> i32 {
        let mut status = 0;
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        libc::WEXITSTATUS(status)
    }

    /// Fork a child that runs `path` through the trampoline in `mode`, reporting on `b`.
    fn start(t: &Trampoline, mode: &str, path: &str, b: &crate::sync::Channel) -> (i32, i32) {
        let report = b.fd().as_raw_fd();
        // Everything allocated before the fork: the test process has threads.
        let first = format!("{mode}{report}");
        let args: Vec<CString> = [first.as_str(), path, path].iter().map(|s| CString::new(*s).unwrap()).collect();
        let argv: Vec<*const libc::c_char> = args.iter().map(|c| c.as_ptr()).chain([std::ptr::null()]).collect();
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        let fd = t.fd().as_raw_fd();
        // SAFETY: the child only makes raw syscalls (fcntl, execveat, _exit) before it execs.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            unsafe {
                libc::fcntl(report, libc::F_SETFD, 0);
                libc::syscall(libc::SYS_execveat, fd, c"".as_ptr(), argv.as_ptr(), envp.as_ptr(), libc::AT_EMPTY_PATH);
                libc::_exit(99);
            }
        }
        (pid, report)
    }

    /// Mode `f`: the trampoline reports the pid of the child it forked, which is ours
    /// (CLONE_PARENT) and runs the program; a failed execve comes from that child.
    #[test]
    fn forking_trampoline_reports_its_child_which_is_ours() {
        let t = Trampoline::new().unwrap().expect("memfd trampoline");
        for (path, code, failure) in [("/bin/true", 0, None), ("/no/such/program", 127, Some(libc::ENOENT))] {
            let (a, b) = crate::sync::pair().unwrap();
            let (forker, _) = start(&t, "f", path, &b);
            drop(b);
            let mut child = None;
            let mut failed = None;
            loop {
                match a.recv().unwrap() {
                    None => break,
                    Some(crate::sync::Msg::Pid(p)) => child = Some(p),
                    Some(crate::sync::Msg::ExecFailed(e)) => failed = Some(e),
                    Some(other) => panic!("unexpected {other:?}"),
                }
            }
            assert_eq!(wait(forker), 0, "the forking trampoline exits 0 once it reported");
            let child = child.expect("the child's pid was reported");
            assert_ne!(child, forker);
            assert_eq!(wait(child), code, "{path}: the program's process is our child");
            assert_eq!(failed, failure, "{path}");
        }
    }

    #[test]
    fn trampoline_execs_or_reports_the_errno() {
        let t = Trampoline::new().unwrap().expect("memfd trampoline");
        assert_eq!(through(&t, "/bin/true"), (0, vec![]), "exec'd, report socket closed on exec");
        let (code, report) = through(&t, "/no/such/program");
        assert_eq!((code, crate::process::exec::decode_report(&report)), (127, Some(libc::ENOENT)));
        let (code, report) = through(&t, "/etc/passwd");
        assert_eq!((code, crate::process::exec::decode_report(&report)), (126, Some(libc::EACCES)));
    }

    #[test]
    fn code_matches_its_assembly_source() {
        let dir = std::env::temp_dir().join(format!("husk-trampoline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src/process/trampoline_x86_64.S");
        let (obj, bin) = (dir.join("t.o"), dir.join("t.bin"));
        let assembled = std::process::Command::new("as").arg("--64").arg("-o").arg(&obj).arg(src).status();
        if !assembled.is_ok_and(|s| s.success()) {
            eprintln!("skipped: no GNU as to check the trampoline's bytes against");
            return;
        }
        let st = std::process::Command::new("objcopy")
            .args(["-O", "binary", "-j", ".text"])
            .arg(&obj)
            .arg(&bin)
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(std::fs::read(&bin).unwrap(), CODE.to_vec());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
