//! Binary protection (CVE-2019-5736) without copying the husk binary.
//!
//! husk never re-executes itself: the container's init and an exec'd process are forks of the
//! husk process, so until their final `execve` their `/proc/self/exe` is the host's husk binary.
//! A container program that is `#!/proc/self/exe` (or `exec --process` with `args[0] =
//! /proc/self/exe`) makes that execve run the husk binary inside the container, dumpable and with
//! the container's credentials; a process in the container then holds `/proc/<pid>/exe` and
//! reopens it for writing once it exits. Whatever performs the final execve must therefore not
//! have the host binary as its executable.
//!
//! So the last step goes through this trampoline: a 200-byte static ELF in a sealed,
//! execute-only memfd (made per call, ~20 µs), entered with `execveat`. Its `/proc/self/exe` is
//! the memfd, so the interpreter trick reaches only a sealed in-memory copy of these few bytes
//! (not readable by the container, so not even dumpable). Measured on the 2-core test VM: memfd
//! setup 17–25 µs, the extra execve of the trampoline about 50 µs; a memfd copy of the 3.3 MB
//! husk binary, as runc 1.1 does, costs milliseconds.
//!
//! The trampoline's contract, x86_64 (its source is below, assembled with GNU as):
//! `argv = [report_fd, path, arg0, arg1, ...]`, envp passed through. It marks `report_fd`
//! close-on-exec and calls `execve(path, &argv[2], envp)`. Only if that fails does it send
//! `[REPORT_TAG, errno as i32 little-endian]` on `report_fd` (a socket, MSG_NOSIGNAL) and exit
//! 127 (ENOENT) or 126. Bad arguments (e.g. re-entered through `#!/proc/self/exe`) exit 126.
//!
//! ```text
//! _start: mov rbx, rsp ; mov r14, [rbx] ; cmp r14, 3 ; jb bad      # argc >= 3
//!         mov rsi, [rbx+8] ; xor r12d, r12d ; cmp byte [rsi], 0 ; je bad
//! parse:  movzx eax, byte [rsi] ; test eax, eax ; jz parsed         # report_fd = atoi(argv[0])
//!         sub eax, '0' ; cmp eax, 9 ; ja bad
//!         imul r12d, r12d, 10 ; add r12d, eax ; cmp r12d, 0x100000 ; ja bad
//!         inc rsi ; jmp parse
//! parsed: fcntl(r12, F_SETFD, FD_CLOEXEC) ; js fail                 # syscall 72
//!         execve([rbx+16], rbx+24, rbx+8*r14+16)                    # syscall 59
//! fail:   neg eax ; mov r13d, eax ; sub rsp, 16
//!         mov byte [rsp], 7 ; mov [rsp+1], eax
//!         sendto(r12, rsp, 5, MSG_NOSIGNAL, 0, 0)                   # syscall 44
//!         exit_group(r13d == ENOENT ? 127 : 126)                    # syscall 231
//! bad:    exit_group(126)
//! ```
//!
//! `trampoline_x86_64.S` is that source; a unit test re-assembles it and compares with `CODE`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{Mode, OFlags};

use crate::error::{Context, Result};

/// The first byte of the trampoline's failure report; the errno follows (4 bytes, little endian).
pub const REPORT_TAG: u8 = 7;

#[cfg(target_arch = "x86_64")]
const CODE: [u8; 199] = [
    0x48, 0x89, 0xe3, 0x4c, 0x8b, 0x33, 0x49, 0x83, 0xfe, 0x03, 0x0f, 0x82, 0xab, 0x00, 0x00, 0x00, 0x48, 0x8b, 0x73,
    0x08, 0x45, 0x31, 0xe4, 0x80, 0x3e, 0x00, 0x0f, 0x84, 0x9b, 0x00, 0x00, 0x00, 0x0f, 0xb6, 0x06, 0x85, 0xc0, 0x74,
    0x21, 0x83, 0xe8, 0x30, 0x83, 0xf8, 0x09, 0x0f, 0x87, 0x88, 0x00, 0x00, 0x00, 0x45, 0x6b, 0xe4, 0x0a, 0x41, 0x01,
    0xc4, 0x41, 0x81, 0xfc, 0x00, 0x00, 0x10, 0x00, 0x77, 0x78, 0x48, 0xff, 0xc6, 0xeb, 0xd8, 0xb8, 0x48, 0x00, 0x00,
    0x00, 0x44, 0x89, 0xe7, 0xbe, 0x02, 0x00, 0x00, 0x00, 0xba, 0x01, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x48, 0x85, 0xc0,
    0x78, 0x14, 0x48, 0x8b, 0x7b, 0x10, 0x48, 0x8d, 0x73, 0x18, 0x4a, 0x8d, 0x54, 0xf3, 0x10, 0xb8, 0x3b, 0x00, 0x00,
    0x00, 0x0f, 0x05, 0xf7, 0xd8, 0x41, 0x89, 0xc5, 0x48, 0x83, 0xec, 0x10, 0xc6, 0x04, 0x24, 0x07, 0x89, 0x44, 0x24,
    0x01, 0xb8, 0x2c, 0x00, 0x00, 0x00, 0x44, 0x89, 0xe7, 0x48, 0x89, 0xe6, 0xba, 0x05, 0x00, 0x00, 0x00, 0x41, 0xba,
    0x00, 0x40, 0x00, 0x00, 0x45, 0x31, 0xc0, 0x45, 0x31, 0xc9, 0x0f, 0x05, 0xbf, 0x7e, 0x00, 0x00, 0x00, 0x41, 0x83,
    0xfd, 0x02, 0x75, 0x05, 0xbf, 0x7f, 0x00, 0x00, 0x00, 0xb8, 0xe7, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xbf, 0x7e, 0x00,
    0x00, 0x00, 0xb8, 0xe7, 0x00, 0x00, 0x00, 0x0f, 0x05,
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
        let report = b.fd().as_raw_fd();
        // Everything allocated before the fork: the test process has threads.
        let args: Vec<CString> =
            [report.to_string().as_str(), path, path].iter().map(|s| CString::new(*s).unwrap()).collect();
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
        drop(b);
        let mut buf = [0u8; 16];
        let n = rustix::net::recv(a.fd(), &mut buf, rustix::net::RecvFlags::empty()).unwrap().0;
        let mut status = 0;
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        (libc::WEXITSTATUS(status), buf[..n].to_vec())
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
