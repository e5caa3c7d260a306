//! The systemd cgroup driver (`--systemd-cgroup`), as runc's: `cgroupsPath` is
//! `slice:prefix:name`, the container gets a transient `prefix-name.scope` in that slice, created
//! over D-Bus with the init's pid and the resource properties systemd knows (so that systemd's
//! view matches and a daemon-reload does not undo them); everything is then also written to the
//! scope's cgroup files like the cgroupfs driver does, and the device list is husk's eBPF filter.
//! Only on cgroup v2: a v1 host gets an error that says so. Rootless husk asks the user's own
//! manager (its session bus), whose units live below the manager's cgroup, delegated to the
//! user: the default slice is then `user.slice` there, as runc's.

mod dbus;
mod wire;

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use super::resources::present;
use super::{v2, Cgroup, Mode, Placement};
use crate::error::{Error, Result};
use dbus::{Props, Systemd, Val};

const FIELD: &str = "linux.cgroupsPath";

/// The unit a container lives in, saved in its state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unit {
    pub name: String,
    pub slice: String,
    /// In the user's manager (rootless husk), not PID 1's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub user: bool,
}

/// A connection to the user's manager, made while husk still has the user's uid: the bus takes
/// the uid a client sends for its own, and in the container's user namespace that is 0.
pub struct UserManager {
    bus: Systemd,
    unit: String,
}

impl UserManager {
    /// Move `pid` into the container's scope: the manager may where the user may not (their
    /// cgroups meet only in one of root's), since it asks PID 1.
    pub fn attach(&mut self, pid: i32) -> Result<()> {
        self.bus.attach_processes_to_unit(&self.unit, pid as u32)
    }
}

/// `a-b-c.slice` → `/a.slice/a-b.slice/a-b-c.slice` (systemd's slice nesting); `-.slice` is `/`.
pub fn expand_slice(slice: &str) -> Result<PathBuf> {
    let bad = || Error::field(FIELD, format!("invalid slice name {slice:?}"));
    let name = slice.strip_suffix(".slice").ok_or_else(bad)?;
    if name == "-" {
        return Ok(PathBuf::from("/"));
    }
    if name.is_empty() || name.contains('/') || name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err(bad());
    }
    let mut path = PathBuf::from("/");
    let mut prefix = String::new();
    for part in name.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push(format!("{prefix}.slice"));
    }
    Ok(path)
}

/// The unit and its cgroup directory for `cgroupsPath` (`slice:prefix:name`; empty: the default
/// `system.slice:husk:<id>`). With `user_manager` (the user's manager's own cgroup) the unit is
/// that manager's, its slice below that cgroup, `user.slice` by default.
pub fn unit_for(
    cgroups_path: Option<&Path>,
    id: &str,
    mount: &Path,
    user_manager: Option<&Path>,
) -> Result<(Unit, PathBuf)> {
    let text = cgroups_path.map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    let (slice, prefix, name) = if text.is_empty() {
        (String::new(), "husk".to_owned(), id.to_owned())
    } else {
        let parts: Vec<&str> = text.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            return Err(Error::field(
                FIELD,
                format!("expected \"slice:prefix:name\" for the systemd cgroup driver, got {text:?}"),
            ));
        };
        (slice.to_owned(), prefix.to_owned(), name.to_owned())
    };
    if name.is_empty() || name.contains('/') {
        return Err(Error::field(FIELD, format!("invalid unit name {name:?}")));
    }
    if name.ends_with(".slice") {
        return Err(Error::field(FIELD, "a slice as the container's own unit is not supported; name a scope"));
    }
    let slice = match slice.is_empty() {
        false => slice,
        true if user_manager.is_some() => "user.slice".to_owned(),
        true => "system.slice".to_owned(),
    };
    let unit = if name.ends_with(".scope") {
        name
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    let rel = expand_slice(&slice)?;
    let base = match user_manager {
        Some(m) => mount.join(m.strip_prefix("/").unwrap_or(m)),
        None => mount.to_path_buf(),
    };
    let dir = base.join(rel.strip_prefix("/").unwrap_or(&rel)).join(&unit);
    Ok((Unit { name: unit, slice, user: user_manager.is_some() }, dir))
}

/// "0-2,5" as systemd's AllowedCPUs bitmask: bit n of byte n/8 for CPU n.
pub fn cpu_mask(list: &str, field: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut set = |n: usize| {
        if out.len() <= n / 8 {
            out.resize(n / 8 + 1, 0u8);
        }
        out[n / 8] |= 1 << (n % 8);
    };
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || Error::field(field, format!("invalid list {list:?}"));
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if a > b || b > 8191 {
            return Err(bad());
        }
        (a..=b).for_each(&mut set);
    }
    Ok(out)
}

/// The resource properties systemd knows, converted as runc converts them.
fn resource_props(r: &LinuxResources) -> Result<Props> {
    let mut p: Props = Vec::new();
    let max = |v: i64| if v < 0 { u64::MAX } else { v as u64 };
    if let Some(m) = r.memory() {
        if let Some(l) = present(m.limit()) {
            p.push(("MemoryMax".into(), Val::U64(max(l))));
        }
        if let Some(l) = present(m.reservation()) {
            p.push(("MemoryLow".into(), Val::U64(max(l))));
        }
        if let Some(s) = v2::memory::swap_value(m.limit().unwrap_or(0), m.swap().unwrap_or(0))? {
            p.push(("MemorySwapMax".into(), Val::U64(s.parse().unwrap_or(u64::MAX))));
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares().filter(|&s| s != 0) {
            p.push(("CPUWeight".into(), Val::U64(v2::cpu::shares_to_weight(s))));
        }
        let (quota, period) = (present(c.quota()), c.period().filter(|&v| v != 0));
        if quota.is_some() || period.is_some() {
            let period = period.unwrap_or(100_000);
            p.push(("CPUQuotaPeriodUSec".into(), Val::U64(period)));
            let per_sec = match quota {
                Some(q) if q > 0 => {
                    // systemd keeps 10 ms granularity: round up as runc does.
                    let v = (q as u64) * 1_000_000 / period;
                    v.div_ceil(10_000) * 10_000
                }
                _ => u64::MAX,
            };
            p.push(("CPUQuotaPerSecUSec".into(), Val::U64(per_sec)));
        }
        if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            p.push(("AllowedCPUs".into(), Val::Bytes(cpu_mask(cpus, "linux.resources.cpu.cpus")?)));
        }
        if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            p.push(("AllowedMemoryNodes".into(), Val::Bytes(cpu_mask(mems, "linux.resources.cpu.mems")?)));
        }
    }
    if let Some(l) = r.pids().as_ref().map(|p| p.limit()).filter(|&l| l != 0) {
        p.push(("TasksMax".into(), Val::U64(max(l))));
    }
    Ok(p)
}

impl Cgroup {
    /// The systemd placement: nothing is created until [`Cgroup::add_process`] has the pid.
    /// `rootless`: in the calling user's manager.
    pub fn create_systemd(
        cgroups_path: Option<&Path>,
        id: &str,
        res: Option<&LinuxResources>,
        rootless: bool,
    ) -> Result<Cgroup> {
        let hierarchies = super::host_hierarchies()?;
        if Mode::of(&hierarchies) != Mode::V2 {
            return Err(Error::msg("--systemd-cgroup: the systemd cgroup driver needs a cgroup v2 (unified) host"));
        }
        let mount = hierarchies.iter().find(|h| h.v2).map(|h| h.mount.clone()).unwrap_or_default();
        let manager = match rootless {
            true => Some(PathBuf::from(Systemd::connect(true)?.control_group()?)),
            false => None,
        };
        let (unit, dir) = unit_for(cgroups_path, id, &mount, manager.as_deref())?;
        let mut cg = Cgroup {
            placements: vec![Placement { mount, controllers: Vec::new(), v2: true, dir, created: Vec::new() }],
            mode: Some(Mode::V2),
            resources: res.map(super::SavedResources::new).transpose()?,
            systemd: Some(unit),
        };
        // Refuse what cannot be applied before anything exists.
        super::devices::rules(res.and_then(|r| r.devices().as_ref()))?;
        if let Some(r) = res {
            super::apply::Plan::new(&cg, r, false)?;
            resource_props(r)?;
        }
        cg.placements[0].created.clear();
        Ok(cg)
    }

    /// Start the scope with `pid` in it, then write the resources to its cgroup.
    /// The user's manager of a container in one of its scopes (rootless `--systemd-cgroup`),
    /// connected: what moves an exec'd process in where a rootless husk may not.
    pub fn user_manager(&self) -> Result<Option<UserManager>> {
        let Some(unit) = self.systemd.as_ref().filter(|u| u.user) else { return Ok(None) };
        Ok(Some(UserManager { bus: Systemd::connect(true)?, unit: unit.name.clone() }))
    }

    pub(super) fn start_unit(&self, unit: &Unit, pid: i32) -> Result<()> {
        let mut props: Props = vec![
            ("Description".into(), Val::Str(format!("husk container {}", unit.name))),
            ("Slice".into(), Val::Str(unit.slice.clone())),
            ("Delegate".into(), Val::Bool(true)),
            ("DefaultDependencies".into(), Val::Bool(false)),
            ("PIDs".into(), Val::U32s(vec![pid as u32])),
            ("MemoryAccounting".into(), Val::Bool(true)),
            ("CPUAccounting".into(), Val::Bool(true)),
            ("IOAccounting".into(), Val::Bool(true)),
            ("TasksAccounting".into(), Val::Bool(true)),
        ];
        let res = self.resources.as_ref().map(super::SavedResources::get).transpose()?;
        if let Some(r) = &res {
            props.extend(resource_props(r)?);
        }
        Systemd::connect(unit.user)?.start_transient_unit(&unit.name, &props)?;
        let rules = super::devices::rules(res.as_ref().and_then(|r| r.devices().as_ref()))?;
        if unit.user {
            // Loading a device filter needs CAP_SYS_ADMIN on the host, which a user does not have;
            // runc ignores the failure rootless too. The user namespace is the limit: no mknod
            // there, and the nodes bound from the host keep the host's permissions.
            if !super::devices::is_allow_all(&rules) {
                tracing::debug!("rootless: linux.resources.devices not applied (no eBPF device filter for a user)");
            }
        } else if !super::devices::is_allow_all(&rules) {
            self.apply_devices(&rules)?;
        }
        if let Some(r) = &res {
            // Delegate=yes: systemd has enabled the controllers; husk does not touch the slices.
            let plan = super::apply::Plan::new(self, r, false)?;
            self.apply(r, &plan)?;
        }
        Ok(())
    }

    pub(super) fn update_unit(&self, unit: &Unit, r: &LinuxResources) -> Result<()> {
        let props = resource_props(r)?;
        if props.is_empty() {
            return Ok(());
        }
        Systemd::connect(unit.user)?.set_unit_properties(&unit.name, &props)
    }

    pub(super) fn stop_unit(&self, unit: &Unit) -> Result<()> {
        Systemd::connect(unit.user)?.stop_unit(&unit.name)?;
        // systemd removes the scope's cgroup; sub-cgroups the container made are left to it.
        match self.placements.first() {
            Some(p) if p.dir.exists() => {
                super::remove::rmdir_waiting(&p.dir, true, std::time::Instant::now() + super::remove::WAIT_LIMIT)
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_units_and_masks() {
        assert_eq!(expand_slice("-.slice").unwrap(), PathBuf::from("/"));
        assert_eq!(expand_slice("system.slice").unwrap(), PathBuf::from("/system.slice"));
        assert_eq!(expand_slice("a-b-c.slice").unwrap(), PathBuf::from("/a.slice/a-b.slice/a-b-c.slice"));
        assert!(expand_slice("a--b.slice").is_err() && expand_slice("nope").is_err());
        let m = Path::new("/sys/fs/cgroup");
        let (u, d) = unit_for(Some(Path::new("machine.slice:libpod:abc")), "x", m, None).unwrap();
        assert_eq!((u.name.as_str(), u.slice.as_str()), ("libpod-abc.scope", "machine.slice"));
        assert_eq!(d, PathBuf::from("/sys/fs/cgroup/machine.slice/libpod-abc.scope"));
        let (u, d) = unit_for(None, "id1", m, None).unwrap();
        assert_eq!(u.name, "husk-id1.scope");
        assert_eq!(d, PathBuf::from("/sys/fs/cgroup/system.slice/husk-id1.scope"));
        assert!(!u.user);
        // Rootless: below the user's manager, in its user.slice by default (runc's layout).
        let mgr = Path::new("/user.slice/user-1000.slice/user@1000.service");
        let (u, d) = unit_for(None, "id1", m, Some(mgr)).unwrap();
        assert_eq!((u.slice.as_str(), u.user), ("user.slice", true));
        assert_eq!(
            d,
            PathBuf::from("/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/user.slice/husk-id1.scope")
        );
        let (_, d) = unit_for(Some(Path::new("app-a.slice:p:n")), "x", m, Some(mgr)).unwrap();
        assert_eq!(d, m.join("user.slice/user-1000.slice/user@1000.service/app.slice/app-a.slice/p-n.scope"));
        let (u, _) = unit_for(Some(Path::new("user-1000.slice::x.scope")), "x", m, None).unwrap();
        assert_eq!((u.name.as_str(), u.slice.as_str()), ("x.scope", "user-1000.slice"));
        let e = unit_for(Some(Path::new("/husk/x")), "x", m, None).unwrap_err();
        assert!(e.to_string().starts_with("linux.cgroupsPath: expected \"slice:prefix:name\""), "{e}");
        assert_eq!(cpu_mask("0-2,9", "f").unwrap(), vec![0b111, 0b10]);
        assert!(cpu_mask("3-1", "f").is_err());
    }

    #[test]
    fn resource_properties_as_runc_converts() {
        let r: LinuxResources = serde_json::from_str(
            r#"{"memory": {"limit": 1048576, "swap": 3145728}, "cpu": {"shares": 1024, "quota": 25000,
                "period": 100000, "cpus": "1"}, "pids": {"limit": -1}}"#,
        )
        .unwrap();
        let p = resource_props(&r).unwrap();
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v);
        assert_eq!(get("MemoryMax"), Some(&Val::U64(1048576)));
        assert_eq!(get("MemorySwapMax"), Some(&Val::U64(2097152)));
        assert_eq!(get("CPUWeight"), Some(&Val::U64(100)), "runc main: the default shares give the default weight");
        assert_eq!(get("CPUQuotaPerSecUSec"), Some(&Val::U64(250000)));
        assert_eq!(get("AllowedCPUs"), Some(&Val::Bytes(vec![2])));
        assert_eq!(get("TasksMax"), Some(&Val::U64(u64::MAX)));
    }
}
