//! `linux.sysctl` through the private procfs: net.* keys land in the container's netns because the
//! procfs was made inside its namespaces.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::OFlags;

use super::procfs::{open_beneath, open_private};
use crate::error::{Error, Result};

/// `net.ipv4.ip_forward` → `net/ipv4/ip_forward`. A key that already uses `/` keeps its dots, as
/// sysctl(8) does, for names like `net/ipv4/conf/eth0.100/forwarding`.
pub fn key_path(key: &str) -> Option<PathBuf> {
    let path = if key.contains('/') { key.to_string() } else { key.replace('.', "/") };
    let ok = !path.is_empty() && path.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    ok.then(|| PathBuf::from(path))
}

pub fn apply(sysctl: &HashMap<String, String>) -> Result<()> {
    if sysctl.is_empty() {
        return Ok(());
    }
    let proc = open_private()?;
    let sys = open_beneath(proc.as_fd(), Path::new("sys"), OFlags::PATH | OFlags::DIRECTORY)
        .map_err(|e| Error::os("private procfs: sys", e.raw_os_error()))?;
    for (key, value) in sysctl {
        let field = || format!("linux.sysctl.{key}");
        let path = key_path(key).ok_or_else(|| Error::field(field(), "not a valid sysctl name"))?;
        let fd = open_beneath(sys.as_fd(), &path, OFlags::WRONLY | OFlags::TRUNC)
            .map_err(|e| Error::os(field(), e.raw_os_error()))?;
        rustix::io::write(&fd, value.as_bytes()).map_err(|e| Error::os(field(), e.raw_os_error()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::key_path;

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
    }
    use std::path::Path;
}
