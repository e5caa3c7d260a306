//! Which directory each resource group of `linux.resources` goes to, and the writes in order.

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use super::resources::{self, Want};
use super::{hugetlb, rdma, v1, v2, Cgroup, Mode};
use crate::error::{Context, Error, Result};

/// Where each wanted group is written (v1 hierarchy dir, or the cgroup2 dir), and the cgroup2
/// controllers that must be enabled for it, each with the field that needs it.
#[derive(Debug, Default)]
pub struct Plan {
    targets: Vec<(Want, PathBuf, bool)>,
    v2_needs: Vec<(String, String)>,
    v2_dir: Option<PathBuf>,
}

impl Plan {
    /// Refuses, by field, anything the host cannot enforce; touches no cgroup file.
    pub fn new(cg: &Cgroup, r: &LinuxResources, devices: bool) -> Result<Plan> {
        resources::check(r)?;
        let v2 = cg.placements.iter().find(|p| p.v2);
        let mut plan = Plan { v2_dir: v2.map(|p| p.dir.clone()), ..Plan::default() };
        for w in resources::wanted(r) {
            if let Some(p) = cg.placements.iter().find(|p| !p.v2 && p.has(w.v1_name())) {
                plan.targets.push((w, p.dir.clone(), false));
                continue;
            }
            let not_mounted =
                || Error::field(w.field(), format!("the {} cgroup controller is not mounted", w.v1_name()));
            let (Some(p), Some(c)) = (v2, w.v2_name()) else {
                if cg.mode == Some(Mode::V2) && w.v2_name().is_none() {
                    return Err(Error::field(w.field(), "not supported on cgroup v2"));
                }
                return Err(not_mounted());
            };
            plan.targets.push((w, p.dir.clone(), true));
            plan.need(c, w.field().to_owned());
        }
        if let Some(map) = r.unified().as_ref().filter(|u| !u.is_empty()) {
            if v2.is_none() {
                return Err(Error::field(
                    "linux.resources.unified",
                    "invalid configuration: cannot use unified on cgroup v1 (no cgroup v2 is mounted on this host)",
                ));
            }
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for k in keys {
                if let Some(c) = v2::unified::controller(k)? {
                    plan.need(c, format!("linux.resources.unified.{k}"));
                }
            }
        }
        if devices && v2.is_none() && !cg.placements.iter().any(|p| p.has("devices")) {
            return Err(Error::field("linux.resources.devices", "the devices cgroup controller is not mounted"));
        }
        Ok(plan)
    }

    fn need(&mut self, c: &str, field: String) {
        if !self.v2_needs.iter().any(|(n, _)| n == c) {
            self.v2_needs.push((c.to_owned(), field));
        }
    }
}

impl Cgroup {
    /// Enable in `cgroup.subtree_control`, from the hierarchy's root down to the container's
    /// parent, what the plan needs. On a pure v2 host every available controller is enabled, as
    /// runc does, so that `events --stats` and a later `update` find their files; on a hybrid
    /// host only what is needed (no extra writes on the create path).
    pub(super) fn enable_v2(&self, plan: &Plan) -> Result<()> {
        let Some(p) = self.placements.iter().find(|p| p.v2) else { return Ok(()) };
        if self.systemd.is_some() {
            // Delegate=yes: systemd enabled the controllers; its slices are not ours to write.
            return Ok(());
        }
        let all = self.mode == Some(Mode::V2);
        if plan.v2_needs.is_empty() && !all {
            return Ok(());
        }
        let avail_path = p.mount.join("cgroup.controllers");
        let avail = std::fs::read_to_string(&avail_path).ctx(|| format!("read {}", avail_path.display()))?;
        for (c, field) in &plan.v2_needs {
            if !avail.split_whitespace().any(|a| a == c) {
                // A `unified` key of a controller the host binds to v1 (a hybrid host): runc's
                // words for unified on a v1 host, which tools match.
                let runc = if field.starts_with("linux.resources.unified.") && !all {
                    "invalid configuration: cannot use unified on cgroup v1: "
                } else {
                    ""
                };
                return Err(Error::field(field, format!("{runc}the cgroup v2 controller {c:?} is not available")));
            }
        }
        let needed: Vec<String> = plan.v2_needs.iter().map(|(c, _)| format!("+{c}")).collect();
        let everything: Vec<String> = avail.split_whitespace().map(|c| format!("+{c}")).collect();
        let rel = p.dir.strip_prefix(&p.mount).unwrap_or(Path::new(""));
        let mut dir = p.mount.clone();
        for comp in rel.components() {
            // Only what is not enabled there yet: a level above a delegated subtree (the root, a
            // user's slice) is not the caller's to write, and already has what was delegated.
            let enabled = std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
            let missing = |list: &[String]| -> Vec<String> {
                list.iter().filter(|c| !enabled.split_whitespace().any(|e| e == &c[1..])).cloned().collect()
            };
            let (missing_all, missing_needed) = (missing(&everything), missing(&needed));
            // All at once when that works; a controller refused there (a parent that has
            // processes, a threaded subtree) must not fail one that is not needed.
            let done = all
                && (missing_all.is_empty()
                    || super::resources::write(&dir, "cgroup.subtree_control", &missing_all.join(" "), "").is_ok());
            if !done && !missing_needed.is_empty() {
                let field = &plan.v2_needs[0].1;
                super::resources::write(&dir, "cgroup.subtree_control", &missing_needed.join(" "), field)?;
            }
            dir.push(comp);
        }
        Ok(())
    }

    pub(super) fn apply(&self, r: &LinuxResources, plan: &Plan) -> Result<()> {
        for (w, dir, is_v2) in &plan.targets {
            let (dir, is_v2) = (dir.as_path(), *is_v2);
            match w {
                Want::Memory => {
                    let m = r.memory().as_ref().ok_or_else(|| Error::msg("memory"))?;
                    if is_v2 {
                        v2::memory::apply(dir, m)?
                    } else {
                        v1::memory::apply(dir, m)?
                    }
                }
                Want::Cpu => {
                    let c = r.cpu().as_ref().ok_or_else(|| Error::msg("cpu"))?;
                    if is_v2 {
                        v2::cpu::apply(dir, c)?
                    } else {
                        v1::cpu::apply(dir, c)?
                    }
                }
                Want::Cpuset => v1::cpu::cpuset(dir, r.cpu().as_ref().ok_or_else(|| Error::msg("cpu"))?)?,
                Want::Pids => {
                    if let Some(l) = resources::pids_limit(r) {
                        resources::write(dir, "pids.max", &l, "linux.resources.pids.limit")?;
                    }
                }
                Want::Blkio => {
                    let b = r.block_io().as_ref().ok_or_else(|| Error::msg("blockIO"))?;
                    if is_v2 {
                        v2::io::apply(dir, b)?
                    } else {
                        v1::blkio::apply(dir, b)?
                    }
                }
                Want::Hugetlb => hugetlb::apply(dir, r.hugepage_limits().as_deref().unwrap_or_default(), is_v2)?,
                Want::NetCls => v1::net::class_id(dir, r.network().as_ref().ok_or_else(|| Error::msg("network"))?)?,
                Want::NetPrio => v1::net::priorities(dir, r.network().as_ref().ok_or_else(|| Error::msg("network"))?)?,
                Want::Rdma => rdma::apply(dir, r.rdma().as_ref().ok_or_else(|| Error::msg("rdma"))?)?,
            }
        }
        if let (Some(dir), Some(u)) = (&plan.v2_dir, r.unified().as_ref().filter(|u| !u.is_empty())) {
            v2::unified::apply(dir, u)?;
        }
        Ok(())
    }
}

/// `memory.checkBeforeUpdate`: refuse a limit below what the container uses now (v1 refuses
/// that itself; v2 would OOM-kill instead).
pub fn check_memory_usage(cg: &Cgroup, new_limit: i64) -> Result<()> {
    if new_limit <= 0 {
        return Ok(());
    }
    let usage = match cg.placements.iter().find(|p| !p.v2 && p.has("memory")) {
        Some(p) => resources::read_u64(&p.dir, "memory.usage_in_bytes", "linux.resources.memory.limit")?,
        None => match cg.placements.iter().find(|p| p.v2) {
            Some(p) => resources::read_u64(&p.dir, "memory.current", "linux.resources.memory.limit")?,
            None => return Ok(()),
        },
    };
    if (new_limit as u64) < usage {
        return Err(Error::field(
            "linux.resources.memory.limit",
            format!("{new_limit} is below the current usage {usage} (checkBeforeUpdate)"),
        ));
    }
    Ok(())
}
