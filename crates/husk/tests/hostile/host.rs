//! Host-wide settings a config reaches for (sysctls, a cgroupsPath at a hierarchy's root), and
//! [`HostSnapshot`], what every hostile case checks is unchanged on the host.
#![allow(unused_imports, dead_code)]

use serde_json::json;

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
    // Its own canary killed: the kind of change a hostile delete makes. SIGKILL takes effect
    // asynchronously: wait until it is a zombie, or the check can still see it alive.
    let canary = snap.canary.id();
    unsafe { libc::kill(canary as i32, libc::SIGKILL) };
    assert!(wait_for(5, || !alive(canary)), "the canary {canary} did not die");
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

/// The config without the namespaces of these types (the host's are then the container's).
fn without_namespaces(ctx: &mut Ctx, types: &[&str]) {
    let ns = ctx.config["linux"]["namespaces"].as_array_mut().expect("linux.namespaces");
    ns.retain(|n| !types.iter().any(|t| n["type"] == *t));
    if types.contains(&"uts") {
        // A hostname needs a UTS namespace of its own (refused before the sysctls otherwise).
        ctx.config.as_object_mut().unwrap().remove("hostname");
    }
}

/// The host's value of a sysctl, as a config would give it.
fn host_sysctl(key: &str) -> String {
    fs::read_to_string(format!("/proc/sys/{}", key.replace('.', "/"))).unwrap().trim().to_string()
}

/// `create` of a config that must be refused. Should the runtime accept it anyway, its init is
/// killed by pid and its state removed by hand before the test fails: never a `delete`, which
/// kills by the cgroup the config named (for a hierarchy's root, every process on the host).
#[track_caller]
fn create_refused(ctx: &Ctx, id: &str) -> Out {
    let o = ctx.create(id);
    if o.success() {
        let pid = ctx.state(id)["pid"].as_i64().unwrap_or(0);
        if pid > 0 {
            // SAFETY: kill(2) of the pid the runtime reported as this container's init.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        let _ = fs::remove_dir_all(ctx.root.join(id));
        panic!("the runtime accepted what it must refuse: {o}");
    }
    o.fails()
}

/// Sysctls that no namespace of the container scopes are the host's: refused by key with runc's
/// words, the host unchanged. Each value is the host's own, so that a runtime without the check
/// (husk before it: every one of these was written to the host) changes nothing by accepting it.
#[test]
fn sysctls_outside_the_containers_namespaces_are_refused() {
    let cases: &[(&str, &[&str], &str)] = &[
        ("kernel.domainname", &["uts"], "is not in a separate kernel namespace"),
        ("kernel.hostname", &["uts"], "is not in a separate kernel namespace"),
        ("kernel.hostname", &[], "conflicts with the OCI"),
        ("net.ipv4.ip_forward", &["network"], "not allowed in host network namespace"),
        ("net/ipv4/conf/all/forwarding", &["network"], "not allowed in host network namespace"),
        ("kernel.msgmax", &["ipc"], "is not allowed in the hosts ipc namespace"),
        ("fs.mqueue.msg_max", &["ipc"], "is not allowed in the hosts ipc namespace"),
        ("vm.swappiness", &[], "is not in a separate kernel namespace"),
        ("vm.overcommit_memory", &[], "is not in a separate kernel namespace"),
        ("kernel.panic", &[], "is not in a separate kernel namespace"),
    ];
    for (key, drop, want) in cases {
        let mut ctx = Ctx::new("hostile-sysctl");
        without_namespaces(&mut ctx, drop);
        ctx.config["linux"]["sysctl"] = json!({ *key: host_sysctl(&key.replace('/', ".")) });
        let id = ctx.id();
        let before = ctx.audit();
        let host = HostSnapshot::take(&ctx);
        let o = create_refused(&ctx, &id).fails_with(want);
        if is_husk() {
            // The log line quotes the message: the key's own quotes come escaped.
            assert!(o.stderr.contains(&format!("linux.sysctl[\\\"{key}\\\"]")), "{key}: {o}");
        }
        host.assert_unchanged();
        ctx.assert_no_leaks(&before);
    }
}

/// A network namespace joined by path that is the one the runtime runs in is the host's: its
/// sysctls are refused as without one (runc's check). Harmless values, as above.
#[test]
fn sysctl_in_a_joined_host_network_namespace_is_refused() {
    let mut ctx = Ctx::new("hostile-sysctl-netns");
    let ns = ctx.config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.retain(|n| n["type"] != "network");
    // The test's own network namespace: the one the runtime, its child, runs in.
    ns.push(json!({"type": "network", "path": format!("/proc/{}/ns/net", std::process::id())}));
    ctx.config["linux"]["sysctl"] = json!({ "net.ipv4.ip_forward": host_sysctl("net.ipv4.ip_forward") });
    let id = ctx.id();
    let host = HostSnapshot::take(&ctx);
    create_refused(&ctx, &id).fails_with("not allowed in host network namespace");
    host.assert_unchanged();
}

/// `kernel.core_pattern` with a pipe runs a program as host root at the next crash: refused
/// whatever namespaces the container has. Not run against a runtime without the check (it
/// would write the host's core_pattern): `sysctls_outside_the_containers_namespaces_are_refused`
/// shows that with harmless values.
#[test]
fn sysctl_core_pattern_is_refused() {
    let mut ctx = Ctx::new("hostile-corepattern");
    ctx.config["linux"]["sysctl"] = json!({"kernel.core_pattern": "|/bin/false husk-hostile-test"});
    let id = ctx.id();
    let before = ctx.audit();
    let host = HostSnapshot::take(&ctx);
    let o = create_refused(&ctx, &id).fails_with("is not in a separate kernel namespace");
    if is_husk() {
        assert!(o.stderr.contains(r#"linux.sysctl[\"kernel.core_pattern\"]"#), "{o}");
    }
    host.assert_unchanged();
    ctx.assert_no_leaks(&before);
}

/// A cgroupsPath that cleans to a hierarchy's root makes every host process the container's
/// (`ps` lists them, `delete` killed them all); one that cleans to nothing relative is the
/// caller's own cgroup. Refused before anything exists; the canary lives. Never run the
/// `delete` of such a container: `create_refused` kills only the init of a runtime that
/// accepts it.
#[test]
fn cgroups_path_at_a_hierarchy_root_is_refused() {
    for path in ["/", "/../..", "//husk-tests/..", "..", "."] {
        let mut ctx = Ctx::new("hostile-cgroot");
        ctx.config["linux"]["cgroupsPath"] = json!(path);
        ctx.sh("exec sleep 100");
        let id = ctx.id();
        let before = ctx.audit();
        let host = HostSnapshot::take(&ctx);
        let o = create_refused(&ctx, &id);
        if is_husk() {
            assert!(o.stderr.contains(&format!(r#"linux.cgroupsPath: \"{path}\""#)), "{path}: {o}");
        }
        host.assert_unchanged();
        ctx.assert_no_leaks(&before);
    }
}

/// A cgroup the container joined (it existed, empty, before create) and that another process
/// shares later: `kill --all` and `delete --force` kill the container's processes, found by its
/// pid namespace, and never the neighbour; nothing is frozen or removed that husk did not make.
/// Without a pid namespace of its own only the init is provably the container's.
#[test]
fn kill_and_delete_spare_the_neighbours_in_a_joined_cgroup() {
    for own_pid_ns in [true, false] {
        let mut ctx = Ctx::new("hostile-cgshared");
        if !own_pid_ns {
            without_namespaces(&mut ctx, &["pid"]);
        }
        let id = ctx.id();
        let dirs = Ctx::cgroup_dirs(&id);
        for d in &dirs {
            fs::create_dir_all(d).unwrap();
        }
        // With the host's pid namespace a child of the init would not be provably the
        // container's (it would be left alone, and in the cgroup): the init alone then.
        ctx.sh(if own_pid_ns { "sleep 1000 & exec sleep 1000" } else { "exec sleep 1000" });
        let o = ctx.run_with(&id, &["-d"]).ok();
        let init = ctx.state(&id)["pid"].as_i64().unwrap() as u32;
        // The neighbour joins every hierarchy of the container's cgroup.
        let mut neighbour = spawn(Command::new("sleep").arg("1000").stdin(Stdio::null()));
        for d in &dirs {
            fs::write(d.join("cgroup.procs"), neighbour.id().to_string()).unwrap();
        }
        let host = HostSnapshot::take(&ctx);
        ctx.husk(&["kill", "--all", &id, "KILL"]).ok();
        assert!(wait_for(10, || !alive(init)), "the container's init survived kill --all: {o}");
        ctx.husk(&["delete", "--force", &id]).ok();
        assert!(neighbour.try_wait().is_none(), "kill --all or delete --force killed the neighbour");
        for d in &dirs {
            assert!(d.is_dir(), "{} existed before the container and was removed", d.display());
            let frozen = ["freezer.state", "cgroup.freeze"]
                .iter()
                .any(|f| fs::read_to_string(d.join(f)).is_ok_and(|s| matches!(s.trim(), "FROZEN" | "1")));
            assert!(!frozen, "{} was left frozen", d.display());
        }
        host.assert_unchanged();
        neighbour.kill();
        neighbour.wait();
        for d in &dirs {
            assert!(wait_for(5, || fs::remove_dir(d).is_ok() || !d.exists()), "rmdir {}", d.display());
        }
    }
}
