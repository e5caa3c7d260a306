//! rdma.max, the same file on v1 and v2: `<device> hca_handle=N hca_object=M`.

use std::collections::HashMap;
use std::path::Path;

use oci_spec::runtime::LinuxRdma;

use super::resources::write;
use crate::error::Result;

pub fn apply(dir: &Path, map: &HashMap<String, LinuxRdma>) -> Result<()> {
    let mut devs: Vec<&String> = map.keys().collect();
    devs.sort();
    for dev in devs {
        let l = &map[dev];
        let mut line = dev.clone();
        if let Some(h) = l.hca_handles() {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = l.hca_objects() {
            line.push_str(&format!(" hca_object={o}"));
        }
        write(dir, "rdma.max", &line, &format!("linux.resources.rdma.{dev}"))?;
    }
    Ok(())
}
