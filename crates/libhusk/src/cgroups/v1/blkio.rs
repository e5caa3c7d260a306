//! cgroup v1 blkio: weights (CFQ's `blkio.weight` or BFQ's `blkio.bfq.weight`, whichever the
//! kernel has, as runc picks) and the throttle limits.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};

use crate::cgroups::resources::{dev_numbers, write};
use crate::error::{Error, Result};

const F: &str = "linux.resources.blockIO";

pub fn apply(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    let bfq = dir.join("blkio.bfq.weight").exists();
    let (weight, weight_device) =
        if bfq { ("blkio.bfq.weight", "blkio.bfq.weight_device") } else { ("blkio.weight", "blkio.weight_device") };
    let missing = |field: String, file: &str| {
        Error::field(field, format!("this kernel has no {file} (no CFQ or BFQ scheduler with cgroup support)"))
    };
    if let Some(w) = b.weight().filter(|&w| w != 0) {
        if !dir.join(weight).exists() {
            return Err(missing(format!("{F}.weight"), weight));
        }
        write(dir, weight, &w.to_string(), &format!("{F}.weight"))?;
    }
    if let Some(w) = b.leaf_weight().filter(|&w| w != 0) {
        if !dir.join("blkio.leaf_weight").exists() {
            return Err(missing(format!("{F}.leafWeight"), "blkio.leaf_weight"));
        }
        write(dir, "blkio.leaf_weight", &w.to_string(), &format!("{F}.leafWeight"))?;
    }
    for (i, d) in b.weight_device().iter().flatten().enumerate() {
        let field = format!("{F}.weightDevice[{i}]");
        let dev = dev_numbers(&field, d.major(), d.minor())?;
        if let Some(w) = d.weight() {
            if !dir.join(weight_device).exists() {
                return Err(missing(format!("{field}.weight"), weight_device));
            }
            write(dir, weight_device, &format!("{dev} {w}"), &format!("{field}.weight"))?;
        }
        if let Some(w) = d.leaf_weight() {
            if !dir.join("blkio.leaf_weight_device").exists() {
                return Err(missing(format!("{field}.leafWeight"), "blkio.leaf_weight_device"));
            }
            write(dir, "blkio.leaf_weight_device", &format!("{dev} {w}"), &format!("{field}.leafWeight"))?;
        }
    }
    throttle(dir, "blkio.throttle.read_bps_device", b.throttle_read_bps_device(), "throttleReadBpsDevice")?;
    throttle(dir, "blkio.throttle.write_bps_device", b.throttle_write_bps_device(), "throttleWriteBpsDevice")?;
    throttle(dir, "blkio.throttle.read_iops_device", b.throttle_read_iops_device(), "throttleReadIOPSDevice")?;
    throttle(dir, "blkio.throttle.write_iops_device", b.throttle_write_iops_device(), "throttleWriteIOPSDevice")?;
    Ok(())
}

fn throttle(dir: &Path, file: &str, list: &Option<Vec<LinuxThrottleDevice>>, name: &str) -> Result<()> {
    for (i, d) in list.iter().flatten().enumerate() {
        let field = format!("{F}.{name}[{i}]");
        let dev = dev_numbers(&field, d.major(), d.minor())?;
        write(dir, file, &format!("{dev} {}", d.rate()), &field)?;
    }
    Ok(())
}
