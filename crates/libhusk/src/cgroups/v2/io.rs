//! cgroup v2 io: the spec's blockIO translated as runc does: weights to io.bfq.weight when BFQ
//! is there (same 10..1000 range) or converted to io.weight's 1..10000, throttles to io.max.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};

use crate::cgroups::resources::{dev_numbers, write};
use crate::error::{Error, Result};

const F: &str = "linux.resources.blockIO";

/// runc's ConvertBlkIOToIOWeightValue: blkio weight 10..1000 to io.weight 1..10000.
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (u64::from(w).saturating_sub(10)) * 9999 / 990
}

pub fn apply(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    if b.leaf_weight().is_some_and(|w| w != 0) {
        return Err(Error::field(format!("{F}.leafWeight"), "not supported on cgroup v2"));
    }
    let bfq = dir.join("io.bfq.weight").exists();
    let (file, conv): (&str, fn(u16) -> u64) =
        if bfq { ("io.bfq.weight", u64::from) } else { ("io.weight", blkio_to_io_weight) };
    if let Some(w) = b.weight().filter(|&w| w != 0) {
        write(dir, file, &conv(w).to_string(), &format!("{F}.weight"))?;
    }
    for (i, d) in b.weight_device().iter().flatten().enumerate() {
        let field = format!("{F}.weightDevice[{i}]");
        let dev = dev_numbers(&field, d.major(), d.minor())?;
        if d.leaf_weight().is_some_and(|w| w != 0) {
            return Err(Error::field(format!("{field}.leafWeight"), "not supported on cgroup v2"));
        }
        if let Some(w) = d.weight() {
            write(dir, file, &format!("{dev} {}", conv(w)), &format!("{field}.weight"))?;
        }
    }
    max(dir, b.throttle_read_bps_device(), "rbps", "throttleReadBpsDevice")?;
    max(dir, b.throttle_write_bps_device(), "wbps", "throttleWriteBpsDevice")?;
    max(dir, b.throttle_read_iops_device(), "riops", "throttleReadIOPSDevice")?;
    max(dir, b.throttle_write_iops_device(), "wiops", "throttleWriteIOPSDevice")?;
    Ok(())
}

fn max(dir: &Path, list: &Option<Vec<LinuxThrottleDevice>>, key: &str, name: &str) -> Result<()> {
    for (i, d) in list.iter().flatten().enumerate() {
        let field = format!("{F}.{name}[{i}]");
        let dev = dev_numbers(&field, d.major(), d.minor())?;
        // io.max keeps the keys a write does not name, so one write per limit is enough.
        write(dir, "io.max", &format!("{dev} {key}={}", d.rate()), &field)?;
    }
    Ok(())
}
