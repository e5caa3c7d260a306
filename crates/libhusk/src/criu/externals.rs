//! What of a container lies outside it, as CRIU must be told: bind mounts from the host
//! (`ext_mnt`, keyed by their destination), the cgroup directories bound in without a cgroup
//! namespace, device nodes bound from the host in a user namespace, and namespaces joined by
//! path (network and pid as `external`/`inherit_fd`, the others joined with `join_ns`).

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::rpc::{ExtMountMap, JoinNamespace};
use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result};
use crate::namespaces::NsPlan;
use crate::rootfs::{self, safe_path};

/// One mount CRIU must not dump: where it is in the container and what it is on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct External {
    pub dest: PathBuf,
    pub source: PathBuf,
    /// One of the config's bind mounts (its mount point may have to be made on restore).
    pub bind: bool,
}

/// The container's external mounts, destinations as the container sees them (symlinks in the
/// image resolved inside the rootfs, as husk resolved them when it mounted).
pub fn mounts(spec: &Spec, bundle: &Path, rootfs: &Path, plan: &NsPlan, cgroup: &Cgroup) -> Result<Vec<External>> {
    let root = safe_path::open_dir_nofollow(rootfs).ctx(|| format!("root.path: {}", rootfs.display()))?;
    let mut out = Vec::new();
    for m in spec.mounts().iter().flatten() {
        let dest = resolve(root.as_fd(), m.destination());
        if rootfs::is_bind_mount(m) {
            let Some(source) = m.source() else { continue };
            let source = if source.is_absolute() { source.clone() } else { bundle.join(source) };
            out.push(External { dest, source, bind: true });
        } else if m.typ().as_deref() == Some("cgroup") && !plan.new_cgroup {
            match cgroup.placements.as_slice() {
                [p] if p.v2 => out.push(External { dest, source: p.dir.clone(), bind: false }),
                all => {
                    for p in all {
                        let Some(name) = p.mount.file_name() else { continue };
                        out.push(External { dest: dest.join(name), source: p.dir.clone(), bind: false });
                    }
                }
            }
        }
    }
    if plan.in_userns {
        // In a user namespace husk binds device nodes from the host instead of making them;
        // masked files are covered with the container's /dev/null, bound from the host too.
        let devices = spec.linux().as_ref().and_then(|l| l.devices().as_ref());
        let defaults = ["null", "zero", "full", "random", "urandom", "tty"].map(|d| PathBuf::from(format!("/dev/{d}")));
        for path in defaults.into_iter().chain(devices.into_iter().flatten().map(|d| d.path().clone())) {
            if !out.iter().any(|e| e.dest == path) {
                out.push(External { source: path.clone(), dest: path, bind: false });
            }
        }
    }
    Ok(out)
}

/// For a dump: each external mount recorded under its destination as the key.
pub fn dump_map(ext: &[External]) -> Vec<ExtMountMap> {
    ext.iter().map(|e| ExtMountMap { key: text(&e.dest), val: text(&e.dest) }).collect()
}

/// For a restore: each key (the destination) bound from its host source.
pub fn restore_map(ext: &[External]) -> Vec<ExtMountMap> {
    ext.iter().map(|e| ExtMountMap { key: text(&e.dest), val: text(&e.source) }).collect()
}

fn text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// `dest` with the image's symlinks resolved inside the root; as written (cleaned) when it
/// cannot be resolved (not there yet: then it is no symlink either).
pub fn resolve(root: std::os::fd::BorrowedFd<'_>, dest: &Path) -> PathBuf {
    let clean = clean(dest);
    let Ok(fd) = safe_path::open(root, &clean, rustix::fs::OFlags::empty()) else { return clean };
    let (Ok(at), Ok(root_at)) = (fd_path(&fd), fd_path(&root)) else { return clean };
    match at.strip_prefix(&root_at) {
        Ok(rel) => Path::new("/").join(rel),
        Err(_) => clean,
    }
}

fn fd_path(fd: &impl AsFd) -> std::io::Result<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
}

fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// The key CRIU knows an external namespace by (runc's: `extRootNetNS`, `extRootPidNS`).
pub fn ns_key(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Pid => "extRootPidNS",
        _ => "extRootNetNS",
    }
}

/// Network and pid namespaces joined by path: CRIU leaves them out of the image and expects
/// them back on restore.
pub fn external_namespaces(plan: &NsPlan) -> Vec<(usize, LinuxNamespaceType, PathBuf)> {
    plan.join
        .iter()
        .filter(|(_, t, _)| matches!(t, LinuxNamespaceType::Network | LinuxNamespaceType::Pid))
        .cloned()
        .collect()
}

/// For a dump: `net[<inode>]:extRootNetNS`.
pub fn dump_external_ns(plan: &NsPlan) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (i, t, path) in external_namespaces(plan) {
        let st = rustix::fs::stat(&path)
            .map_err(|e| Error::os(format!("linux.namespaces[{i}].path: {}", path.display()), e.raw_os_error()))?;
        out.push(format!("{}[{}]:{}", crate::namespaces::proc_name(t), st.st_ino, ns_key(t)));
    }
    Ok(out)
}

/// Joined namespaces opened for CRIU to inherit, with the key each goes by.
pub type NsFds = Vec<(&'static str, OwnedFd)>;

/// For a restore: the joined network/pid namespaces opened (CRIU inherits them under their
/// keys), and the other joined namespaces for CRIU to enter.
pub fn restore_namespaces(plan: &NsPlan) -> Result<(NsFds, Vec<JoinNamespace>)> {
    let mut inherit = Vec::new();
    let mut join = Vec::new();
    for (i, t, path) in &plan.join {
        match t {
            LinuxNamespaceType::Network | LinuxNamespaceType::Pid => {
                inherit.push((ns_key(*t), crate::namespaces::open_ns(*i, path)?));
            }
            LinuxNamespaceType::Cgroup => {
                return Err(Error::field(
                    format!("linux.namespaces[{i}]"),
                    "CRIU cannot restore into a joined cgroup namespace",
                ))
            }
            t => join.push(JoinNamespace { ns: crate::namespaces::proc_name(*t).to_string(), ns_file: text(path) }),
        }
    }
    Ok((inherit, join))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_cleaned() {
        assert_eq!(clean(Path::new("/a//b/./c/")), Path::new("/a/b/c"));
        assert_eq!(clean(Path::new("/a/../../b")), Path::new("/b"));
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let dir = std::env::temp_dir().join(format!("husk-criu-ext-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("real/data")).unwrap();
        std::os::unix::fs::symlink("/real", dir.join("link")).unwrap();
        let root = safe_path::open_dir_nofollow(&dir).unwrap();
        assert_eq!(resolve(root.as_fd(), Path::new("/link/data")), Path::new("/real/data"));
        assert_eq!(resolve(root.as_fd(), Path::new("/missing/x")), Path::new("/missing/x"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn maps_for_dump_and_restore() {
        let ext = vec![External { dest: "/data".into(), source: "/srv/data".into(), bind: true }];
        assert_eq!(dump_map(&ext), vec![ExtMountMap { key: "/data".into(), val: "/data".into() }]);
        assert_eq!(restore_map(&ext), vec![ExtMountMap { key: "/data".into(), val: "/srv/data".into() }]);
    }
}
