//! The cgroup commands against live containers: update (flags with units, -r FILE, -r -),
//! pause/resume, kill --all of a paused container, ps, events --stats, streaming events and OOM
//! events. Files are read back on this v1 (hybrid) host; `cgroup2_` tests do the same on v2.
mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// The container's cgroup directory for `controller`: its v1 hierarchy here, the cgroup2 dir on
/// a pure v2 host.
fn dir(controller: &str, id: &str) -> PathBuf {
    let v1 = Path::new("/sys/fs/cgroup").join(controller);
    let base = if v1.is_dir() { v1 } else { PathBuf::from("/sys/fs/cgroup") };
    base.join(CGROUP_PARENT).join(id)
}

fn read(controller: &str, id: &str, file: &str) -> String {
    let p = dir(controller, id).join(file);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())).trim().to_string()
}

fn v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

fn sleeper(ctx: &mut Ctx, script: &str) -> (String, u64) {
    ctx.sh(script);
    let id = ctx.id();
    ctx.run_with(&id, &["-d"]).ok();
    let pid = ctx.state(&id)["pid"].as_u64().unwrap();
    (id, pid)
}

/// Start the runtime in the background with output to a file (for `events`, which streams).
fn spawn(ctx: &Ctx, args: &[&str]) -> (Guarded, PathBuf) {
    let out = ctx.dir.join(format!("stream.{}", args.join("_").replace('/', "_")));
    let f = fs::File::create(&out).unwrap();
    let mut c = ctx.cmd();
    c.args(args).stdout(f).stderr(Stdio::null());
    (spawn_for(&mut c, BACKGROUND), out)
}

fn lines_of(path: &Path) -> Vec<Value> {
    fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

#[test]
fn update_flags_take_units_and_leave_the_rest() {
    let mut ctx = Ctx::new("upflags");
    ctx.config["linux"]["resources"] = json!({"memory": {"limit": 64 << 20}, "pids": {"limit": 40}});
    let (id, _) = sleeper(&mut ctx, "exec sleep 100");
    ctx.husk(&[
        "update",
        "--memory",
        "128M",
        "--memory-reservation",
        "64m",
        "--cpu-share",
        "256",
        "--cpu-quota",
        "30000",
        "--cpu-period",
        "100000",
        "--cpuset-cpus",
        "0",
        &id,
    ])
    .ok();
    if v2() {
        assert_eq!(read("memory", &id, "memory.max"), (128u64 << 20).to_string());
        assert_eq!(read("memory", &id, "memory.low"), (64u64 << 20).to_string());
        assert_eq!(read("cpu", &id, "cpu.max"), "30000 100000");
    } else {
        assert_eq!(read("memory", &id, "memory.limit_in_bytes"), (128u64 << 20).to_string());
        assert_eq!(read("memory", &id, "memory.soft_limit_in_bytes"), (64u64 << 20).to_string());
        assert_eq!(read("cpu", &id, "cpu.shares"), "256");
        assert_eq!(read("cpu", &id, "cpu.cfs_quota_us"), "30000");
    }
    assert_eq!(read("cpuset", &id, "cpuset.cpus"), "0");
    // What the update did not name stays as it was.
    assert_eq!(read("pids", &id, "pids.max"), "40");
    ctx.husk(&["update", "--pids-limit", "30", "-memory-swap", "256M", &id]).ok();
    assert_eq!(read("pids", &id, "pids.max"), "30");
    if !v2() {
        assert_eq!(read("memory", &id, "memory.memsw.limit_in_bytes"), (256u64 << 20).to_string());
        assert_eq!(read("memory", &id, "memory.limit_in_bytes"), (128u64 << 20).to_string());
    }
    ctx.husk(&["update", "--memory", "12X", &id]).fails();
}

#[test]
fn update_from_a_file_and_from_stdin() {
    let mut ctx = Ctx::new("upfile");
    let (id, _) = sleeper(&mut ctx, "exec sleep 100");
    let file = ctx.dir.join("res.json");
    fs::write(&file, r#"{"pids": {"limit": 17}, "memory": {"limit": 100663296}}"#).unwrap();
    ctx.husk(&["update", "-r", file.to_str().unwrap(), &id]).ok();
    assert_eq!(read("pids", &id, "pids.max"), "17");
    for flag in [vec!["--resources=-"], vec!["-r", "-"]] {
        let mut c = ctx.cmd();
        c.arg("update").args(&flag).arg(&id).stdin(Stdio::piped());
        let out = ctx.dir.join("upd.out");
        c.stdout(fs::File::create(&out).unwrap()).stderr(fs::File::create(ctx.dir.join("upd.err")).unwrap());
        let mut child = common::spawn(&mut c);
        let limit = if flag.len() == 1 { 23 } else { 29 };
        child.stdin().unwrap().write_all(format!(r#"{{"pids": {{"limit": {limit}}}}}"#).as_bytes()).unwrap();
        assert!(child.wait().success(), "{}", fs::read_to_string(ctx.dir.join("upd.err")).unwrap());
        assert_eq!(read("pids", &id, "pids.max"), limit.to_string(), "{flag:?}");
    }
    let limit = if v2() { "memory.max" } else { "memory.limit_in_bytes" };
    assert_eq!(read("memory", &id, limit), "100663296", "the stdin update kept the file's memory limit");
    fs::write(&file, r#"{"pids": {"limit": "many"}}"#).unwrap();
    ctx.husk(&["update", "-r", file.to_str().unwrap(), &id]).fails();
}

#[test]
fn update_cpu_idle_and_burst() {
    // runc 1.1 differs: it has no --cpu-idle or --cpu-burst (runc 1.2 added them).
    if !is_husk() {
        return;
    }
    let mut ctx = Ctx::new("upidle");
    ctx.config["linux"]["resources"]["cpu"] = json!({"quota": 50000, "period": 100000});
    let (id, _) = sleeper(&mut ctx, "exec sleep 100");
    ctx.husk(&["update", "--cpu-burst", "20000", "--cpu-idle", "1", &id]).ok();
    let burst = if v2() { "cpu.max.burst" } else { "cpu.cfs_burst_us" };
    assert_eq!(read("cpu", &id, burst), "20000");
    assert_eq!(read("cpu", &id, "cpu.idle"), "1");
}

#[test]
fn update_of_a_stopped_or_unknown_container_fails() {
    let mut ctx = Ctx::new("upstop");
    ctx.sh("true");
    let id = ctx.id();
    ctx.run_with(&id, &["--keep"]).ok();
    ctx.husk(&["update", "--pids-limit", "5", &id]).fails();
    ctx.husk(&["update", "--pids-limit", "5", "nope-nope"]).fails_with("does not exist");
}

/// The counter a container writes every 50 ms, read from the host.
fn counter(ctx: &Ctx) -> u64 {
    fs::read_to_string(ctx.rootfs().join("tmp/count")).unwrap_or_default().trim().parse().unwrap_or(0)
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let mut ctx = Ctx::new("pause");
    ctx.config["root"]["readonly"] = json!(false);
    let (id, pid) = sleeper(&mut ctx, "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; usleep 50000; done");
    assert!(wait_for(5, || counter(&ctx) > 2), "the counter never ran");
    ctx.husk(&["pause", &id]).ok();
    assert_eq!(ctx.status(&id), "paused");
    if v2() {
        assert_eq!(read("freezer", &id, "cgroup.freeze"), "1");
    } else {
        assert_eq!(read("freezer", &id, "freezer.state"), "FROZEN");
    }
    let frozen_at = counter(&ctx);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(counter(&ctx), frozen_at, "the container ran while paused");
    assert!(alive(pid as u32));
    ctx.husk(&["pause", &id]).fails();
    ctx.husk(&["resume", &id]).ok();
    assert_eq!(ctx.status(&id), "running");
    assert!(wait_for(5, || counter(&ctx) > frozen_at + 2), "the counter did not run again after resume");
    ctx.husk(&["resume", &id]).fails_with("not paused");
    // A paused container cannot be deleted without --force.
    ctx.husk(&["pause", &id]).ok();
    ctx.husk(&["delete", &id]).fails();
    ctx.husk(&["delete", "--force", &id]).ok();
    assert!(!alive(pid as u32), "the init of a force-deleted paused container lives on");
}

#[test]
fn kill_all_of_a_paused_container() {
    let mut ctx = Ctx::new("killpaused");
    let (id, pid) = sleeper(&mut ctx, "sleep 200 & sleep 300 & exec sleep 100");
    assert!(wait_for(5, || ctx.husk(&["ps", "-f", "json", &id]).stdout.matches(',').count() == 2));
    let pids: Vec<u32> = serde_json::from_str(&ctx.husk(&["ps", "-f", "json", &id]).ok().stdout).unwrap();
    ctx.husk(&["pause", &id]).ok();
    ctx.husk(&["kill", "--all", &id, "KILL"]).ok();
    for p in &pids {
        assert!(wait_for(5, || !alive(*p)), "pid {p} survived kill --all of a paused container");
    }
    ctx.wait_status(&id, "stopped");
    assert!(!alive(pid as u32));
    ctx.husk(&["delete", &id]).ok();
}

#[test]
fn ps_table_json_and_ps_options() {
    let mut ctx = Ctx::new("ps");
    let (id, pid) = sleeper(&mut ctx, "sleep 200 & exec sleep 100");
    assert!(wait_for(5, || ctx.husk(&["ps", "--format", "json", &id]).stdout.contains(',')));
    let pids: Vec<u64> = serde_json::from_str(&ctx.husk(&["ps", "--format", "json", &id]).ok().stdout).unwrap();
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(pids.contains(&pid));
    let table = ctx.husk(&["ps", &id]).ok().stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].contains("PID") && lines[0].contains("CMD"), "{table}");
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[1..].iter().all(|l| l.contains("sleep")), "{table}");
    let custom = ctx.husk(&["ps", &id, "-o", "pid,comm"]).ok().stdout;
    let mut got: Vec<String> =
        custom.lines().skip(1).map(|l| l.split_whitespace().next().unwrap().to_string()).collect();
    got.sort();
    let mut want: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "{custom}");
    assert!(custom.lines().next().unwrap().contains("COMMAND"));
    ctx.husk(&["ps", &id, "-o", "comm"]).fails_with("PID");
}

#[test]
fn events_stats_in_runcs_shape() {
    let mut ctx = Ctx::new("stats");
    ctx.config["linux"]["resources"] = json!({"memory": {"limit": 64 << 20}, "pids": {"limit": 50}});
    let (id, _) = sleeper(&mut ctx, "sleep 200 & exec sleep 100");
    assert!(wait_for(5, || ctx.husk(&["ps", "-f", "json", &id]).stdout.contains(',')));
    let out = ctx.husk(&["events", "--stats", &id]).ok().stdout;
    assert_eq!(out.lines().count(), 1, "{out}");
    let e: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(e["type"], "stats");
    assert_eq!(e["id"], id.as_str());
    let d = &e["data"];
    for k in ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt"] {
        assert!(d[k].is_object(), "{k} missing: {out}");
    }
    assert!(d["network_interfaces"].is_null());
    assert_eq!(d["memory"]["usage"]["limit"], 64u64 << 20);
    assert!(d["memory"]["usage"]["usage"].as_u64().unwrap() > 0);
    assert!(d["memory"]["raw"].is_object());
    for k in ["swap", "kernel", "kernelTCP"] {
        assert!(d["memory"][k]["limit"].is_u64(), "memory.{k}: {out}");
    }
    assert_eq!(d["pids"]["current"], 2);
    assert_eq!(d["pids"]["limit"], 50);
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap() > 0);
    assert!(d["cpu"]["usage"]["user"].is_u64() && d["cpu"]["usage"]["kernel"].is_u64());
    assert!(d["cpu"]["throttling"].is_object());
    ctx.husk(&["events", "--stats", "nope-nope"]).fails_with("does not exist");
}

#[test]
fn events_stream_every_interval() {
    let mut ctx = Ctx::new("evstream");
    let (id, _) = sleeper(&mut ctx, "exec sleep 100");
    let (mut child, out) = spawn(&ctx, &["events", "--interval", "200ms", &id]);
    let got = wait_for(10, || lines_of(&out).len() >= 3);
    child.kill();
    let _ = child.wait();
    assert!(got, "fewer than 3 stats events in 10 s: {:?}", fs::read_to_string(&out));
    assert!(lines_of(&out).iter().all(|e| e["type"] == "stats" && e["id"] == id.as_str()));
}

#[test]
fn a_memory_limit_hit_is_an_oom_event() {
    let mut ctx = Ctx::new("oom");
    let limit = 16u64 << 20;
    // memory+swap = memory: no swap to escape to.
    ctx.config["linux"]["resources"]["memory"] = json!({"limit": limit, "swap": limit});
    // Wait for the go file, then allocate 64 MiB: dd is OOM-killed, the shell lives on.
    let (id, _) = sleeper(
        &mut ctx,
        "while [ ! -e /tmp/go ]; do usleep 20000; done; dd if=/dev/zero of=/dev/null bs=64M count=1; exec sleep 100",
    );
    let (mut child, out) = spawn(&ctx, &["events", "--interval", "300ms", &id]);
    assert!(wait_for(10, || !lines_of(&out).is_empty()), "no first stats event");
    fs::write(ctx.rootfs().join("tmp/go"), "").unwrap();
    let got = wait_for(20, || lines_of(&out).iter().any(|e| e["type"] == "oom"));
    child.kill();
    let _ = child.wait();
    assert!(got, "no oom event: {:?}", fs::read_to_string(&out));
    let oom = lines_of(&out).into_iter().find(|e| e["type"] == "oom").unwrap();
    assert_eq!(oom["id"], id.as_str());
}

/// `update` transitions the kernel accepts only in one order, as runc orders them: an idle
/// group takes no shares (every later update wrote them and failed), leaving idle restores
/// them; `--memory -1` makes memory+swap unlimited with it (the old swap limit would be below
/// it); realtime period and runtime both ways (v1; cgroup v2 has no realtime budget). Device
/// rules in `update -r` are accepted and neither applied nor recorded (runc skips them).
#[test]
fn update_transitions_as_runc() {
    let mut ctx = Ctx::new("uptrans");
    let rt = Path::new("/sys/fs/cgroup/cpu/cpu.rt_runtime_us").exists();
    let id = ctx.id();
    // A top-level cgroup: a realtime budget comes out of the parent's, and only the root has one
    // (husk, as runc, gives none to the parents it makes).
    let name = format!("husk-rt-{id}");
    ctx.config["linux"]["cgroupsPath"] = json!(format!("/{name}"));
    ctx.config["linux"]["resources"] =
        json!({"cpu": {"shares": 512}, "memory": {"limit": 64 << 20, "swap": 128 << 20}});
    ctx.sh("exec sleep 100");
    ctx.run_with(&id, &["-d"]).ok();
    let top = if v2() { PathBuf::from("/sys/fs/cgroup") } else { PathBuf::from("/sys/fs/cgroup/cpu") };
    let cpu = top.join(&name);
    let mem = if v2() { cpu.clone() } else { Path::new("/sys/fs/cgroup/memory").join(&name) };
    let rd =
        |d: &Path, f: &str| fs::read_to_string(d.join(f)).unwrap_or_else(|e| panic!("{f}: {e}")).trim().to_string();
    if cpu.join("cpu.idle").exists() {
        ctx.husk(&["update", "--cpu-idle", "1", &id]).ok();
        assert_eq!(rd(&cpu, "cpu.idle"), "1");
        ctx.husk(&["update", "--pids-limit", "30", &id]).ok();
        ctx.husk(&["update", "--cpu-idle", "0", &id]).ok();
        let (shares, want) = if v2() { ("cpu.weight", "59") } else { ("cpu.shares", "512") };
        assert_eq!(rd(&cpu, shares), want, "the configured shares again once not idle");
    }
    ctx.husk(&["update", "--memory", "-1", &id]).ok();
    if v2() {
        assert_eq!(rd(&mem, "memory.max"), "max");
    } else {
        let unlimited = rd(Path::new("/sys/fs/cgroup/memory"), "memory.limit_in_bytes");
        assert_eq!(rd(&mem, "memory.limit_in_bytes"), unlimited);
        assert_eq!(rd(&mem, "memory.memsw.limit_in_bytes"), unlimited);
    }
    ctx.husk(&["update", "--memory", "32M", "--memory-swap", "64M", &id]).ok();
    let limit = if v2() { "memory.max" } else { "memory.limit_in_bytes" };
    assert_eq!(rd(&mem, limit), (32u64 << 20).to_string());
    if v2() {
        ctx.husk(&["update", "--cpu-rt-runtime", "5000", &id]).fails_with("realtimeRuntime");
    } else if rt {
        ctx.husk(&["update", "--cpu-rt-period", "100000", "--cpu-rt-runtime", "50000", &id]).ok();
        // A period below the runtime in force: the runtime must shrink first.
        ctx.husk(&["update", "--cpu-rt-period", "10000", "--cpu-rt-runtime", "5000", &id]).ok();
        assert_eq!((rd(&cpu, "cpu.rt_period_us"), rd(&cpu, "cpu.rt_runtime_us")), ("10000".into(), "5000".into()));
        // And back up: the period must grow first.
        ctx.husk(&["update", "--cpu-rt-period", "100000", "--cpu-rt-runtime", "50000", &id]).ok();
        assert_eq!(rd(&cpu, "cpu.rt_runtime_us"), "50000");
        ctx.husk(&["update", "--cpu-rt-runtime", "0", &id]).ok();
    }
    // runc accepts any device rules in an update (it skips devices): so does husk, unapplied.
    let state_before = fs::read_to_string(ctx.root.join(&id).join("state.json")).unwrap_or_default();
    let r = ctx.dir.join("devices.json");
    fs::write(
        &r,
        r#"{"devices": [{"allow": true, "access": "rwa"}, {"allow": false, "type": "c", "major": 1, "minor": 3}]}"#,
    )
    .unwrap();
    ctx.husk(&["update", "-r", r.to_str().unwrap(), &id]).ok();
    ctx.husk(&["exec", &id, "sh", "-c", "echo x > /dev/null"]).ok();
    if is_husk() {
        let devices = |s: &str| serde_json::from_str::<Value>(s).unwrap()["cgroup"]["resources"]["devices"].clone();
        let after = fs::read_to_string(ctx.root.join(&id).join("state.json")).unwrap();
        assert_eq!(devices(&after), devices(&state_before), "the update's device rules were recorded");
    }
    ctx.husk(&["delete", "--force", &id]).ok();
}
