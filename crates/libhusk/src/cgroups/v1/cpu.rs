//! cgroup v1 cpu: CFS shares, quota/period/burst, the realtime budget, SCHED_IDLE groups.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::cgroups::resources::{present, write};
use crate::error::Result;

pub fn apply(dir: &Path, c: &LinuxCpu) -> Result<()> {
    // cpu.idle first: an idle group refuses shares (EINVAL) and has its own weight, so shares
    // are written only to a group that is not idle (leaving idle resets them to the default:
    // they are written again then).
    if let Some(i) = c.idle() {
        write(dir, "cpu.idle", &i.to_string(), "linux.resources.cpu.idle")?;
    }
    if let Some(v) = c.shares().filter(|&v| v != 0 && c.idle().unwrap_or(0) == 0) {
        write(dir, "cpu.shares", &v.to_string(), "linux.resources.cpu.shares")?;
    }
    // The kernel checks each value against the others in force: a new period below the current
    // quota, or a burst above it, is refused (EINVAL) until the quota has changed. runc retries
    // those after the quota; so does husk.
    let quota = present(c.quota());
    let period = c.period().filter(|&v| v != 0);
    let period_pending = retry_later(dir, "cpu.cfs_period_us", period, quota.is_some(), "linux.resources.cpu.period")?;
    let burst_pending = match c.burst() {
        // Kernels before 5.14 have no burst: nothing to enforce it with (runc ignores it too).
        Some(_) if !dir.join("cpu.cfs_burst_us").exists() => None,
        b => retry_later(dir, "cpu.cfs_burst_us", b, quota.is_some(), "linux.resources.cpu.burst")?,
    };
    if let Some(q) = quota {
        write(dir, "cpu.cfs_quota_us", &q.to_string(), "linux.resources.cpu.quota")?;
    }
    if let Some(p) = period_pending {
        write(dir, "cpu.cfs_period_us", &p.to_string(), "linux.resources.cpu.period")?;
    }
    if let Some(b) = burst_pending {
        write(dir, "cpu.cfs_burst_us", &b.to_string(), "linux.resources.cpu.burst")?;
    }
    // The realtime budget: a period below the runtime in force, or a runtime above the period,
    // is refused; the period goes first unless the kernel refuses it, then after the runtime.
    let runtime = present(c.realtime_runtime());
    let rt_period = c.realtime_period().filter(|&v| v != 0);
    let rt_pending =
        retry_later(dir, "cpu.rt_period_us", rt_period, runtime.is_some(), "linux.resources.cpu.realtimePeriod")?;
    if let Some(r) = runtime {
        write(dir, "cpu.rt_runtime_us", &r.to_string(), "linux.resources.cpu.realtimeRuntime")?;
    }
    if let Some(p) = rt_pending {
        write(dir, "cpu.rt_period_us", &p.to_string(), "linux.resources.cpu.realtimePeriod")?;
    }
    Ok(())
}

/// Write `value` to `file` now; when the kernel refuses it (EINVAL) and `then` will change what
/// it was checked against, return it to be written again afterwards.
fn retry_later(dir: &Path, file: &str, value: Option<u64>, then: bool, field: &str) -> Result<Option<u64>> {
    let Some(v) = value else { return Ok(None) };
    match write(dir, file, &v.to_string(), field) {
        Err(e) if e.errno() == Some(libc::EINVAL) && then => Ok(Some(v)),
        r => r.map(|()| None),
    }
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
