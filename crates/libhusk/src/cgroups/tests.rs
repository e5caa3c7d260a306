//! Tests on the host's real cgroups (root, v1 hybrid here). Every cgroup is named
//! `husk-test-<pid>-<tag>` and removed by the test that made it.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use oci_spec::runtime::LinuxResources;

use super::*;

fn name(tag: &str) -> String {
    format!("husk-test-{}-{tag}", std::process::id())
}

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap()
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap().trim().to_owned()
}

fn placement<'a>(cg: &'a Cgroup, controller: &str) -> &'a Placement {
    cg.placements.iter().find(|p| p.controllers.iter().any(|c| c == controller)).unwrap()
}

fn v2(cg: &Cgroup) -> Option<&Placement> {
    cg.placements.iter().find(|p| p.v2)
}

/// Every dir and every created dir is gone.
fn assert_removed(cg: &Cgroup) {
    for p in &cg.placements {
        for d in p.created.iter().chain([&p.dir]) {
            assert!(!d.exists() || !p.created.contains(d), "{} left behind", d.display());
        }
    }
}

/// Start `cmd` already inside the given cgroup dirs (it moves itself before exec), so that
/// device rules apply to everything it opens.
fn spawn_in(dirs: &[&Path], cmd: &mut Command) -> std::process::Child {
    let files: Vec<CString> =
        dirs.iter().map(|d| CString::new(d.join("cgroup.procs").as_os_str().as_bytes()).unwrap()).collect();
    // SAFETY: the hook runs between fork and exec and only calls open/write/close on
    // buffers prepared before the fork, all async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            for f in &files {
                let fd = libc::open(f.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
            }
            Ok(())
        })
    };
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap()
}

#[test]
fn paths_absolute_relative_default() {
    let hs = host_hierarchies().unwrap();
    let own = mountinfo::read_proc_cgroup().unwrap();
    for (path, id) in [(Some(format!("/{}/x", name("abs"))), "c1"), (Some(name("rel")), "c2"), (None, &*name("dflt"))] {
        let cg = Cgroup::create(path.as_deref().map(Path::new), id, None).unwrap();
        let inner = path.clone().unwrap_or_else(|| id.to_owned());
        let absolute = inner.starts_with('/');
        for p in &cg.placements {
            let h = hs.iter().find(|h| h.mount == p.mount).unwrap();
            let base = if absolute { PathBuf::new() } else { mountinfo::own_relative(h, &own).unwrap() };
            assert_eq!(p.dir, h.mount.join(base).join(inner.trim_start_matches('/')));
            assert!(p.dir.is_dir());
            assert_eq!(p.created.last(), Some(&p.dir));
            assert_eq!(p.created.len(), if absolute { 2 } else { 1 }, "{:?}", p.created);
        }
        assert!(cg.placements.iter().any(|p| p.controllers == ["name=systemd"]));
        // This host: the caller's memory cgroup is not the root.
        let mem = placement(&cg, "memory");
        if !absolute && own.iter().any(|o| o.controllers == ["memory"] && o.path != "/") {
            assert_ne!(mem.dir.parent(), Some(mem.mount.as_path()));
        }
        cg.destroy().unwrap();
        assert_removed(&cg);
        for p in &cg.placements {
            assert!(!p.created[0].exists());
        }
    }
    assert_eq!(clean(Path::new("a/../../b/./c/")), (false, PathBuf::from("b/c")));
    assert_eq!(clean(Path::new("/../x")), (true, PathBuf::from("x")));
}

#[test]
fn existing_cgroup_is_joined_not_removed() {
    let n = format!("/{}", name("join"));
    let first = Cgroup::create(Some(Path::new(&n)), "a", None).unwrap();
    let second = Cgroup::create(Some(Path::new(&n)), "b", None).unwrap();
    assert!(second.placements.iter().all(|p| p.created.is_empty() && p.dir.is_dir()));
    second.destroy().unwrap();
    assert!(first.placements.iter().all(|p| p.dir.is_dir()));
    first.destroy().unwrap();
    assert_removed(&first);
}

#[test]
fn v1_resources_processes_and_destroy() {
    let r = res(r#"{
        "memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728, "swappiness": 10},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 20},
        "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 4, "minor": 7, "access": "rw"}],
        "blockIO": {}, "network": {}, "hugepageLimits": [], "rdma": {}
    }"#);
    let n = name("res");
    let cg = Cgroup::create(Some(Path::new(&n)), "res", Some(&r)).unwrap();
    let mem = &placement(&cg, "memory").dir;
    assert_eq!(read(mem, "memory.limit_in_bytes"), "67108864");
    assert_eq!(read(mem, "memory.soft_limit_in_bytes"), "33554432");
    assert_eq!(read(mem, "memory.memsw.limit_in_bytes"), "134217728");
    assert_eq!(read(mem, "memory.swappiness"), "10");
    let cpu = &placement(&cg, "cpu").dir;
    assert_eq!(read(cpu, "cpu.shares"), "512");
    assert_eq!(read(cpu, "cpu.cfs_quota_us"), "50000");
    assert_eq!(read(cpu, "cpu.cfs_period_us"), "100000");
    assert_eq!(read(&placement(&cg, "cpuset").dir, "cpuset.cpus"), "0");
    assert_eq!(read(&placement(&cg, "pids").dir, "pids.max"), "20");
    let list = read(&placement(&cg, "devices").dir, "devices.list");
    let list: Vec<&str> = list.lines().collect();
    for rule in ["c 4:7 rw", "c 1:3 rwm", "c 136:* rwm", "c 5:2 rwm", "c *:* m", "b *:* m", "c 10:200 rwm"] {
        assert!(list.contains(&rule), "{rule} missing from {list:?}");
    }
    assert!(!list.contains(&"a *:* rwm"));

    let mut child = Command::new("sleep").arg("1000").stdin(Stdio::null()).spawn().unwrap();
    let pid = child.id() as i32;
    cg.add_process(pid, false).unwrap();
    assert_eq!(cg.pids().unwrap(), [pid]);
    for p in &cg.placements {
        assert_eq!(remove::read_ids(&p.dir.join("cgroup.procs")).unwrap(), [pid], "{}", p.dir.display());
    }
    // A sub-cgroup made inside the container's cgroup is the container's too.
    let sub = placement(&cg, "pids").dir.join("inner");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("cgroup.procs"), pid.to_string()).unwrap();
    assert_eq!(cg.pids().unwrap(), [pid]);

    child.kill().unwrap();
    child.wait().unwrap();
    cg.destroy().unwrap();
    assert_removed(&cg);
    assert!(!sub.exists());
}

#[test]
fn destroy_waits_for_dying_processes() {
    let n = name("busy");
    let cg = Cgroup::create(Some(Path::new(&n)), "busy", None).unwrap();
    let mut child = Command::new("sleep").arg("1000").stdin(Stdio::null()).spawn().unwrap();
    cg.add_process(child.id() as i32, false).unwrap();
    // Killed but not waited for: destroy must wait for the exit, not fail with EBUSY.
    child.kill().unwrap();
    cg.destroy().unwrap();
    assert_removed(&cg);
    child.wait().unwrap();
}

#[test]
fn destroy_waits_for_a_process_killed_meanwhile() {
    let n = name("later");
    let cg = Cgroup::create(Some(Path::new(&n)), "later", None).unwrap();
    let mut child = Command::new("sleep").arg("1000").stdin(Stdio::null()).spawn().unwrap();
    let pid = child.id() as i32;
    cg.add_process(pid, false).unwrap();
    // The kill comes while destroy already waits on the pidfd; the wait limit (5 s) is far away.
    let killer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(200));
        // SAFETY: plain kill(2) of the child we spawned and have not reaped yet.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        child.wait().unwrap();
    });
    cg.destroy().unwrap();
    assert_removed(&cg);
    killer.join().unwrap();
}

#[test]
fn v1_device_rules_are_enforced() {
    let r = res(r#"{"devices": [{"allow": false, "access": "rwm"}]}"#);
    let n = name("dev");
    let cg = Cgroup::create(Some(Path::new(&n)), "dev", Some(&r)).unwrap();
    // Exactly what runc 1.1.5 leaves in devices.list for the same config on this host.
    let mut list: Vec<String> =
        read(&placement(&cg, "devices").dir, "devices.list").lines().map(str::to_owned).collect();
    list.sort();
    let runc = ["b *:* m", "c *:* m", "c 10:200 rwm", "c 136:* rwm", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm"];
    let runc = [&runc[..], &["c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm", "c 5:2 rwm"]].concat();
    assert_eq!(list, runc);
    let dirs: Vec<&Path> = cg.placements.iter().map(|p| p.dir.as_path()).collect();
    let script = "echo x >/dev/null && echo null-ok; (: </dev/kmsg) 2>/dev/null && echo kmsg-ok || echo kmsg-denied";
    let child = spawn_in(&dirs, Command::new("sh").args(["-c", script]));
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "null-ok\nkmsg-denied\n");
    cg.destroy().unwrap();
    assert_removed(&cg);
}

/// The cgroup2 code path on this host's unified mount, taken as if it were a pure v2 host:
/// the eBPF device filter, `unified` core files, and controllers that are not there.
#[test]
fn v2_device_filter_and_unified() {
    let hs = host_hierarchies().unwrap();
    let Some(unified) = hs.iter().find(|h| h.v2).cloned() else { return };
    let only_v2 = [unified];
    let r = res(r#"{"devices": [{"allow": false, "access": "rwm"}], "unified": {"cgroup.max.depth": "3"}}"#);
    let n = format!("/{}", name("v2"));
    let cg = Cgroup::create_in(&only_v2, Some(Path::new(&n)), "v2", Some(&r)).unwrap();
    let p = v2(&cg).unwrap();
    assert_eq!(read(&p.dir, "cgroup.max.depth"), "3");
    let fd = cg.v2_dir_fd().unwrap();
    assert!(fd.is_some());
    let script = "echo x >/dev/null && echo null-ok; (: </dev/kmsg) 2>/dev/null && echo kmsg-ok || echo kmsg-denied";
    let out = spawn_in(&[&p.dir], Command::new("sh").args(["-c", script])).wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "null-ok\nkmsg-denied\n");
    cg.destroy().unwrap();
    assert_removed(&cg);

    // Controllers the hierarchy lacks are refused by field, and nothing is left behind.
    let n = format!("/{}", name("v2bad"));
    for (json, field) in [
        (r#"{"memory": {"limit": 1048576}}"#, "linux.resources.memory:"),
        (r#"{"pids": {"limit": 5}}"#, "linux.resources.pids:"),
        (r#"{"unified": {"io.max": "8:0 rbps=1"}}"#, "linux.resources.unified.io.max:"),
        (r#"{"unified": {"../x": "1"}}"#, "linux.resources.unified.../x:"),
    ] {
        let e = Cgroup::create_in(&only_v2, Some(Path::new(&n)), "x", Some(&res(json))).unwrap_err();
        assert!(e.to_string().starts_with(field), "{e}");
        assert!(!only_v2[0].mount.join(&n[1..]).exists());
    }
}

/// A cgroup of its own on this host's cgroup2 mount, and its directory; none without one.
fn unified_cgroup(tag: &str) -> Option<(Cgroup, PathBuf)> {
    let unified = host_hierarchies().unwrap().into_iter().find(|h| h.v2)?;
    let n = format!("/{}", name(tag));
    let cg = Cgroup::create_in(&[unified], Some(Path::new(&n)), tag, None).unwrap();
    let dir = v2(&cg).unwrap().dir.clone();
    Some((cg, dir))
}

/// `kill --all KILL` freezes, kills and thaws; systemd removes a scope's cgroup the moment its
/// last task is gone, which can be before the thaw (a CI failure): that thaw succeeds, while a
/// freeze of a removed cgroup still fails.
#[test]
fn thaw_of_a_cgroup_removed_meanwhile_succeeds() {
    let Some((cg, dir)) = unified_cgroup("thawgone") else { return };
    let mut child = spawn_in(&[&dir], Command::new("sleep").arg("100"));
    cg.freeze().unwrap();
    assert_eq!(read(&dir, "cgroup.freeze"), "1");
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_dir(&dir).unwrap();
    cg.thaw().unwrap();
    let e = cg.freeze().unwrap_err().to_string();
    assert!(e.contains(&*dir.to_string_lossy()), "{e}");
}

/// `kill --all KILL`'s one write: every task of the cgroup and of its sub-cgroups dies, frozen or
/// not; without a cgroup2 placement there is nothing to write (the caller signals by list).
#[test]
fn cgroup_kill_kills_the_whole_subtree() {
    let Some((cg, dir)) = unified_cgroup("cgkill") else { return };
    let sub = dir.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let mut top = spawn_in(&[&dir], Command::new("sleep").arg("100"));
    let mut below = spawn_in(&[&sub], Command::new("sleep").arg("100"));
    cg.freeze().unwrap();
    assert!(cg.kill());
    for child in [&mut top, &mut below] {
        let status = child.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));
    }
    std::fs::remove_dir(&sub).unwrap();
    cg.thaw().unwrap();
    cg.destroy().unwrap();
    assert_removed(&cg);
    assert!(cg.kill(), "a removed cgroup has nothing left to kill");
    let no_cgroup = Cgroup { placements: Vec::new(), mode: None, resources: None, systemd: None };
    assert!(!no_cgroup.kill());
}

#[test]
fn fields_the_host_cannot_enforce_are_refused_by_path() {
    let n = format!("/{}", name("unsup"));
    let hs = host_hierarchies().unwrap();
    let v1 = |c: &str| hs.iter().any(|h| h.controllers.iter().any(|x| x == c));
    let mut cases = vec![
        (r#"{"memory": {"swappiness": 101}}"#, "linux.resources.memory.swappiness: 101 is not in 0..100".to_owned()),
        (
            r#"{"devices": [{"allow": true, "type": "p"}]}"#,
            "linux.resources.devices[0].type: invalid cgroup device type \"p\"".to_owned(),
        ),
        (r#"{"blockIO": {"weight": 5}}"#, "linux.resources.blockIO.weight: 5 is not in 10..1000".to_owned()),
        (
            r#"{"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}"#,
            "linux.resources.hugepageLimits[0].pageSize: this machine has no 3MB huge pages".to_owned(),
        ),
        (
            r#"{"cpu": {"quota": 1000, "burst": 2000}}"#,
            "linux.resources.cpu.burst: 2000 is larger than the quota 1000".to_owned(),
        ),
        (r#"{"rdma": {"mlx5_1": {}}}"#, "linux.resources.rdma.mlx5_1: needs hcaHandles or hcaObjects".to_owned()),
    ];
    // This host: no net_cls, net_prio or rdma hierarchy, and cgroup2 has none of them.
    if !v1("net_cls") {
        cases.push((
            r#"{"network": {"classID": 1}}"#,
            "linux.resources.network.classID: the net_cls cgroup controller is not mounted".to_owned(),
        ));
    }
    if !v1("rdma") && current_mode().unwrap() != Mode::V2 {
        cases.push((
            r#"{"rdma": {"mlx5_1": {"hcaHandles": 3}}}"#,
            "linux.resources.rdma: the cgroup v2 controller \"rdma\" is not available".to_owned(),
        ));
    }
    for (json, msg) in cases {
        let e = Cgroup::create(Some(Path::new(&n)), "x", Some(&res(json))).unwrap_err();
        assert_eq!(e.to_string(), msg, "{json}");
    }
    for h in host_hierarchies().unwrap() {
        assert!(!h.mount.join(&n[1..]).exists(), "{} left behind", h.mount.display());
    }
}

#[test]
fn failed_write_removes_what_was_created() {
    let n = format!("/{}/deeper", name("fail"));
    let r = res(r#"{"pids": {"limit": 5}, "cpu": {"cpus": "4096"}}"#);
    let e = Cgroup::create(Some(Path::new(&n)), "x", Some(&r)).unwrap_err();
    assert!(e.to_string().starts_with("linux.resources.cpu.cpus: write \"4096\" to "), "{e}");
    let top = name("fail");
    for h in host_hierarchies().unwrap() {
        assert!(!h.mount.join(&top).exists(), "{} left behind", h.mount.display());
    }
}

#[test]
fn v2_conversions() {
    // runc main's conversion (opencontainers/cgroups ConvertCPUSharesToCgroupV2Value): the
    // default shares give the default weight; values from runc's formula computed in float64.
    for (shares, weight) in [
        (0, 0),
        (1, 1),
        (2, 1),
        (3, 2),
        (10, 4),
        (100, 17),
        (512, 59),
        (1024, 100),
        (2048, 174),
        (10000, 627),
        (100000, 4340),
        (262143, 10000),
        (262144, 10000),
        (300000, 10000),
    ] {
        assert_eq!(v2::cpu::shares_to_weight(shares), weight, "shares {shares}");
    }
    // Unlimited memory: a swap limit is the swap itself (runc).
    assert_eq!(v2::memory::swap_value(-1, 300).unwrap().as_deref(), Some("300"));
    assert_eq!(v2::memory::swap_value(-1, 0).unwrap().as_deref(), Some("max"));
    assert_eq!(v2::memory::swap_value(100, 300).unwrap().as_deref(), Some("200"));
    assert_eq!(v2::memory::swap_value(100, 100).unwrap().as_deref(), Some("0"));
    assert_eq!(v2::memory::swap_value(100, 0).unwrap(), None);
    assert!(v2::memory::swap_value(0, 100).unwrap_err().to_string().starts_with("linux.resources.memory.swap:"));
    assert!(v2::memory::swap_value(200, 100).unwrap_err().to_string().starts_with("linux.resources.memory.swap:"));
}

#[test]
fn cgroup_state_round_trips() {
    let cg = Cgroup {
        placements: vec![Placement {
            mount: "/sys/fs/cgroup/pids".into(),
            controllers: vec!["pids".into()],
            v2: false,
            dir: "/sys/fs/cgroup/pids/x".into(),
            created: vec!["/sys/fs/cgroup/pids/x".into()],
        }],
        mode: Some(Mode::Hybrid),
        resources: Some(SavedResources::new(&res(r#"{"pids": {"limit": 5}}"#)).unwrap()),
        systemd: None,
    };
    let back: Cgroup = serde_json::from_str(&serde_json::to_string(&cg).unwrap()).unwrap();
    assert_eq!(back.placements[0].dir, cg.placements[0].dir);
    assert_eq!(back.resources.unwrap().get().unwrap(), res(r#"{"pids": {"limit": 5}}"#));
    assert_eq!(back.mode, Some(Mode::Hybrid));
    assert_eq!(current_mode().unwrap(), Mode::of(&host_hierarchies().unwrap()));
}

#[test]
fn cpuset_parent_left_empty_by_another_is_filled() {
    // A parent that another create made but has not filled yet: empty cpus and mems.
    let n = name("cpusetparent");
    let parent = Path::new("/sys/fs/cgroup/cpuset").join(&n);
    if !Path::new("/sys/fs/cgroup/cpuset/cpuset.cpus").exists() {
        return;
    }
    std::fs::create_dir(&parent).unwrap();
    assert_eq!(read(&parent, "cpuset.cpus"), "");
    let cg = Cgroup::create(Some(Path::new(&format!("/{n}/c"))), "c", None).unwrap();
    let mine = placement(&cg, "cpuset").dir.clone();
    assert_ne!(read(&mine, "cpuset.cpus"), "");
    assert_ne!(read(&parent, "cpuset.mems"), "");
    let mut child = spawn_in(&[&mine], Command::new("true").stdout(Stdio::null()));
    assert!(child.wait().unwrap().success(), "a task can join the cgroup");
    cg.destroy().unwrap();
    std::fs::remove_dir(&parent).unwrap();
}

#[test]
fn the_plan_names_the_dirs_before_they_exist() {
    let n = format!("/{}/x", name("plan"));
    let mut planned = None;
    let cg = Cgroup::create_recorded(Some(Path::new(&n)), "x", None, |plan| {
        assert!(plan.placements.iter().all(|p| !p.dir.exists()), "recorded before any mkdir");
        planned = Some(plan.clone());
        Ok(())
    })
    .unwrap();
    let planned = planned.unwrap();
    for (p, q) in planned.placements.iter().zip(&cg.placements) {
        assert_eq!(p.created, q.created, "the plan lists exactly what was made");
        assert_eq!(p.created.len(), 2);
    }
    // A husk killed right after mkdir: the plan alone removes it all.
    planned.destroy().unwrap();
    assert_removed(&cg);
}

/// A cgroupsPath that cleans to a hierarchy's root (absolute) or to the caller's own cgroup
/// (relative) is refused before anything is made: the container would be the whole host.
/// `..` stops at the root as runc's CleanPath does, so nothing else climbs above it.
#[test]
fn cgroups_path_that_cleans_to_a_root_is_refused() {
    let hs = host_hierarchies().unwrap();
    for p in ["/", "//", "/../..", "/a/..", "/./"] {
        let e = Cgroup::placements_in(&hs, Some(Path::new(p)), "x").unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "linux.cgroupsPath: {p:?} is the root of the cgroup hierarchies, where every process of the host is"
            )
        );
        let e = Cgroup::create(Some(Path::new(p)), "x", None).unwrap_err().to_string();
        assert!(e.starts_with("linux.cgroupsPath: "), "{e}");
    }
    for p in [".", "..", "a/../..", "./"] {
        let e = Cgroup::placements_in(&hs, Some(Path::new(p)), "x").unwrap_err().to_string();
        assert!(e.ends_with("is the cgroup of the caller itself, not one of the container's own"), "{p}: {e}");
    }
    let own = mountinfo::read_proc_cgroup().unwrap();
    let cg = Cgroup::placements_in(&hs, Some(Path::new("/../../husk-x/../husk-y")), "x").unwrap();
    assert!(cg.placements.iter().all(|p| p.dir == p.mount.join("husk-y")), "{:?}", cg.placements);
    let cg = Cgroup::placements_in(&hs, Some(Path::new("../../husk-y")), "x").unwrap();
    for p in &cg.placements {
        let h = hs.iter().find(|h| h.mount == p.mount).unwrap();
        let mut base = mountinfo::own_relative(h, &own).unwrap();
        if cg.mode == Some(Mode::V2) {
            base.pop();
        }
        assert_eq!(p.dir, h.mount.join(base).join("husk-y"));
    }
}

/// runc's checks at create: a cgroup that existed before must hold no process and none may be
/// frozen (nor a new one below a frozen parent): refused at once, nothing made left behind.
#[test]
fn existing_cgroup_with_processes_or_frozen_is_refused() {
    let n = format!("/{}", name("unfit"));
    let first = Cgroup::create(Some(Path::new(&n)), "a", None).unwrap();
    let mut child = Command::new("sleep").arg("1000").stdin(Stdio::null()).spawn().unwrap();
    first.add_process(child.id() as i32, false).unwrap();
    let e = Cgroup::create(Some(Path::new(&n)), "b", None).unwrap_err().to_string();
    assert!(e.starts_with("linux.cgroupsPath: container's cgroup is not empty: 1 process(es) found in "), "{e}");
    assert_eq!(first.pids().unwrap(), [child.id() as i32], "the existing cgroup and its process are untouched");
    child.kill().unwrap();
    child.wait().unwrap();

    first.freeze().unwrap();
    let start = std::time::Instant::now();
    let e = Cgroup::create(Some(Path::new(&n)), "b", None).unwrap_err().to_string();
    assert!(e.starts_with("linux.cgroupsPath: container's cgroup unexpectedly frozen: "), "{e}");
    let below = format!("{n}/below");
    let e = Cgroup::create(Some(Path::new(&below)), "c", None).unwrap_err().to_string();
    assert!(e.contains("unexpectedly frozen"), "a new cgroup below a frozen one: {e}");
    assert!(start.elapsed() < std::time::Duration::from_secs(2));
    for p in &first.placements {
        assert!(!p.dir.join("below").exists(), "{} left behind", p.dir.join("below").display());
    }
    first.thaw().unwrap();
    // Empty and thawed: joined, as runc joins it.
    let second = Cgroup::create(Some(Path::new(&n)), "b", None).unwrap();
    assert!(!second.owned() && first.owned());
    second.destroy().unwrap();
    first.destroy().unwrap();
    assert_removed(&first);
}

/// `update` transitions the kernel refuses in one order but not the other, as runc orders
/// them: an idle group takes no shares, a realtime period shorter than the runtime in force
/// waits for the runtime, unlimited memory takes memory+swap with it.
#[test]
fn v1_update_transitions() {
    let n = format!("/{}", name("trans"));
    let r = res(r#"{"cpu": {"shares": 512}, "memory": {"limit": 67108864, "swap": 134217728}}"#);
    let mut cg = Cgroup::create(Some(Path::new(&n)), "trans", Some(&r)).unwrap();
    let cpu = placement(&cg, "cpu").dir.clone();
    let mem = placement(&cg, "memory").dir.clone();
    cg.update(&res(r#"{"cpu": {"idle": 1}}"#)).unwrap();
    assert_eq!(read(&cpu, "cpu.idle"), "1");
    // Every later update writes the shares again: not into an idle group.
    cg.update(&res(r#"{"pids": {"limit": 30}}"#)).unwrap();
    cg.update(&res(r#"{"cpu": {"idle": 0}}"#)).unwrap();
    assert_eq!((read(&cpu, "cpu.idle").as_str(), read(&cpu, "cpu.shares").as_str()), ("0", "512"));
    if cpu.join("cpu.rt_runtime_us").exists() {
        cg.update(&res(r#"{"cpu": {"realtimePeriod": 100000, "realtimeRuntime": 50000}}"#)).unwrap();
        cg.update(&res(r#"{"cpu": {"realtimePeriod": 10000, "realtimeRuntime": 5000}}"#)).unwrap();
        assert_eq!(
            (read(&cpu, "cpu.rt_period_us").as_str(), read(&cpu, "cpu.rt_runtime_us").as_str()),
            ("10000", "5000")
        );
        cg.update(&res(r#"{"cpu": {"realtimePeriod": 100000, "realtimeRuntime": 0}}"#)).unwrap();
    }
    let unlimited = read(&placement(&cg, "memory").mount, "memory.limit_in_bytes");
    cg.update(&res(r#"{"memory": {"limit": -1}}"#)).unwrap();
    assert_eq!(read(&mem, "memory.limit_in_bytes"), unlimited);
    if mem.join("memory.memsw.limit_in_bytes").exists() {
        assert_eq!(read(&mem, "memory.memsw.limit_in_bytes"), unlimited);
    }
    cg.update(&res(r#"{"memory": {"limit": 33554432, "swap": 67108864}}"#)).unwrap();
    assert_eq!(read(&mem, "memory.limit_in_bytes"), "33554432");
    // Device rules in an update are neither applied nor recorded (runc skips them).
    cg.update(&res(r#"{"devices": [{"allow": true, "access": "rwa"}]}"#)).unwrap();
    assert_eq!(cg.resources.as_ref().unwrap().get().unwrap().devices(), r.devices());
    cg.destroy().unwrap();
    assert_removed(&cg);
}
