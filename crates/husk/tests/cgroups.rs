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

/// The container's directory in a v1 hierarchy (this host) under the tests' parent.
fn v1_dir(controller: &str, id: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup").join(controller).join(CGROUP_PARENT).join(id)
}

fn read_in(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}/{file}: {e}", dir.display()))
        .trim()
        .to_string()
}

/// The first real disk (not loop, zram or ram) as `major:minor`, for blkio throttles.
fn a_disk() -> Option<String> {
    let mut names: Vec<String> =
        fs::read_dir("/sys/block").ok()?.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    let name = names.into_iter().find(|n| !n.starts_with("loop") && !n.starts_with("zram") && !n.starts_with("ram"))?;
    Some(fs::read_to_string(format!("/sys/block/{name}/dev")).ok()?.trim().to_string())
}

#[test]
fn every_v1_resource_from_the_config_is_written() {
    if !Path::new("/sys/fs/cgroup/memory").is_dir() {
        return; // a pure cgroup v2 host: the cgroup2_ tests cover it
    }
    // The realtime budget of a child comes out of its parent's: give the tests' parent some.
    let parent = Path::new("/sys/fs/cgroup/cpu").join(CGROUP_PARENT);
    fs::create_dir_all(&parent).unwrap();
    let _ = fs::write(parent.join("cpu.rt_runtime_us"), "20000");
    let mut ctx = Ctx::new("cgall");
    let disk = a_disk();
    let mut res = json!({
        "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 128 << 20, "kernelTCP": 16 << 20,
                   "swappiness": 10, "disableOOMKiller": true},
        "cpu": {"shares": 512, "quota": 20000, "period": 100000, "burst": 10000,
                "realtimePeriod": 500000, "realtimeRuntime": 5000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 20},
    });
    if let Some(d) = &disk {
        let (ma, mi) = d.split_once(':').unwrap();
        let (ma, mi): (i64, i64) = (ma.parse().unwrap(), mi.parse().unwrap());
        res["blockIO"] = json!({
            "throttleReadBpsDevice": [{"major": ma, "minor": mi, "rate": 1048576}],
            "throttleWriteBpsDevice": [{"major": ma, "minor": mi, "rate": 2097152}],
            "throttleReadIOPSDevice": [{"major": ma, "minor": mi, "rate": 100}],
            "throttleWriteIOPSDevice": [{"major": ma, "minor": mi, "rate": 50}],
        });
    }
    ctx.config["linux"]["resources"] = res;
    let (id, _) = start_sleeper(&mut ctx);
    let mem = v1_dir("memory", &id);
    assert_eq!(read_in(&mem, "memory.limit_in_bytes"), (64u64 << 20).to_string());
    assert_eq!(read_in(&mem, "memory.soft_limit_in_bytes"), (32u64 << 20).to_string());
    assert_eq!(read_in(&mem, "memory.memsw.limit_in_bytes"), (128u64 << 20).to_string());
    // runc 1.1 differs: it ignores kernelTCP (with kernel); husk writes it where the kernel has it.
    if is_husk() {
        assert_eq!(read_in(&mem, "memory.kmem.tcp.limit_in_bytes"), (16u64 << 20).to_string());
    }
    assert_eq!(read_in(&mem, "memory.swappiness"), "10");
    assert!(read_in(&mem, "memory.oom_control").contains("oom_kill_disable 1"));
    let cpu = v1_dir("cpu", &id);
    for (file, want) in [
        ("cpu.shares", "512"),
        ("cpu.cfs_quota_us", "20000"),
        ("cpu.cfs_period_us", "100000"),
        ("cpu.cfs_burst_us", "10000"),
        ("cpu.rt_period_us", "500000"),
        ("cpu.rt_runtime_us", "5000"),
    ] {
        assert_eq!(read_in(&cpu, file), want, "{file}");
    }
    assert_eq!(read_in(&v1_dir("cpuset", &id), "cpuset.cpus"), "0");
    assert_eq!(read_in(&v1_dir("cpuset", &id), "cpuset.mems"), "0");
    assert_eq!(read_in(&v1_dir("pids", &id), "pids.max"), "20");
    if let Some(d) = disk {
        let blk = v1_dir("blkio", &id);
        for (file, rate) in [
            ("blkio.throttle.read_bps_device", 1048576),
            ("blkio.throttle.write_bps_device", 2097152),
            ("blkio.throttle.read_iops_device", 100),
            ("blkio.throttle.write_iops_device", 50),
        ] {
            assert_eq!(read_in(&blk, file), format!("{d} {rate}"), "{file}");
        }
    }
    blkio_weight_where_the_kernel_has_one();
}

/// `blockIO.weight` goes to the weight file the kernel has: BFQ's `blkio.bfq.weight` or CFQ's
/// `blkio.weight`, written and read back. A kernel with neither scheduler (this host's 6.18: no
/// CFQ since 5.0, no BFQ built) has no file to write it to: the create is refused naming the
/// field, with nothing left behind.
fn blkio_weight_where_the_kernel_has_one() {
    let mut ctx = Ctx::new("cgweight");
    ctx.config["linux"]["resources"] = json!({"blockIO": {"weight": 500}});
    // What a cgroup of the tests' parent has (the parent exists: the caller made a container).
    let parent = Path::new("/sys/fs/cgroup/blkio").join(CGROUP_PARENT);
    let file = ["blkio.bfq.weight", "blkio.weight"].into_iter().find(|f| parent.join(f).exists());
    match file {
        Some(w) => {
            let (id, _) = start_sleeper(&mut ctx);
            let got = read_in(&v1_dir("blkio", &id), w);
            assert!(got.ends_with("500"), "{w}: {got}");
        }
        None => {
            let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
            ctx.sh("exec sleep 100");
            let id = ctx.id();
            let o = ctx.run_with(&id, &["-d"]).fails();
            if is_husk() {
                o.fails_with("linux.resources.blockIO.weight");
            }
            ctx.assert_nothing_left(&id, &mounts);
        }
    }
}

/// Where the host binds hugetlb: a v1 hierarchy, or (this hybrid host, and pure v2 hosts) the
/// cgroup2 mount.
fn hugetlb_home() -> Option<(PathBuf, bool)> {
    if Path::new("/sys/fs/cgroup/hugetlb").is_dir() {
        return Some((PathBuf::from("/sys/fs/cgroup/hugetlb"), false));
    }
    for m in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
        let c = fs::read_to_string(format!("{m}/cgroup.controllers")).unwrap_or_default();
        if c.split_whitespace().any(|c| c == "hugetlb") {
            return Some((PathBuf::from(m), true));
        }
    }
    None
}

#[test]
fn hugetlb_limit_goes_where_the_controller_is_bound() {
    // runc 1.1 differs: on this hybrid host it fails ("cannot set hugetlb limit"): hugetlb is
    // only on the cgroup2 mount, which runc's v1 driver does not write limits to.
    let Some((mount, v2)) = hugetlb_home() else { return };
    if !Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").is_dir() {
        return;
    }
    let mut ctx = Ctx::new("cghuge");
    ctx.config["linux"]["resources"]["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 4 << 20}]);
    let (id, _) = start_sleeper(&mut ctx);
    let dir = mount.join(CGROUP_PARENT).join(&id);
    let file = if v2 { "hugetlb.2MB.max" } else { "hugetlb.2MB.limit_in_bytes" };
    assert_eq!(read_in(&dir, file), (4u64 << 20).to_string());
    ctx.husk(&["delete", "--force", &id]).ok();
    assert!(!dir.exists(), "{} remains after delete", dir.display());
}

#[test]
fn unenforceable_resources_fail_and_leave_nothing() {
    let ctx_mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let disk = a_disk().unwrap_or_else(|| "254:0".into());
    let (ma, mi) = disk.split_once(':').unwrap();
    let (ma, mi): (i64, i64) = (ma.parse().unwrap(), mi.parse().unwrap());
    let cases = vec![
        (json!({"cpu": {"cpus": "4096"}}), "linux.resources.cpu.cpus"),
        (json!({"memory": {"limit": 64 << 20, "swap": 32 << 20}}), "linux.resources.memory"),
        (
            json!({"blockIO": {"throttleReadBpsDevice": [{"major": ma, "minor": mi + 77, "rate": 1}]}}),
            "linux.resources.blockIO.throttleReadBpsDevice[0]",
        ),
    ];
    for (res, field) in cases {
        let mut ctx = Ctx::new("cgbad");
        ctx.config["linux"]["resources"] = res.clone();
        ctx.sh("exec sleep 100");
        let id = ctx.id();
        let o = ctx.create(&id).fails();
        if is_husk() {
            assert!(o.stderr.contains(field), "{res}: want {field} in {o}");
        }
        ctx.assert_nothing_left(&id, &ctx_mounts);
        let unified = Path::new("/sys/fs/cgroup/unified").join(CGROUP_PARENT).join(&id);
        assert!(!unified.exists(), "{} left behind", unified.display());
    }
}

/// The container's cgroup dir of the hierarchy that freezes it: the v1 freezer here, the
/// cgroup2 dir on a pure v2 host.
fn freezer_dir(id: &str) -> (PathBuf, &'static str, &'static str) {
    let v1 = Path::new("/sys/fs/cgroup/freezer");
    if v1.is_dir() {
        (v1.join(CGROUP_PARENT).join(id), "freezer.state", "FROZEN")
    } else {
        (Path::new("/sys/fs/cgroup").join(CGROUP_PARENT).join(id), "cgroup.freeze", "1")
    }
}

/// runc's checks at create (config-linux.md allows them): into a cgroup that exists frozen,
/// create fails at once (husk waited for the frozen init forever), and so below a frozen
/// parent; into one that holds a process, create fails (the container would share it). The
/// existing cgroups and their process are left as they were; nothing of the container is left.
#[test]
fn create_into_a_frozen_or_busy_cgroup_fails_at_once() {
    let mut ctx = Ctx::new("cgunfit");
    ctx.sh("exec sleep 100");
    let id = ctx.id();
    let (dir, file, frozen) = freezer_dir(&id);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(file), frozen).unwrap();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    for path in [format!("/{CGROUP_PARENT}/{id}"), format!("/{CGROUP_PARENT}/{id}/below")] {
        ctx.config["linux"]["cgroupsPath"] = json!(path);
        let cid = ctx.id();
        ctx.write_config(&cid);
        let mut c = ctx.cmd();
        c.args(["create", "--bundle", ctx.bundle.to_str().unwrap(), &cid]);
        // A deadline, not the suite's minute: a hang is the bug.
        let o = run_cmd(c, &ctx.dir, std::time::Duration::from_secs(10)).fails_with("unexpectedly frozen");
        if is_husk() {
            assert!(o.stderr.contains("linux.cgroupsPath: container's cgroup unexpectedly frozen"), "{o}");
        }
        assert!(!ctx.root.join(&cid).exists() && procs_of(&cid, &ctx.dir).is_empty(), "{o}");
        assert!(!dir.join("below").exists());
    }
    fs::write(dir.join(file), if frozen == "1" { "0" } else { "THAWED" }).unwrap();
    fs::remove_dir(&dir).unwrap();

    // A process in the cgroup (here in the pids hierarchy) before create.
    let pids = if Path::new("/sys/fs/cgroup/pids").is_dir() { "/sys/fs/cgroup/pids" } else { "/sys/fs/cgroup" };
    let dir = Path::new(pids).join(CGROUP_PARENT).join(&id);
    fs::create_dir_all(&dir).unwrap();
    let mut other = spawn(std::process::Command::new("sleep").arg("100").stdin(std::process::Stdio::null()));
    fs::write(dir.join("cgroup.procs"), other.id().to_string()).unwrap();
    ctx.config["linux"].as_object_mut().unwrap().remove("cgroupsPath");
    let o = ctx.create(&id).fails_with("container's cgroup is not empty: 1 process(es) found");
    assert!(other.try_wait().is_none(), "the process in the cgroup was killed: {o}");
    assert!(dir.is_dir());
    assert!(!ctx.root.join(&id).exists());
    other.kill();
    other.wait();
    assert!(wait_for(5, || fs::remove_dir(&dir).is_ok()));
    ctx.assert_nothing_left(&id, &mounts);
}

/// The pids of the container's cgroup (its pids hierarchy here, the cgroup2 dir on v2).
fn cgroup_pids(id: &str) -> Vec<u32> {
    let pids = if Path::new("/sys/fs/cgroup/pids").is_dir() { "/sys/fs/cgroup/pids" } else { "/sys/fs/cgroup" };
    let text =
        fs::read_to_string(Path::new(pids).join(CGROUP_PARENT).join(id).join("cgroup.procs")).unwrap_or_default();
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// With the host's pid namespace the init's children outlive it: `kill KILL` (as runc main),
/// `kill --all` and `delete --force` kill everything in the container's cgroup, also once the
/// init is gone and the container reads `stopped`.
#[test]
fn host_pid_namespace_kill_reaches_every_process_of_the_cgroup() {
    for how in ["kill", "kill-all", "delete-force", "kill-running"] {
        let mut ctx = Ctx::new("cghostpid");
        ctx.config["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "pid");
        let init_exits = how != "kill-running";
        ctx.sh(if init_exits { "sleep 1000 & echo started" } else { "sleep 1000 & exec sleep 1000" });
        let id = ctx.id();
        let before = ctx.audit();
        let o = ctx.run_with(&id, &["-d"]).ok();
        if init_exits {
            ctx.wait_status(&id, "stopped");
        }
        assert!(wait_for(10, || cgroup_pids(&id).len() == if init_exits { 1 } else { 2 }), "{o}");
        let left = cgroup_pids(&id);
        match how {
            "kill" | "kill-running" => ctx.husk(&["kill", &id, "KILL"]).ok(),
            "kill-all" => ctx.husk(&["kill", "--all", &id, "KILL"]).ok(),
            _ => ctx.husk(&["delete", "--force", &id]).ok(),
        };
        for p in &left {
            assert!(wait_for(10, || !alive(*p)), "{how}: pid {p} of the container's cgroup survived");
        }
        if how != "delete-force" {
            ctx.wait_status(&id, "stopped");
            // Nothing left: a second one says so, as runc does (kill --all of it succeeds).
            ctx.husk(&["kill", &id, "KILL"]).fails_with("container not running");
            ctx.husk(&["kill", "--all", &id, "KILL"]).ok();
            ctx.husk(&["delete", &id]).ok();
        }
        ctx.assert_no_leaks(&before);
    }
}

/// `unified` on a host whose controllers are v1's: runc's words, which tools match (hybrid
/// here: memory is a v1 controller; a pure v1 host has no cgroup2 at all).
#[test]
fn unified_for_a_v1_controller_is_an_invalid_configuration() {
    if !Path::new("/sys/fs/cgroup/memory").is_dir() {
        return; // a pure cgroup v2 host
    }
    let mut ctx = Ctx::new("cgunified1");
    ctx.config["linux"]["resources"]["unified"] = json!({"memory.high": "50331648"});
    let id = ctx.id();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let o = ctx.create(&id).fails_with("invalid configuration: cannot use unified on cgroup v1");
    if is_husk() {
        assert!(o.stderr.contains("linux.resources.unified.memory.high: invalid configuration"), "{o}");
    }
    ctx.assert_nothing_left(&id, &mounts);
}

/// runtime-spec 1.3: `pids.limit` 0 is a real limit; runc main writes pids.max 1 for it (as
/// systemd's TasksMax must). A `pids` object without a limit sets none.
#[test]
fn pids_limit_zero_is_a_limit() {
    // runc 1.1 differs: it reads 0 as "unset".
    if !is_husk() {
        return;
    }
    let pids = |id: &str| {
        let d = if Path::new("/sys/fs/cgroup/pids").is_dir() { "/sys/fs/cgroup/pids" } else { "/sys/fs/cgroup" };
        read_in(&Path::new(d).join(CGROUP_PARENT).join(id), "pids.max")
    };
    let mut ctx = Ctx::new("cgpids0");
    ctx.config["linux"]["resources"]["pids"] = json!({"limit": 0});
    // The init is the one process allowed (the kernel enforces pids.max: pids_limit_enforced).
    let (id, _) = start_sleeper(&mut ctx);
    assert_eq!(pids(&id), "1");
    ctx.husk(&["update", "--pids-limit", "-1", &id]).ok();
    assert_eq!(pids(&id), "max");
    ctx.husk(&["update", "--pids-limit", "0", &id]).ok();
    assert_eq!(pids(&id), "1");

    let mut ctx = Ctx::new("cgpidsnone");
    ctx.config["linux"]["resources"]["pids"] = json!({});
    let (id, _) = start_sleeper(&mut ctx);
    assert_eq!(pids(&id), "max");
}
