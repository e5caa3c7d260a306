//! The kernel side: seccomp(2) flags, probing which ones this kernel has, and loading a program.

use std::os::fd::{FromRawFd, OwnedFd};

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompFilterFlag as Flag};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// Every flag `linux.seccomp.flags` may name, as features.md spells them.
pub const KNOWN_FLAGS: [&str; 4] = [
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

fn bit(flag: Flag) -> u32 {
    (match flag {
        Flag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
        Flag::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
        Flag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
        Flag::SeccompFilterFlagWaitKillableRecv => libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
    }) as u32
}

fn seccomp(op: libc::c_uint, flags: u32, arg: *const libc::c_void) -> std::result::Result<libc::c_long, Errno> {
    // SAFETY: seccomp(2) reads `arg` only for SET_MODE_FILTER, where callers pass a valid
    // sock_fprog (or NULL to probe, which the kernel rejects with EFAULT before using it).
    let ret = unsafe { libc::syscall(libc::SYS_seccomp, op, flags, arg) };
    if ret < 0 {
        Err(Errno::from_raw_os_error(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL)))
    } else {
        Ok(ret)
    }
}

/// Whether the kernel knows `bit`: it checks the flags before the program pointer, so a NULL
/// program gives EFAULT for a known flag and EINVAL for an unknown one (libseccomp's probe).
fn kernel_has(bit: u32) -> bool {
    seccomp(libc::SECCOMP_SET_MODE_FILTER, bit, std::ptr::null()) == Err(Errno::FAULT)
}

/// The flags this kernel supports, for `features`.
pub fn supported_flags() -> Vec<&'static str> {
    let flags = [
        Flag::SeccompFilterFlagTsync,
        Flag::SeccompFilterFlagSpecAllow,
        Flag::SeccompFilterFlagLog,
        Flag::SeccompFilterFlagWaitKillableRecv,
    ];
    // WAIT_KILLABLE_RECV is only valid together with NEW_LISTENER.
    let listener = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32;
    KNOWN_FLAGS
        .iter()
        .zip(flags)
        .filter(|(_, f)| {
            let b = bit(*f);
            kernel_has(if b == libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV as u32 { b | listener } else { b })
        })
        .map(|(n, _)| *n)
        .collect()
}

/// The seccomp(2) flags for this profile, as runc (libcontainer/specconv, seccomp/patchbpf) sets
/// them: without a `flags` list SPEC_ALLOW where the kernel has it (a filter does not force the
/// speculative store bypass mitigation on the container); TSYNC is known and ignored (one
/// thread, the container's only one, loads the filter); every other flag named must be one the
/// kernel has, and WAIT_KILLABLE_RECV one with a listener (the kernel refuses it otherwise).
pub fn flags(seccomp: &LinuxSeccomp, notify: bool) -> Result<u32> {
    let mut flags = 0;
    let listener = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32;
    let Some(list) = seccomp.flags() else {
        let spec_allow = bit(Flag::SeccompFilterFlagSpecAllow);
        if kernel_has(spec_allow) {
            flags |= spec_allow;
        }
        return Ok(if notify { flags | listener } else { flags });
    };
    for (i, f) in list.iter().enumerate() {
        if *f == Flag::SeccompFilterFlagTsync {
            continue;
        }
        let b = bit(*f);
        let probe = if *f == Flag::SeccompFilterFlagWaitKillableRecv { b | listener } else { b };
        if !kernel_has(probe) {
            return Err(Error::field(
                format!("linux.seccomp.flags[{i}]"),
                format!("{f} is not supported by this kernel"),
            ));
        }
        if *f == Flag::SeccompFilterFlagWaitKillableRecv && !notify {
            return Err(Error::field(
                format!("linux.seccomp.flags[{i}]"),
                format!("{f} needs an SCMP_ACT_NOTIFY rule (the kernel takes it only with a listener)"),
            ));
        }
        flags |= b;
    }
    Ok(if notify { flags | listener } else { flags })
}

/// Install `program`; returns the notify fd when `flags` ask for a listener.
///
/// No allocation: this may run as the last thing before execve in a process that has dropped
/// everything else.
pub fn load(program: &[libc::sock_filter], flags: u32) -> std::result::Result<Option<OwnedFd>, Errno> {
    let len = u16::try_from(program.len()).map_err(|_| Errno::INVAL)?;
    let prog = libc::sock_fprog { len, filter: program.as_ptr() as *mut libc::sock_filter };
    let ret = seccomp(libc::SECCOMP_SET_MODE_FILTER, flags, &prog as *const libc::sock_fprog as *const libc::c_void)?;
    if flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32 != 0 {
        // SAFETY: with NEW_LISTENER the kernel returns a new fd that nothing else owns.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(ret as i32) }));
    }
    Ok(None)
}

const INSN: usize = std::mem::size_of::<libc::sock_filter>();

/// A program the kernel would load (a stored one: the cache's, the state dir's) → instructions.
pub fn program_from_bytes(bytes: &[u8]) -> Option<Vec<libc::sock_filter>> {
    if bytes.len() / INSN > libc::BPF_MAXINSNS as usize {
        return None;
    }
    parse_program(bytes)
}

/// libseccomp's export (`struct sock_filter` array in host byte order) → instructions, of any
/// length (the caller checks it against the kernel's limit).
pub fn parse_program(bytes: &[u8]) -> Option<Vec<libc::sock_filter>> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(INSN) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(INSN)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

pub fn program_to_bytes(program: &[libc::sock_filter]) -> Vec<u8> {
    let mut out = Vec::with_capacity(program.len() * INSN);
    for i in program {
        out.extend_from_slice(&i.code.to_ne_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_ne_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_bytes_round_trip_and_reject_garbage() {
        let p = vec![libc::sock_filter { code: 6, jt: 1, jf: 2, k: 0x7fff_0000 }; 3];
        let b = program_to_bytes(&p);
        assert_eq!(b.len(), 24);
        let q = program_from_bytes(&b).unwrap();
        assert_eq!(q.len(), 3);
        assert_eq!((q[2].code, q[2].jt, q[2].jf, q[2].k), (6, 1, 2, 0x7fff_0000));
        assert!(program_from_bytes(&b[..23]).is_none());
        assert!(program_from_bytes(&[]).is_none());
        assert!(program_from_bytes(&vec![0; 8 * 4097]).is_none());
    }

    #[test]
    fn this_kernel_knows_the_old_flags() {
        let s = supported_flags();
        for f in ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"] {
            assert!(s.contains(&f), "{s:?}");
        }
    }
}
