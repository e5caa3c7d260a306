//! `linux.intelRdt`: the container's resctrl group (cache and memory-bandwidth allocation) and
//! monitoring group, with the create/join/remove rules of config-linux.md.

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxIntelRdt;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

const FIELD: &str = "linux.intelRdt";
const RESCTRL: &str = "/sys/fs/resctrl";
/// statfs(2) f_type of resctrl (RDTGROUP_SUPER_MAGIC).
const RESCTRL_MAGIC: i64 = 0x0765_5821;

/// What husk made for a container, so delete removes exactly that. Saved in the state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RdtPlacement {
    /// The group whose `tasks` the init joined.
    pub group: PathBuf,
    /// Directories husk created, innermost first (a MON group before its CTRL_MON group).
    pub created: Vec<PathBuf>,
}

/// The resctrl mount, checked to be resctrl: the spec requires an error where there is none.
pub fn resctrl_root() -> Result<PathBuf> {
    match rustix::fs::statfs(RESCTRL) {
        // f_type is i64 on x86_64 but narrower elsewhere.
        #[allow(clippy::unnecessary_cast)]
        Ok(s) if s.f_type as i64 == RESCTRL_MAGIC => Ok(PathBuf::from(RESCTRL)),
        _ => Err(Error::field(FIELD, format!("this host has no resctrl filesystem (Intel RDT) mounted at {RESCTRL}"))),
    }
}

/// The schemata lines to write, in the order the spec gives: L3, then MB, then `schemata`.
fn schemata_lines(rdt: &LinuxIntelRdt) -> Result<Vec<String>> {
    let mut lines: Vec<String> = Vec::new();
    lines.extend(rdt.l3_cache_schema().iter().cloned());
    if let Some(mb) = rdt.mem_bw_schema() {
        if !mb.starts_with("MB:") {
            return Err(Error::field(format!("{FIELD}.memBwSchema"), format!("{mb:?} must start with \"MB:\"")));
        }
        lines.push(mb.clone());
    }
    lines.extend(rdt.schemata().iter().flatten().cloned());
    if let Some(bad) = lines.iter().find(|l| l.contains('\n')) {
        return Err(Error::field(FIELD, format!("schema {bad:?} contains a newline")));
    }
    Ok(lines.into_iter().filter(|l| !l.is_empty()).collect())
}

/// A schema line "L3:0=ff;1=f0" is present when each of its `id=value` parts appears in the
/// file's line for that resource (the kernel prints every domain, in its own order).
fn schema_matches(file: &str, line: &str) -> bool {
    let Some((res, parts)) = line.split_once(':') else { return false };
    let Some(have) = file.lines().find_map(|l| l.trim().strip_prefix(res.trim()).and_then(|r| r.strip_prefix(':')))
    else {
        return false;
    };
    let have: Vec<&str> = have.split(';').map(str::trim).collect();
    parts.split(';').map(str::trim).all(|p| {
        have.iter().any(|h| match (h.split_once('='), p.split_once('=')) {
            (Some((hid, hv)), Some((pid, pv))) => {
                hid == pid && hv.trim_start_matches('0').eq_ignore_ascii_case(pv.trim_start_matches('0'))
            }
            _ => false,
        })
    })
}

/// Make or join the group for `id` under `root` and put `pid` in it.
pub fn apply(root: &Path, rdt: &LinuxIntelRdt, id: &str, pid: i32) -> Result<RdtPlacement> {
    let lines = schemata_lines(rdt)?;
    let mut placement = RdtPlacement::default();
    let result = place(root, rdt, id, pid, &lines, &mut placement);
    if result.is_err() {
        remove(&placement);
    }
    result.map(|()| placement)
}

fn place(root: &Path, rdt: &LinuxIntelRdt, id: &str, pid: i32, lines: &[String], out: &mut RdtPlacement) -> Result<()> {
    let clos = rdt.clos_id().as_deref();
    if clos.is_some_and(|c| c != "/" && (c.contains('/') || c == "." || c == ".." || c.is_empty())) {
        return Err(Error::field(format!("{FIELD}.closID"), format!("{:?} is not a group name", clos.unwrap_or(""))));
    }
    let group = match clos {
        Some("/") => root.to_path_buf(),
        Some(c) => root.join(c),
        None => root.join(id),
    };
    let exists = group.is_dir();
    if !exists {
        if clos.is_some() && lines.is_empty() {
            return Err(Error::field(
                format!("{FIELD}.closID"),
                format!("{} does not exist and no schemata were given to create it", group.display()),
            ));
        }
        std::fs::create_dir(&group).ctx(|| format!("{FIELD}: create {}", group.display()))?;
        out.created.insert(0, group.clone());
    }
    let schemata = group.join("schemata");
    if exists && clos.is_some() && !lines.is_empty() {
        // A shared, pre-existing group keeps its schemata: a container may only join it if they agree.
        let current = std::fs::read_to_string(&schemata).ctx(|| format!("{FIELD}: read {}", schemata.display()))?;
        if let Some(line) = lines.iter().find(|l| !schema_matches(&current, l)) {
            return Err(Error::field(FIELD, format!("{line:?} does not match {}", schemata.display())));
        }
    } else {
        for line in lines {
            std::fs::write(&schemata, format!("{line}\n")).ctx(|| format!("{FIELD}: write {line:?} to schemata"))?;
        }
    }
    let mut tasks_group = group.clone();
    if *rdt.enable_monitoring() == Some(true) {
        let mon = group.join("mon_groups").join(id);
        std::fs::create_dir(&mon).ctx(|| format!("{FIELD}.enableMonitoring: create {}", mon.display()))?;
        out.created.insert(0, mon.clone());
        tasks_group = mon;
    }
    // A MON group's tasks are also its CTRL_MON parent's: one write places the init in both.
    std::fs::write(tasks_group.join("tasks"), pid.to_string()).ctx(|| format!("{FIELD}: add pid {pid} to tasks"))?;
    out.group = tasks_group;
    Ok(())
}

/// Remove what husk created; tasks still there move back to the parent group (resctrl does that).
pub fn remove(placement: &RdtPlacement) {
    for dir in &placement.created {
        if let Err(e) = std::fs::remove_dir(dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("{FIELD}: remove {}: {e}", dir.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// resctrl's own files vanish with their group; the stand-in's regular files must go first.
    fn clear_files(p: &RdtPlacement) {
        for dir in &p.created {
            for f in ["tasks", "schemata"] {
                let _ = std::fs::remove_file(dir.join(f));
            }
        }
    }

    fn rdt(json: &str) -> LinuxIntelRdt {
        serde_json::from_str(json).unwrap()
    }

    /// A stand-in resctrl: plain directories and files (creating a group makes its files).
    fn fake_root(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("husk-rdt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        root
    }

    #[test]
    fn no_clos_id_creates_a_group_named_after_the_container_and_removes_it() {
        let root = fake_root("id");
        let p = apply(&root, &rdt(r#"{"l3CacheSchema":"L3:0=f","memBwSchema":"MB:0=50"}"#), "c1", 42).unwrap();
        assert_eq!(p.group, root.join("c1"));
        assert_eq!(std::fs::read_to_string(root.join("c1/tasks")).unwrap(), "42");
        // Written in order, one line a write; a plain file keeps the last one.
        assert_eq!(std::fs::read_to_string(root.join("c1/schemata")).unwrap(), "MB:0=50\n");
        clear_files(&p);
        remove(&p);
        assert!(!root.join("c1").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn clos_id_must_exist_without_schemata_and_is_never_removed() {
        let root = fake_root("clos");
        let e = apply(&root, &rdt(r#"{"closID":"gold"}"#), "c1", 42).unwrap_err().to_string();
        assert!(e.starts_with("linux.intelRdt.closID:"), "{e}");
        std::fs::create_dir(root.join("gold")).unwrap();
        let p = apply(&root, &rdt(r#"{"closID":"gold"}"#), "c1", 42).unwrap();
        assert!(p.created.is_empty());
        remove(&p);
        assert!(root.join("gold").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn existing_clos_id_must_match_the_schemata() {
        let root = fake_root("match");
        std::fs::create_dir(root.join("gold")).unwrap();
        std::fs::write(root.join("gold/schemata"), "    L3:0=00ff;1=0f\n    MB:0=100;1=100\n").unwrap();
        assert!(apply(&root, &rdt(r#"{"closID":"gold","l3CacheSchema":"L3:1=f;0=ff"}"#), "c1", 1).is_ok());
        let e = apply(&root, &rdt(r#"{"closID":"gold","memBwSchema":"MB:0=50"}"#), "c2", 1).unwrap_err().to_string();
        assert!(e.contains("does not match"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn monitoring_group_is_made_and_removed_first() {
        let root = fake_root("mon");
        std::fs::create_dir_all(root.join("c1/mon_groups")).unwrap();
        let p = apply(&root, &rdt(r#"{"enableMonitoring":true}"#), "c1", 7).unwrap();
        assert_eq!(p.group, root.join("c1/mon_groups/c1"));
        assert_eq!(std::fs::read_to_string(root.join("c1/mon_groups/c1/tasks")).unwrap(), "7");
        clear_files(&p);
        remove(&p);
        assert!(!root.join("c1/mon_groups/c1").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn bad_values_name_the_field() {
        let root = fake_root("bad");
        let e = apply(&root, &rdt(r#"{"memBwSchema":"L3:0=f"}"#), "c1", 1).unwrap_err().to_string();
        assert!(e.starts_with("linux.intelRdt.memBwSchema"), "{e}");
        let e = apply(&root, &rdt(r#"{"closID":"../x","schemata":["L3:0=f"]}"#), "c1", 1).unwrap_err().to_string();
        assert!(e.starts_with("linux.intelRdt.closID"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
