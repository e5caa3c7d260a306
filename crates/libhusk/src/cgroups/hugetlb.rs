//! hugetlb limits, on either version: v1 `hugetlb.<size>.limit_in_bytes`, v2 `hugetlb.<size>.max`,
//! plus the reservation limit (`rsvd`) where the kernel has it, as the spec prefers.

use std::path::Path;

use oci_spec::runtime::LinuxHugepageLimit;

use super::resources::write;
use crate::error::{Error, Result};

/// The spec's `2MB`/`1GB`/`64KB` as the kernel's file names spell it, checked against the page
/// sizes this machine has (/sys/kernel/mm/hugepages).
pub fn page_size_name(size: &str) -> std::result::Result<String, String> {
    let (num, unit) = size.split_at(size.find(|c: char| !c.is_ascii_digit()).unwrap_or(size.len()));
    let n: u64 = num.parse().map_err(|_| format!("invalid page size {size:?}"))?;
    let kb = match unit {
        "KB" => n,
        "MB" => n * 1024,
        "GB" => n * 1024 * 1024,
        _ => return Err(format!("invalid page size {size:?} (want e.g. 2MB, 1GB, 64KB)")),
    };
    if !Path::new(&format!("/sys/kernel/mm/hugepages/hugepages-{kb}kB")).is_dir() {
        return Err(format!("this machine has no {size} huge pages"));
    }
    Ok(kb_name(kb))
}

/// The kernel names sizes with the largest unit that divides them (hugetlb_cgroup_file_init).
fn kb_name(kb: u64) -> String {
    if kb.is_multiple_of(1024 * 1024) {
        format!("{}GB", kb / (1024 * 1024))
    } else if kb.is_multiple_of(1024) {
        format!("{}MB", kb / 1024)
    } else {
        format!("{kb}KB")
    }
}

/// The huge page sizes this machine has, as cgroup file names spell them.
pub fn sizes() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/sys/kernel/mm/hugepages") else { return Vec::new() };
    let mut out: Vec<(u64, String)> = rd
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let kb: u64 = n.strip_prefix("hugepages-")?.strip_suffix("kB")?.parse().ok()?;
            Some((kb, kb_name(kb)))
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, n)| n).collect()
}

pub fn apply(dir: &Path, limits: &[LinuxHugepageLimit], v2: bool) -> Result<()> {
    for (i, h) in limits.iter().enumerate() {
        let field = format!("linux.resources.hugepageLimits[{i}]");
        let size = page_size_name(h.page_size()).map_err(|e| Error::field(format!("{field}.pageSize"), e))?;
        let (value, limit_file, rsvd_file) = if v2 {
            let v = if h.limit() < 0 { "max".to_owned() } else { h.limit().to_string() };
            (v, format!("hugetlb.{size}.max"), format!("hugetlb.{size}.rsvd.max"))
        } else {
            (
                h.limit().to_string(),
                format!("hugetlb.{size}.limit_in_bytes"),
                format!("hugetlb.{size}.rsvd.limit_in_bytes"),
            )
        };
        write(dir, &limit_file, &value, &format!("{field}.limit"))?;
        if dir.join(&rsvd_file).exists() {
            write(dir, &rsvd_file, &value, &format!("{field}.limit"))?;
        }
    }
    Ok(())
}
