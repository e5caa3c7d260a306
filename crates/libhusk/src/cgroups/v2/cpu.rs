//! cgroup v2 cpu: idle, shares → cpu.weight, quota/period → cpu.max, burst. cgroup v2 has no
//! realtime budget: those fields are refused by name.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::cgroups::resources::{present, write};
use crate::error::{Error, Result};

/// cpu.shares (2..262144, default 1024) to cpu.weight (1..10000, default 100) as runc main
/// converts them (opencontainers/cgroups ConvertCPUSharesToCgroupV2Value, runc >= 1.3.2, crun
/// 1.23 and later): a quadratic in log2(shares) through the minimum, the maximum and the
/// defaults, so that 1024 gives 100 (the old linear formula gave 39: a container with the
/// default shares got less CPU than a process left at the default weight beside it).
pub fn shares_to_weight(shares: u64) -> u64 {
    match shares {
        0 => 0,
        1..=2 => 1,
        262144.. => 10000,
        s => {
            let l = (s as f64).log2();
            let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
            10f64.powf(exponent).ceil() as u64
        }
    }
}

pub fn apply(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if present(c.realtime_runtime()).is_some() {
        return Err(Error::field("linux.resources.cpu.realtimeRuntime", "not supported on cgroup v2"));
    }
    if c.realtime_period().is_some_and(|v| v != 0) {
        return Err(Error::field("linux.resources.cpu.realtimePeriod", "not supported on cgroup v2"));
    }
    // cpu.idle first, as runc: an idle group refuses a weight (EINVAL) and has its own, so the
    // weight is written only to a group that is not idle (leaving idle resets the weight to
    // the default: it is written again then).
    if let Some(i) = c.idle() {
        write(dir, "cpu.idle", &i.to_string(), "linux.resources.cpu.idle")?;
    }
    if let Some(s) = c.shares().filter(|&v| v != 0 && c.idle().unwrap_or(0) == 0) {
        write(dir, "cpu.weight", &shares_to_weight(s).to_string(), "linux.resources.cpu.shares")?;
    }
    let quota = present(c.quota());
    let period = c.period().filter(|&v| v != 0);
    // The kernel wants burst <= quota at every step: a burst above the quota in force waits for
    // the new quota (runc's order); a smaller one goes first, before the quota shrinks.
    let mut burst_pending = None;
    if let Some(b) = c.burst() {
        match write(dir, "cpu.max.burst", &b.to_string(), "linux.resources.cpu.burst") {
            Err(e) if e.errno() == Some(libc::EINVAL) && quota.is_some() => burst_pending = Some(b),
            r => r?,
        }
    }
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
    if let Some(b) = burst_pending {
        write(dir, "cpu.max.burst", &b.to_string(), "linux.resources.cpu.burst")?;
    }
    Ok(())
}
