//! cgroup v1 memory: limits, swap (memory+swap), soft limit, kernel limits where the kernel
//! still takes them, swappiness and the OOM killer switch.

use std::path::Path;

use oci_spec::runtime::LinuxMemory;

use crate::cgroups::resources::{present, read_u64, write};
use crate::error::Result;

const LIMIT: &str = "memory.limit_in_bytes";
const MEMSW: &str = "memory.memsw.limit_in_bytes";

pub fn apply(dir: &Path, m: &LinuxMemory) -> Result<()> {
    let limit = present(m.limit());
    let mut swap = present(m.swap());
    // Unlimited memory with swap unset means unlimited memory+swap too (runc).
    if limit == Some(-1) && swap.is_none() && dir.join(MEMSW).exists() {
        swap = Some(-1);
    }
    let set_limit = |v: i64| write(dir, LIMIT, &v.to_string(), "linux.resources.memory.limit");
    let set_swap = |v: i64| write(dir, MEMSW, &v.to_string(), "linux.resources.memory.swap");
    match (limit, swap) {
        (Some(l), Some(s)) => {
            // The kernel wants memory <= memory+swap at every step: raise memsw first when growing.
            let cur = read_u64(dir, LIMIT, "linux.resources.memory.limit")?;
            if s == -1 || (s > 0 && cur < s as u64) {
                set_swap(s)?;
                set_limit(l)?;
            } else {
                set_limit(l)?;
                set_swap(s)?;
            }
        }
        (Some(l), None) => set_limit(l)?,
        (None, Some(s)) => set_swap(s)?,
        (None, None) => {}
    }
    if let Some(v) = present(m.reservation()) {
        write(dir, "memory.soft_limit_in_bytes", &v.to_string(), "linux.resources.memory.reservation")?;
    }
    // Kernels since 5.16 accept and ignore the kmem limit; the file is gone on some builds.
    #[allow(deprecated)]
    if let Some(v) = present(m.kernel()) {
        let file = "memory.kmem.limit_in_bytes";
        if dir.join(file).exists() {
            write(dir, file, &v.to_string(), "linux.resources.memory.kernel")?;
        } else {
            tracing::warn!("linux.resources.memory.kernel: this kernel has no kernel memory limit; ignored");
        }
    }
    if let Some(v) = present(m.kernel_tcp()) {
        write(dir, "memory.kmem.tcp.limit_in_bytes", &v.to_string(), "linux.resources.memory.kernelTCP")?;
    }
    if let Some(v) = m.swappiness() {
        write(dir, "memory.swappiness", &v.to_string(), "linux.resources.memory.swappiness")?;
    }
    if let Some(v) = m.disable_oom_killer() {
        // Only "1" turns the killer off; writing "0" to a fresh cgroup changes nothing, but an
        // update may turn it back on.
        write(dir, "memory.oom_control", if v { "1" } else { "0" }, "linux.resources.memory.disableOOMKiller")?;
    }
    if let Some(v) = m.use_hierarchy() {
        write(dir, "memory.use_hierarchy", if v { "1" } else { "0" }, "linux.resources.memory.useHierarchy")?;
    }
    Ok(())
}
