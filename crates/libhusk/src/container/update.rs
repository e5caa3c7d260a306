//! `update`: new resource limits for a live container, merged into what it has (see
//! `Cgroup::update`), plus runc's Intel RDT schema flags.

use std::path::Path;

use oci_spec::runtime::LinuxResources;

use crate::error::{Context, Error, Result};
use crate::state::{StateDir, Status};

/// Intel RDT schemata from `--l3-cache-schema` / `--mem-bw-schema`.
#[derive(Debug, Default, Clone)]
pub struct RdtUpdate {
    pub l3_cache_schema: Option<String>,
    pub mem_bw_schema: Option<String>,
}

/// `update -r`'s input: LinuxResources JSON, errors naming the JSON path.
pub fn parse_resources(resources: &str) -> Result<LinuxResources> {
    let de = &mut serde_json::Deserializer::from_str(resources);
    let mut r: LinuxResources = serde_path_to_error::deserialize(de)
        .map_err(|e| Error::msg(format!("--resources: invalid resources JSON at {}: {}", e.path(), e.inner())))?;
    if r.pids().as_ref().is_some_and(|p| p.limit() == 0) {
        crate::cgroups::normalize_pids(&mut r, crate::cgroups::pids_limit_given(resources.as_bytes(), &[]));
    }
    Ok(r)
}

/// `resources` is LinuxResources JSON (`update -r`); fields left out stay as they are.
pub fn update(root: &Path, id: &str, resources: &str, rdt: &RdtUpdate) -> Result<()> {
    let change = parse_resources(resources)?;
    let dir = StateDir::open(root, id)?;
    dir.lock()?;
    let mut state = dir.load()?;
    state.cgroup.require("update")?;
    if state.status(&dir) == Status::Stopped {
        return Err(Error::msg(format!("cannot update container {id}: container not running")));
    }
    if rdt.l3_cache_schema.is_some() || rdt.mem_bw_schema.is_some() {
        let Some(placement) = &state.intel_rdt else {
            return Err(Error::msg("Intel RDT: the container has no resctrl group (linux.intelRdt)"));
        };
        // A MON group (mon_groups/<id>) takes its schemata from the CTRL_MON group above it.
        let group = match placement.group.parent() {
            Some(p) if p.file_name().is_some_and(|n| n == "mon_groups") => p.parent().unwrap_or(p).to_path_buf(),
            _ => placement.group.clone(),
        };
        for line in [&rdt.l3_cache_schema, &rdt.mem_bw_schema].into_iter().flatten() {
            let file = group.join("schemata");
            std::fs::write(&file, format!("{line}\n"))
                .ctx(|| format!("Intel RDT: write {line:?} to {}", file.display()))?;
        }
    }
    state.cgroup.update(&change)?;
    dir.save(&state)
}
