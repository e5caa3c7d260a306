//! What `linux.resources` asks for, independent of the cgroup version: which controllers a config
//! needs, runc's "0 means unset, -1 means unlimited" conventions, and the file helpers both
//! versions write with. The writes themselves live in `v1/` and `v2/`, one file per controller.

use std::io::Write;
use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use crate::error::{Context, Error, Result};

pub fn write(dir: &Path, file: &str, value: &str, field: &str) -> Result<()> {
    let path = dir.join(file);
    // No O_CREAT: a missing file is a missing controller or feature, and must read as ENOENT.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .ctx(|| format!("{field}: write {value:?} to {}", path.display()))
}

pub fn read_u64(dir: &Path, file: &str, field: &str) -> Result<u64> {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).ctx(|| format!("{field}: read {}", path.display()))?;
    text.trim().parse().map_err(|_| Error::msg(format!("{field}: {}: not a number: {:?}", path.display(), text.trim())))
}

/// Some(v) unless the value is absent or 0 (runc's "unset").
pub fn present(x: Option<i64>) -> Option<i64> {
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

pub fn blkio_is_set(b: &LinuxBlockIo) -> bool {
    b.weight().is_some_and(|w| w != 0)
        || b.leaf_weight().is_some_and(|w| w != 0)
        || [
            b.weight_device().as_ref().map(Vec::len),
            b.throttle_read_bps_device().as_ref().map(Vec::len),
            b.throttle_write_bps_device().as_ref().map(Vec::len),
            b.throttle_read_iops_device().as_ref().map(Vec::len),
            b.throttle_write_iops_device().as_ref().map(Vec::len),
        ]
        .into_iter()
        .any(|n| n.unwrap_or(0) > 0)
}

/// `pids.limit` as read: oci-spec reads `"pids": {}` and `"pids": {"limit": 0}` alike (0), but
/// since runtime-spec 1.3 a 0 is a real limit. Whoever parses JSON says whether it named a
/// limit: a real 0 becomes 1, as runc main writes it (systemd refuses TasksMax=0, and runc's
/// drivers agree; with 1 as with 0 the container's first process is its last), and a `pids`
/// without a limit is no limit. So after parsing a 0 means "unset", in the states an older
/// husk wrote too.
pub fn normalize_pids(r: &mut LinuxResources, limit_given: bool) {
    if r.pids().as_ref().is_some_and(|p| p.limit() == 0) {
        if limit_given {
            let mut p = oci_spec::runtime::LinuxPids::default();
            p.set_limit(1);
            r.set_pids(Some(p));
        } else {
            r.set_pids(None);
        }
    }
}

/// Whether JSON that holds a LinuxResources object names `pids.limit` (see [`normalize_pids`]);
/// `at` is where the object is: `["linux", "resources"]` in a config, `[]` for `update -r`.
pub fn pids_limit_given(json: &[u8], at: &[&str]) -> bool {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(json) else { return false };
    for k in at {
        v = v.get_mut(*k).map(serde_json::Value::take).unwrap_or_default();
    }
    v.get("pids").and_then(|p| p.get("limit")).is_some_and(|l| !l.is_null())
}

pub fn pids_limit(r: &LinuxResources) -> Option<String> {
    // 0 is "unset" here: see normalize_pids.
    let limit = r.pids().as_ref()?.limit();
    match limit {
        0 => None,
        l if l < 0 => Some("max".to_owned()),
        l => Some(l.to_string()),
    }
}

/// A resource group of `linux.resources`, named by the controller that implements it: the v1
/// hierarchy of that name or, where v1 does not bind it, the cgroup2 controller (`io` for blkio).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Memory,
    Cpu,
    Cpuset,
    Pids,
    Blkio,
    Hugetlb,
    NetCls,
    NetPrio,
    Rdma,
}

impl Want {
    pub fn v1_name(self) -> &'static str {
        match self {
            Want::Memory => "memory",
            Want::Cpu => "cpu",
            Want::Cpuset => "cpuset",
            Want::Pids => "pids",
            Want::Blkio => "blkio",
            Want::Hugetlb => "hugetlb",
            Want::NetCls => "net_cls",
            Want::NetPrio => "net_prio",
            Want::Rdma => "rdma",
        }
    }

    /// The cgroup2 controller, or None where v2 has no equivalent.
    pub fn v2_name(self) -> Option<&'static str> {
        match self {
            Want::Blkio => Some("io"),
            Want::NetCls | Want::NetPrio => None,
            w => Some(w.v1_name()),
        }
    }

    pub fn field(self) -> &'static str {
        match self {
            Want::Memory => "linux.resources.memory",
            Want::Cpu | Want::Cpuset => "linux.resources.cpu",
            Want::Pids => "linux.resources.pids",
            Want::Blkio => "linux.resources.blockIO",
            Want::Hugetlb => "linux.resources.hugepageLimits",
            Want::NetCls => "linux.resources.network.classID",
            Want::NetPrio => "linux.resources.network.priorities",
            Want::Rdma => "linux.resources.rdma",
        }
    }
}

/// Every resource group the config sets, in the order they are applied.
pub fn wanted(r: &LinuxResources) -> Vec<Want> {
    let mut out = Vec::new();
    if r.memory().as_ref().is_some_and(memory_is_set) {
        out.push(Want::Memory);
    }
    if let Some(c) = r.cpu() {
        if cpu_is_set(c) {
            out.push(Want::Cpu);
        }
        if cpuset_is_set(c) {
            out.push(Want::Cpuset);
        }
    }
    if pids_limit(r).is_some() {
        out.push(Want::Pids);
    }
    if r.block_io().as_ref().is_some_and(blkio_is_set) {
        out.push(Want::Blkio);
    }
    if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
        out.push(Want::Hugetlb);
    }
    if let Some(n) = r.network() {
        if n.class_id().is_some() {
            out.push(Want::NetCls);
        }
        if n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            out.push(Want::NetPrio);
        }
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        out.push(Want::Rdma);
    }
    out
}

/// Checks that need no cgroup: done before any directory exists.
pub fn check(r: &LinuxResources) -> Result<()> {
    if let Some(v) = r.memory().as_ref().and_then(|m| m.swappiness()) {
        if v > 100 {
            return Err(Error::field("linux.resources.memory.swappiness", format!("{v} is not in 0..100")));
        }
    }
    if let Some(c) = r.cpu() {
        if let (Some(q), Some(b)) = (present(c.quota()), c.burst()) {
            if q > 0 && b > q as u64 {
                return Err(Error::field("linux.resources.cpu.burst", format!("{b} is larger than the quota {q}")));
            }
        }
    }
    if let Some(b) = r.block_io() {
        if let Some(w) = b.weight().filter(|&w| w != 0 && !(10..=1000).contains(&w)) {
            return Err(Error::field("linux.resources.blockIO.weight", format!("{w} is not in 10..1000")));
        }
        for (i, d) in b.weight_device().iter().flatten().enumerate() {
            if d.weight().is_none() && d.leaf_weight().is_none() {
                return Err(Error::field(
                    format!("linux.resources.blockIO.weightDevice[{i}]"),
                    "needs weight or leafWeight",
                ));
            }
        }
    }
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        super::hugetlb::page_size_name(h.page_size())
            .map_err(|e| Error::field(format!("linux.resources.hugepageLimits[{i}].pageSize"), e))?;
    }
    if let Some(m) = r.rdma() {
        for (dev, l) in m {
            if dev.is_empty() || dev.contains(char::is_whitespace) {
                return Err(Error::field("linux.resources.rdma", format!("invalid device name {dev:?}")));
            }
            if l.hca_handles().is_none() && l.hca_objects().is_none() {
                return Err(Error::field(format!("linux.resources.rdma.{dev}"), "needs hcaHandles or hcaObjects"));
            }
        }
    }
    if let Some(n) = r.network() {
        for (i, p) in n.priorities().iter().flatten().enumerate() {
            if p.name().is_empty() || p.name().contains(char::is_whitespace) {
                return Err(Error::field(
                    format!("linux.resources.network.priorities[{i}].name"),
                    format!("invalid interface name {:?}", p.name()),
                ));
            }
        }
    }
    Ok(())
}

/// `maj:min` of a per-device blkio/io entry; negative numbers are refused by field.
pub fn dev_numbers(field: &str, major: i64, minor: i64) -> Result<String> {
    if major < 0 || minor < 0 {
        return Err(Error::field(field, format!("invalid device {major}:{minor}")));
    }
    Ok(format!("{major}:{minor}"))
}
