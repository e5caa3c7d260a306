//! `linux.sysctl`: which keys a container may set (only those its own namespaces scope, runc's
//! rules), and the writes through the private procfs. A /proc/sys write lands in the namespaces
//! of the process that opens the file, so the init, inside the container's namespaces, writes
//! them; a key no namespace of the container scopes would be written for the whole host
//! (`kernel.core_pattern`, `vm.swappiness`, `net.*` without a network namespace): refused before
//! anything exists.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxNamespaceType;
use rustix::fs::OFlags;

use super::procfs::{open_beneath, open_private};
use crate::error::{Error, Result};
use crate::namespaces::NsPlan;

/// `net.ipv4.ip_forward` → `net/ipv4/ip_forward`. A key that already uses `/` keeps its dots, as
/// sysctl(8) does, for names like `net/ipv4/conf/eth0.100/forwarding`.
pub fn key_path(key: &str) -> Option<PathBuf> {
    let path = if key.contains('/') { key.to_string() } else { key.replace('.', "/") };
    let ok = !path.is_empty() && path.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    ok.then(|| PathBuf::from(path))
}

/// The key in dotted form whichever separator it uses (runc's convertSysctlVariableToDotsSeparator):
/// `net/ipv4/conf/eno2.100/rp_filter` → `net.ipv4.conf.eno2/100.rp_filter`.
pub fn dotted(key: &str) -> String {
    match key.find(['.', '/']) {
        Some(i) if key.as_bytes()[i] == b'/' => key
            .chars()
            .map(|c| {
                if c == '.' {
                    '/'
                } else if c == '/' {
                    '.'
                } else {
                    c
                }
            })
            .collect(),
        _ => key.to_string(),
    }
}

/// The kernel.* keys that belong to the IPC namespace (with every `fs.mqueue.*`).
const IPC_KEYS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// The field a sysctl error names: `linux.sysctl["kernel.core_pattern"]`.
fn field(key: &str) -> String {
    format!("linux.sysctl[{key:?}]")
}

/// Refuse every key that is not scoped by a namespace the container has, with runc's wording
/// (validate.sysctl). A namespace joined by path counts only when it is not husk's own (runc
/// checks that for the network namespace; husk for IPC and UTS too: joining the host's and
/// writing there changes the host all the same). Touches nothing but, for joined namespaces,
/// a stat of their paths.
pub fn check(sysctl: &HashMap<String, String>, plan: &NsPlan) -> Result<()> {
    let mut keys: Vec<&String> = sysctl.keys().collect();
    // Sorted: the first error does not depend on hashing.
    keys.sort();
    for key in keys {
        let s = dotted(key);
        let refuse = |why: String| Err(Error::field(field(key), why));
        if key_path(key).is_none() {
            return refuse("not a valid sysctl name".into());
        }
        if IPC_KEYS.contains(&s.as_str()) || s.starts_with("fs.mqueue.") {
            if !own_ns(plan, LinuxNamespaceType::Ipc)? {
                return refuse(format!("sysctl {s:?} is not allowed in the hosts ipc namespace"));
            }
            continue;
        }
        if s.starts_with("net.") {
            if !own_ns(plan, LinuxNamespaceType::Network)? {
                return refuse(format!("sysctl {s:?} not allowed in host network namespace"));
            }
            continue;
        }
        if own_ns(plan, LinuxNamespaceType::Uts)? {
            match s.as_str() {
                "kernel.domainname" => continue,
                "kernel.hostname" => {
                    return refuse(format!(
                        "sysctl {s:?} is not allowed as it conflicts with the OCI \"hostname\" field"
                    ))
                }
                _ => {}
            }
        }
        if s.starts_with("user.") {
            if !own_ns(plan, LinuxNamespaceType::User)? {
                return refuse(format!("setting ucounts without a user namespace not allowed: {s}"));
            }
            continue;
        }
        return refuse(format!("sysctl {s:?} is not in a separate kernel namespace"));
    }
    Ok(())
}

/// Whether the container has a namespace of type `t` that is not husk's own: a new one, or one
/// joined by a path that names another namespace than the one husk runs in.
fn own_ns(plan: &NsPlan, t: LinuxNamespaceType) -> Result<bool> {
    let Some((i, _, path)) = plan.join.iter().find(|(_, jt, _)| *jt == t) else {
        return Ok(plan.listed & crate::namespaces::flag(t) != 0);
    };
    let ns = |p: &Path| rustix::fs::stat(p).map(|st| (st.st_dev, st.st_ino));
    let theirs =
        ns(path).map_err(|e| Error::os(format!("linux.namespaces[{i}].path: {}", path.display()), e.raw_os_error()))?;
    let own = format!("/proc/self/ns/{}", crate::namespaces::proc_name(t));
    let ours = ns(Path::new(&own)).map_err(|e| Error::os(&own, e.raw_os_error()))?;
    Ok(theirs != ours)
}

pub fn apply(sysctl: &HashMap<String, String>) -> Result<()> {
    if sysctl.is_empty() {
        return Ok(());
    }
    let proc = open_private()?;
    let sys = open_beneath(proc.as_fd(), Path::new("sys"), OFlags::PATH | OFlags::DIRECTORY)
        .map_err(|e| Error::os("private procfs: sys", e.raw_os_error()))?;
    for (key, value) in sysctl {
        let path = key_path(key).ok_or_else(|| Error::field(field(key), "not a valid sysctl name"))?;
        let fd = open_beneath(sys.as_fd(), &path, OFlags::WRONLY | OFlags::TRUNC)
            .map_err(|e| Error::os(field(key), e.raw_os_error()))?;
        rustix::io::write(&fd, value.as_bytes()).map_err(|e| Error::os(field(key), e.raw_os_error()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(namespaces: &str) -> NsPlan {
        let maps = r#""uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]"#;
        let linux: oci_spec::runtime::Linux =
            serde_json::from_str(&format!(r#"{{"namespaces": {namespaces}, {maps}}}"#)).unwrap();
        NsPlan::from_config(Some(&linux)).unwrap()
    }

    fn one(key: &str, p: &NsPlan) -> std::result::Result<(), String> {
        check(&HashMap::from([(key.to_string(), "1".to_string())]), p).map_err(|e| e.to_string())
    }

    #[test]
    fn rootfs_sysctl_key_paths() {
        assert_eq!(key_path("net.ipv4.ip_forward").unwrap(), Path::new("net/ipv4/ip_forward"));
        assert_eq!(
            key_path("net/ipv4/conf/eth0.100/forwarding").unwrap(),
            Path::new("net/ipv4/conf/eth0.100/forwarding")
        );
        assert!(key_path("kernel..x").is_none());
        assert!(key_path("net/../../self/attr").is_none());
        assert!(key_path("").is_none());
        assert_eq!(dotted("net/ipv4/conf/eno2.100/rp_filter"), "net.ipv4.conf.eno2/100.rp_filter");
        assert_eq!(dotted("kernel/shmmax"), "kernel.shmmax");
        assert_eq!(dotted("net.ipv4.ip_forward"), "net.ipv4.ip_forward");
    }

    #[test]
    fn rootfs_sysctl_only_what_the_containers_namespaces_scope() {
        let all = plan(r#"[{"type":"mount"},{"type":"ipc"},{"type":"uts"},{"type":"network"},{"type":"user"}]"#);
        let none = plan(r#"[{"type":"mount"},{"type":"pid"}]"#);
        for ok in ["kernel.shmmax", "kernel/msgmnb", "fs.mqueue.msg_max", "net.ipv4.ip_forward", "kernel.domainname"] {
            assert_eq!(one(ok, &all), Ok(()), "{ok}");
        }
        assert_eq!(one("user.max_inotify_watches", &all), Ok(()));
        // Never namespaced: refused whatever the container has.
        for host in ["kernel.core_pattern", "vm.swappiness", "kernel.panic", "fs.file-max"] {
            let e = one(host, &all).unwrap_err();
            assert_eq!(e, format!("linux.sysctl[{host:?}]: sysctl {host:?} is not in a separate kernel namespace"));
        }
        let e = one("kernel.hostname", &all).unwrap_err();
        assert!(e.contains("conflicts with the OCI \"hostname\" field"), "{e}");
        // Scoped by a namespace the container does not have: the host's.
        let e = one("kernel.shmmax", &none).unwrap_err();
        assert_eq!(
            e,
            r#"linux.sysctl["kernel.shmmax"]: sysctl "kernel.shmmax" is not allowed in the hosts ipc namespace"#
        );
        let e = one("net/ipv4/ip_forward", &none).unwrap_err();
        assert_eq!(
            e,
            r#"linux.sysctl["net/ipv4/ip_forward"]: sysctl "net.ipv4.ip_forward" not allowed in host network namespace"#
        );
        for k in ["kernel.domainname", "kernel.hostname"] {
            assert!(one(k, &none).unwrap_err().contains("is not in a separate kernel namespace"), "{k}");
        }
        assert!(one("user.max_user_namespaces", &none).unwrap_err().contains("without a user namespace"));
        assert!(one("kernel..x", &all).unwrap_err().contains("not a valid sysctl name"));
    }

    #[test]
    fn rootfs_sysctl_joined_namespace_must_not_be_husks_own() {
        // Joining the namespaces husk runs in is joining the host's: their sysctls are refused.
        let joined = plan(
            r#"[{"type":"mount"},{"type":"network","path":"/proc/self/ns/net"},{"type":"ipc","path":"/proc/self/ns/ipc"},
                {"type":"uts","path":"/proc/self/ns/uts"}]"#,
        );
        assert!(one("net.ipv4.ip_forward", &joined).unwrap_err().contains("not allowed in host network namespace"));
        assert!(one("kernel.msgmax", &joined).unwrap_err().contains("the hosts ipc namespace"));
        assert!(one("kernel.domainname", &joined).unwrap_err().contains("not in a separate kernel namespace"));
        let bad = plan(r#"[{"type":"mount"},{"type":"network","path":"/no/such/netns"}]"#);
        let e = one("net.ipv4.ip_forward", &bad).unwrap_err();
        assert!(e.starts_with("linux.namespaces[1].path: /no/such/netns: "), "{e}");
    }
}
