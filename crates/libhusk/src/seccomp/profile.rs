//! An OCI seccomp profile → libseccomp rules → an exported BPF program.
//!
//! Errors name the field at fault (`linux.seccomp.syscalls[3].args[0].index`). Syscall names
//! that neither libseccomp nor the kernel know are skipped, as runc skips them, so one profile
//! serves old and new systems.

use std::io::{Read, Seek};

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction as Action, LinuxSeccompOperator as Op, LinuxSyscall};

use crate::error::{Error, Result};

pub const ACTIONS: [&str; 9] = [
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];

pub const OPERATORS: [&str; 7] =
    ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"];

/// The architectures libseccomp 2.5 knows (2.6 adds LoongArch, M68K and SuperH).
pub const ARCHES: [&str; 19] = [
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
];

/// The most rules a profile may ask libseccomp for: each syscall name counts once per set of
/// alternatives (a rule listing one argument several times is one rule per condition, see
/// `add_rules`). Why 4096: every distinct rule costs the program at least one BPF instruction
/// and the kernel loads at most 4096 (BPF_MAXINSNS), so no loadable profile needs more; Docker's
/// default asks for about 400. It also bounds what libseccomp is made to do before anything
/// checks the program's size: its compile time grows faster than the rule count (10,000
/// argument rules: seconds of CPU).
pub const MAX_RULES: usize = libc::BPF_MAXINSNS as usize;

/// What the checks learnt about a valid profile.
pub struct Checked {
    pub notify: bool,
}

const EPERM: u32 = libc::EPERM as u32;

fn takes_errno(a: Action) -> bool {
    matches!(a, Action::ScmpActErrno | Action::ScmpActTrace)
}

/// Everything that does not need libseccomp: done on every create, cached filter or not.
pub fn check(s: &LinuxSeccomp) -> Result<Checked> {
    if s.default_action() == Action::ScmpActNotify {
        return Err(Error::field("linux.seccomp.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action"));
    }
    if s.default_errno_ret().is_some() && !takes_errno(s.default_action()) {
        return Err(Error::field(
            "linux.seccomp.defaultErrnoRet",
            format!("{} does not take an errno", s.default_action()),
        ));
    }
    let mut notify = false;
    let mut rules = 0usize;
    for (i, call) in s.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        rules = rules.saturating_add(call.names().len().saturating_mul(alternatives(call)));
        if rules > MAX_RULES {
            return Err(Error::field(
                &field,
                format!(
                    "the profile asks for more than {MAX_RULES} rules (syscall names, times the conditions of \
                     an argument listed more than once): more than a loadable filter can hold"
                ),
            ));
        }
        if call.names().is_empty() {
            return Err(Error::field(format!("{field}.names"), "must name at least one syscall"));
        }
        if call.errno_ret().is_some() && !takes_errno(call.action()) {
            return Err(Error::field(format!("{field}.errnoRet"), format!("{} does not take an errno", call.action())));
        }
        for (j, a) in call.args().iter().flatten().enumerate() {
            if a.index() > 5 {
                return Err(Error::field(
                    format!("{field}.args[{j}].index"),
                    format!("{} is not an argument index (0 to 5)", a.index()),
                ));
            }
        }
        if call.action() == Action::ScmpActNotify {
            notify = true;
            // husk hands the notify fd over with sendmsg: notifying it would wait for an agent
            // that can never get the fd (runc refuses `write` for the same reason).
            if call.names().iter().any(|n| n == "sendmsg") {
                return Err(Error::field(
                    format!("{field}.action"),
                    "SCMP_ACT_NOTIFY cannot be used for sendmsg (husk passes the notify fd with it)",
                ));
            }
        }
    }
    if s.listener_metadata().as_ref().is_some_and(|m| !m.is_empty()) && s.listener_path().is_none() {
        return Err(Error::field("linux.seccomp.listenerMetadata", "set without listenerPath"));
    }
    if notify && s.listener_path().as_ref().is_none_or(|p| p.as_os_str().is_empty()) {
        return Err(Error::field("linux.seccomp.listenerPath", "SCMP_ACT_NOTIFY needs a listener socket"));
    }
    if let Some(p) = s.listener_path().as_ref().filter(|_| notify) {
        if !p.is_absolute() {
            return Err(Error::field("linux.seccomp.listenerPath", format!("{} is not an absolute path", p.display())));
        }
    }
    for (i, a) in s.architectures().iter().flatten().enumerate() {
        if scmp_arch(*a).is_none() {
            return Err(Error::field(
                format!("linux.seccomp.architectures[{i}]"),
                format!("{a} is not supported by libseccomp {}", libseccomp_version()),
            ));
        }
    }
    Ok(Checked { notify })
}

pub fn libseccomp_version() -> String {
    match libseccomp::ScmpVersion::current() {
        Ok(v) => format!("{}.{}.{}", v.major, v.minor, v.micro),
        Err(_) => "unknown".to_string(),
    }
}

fn scmp_arch(a: Arch) -> Option<ScmpArch> {
    Some(match a {
        Arch::ScmpArchNative => ScmpArch::Native,
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
        // Known to the spec, not to libseccomp 2.5.
        Arch::ScmpArchLoongarch64 | Arch::ScmpArchM68k | Arch::ScmpArchSh | Arch::ScmpArchSheb => return None,
    })
}

fn action(a: Action, errno: Option<u32>) -> ScmpAction {
    let errno = errno.unwrap_or(EPERM);
    match a {
        Action::ScmpActKill | Action::ScmpActKillThread => ScmpAction::KillThread,
        Action::ScmpActKillProcess => ScmpAction::KillProcess,
        Action::ScmpActTrap => ScmpAction::Trap,
        Action::ScmpActErrno => ScmpAction::Errno(errno as i32),
        Action::ScmpActTrace => ScmpAction::Trace(errno as u16),
        Action::ScmpActNotify => ScmpAction::Notify,
        Action::ScmpActLog => ScmpAction::Log,
        Action::ScmpActAllow => ScmpAction::Allow,
    }
}

fn compare(op: Op, value: u64, value_two: Option<u64>) -> (ScmpCompareOp, u64) {
    match op {
        Op::ScmpCmpNe => (ScmpCompareOp::NotEqual, value),
        Op::ScmpCmpLt => (ScmpCompareOp::Less, value),
        Op::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, value),
        Op::ScmpCmpEq => (ScmpCompareOp::Equal, value),
        Op::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, value),
        Op::ScmpCmpGt => (ScmpCompareOp::Greater, value),
        // `value` is the mask, `valueTwo` what the masked argument must equal (runc's reading).
        Op::ScmpCmpMaskedEq => (ScmpCompareOp::MaskedEqual(value), value_two.unwrap_or(0)),
    }
}

fn lib_err(field: &str, e: libseccomp::error::SeccompError) -> Error {
    Error::field(field, format!("libseccomp: {e}"))
}

/// How many libseccomp rules one entry of `syscalls` makes per name: one, or one per condition
/// when an argument is listed more than once (see `add_rules`).
fn alternatives(call: &LinuxSyscall) -> usize {
    let mut seen = [0usize; 6];
    for a in call.args().iter().flatten() {
        if let Some(n) = seen.get_mut(a.index()) {
            *n += 1;
        }
    }
    if seen.iter().any(|&n| n > 1) {
        call.args().as_ref().map_or(1, |a| a.len())
    } else {
        1
    }
}

/// Build the filter with libseccomp and export its BPF program. `check` must have passed.
pub fn compile(s: &LinuxSeccomp) -> Result<Vec<libc::sock_filter>> {
    let default = action(s.default_action(), s.default_errno_ret());
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| lib_err("linux.seccomp.defaultAction", e))?;
    // husk loads the program itself and sets no_new_privs only when the config asks.
    ctx.set_ctl_nnp(false).map_err(|e| lib_err("linux.seccomp", e))?;
    for (i, a) in s.architectures().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.architectures[{i}]");
        let arch = scmp_arch(*a).ok_or_else(|| Error::field(&field, "unsupported"))?;
        // The native architecture is in a new context already: adding it again says EEXIST.
        match ctx.add_arch(arch) {
            Ok(_) => {}
            Err(e) if e.errno() == Some(libseccomp::error::SeccompErrno::EEXIST) => {}
            Err(e) => return Err(lib_err(&field, e)),
        }
    }
    for (i, call) in s.syscalls().iter().flatten().enumerate() {
        add_rules(&mut ctx, s, call).map_err(|e| e.context(format!("linux.seccomp.syscalls[{i}]")))?;
    }
    export(&ctx)
}

fn add_rules(ctx: &mut ScmpFilterContext, s: &LinuxSeccomp, call: &LinuxSyscall) -> Result<()> {
    let act = action(call.action(), call.errno_ret());
    // libseccomp refuses a rule whose action is the default one; it would change nothing.
    if act == action(s.default_action(), s.default_errno_ret()) {
        return Ok(());
    }
    let conds: Vec<ScmpArgCompare> = call
        .args()
        .iter()
        .flatten()
        .map(|a| {
            let (op, datum) = compare(a.op(), a.value(), a.value_two());
            ScmpArgCompare::new(a.index() as u32, op, datum)
        })
        .collect();
    // One rule ANDs its conditions, and libseccomp allows one condition per argument in a rule.
    // Profiles (Docker's among them) list several values for one argument meaning "any of them":
    // then each condition becomes a rule of its own, as runc does.
    let rules: Vec<&[ScmpArgCompare]> =
        if alternatives(call) > 1 { conds.iter().map(std::slice::from_ref).collect() } else { vec![&conds[..]] };
    for name in call.names() {
        let Ok(nr) = ScmpSyscall::from_name(name) else {
            tracing::debug!("seccomp: skipping unknown syscall {name}");
            continue;
        };
        for rule in &rules {
            ctx.add_rule_conditional(act, nr, rule).map_err(|e| Error::msg(format!("{name}: libseccomp: {e}")))?;
        }
    }
    Ok(())
}

/// seccomp_export_bpf writes the whole program to an fd in one write(2) before returning: into
/// a pipe, a program larger than the pipe's buffer would block that write forever, since this
/// same thread reads the pipe only afterwards. A memfd takes any size; `check` bounds the rules
/// and so the size, and `prepare` refuses a program the kernel would not load.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>> {
    let fd = rustix::fs::memfd_create("husk-seccomp", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| Error::from(e).context("linux.seccomp: memfd_create"))?;
    ctx.export_bpf(&fd).map_err(|e| lib_err("linux.seccomp: export the filter", e))?;
    let mut file = std::fs::File::from(fd);
    let mut out = Vec::new();
    file.rewind()
        .and_then(|()| file.read_to_end(&mut out))
        .map_err(|e| Error::from(e).context("linux.seccomp: read the exported filter"))?;
    super::kernel::parse_program(&out)
        .ok_or_else(|| Error::msg("linux.seccomp: libseccomp produced a malformed program"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    fn err(json: &str) -> String {
        match check(&profile(json)) {
            Ok(_) => compile(&profile(json)).err().map(|e| e.to_string()).unwrap_or_default(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert!(err(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#).starts_with("linux.seccomp.defaultAction:"));
        assert!(err(r#"{"defaultAction":"SCMP_ACT_ALLOW","defaultErrnoRet":1}"#)
            .starts_with("linux.seccomp.defaultErrnoRet:"));
        let e = err(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getcwd"],"action":"SCMP_ACT_ERRNO"},{"names":[],"action":"SCMP_ACT_ERRNO"}]}"#,
        );
        assert_eq!(e, "linux.seccomp.syscalls[1].names: must name at least one syscall");
        let e = err(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getcwd"],"action":"SCMP_ACT_KILL","errnoRet":3}]}"#,
        );
        assert!(e.starts_with("linux.seccomp.syscalls[0].errnoRet:"), "{e}");
        let e = err(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["kill"],"action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        assert!(e.starts_with("linux.seccomp.syscalls[0].args[0].index:"), "{e}");
        let e =
            err(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#);
        assert!(e.starts_with("linux.seccomp.listenerPath:"), "{e}");
        let e = err(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/x","syscalls":[{"names":["sendmsg"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        );
        assert!(e.starts_with("linux.seccomp.syscalls[0].action:"), "{e}");
        let e = err(r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerMetadata":"m"}"#);
        assert!(e.starts_with("linux.seccomp.listenerMetadata:"), "{e}");
        let e = err(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_M68K"]}"#);
        assert!(e.starts_with("linux.seccomp.architectures[1]:"), "{e}");
    }

    /// `n` rules on kill's first argument, one value each.
    pub(crate) fn kill_rules(n: usize) -> LinuxSeccomp {
        let rules: Vec<String> = (0..n)
            .map(|i| {
                format!(r#"{{"names":["kill"],"action":"SCMP_ACT_ERRNO","args":[{{"index":0,"value":{i},"op":"SCMP_CMP_EQ"}}]}}"#)
            })
            .collect();
        profile(&format!(r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{}]}}"#, rules.join(",")))
    }

    /// `n` rules on two 64-bit arguments of kill: several BPF instructions each.
    fn wide_kill_rules(n: u64) -> LinuxSeccomp {
        let rules: Vec<String> = (0..n)
            .map(|i| {
                let v = (i << 33) | i;
                format!(
                    r#"{{"names":["kill"],"action":"SCMP_ACT_ERRNO","args":[{{"index":0,"value":{v},"op":"SCMP_CMP_EQ"}},{{"index":1,"value":{v},"op":"SCMP_CMP_GT"}}]}}"#
                )
            })
            .collect();
        profile(&format!(r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{}]}}"#, rules.join(",")))
    }

    #[test]
    fn more_rules_than_a_filter_can_hold_are_refused() {
        check(&kill_rules(MAX_RULES)).unwrap();
        let e = check(&kill_rules(MAX_RULES + 1)).err().unwrap().to_string();
        assert!(e.starts_with(&format!("linux.seccomp.syscalls[{MAX_RULES}]: the profile asks for more than")), "{e}");
        // Names count once per alternative: 2 names x 3 values of one argument = 6 rules each.
        let entry = r#"{"names":["kill","tkill"],"action":"SCMP_ACT_ERRNO","args":[
            {"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":0,"value":2,"op":"SCMP_CMP_EQ"},{"index":0,"value":3,"op":"SCMP_CMP_EQ"}]}"#;
        let n = MAX_RULES / 6;
        let json =
            |k: usize| format!(r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{}]}}"#, vec![entry; k].join(","));
        check(&profile(&json(n))).unwrap();
        let e = check(&profile(&json(n + 1))).err().unwrap().to_string();
        assert!(e.starts_with(&format!("linux.seccomp.syscalls[{n}]:")), "{e}");
    }

    #[test]
    fn a_program_larger_than_a_pipe_buffer_is_exported() {
        // Exported through a pipe, this much BPF (more than its 64 KiB) blocked the export forever.
        let p = wide_kill_rules(1024);
        let prog = compile(&p).unwrap();
        assert!(prog.len() * 8 > 64 * 1024, "{} instructions", prog.len());
        let e = super::super::prepare(&p, None).err().unwrap().to_string();
        assert!(e.starts_with("linux.seccomp: the compiled filter has"), "{e}");
        assert!(e.ends_with("BPF instructions, more than the 4096 the kernel loads"), "{e}");
    }

    /// `n` rules of six SCMP_CMP_NE conditions on 64-bit values (libseccomp's worst case).
    fn six_arg_rules(n: u64) -> LinuxSeccomp {
        let rules: Vec<String> = (0..n)
            .map(|i| {
                let args: Vec<String> = (0..6)
                    .map(|a| format!(r#"{{"index":{a},"value":{},"op":"SCMP_CMP_NE"}}"#, (i << 33) | (i + a)))
                    .collect();
                format!(r#"{{"names":["kill"],"action":"SCMP_ACT_ERRNO","args":[{}]}}"#, args.join(","))
            })
            .collect();
        profile(&format!(r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{}]}}"#, rules.join(",")))
    }

    #[test]
    #[ignore]
    fn compile_time_at_the_bound() {
        let time = |what: &str, p: LinuxSeccomp| {
            let t = std::time::Instant::now();
            let n = compile(&p).unwrap().len();
            eprintln!("{what}: {n} insns in {:?}", t.elapsed());
        };
        for w in [1024u64, 2048] {
            time(&format!("{w} one-condition rules"), kill_rules(w as usize));
            time(&format!("{} two-condition 64-bit rules", w / 2), wide_kill_rules(w / 2));
            time(&format!("{} six-condition 64-bit rules", w / 6), six_arg_rules(w / 6));
        }
    }

    #[test]
    fn unknown_syscalls_are_skipped_and_defaults_ignored() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
                "syscalls":[{"names":["read","no_such_syscall_at_all","_llseek"],"action":"SCMP_ACT_ALLOW"},
                            {"names":["write"],"action":"SCMP_ACT_ERRNO"}]}"#,
        );
        check(&p).unwrap();
        let bpf = compile(&p).unwrap();
        assert!(!bpf.is_empty());
    }

    #[test]
    fn every_action_and_operator_compiles() {
        let mut calls = Vec::new();
        for (i, act) in ACTIONS.iter().filter(|a| **a != "SCMP_ACT_ALLOW").enumerate() {
            let name = ["getcwd", "chdir", "fchdir", "mkdir", "rmdir", "link", "unlink", "symlink"][i];
            calls.push(format!(r#"{{"names":["{name}"],"action":"{act}"}}"#));
        }
        for (i, op) in OPERATORS.iter().enumerate() {
            calls.push(format!(
                r#"{{"names":["kill"],"action":"SCMP_ACT_ERRNO","errnoRet":{},"args":[{{"index":0,"value":{},"valueTwo":1,"op":"{op}"}}]}}"#,
                10 + i,
                100 + i
            ));
        }
        let json =
            format!(r#"{{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/x","syscalls":[{}]}}"#, calls.join(","));
        let p = profile(&json);
        assert!(check(&p).unwrap().notify);
        compile(&p).unwrap();
    }
}
