//! cgroups: where a container's processes live on v1, v2 and hybrid hosts, and what limits them.
//!
//! Paths resolve like runc's cgroupfs driver. Each resource goes where its controller is bound:
//! the v1 hierarchy of that name when the host has one, else the cgroup2 directory (a hybrid
//! host such as one with hugetlb only on its unified mount uses both). `v1/` and `v2/` hold the
//! writes per controller; `freezer.rs` pause/resume, `stats.rs` and `oom.rs` what `events` reads.

mod apply;
mod bpf;
mod devices;
pub mod freezer;
mod hugetlb;
mod join;
mod mountinfo;
pub(crate) use mountinfo::unescape as unescape_mountinfo;
pub mod oom;
mod rdma;
mod remove;
mod resources;
mod rootless;
pub mod stats;
pub mod systemd;
#[cfg(test)]
mod tests;
mod v1;
mod v2;

use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use oci_spec::runtime::LinuxResources;
use rustix::fs::{Mode as FileMode, OFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};
pub use join::ExecCgroups;
pub use mountinfo::Mode;
pub use resources::{normalize_pids, pids_limit, pids_limit_given};
pub use rootless::is_permission_error;

/// A mounted cgroup hierarchy on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where it is mounted, e.g. `/sys/fs/cgroup/memory` or `/sys/fs/cgroup`.
    pub mount: PathBuf,
    /// The path of the mount's root within the hierarchy (mountinfo field 4), usually `/`.
    pub root: PathBuf,
    /// v1 controllers bound to it (`name=systemd` included); empty for cgroup2.
    pub controllers: Vec<String>,
    pub v2: bool,
}

/// Where one container was placed: one entry per hierarchy. Saved in the container's state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cgroup {
    pub placements: Vec<Placement>,
    /// The host's layout when the container was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// The resources in force (the config's, with every `update` merged in): what an update
    /// merges into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<SavedResources>,
    /// The transient unit, with the systemd driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<systemd::Unit>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Placement {
    pub mount: PathBuf,
    pub controllers: Vec<String>,
    pub v2: bool,
    /// The container's cgroup directory (absolute host path).
    pub dir: PathBuf,
    /// Directories husk created, outermost first: exactly these are removed on delete.
    pub created: Vec<PathBuf>,
}

/// `linux.resources` kept as JSON text in the state: parsed only by the commands that need it
/// (update, the systemd driver), not by every `state` or `kill`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SavedResources(Box<serde_json::value::RawValue>);

impl SavedResources {
    pub fn new(r: &LinuxResources) -> Result<SavedResources> {
        serde_json::value::to_raw_value(r).map(SavedResources).map_err(|e| Error::msg(format!("encode resources: {e}")))
    }

    pub fn get(&self) -> Result<LinuxResources> {
        serde_json::from_str(self.0.get()).map_err(|e| Error::msg(format!("state: saved resources: {e}")))
    }
}

impl Placement {
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// `cgroupsPath` without `.`/`..`/empty components (runc's CleanPath: `..` stops at the root).
fn clean(path: &Path) -> (bool, PathBuf) {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    (path.is_absolute(), out)
}

/// The container's directory in hierarchy `h`. `own` is /proc/self/cgroup, read only when a
/// relative path needs it.
fn resolve(
    h: &Hierarchy,
    mode: Mode,
    absolute: bool,
    inner: &Path,
    own: &mut Option<Vec<mountinfo::OwnCgroup>>,
) -> Result<PathBuf> {
    if absolute {
        return Ok(h.mount.join(inner));
    }
    let own = match own {
        Some(o) => o,
        None => own.insert(mountinfo::read_proc_cgroup()?),
    };
    let mut base = mountinfo::own_relative(h, own)?;
    if mode == Mode::V2 {
        // runc's fs2 driver: the caller's own cgroup has processes, so controllers cannot be
        // enabled below it; its parent is where sibling cgroups go.
        base.pop();
    }
    Ok(h.mount.join(base).join(inner))
}

/// mkdir -p that reports the directories it made, outermost first.
fn mkdir_p(dir: &Path, stop: &Path, created: &mut Vec<PathBuf>) -> Result<()> {
    match rustix::fs::mkdir(dir, FileMode::from_raw_mode(0o755)) {
        Ok(()) => {
            created.push(dir.to_path_buf());
            Ok(())
        }
        Err(Errno::EXIST) => Ok(()),
        Err(Errno::NOENT) if dir != stop => {
            let parent = dir.parent().ok_or_else(|| Error::os(format!("mkdir {}", dir.display()), libc::ENOENT))?;
            mkdir_p(parent, stop, created)?;
            mkdir_p(dir, stop, created)
        }
        Err(e) => Err(Error::os(format!("mkdir {}", dir.display()), e.raw_os_error())),
    }
}

/// The directories `mkdir_p(dir, stop)` would make now, outermost first.
fn missing_dirs(dir: &Path, stop: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> =
        dir.ancestors().take_while(|d| *d != stop).take_while(|d| !d.exists()).map(Path::to_path_buf).collect();
    out.reverse();
    out
}

/// A new v1 cpuset cgroup starts with no cpus and no mems, and no task may join it until they
/// are set: copy them from the parent, as runc does. Every level from the hierarchy's root down
/// is checked, not only the ones we made: a parent that a concurrent create has just made may
/// still be empty.
fn cpuset_inherit(p: &Placement) -> Result<()> {
    let rel = p.dir.strip_prefix(&p.mount).unwrap_or(Path::new(""));
    let mut dir = p.mount.clone();
    for comp in rel.components() {
        let parent = dir.clone();
        dir.push(comp);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let own = dir.join(file);
            let current = std::fs::read_to_string(&own).ctx(|| format!("read {}", own.display()))?;
            if !current.trim().is_empty() {
                continue;
            }
            let from = parent.join(file);
            let value = std::fs::read_to_string(&from).ctx(|| format!("read {}", from.display()))?;
            let value = value.trim();
            if !value.is_empty() {
                resources::write(&dir, file, value, "linux.resources.cpu")?;
            }
        }
    }
    Ok(())
}

impl Cgroup {
    pub fn create(cgroups_path: Option<&Path>, id: &str, resources: Option<&LinuxResources>) -> Result<Cgroup> {
        Self::create_recorded(cgroups_path, id, resources, |_| Ok(()))
    }

    /// `create`, calling `record` with the plan before the first directory is made: the plan's
    /// `created` lists the directories that do not exist yet, so a husk killed while making them
    /// leaves a record from which `delete` removes them.
    pub fn create_recorded(
        cgroups_path: Option<&Path>,
        id: &str,
        resources: Option<&LinuxResources>,
        record: impl FnOnce(&Cgroup) -> Result<()>,
    ) -> Result<Cgroup> {
        let hierarchies = host_hierarchies()?;
        Self::create_in_recorded(&hierarchies, cgroups_path, id, resources, record)
    }

    /// The placements for `cgroups_path` in every usable hierarchy, nothing created yet.
    pub(super) fn placements_in(hierarchies: &[Hierarchy], cgroups_path: Option<&Path>, id: &str) -> Result<Cgroup> {
        let mode = Mode::of(hierarchies);
        if mode == Mode::None {
            return Err(Error::msg("cgroups: no cgroup filesystem is mounted (/proc/self/mountinfo)"));
        }
        let (absolute, inner) = match cgroups_path {
            Some(p) if !p.as_os_str().is_empty() => clean(p),
            _ => clean(Path::new(id)),
        };
        if inner.as_os_str().is_empty() {
            // `..` stops at the root as with runc (`/../x` is `/x`), so nothing climbs above the
            // hierarchy's root or, relative, above the caller's cgroup: but a path that cleans
            // to nothing would make the container one with the whole host (absolute: every
            // process is in the root) or with its caller, and `kill --all` or `delete` kill
            // everything in it.
            let given = cgroups_path.map(|p| p.display().to_string()).unwrap_or_default();
            let why = if absolute {
                "is the root of the cgroup hierarchies, where every process of the host is"
            } else {
                "is the cgroup of the caller itself, not one of the container's own"
            };
            return Err(Error::field("linux.cgroupsPath", format!("{given:?} {why}")));
        }
        let mut own = None;
        let mut cg = Cgroup { mode: Some(mode), ..Cgroup::default() };
        for h in usable(hierarchies) {
            let dir = resolve(h, mode, absolute, &inner, &mut own).ctx(|| "linux.cgroupsPath")?;
            cg.placements.push(Placement {
                mount: h.mount.clone(),
                controllers: h.controllers.clone(),
                v2: h.v2,
                dir,
                created: Vec::new(),
            });
        }
        Ok(cg)
    }

    #[cfg(test)]
    fn create_in(
        hierarchies: &[Hierarchy],
        cgroups_path: Option<&Path>,
        id: &str,
        res: Option<&LinuxResources>,
    ) -> Result<Cgroup> {
        Self::create_in_recorded(hierarchies, cgroups_path, id, res, |_| Ok(()))
    }

    fn create_in_recorded(
        hierarchies: &[Hierarchy],
        cgroups_path: Option<&Path>,
        id: &str,
        res: Option<&LinuxResources>,
        record: impl FnOnce(&Cgroup) -> Result<()>,
    ) -> Result<Cgroup> {
        let mut cg = Self::placements_in(hierarchies, cgroups_path, id)?;
        // Everything that can be refused is refused before a directory exists.
        let rules = devices::rules(res.and_then(|r| r.devices().as_ref()))?;
        let plan = match res {
            Some(r) => apply::Plan::new(&cg, r, !devices::is_allow_all(&rules))?,
            None => apply::Plan::default(),
        };
        cg.resources = res.map(SavedResources::new).transpose()?;
        let mut recorded = cg.clone();
        for p in &mut recorded.placements {
            p.created = missing_dirs(&p.dir, &p.mount);
        }
        record(&recorded)?;
        match cg.make(res, &rules, &plan) {
            Ok(()) => Ok(cg),
            Err(e) => {
                if let Err(e2) = cg.destroy() {
                    tracing::warn!("cgroups: cleanup after a failed create: {e2}");
                }
                Err(e)
            }
        }
    }

    fn make(&mut self, res: Option<&LinuxResources>, rules: &[devices::Rule], plan: &apply::Plan) -> Result<()> {
        for (i, p) in self.placements.iter_mut().enumerate() {
            mkdir_p(&p.dir, &p.mount, &mut p.created)?;
            if i == 0 {
                crate::crashpoint::here("cgroup:first-made");
            }
        }
        self.check_fit()?;
        for p in &self.placements {
            if !p.v2 && p.has("cpuset") {
                cpuset_inherit(p)?;
            }
        }
        self.enable_v2(plan)?;
        if !devices::is_allow_all(rules) {
            self.apply_devices(rules)?;
        }
        match res {
            Some(r) => self.apply(r, plan),
            None => Ok(()),
        }
    }

    /// runc's checks that the container's cgroup is fit for a new container (config-linux.md
    /// allows them, runc makes them): one that existed before must hold no process (the
    /// container would share it, and `kill --all` or `delete` would kill the others), and none
    /// may be frozen (the init would freeze as it joins, and create wait for it forever). A new
    /// cgroup below a frozen parent is frozen too, so the freezer is read whether husk made the
    /// directory or not: one small read a hierarchy that can freeze.
    fn check_fit(&self) -> Result<()> {
        let field = "linux.cgroupsPath";
        for p in self.placements.iter().filter(|p| !p.created.contains(&p.dir)) {
            let mut n = 0;
            for dir in remove::subtree(&p.dir)? {
                n += remove::read_ids(&dir.join("cgroup.procs"))?.len();
            }
            if n > 0 {
                return Err(Error::field(
                    field,
                    format!("container's cgroup is not empty: {n} process(es) found in {}", p.dir.display()),
                ));
            }
        }
        let read = |d: &Path, f: &str| crate::smallfile::read_string(d.join(f), 256).unwrap_or_default();
        for p in &self.placements {
            let frozen = if p.v2 {
                read(&p.dir, "cgroup.events").lines().any(|l| l.trim() == "frozen 1")
            } else if p.has("freezer") {
                matches!(read(&p.dir, "freezer.state").trim(), "FROZEN" | "FREEZING")
            } else {
                continue;
            };
            if frozen {
                return Err(Error::field(
                    field,
                    format!("container's cgroup unexpectedly frozen: {} (or a parent) is frozen", p.dir.display()),
                ));
            }
        }
        Ok(())
    }

    /// Write the device list where the devices controller is: the v1 hierarchy, else an eBPF
    /// program on the cgroup2 directory.
    fn apply_devices(&self, rules: &[devices::Rule]) -> Result<()> {
        if let Some(p) = self.placements.iter().find(|p| !p.v2 && p.has("devices")) {
            return devices::apply_v1(&p.dir, rules);
        }
        let Some(p) = self.placements.iter().find(|p| p.v2) else {
            return Err(Error::field("linux.resources.devices", "the devices cgroup controller is not mounted"));
        };
        let fd = open_dir(&p.dir)?;
        let what = format!("linux.resources.devices: {}", p.dir.display());
        bpf::attach_device_filter(std::os::fd::AsFd::as_fd(&fd), &devices::bpf_program(rules), &what)
    }

    /// `update`: merge `change` into the resources the container has, then write them all again
    /// (runc's way: the kernel gets a consistent set, e.g. memory and memory+swap in the right
    /// order). The device list is neither updated nor recorded as changed, as with runc (whose
    /// update skips devices). `memory.limit` -1 without a swap value makes memory+swap
    /// unlimited too, as runc's update does: a swap limit left from before would be below it.
    pub fn update(&mut self, change: &LinuxResources) -> Result<()> {
        let base = self.resources.as_ref().map(SavedResources::get).transpose()?;
        let mut change = change.clone();
        if let Some(m) = change.memory().as_ref().filter(|m| m.limit() == Some(-1) && m.swap().is_none()) {
            let mut m = *m;
            m.set_swap(Some(0));
            change.set_memory(Some(m));
        }
        let mut merged = merge(base.as_ref(), &change)?;
        merged.set_devices(base.as_ref().and_then(|b| b.devices().clone()));
        let change = &change;
        let mut without_devices = merged.clone();
        without_devices.set_devices(None);
        let plan = apply::Plan::new(self, &without_devices, false)?;
        if let (Some(m), Some(new)) = (change.memory(), change.memory().as_ref().and_then(|m| m.limit())) {
            if m.check_before_update() == Some(true) {
                apply::check_memory_usage(self, new)?;
            }
        }
        self.enable_v2(&plan)?;
        self.apply(&without_devices, &plan)?;
        if let Some(unit) = &self.systemd {
            self.update_unit(unit, &without_devices)?;
        }
        self.resources = Some(SavedResources::new(&merged)?);
        Ok(())
    }

    /// The cgroup2 placement as an fd for clone3's CLONE_INTO_CGROUP.
    pub fn v2_dir_fd(&self) -> Result<Option<OwnedFd>> {
        if self.systemd.is_some() {
            // The scope's cgroup exists only once systemd has started it, with the pid.
            return Ok(None);
        }
        match self.placements.iter().find(|p| p.v2) {
            Some(p) => open_dir(&p.dir).map(Some),
            None => Ok(None),
        }
    }

    pub fn add_process(&self, pid: i32, skip_v2: bool) -> Result<()> {
        if let Some(unit) = &self.systemd {
            return self.start_unit(unit, pid);
        }
        let pid = pid.to_string();
        for p in self.placements.iter().filter(|p| !(skip_v2 && p.v2)) {
            resources::write(&p.dir, "cgroup.procs", &pid, "cgroup")?;
        }
        Ok(())
    }

    /// Every process in the container's cgroup and its sub-cgroups, read from the placement
    /// most likely to hold all of them.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let Some(p) = self.placements.iter().min_by_key(|p| pids_rank(p)) else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for dir in remove::subtree(&p.dir)? {
            out.extend(remove::read_ids(&dir.join("cgroup.procs"))?);
        }
        Ok(out)
    }

    /// SIGKILL every task of the cgroup and its sub-cgroups in one write to cgroup v2's
    /// `cgroup.kill` (Linux 5.14): no freeze, no list, no fork slipping past, and frozen v2 tasks
    /// die too. False where that cannot be done (no v2 placement, an older kernel, a file the
    /// caller may not write): the caller signals by list instead. A cgroup already gone is
    /// true: nothing is left in it.
    pub fn kill(&self) -> bool {
        // Only a cgroup that is the container's alone: in any other the caller picks by process.
        if !self.owned() {
            return false;
        }
        let Some(p) = self.placements.iter().find(|p| p.v2) else { return false };
        resources::write(&p.dir, "cgroup.kill", "1", "cgroup.kill").is_ok() || !p.dir.exists()
    }

    /// Whether the container's cgroup is its own: husk made it for this container (its directory
    /// in every hierarchy, or the systemd scope). Only then is everything in it the container's;
    /// a cgroup that existed before (joined, or shared) may hold anybody's processes.
    pub fn owned(&self) -> bool {
        self.systemd.is_some()
            || (!self.placements.is_empty() && self.placements.iter().all(|p| p.created.contains(&p.dir)))
    }

    /// `destroy` in one rmdir a hierarchy, for cgroups that are empty: the usual delete, after
    /// the container's processes are gone. Stops at the first busy one (a task or a sub-cgroup
    /// left) and returns false: the caller kills what is left and destroys the rest. The
    /// placements go in the reverse of the order `pids()` prefers them, so the one `pids()`
    /// reads is still there when an earlier one was busy. Only for cgroups the container
    /// created in every hierarchy; false for any other (nothing removed).
    pub fn remove_if_empty(&self) -> Result<bool> {
        if self.systemd.is_some() || !self.placements.iter().all(|p| p.created.contains(&p.dir)) {
            return Ok(false);
        }
        let mut order: Vec<&Placement> = self.placements.iter().collect();
        order.sort_by_key(|p| std::cmp::Reverse(pids_rank(p)));
        for p in order {
            match rustix::fs::rmdir(&p.dir) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(Errno::BUSY) | Err(Errno::NOTEMPTY) => return Ok(false),
                Err(e) => return Err(Error::os(format!("rmdir {}", p.dir.display()), e.raw_os_error())),
            }
        }
        for p in &self.placements {
            remove_created_parents(p)?;
        }
        Ok(true)
    }

    /// Remove what create made: the container's own dir with any sub-cgroups in it, then the
    /// parents husk created, if nothing else lives in them now.
    pub fn destroy(&self) -> Result<()> {
        if let Some(unit) = &self.systemd {
            return self.stop_unit(unit);
        }
        let deadline = Instant::now() + remove::WAIT_LIMIT;
        let mut first_err = None;
        for p in &self.placements {
            if let Err(e) = destroy_placement(p, deadline) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// Which placement `pids()` reads: the one most likely to hold every process of the container.
fn pids_rank(p: &Placement) -> u8 {
    if p.v2 {
        0
    } else if p.has("pids") {
        1
    } else if p.has("freezer") {
        2
    } else if p.has("memory") {
        3
    } else {
        4
    }
}

fn destroy_placement(p: &Placement, deadline: Instant) -> Result<()> {
    if p.created.contains(&p.dir) {
        for dir in remove::subtree(&p.dir)? {
            remove::rmdir_waiting(&dir, p.v2, deadline)?;
        }
    }
    remove_created_parents(p)
}

/// The parents of the container's cgroup that husk made, innermost first, where now empty.
fn remove_created_parents(p: &Placement) -> Result<()> {
    for dir in p.created.iter().rev().filter(|d| **d != p.dir) {
        match rustix::fs::rmdir(dir) {
            // Shared with another container by now: its last user removes it.
            Ok(()) | Err(Errno::NOENT) | Err(Errno::BUSY) | Err(Errno::NOTEMPTY) => {}
            Err(e) => return Err(Error::os(format!("rmdir {}", dir.display()), e.raw_os_error())),
        }
    }
    Ok(())
}

/// `change` laid over `base` field by field (JSON objects merged, everything else replaced):
/// what `update` leaves out stays as it was.
pub fn merge(base: Option<&LinuxResources>, change: &LinuxResources) -> Result<LinuxResources> {
    fn lay(base: &mut serde_json::Value, change: serde_json::Value) {
        match (base, change) {
            (serde_json::Value::Object(b), serde_json::Value::Object(c)) => {
                for (k, v) in c {
                    lay(b.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (b, c) => *b = c,
        }
    }
    let encode = |r: &LinuxResources| serde_json::to_value(r).map_err(|e| Error::msg(format!("encode resources: {e}")));
    let mut value = match base {
        Some(b) => encode(b)?,
        None => serde_json::json!({}),
    };
    lay(&mut value, encode(change)?);
    serde_json::from_value(value).map_err(|e| Error::msg(format!("merge resources: {e}")))
}

fn open_dir(dir: &Path) -> Result<OwnedFd> {
    rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, FileMode::empty())
        .ctx(|| format!("open {}", dir.display()))
}

/// Every check create makes on `linux.resources` before it makes a cgroup, on any host layout:
/// what `update` must refuse too. Pure (touches nothing), so the fuzzer runs it.
pub fn check_resources(r: &LinuxResources) -> Result<()> {
    let rules = devices::rules(r.devices().as_ref())?;
    let _ = devices::bpf_program(&rules);
    resources::check(r)?;
    if let Some(map) = r.unified() {
        for k in map.keys() {
            v2::unified::controller(k)?;
        }
    }
    Ok(())
}

/// The host's cgroup hierarchies, from /proc/self/mountinfo.
/// The hierarchies a container is placed in: v1 ones with a controller (or systemd's named
/// one), and in hybrid mode only the first cgroup2 mount, systemd's unified hierarchy.
fn usable(hierarchies: &[Hierarchy]) -> impl Iterator<Item = &Hierarchy> {
    let mut have_v2 = false;
    hierarchies.iter().filter(move |h| {
        if h.v2 {
            !std::mem::replace(&mut have_v2, true)
        } else {
            h.controllers.iter().any(|c| !c.starts_with("name=") || c == "name=systemd")
        }
    })
}

pub fn host_hierarchies() -> Result<Vec<Hierarchy>> {
    mountinfo::read_mountinfo()
}

/// How the host's cgroups are laid out (for `features` and diagnostics).
pub fn current_mode() -> Result<Mode> {
    Ok(Mode::of(&host_hierarchies()?))
}
