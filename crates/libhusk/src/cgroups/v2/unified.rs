//! `linux.resources.unified`: cgroup v2 files written as given; the controller each key needs
//! is enabled first.

use std::collections::HashMap;
use std::path::Path;

use crate::cgroups::resources::write;
use crate::error::{Error, Result};

/// The controller a `unified` key belongs to (`io.max` → `io`); None for cgroup core files.
pub fn controller(key: &str) -> Result<Option<&str>> {
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

pub fn apply(dir: &Path, map: &HashMap<String, String>) -> Result<()> {
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
