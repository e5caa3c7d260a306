//! cgroup placement: where a container's processes live on v1, v2 and hybrid hosts.
//!
//! Paths resolve like runc's cgroupfs driver; resources are written to the v1 controllers when
//! the host has them (v1 and hybrid) and to the cgroup2 dir on a pure v2 host.

mod bpf;
mod devices;
mod join;
mod mountinfo;
mod remove;
mod resources;
#[cfg(test)]
mod tests;

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

impl Placement {
    fn has(&self, controller: &str) -> bool {
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

/// A new v1 cpuset cgroup starts with no cpus and no mems, and no task may join it until they
/// are set: copy them from the parent, as runc does.
fn cpuset_inherit(created: &[PathBuf]) -> Result<()> {
    for dir in created {
        let Some(parent) = dir.parent() else { continue };
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let from = parent.join(file);
            let value = std::fs::read_to_string(&from).ctx(|| format!("read {}", from.display()))?;
            let value = value.trim();
            if !value.is_empty() {
                resources::write(dir, file, value, "linux.resources.cpu")?;
            }
        }
    }
    Ok(())
}

/// The controllers a pure-v2 placement needs enabled, with the field that needs each.
fn v2_needs(r: &LinuxResources, mode: Mode) -> Result<Vec<(&str, String)>> {
    let mut needs: Vec<(&str, String)> = Vec::new();
    if mode == Mode::V2 {
        if r.memory().as_ref().is_some_and(resources::memory_is_set) {
            needs.push(("memory", "linux.resources.memory".into()));
        }
        if let Some(c) = r.cpu() {
            if resources::cpu_is_set(c) {
                needs.push(("cpu", "linux.resources.cpu".into()));
            }
            if resources::cpuset_is_set(c) {
                needs.push(("cpuset", "linux.resources.cpu".into()));
            }
        }
        if resources::pids_limit(r).is_some() {
            needs.push(("pids", "linux.resources.pids".into()));
        }
    }
    if let Some(map) = r.unified() {
        for k in map.keys() {
            if let Some(c) = resources::unified_controller(k)? {
                if !needs.iter().any(|(n, _)| *n == c) {
                    needs.push((c, format!("linux.resources.unified.{k}")));
                }
            }
        }
    }
    Ok(needs)
}

/// Enable `needs` in `cgroup.subtree_control` from the hierarchy's root down to dir's parent.
fn v2_enable(p: &Placement, needs: &[(&str, String)]) -> Result<()> {
    if needs.is_empty() {
        return Ok(());
    }
    let avail_path = p.mount.join("cgroup.controllers");
    let avail = std::fs::read_to_string(&avail_path).ctx(|| format!("read {}", avail_path.display()))?;
    for (c, field) in needs {
        if !avail.split_whitespace().any(|a| a == *c) {
            return Err(Error::field(field, format!("the cgroup v2 controller {c:?} is not available")));
        }
    }
    let line: Vec<String> = needs.iter().map(|(c, _)| format!("+{c}")).collect();
    let line = line.join(" ");
    let rel = p.dir.strip_prefix(&p.mount).unwrap_or(Path::new(""));
    let mut dir = p.mount.clone();
    for comp in rel.components() {
        resources::write(&dir, "cgroup.subtree_control", &line, &needs[0].1)?;
        dir.push(comp);
    }
    Ok(())
}

impl Cgroup {
    pub fn create(cgroups_path: Option<&Path>, id: &str, resources: Option<&LinuxResources>) -> Result<Cgroup> {
        let hierarchies = host_hierarchies()?;
        Self::create_in(&hierarchies, cgroups_path, id, resources)
    }

    fn create_in(
        hierarchies: &[Hierarchy],
        cgroups_path: Option<&Path>,
        id: &str,
        res: Option<&LinuxResources>,
    ) -> Result<Cgroup> {
        let mode = Mode::of(hierarchies);
        if mode == Mode::None {
            return Err(Error::msg("cgroups: no cgroup filesystem is mounted (/proc/self/mountinfo)"));
        }
        // Everything that can be refused is refused before a directory exists.
        let rules = devices::rules(res.and_then(|r| r.devices().as_ref()))?;
        let needs = match res {
            Some(r) => {
                resources::check_supported(r)?;
                if mode == Mode::V1 && r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
                    return Err(Error::field("linux.resources.unified", "cgroup v2 is not mounted on this host"));
                }
                v2_needs(r, mode)?
            }
            None => Vec::new(),
        };
        let (absolute, inner) = match cgroups_path {
            Some(p) if !p.as_os_str().is_empty() => clean(p),
            _ => clean(Path::new(id)),
        };
        let mut own = None;
        let mut cg = Cgroup::default();
        // In hybrid mode only the first cgroup2 mount is systemd's unified hierarchy.
        let mut have_v2 = false;
        for h in hierarchies {
            let usable = if h.v2 {
                !std::mem::replace(&mut have_v2, true)
            } else {
                h.controllers.iter().any(|c| !c.starts_with("name=") || c == "name=systemd")
            };
            if !usable {
                continue;
            }
            let dir = resolve(h, mode, absolute, &inner, &mut own).ctx(|| "linux.cgroupsPath")?;
            cg.placements.push(Placement {
                mount: h.mount.clone(),
                controllers: h.controllers.clone(),
                v2: h.v2,
                dir,
                created: Vec::new(),
            });
        }
        match cg.make(mode, res, &rules, &needs) {
            Ok(()) => Ok(cg),
            Err(e) => {
                if let Err(e2) = cg.destroy() {
                    tracing::warn!("cgroups: cleanup after a failed create: {e2}");
                }
                Err(e)
            }
        }
    }

    fn make(
        &mut self,
        mode: Mode,
        res: Option<&LinuxResources>,
        rules: &[devices::Rule],
        needs: &[(&str, String)],
    ) -> Result<()> {
        for p in &mut self.placements {
            mkdir_p(&p.dir, &p.mount, &mut p.created)?;
            if !p.v2 && p.has("cpuset") {
                cpuset_inherit(&p.created)?;
            }
        }
        match mode {
            Mode::V2 => self.apply_v2(res, rules, needs),
            _ => {
                self.apply_v1(res, rules)?;
                match self.placements.iter().find(|p| p.v2) {
                    Some(p) => {
                        v2_enable(p, needs)?;
                        if let Some(u) = res.and_then(|r| r.unified().as_ref()) {
                            resources::v2_unified(&p.dir, u)?;
                        }
                        Ok(())
                    }
                    None => Ok(()),
                }
            }
        }
    }

    fn v1_dir(&self, controller: &str, field: &str) -> Result<&Path> {
        self.placements
            .iter()
            .find(|p| !p.v2 && p.has(controller))
            .map(|p| p.dir.as_path())
            .ok_or_else(|| Error::field(field, format!("the {controller} cgroup controller is not mounted")))
    }

    fn apply_v1(&self, res: Option<&LinuxResources>, rules: &[devices::Rule]) -> Result<()> {
        if !devices::is_allow_all(rules) {
            devices::apply_v1(self.v1_dir("devices", "linux.resources.devices")?, rules)?;
        }
        let Some(r) = res else { return Ok(()) };
        if let Some(m) = r.memory().as_ref().filter(|m| resources::memory_is_set(m)) {
            resources::v1_memory(self.v1_dir("memory", "linux.resources.memory")?, m)?;
        }
        if let Some(c) = r.cpu() {
            if resources::cpu_is_set(c) {
                resources::v1_cpu(self.v1_dir("cpu", "linux.resources.cpu")?, c)?;
            }
            if resources::cpuset_is_set(c) {
                resources::cpuset(self.v1_dir("cpuset", "linux.resources.cpu.cpus")?, c)?;
            }
        }
        if let Some(l) = resources::pids_limit(r) {
            resources::write(
                self.v1_dir("pids", "linux.resources.pids")?,
                "pids.max",
                &l,
                "linux.resources.pids.limit",
            )?;
        }
        Ok(())
    }

    fn apply_v2(&self, res: Option<&LinuxResources>, rules: &[devices::Rule], needs: &[(&str, String)]) -> Result<()> {
        let Some(p) = self.placements.iter().find(|p| p.v2) else { return Ok(()) };
        v2_enable(p, needs)?;
        if !devices::is_allow_all(rules) {
            let fd = open_dir(&p.dir)?;
            let what = format!("linux.resources.devices: {}", p.dir.display());
            bpf::attach_device_filter(std::os::fd::AsFd::as_fd(&fd), &devices::bpf_program(rules), &what)?;
        }
        let Some(r) = res else { return Ok(()) };
        if let Some(m) = r.memory().as_ref().filter(|m| resources::memory_is_set(m)) {
            resources::v2_memory(&p.dir, m)?;
        }
        if let Some(c) = r.cpu() {
            resources::v2_cpu(&p.dir, c)?;
            resources::cpuset(&p.dir, c)?;
        }
        if let Some(l) = resources::pids_limit(r) {
            resources::write(&p.dir, "pids.max", &l, "linux.resources.pids.limit")?;
        }
        if let Some(u) = r.unified() {
            resources::v2_unified(&p.dir, u)?;
        }
        Ok(())
    }

    /// The cgroup2 placement as an fd for clone3's CLONE_INTO_CGROUP.
    pub fn v2_dir_fd(&self) -> Result<Option<OwnedFd>> {
        match self.placements.iter().find(|p| p.v2) {
            Some(p) => open_dir(&p.dir).map(Some),
            None => Ok(None),
        }
    }

    pub fn add_process(&self, pid: i32, skip_v2: bool) -> Result<()> {
        let pid = pid.to_string();
        for p in self.placements.iter().filter(|p| !(skip_v2 && p.v2)) {
            resources::write(&p.dir, "cgroup.procs", &pid, "cgroup")?;
        }
        Ok(())
    }

    /// Every process in the container's cgroup and its sub-cgroups, read from the placement
    /// most likely to hold all of them.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let rank = |p: &Placement| {
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
        };
        let Some(p) = self.placements.iter().min_by_key(|p| rank(p)) else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for dir in remove::subtree(&p.dir)? {
            out.extend(remove::read_ids(&dir.join("cgroup.procs"))?);
        }
        Ok(out)
    }

    /// Remove what create made: the container's own dir with any sub-cgroups in it, then the
    /// parents husk created, if nothing else lives in them now.
    pub fn destroy(&self) -> Result<()> {
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

fn destroy_placement(p: &Placement, deadline: Instant) -> Result<()> {
    if p.created.contains(&p.dir) {
        for dir in remove::subtree(&p.dir)? {
            remove::rmdir_waiting(&dir, p.v2, deadline)?;
        }
    }
    for dir in p.created.iter().rev().filter(|d| **d != p.dir) {
        match rustix::fs::rmdir(dir) {
            // Shared with another container by now: its last user removes it.
            Ok(()) | Err(Errno::NOENT) | Err(Errno::BUSY) | Err(Errno::NOTEMPTY) => {}
            Err(e) => return Err(Error::os(format!("rmdir {}", dir.display()), e.raw_os_error())),
        }
    }
    Ok(())
}

fn open_dir(dir: &Path) -> Result<OwnedFd> {
    rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, FileMode::empty())
        .ctx(|| format!("open {}", dir.display()))
}

/// The host's cgroup hierarchies, from /proc/self/mountinfo.
pub fn host_hierarchies() -> Result<Vec<Hierarchy>> {
    mountinfo::read_mountinfo()
}

/// How the host's cgroups are laid out (for `features` and diagnostics).
pub fn current_mode() -> Result<Mode> {
    Ok(Mode::of(&host_hierarchies()?))
}
