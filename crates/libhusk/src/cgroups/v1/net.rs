//! cgroup v1 net_cls and net_prio (cgroup v2 has neither).

use std::path::Path;

use oci_spec::runtime::LinuxNetwork;

use crate::cgroups::resources::write;
use crate::error::Result;

pub fn class_id(dir: &Path, n: &LinuxNetwork) -> Result<()> {
    match n.class_id() {
        Some(id) => write(dir, "net_cls.classid", &id.to_string(), "linux.resources.network.classID"),
        None => Ok(()),
    }
}

pub fn priorities(dir: &Path, n: &LinuxNetwork) -> Result<()> {
    for (i, p) in n.priorities().iter().flatten().enumerate() {
        let field = format!("linux.resources.network.priorities[{i}]");
        write(dir, "net_prio.ifpriomap", &format!("{} {}", p.name(), p.priority()), &field)?;
    }
    Ok(())
}
