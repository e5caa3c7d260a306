//! cgroup v2 cpu: shares → cpu.weight, quota/period → cpu.max, burst, idle. cgroup v2 has no
//! realtime budget: those fields are refused by name.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::cgroups::resources::{present, write};
use crate::error::{Error, Result};

/// runc's cpu.shares (2..262144) to cpu.weight (1..10000) conversion.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262142
}

pub fn apply(dir: &Path, c: &LinuxCpu) -> Result<()> {
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
