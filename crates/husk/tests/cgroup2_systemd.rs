//! cgroup v2 and the systemd driver, on a pure v2 host with systemd (the guest:
//! `scripts/guest/test.sh`). Every test is named `cgroup2_` or `systemd_` and skips on a
//! host without the feature (this v1 host) unless HUSK_REQUIRE names it.
mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn cg2(id: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup").join(CGROUP_PARENT).join(id)
}

fn read(dir: &Path, file: &str) -> String {
    let p = dir.join(file);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())).trim().to_string()
}

fn sleeper(ctx: &mut Ctx, script: &str, globals: &[&str]) -> (String, u64) {
    ctx.sh(script);
    let id = ctx.id();
    ctx.write_config(&id);
    let b = ctx.bundle.to_str().unwrap().to_string();
    let mut args: Vec<&str> = globals.to_vec();
    args.extend(["run", "-d", "--bundle", &b, &id]);
    ctx.husk(&args).ok();
    let pid = ctx.state(&id)["pid"].as_u64().unwrap();
    (id, pid)
}

/// The first virtio or SCSI disk as `major:minor`.
fn a_disk() -> Option<(i64, i64)> {
    let mut names: Vec<String> =
        fs::read_dir("/sys/block").ok()?.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    let name = names.into_iter().find(|n| n.starts_with("vd") || n.starts_with("sd"))?;
    let dev = fs::read_to_string(format!("/sys/block/{name}/dev")).ok()?;
    let (a, b) = dev.trim().split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[test]
fn cgroup2_every_resource_from_the_config() {
    if !require(Feature::Cgroup2) {
        return;
    }
    let mut ctx = Ctx::new("c2all");
    let mut res = json!({
        "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 96 << 20},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 10000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 20},
        "unified": {"memory.oom.group": "1", "memory.high": "50331648"},
    });
    let disk = a_disk();
    if let Some((ma, mi)) = disk {
        res["blockIO"] = json!({"weight": 500, "throttleReadBpsDevice": [{"major": ma, "minor": mi, "rate": 1048576}],
                                "throttleWriteIOPSDevice": [{"major": ma, "minor": mi, "rate": 120}]});
    }
    let huge = Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").is_dir();
    if huge {
        res["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 4 << 20}]);
    }
    ctx.config["linux"]["resources"] = res;
    add_namespace(&mut ctx.config, "cgroup");
    let (id, pid) = sleeper(&mut ctx, "cat /sys/fs/cgroup/memory.max > /dev/shm/x; exec sleep 100", &[]);
    let d = cg2(&id);
    let procs = read(&d, "cgroup.procs");
    assert!(procs.lines().any(|l| l == pid.to_string()), "{procs}");
    assert_eq!(read(&d, "memory.max"), (64u64 << 20).to_string());
    assert_eq!(read(&d, "memory.low"), (32u64 << 20).to_string());
    assert_eq!(read(&d, "memory.swap.max"), (32u64 << 20).to_string(), "swap is memory+swap minus memory");
    assert_eq!(read(&d, "cpu.weight"), "100", "shares 1024 → weight 100 (runc main's conversion)");
    assert_eq!(read(&d, "cpu.max"), "50000 100000");
    assert_eq!(read(&d, "cpu.max.burst"), "10000");
    assert_eq!(read(&d, "cpuset.cpus"), "0");
    assert_eq!(read(&d, "pids.max"), "20");
    assert_eq!(read(&d, "memory.oom.group"), "1");
    assert_eq!(read(&d, "memory.high"), "50331648");
    if let Some((ma, mi)) = disk {
        let max = read(&d, "io.max");
        assert!(max.contains(&format!("{ma}:{mi} rbps=1048576")) && max.contains("wiops=120"), "{max}");
        if d.join("io.bfq.weight").exists() {
            assert!(read(&d, "io.bfq.weight").contains("500"), "{}", read(&d, "io.bfq.weight"));
        } else if d.join("io.weight").exists() {
            // blkio 500 → io.weight 1 + 490 * 9999 / 990
            assert!(read(&d, "io.weight").contains("4950"), "{}", read(&d, "io.weight"));
        }
    }
    if huge {
        assert_eq!(read(&d, "hugetlb.2MB.max"), (4u64 << 20).to_string());
    }
    // The container sees its own cgroup as the root of its cgroup namespace.
    let inside = fs::read_to_string(format!("/proc/{pid}/root/dev/shm/x")).unwrap_or_default();
    assert_eq!(inside.trim(), (64u64 << 20).to_string());
    ctx.husk(&["delete", "--force", &id]).ok();
    assert!(!d.exists(), "{} remains after delete", d.display());
}

#[test]
fn cgroup2_device_filter_denies_what_is_not_allowed() {
    if !require(Feature::Cgroup2) {
        return;
    }
    let mut ctx = Ctx::new("c2dev");
    // /dev/kmsg exists in the container but is not in the allow list.
    ctx.config["linux"]["devices"] = json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}]);
    let out = ctx.run_sh(
        "echo x > /dev/null && echo null-ok; head -c1 /dev/kmsg >/dev/null 2>&1 && echo kmsg-ok || echo kmsg-denied",
    );
    assert_eq!(out, "null-ok\nkmsg-denied\n");
}

#[test]
fn cgroup2_update_pause_ps_and_stats() {
    if !require(Feature::Cgroup2) {
        return;
    }
    let mut ctx = Ctx::new("c2cmd");
    ctx.config["linux"]["resources"] = json!({"memory": {"limit": 64 << 20}, "pids": {"limit": 40}});
    let (id, pid) = sleeper(&mut ctx, "sleep 200 & exec sleep 100", &[]);
    let d = cg2(&id);
    ctx.husk(&["update", "--memory", "128M", "--cpu-quota", "20000", "--cpu-period", "100000", &id]).ok();
    assert_eq!(read(&d, "memory.max"), (128u64 << 20).to_string());
    assert_eq!(read(&d, "cpu.max"), "20000 100000");
    assert_eq!(read(&d, "pids.max"), "40");
    // pids.limit 0 is a limit: TasksMax 1 (systemd refuses 0) and pids.max 1, as runc main.
    ctx.husk(&["update", "--pids-limit", "0", &id]).ok();
    assert_eq!(read(&d, "pids.max"), "1");
    ctx.husk(&["update", "--pids-limit", "40", &id]).ok();
    ctx.husk(&["pause", &id]).ok();
    assert_eq!(ctx.status(&id), "paused");
    assert_eq!(read(&d, "cgroup.freeze"), "1");
    assert!(read(&d, "cgroup.events").contains("frozen 1"));
    ctx.husk(&["resume", &id]).ok();
    assert_eq!(ctx.status(&id), "running");
    assert!(wait_for(5, || ctx.husk(&["ps", "-f", "json", &id]).stdout.contains(',')));
    let pids: Vec<u64> = serde_json::from_str(&ctx.husk(&["ps", "-f", "json", &id]).ok().stdout).unwrap();
    assert!(pids.contains(&pid) && pids.len() == 2, "{pids:?}");
    let e: Value = serde_json::from_str(&ctx.husk(&["events", "--stats", &id]).ok().stdout).unwrap();
    let data = &e["data"];
    assert_eq!(e["type"], "stats");
    assert_eq!(data["memory"]["usage"]["limit"], 128u64 << 20);
    assert!(data["memory"]["usage"]["usage"].as_u64().unwrap() > 0);
    assert_eq!(data["pids"]["current"], 2);
    assert_eq!(data["pids"]["limit"], 40);
    assert!(data["cpu"]["usage"]["total"].as_u64().unwrap() > 0);
    // kill --all of a paused container: everything dies.
    ctx.husk(&["pause", &id]).ok();
    ctx.husk(&["kill", "--all", &id, "KILL"]).ok();
    ctx.wait_status(&id, "stopped");
    for p in pids {
        assert!(wait_for(5, || !alive(p as u32)), "{p} survived");
    }
    ctx.husk(&["delete", &id]).ok();
    assert!(!d.exists());
}

#[test]
fn cgroup2_oom_event() {
    if !require(Feature::Cgroup2) {
        return;
    }
    let mut ctx = Ctx::new("c2oom");
    ctx.config["linux"]["resources"]["memory"] = json!({"limit": 16 << 20, "swap": 16 << 20});
    ctx.config["root"]["readonly"] = json!(false);
    let (id, _) = sleeper(
        &mut ctx,
        "while [ ! -e /tmp/go ]; do usleep 20000; done; dd if=/dev/zero of=/dev/null bs=64M count=1; exec sleep 100",
        &[],
    );
    let out = ctx.dir.join("events.out");
    let mut c = ctx.cmd();
    c.args(["events", "--interval", "300ms", &id]).stdout(fs::File::create(&out).unwrap()).stderr(Stdio::null());
    let mut child = spawn_for(&mut c, BACKGROUND);
    let lines = || -> Vec<Value> {
        fs::read_to_string(&out).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    };
    assert!(wait_for(20, || !lines().is_empty()), "no stats event");
    fs::write(ctx.rootfs().join("tmp/go"), "").unwrap();
    let got = wait_for(60, || lines().iter().any(|e| e["type"] == "oom"));
    child.kill();
    let _ = child.wait();
    assert!(got, "no oom event: {:?}", fs::read_to_string(&out));
}

#[test]
fn cgroup2_failed_create_leaves_no_cgroup() {
    if !require(Feature::Cgroup2) {
        return;
    }
    let before = fs::read_to_string("/proc/self/mountinfo").unwrap();
    for res in [json!({"cpu": {"cpus": "4096"}}), json!({"cpu": {"realtimeRuntime": 1000}})] {
        let mut ctx = Ctx::new("c2bad");
        ctx.config["linux"]["resources"] = res;
        let id = ctx.id();
        ctx.create(&id).fails();
        ctx.assert_nothing_left(&id, &before);
        assert!(!cg2(&id).exists(), "{} left behind", cg2(&id).display());
    }
}

fn systemctl(args: &[&str]) -> (bool, String) {
    let o = output(Command::new("systemctl").args(args));
    (o.status.success(), String::from_utf8_lossy(&o.stdout).trim().to_string())
}

#[test]
fn systemd_scope_with_limits_update_and_delete() {
    if !require(Feature::Systemd) || !require(Feature::Cgroup2) {
        return;
    }
    let mut ctx = Ctx::new("sdscope");
    let id = ctx.id();
    ctx.config["linux"]["cgroupsPath"] = json!(format!("system.slice:husk:{id}"));
    ctx.config["linux"]["resources"] =
        json!({"memory": {"limit": 64 << 20}, "pids": {"limit": 33}, "cpu": {"quota": 50000, "period": 100000}});
    ctx.sh("exec sleep 100");
    ctx.write_config(&id);
    let b = ctx.bundle.to_str().unwrap().to_string();
    ctx.husk(&["--systemd-cgroup", "run", "-d", "--bundle", &b, &id]).ok();
    let unit = format!("husk-{id}.scope");
    let dir = Path::new("/sys/fs/cgroup/system.slice").join(&unit);
    let pid = ctx.state(&id)["pid"].as_u64().unwrap();
    assert!(read(&dir, "cgroup.procs").lines().any(|l| l == pid.to_string()));
    assert_eq!(systemctl(&["is-active", &unit]).1, "active");
    assert_eq!(systemctl(&["show", "-p", "MemoryMax", "--value", &unit]).1, (64u64 << 20).to_string());
    assert_eq!(systemctl(&["show", "-p", "TasksMax", "--value", &unit]).1, "33");
    assert_eq!(read(&dir, "memory.max"), (64u64 << 20).to_string());
    assert_eq!(read(&dir, "pids.max"), "33");
    assert_eq!(read(&dir, "cpu.max"), "50000 100000");
    ctx.husk(&["--systemd-cgroup", "update", "--memory", "128M", &id]).ok();
    assert_eq!(read(&dir, "memory.max"), (128u64 << 20).to_string());
    assert_eq!(systemctl(&["show", "-p", "MemoryMax", "--value", &unit]).1, (128u64 << 20).to_string());
    // pids.limit 0 is a limit: TasksMax 1 (systemd refuses 0), as runc main's systemd driver.
    ctx.husk(&["--systemd-cgroup", "update", "--pids-limit", "0", &id]).ok();
    assert_eq!(systemctl(&["show", "-p", "TasksMax", "--value", &unit]).1, "1");
    assert_eq!(read(&dir, "pids.max"), "1");
    ctx.husk(&["--systemd-cgroup", "pause", &id]).ok();
    assert_eq!(ctx.status(&id), "paused");
    ctx.husk(&["--systemd-cgroup", "resume", &id]).ok();
    let stats: Value = serde_json::from_str(&ctx.husk(&["events", "--stats", &id]).ok().stdout).unwrap();
    assert_eq!(stats["data"]["memory"]["usage"]["limit"], 128u64 << 20);
    ctx.husk(&["--systemd-cgroup", "delete", "--force", &id]).ok();
    assert!(wait_for(5, || !dir.exists()), "{} remains after delete", dir.display());
    assert_ne!(systemctl(&["is-active", &unit]).1, "active");
}

#[test]
fn systemd_failed_create_leaves_no_unit() {
    if !require(Feature::Systemd) || !require(Feature::Cgroup2) {
        return;
    }
    let before = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut ctx = Ctx::new("sdbad");
    let id = ctx.id();
    ctx.config["linux"]["cgroupsPath"] = json!(format!("system.slice:husk:{id}"));
    ctx.config["linux"]["resources"] = json!({"cpu": {"cpus": "4096"}});
    ctx.write_config(&id);
    let b = ctx.bundle.to_str().unwrap().to_string();
    ctx.husk(&["--systemd-cgroup", "create", "--bundle", &b, &id]).fails();
    ctx.assert_nothing_left(&id, &before);
    let unit = format!("husk-{id}.scope");
    std::thread::sleep(Duration::from_millis(200));
    assert_ne!(systemctl(&["is-active", &unit]).1, "active");
    assert!(!Path::new("/sys/fs/cgroup/system.slice").join(&unit).exists());
    // A cgroupfs path is not a systemd one.
    ctx.config["linux"]["cgroupsPath"] = json!("/husk-tests/not-a-slice");
    let id = ctx.id();
    ctx.write_config(&id);
    let o = ctx.husk(&["--systemd-cgroup", "create", "--bundle", &b, &id]).fails();
    if is_husk() {
        assert!(o.stderr.contains("linux.cgroupsPath"), "{o}");
    }
}

/// A system container: systemd as the container's init, from a copy of this (Debian) host's
/// root (an overlay over `/`, so nothing is copied), with a cgroup namespace and a writable
/// cgroup2 mount it manages below its own cgroup; `kill SIGRTMIN+3` halts it.
#[test]
fn systemd_system_container_boots_and_halts() {
    if !require(Feature::Systemd) || !require(Feature::Cgroup2) {
        return;
    }
    if !Path::new("/sbin/init").exists() || !Path::new("/etc/debian_version").exists() {
        panic!("a system container needs a Debian root with systemd as /sbin/init");
    }
    let mut ctx = Ctx::new("sysct");
    let layers = ctx.dir.join("layers");
    fs::create_dir_all(&layers).unwrap();
    let sh = |cmd: &str| {
        let st = status(Command::new("sh").args(["-c", cmd]).stdin(Stdio::null()));
        assert!(st.success(), "{cmd}");
    };
    let l = layers.display();
    sh(&format!("mount -t tmpfs -o size=256m tmpfs {l} && mkdir {l}/upper {l}/work {l}/root"));
    sh(&format!("mount -t overlay overlay -o lowerdir=/,upperdir={l}/upper,workdir={l}/work {l}/root"));
    let root = layers.join("root");
    // The guest's own job unit would power the container off: mask it inside.
    let _ = fs::remove_file(root.join("etc/systemd/system/multi-user.target.wants/husk-guest-job.service"));
    let _ = std::os::unix::fs::symlink("/dev/null", root.join("etc/systemd/system/husk-guest-job.service"));
    let features: Value = serde_json::from_str(&ctx.husk(&["features"]).ok().stdout).unwrap();
    let caps = features["linux"]["capabilities"].clone();
    let c = &mut ctx.config;
    c["root"] = json!({"path": root, "readonly": false});
    c["process"]["args"] = json!(["/sbin/init"]);
    c["process"]["env"].as_array_mut().unwrap().push(json!("container=husk"));
    for set in ["bounding", "effective", "permitted"] {
        c["process"]["capabilities"][set] = caps.clone();
    }
    add_namespace(c, "cgroup");
    let mounts = c["mounts"].as_array_mut().unwrap();
    for m in mounts.iter_mut() {
        if m["destination"] == "/sys/fs/cgroup" {
            m["options"] = json!(["nosuid", "noexec", "nodev", "relatime", "rw"]);
        }
    }
    for (d, mode) in [("/run", "mode=755"), ("/run/lock", "mode=1777"), ("/tmp", "mode=1777")] {
        mounts
            .push(json!({"destination": d, "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", mode]}));
    }
    let id = ctx.id();
    let run = ctx.run_with(&id, &["-d"]).ok();
    let pid = ctx.state(&id)["pid"].as_u64().unwrap();
    // systemctl needs systemd's private socket: wait for systemd to make it.
    let socket = PathBuf::from(format!("/proc/{pid}/root/run/systemd/private"));
    let up = wait_for(240, || socket.exists() || !alive(pid as u32));
    assert!(up && alive(pid as u32), "systemd did not come up; its output:\n{}", run.stdout_now());
    let mut check = Command::new("timeout");
    check.args(["300", "nsenter", "-t", &pid.to_string(), "-a", "systemctl", "is-system-running", "--wait"]);
    // TCG: a full boot of the guest's units takes minutes.
    let o = run_cmd(check, &ctx.dir, Duration::from_secs(320));
    let state = o.stdout.trim().to_string();
    let units = {
        let mut c = Command::new("nsenter");
        c.args(["-t", &pid.to_string(), "-a", "systemctl", "--failed", "--no-legend"]);
        ctx.exec(c).stdout
    };
    // systemd made its own cgroups below the container's, through the cgroup namespace.
    let init_scope = cg2(&id).join("init.scope");
    let had_scope = init_scope.is_dir();
    ctx.husk(&["kill", &id, "SIGRTMIN+3"]).ok();
    let stopped = wait_for(180, || ctx.status(&id) == "stopped");
    ctx.husk(&["delete", "--force", &id]).ok();
    status(Command::new("umount").arg("-R").arg(&layers));
    assert!(
        state == "running" || state == "degraded",
        "is-system-running: {o}\nfailed units:\n{units}\nsystemd's output:\n{}",
        run.stdout_now()
    );
    assert!(had_scope, "no init.scope below the container's cgroup");
    assert!(stopped, "systemd did not halt on SIGRTMIN+3");
    assert!(!cg2(&id).exists(), "{} remains after delete", cg2(&id).display());
}
