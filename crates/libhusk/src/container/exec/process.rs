//! The exec'd process: a process JSON (`--process FILE`, as containerd and Podman pass it) or
//! runc's flags applied over the container's own `process`, recorded in its state by `create`.
//! A process JSON takes what it leaves out of capabilities, rlimits, LSM labels, scheduler, I/O
//! priority and `execCPUAffinity` from the container, as runc main does.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::runtime::{Capability, LinuxCapabilities, Process};

use crate::error::{Error, Result};

/// runc's `exec` flags that shape the process (the rest are in `ExecOptions`).
#[derive(Debug, Default, Clone)]
pub struct ProcessFlags {
    pub args: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<String>,
    /// `uid[:gid]`
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
    pub tty: bool,
}

#[derive(Debug, Clone)]
pub enum ProcessSpec {
    /// `--process FILE`: the whole process; fields it leaves out come from the container (as in
    /// runc: capabilities, rlimits, AppArmor profile, SELinux label, scheduler, I/O priority,
    /// execCPUAffinity).
    File(PathBuf),
    Flags(ProcessFlags),
}

pub fn build(spec: &ProcessSpec, defaults: &Process) -> Result<Process> {
    let p = match spec {
        ProcessSpec::File(path) => from_file(path, defaults)?,
        ProcessSpec::Flags(flags) => from_flags(flags, defaults)?,
    };
    validate(&p)?;
    Ok(p)
}

fn from_file(path: &Path, defaults: &Process) -> Result<Process> {
    let what = format!("--process {}", path.display());
    // A regular file of bounded size (smallfile.rs), like config.json.
    let data = crate::smallfile::read_document(path).map_err(|e| e.context("--process"))?;
    from_json(&data, &what, defaults)
}

/// A process JSON as `exec --process` reads it (the fuzz target's entry): checked as `build`
/// checks it, errors prefixed with `what`.
pub fn parse_process_json(data: &[u8], what: &str, defaults: &Process) -> Result<Process> {
    let p = from_json(data, what, defaults)?;
    validate(&p)?;
    Ok(p)
}

fn from_json(data: &[u8], what: &str, defaults: &Process) -> Result<Process> {
    // Fields runc lets a process.json leave out that oci-spec requires (`user`), or names it
    // skips (unknown capabilities): only after a failed parse, see `lenient_process`.
    let mut p = match typed(data, what) {
        Ok(p) => p,
        Err(e) => match crate::config::lenient_process(data, None) {
            Some(fixed) => typed(&fixed, what)?,
            None => return Err(e),
        },
    };
    if p.capabilities().is_none() {
        p.set_capabilities(defaults.capabilities().clone());
    }
    if p.rlimits().as_ref().is_none_or(|r| r.is_empty()) {
        p.set_rlimits(defaults.rlimits().clone());
    }
    if p.apparmor_profile().as_ref().is_none_or(|s| s.is_empty()) {
        p.set_apparmor_profile(defaults.apparmor_profile().clone());
    }
    if p.selinux_label().as_ref().is_none_or(|s| s.is_empty()) {
        p.set_selinux_label(defaults.selinux_label().clone());
    }
    // runc main takes these from the container too when the process leaves them out.
    if p.scheduler().is_none() {
        p.set_scheduler(defaults.scheduler().clone());
    }
    if p.io_priority().is_none() {
        p.set_io_priority(*defaults.io_priority());
    }
    if p.exec_cpu_affinity().is_none() {
        p.set_exec_cpu_affinity(defaults.exec_cpu_affinity().clone());
    }
    Ok(p)
}

fn typed(data: &[u8], what: &str) -> Result<Process> {
    let mut de = serde_json::Deserializer::from_slice(data);
    let p: Process = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let at = e.path().to_string();
        let inner = e.into_inner();
        match at.as_str() {
            "." | "?" => Error::msg(format!("{what}: invalid JSON: {inner}")),
            _ => Error::msg(format!("{what}: {at}: {inner}")),
        }
    })?;
    de.end().map_err(|e| Error::msg(format!("{what}: invalid JSON: {e}")))?;
    Ok(p)
}

fn from_flags(f: &ProcessFlags, defaults: &Process) -> Result<Process> {
    let mut p = defaults.clone();
    p.set_args(Some(f.args.clone()));
    if let Some(cwd) = &f.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(a) = &f.apparmor {
        p.set_apparmor_profile(Some(a.clone()));
    }
    if let Some(l) = &f.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    if !f.caps.is_empty() {
        p.set_capabilities(Some(add_caps(p.capabilities().clone().unwrap_or_else(no_caps), &f.caps)?));
    }
    // runc main refuses `-e A` (no '='; its init's "invalid environment variable"), it does not
    // take A's value from its own environment.
    crate::config::check_env(&f.env, |_| "--env".to_string())?;
    p.set_env(Some(merge_env(p.env().clone().unwrap_or_default(), &f.env)));
    // runc: an exec'd process has a terminal only when asked for, whatever the container has.
    p.set_terminal(Some(f.tty));
    if f.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(u) = &f.user {
        let (uid, gid) = parse_user(u)?;
        p.user_mut().set_uid(uid);
        if let Some(gid) = gid {
            p.user_mut().set_gid(gid);
        }
    }
    for g in &f.additional_gids {
        crate::config::check_id(format!("--additional-gids {g}"), *g)?;
    }
    if !f.additional_gids.is_empty() {
        let mut gids = p.user().additional_gids().clone().unwrap_or_default();
        gids.extend_from_slice(&f.additional_gids);
        p.user_mut().set_additional_gids(Some(gids));
    }
    Ok(p)
}

/// No capabilities at all (what a missing `process.capabilities` means).
fn no_caps() -> LinuxCapabilities {
    let mut c = LinuxCapabilities::default();
    c.set_bounding(None);
    c.set_effective(None);
    c.set_permitted(None);
    c.set_inheritable(None);
    c.set_ambient(None);
    c
}

/// `--cap X`: into bounding, effective and permitted; into ambient only when the process has an
/// inheritable set (ambient needs it), as runc does. A name no kernel has is left out with
/// runc's warning, as runc does.
fn add_caps(mut caps: LinuxCapabilities, names: &[String]) -> Result<LinuxCapabilities> {
    let mut parsed = Vec::new();
    let mut unknown = std::collections::BTreeSet::new();
    for name in names {
        let upper = name.to_ascii_uppercase();
        let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
        match Capability::from_str(bare) {
            Ok(cap) => parsed.push(cap),
            Err(_) => {
                unknown.insert(name.clone());
            }
        }
    }
    crate::capabilities::warn_ignored(&unknown);
    let add = |set: Option<oci_spec::runtime::Capabilities>| {
        let mut set = set.unwrap_or_default();
        set.extend(parsed.iter().copied());
        Some(set)
    };
    caps.set_bounding(add(caps.bounding().clone()));
    caps.set_effective(add(caps.effective().clone()));
    caps.set_permitted(add(caps.permitted().clone()));
    if caps.inheritable().is_some() {
        caps.set_ambient(add(caps.ambient().clone()));
    }
    Ok(caps)
}

/// `--env K=V` after the container's env, as runc appends them; the process's setup keeps the
/// last of each name (`process::exec::prepare_env`).
pub fn merge_env(mut env: Vec<String>, add: &[String]) -> Vec<String> {
    env.extend_from_slice(add);
    env
}

/// `-u uid[:gid]`, strictly: decimal digits only, each within 0..=2^31-1 (CVE-2026-30892 was a
/// lax parse of exactly this that ran processes as the wrong user; 4294967295 is "unchanged" to
/// setresuid, see `config::MAX_ID`).
pub fn parse_user(text: &str) -> Result<(u32, Option<u32>)> {
    let bad = || Error::msg(format!("--user {text:?}: want uid[:gid], decimal numbers"));
    let num = |s: &str| -> Result<u32> {
        if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let id = s.parse::<u32>().map_err(|_| bad())?;
        crate::config::check_id(format!("--user {text:?}"), id)?;
        Ok(id)
    };
    match text.split_once(':') {
        None => Ok((num(text)?, None)),
        Some((u, g)) => Ok((num(u)?, Some(num(g)?))),
    }
}

fn validate(p: &Process) -> Result<()> {
    if p.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::msg("exec: no command given (pass it after the container id, or --process FILE)"));
    }
    if !p.cwd().is_absolute() {
        return Err(Error::field("process.cwd", format!("{:?} is not an absolute path", p.cwd())));
    }
    crate::config::check_user(p.user())?;
    crate::config::check_env(p.env().as_deref().unwrap_or_default(), |i| format!("process.env[{i}]"))?;
    crate::lsm::check_process(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_parsing_is_strict() {
        assert_eq!(parse_user("1000").unwrap(), (1000, None));
        assert_eq!(parse_user("0:0").unwrap(), (0, Some(0)));
        assert_eq!(parse_user("2147483647:7").unwrap(), (2147483647, Some(7)));
        // (uid_t)-1 is "unchanged" to setresuid: the process would stay root.
        for hostile in ["4294967295", "1000:4294967295", "2147483648"] {
            let e = parse_user(hostile).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("--user {hostile:?}: ")) && e.ends_with("is out of range (0 to 2147483647)"),
                "{e}"
            );
        }
        for bad in [
            "",
            ":",
            "1000:",
            ":1000",
            "1:2:3",
            "-1",
            "+5",
            " 5",
            "5 ",
            "0x10",
            "4294967296",
            "1e3",
            "１",
            "a:b",
            "00000000001",
            "1000:-1",
        ] {
            assert!(parse_user(bad).is_err(), "{bad:?} must be refused");
        }
    }

    /// Mutations of valid specs: every accepted string is digits[:digits] and parses back to
    /// the same ids; nothing panics.
    #[test]
    fn user_parsing_fuzz() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let alphabet = b"0123456789:-+ x\x001";
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 14) as usize;
            let s: String =
                (0..len).map(|i| alphabet[((x >> (i * 4)) % alphabet.len() as u64) as usize] as char).collect();
            if let Ok((u, g)) = parse_user(&s) {
                let (a, b) = s.split_once(':').map_or((s.as_str(), None), |(a, b)| (a, Some(b)));
                assert!(a.bytes().all(|c| c.is_ascii_digit()) && !a.is_empty(), "{s:?}");
                assert_eq!(a.parse::<u32>().ok(), Some(u), "{s:?}");
                assert!(u <= crate::config::MAX_ID && g.is_none_or(|g| g <= crate::config::MAX_ID), "{s:?}");
                assert_eq!(b.map(|b| b.parse::<u32>().unwrap()), g, "{s:?}");
            }
        }
    }

    #[test]
    fn env_flags_come_after_the_containers() {
        let env = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        let out = merge_env(env, &["A=2".into(), "B=3".into(), "EMPTY=".into()]);
        assert_eq!(out, ["PATH=/bin", "A=1", "A=2", "B=3", "EMPTY="]);
    }

    fn caps_none() -> LinuxCapabilities {
        serde_json::from_str("{}").unwrap()
    }

    #[test]
    fn process_json_may_leave_out_user() {
        let p = parse_process_json(br#"{"args":["true"],"cwd":"/"}"#, "--process p", &Process::default()).unwrap();
        assert_eq!((p.user().uid(), p.user().gid()), (0, 0));
        let e = parse_process_json(br#"{"args":["true"]}"#, "--process p", &Process::default()).unwrap_err();
        assert!(e.to_string().contains("cwd"), "{e}");
    }

    #[test]
    fn caps_add_to_sets_and_ambient_only_with_inheritable() {
        let caps: LinuxCapabilities = serde_json::from_str(r#"{"bounding":["CAP_KILL"]}"#).unwrap();
        let out = add_caps(caps, &["CAP_NET_RAW".into(), "sys_admin".into()]).unwrap();
        assert_eq!(out.bounding().as_ref().unwrap().len(), 3);
        assert_eq!(out.effective().as_ref().unwrap().len(), 2);
        assert!(out.ambient().is_none());
        // Unknown: left out (runc warns and goes on).
        let out = add_caps(caps_none(), &["CAP_NOPE".into(), "CAP_KILL".into()]).unwrap();
        assert_eq!(out.bounding().as_ref().unwrap().len(), 1);
    }
}
