//! Reading and checking a bundle: `config.json` parsed into oci-spec types, with every error
//! naming the JSON path of the field at fault.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

/// Versions of the runtime spec whose configs we run. The spec promises compatibility within a
/// major version, so every 1.x up to the one we implement is accepted.
pub const OCI_VERSION: &str = "1.3.0";
pub const OCI_VERSION_MIN: &str = "1.0.0";
const MAX_MINOR: u64 = 3;

pub struct Bundle {
    /// Absolute path of the bundle directory.
    pub dir: PathBuf,
    /// Absolute path of the root filesystem.
    pub rootfs: PathBuf,
    pub spec: Spec,
}

impl Bundle {
    pub fn load(dir: &Path) -> Result<Bundle> {
        let dir = std::path::absolute(dir).map_err(|e| Error::from(e).context(dir.display()))?;
        let path = dir.join("config.json");
        let data = std::fs::read(&path).map_err(|e| Error::from(e).context(format!("open {}", path.display())))?;
        let spec = parse_spec(&data).map_err(|e| e.context(path.display()))?;
        let rootfs = check_rootfs(&dir, &spec)?;
        Ok(Bundle { dir, rootfs, spec })
    }
}

/// Parse and validate a config. Unknown properties are ignored, as config.md requires.
pub fn parse_spec(data: &[u8]) -> Result<Spec> {
    let spec: Spec = parse_json(data, "")?;
    validate(&spec)?;
    Ok(spec)
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

/// The rootfs must exist, be a directory, and not itself be a symlink (runc refuses that too: a
/// symlink could be re-pointed between our check and our mount).
fn check_rootfs(bundle: &Path, spec: &Spec) -> Result<PathBuf> {
    let root = spec.root().as_ref().ok_or_else(|| Error::field("root", "missing"))?;
    if root.path().as_os_str().is_empty() {
        return Err(Error::field("root.path", "missing"));
    }
    let rootfs = bundle.join(root.path());
    let meta = std::fs::symlink_metadata(&rootfs)
        .map_err(|e| Error::from(e).context(format!("root.path: {}", rootfs.display())))?;
    if meta.file_type().is_symlink() {
        return Err(Error::field("root.path", format!("{} is a symlink; give the real directory", rootfs.display())));
    }
    if !meta.is_dir() {
        return Err(Error::field("root.path", format!("{} is not a directory", rootfs.display())));
    }
    Ok(rootfs)
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
