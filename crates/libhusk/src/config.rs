//! Reading and checking a bundle: `config.json` parsed into oci-spec types, with every error
//! naming the JSON path of the field at fault.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// Versions of the runtime spec whose configs we run. The spec promises compatibility within a
/// major version, so every 1.x up to the one we implement is accepted.
pub const OCI_VERSION: &str = "1.3.0";
pub const OCI_VERSION_MIN: &str = "1.0.0";
const MAX_MINOR: u64 = 3;

pub struct Bundle {
    /// Absolute path of the bundle directory.
    pub dir: PathBuf,
    /// Absolute path of the root filesystem (for state, hooks and messages: the rootfs is used
    /// through `rootfs_fd` only).
    pub rootfs: PathBuf,
    /// The root filesystem, opened once (O_PATH) when the bundle is read: everything the init
    /// does to it goes through this fd, so nothing can swap a component of the path meanwhile.
    pub rootfs_fd: OwnedFd,
    pub spec: Spec,
}

impl Bundle {
    pub fn load(dir: &Path) -> Result<Bundle> {
        let dir = std::path::absolute(dir).map_err(|e| Error::from(e).context(dir.display()))?;
        let path = dir.join("config.json");
        // A regular file of bounded size: not a fifo that blocks, not /dev/zero (smallfile.rs).
        let data = crate::smallfile::read_document(&path)?;
        let spec = parse_spec(&data).map_err(|e| e.context(path.display()))?;
        let (rootfs, rootfs_fd) = open_rootfs(&dir, &spec)?;
        Ok(Bundle { dir, rootfs, rootfs_fd, spec })
    }
}

/// Parse and validate a config. Unknown properties are ignored, as config.md requires.
pub fn parse_spec(data: &[u8]) -> Result<Spec> {
    let mut spec: Spec = match parse_json(data, "") {
        Ok(spec) => spec,
        Err(e) => match lenient_process(data, Some("process")) {
            Some(fixed) => parse_json(&fixed, "")?,
            None => return Err(e),
        },
    };
    validate(&spec)?;
    // `pids.limit` 0 is a limit, `"pids": {}` none: oci-spec reads both as 0, so the JSON is
    // asked again, only then.
    if let Some(r) = spec.linux_mut().as_mut().and_then(|l| l.resources_mut().as_mut()) {
        if r.pids().as_ref().is_some_and(|p| p.limit() == 0) {
            let given = crate::cgroups::pids_limit_given(data, &["linux", "resources"]);
            crate::cgroups::normalize_pids(r, given);
        }
    }
    Ok(spec)
}

/// What runc takes in a process object and oci-spec's types refuse, made acceptable: a missing
/// `user` is `{}` (uid 0, gid 0: runc reads it into Go's zero values), and capability names no
/// kernel has are left out with runc's warning (runc leaves out what its kernel lacks the same
/// way, so a config written for a newer kernel runs). `at` is the process object's key (`process`
/// in config.json; `None`: the document is the process, a process.json). Asked only after the
/// typed parse failed, so a config that needs neither costs nothing more; `None` when there was
/// nothing to change, and the first error stands.
pub fn lenient_process(data: &[u8], at: Option<&str>) -> Option<Vec<u8>> {
    let mut doc: serde_json::Value = serde_json::from_slice(data).ok()?;
    let process = match at {
        Some(key) => doc.get_mut(key)?,
        None => &mut doc,
    };
    let process = process.as_object_mut()?;
    let mut changed = false;
    if !process.contains_key("user") {
        process.insert("user".into(), serde_json::json!({}));
        changed = true;
    }
    let mut unknown = std::collections::BTreeSet::new();
    if let Some(caps) = process.get_mut("capabilities").and_then(|c| c.as_object_mut()) {
        for set in ["bounding", "effective", "inheritable", "permitted", "ambient"] {
            let Some(names) = caps.get_mut(set).and_then(|s| s.as_array_mut()) else { continue };
            names.retain(|name| match name.as_str() {
                Some(text) if serde_json::from_value::<oci_spec::runtime::Capability>(name.clone()).is_err() => {
                    unknown.insert(text.to_string());
                    false
                }
                _ => true,
            });
        }
    }
    if !unknown.is_empty() {
        crate::capabilities::warn_ignored(&unknown);
        changed = true;
    }
    if !changed {
        return None;
    }
    serde_json::to_vec(&doc).ok()
}

/// Parse JSON into `T`; an error names the JSON path of the field at fault, under `prefix`
/// (`process` for a process.json, so its fields read as they would in config.json).
pub fn parse_json<T: serde::de::DeserializeOwned>(data: &[u8], prefix: &str) -> Result<T> {
    let mut de = serde_json::Deserializer::from_slice(data);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if matches!(inner.classify(), serde_json::error::Category::Syntax | serde_json::error::Category::Eof)
            || path == "."
            || path == "?"
        {
            Error::msg(format!("invalid JSON: {inner}"))
        } else if prefix.is_empty() {
            Error::field(path, inner)
        } else {
            Error::field(format!("{prefix}.{path}"), inner)
        }
    })?;
    de.end().map_err(|e| Error::msg(format!("invalid JSON: {e}")))?;
    Ok(value)
}

/// What every process (config.json's, and exec's) must have.
pub fn validate_process(process: &oci_spec::runtime::Process) -> Result<()> {
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::field("process.args", "must not be empty"));
    }
    if !process.cwd().is_absolute() {
        return Err(Error::field("process.cwd", format!("{:?} is not an absolute path", process.cwd())));
    }
    check_user(process.user())?;
    check_env(process.env().as_deref().unwrap_or_default(), |i| format!("process.env[{i}]"))
}

/// The largest uid or gid husk gives a process: 2^31-1. `(uid_t)-1` (4294967295) means "leave
/// it unchanged" to setresuid and setresgid, so a process given it would stay root. The user
/// parsing of containerd and Docker (moby/sys/user) stops at 2^31-1 too; runc main refuses
/// only 4294967295, at start ("cannot setuid to unmapped uid"); husk refuses the range, before
/// anything is made, naming the field.
pub const MAX_ID: u32 = i32::MAX as u32;

/// `id` within 0..=[`MAX_ID`], or an error naming `field`.
pub fn check_id(field: impl std::fmt::Display, id: u32) -> Result<()> {
    if id > MAX_ID {
        return Err(Error::field(field, format!("{id} is out of range (0 to {MAX_ID})")));
    }
    Ok(())
}

/// process.user: uid, gid and every additional gid within [`MAX_ID`].
pub fn check_user(user: &oci_spec::runtime::User) -> Result<()> {
    check_id("process.user.uid", user.uid())?;
    check_id("process.user.gid", user.gid())?;
    for (i, g) in user.additional_gids().iter().flatten().enumerate() {
        check_id(format!("process.user.additionalGids[{i}]"), *g)?;
    }
    Ok(())
}

/// Environment entries as runc main's init takes them: NAME=VALUE with a name, no NUL byte
/// (execve would cut the entry there). `field(i)` names entry i in the error.
pub fn check_env(env: &[String], field: impl Fn(usize) -> String) -> Result<()> {
    for (i, kv) in env.iter().enumerate() {
        // runc main's words after the entry (its prepareEnv's errors).
        let why = match kv.find('=') {
            None => "missing '='",
            Some(0) => "name cannot be empty",
            Some(_) if kv.contains('\0') => "contains nul byte (\\x00)",
            Some(_) => continue,
        };
        return Err(Error::field(field(i), format!("{kv:?}: invalid environment variable: {why}")));
    }
    Ok(())
}

fn check_version(version: &str) -> Result<()> {
    let unsupported = || {
        Error::field(
            "ociVersion",
            format!("unsupported version {version:?} (husk runs {OCI_VERSION_MIN} to 1.{MAX_MINOR}.x)"),
        )
    };
    let core = version.split(['-', '+']).next().unwrap_or("");
    let mut parts = core.split('.').map(|p| p.parse::<u64>());
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Ok(1)), Some(Ok(minor)), Some(Ok(_)), None) if minor <= MAX_MINOR => Ok(()),
        _ => Err(unsupported()),
    }
}

fn validate(spec: &Spec) -> Result<()> {
    check_version(spec.version())?;
    let process = spec.process().as_ref().ok_or_else(|| Error::field("process", "missing"))?;
    validate_process(process)?;
    if let Some(mounts) = spec.mounts() {
        for (i, m) in mounts.iter().enumerate() {
            if !m.destination().is_absolute() {
                return Err(Error::field(
                    format!("mounts[{i}].destination"),
                    format!("{:?} is not an absolute path", m.destination()),
                ));
            }
        }
    }
    let Some(linux) = spec.linux() else { return Ok(()) };
    let mut seen = Vec::new();
    let mut has_user = false;
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        if seen.contains(&ns.typ()) {
            return Err(Error::field(
                format!("linux.namespaces[{i}]"),
                format!("duplicate namespace type {}", ns_name(ns.typ())),
            ));
        }
        seen.push(ns.typ());
        has_user |= ns.typ() == LinuxNamespaceType::User;
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                return Err(Error::field(
                    format!("linux.namespaces[{i}].path"),
                    format!("{p:?} is not an absolute path"),
                ));
            }
        }
    }
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if has_maps && !has_user {
        return Err(Error::field("linux.uidMappings", "mappings need a user namespace in linux.namespaces"));
    }
    if linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty()) {
        if !seen.contains(&LinuxNamespaceType::Time) {
            return Err(Error::field("linux.timeOffsets", "offsets need a time namespace in linux.namespaces"));
        }
        // A joined namespace has its offsets already (they are fixed once a process is in it).
        let joined = linux.namespaces().iter().flatten().any(|ns| {
            ns.typ() == LinuxNamespaceType::Time && ns.path().as_ref().is_some_and(|p| !p.as_os_str().is_empty())
        });
        if joined {
            return Err(Error::field(
                "linux.timeOffsets",
                "time namespace enabled, but both namespace path and time offsets specified -- you may only provide one",
            ));
        }
    }
    if !seen.contains(&LinuxNamespaceType::Uts) {
        if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) {
            return Err(Error::field("hostname", "setting the hostname needs a uts namespace in linux.namespaces"));
        }
        if spec.domainname().as_ref().is_some_and(|h| !h.is_empty()) {
            return Err(Error::field("domainname", "setting the domainname needs a uts namespace in linux.namespaces"));
        }
    }
    Ok(())
}

/// Open the rootfs once, as a directory, without following a symlink in `root.path`: runc refuses
/// a rootfs path with a symlink in it (`link`, and `link/.` too), since whoever can re-point it
/// could swap the rootfs between the check and the mounts. A relative `root.path` is resolved
/// beneath the bundle directory, which is opened as given (runc enters it with chdir).
fn open_rootfs(bundle: &Path, spec: &Spec) -> Result<(PathBuf, OwnedFd)> {
    let root = spec.root().as_ref().ok_or_else(|| Error::field("root", "missing"))?;
    if root.path().as_os_str().is_empty() {
        return Err(Error::field("root.path", "missing"));
    }
    let rootfs = bundle.join(root.path());
    let shown = || format!("root.path: {}", rootfs.display());
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let how = ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let opened = if root.path().is_absolute() {
        rustix::fs::openat2(rustix::fs::CWD, root.path(), flags, Mode::empty(), how)
    } else {
        let dir = rustix::fs::open(bundle, flags, Mode::empty())
            .map_err(|e| Error::os(format!("open bundle {}", bundle.display()), e.raw_os_error()))?;
        rustix::fs::openat2(&dir, root.path(), flags, Mode::empty(), how)
    };
    let fd = opened.map_err(|e| match e {
        Errno::LOOP => Error::field(
            "root.path",
            format!(
                "{}: a symlink in the path (the rootfs is opened without following symlinks; give the real directory)",
                rootfs.display()
            ),
        ),
        Errno::NOTDIR => Error::field("root.path", format!("{} is not a directory", rootfs.display())),
        e => Error::os(shown(), e.raw_os_error()),
    })?;
    Ok((rootfs, fd))
}

pub fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> String {
        cfg_with(r#""process":{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0}}"#, extra)
    }

    fn cfg_with(process: &str, extra: &str) -> String {
        format!(r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},{process}{extra}}}"#)
    }

    #[test]
    fn accepts_every_1_x_up_to_1_3() {
        for v in ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.1", "1.3.0", "1.3.7"] {
            assert!(check_version(v).is_ok(), "{v}");
        }
        for v in ["0.9.0", "1.4.0", "2.0.0", "1.0", "", "x"] {
            let e = check_version(v).unwrap_err().to_string();
            assert!(e.starts_with("ociVersion:"), "{e}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let bad = cfg_with(
            r#""process":{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0},"rlimits":[{"type":"RLIMIT_NOFILE","hard":1,"soft":1},{"type":"RLIMIT_BOGUS","hard":1,"soft":1}]}"#,
            "",
        );
        let e = parse_spec(bad.as_bytes()).unwrap_err().to_string();
        assert!(e.starts_with("process.rlimits[1].type"), "{e}");
        let e = parse_spec(b"{not json").unwrap_err().to_string();
        assert!(e.starts_with("invalid JSON"), "{e}");
        let e = parse_spec(cfg(r#","linux":{"namespaces":[{"type":"pid"},{"type":"pid"}]}"#).as_bytes())
            .unwrap_err()
            .to_string();
        assert_eq!(e, "linux.namespaces[1]: duplicate namespace type pid");
    }

    /// runtime-spec 1.3: `pids.limit` 0 is a limit (written as 1, as runc main does); a `pids`
    /// object without a limit is none.
    #[test]
    fn pids_limit_zero_is_a_limit() {
        let pids = |extra: &str| {
            let spec = parse_spec(cfg(&format!(r#","linux":{{"resources":{{"pids":{extra}}}}}"#)).as_bytes()).unwrap();
            let r = spec.linux().clone().unwrap().resources().clone().unwrap();
            crate::cgroups::pids_limit(&r)
        };
        assert_eq!(pids(r#"{"limit":0}"#).as_deref(), Some("1"));
        assert_eq!(pids(r#"{}"#), None);
        assert_eq!(pids(r#"{"limit":-1}"#).as_deref(), Some("max"));
        assert_eq!(pids(r#"{"limit":7}"#).as_deref(), Some("7"));
        let upd = |json: &str| crate::cgroups::pids_limit(&crate::container::parse_resources(json).unwrap());
        assert_eq!(upd(r#"{"pids":{"limit":0}}"#).as_deref(), Some("1"));
        assert_eq!(upd(r#"{"pids":{}}"#), None);
    }

    #[test]
    fn process_user_and_unknown_capabilities_as_runc() {
        // No `user`: uid 0, gid 0. Capability names no kernel has: left out.
        let spec = parse_spec(
            cfg_with(
                r#""process":{"args":["sh"],"cwd":"/","capabilities":{"bounding":["CAP_KILL","CAP_FUTURE_THING"],"ambient":["CAP_NOPE"]}}"#,
                "",
            )
            .as_bytes(),
        )
        .unwrap();
        let p = spec.process().as_ref().unwrap();
        assert_eq!((p.user().uid(), p.user().gid()), (0, 0));
        let caps = p.capabilities().as_ref().unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 1);
        assert!(caps.ambient().as_ref().unwrap().is_empty());
        // What is still wrong is named as before.
        let e =
            parse_spec(cfg_with(r#""process":{"args":["sh"],"cwd":"/","rlimits":[{"type":"NOPE"}]}"#, "").as_bytes())
                .unwrap_err()
                .to_string();
        assert!(e.starts_with("process.rlimits[0].type"), "{e}");
        let e = parse_spec(cfg_with(r#""process":{"args":["sh"],"capabilities":{"bounding":[1]}}"#, "").as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("process"), "{e}");
    }

    #[test]
    fn ids_above_2_31_are_refused_by_field() {
        let with_user = |user: &str| cfg_with(&format!(r#""process":{{"args":["sh"],"cwd":"/","user":{user}}}"#), "");
        assert!(parse_spec(
            with_user(r#"{"uid":2147483647,"gid":2147483647,"additionalGids":[0,2147483647]}"#).as_bytes()
        )
        .is_ok());
        for (user, want) in [
            (r#"{"uid":4294967295,"gid":0}"#, "process.user.uid: 4294967295 is out of range (0 to 2147483647)"),
            (r#"{"uid":0,"gid":2147483648}"#, "process.user.gid: 2147483648 is out of range (0 to 2147483647)"),
            (
                r#"{"uid":0,"gid":0,"additionalGids":[1,4294967295]}"#,
                "process.user.additionalGids[1]: 4294967295 is out of range (0 to 2147483647)",
            ),
        ] {
            assert_eq!(parse_spec(with_user(user).as_bytes()).unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn env_entries_are_name_value() {
        let with_env = |env: &str| {
            cfg_with(&format!(r#""process":{{"args":["sh"],"cwd":"/","user":{{"uid":0,"gid":0}},"env":{env}}}"#), "")
        };
        assert!(parse_spec(with_env(r#"["A=1","B=","C==x"]"#).as_bytes()).is_ok());
        for (env, want) in [
            (r#"["A=1","B"]"#, r#"process.env[1]: "B": invalid environment variable: missing '='"#),
            (r#"["=1"]"#, r#"process.env[0]: "=1": invalid environment variable: name cannot be empty"#),
            (
                r#"["A=x\u0000y"]"#,
                r#"process.env[0]: "A=x\0y": invalid environment variable: contains nul byte (\x00)"#,
            ),
        ] {
            assert_eq!(parse_spec(with_env(env).as_bytes()).unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn time_offsets_need_a_new_time_namespace() {
        let offsets = r#""timeOffsets":{"monotonic":{"secs":1,"nanosecs":0}}"#;
        let e = parse_spec(cfg(&format!(r#","linux":{{"namespaces":[{{"type":"mount"}}],{offsets}}}"#)).as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("linux.timeOffsets: offsets need a time namespace"), "{e}");
        let joined = format!(
            r#","linux":{{"namespaces":[{{"type":"mount"}},{{"type":"time","path":"/proc/1/ns/time"}}],{offsets}}}"#
        );
        let e = parse_spec(cfg(&joined).as_bytes()).unwrap_err().to_string();
        assert!(
            e.starts_with("linux.timeOffsets: time namespace enabled, but both namespace path and time offsets"),
            "{e}"
        );
        let new = format!(r#","linux":{{"namespaces":[{{"type":"mount"}},{{"type":"time"}}],{offsets}}}"#);
        parse_spec(cfg(&new).as_bytes()).unwrap();
    }

    #[test]
    fn unknown_properties_are_ignored() {
        assert!(parse_spec(cfg(r#","someFutureThing":{"a":1}"#).as_bytes()).is_ok());
    }
}
