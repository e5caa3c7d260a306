//! The device allow-list: `linux.resources.devices` plus runc's default rules, written to the v1
//! devices controller or compiled into a cgroup v2 eBPF device program.

use std::io::Write;
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Context, Error, Result};

const FIELD: &str = "linux.resources.devices";

// Access bits as the kernel's BPF device context encodes them (BPF_DEVCG_ACC_*).
pub const ACC_MKNOD: u8 = 1;
pub const ACC_READ: u8 = 2;
pub const ACC_WRITE: u8 = 4;
const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Every device of every type with every access: resets the list (v1 `a`).
    All,
    Char,
    Block,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub kind: Kind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u8,
}

const fn dflt(kind: Kind, major: Option<u32>, minor: Option<u32>, access: u8) -> Rule {
    Rule { allow: true, kind, major, minor, access }
}

/// runc 1.1's specconv.AllowedDevices, appended after the config's own rules.
pub const DEFAULT_RULES: [Rule; 11] = [
    dflt(Kind::Char, None, None, ACC_MKNOD),
    dflt(Kind::Block, None, None, ACC_MKNOD),
    dflt(Kind::Char, Some(1), Some(3), ACC_ALL),    // /dev/null
    dflt(Kind::Char, Some(1), Some(8), ACC_ALL),    // /dev/random
    dflt(Kind::Char, Some(1), Some(7), ACC_ALL),    // /dev/full
    dflt(Kind::Char, Some(5), Some(0), ACC_ALL),    // /dev/tty
    dflt(Kind::Char, Some(1), Some(5), ACC_ALL),    // /dev/zero
    dflt(Kind::Char, Some(1), Some(9), ACC_ALL),    // /dev/urandom
    dflt(Kind::Char, Some(136), None, ACC_ALL),     // /dev/pts/*
    dflt(Kind::Char, Some(5), Some(2), ACC_ALL),    // /dev/ptmx
    dflt(Kind::Char, Some(10), Some(200), ACC_ALL), // /dev/net/tun
];

fn number(field: String, v: Option<i64>) -> Result<Option<u32>> {
    match v {
        None => Ok(None),
        Some(n) if n < 0 => Ok(None),
        // Majors are 12 bits and minors 20 bits; anything above i32 cannot be a BPF immediate.
        Some(n) => {
            i32::try_from(n).map(|n| Some(n as u32)).map_err(|_| Error::field(field, format!("{n} is out of range")))
        }
    }
}

fn access(field: String, s: Option<&str>) -> Result<u8> {
    let s = s.unwrap_or("");
    if s.is_empty() {
        return Ok(ACC_ALL);
    }
    s.chars().try_fold(0, |acc, c| match c {
        'r' => Ok(acc | ACC_READ),
        'w' => Ok(acc | ACC_WRITE),
        'm' => Ok(acc | ACC_MKNOD),
        _ => Err(Error::field(&field, format!("invalid access {s:?}: only r, w and m are allowed"))),
    })
}

/// The config's rules followed by the defaults, in kernel order. A type `a` rule that is not
/// "everything, rwm" becomes a char and a block rule, because v1 would read any `a` as a reset.
pub fn rules(list: Option<&Vec<LinuxDeviceCgroup>>) -> Result<Vec<Rule>> {
    let mut out = Vec::new();
    for (i, d) in list.map(|l| l.as_slice()).unwrap_or_default().iter().enumerate() {
        let f = |name: &str| format!("{FIELD}[{i}].{name}");
        let major = number(f("major"), d.major())?;
        let minor = number(f("minor"), d.minor())?;
        let access = access(f("access"), d.access().as_deref())?;
        let allow = d.allow();
        match d.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A if major.is_none() && minor.is_none() && access == ACC_ALL => {
                out.push(Rule { allow, kind: Kind::All, major, minor, access })
            }
            LinuxDeviceType::A => {
                out.push(Rule { allow, kind: Kind::Char, major, minor, access });
                out.push(Rule { allow, kind: Kind::Block, major, minor, access });
            }
            LinuxDeviceType::C => out.push(Rule { allow, kind: Kind::Char, major, minor, access }),
            LinuxDeviceType::B => out.push(Rule { allow, kind: Kind::Block, major, minor, access }),
            t => return Err(Error::field(f("type"), format!("invalid cgroup device type {:?}", t.as_str()))),
        }
    }
    out.extend_from_slice(&DEFAULT_RULES);
    Ok(out)
}

/// What a fresh cgroup must be told: the default behaviour (allow unless an `a` rule says
/// otherwise) and the rules after the last `a` rule, which clears everything before it.
pub fn effective(rules: &[Rule]) -> (bool, &[Rule]) {
    match rules.iter().rposition(|r| r.kind == Kind::All) {
        Some(i) => (rules[i].allow, &rules[i + 1..]),
        None => (true, rules),
    }
}

/// Nothing to enforce: everything allowed and no exceptions to carve out.
pub fn is_allow_all(rules: &[Rule]) -> bool {
    let (default_allow, rest) = effective(rules);
    default_allow && rest.iter().all(|r| r.allow)
}

fn v1_line(r: &Rule) -> String {
    let num = |n: Option<u32>| n.map_or_else(|| "*".to_owned(), |n| n.to_string());
    let kind = match r.kind {
        Kind::All => return "a".to_owned(),
        Kind::Char => 'c',
        Kind::Block => 'b',
    };
    let mut acc = String::new();
    for (bit, c) in [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')] {
        if r.access & bit != 0 {
            acc.push(c);
        }
    }
    format!("{kind} {}:{} {acc}", num(r.major), num(r.minor))
}

/// Write the list to a fresh v1 devices cgroup, one rule per write(2) on an fd opened once.
pub fn apply_v1(dir: &Path, rules: &[Rule]) -> Result<()> {
    if is_allow_all(rules) {
        return Ok(());
    }
    let (default_allow, rest) = effective(rules);
    let mut allow: Option<std::fs::File> = None;
    let mut deny: Option<std::fs::File> = None;
    let reset = Rule { allow: default_allow, kind: Kind::All, major: None, minor: None, access: ACC_ALL };
    for r in std::iter::once(&reset).chain(rest) {
        let (slot, name) = if r.allow { (&mut allow, "devices.allow") } else { (&mut deny, "devices.deny") };
        let path = dir.join(name);
        let file = match slot {
            Some(f) => f,
            None => slot.insert(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .ctx(|| format!("{FIELD}: open {}", path.display()))?,
            ),
        };
        let line = v1_line(r);
        file.write_all(line.as_bytes()).ctx(|| format!("{FIELD}: write {line:?} to {}", path.display()))?;
    }
    Ok(())
}

/// struct bpf_insn. The register nibbles follow the bitfield layout of little-endian hosts
/// (dst_reg in the low nibble), the only ones husk is built for.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: (src << 4) | (dst & 0x0f), off, imm }
}

const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND64_K: u8 = 0x57;
const RSH64_K: u8 = 0x77;
const MOV64_K: u8 = 0xb7;
const MOV64_X: u8 = 0xbf;
const JNE_K: u8 = 0x55;
const JEQ_K: u8 = 0x15;
const EXIT: u8 = 0x95;
const DEV_BLOCK: i32 = 1; // BPF_DEVCG_DEV_BLOCK
const DEV_CHAR: i32 = 2; // BPF_DEVCG_DEV_CHAR

/// Compile the list into a BPF_PROG_TYPE_CGROUP_DEVICE program. Rules are checked last first:
/// the last rule that matches decides, as with the v1 list's exceptions; no match gives the
/// default behaviour. An allow rule matches when it grants every requested access bit, a deny
/// rule when it names any of them (the v1 kernel's match_exception / match_exception_partial).
pub fn bpf_program(rules: &[Rule]) -> Vec<Insn> {
    let (default_allow, rest) = effective(rules);
    // r1 = struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND64_K, 2, 0, 0, 0xffff), // r2 = device type
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH64_K, 3, 0, 0, 16), // r3 = requested access
        insn(LDX_W, 4, 1, 4, 0),    // r4 = major
        insn(LDX_W, 5, 1, 8, 0),    // r5 = minor
    ];
    for r in rest.iter().rev() {
        // Each jump in the block skips to the block's end, i.e. to the next rule.
        let mut block = Vec::with_capacity(9);
        match r.kind {
            Kind::Char => block.push(insn(JNE_K, 2, 0, 0, DEV_CHAR)),
            Kind::Block => block.push(insn(JNE_K, 2, 0, 0, DEV_BLOCK)),
            Kind::All => {}
        }
        if r.access != ACC_ALL || !r.allow {
            block.push(insn(MOV64_X, 0, 3, 0, 0));
            if r.allow {
                block.push(insn(AND64_K, 0, 0, 0, i32::from(!r.access & ACC_ALL)));
                block.push(insn(JNE_K, 0, 0, 0, 0));
            } else {
                block.push(insn(AND64_K, 0, 0, 0, i32::from(r.access)));
                block.push(insn(JEQ_K, 0, 0, 0, 0));
            }
        }
        if let Some(m) = r.major {
            block.push(insn(JNE_K, 4, 0, 0, m as i32));
        }
        if let Some(m) = r.minor {
            block.push(insn(JNE_K, 5, 0, 0, m as i32));
        }
        let len = block.len() + 2;
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JNE_K || ins.code == JEQ_K {
                ins.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
        p.push(insn(MOV64_K, 0, 0, 0, i32::from(r.allow)));
        p.push(insn(EXIT, 0, 0, 0, 0));
    }
    p.push(insn(MOV64_K, 0, 0, 0, i32::from(default_allow)));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn rules_and_v1_lines() {
        let l = parse(
            r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":4,"minor":-1,"access":"wr"},
            {"allow":false,"type":"a","major":7}]"#,
        );
        let r = rules(Some(&l)).unwrap();
        assert_eq!(r.len(), 4 + DEFAULT_RULES.len());
        let lines: Vec<String> = r.iter().map(v1_line).collect();
        assert_eq!(lines[..6], ["a", "c 4:* rw", "c 7:* rwm", "b 7:* rwm", "c *:* m", "b *:* m"]);
        assert!(lines.contains(&"c 136:* rwm".to_owned()) && lines.contains(&"c 10:200 rwm".to_owned()));
        let (allow, rest) = effective(&r);
        assert!(!allow);
        assert_eq!(rest.len(), r.len() - 1);
        assert!(is_allow_all(&rules(None).unwrap()));
        assert!(!is_allow_all(&r));
    }

    #[test]
    fn bad_rules_name_their_field() {
        let e = rules(Some(&parse(r#"[{"allow":true,"type":"u"}]"#))).unwrap_err();
        assert_eq!(e.to_string(), "linux.resources.devices[0].type: invalid cgroup device type \"u\"");
        let e = rules(Some(&parse(r#"[{"allow":true},{"allow":true,"access":"rx"}]"#))).unwrap_err();
        assert!(e.to_string().starts_with("linux.resources.devices[1].access: invalid access"), "{e}");
        let e = rules(Some(&parse(r#"[{"allow":true,"type":"c","major":9999999999}]"#))).unwrap_err();
        assert!(e.to_string().starts_with("linux.resources.devices[0].major:"), "{e}");
    }

    /// Run the program on one device request, as the kernel would.
    fn run(p: &[Insn], kind: i32, major: u32, minor: u32, acc: u8) -> u64 {
        let mut reg = [0u64; 11];
        let ctx = [((acc as u32) << 16) | kind as u32, major, minor];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            let jump = |cond: bool, pc: &mut usize| {
                if cond {
                    *pc = (*pc as i64 + i.off as i64) as usize
                }
            };
            match i.code {
                LDX_W => reg[dst] = ctx[i.off as usize / 4] as u64,
                AND64_K => reg[dst] &= i.imm as i64 as u64,
                RSH64_K => reg[dst] >>= i.imm,
                MOV64_K => reg[dst] = i.imm as i64 as u64,
                MOV64_X => reg[dst] = reg[src],
                JNE_K => jump(reg[dst] != i.imm as i64 as u64, &mut pc),
                JEQ_K => jump(reg[dst] == i.imm as i64 as u64, &mut pc),
                EXIT => return reg[0],
                c => panic!("unknown opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn bpf_program_semantics() {
        let l = parse(r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"b","major":8,"minor":0,"access":"r"}]"#);
        let p = bpf_program(&rules(Some(&l)).unwrap());
        let (c, b) = (DEV_CHAR, DEV_BLOCK);
        assert_eq!(run(&p, c, 1, 3, ACC_READ | ACC_WRITE), 1); // /dev/null
        assert_eq!(run(&p, c, 136, 4, ACC_WRITE), 1); // a pty
        assert_eq!(run(&p, c, 1, 1, ACC_READ), 0); // /dev/mem
        assert_eq!(run(&p, c, 1, 1, ACC_MKNOD), 1); // mknod of anything
        assert_eq!(run(&p, b, 8, 0, ACC_READ), 1);
        assert_eq!(run(&p, b, 8, 0, ACC_WRITE), 0);
        assert_eq!(run(&p, b, 8, 0, ACC_READ | ACC_WRITE), 0);
        assert_eq!(run(&p, b, 8, 1, ACC_READ), 0);

        // Allow by default, deny one device partially (/dev/kmsg: the defaults do not allow it back).
        let l = parse(r#"[{"allow":true},{"allow":false,"type":"c","major":1,"minor":11,"access":"w"}]"#);
        let p = bpf_program(&rules(Some(&l)).unwrap());
        assert_eq!(run(&p, c, 1, 11, ACC_READ), 1);
        assert_eq!(run(&p, c, 1, 11, ACC_WRITE), 0);
        assert_eq!(run(&p, c, 1, 11, ACC_READ | ACC_WRITE), 0);
        // The defaults come last and win: a config cannot deny /dev/zero (runc alike).
        let l = parse(r#"[{"allow":false,"type":"c","major":1,"minor":5}]"#);
        assert_eq!(run(&bpf_program(&rules(Some(&l)).unwrap()), c, 1, 5, ACC_READ), 1);
        assert_eq!(run(&p, b, 7, 7, ACC_READ), 1);
    }
}
