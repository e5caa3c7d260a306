//! Loading and attaching the cgroup v2 device program: the bpf(2) calls neither rustix nor libc
//! wrap.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::devices::Insn;
use crate::error::{Error, Result};

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The BPF_PROG_LOAD member of union bpf_attr, up to expected_attach_type.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The BPF_PROG_ATTACH member of union bpf_attr.
#[repr(C)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> std::result::Result<libc::c_long, i32> {
    // SAFETY: attr is a live, initialised bpf_attr prefix whose size we pass; the kernel reads
    // (and for PROG_LOAD, through the pointers in it, reads) only within those bounds.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if ret < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL))
    } else {
        Ok(ret)
    }
}

/// Load `prog` and attach it to the cgroup `dir` (an fd of its directory), next to programs
/// the parents attached (BPF_F_ALLOW_MULTI: every attached program must allow an access).
pub fn attach_device_filter(dir: BorrowedFd<'_>, prog: &[Insn], what: &str) -> Result<()> {
    let license = c"Apache";
    let mut name = [0u8; 16];
    name[..4].copy_from_slice(b"husk");
    let mut load = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: u32::try_from(prog.len()).map_err(|_| Error::msg(format!("{what}: device program too long")))?,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    let fd =
        bpf(BPF_PROG_LOAD, &mut load).map_err(|e| Error::os(format!("{what}: load the eBPF device program"), e))?;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut attach = ProgAttachAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: prog_fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    // The attachment holds its own reference to the program: prog_fd may close afterwards.
    bpf(BPF_PROG_ATTACH, &mut attach).map_err(|e| Error::os(format!("{what}: attach the eBPF device program"), e))?;
    Ok(())
}
