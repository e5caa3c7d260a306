//! The leak audit: a snapshot of everything a runtime can leave behind, taken before and after a
//! test's runtime calls and compared.
//!
//! Tests run in parallel in one process and other suites run on the same host, so every part of
//! the snapshot is scoped to what this test's containers could have made: its container ids, its
//! temp dir (bundle, `--root`, pid files), cgroup dirs named after its ids, named netns it made.
//! Nothing another test does can show up in it.
//!
//! - processes: not zombies, whose command line names the test dir or an id (every runtime call
//!   carries `--root <dir>/root`), whose cwd or root is inside the test dir (an init before exec,
//!   a container without its own mount namespace), or whose cgroup path has an id in it (every
//!   container process, whatever its namespaces);
//! - mounts in the host's mount table whose source, root or mount point names the test dir or an
//!   id, and every nsfs (namespace file) bind mount among them;
//! - cgroup directories, on every mounted hierarchy, with an id in their path;
//! - entries under the `--root`s (the test's own and any it adds);
//! - temp files (`*.tmp`) anywhere in the test dir outside the rootfs, e.g. a half-written pid file;
//! - open fds of the caller (this test process) that point into the test dir;
//! - named network namespaces (`/run/netns`) with an id or one of the test's netns names.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What a snapshot is limited to.
#[derive(Debug, Clone)]
pub struct Scope {
    pub ids: BTreeSet<String>,
    pub dir: PathBuf,
    pub roots: Vec<PathBuf>,
    pub netns: Vec<String>,
}

impl Scope {
    /// Whether a command line or path names the test dir or one of the ids (whole words and
    /// whole path components only: `x-1-5` must not match another test's `x-1-51`).
    fn names_any(&self, text: &str) -> bool {
        text.split(|c: char| c.is_whitespace() || c == '=')
            .any(|t| Path::new(t).starts_with(&self.dir) || self.is_id(t) || self.path_has_id(t))
    }

    fn path_has_id(&self, path: &str) -> bool {
        path.split('/').any(|c| self.is_id(c))
    }

    fn is_id(&self, word: &str) -> bool {
        self.ids.contains(word)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub procs: BTreeSet<String>,
    pub mounts: BTreeSet<String>,
    pub cgroups: BTreeSet<String>,
    pub root_entries: BTreeSet<String>,
    pub temp_files: BTreeSet<String>,
    pub fds: BTreeSet<String>,
    pub netns: BTreeSet<String>,
}

/// The sizes of a snapshot's parts, for a soak's start/end report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub procs: usize,
    pub mounts: usize,
    pub cgroups: usize,
    pub root_entries: usize,
    pub temp_files: usize,
    pub fds: usize,
    pub netns: usize,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "procs={} mounts={} cgroups={} root_entries={} temp_files={} fds={} netns={}",
            self.procs, self.mounts, self.cgroups, self.root_entries, self.temp_files, self.fds, self.netns
        )
    }
}

impl Snapshot {
    pub fn take(scope: &Scope) -> Snapshot {
        Snapshot {
            procs: procs(scope),
            mounts: mounts(scope),
            cgroups: cgroups(scope),
            root_entries: scope.roots.iter().flat_map(|r| walk(r, r, &|_| true)).collect(),
            temp_files: walk(&scope.dir, &scope.dir, &|p| !p.ends_with("rootfs"))
                .into_iter()
                .filter(|p| p.ends_with(".tmp"))
                .collect(),
            fds: fds(scope),
            netns: netns(scope),
        }
    }

    pub fn counts(&self) -> Counts {
        Counts {
            procs: self.procs.len(),
            mounts: self.mounts.len(),
            cgroups: self.cgroups.len(),
            root_entries: self.root_entries.len(),
            temp_files: self.temp_files.len(),
            fds: self.fds.len(),
            netns: self.netns.len(),
        }
    }

    /// What `later` has that `self` had not (leaks), one line each. What went away is not a leak.
    pub fn leaks_in(&self, later: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        let parts: [(&str, &BTreeSet<String>, &BTreeSet<String>); 7] = [
            ("process", &self.procs, &later.procs),
            ("mount", &self.mounts, &later.mounts),
            ("cgroup dir", &self.cgroups, &later.cgroups),
            ("--root entry", &self.root_entries, &later.root_entries),
            ("temp file", &self.temp_files, &later.temp_files),
            ("open fd", &self.fds, &later.fds),
            ("named netns", &self.netns, &later.netns),
        ];
        for (what, before, after) in parts {
            for x in after.difference(before) {
                out.push(format!("{what}: {x}"));
            }
        }
        out
    }
}

/// Wait (up to `limit`, for processes that are still dying) until a new snapshot shows nothing
/// that `before` had not; return what is left otherwise.
pub fn wait_clean(scope: &Scope, before: &Snapshot, limit: Duration) -> Vec<String> {
    let start = Instant::now();
    loop {
        let leaks = before.leaks_in(&Snapshot::take(scope));
        if leaks.is_empty() || start.elapsed() > limit {
            return leaks;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn procs(scope: &Scope) -> BTreeSet<String> {
    let me = std::process::id();
    let mut out = BTreeSet::new();
    let Ok(rd) = fs::read_dir("/proc") else { return out };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == me {
            continue;
        }
        let p = e.path();
        let Ok(stat) = fs::read_to_string(p.join("stat")) else { continue };
        let Some(close) = stat.rfind(')') else { continue };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
            continue;
        }
        let start = fields.get(19).copied().unwrap_or("?");
        let cmdline = fs::read(p.join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let inside = |l: &str| fs::read_link(p.join(l)).is_ok_and(|t| t.starts_with(&scope.dir));
        let cgroup = fs::read_to_string(p.join("cgroup")).unwrap_or_default();
        let in_cgroup = cgroup.lines().any(|l| l.splitn(3, ':').nth(2).is_some_and(|path| scope.path_has_id(path)));
        if scope.names_any(&cmdline) || inside("cwd") || inside("root") || in_cgroup {
            out.insert(format!("pid {pid} (start {start}): {}", cmdline.trim_end()));
        }
    }
    out
}

fn mounts(scope: &Scope) -> BTreeSet<String> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else { continue };
        let (root, point) = (f.get(3).copied().unwrap_or(""), f.get(4).copied().unwrap_or(""));
        let fstype = f.get(sep + 1).copied().unwrap_or("");
        let source = f.get(sep + 2).copied().unwrap_or("");
        let netns_file = fstype == "nsfs" && scope.netns.iter().any(|n| point.ends_with(&format!("/{n}")));
        if scope.names_any(root) || scope.names_any(point) || scope.names_any(source) || netns_file {
            out.insert(format!("{point} ({fstype} {source} {root})"));
        }
    }
    out
}

/// Every cgroup hierarchy's mount point, from the host's mount table.
fn cgroup_mounts() -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            matches!(f.get(sep + 1), Some(&"cgroup") | Some(&"cgroup2")).then(|| PathBuf::from(f[4]))
        })
        .collect()
}

fn cgroups(scope: &Scope) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for m in cgroup_mounts() {
        let mut stack = vec![(m.clone(), 0)];
        while let Some((d, depth)) = stack.pop() {
            let Ok(rd) = fs::read_dir(&d) else { continue };
            for e in rd.flatten() {
                if !e.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let p = e.path();
                let rel = p.strip_prefix(&m).unwrap_or(&p).to_string_lossy().into_owned();
                if scope.path_has_id(&rel) {
                    out.insert(p.display().to_string());
                }
                if depth < 6 {
                    stack.push((p, depth + 1));
                }
            }
        }
    }
    out
}

/// Paths below `top` (relative to `base`), not descending where `descend` says no.
fn walk(top: &Path, base: &Path, descend: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![top.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap_or(&p).to_string_lossy().into_owned();
            if e.file_type().is_ok_and(|t| t.is_dir()) && descend(&rel) {
                stack.push(p);
            }
            out.push(rel);
        }
    }
    out
}

fn fds(scope: &Scope) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(rd) = fs::read_dir("/proc/self/fd") else { return out };
    for e in rd.flatten() {
        if let Ok(t) = fs::read_link(e.path()) {
            if t.starts_with(&scope.dir) {
                out.insert(format!("fd {} -> {}", e.file_name().to_string_lossy(), t.display()));
            }
        }
    }
    out
}

fn netns(scope: &Scope) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(rd) = fs::read_dir("/run/netns") else { return out };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if scope.netns.contains(&name) || scope.is_id(&name) {
            out.insert(name);
        }
    }
    out
}

/// The open fds and resident memory (KiB) of a process, for soaks.
pub fn fds_and_rss(pid: u32) -> (usize, u64) {
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).map(|r| r.count()).unwrap_or(0);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (fds, rss)
}
