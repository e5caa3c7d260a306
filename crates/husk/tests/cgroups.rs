//! cgroups on this v1 (hybrid) host: placement by cgroupsPath, limits, removal on delete.
mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};

/// The cgroup path of `pid` for a v1 controller, from /proc/<pid>/cgroup.
fn cgroup_of(pid: u64, controller: &str) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    text.lines()
        .find_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
            ctrls.split(',').any(|c| c == controller).then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("no {controller} line in /proc/{pid}/cgroup:\n{text}"))
}

fn start_sleeper(ctx: &mut Ctx) -> (String, u64) {
    ctx.sh("exec sleep 100");
    let id = ctx.id();
    ctx.run_with(&id, &["-d"]).ok();
    let pid = ctx.state(&id)["pid"].as_u64().unwrap();
    (id, pid)
}

#[test]
fn placed_in_cgroups_path_and_removed_on_delete() {
    let mut ctx = Ctx::new("cgpath");
    let (id, pid) = start_sleeper(&mut ctx);
    let want = format!("/{CGROUP_PARENT}/{id}");
    for c in ["memory", "pids", "cpu", "devices", "freezer"] {
        let got = cgroup_of(pid, c);
        assert!(got.ends_with(&want), "{c}: {got} does not end with {want}");
        assert!(Path::new("/sys/fs/cgroup").join(c).join(got.trim_start_matches('/')).is_dir());
    }
    let procs = fs::read_to_string(format!("/sys/fs/cgroup/pids/{CGROUP_PARENT}/{id}/cgroup.procs")).unwrap();
    assert!(procs.lines().any(|l| l == pid.to_string()), "{procs}");
    ctx.husk(&["kill", &id, "KILL"]).ok();
    ctx.wait_status(&id, "stopped");
    ctx.husk(&["delete", &id]).ok();
    for d in Ctx::cgroup_dirs(&id) {
        assert!(!d.exists(), "{} remains after delete", d.display());
    }
}

#[test]
fn memory_limit() {
    let mut ctx = Ctx::new("cgmem");
    ctx.config["linux"]["resources"]["memory"] = json!({"limit": 64 * 1024 * 1024});
    let (id, pid) = start_sleeper(&mut ctx);
    let path = cgroup_of(pid, "memory");
    assert!(path.ends_with(&id));
    let limit = fs::read_to_string(format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")).unwrap();
    assert_eq!(limit.trim(), "67108864");
}

#[test]
fn pids_and_cpu_limits() {
    let mut ctx = Ctx::new("cgpids");
    ctx.config["linux"]["resources"]["pids"] = json!({"limit": 42});
    ctx.config["linux"]["resources"]["cpu"] = json!({"shares": 512});
    let (id, _pid) = start_sleeper(&mut ctx);
    let base = |c: &str| PathBuf::from(format!("/sys/fs/cgroup/{c}/{CGROUP_PARENT}/{id}"));
    assert_eq!(fs::read_to_string(base("pids").join("pids.max")).unwrap().trim(), "42");
    assert_eq!(fs::read_to_string(base("cpu").join("cpu.shares")).unwrap().trim(), "512");
}

#[test]
fn pids_limit_enforced() {
    let mut ctx = Ctx::new("cgpidsin");
    ctx.config["linux"]["resources"]["pids"] = json!({"limit": 5});
    ctx.sh("{ for i in 1 2 3 4 5 6 7 8 9 10; do sleep 30 & done; } 2>/dev/null; exec sleep 100");
    let id = ctx.id();
    ctx.run_with(&id, &["-d"]).ok();
    let dir = PathBuf::from(format!("/sys/fs/cgroup/pids/{CGROUP_PARENT}/{id}"));
    let hit = wait_for(5, || {
        let ev = fs::read_to_string(dir.join("pids.events")).unwrap_or_default();
        ev.split_whitespace().nth(1).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0) > 0
    });
    assert!(hit, "pids.max=5 was never hit");
    let cur: u64 = fs::read_to_string(dir.join("pids.current")).unwrap().trim().parse().unwrap();
    assert!(cur <= 5, "pids.current {cur} > 5");
}

#[test]
fn relative_cgroups_path_is_under_callers_cgroup() {
    let mut ctx = Ctx::new("cgrel");
    let id = ctx.id();
    let rel = format!("husk-tests-rel/{id}");
    ctx.config["linux"]["cgroupsPath"] = json!(rel);
    ctx.sh("exec sleep 100");
    ctx.run_with(&id, &["-d"]).ok();
    let pid = ctx.state(&id)["pid"].as_u64().unwrap();
    let me = std::process::id() as u64;
    let mine = cgroup_of(me, "memory");
    let got = cgroup_of(pid, "memory");
    let want = format!("{}/{rel}", mine.trim_end_matches('/'));
    let dir = format!("/sys/fs/cgroup/memory{got}");
    let cleanup = || {
        let _ = fs::remove_dir(&dir);
        let _ = fs::remove_dir(format!("/sys/fs/cgroup/memory{}/husk-tests-rel", mine.trim_end_matches('/')));
    };
    ctx.husk(&["delete", "--force", &id]).ok();
    let exists = Path::new(&dir).exists();
    cleanup();
    assert_eq!(got, want, "relative cgroupsPath resolves under the caller's memory cgroup");
    assert!(!exists, "{dir} remains after delete");
}

#[test]
fn cgroup_namespace_root() {
    // With a cgroup namespace the container sees its own cgroup as `/`.
    let mut ctx = Ctx::new("cgns");
    ctx.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "cgroup"}));
    let out = ctx.run_sh("cat /proc/self/cgroup");
    for l in out.lines() {
        let path = l.splitn(3, ':').nth(2).unwrap_or("");
        let ctrl = l.split(':').nth(1).unwrap_or("");
        if ["memory", "pids", "cpu,cpuacct", "devices", "freezer", "blkio"].contains(&ctrl) {
            assert_eq!(path, "/", "{l}\n{out}");
        }
    }
}
