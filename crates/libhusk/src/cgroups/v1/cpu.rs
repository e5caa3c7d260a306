//! cgroup v1 cpu: CFS shares, quota/period/burst, the realtime budget, SCHED_IDLE groups.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::cgroups::resources::{present, write};
use crate::error::Result;

pub fn apply(dir: &Path, c: &LinuxCpu) -> Result<()> {
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
    // The realtime period first: a runtime is checked against the period in force.
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
