//! `linux.resources` written to the controllers' files, with runc's conventions: 0 means "unset"
//! for memory, cpu and pids values, -1 means unlimited.

use std::io::Write;
use std::path::Path;

use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxResources};

use crate::error::{Context, Error, Result};

/// Fields husk has no code for: refuse them rather than run a container without its limits.
pub fn check_supported(r: &LinuxResources) -> Result<()> {
    if r.block_io().as_ref().is_some_and(|b| *b != Default::default()) {
        return Err(Error::field("linux.resources.blockIO", "not supported yet"));
    }
    if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
        return Err(Error::field("linux.resources.hugepageLimits", "not supported yet"));
    }
    if r.network().as_ref().is_some_and(|n| *n != Default::default()) {
        return Err(Error::field("linux.resources.network", "not supported yet"));
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(Error::field("linux.resources.rdma", "not supported yet"));
    }
    Ok(())
}

pub fn write(dir: &Path, file: &str, value: &str, field: &str) -> Result<()> {
    let path = dir.join(file);
    // No O_CREAT: a missing file is a missing controller or feature, and must read as ENOENT.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .ctx(|| format!("{field}: write {value:?} to {}", path.display()))
}

fn read_u64(dir: &Path, file: &str, field: &str) -> Result<u64> {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).ctx(|| format!("{field}: read {}", path.display()))?;
    text.trim().parse().map_err(|_| Error::msg(format!("{field}: {}: not a number: {:?}", path.display(), text.trim())))
}

fn present(x: Option<i64>) -> Option<i64> {
    x.filter(|&v| v != 0)
}

pub fn memory_is_set(m: &LinuxMemory) -> bool {
    *m != LinuxMemory::default()
}

pub fn cpu_is_set(c: &LinuxCpu) -> bool {
    c.shares().is_some_and(|v| v != 0)
        || present(c.quota()).is_some()
        || c.period().is_some_and(|v| v != 0)
        || present(c.realtime_runtime()).is_some()
        || c.realtime_period().is_some_and(|v| v != 0)
        || c.burst().is_some()
        || c.idle().is_some()
}

pub fn cpuset_is_set(c: &LinuxCpu) -> bool {
    c.cpus().as_deref().is_some_and(|s| !s.is_empty()) || c.mems().as_deref().is_some_and(|s| !s.is_empty())
}

pub fn pids_limit(r: &LinuxResources) -> Option<String> {
    // oci-spec cannot tell `"pids": {}` from `"limit": 0`; like runc 1.1, 0 leaves it unset.
    let limit = r.pids().as_ref()?.limit();
    match limit {
        0 => None,
        l if l < 0 => Some("max".to_owned()),
        l => Some(l.to_string()),
    }
}

pub fn v1_memory(dir: &Path, m: &LinuxMemory) -> Result<()> {
    const LIMIT: &str = "memory.limit_in_bytes";
    const MEMSW: &str = "memory.memsw.limit_in_bytes";
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
    if let Some(v) = present(m.kernel()) {
        write(dir, "memory.kmem.limit_in_bytes", &v.to_string(), "linux.resources.memory.kernel")?;
    }
    if let Some(v) = present(m.kernel_tcp()) {
        write(dir, "memory.kmem.tcp.limit_in_bytes", &v.to_string(), "linux.resources.memory.kernelTCP")?;
    }
    if let Some(v) = m.swappiness() {
        if v > 100 {
            return Err(Error::field("linux.resources.memory.swappiness", format!("{v} is not in 0..100")));
        }
        write(dir, "memory.swappiness", &v.to_string(), "linux.resources.memory.swappiness")?;
    }
    if m.disable_oom_killer() == Some(true) {
        write(dir, "memory.oom_control", "1", "linux.resources.memory.disableOOMKiller")?;
    }
    if let Some(v) = m.use_hierarchy() {
        write(dir, "memory.use_hierarchy", if v { "1" } else { "0" }, "linux.resources.memory.useHierarchy")?;
    }
    Ok(())
}

pub fn v1_cpu(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if let Some(v) = c.shares().filter(|&v| v != 0) {
        write(dir, "cpu.shares", &v.to_string(), "linux.resources.cpu.shares")?;
    }
    // A new period below the current one can be refused (EINVAL) until the quota is lowered:
    // runc retries it after the quota.
    let mut period_pending = None;
    if let Some(p) = c.period().filter(|&v| v != 0) {
        match write(dir, "cpu.cfs_period_us", &p.to_string(), "linux.resources.cpu.period") {
            Err(e) if e.errno() == Some(libc::EINVAL) && present(c.quota()).is_some() => period_pending = Some(p),
            r => r?,
        }
    }
    if let Some(q) = present(c.quota()) {
        write(dir, "cpu.cfs_quota_us", &q.to_string(), "linux.resources.cpu.quota")?;
        if let Some(p) = period_pending {
            write(dir, "cpu.cfs_period_us", &p.to_string(), "linux.resources.cpu.period")?;
        }
    }
    if let Some(b) = c.burst() {
        write(dir, "cpu.cfs_burst_us", &b.to_string(), "linux.resources.cpu.burst")?;
    }
    if let Some(p) = c.realtime_period().filter(|&v| v != 0) {
        write(dir, "cpu.rt_period_us", &p.to_string(), "linux.resources.cpu.realtimePeriod")?;
    }
    if let Some(r) = present(c.realtime_runtime()) {
        write(dir, "cpu.rt_runtime_us", &r.to_string(), "linux.resources.cpu.realtimeRuntime")?;
    }
    if let Some(i) = c.idle() {
        write(dir, "cpu.idle", &i.to_string(), "linux.resources.cpu.idle")?;
    }
    Ok(())
}

/// cpuset files have the same names on v1 and v2.
pub fn cpuset(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if let Some(s) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        write(dir, "cpuset.cpus", s, "linux.resources.cpu.cpus")?;
    }
    if let Some(s) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        write(dir, "cpuset.mems", s, "linux.resources.cpu.mems")?;
    }
    Ok(())
}

fn v2_num(v: Option<i64>) -> Option<String> {
    match v {
        None | Some(0) => None,
        Some(-1) => Some("max".to_owned()),
        Some(v) => Some(v.to_string()),
    }
}

/// memory.swap.max from the spec's memory+swap value (runc's ConvertMemorySwapToCgroupV2Value).
pub fn v2_swap(limit: i64, swap: i64) -> Result<Option<String>> {
    const F: &str = "linux.resources.memory.swap";
    if limit == -1 && swap == 0 {
        return Ok(Some("max".to_owned()));
    }
    match swap {
        0 => Ok(None),
        -1 => Ok(Some("max".to_owned())),
        _ if limit == 0 || limit == -1 => Err(Error::field(F, "cannot set a swap limit without a memory limit")),
        _ if limit < 0 => Err(Error::field("linux.resources.memory.limit", format!("invalid value {limit}"))),
        _ if swap < limit => Err(Error::field(F, "memory+swap limit must be >= the memory limit")),
        _ => Ok(Some((swap - limit).to_string())),
    }
}

pub fn v2_memory(dir: &Path, m: &LinuxMemory) -> Result<()> {
    let unsupported = |f: &str| Err(Error::field(format!("linux.resources.memory.{f}"), "not supported on cgroup v2"));
    if m.swappiness().is_some() {
        return unsupported("swappiness");
    }
    if m.disable_oom_killer() == Some(true) {
        return unsupported("disableOOMKiller");
    }
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
    if let Some(s) = v2_swap(limit, swap)? {
        match write(dir, "memory.swap.max", &s, "linux.resources.memory.swap") {
            // No swap accounting in this kernel: "unlimited" asks for nothing.
            Err(e) if e.errno() == Some(libc::ENOENT) && s == "max" => {}
            r => r?,
        }
    }
    if let Some(v) = v2_num(m.limit()) {
        write(dir, "memory.max", &v, "linux.resources.memory.limit")?;
    }
    if let Some(v) = v2_num(m.reservation()) {
        write(dir, "memory.low", &v, "linux.resources.memory.reservation")?;
    }
    Ok(())
}

/// runc's cpu.shares (2..262144) to cpu.weight (1..10000) conversion.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262142
}

pub fn v2_cpu(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if present(c.realtime_runtime()).is_some() {
        return Err(Error::field("linux.resources.cpu.realtimeRuntime", "not supported on cgroup v2"));
    }
    if c.realtime_period().is_some_and(|v| v != 0) {
        return Err(Error::field("linux.resources.cpu.realtimePeriod", "not supported on cgroup v2"));
    }
    if let Some(s) = c.shares().filter(|&v| v != 0) {
        write(dir, "cpu.weight", &shares_to_weight(s).to_string(), "linux.resources.cpu.shares")?;
    }
    let quota = present(c.quota());
    let period = c.period().filter(|&v| v != 0);
    if quota.is_some() || period.is_some() {
        let mut v = match quota {
            Some(q) if q > 0 => q.to_string(),
            _ => "max".to_owned(),
        };
        if let Some(p) = period {
            v = format!("{v} {p}");
        }
        write(dir, "cpu.max", &v, "linux.resources.cpu.quota")?;
    }
    if let Some(b) = c.burst() {
        write(dir, "cpu.max.burst", &b.to_string(), "linux.resources.cpu.burst")?;
    }
    if let Some(i) = c.idle() {
        write(dir, "cpu.idle", &i.to_string(), "linux.resources.cpu.idle")?;
    }
    Ok(())
}

/// The controller a `unified` key belongs to (`io.max` → `io`); None for cgroup core files.
pub fn unified_controller(key: &str) -> Result<Option<&str>> {
    let field = || format!("linux.resources.unified.{key}");
    if key.is_empty() || key.contains('/') || key.starts_with('.') {
        return Err(Error::field(field(), "not a cgroup file name"));
    }
    match key.split_once('.') {
        Some(("cgroup", _)) => Ok(None),
        Some((c, _)) => Ok(Some(c)),
        None => Err(Error::field(field(), "not a cgroup file name")),
    }
}

pub fn v2_unified(dir: &Path, map: &std::collections::HashMap<String, String>) -> Result<()> {
    // Sorted, so that the order of writes (and the first error) does not depend on hashing.
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for k in keys {
        let field = format!("linux.resources.unified.{k}");
        match write(dir, k, &map[k], &field) {
            Err(e) if e.errno() == Some(libc::ENOENT) => {
                return Err(Error::field(field, "no such file in the container's cgroup"));
            }
            r => r?,
        }
    }
    Ok(())
}
