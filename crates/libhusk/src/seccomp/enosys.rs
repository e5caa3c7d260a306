//! Syscalls newer than the profile fail with ENOSYS, whatever the profile's default action: the
//! equivalent of runc's "patchbpf" stub (libcontainer/seccomp/patchbpf), prepended to the
//! program libseccomp compiles.
//!
//! Why: a profile lists the syscalls it knows of, and its default action (Docker's: EPERM)
//! hits every syscall it does not list, including those newer than the profile. A C library
//! falls back to an older syscall only on ENOSYS (glibc's clone3 -> clone, statx, faccessat2),
//! so EPERM breaks programs on kernels newer than the profile.
//!
//! What: for each architecture of the filter (the listed ones and the native one), a syscall
//! number above the largest one the profile names for that architecture returns
//! `SECCOMP_RET_ERRNO | ENOSYS`; anything else falls through to libseccomp's program. x86_64
//! and x32 share the audit architecture and are told apart by the x32 bit of the number; on
//! s390 the multiplexing syscall 0 gets ENOSYS too (an unknown number arrives as 0 there).
//! As runc: only when the default action is not a permissive one (ALLOW, LOG, TRACE); and, as
//! runc means to, not when the default already is ENOSYS (then the stub changes nothing).
//!
//! The program is laid out so that every conditional jump is short (at most 3 ahead) and every
//! long one is a `ja`, which takes 32 bits: no profile is too large for the stub.

use std::collections::BTreeMap;

use libseccomp::{ScmpArch, ScmpSyscall};
use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction as Action};

/// The stub's shape: part of the compiled-filter cache key, so that a change to it is never
/// served an older program.
pub const VERSION: u32 = 1;

const RET_ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// <linux/audit.h>: EM_* | __AUDIT_ARCH_64BIT (0x8000_0000) | __AUDIT_ARCH_LE (0x4000_0000).
const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_S390: u32 = 0x0000_0016;
const AUDIT_ARCH_S390X: u32 = 0x8000_0016;

/// The audit architecture the kernel reports in `seccomp_data.arch` for a libseccomp one.
fn audit_arch(arch: ScmpArch) -> Option<u32> {
    Some(match arch {
        ScmpArch::X8664 | ScmpArch::X32 => AUDIT_ARCH_X86_64,
        ScmpArch::X86 => 0x4000_0003,
        ScmpArch::Arm => 0x4000_0028,
        ScmpArch::Aarch64 => 0xC000_00B7,
        ScmpArch::Mips => 0x0000_0008,
        ScmpArch::Mipsel => 0x4000_0008,
        ScmpArch::Mips64 => 0x8000_0008,
        ScmpArch::Mipsel64 => 0xC000_0008,
        ScmpArch::Mips64N32 => 0xA000_0008,
        ScmpArch::Mipsel64N32 => 0xE000_0008,
        ScmpArch::Ppc => 0x0000_0014,
        ScmpArch::Ppc64 => 0x8000_0015,
        ScmpArch::Ppc64Le => 0xC000_0015,
        ScmpArch::S390 => AUDIT_ARCH_S390,
        ScmpArch::S390X => AUDIT_ARCH_S390X,
        ScmpArch::Parisc => 0x0000_000F,
        ScmpArch::Parisc64 => 0x8000_000F,
        ScmpArch::Riscv64 => 0xC000_00F3,
        _ => return None,
    })
}

/// The architecture husk runs on, as libseccomp names it (its filters always include it).
fn native() -> Option<ScmpArch> {
    Some(match std::env::consts::ARCH {
        "x86_64" if cfg!(target_pointer_width = "64") => ScmpArch::X8664,
        "x86_64" => ScmpArch::X32,
        "x86" => ScmpArch::X86,
        "aarch64" => ScmpArch::Aarch64,
        "arm" => ScmpArch::Arm,
        "riscv64" => ScmpArch::Riscv64,
        "s390x" => ScmpArch::S390X,
        "powerpc64" if cfg!(target_endian = "little") => ScmpArch::Ppc64Le,
        "powerpc64" => ScmpArch::Ppc64,
        "powerpc" => ScmpArch::Ppc,
        _ => return None,
    })
}

fn scmp(a: Arch) -> Option<ScmpArch> {
    Some(match a {
        Arch::ScmpArchNative => return native(),
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        _ => return None,
    })
}

/// Whether the profile gets the stub (see the module doc).
fn needed(s: &LinuxSeccomp) -> bool {
    match s.default_action() {
        Action::ScmpActAllow | Action::ScmpActLog | Action::ScmpActTrace => false,
        Action::ScmpActErrno => s.default_errno_ret() != Some(libc::ENOSYS as u32),
        _ => true,
    }
}

/// The largest syscall numbers of one audit architecture: `plain` for everything but x32
/// (x86_64 itself, or the only ABI of other architectures), `x32` for x32's.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Last {
    plain: Option<u32>,
    x32: Option<u32>,
}

/// Per audit architecture, the largest syscall number the profile names (any rule, any
/// action): numbers of syscalls libseccomp does not know, and its negative pseudo-numbers of
/// multiplexed ones, are not counted.
fn last_syscalls(s: &LinuxSeccomp) -> BTreeMap<u32, Last> {
    let mut arches: Vec<ScmpArch> = s.architectures().iter().flatten().filter_map(|a| scmp(*a)).collect();
    arches.extend(native());
    arches.sort_by_key(|a| format!("{a:?}"));
    arches.dedup();
    let mut out: BTreeMap<u32, Last> = BTreeMap::new();
    for arch in arches {
        let Some(audit) = audit_arch(arch) else { continue };
        let largest = s
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|c| c.names().iter())
            .filter_map(|name| ScmpSyscall::from_name_by_arch(name, arch).ok())
            .filter_map(|nr| u32::try_from(nr.as_raw_syscall()).ok())
            .max();
        let Some(largest) = largest else { continue };
        let entry = out.entry(audit).or_default();
        if arch == ScmpArch::X32 {
            entry.x32 = Some(largest);
        } else {
            entry.plain = Some(largest);
        }
    }
    out
}

/// One instruction of the stub, before the long jumps are resolved.
enum Item {
    Insn(u16, u8, u8, u32),
    /// `ja` to the first instruction of libseccomp's program.
    ToFilter,
    /// `ja` to the stub's own instruction at this index.
    To(usize),
}

const LD_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGT: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const JSET: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
/// Offsets in `struct seccomp_data`.
const NR: u32 = 0;
const ARCH: u32 = 4;

/// `nr > max` returns ENOSYS, else on to the filter.
fn above(max: u32) -> [Item; 3] {
    [Item::Insn(JGT, 0, 1, max), Item::Insn(RET, 0, 0, RET_ENOSYS), Item::ToFilter]
}

fn section(audit: u32, last: Last) -> Vec<Item> {
    let mut out = vec![Item::Insn(LD_ABS, 0, 0, NR)];
    if audit == AUDIT_ARCH_S390 || audit == AUDIT_ARCH_S390X {
        out.extend([Item::Insn(JEQ, 0, 1, 0), Item::Insn(RET, 0, 0, RET_ENOSYS)]);
    }
    match (audit == AUDIT_ARCH_X86_64, last.plain, last.x32) {
        (true, Some(x86_64), Some(x32)) => {
            // x32 numbers carry the x32 bit: they go to the second half.
            out.push(Item::Insn(JSET, 3, 0, X32_SYSCALL_BIT));
            out.extend(above(x86_64));
            out.extend(above(x32));
        }
        (true, Some(x86_64), None) => {
            // An x32 call is libseccomp's to judge (its bad-architecture action).
            out.push(Item::Insn(JSET, 2, 0, X32_SYSCALL_BIT));
            out.extend(above(x86_64));
        }
        (true, None, Some(x32)) => {
            out.push(Item::Insn(JSET, 0, 2, X32_SYSCALL_BIT));
            out.extend(above(x32));
        }
        (_, Some(max), _) => out.extend(above(max)),
        (_, None, _) => out.push(Item::ToFilter),
    }
    out
}

/// The stub to prepend to libseccomp's program for this profile; empty when it gets none.
pub fn stub(s: &LinuxSeccomp) -> Vec<libc::sock_filter> {
    if !needed(s) {
        return Vec::new();
    }
    let last = last_syscalls(s);
    if last.is_empty() {
        return Vec::new();
    }
    let sections: Vec<Vec<Item>> = last.iter().map(|(audit, l)| section(*audit, *l)).collect();
    // The dispatch: load the architecture, one `jeq; ja` pair per section, a `ja` past them.
    let mut items = vec![Item::Insn(LD_ABS, 0, 0, ARCH)];
    let mut start = 2 + 2 * sections.len();
    for (audit, s) in last.keys().zip(&sections) {
        items.extend([Item::Insn(JEQ, 0, 1, *audit), Item::To(start)]);
        start += s.len();
    }
    items.push(Item::ToFilter);
    items.extend(sections.into_iter().flatten());
    let filter = items.len();
    items
        .iter()
        .enumerate()
        .map(|(pc, item)| {
            // Every jump is forward: the sections follow the dispatch, the filter follows them.
            let ja = |target: usize| (JA, 0, 0, target.saturating_sub(pc + 1) as u32);
            let (code, jt, jf, k) = match item {
                Item::Insn(code, jt, jf, k) => (*code, *jt, *jf, *k),
                Item::ToFilter => ja(filter),
                Item::To(target) => ja(*target),
            };
            libc::sock_filter { code, jt, jf, k }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A classic BPF interpreter for seccomp programs, enough for libseccomp's output: runs
    /// `prog` on a `seccomp_data` with `nr`, `arch` and `args`, returns the action.
    pub(crate) fn run(prog: &[libc::sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
        let mut data = vec![nr, arch, 0, 0];
        for a in args {
            data.extend([a as u32, (a >> 32) as u32]);
        }
        let (mut acc, mut x, mut mem) = (0u32, 0u32, [0u32; 16]);
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            pc += 1;
            let src = if i.code & 0x08 != 0 { x } else { i.k };
            match i.code {
                0x20 => acc = data[i.k as usize / 4],
                0x00 => acc = i.k,
                0x01 => x = i.k,
                0x02 => mem[i.k as usize] = acc,
                0x03 => mem[i.k as usize] = x,
                0x60 => acc = mem[i.k as usize],
                0x61 => x = mem[i.k as usize],
                0x07 => x = acc,
                0x87 => acc = x,
                0x54 | 0x5c => acc &= src,
                0x44 | 0x4c => acc |= src,
                0x05 => pc += i.k as usize,
                0x15 | 0x1d | 0x25 | 0x2d | 0x35 | 0x3d | 0x45 | 0x4d => {
                    let cond = match i.code & 0xf0 {
                        0x10 => acc == src,
                        0x20 => acc > src,
                        0x30 => acc >= src,
                        _ => acc & src != 0,
                    };
                    pc += if cond { i.jt } else { i.jf } as usize;
                }
                0x06 => return i.k,
                0x16 => return acc,
                other => panic!("opcode {other:#x} at {}", pc - 1),
            }
        }
    }

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    const ALLOW_ALL: libc::sock_filter = libc::sock_filter { code: RET, jt: 0, jf: 0, k: libc::SECCOMP_RET_ALLOW };

    fn with_filter(stub: &[libc::sock_filter]) -> Vec<libc::sock_filter> {
        let mut p = stub.to_vec();
        p.push(ALLOW_ALL);
        p
    }

    fn nr(name: &str, arch: ScmpArch) -> u32 {
        ScmpSyscall::from_name_by_arch(name, arch).unwrap().as_raw_syscall() as u32
    }

    #[test]
    fn only_for_restrictive_defaults() {
        let p = |d: &str| profile(&format!(r#"{{{d},"syscalls":[{{"names":["read"],"action":"SCMP_ACT_ALLOW"}}]}}"#));
        for allow in [r#""defaultAction":"SCMP_ACT_ALLOW""#, r#""defaultAction":"SCMP_ACT_LOG""#] {
            assert!(stub(&p(allow)).is_empty(), "{allow}");
        }
        assert!(stub(&p(r#""defaultAction":"SCMP_ACT_TRACE""#)).is_empty());
        assert!(stub(&p(r#""defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38"#)).is_empty());
        for strict in [
            r#""defaultAction":"SCMP_ACT_ERRNO""#,
            r#""defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1"#,
            r#""defaultAction":"SCMP_ACT_KILL_PROCESS""#,
            r#""defaultAction":"SCMP_ACT_TRAP""#,
        ] {
            assert!(!stub(&p(strict)).is_empty(), "{strict}");
        }
        // Nothing known named: nothing to compare against.
        let none =
            profile(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["nope"],"action":"SCMP_ACT_ALLOW"}]}"#);
        assert!(stub(&none).is_empty());
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn above_the_largest_named_syscall_is_enosys_per_abi() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
                "syscalls":[{"names":["read","write","openat","mkdirat"],"action":"SCMP_ACT_ALLOW"},
                            {"names":["getpid"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
        );
        let prog = with_filter(&stub(&p));
        let allow = libc::SECCOMP_RET_ALLOW;
        let x86_64 = AUDIT_ARCH_X86_64;
        let max = nr("openat", ScmpArch::X8664).max(nr("mkdirat", ScmpArch::X8664));
        assert_eq!(run(&prog, max, x86_64, [0; 6]), allow, "the largest named goes to the filter");
        assert_eq!(run(&prog, 0, x86_64, [0; 6]), allow);
        assert_eq!(run(&prog, max + 1, x86_64, [0; 6]), RET_ENOSYS);
        assert_eq!(run(&prog, 1000, x86_64, [0; 6]), RET_ENOSYS);
        // x32: its own largest number, with the x32 bit.
        let x32_max = [nr("openat", ScmpArch::X32), nr("mkdirat", ScmpArch::X32)].into_iter().max().unwrap();
        assert!(x32_max & X32_SYSCALL_BIT != 0, "{x32_max:#x}");
        assert_eq!(run(&prog, x32_max, x86_64, [0; 6]), allow);
        assert_eq!(run(&prog, x32_max + 1, x86_64, [0; 6]), RET_ENOSYS);
        // i386 numbers are its own.
        let i386 = audit_arch(ScmpArch::X86).unwrap();
        let i386_max = nr("openat", ScmpArch::X86).max(nr("mkdirat", ScmpArch::X86));
        assert_eq!(run(&prog, i386_max, i386, [0; 6]), allow);
        assert_eq!(run(&prog, i386_max + 1, i386, [0; 6]), RET_ENOSYS);
        // An architecture the filter does not have: libseccomp's to judge.
        assert_eq!(run(&prog, 5000, audit_arch(ScmpArch::Aarch64).unwrap(), [0; 6]), allow);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn native_only_leaves_x32_to_the_filter() {
        let p =
            profile(r#"{"defaultAction":"SCMP_ACT_KILL","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#);
        let prog = with_filter(&stub(&p));
        assert_eq!(run(&prog, 1, AUDIT_ARCH_X86_64, [0; 6]), RET_ENOSYS);
        assert_eq!(run(&prog, 0, AUDIT_ARCH_X86_64, [0; 6]), libc::SECCOMP_RET_ALLOW);
        assert_eq!(run(&prog, X32_SYSCALL_BIT | 1, AUDIT_ARCH_X86_64, [0; 6]), libc::SECCOMP_RET_ALLOW);
    }

    #[test]
    fn s390_multiplexer_is_enosys() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_S390X"],
                "syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        let prog = with_filter(&stub(&p));
        assert_eq!(run(&prog, 0, AUDIT_ARCH_S390X, [0; 6]), RET_ENOSYS);
        let write = nr("write", ScmpArch::S390X);
        assert_eq!(run(&prog, write, AUDIT_ARCH_S390X, [0; 6]), libc::SECCOMP_RET_ALLOW);
        assert_eq!(run(&prog, write + 1, AUDIT_ARCH_S390X, [0; 6]), RET_ENOSYS);
    }

    #[test]
    fn every_architecture_of_libseccomp_has_an_audit_arch() {
        for name in super::super::profile::ARCHES {
            let arch: Arch = serde_json::from_value(serde_json::json!(name)).unwrap();
            let s = scmp(arch).unwrap_or_else(|| panic!("{name}"));
            assert!(audit_arch(s).is_some(), "{name}");
        }
    }
}
