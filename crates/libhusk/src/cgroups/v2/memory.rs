//! cgroup v2 memory: memory.max, memory.low, memory.swap.max (the spec's memory+swap converted
//! to swap alone, as runc does). v1-only knobs are refused by field.

use std::path::Path;

use oci_spec::runtime::LinuxMemory;

use crate::cgroups::resources::{present, write};
use crate::error::{Error, Result};

fn num(v: Option<i64>) -> Option<String> {
    match v {
        None | Some(0) => None,
        Some(-1) => Some("max".to_owned()),
        Some(v) => Some(v.to_string()),
    }
}

/// memory.swap.max from the spec's memory+swap value (runc's ConvertMemorySwapToCgroupV2Value).
pub fn swap_value(limit: i64, swap: i64) -> Result<Option<String>> {
    const F: &str = "linux.resources.memory.swap";
    if limit == -1 && swap == 0 {
        return Ok(Some("max".to_owned()));
    }
    match swap {
        0 => Ok(None),
        -1 => Ok(Some("max".to_owned())),
        // Unlimited memory: the swap limit is the swap itself (runc).
        _ if limit == -1 => Ok(Some(swap.to_string())),
        _ if limit == 0 => Err(Error::field(F, "cannot set a swap limit without a memory limit")),
        _ if limit < 0 => Err(Error::field("linux.resources.memory.limit", format!("invalid value {limit}"))),
        _ if swap < limit => Err(Error::field(F, "memory+swap limit must be >= the memory limit")),
        _ => Ok(Some((swap - limit).to_string())),
    }
}

pub fn apply(dir: &Path, m: &LinuxMemory) -> Result<()> {
    let unsupported = |f: &str| Err(Error::field(format!("linux.resources.memory.{f}"), "not supported on cgroup v2"));
    if m.swappiness().is_some() {
        return unsupported("swappiness");
    }
    if m.disable_oom_killer() == Some(true) {
        return unsupported("disableOOMKiller");
    }
    #[allow(deprecated)]
    if present(m.kernel()).is_some_and(|v| v != -1) {
        return unsupported("kernel");
    }
    if present(m.kernel_tcp()).is_some_and(|v| v != -1) {
        return unsupported("kernelTCP");
    }
    if m.use_hierarchy() == Some(false) {
        return unsupported("useHierarchy");
    }
    let (limit, swap) = (m.limit().unwrap_or(0), m.swap().unwrap_or(0));
    if let Some(s) = swap_value(limit, swap)? {
        match write(dir, "memory.swap.max", &s, "linux.resources.memory.swap") {
            // No swap accounting in this kernel: "unlimited" asks for nothing.
            Err(e) if e.errno() == Some(libc::ENOENT) && s == "max" => {}
            r => r?,
        }
    }
    if let Some(v) = num(m.limit()) {
        write(dir, "memory.max", &v, "linux.resources.memory.limit")?;
    }
    if let Some(v) = num(m.reservation()) {
        write(dir, "memory.low", &v, "linux.resources.memory.reservation")?;
    }
    Ok(())
}
