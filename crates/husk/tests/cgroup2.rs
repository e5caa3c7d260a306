//! cgroup v2 on a pure v2 host (the guest: `scripts/guest/test.sh`): placement, limits read back
//! from the container's cgroup inside and outside, the eBPF device filter, removal, and nothing
//! leaked by a failed create. Every test is named `cgroup2_` and skips on a host without v2.
mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};

const TOP: &str = "/sys/fs/cgroup";

/// The container's cgroup dir for the default `cgroupsPath` (`/husk-tests/<id>`).
fn dir_of(id: &str) -> PathBuf {
    Path::new(TOP).join(CGROUP_PARENT).join(id)
}

#[track_caller]
fn read(dir: &Path, file: &str) -> String {
    let p = dir.join(file);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())).trim().to_string()
}

/// The single `0::PATH` line of /proc/<pid>/cgroup on a v2 host.
#[track_caller]
fn cgroup_of(pid: u64) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    text.lines().find_map(|l| l.strip_prefix("0::")).unwrap_or_else(|| panic!("no 0:: line: {text}")).to_string()
}

/// The default spec has a cgroup namespace on a v2 host (runc's and husk's); set it explicitly.
fn cgroup_ns(ctx: &mut Ctx, on: bool) {
    let ns = ctx.config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.retain(|n| n["type"] != "cgroup");
    if on {
        ns.push(json!({"type": "cgroup"}));
    }
}

/// `run -d` a container whose script prints what it sees, then `echo END` and sleeps; returns the
/// id, the init's pid and the output up to END.
#[track_caller]
fn start_and_read(ctx: &mut Ctx, script: &str) -> (String, u64, String) {
    ctx.sh(&format!("{script}; echo END; exec sleep 100"));
    let id = ctx.id();
    let o = ctx.run_with(&id, &["-d"]).ok();
    let pid = ctx.state(&id)["pid"].as_u64().unwrap();
    assert!(wait_for(30, || o.stdout_now().contains("END\n")), "no END from the container: {}", o.stdout_now());
    let out = o.stdout_now();
    (id, pid, out.trim_end_matches("END\n").to_string())
}

#[test]
fn cgroup2_memory_limit_inside_and_outside() {
    if !require(Feature::Cgroup2) {
        return;
    }
    let mut ctx = Ctx::new("cg2mem");
    ctx.config["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
    cgroup_ns(&mut ctx, true);
    let (id, pid, out) = start_and_read(&mut ctx, "cat /sys/fs/cgroup/memory.max; cat /proc/self/cgroup");
    assert_eq!(out, "67108864\n0::/\n", "inside the container (its own cgroup as the root)");
    assert_eq!(read(&dir_of(&id), "memory.max"), "67108864", "from the host");
    assert_eq!(cgroup_of(pid), format!("/{CGROUP_PARENT}/{id}"));
}

#[test]
fn cgroup2_spec_has_a_cgroup_namespace() {
    if !require(Feature::Cgroup2) {
        return;
    }
    // runc 1.1's `spec` adds one on a pure v2 host (and `--rootless` keeps it, before user).
    let ctx = Ctx::new("cg2spec");
    for (flag, want) in [
        (None, ["pid", "network", "ipc", "uts", "mount", "cgroup"]),
        (Some("--rootless"), ["pid", "ipc", "uts", "mount", "cgroup", "user"]),
    ] {
        let dir = ctx.dir.join(format!("spec{}", flag.unwrap_or("")));
        fs::create_dir_all(&dir).unwrap();
        let d = dir.to_str().unwrap();
        let mut args = vec!["spec", "--bundle", d];
        args.extend(flag);
        ctx.husk(&args).ok();
        let spec: serde_json::Value = serde_json::from_slice(&fs::read(dir.join("config.json")).unwrap()).unwrap();
        let got: Vec<&str> =
            spec["linux"]["namespaces"].as_array().unwrap().iter().filter_map(|n| n["type"].as_str()).collect();
        assert_eq!(got, want, "spec {flag:?}");
    }
}

#[test]
fn cgroup2_memory_swap_and_reservation() {
    if !require(Feature::Cgroup2) {
        return;
    }
    // The spec's swap is memory+swap; v2's memory.swap.max is the swap alone (runc converts too).
    let mut ctx = Ctx::new("cg2swap");
    ctx.config["linux"]["resources"]["memory"] = json!({"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20});
    let (id, _, _) = start_and_read(&mut ctx, "true");
    let dir = dir_of(&id);
    assert_eq!(read(&dir, "memory.max"), "67108864");
    assert_eq!(read(&dir, "memory.swap.max"), "33554432");
    assert_eq!(read(&dir, "memory.low"), "33554432");
}

#[test]
fn cgroup2_placed_in_cgroups_path_and_removed_on_delete() {
    if !require(Feature::Cgroup2) {
        return;
    }
    let mut ctx = Ctx::new("cg2path");
    cgroup_ns(&mut ctx, false);
    let (id, pid, out) = start_and_read(&mut ctx, "cat /proc/self/cgroup");
    let want = format!("/{CGROUP_PARENT}/{id}");
    assert_eq!(out, format!("0::{want}\n"), "without a cgroup namespace the container sees the host's path");
    assert_eq!(cgroup_of(pid), want);
    let dir = dir_of(&id);
    let procs = read(&dir, "cgroup.procs");
    assert!(procs.lines().any(|l| l == pid.to_string()), "{pid} not in cgroup.procs: {procs}");
    ctx.husk(&["kill", &id, "KILL"]).ok();
    ctx.wait_status(&id, "stopped");
    ctx.husk(&["delete", &id]).ok();
    assert!(!dir.exists(), "{} remains after delete", dir.display());
}

#[test]
fn cgroup2_removed_on_delete_force_with_sub_cgroups() {
    if !require(Feature::Cgroup2) {
        return;
    }
    // A container that made its own sub-cgroup (cgroup namespace, writable cgroupfs): delete
    // --force removes the whole subtree.
    let mut ctx = Ctx::new("cg2sub");
    cgroup_ns(&mut ctx, true);
    let mounts = ctx.config["mounts"].as_array_mut().unwrap();
    for m in mounts.iter_mut().filter(|m| m["destination"] == "/sys/fs/cgroup") {
        m["options"] = json!(["nosuid", "noexec", "nodev", "relatime", "rw"]);
    }
    let (id, _, out) = start_and_read(&mut ctx, "mkdir /sys/fs/cgroup/sub && echo made");
    assert_eq!(out, "made\n");
    let dir = dir_of(&id);
    assert!(dir.join("sub").is_dir(), "the container's sub-cgroup is not visible from the host");
    ctx.husk(&["delete", "--force", &id]).ok();
    assert!(!dir.exists(), "{} remains after delete --force", dir.display());
}

#[test]
fn cgroup2_relative_cgroups_path_is_beside_the_callers_cgroup() {
    if !require(Feature::Cgroup2) {
        return;
    }
    // runc's fs2 driver: a relative path goes below the parent of the caller's own cgroup (the
    // caller's cgroup has processes, so it cannot have controllers enabled for children).
    let mut ctx = Ctx::new("cg2rel");
    let id = ctx.id();
    let rel = format!("husk-tests-rel/{id}");
    ctx.config["linux"]["cgroupsPath"] = json!(rel);
    ctx.sh("exec sleep 100");
    ctx.run_with(&id, &["-d"]).ok();
    let pid = ctx.state(&id)["pid"].as_u64().unwrap();
    let mine = cgroup_of(std::process::id() as u64);
    let parent =
        Path::new(&mine).parent().unwrap_or(Path::new("/")).to_str().unwrap().trim_end_matches('/').to_string();
    let got = cgroup_of(pid);
    let dir = format!("{TOP}{got}");
    ctx.husk(&["delete", "--force", &id]).ok();
    let exists = Path::new(&dir).exists();
    let _ = fs::remove_dir(&dir);
    let _ = fs::remove_dir(format!("{TOP}{parent}/husk-tests-rel"));
    assert_eq!(got, format!("{parent}/{rel}"), "beside the caller's cgroup {mine}");
    assert!(!exists, "{dir} remains after delete");
}

#[test]
fn cgroup2_pids_max_enforced() {
    if !require(Feature::Cgroup2) {
        return;
    }
    let mut ctx = Ctx::new("cg2pids");
    ctx.config["linux"]["resources"]["pids"] = json!({"limit": 5});
    ctx.sh("{ for i in 1 2 3 4 5 6 7 8 9 10; do sleep 30 & done; } 2>/dev/null; exec sleep 100");
    let id = ctx.id();
    ctx.run_with(&id, &["-d"]).ok();
    let dir = dir_of(&id);
    assert_eq!(read(&dir, "pids.max"), "5");
    // pids.events: "max N", N forks refused.
    let hit = wait_for(30, || {
        let ev = fs::read_to_string(dir.join("pids.events")).unwrap_or_default();
        ev.split_whitespace().nth(1).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0) > 0
    });
    assert!(hit, "pids.max=5 was never hit: {}", read(&dir, "pids.events"));
    let cur: u64 = read(&dir, "pids.current").parse().unwrap();
    assert!(cur <= 5, "pids.current {cur} > 5");
}

#[test]
fn cgroup2_cpu_weight_max_and_cpuset() {
    if !require(Feature::Cgroup2) {
        return;
    }
    // shares → weight by runc main's formula (10^((l² + 125l)/612 − 7/34), l = log2(shares),
    // rounded up; runc >= 1.3.2, crun >= 1.23): 512 → 59 (the old linear one gave 20).
    let mut ctx = Ctx::new("cg2cpu");
    ctx.config["linux"]["resources"]["cpu"] =
        json!({"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"});
    let (id, _, out) = start_and_read(&mut ctx, "grep Cpus_allowed_list /proc/self/status");
    let dir = dir_of(&id);
    assert_eq!(read(&dir, "cpu.weight"), "59");
    assert_eq!(read(&dir, "cpu.max"), "50000 100000");
    assert_eq!(read(&dir, "cpuset.cpus"), "0");
    assert_eq!(read(&dir, "cpuset.mems"), "0");
    assert_eq!(out.split_whitespace().nth(1), Some("0"), "the container runs on cpu 0 only: {out}");
}

#[test]
fn cgroup2_cpu_quota_alone_keeps_the_default_period() {
    if !require(Feature::Cgroup2) {
        return;
    }
    let mut ctx = Ctx::new("cg2quota");
    ctx.config["linux"]["resources"]["cpu"] = json!({"quota": 20000});
    let (id, _, _) = start_and_read(&mut ctx, "true");
    assert_eq!(read(&dir_of(&id), "cpu.max"), "20000 100000");
}

#[test]
fn cgroup2_unified_resources() {
    if !require(Feature::Cgroup2) {
        return;
    }
    let mut ctx = Ctx::new("cg2unified");
    ctx.config["linux"]["resources"]["unified"] = json!({"memory.high": "50331648", "pids.max": "7"});
    let (id, _, _) = start_and_read(&mut ctx, "true");
    let dir = dir_of(&id);
    assert_eq!(read(&dir, "memory.high"), "50331648");
    assert_eq!(read(&dir, "pids.max"), "7");
}

#[test]
fn cgroup2_device_filter_denies_unlisted_device() {
    if !require(Feature::Cgroup2) {
        return;
    }
    // Major 240 is for local use and has no driver: opening the node fails with ENXIO when the
    // device filter lets it through, EPERM when the filter denies it. linux.devices makes the
    // node; only linux.resources.devices allows it (runc does not allow listed devices either).
    let script = "exec 2>&1; echo x >/dev/null && echo null-ok; cat /dev/husk-nodrv; true";
    let node = json!([{"path": "/dev/husk-nodrv", "type": "c", "major": 240, "minor": 0, "fileMode": 0o666}]);

    let mut denied = Ctx::new("cg2devdeny");
    denied.config["linux"]["devices"] = node.clone();
    denied.sh(script);
    let id = denied.id();
    let out = denied.run(&id).ok().stdout;
    assert!(out.starts_with("null-ok\n"), "{out}");
    assert!(out.contains("Operation not permitted"), "the eBPF filter must deny c 240:0: {out}");

    let mut allowed = Ctx::new("cg2devallow");
    allowed.config["linux"]["devices"] = node;
    let mut rules = allowed.config["linux"]["resources"]["devices"].as_array().cloned().unwrap_or_default();
    rules.push(json!({"allow": true, "type": "c", "major": 240, "minor": 0, "access": "rw"}));
    allowed.config["linux"]["resources"]["devices"] = json!(rules);
    allowed.sh(script);
    let id = allowed.id();
    let out = allowed.run(&id).ok().stdout;
    assert!(out.starts_with("null-ok\n"), "{out}");
    assert!(out.contains("No such device or address"), "allowed c 240:0 must reach the (missing) driver: {out}");
}

#[test]
fn cgroup2_failed_create_leaks_no_cgroup() {
    if !require(Feature::Cgroup2) {
        return;
    }
    // A resource write the kernel refuses, after the cgroup dir exists.
    let mut ctx = Ctx::new("cg2leak");
    ctx.config["linux"]["resources"]["unified"] = json!({"memory.no-such-file": "1"});
    let id = ctx.id();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let o = ctx.create(&id).fails();
    if is_husk() {
        assert!(o.stderr.contains("linux.resources.unified.memory.no-such-file"), "{o}");
    }
    ctx.assert_nothing_left(&id, &mounts);
    assert!(!dir_of(&id).exists());

    // A failure in the init, which clone3 already placed in the cgroup.
    let mut ctx = Ctx::new("cg2leakexec");
    ctx.config["process"]["args"] = json!(["/no/such/binary"]);
    ctx.config["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
    let id = ctx.id();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    ctx.create(&id).fails();
    ctx.assert_nothing_left(&id, &mounts);
    assert!(!dir_of(&id).exists());
}

/// runc's checks at create: into a cgroup that exists frozen (cgroup.freeze 1), or below one,
/// create fails at once (husk waited for the frozen init forever); into one with a process in
/// it, create fails (the container would share it). What existed is left as it was.
#[test]
fn cgroup2_create_into_a_frozen_or_busy_cgroup_fails_at_once() {
    if !require(Feature::Cgroup2) {
        return;
    }
    let mut ctx = Ctx::new("cg2unfit");
    ctx.sh("exec sleep 100");
    let id = ctx.id();
    let dir = dir_of(&id);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("cgroup.freeze"), "1").unwrap();
    for path in [format!("/{CGROUP_PARENT}/{id}"), format!("/{CGROUP_PARENT}/{id}/below")] {
        ctx.config["linux"]["cgroupsPath"] = json!(path);
        let cid = ctx.id();
        ctx.write_config(&cid);
        let mut c = ctx.cmd();
        c.args(["create", "--bundle", ctx.bundle.to_str().unwrap(), &cid]);
        let o = run_cmd(c, &ctx.dir, std::time::Duration::from_secs(10)).fails_with("unexpectedly frozen");
        assert!(!ctx.root.join(&cid).exists() && procs_of(&cid, &ctx.dir).is_empty(), "{o}");
        assert!(!dir.join("below").exists());
    }
    fs::write(dir.join("cgroup.freeze"), "0").unwrap();
    let mut other = spawn(std::process::Command::new("sleep").arg("100").stdin(std::process::Stdio::null()));
    fs::write(dir.join("cgroup.procs"), other.id().to_string()).unwrap();
    ctx.config["linux"].as_object_mut().unwrap().remove("cgroupsPath");
    ctx.create(&id).fails_with("container's cgroup is not empty: 1 process(es) found");
    assert!(other.try_wait().is_none(), "the process in the cgroup was killed");
    other.kill();
    other.wait();
    assert!(wait_for(5, || fs::remove_dir(&dir).is_ok()));
}

/// `update` on v2 as runc: cpu.idle first and no weight into an idle group (every later update
/// wrote it and failed), the weight back once not idle; `--memory -1` is memory.max and
/// memory.swap.max "max"; `pids.limit` 0 is pids.max 1 (runc main); the realtime budget is
/// refused by field; device rules in `update -r` are accepted and not applied (runc skips them).
#[test]
fn cgroup2_update_transitions_as_runc() {
    if !require(Feature::Cgroup2) {
        return;
    }
    let mut ctx = Ctx::new("cg2trans");
    ctx.config["linux"]["resources"] =
        json!({"cpu": {"shares": 512}, "memory": {"limit": 64 << 20, "swap": 128 << 20}, "pids": {"limit": 0}});
    let (id, _, _) = start_and_read(&mut ctx, "true");
    let dir = dir_of(&id);
    assert_eq!(read(&dir, "pids.max"), "1");
    ctx.husk(&["update", "--pids-limit", "20", &id]).ok();
    ctx.husk(&["update", "--cpu-idle", "1", &id]).ok();
    assert_eq!(read(&dir, "cpu.idle"), "1");
    ctx.husk(&["update", "--pids-limit", "30", &id]).ok();
    assert_eq!(read(&dir, "pids.max"), "30");
    ctx.husk(&["update", "--cpu-idle", "0", &id]).ok();
    assert_eq!(read(&dir, "cpu.weight"), "59");
    ctx.husk(&["update", "--memory", "-1", &id]).ok();
    assert_eq!(read(&dir, "memory.max"), "max");
    if dir.join("memory.swap.max").exists() {
        assert_eq!(read(&dir, "memory.swap.max"), "max");
    }
    ctx.husk(&["update", "--pids-limit", "0", &id]).ok();
    assert_eq!(read(&dir, "pids.max"), "1");
    // Room for the exec below (born in the cgroup, it counts against pids.max).
    ctx.husk(&["update", "--pids-limit", "20", &id]).ok();
    ctx.husk(&["update", "--cpu-rt-runtime", "5000", &id]).fails_with("linux.resources.cpu.realtimeRuntime");
    let r = ctx.dir.join("devices.json");
    fs::write(
        &r,
        r#"{"devices": [{"allow": true, "access": "rwa"}, {"allow": false, "type": "c", "major": 1, "minor": 3}]}"#,
    )
    .unwrap();
    ctx.husk(&["update", "-r", r.to_str().unwrap(), &id]).ok();
    ctx.husk(&["exec", &id, "sh", "-c", "echo x > /dev/null"]).ok();
}

/// With the host's pid namespace the init's children outlive it: `kill KILL` (runc main),
/// `kill --all` and `delete --force` kill the whole cgroup (one write to cgroup.kill), also once
/// the init is gone.
#[test]
fn cgroup2_host_pid_namespace_kill_reaches_every_process() {
    if !require(Feature::Cgroup2) {
        return;
    }
    for how in ["kill", "kill-all", "delete-force"] {
        let mut ctx = Ctx::new("cg2hostpid");
        ctx.config["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "pid");
        ctx.sh("sleep 1000 & echo started");
        let id = ctx.id();
        ctx.run_with(&id, &["-d"]).ok();
        ctx.wait_status(&id, "stopped");
        let procs = || read(&dir_of(&id), "cgroup.procs");
        assert!(wait_for(10, || procs().lines().count() == 1), "{}", procs());
        let left: u32 = procs().trim().parse().unwrap();
        match how {
            "kill" => ctx.husk(&["kill", &id, "KILL"]).ok(),
            "kill-all" => ctx.husk(&["kill", "--all", &id, "KILL"]).ok(),
            _ => ctx.husk(&["delete", "--force", &id]).ok(),
        };
        assert!(wait_for(10, || !alive(left)), "{how}: the init's child survived");
        if how != "delete-force" {
            ctx.husk(&["kill", &id, "KILL"]).fails_with("container not running");
            ctx.husk(&["delete", &id]).ok();
        }
        assert!(!dir_of(&id).exists());
    }
}
