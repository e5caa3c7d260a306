//! Host-wide settings a config reaches for (sysctls, a cgroupsPath at a hierarchy's root), and
//! [`HostSnapshot`], what every hostile case checks is unchanged on the host.
#![allow(unused_imports, dead_code)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

/// Host sysctls a hostile config names; their values must not move.
pub const WATCHED_SYSCTLS: &[&str] = &[
    "kernel/core_pattern",
    "kernel/hostname",
    "kernel/domainname",
    "kernel/msgmax",
    "kernel/shmmax",
    "kernel/panic",
    "fs/mqueue/msg_max",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/forwarding",
    "vm/swappiness",
    "vm/overcommit_memory",
];

/// What must be the same on the host before and after a hostile case: the watched sysctls, a
/// canary process of the test's own (alive: nothing killed it), a canary file outside the bundle
/// (same bytes), the host's mount table outside the directories tests and managers mount under,
/// and the top level of every cgroup hierarchy.
pub struct HostSnapshot {
    sysctls: Vec<(String, String)>,
    mounts: BTreeSet<String>,
    cgroup_tops: BTreeSet<String>,
    canary: Guarded,
    canary_file: PathBuf,
}

/// Mount points under these belong to tests and managers running beside this one.
const BUSY_MOUNT_TREES: &[&str] = &["/tmp/", "/run/", "/var/lib/", "/sys/fs/cgroup/", "/proc/"];

fn host_mounts() -> BTreeSet<String> {
    let text = fs::read_to_string("/proc/1/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| !BUSY_MOUNT_TREES.iter().any(|t| mp.starts_with(t)))
        .map(str::to_string)
        .collect()
}

/// Top-level dirs of every mounted cgroup hierarchy (a v1 controller dir, the unified mount, or
/// the v2 root), whose own `cgroup.procs` counts are not compared: other tests run beside us.
fn cgroup_tops(settled_only: bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let top = Path::new("/sys/fs/cgroup");
    let mut roots = vec![top.to_path_buf()];
    if let Ok(rd) = fs::read_dir(top) {
        roots.extend(rd.flatten().map(|e| e.path()).filter(|p| p.join("cgroup.procs").exists()));
    }
    for r in roots {
        if let Ok(rd) = fs::read_dir(&r) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                // Tests and managers make and remove their own top-level dirs all the time
                // (`run-NN` of other suites on this machine): the snapshot takes only dirs
                // unchanged for a minute as the host's own.
                let young = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().map_or(true, |age| age < std::time::Duration::from_secs(60)));
                if e.path().is_dir() && !name.starts_with("husk") && !name.contains("test") && (!settled_only || !young)
                {
                    out.insert(e.path().display().to_string());
                }
            }
        }
    }
    out
}

fn read_sysctls() -> Vec<(String, String)> {
    WATCHED_SYSCTLS
        .iter()
        .map(|k| (k.to_string(), fs::read_to_string(format!("/proc/sys/{k}")).unwrap_or_else(|e| format!("<{e}>"))))
        .collect()
}

impl HostSnapshot {
    /// Take the snapshot; `ctx` gives the place for the canary file (beside, not in, the bundle).
    pub fn take(ctx: &Ctx) -> HostSnapshot {
        // It lives as long as the hostile case; the bound is only for a case that never ends.
        let canary = spawn_for(
            Command::new("sleep").arg("3600").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()),
            Duration::from_secs(1800),
        );
        let canary_file = ctx.dir.join("canary-outside-bundle");
        fs::write(&canary_file, b"untouched\n").unwrap();
        HostSnapshot {
            sysctls: read_sysctls(),
            mounts: host_mounts(),
            cgroup_tops: cgroup_tops(true),
            canary,
            canary_file,
        }
    }

    /// Panic naming everything that changed on the host since [`HostSnapshot::take`].
    #[track_caller]
    pub fn assert_unchanged(mut self) {
        let mut changed = Vec::new();
        for ((k, before), (_, after)) in self.sysctls.iter().zip(read_sysctls()) {
            if *before != after {
                changed.push(format!("sysctl {k}: {before:?} -> {after:?}"));
            }
        }
        match self.canary.try_wait() {
            None => {}
            other => changed.push(format!("the canary process {} died: {other:?}", self.canary.id())),
        }
        match fs::read(&self.canary_file) {
            Ok(b) if b == b"untouched\n" => {}
            other => changed.push(format!("canary file {}: {other:?}", self.canary_file.display())),
        }
        let mounts = host_mounts();
        for m in mounts.symmetric_difference(&self.mounts) {
            changed.push(format!("host mount table: {m} appeared or went"));
        }
        let tops = cgroup_tops(false);
        for c in self.cgroup_tops.difference(&tops) {
            changed.push(format!("cgroup {c} went"));
        }
        self.canary.kill();
        self.canary.wait();
        assert!(changed.is_empty(), "the host changed:\n  {}", changed.join("\n  "));
    }
}

impl Drop for HostSnapshot {
    fn drop(&mut self) {
        self.canary.kill();
        self.canary.wait();
    }
}

/// The snapshot sees what it is made to see: a changed sysctl, a killed canary.
#[test]
fn host_snapshot_notices_changes() {
    let ctx = Ctx::new("hostile-snapshot");
    let snap = HostSnapshot::take(&ctx);
    // Its own canary killed: the kind of change a hostile delete makes.
    unsafe { libc::kill(snap.canary.id() as i32, libc::SIGKILL) };
    // The signal is delivered asynchronously: under load the check could run before it lands.
    assert!(wait_for(5, || !alive(snap.canary.id())), "the canary outlived SIGKILL");
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| snap.assert_unchanged()));
    let msg = r.expect_err("a dead canary must be noticed");
    let text = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(text.contains("canary process"), "{text}");
    let snap = HostSnapshot::take(&ctx);
    fs::write(&snap.canary_file, b"written\n").unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| snap.assert_unchanged()));
    assert!(r.is_err(), "a changed canary file must be noticed");
    HostSnapshot::take(&ctx).assert_unchanged();
}
