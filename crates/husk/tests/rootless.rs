//! Rootless husk: the runtime run by an unprivileged user (a dedicated test user with
//! /etc/subuid and /etc/subgid ranges, see common/rootless.rs). The id maps as the container
//! sees them, files owned by the right host ids, the lifecycle, what works without a cgroup on
//! this host (cgroup v1, no delegation) and the clear errors for what cannot.
mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::rootless::as_user;
use common::*;
use serde_json::json;

fn lines(text: &str) -> Vec<String> {
    text.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect()
}

#[test]
fn rootless_spec_maps_the_caller() {
    let ctx = Ctx::rootless("rlspec");
    let u = ctx.user.clone().unwrap();
    let linux = &ctx.config["linux"];
    assert_eq!(linux["uidMappings"], json!([{"containerID": 0, "hostID": u.uid, "size": 1}]));
    assert_eq!(linux["gidMappings"], json!([{"containerID": 0, "hostID": u.gid, "size": 1}]));
    let ns: Vec<&str> = linux["namespaces"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
    assert!(ns.contains(&"user") && !ns.contains(&"network"), "{ns:?}");
    assert!(linux.get("resources").is_none(), "no device rules: {linux}");
    let sys = ctx.config["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == "/sys").unwrap();
    assert_eq!(sys["options"], json!(["rbind", "nosuid", "noexec", "nodev", "ro"]));
}

#[test]
fn rootless_single_mapping_and_file_ownership() {
    let mut ctx = Ctx::rootless("rlsingle");
    let u = ctx.user.clone().unwrap();
    let vol = ctx.dir.join("vol");
    fs::create_dir(&vol).unwrap();
    rootless::chown_to(&vol, &u);
    ctx.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/vol", "type": "bind", "source": vol, "options": ["rbind", "rw"]
    }));
    let out = ctx.run_sh(
        "cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; id -u; id -g; touch /vol/made-inside; \
         readlink /proc/self/ns/user",
    );
    let l = lines(&out);
    assert_eq!(l[0], format!("0 {} 1", u.uid), "{out}");
    assert_eq!(l[1], format!("0 {} 1", u.gid), "{out}");
    // The kernel requires setgroups to be denied before an unprivileged gid map is written.
    assert_eq!(l[2], "deny", "{out}");
    assert_eq!(&l[3..5], ["0", "0"], "{out}");
    assert_ne!(l[5], host_ns("user"));
    let made = fs::metadata(vol.join("made-inside")).unwrap();
    assert_eq!((made.uid(), made.gid()), (u.uid, u.gid), "container root is the user on the host");
}

#[test]
fn rootless_multi_range_mapping_through_newuidmap() {
    // runc 1.1 differs: it refuses additionalGids in every rootless container; husk allows them
    // when newgidmap left setgroups allowed (a range from /etc/subgid).
    let mut ctx = Ctx::rootless("rlmulti");
    ctx.map_subids();
    let u = ctx.user.clone().unwrap();
    let vol = ctx.dir.join("vol");
    fs::create_dir(&vol).unwrap();
    rootless::chown_to(&vol, &u);
    fs::set_permissions(&vol, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    ctx.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/vol", "type": "bind", "source": vol, "options": ["rbind", "rw"]
    }));
    ctx.config["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 7]});
    let out = ctx.run_sh("cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; id; touch /vol/by-1000");
    let l = lines(&out);
    assert_eq!(&l[0..2], [format!("0 {} 1", u.uid), format!("1 {} {}", u.subuid.0, u.subuid.1)], "{out}");
    assert_eq!(&l[2..4], [format!("0 {} 1", u.gid), format!("1 {} {}", u.subgid.0, u.subgid.1)], "{out}");
    // newgidmap with a range from /etc/subgid leaves setgroups allowed: additionalGids work.
    assert_eq!(l[4], "allow", "{out}");
    assert_eq!(l[5], "uid=1000 gid=1000 groups=5,7", "{out}");
    let made = fs::metadata(vol.join("by-1000")).unwrap();
    assert_eq!((made.uid(), made.gid()), (u.subuid.0 + 999, u.subgid.0 + 999), "container 1000 is subuid+999");
}

#[test]
fn rootless_unmapped_range_is_refused_and_nothing_left() {
    let mut ctx = Ctx::rootless("rlbadmap");
    ctx.map_subids();
    let u = ctx.user.clone().unwrap();
    // A range the user was not given in /etc/subuid: newuidmap refuses it.
    let beyond = u.subuid.0 + u.subuid.1;
    ctx.config["linux"]["uidMappings"][1] = json!({"containerID": 1, "hostID": beyond, "size": 10});
    let id = ctx.id();
    let before = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let o = ctx.run(&id).fails();
    if is_husk() {
        assert!(o.stderr.contains("linux.uidMappings") && o.stderr.contains("newuidmap"), "{o}");
        assert_eq!(o.stderr_lines().len(), 1, "{o}");
    }
    ctx.assert_nothing_left(&id, &before);
}

#[test]
fn rootless_additional_gids_need_a_gid_range() {
    // One gid mapped by the user alone: the kernel denies setgroups, so additionalGids cannot work.
    let mut ctx = Ctx::rootless("rlgroups");
    ctx.config["process"]["user"]["additionalGids"] = json!([0]);
    let id = ctx.id();
    let o = ctx.run(&id).fails();
    if is_husk() {
        assert!(o.stderr.contains("process.user.additionalGids") && o.stderr.contains("setgroups"), "{o}");
    }
}

#[test]
fn rootless_lifecycle_with_the_default_state_dir() {
    let mut ctx = Ctx::rootless("rllife");
    ctx.sh("while :; do sleep 0.1; done");
    let id = ctx.id();
    ctx.write_config(&id);
    // No --root: state under $XDG_RUNTIME_DIR/husk (runc: $XDG_RUNTIME_DIR/runc).
    let u = ctx.user.clone().unwrap();
    let call = |args: &[&str]| {
        let mut c = Command::new(bin());
        c.args(args).current_dir(&ctx.dir).stdin(std::process::Stdio::null());
        as_user(&mut c, &u, &ctx.dir);
        ctx.exec(c)
    };
    let b = ctx.bundle.to_str().unwrap();
    call(&["create", "--bundle", b, &id]).ok();
    let state_root = ctx.dir.join("xdg").join(if is_husk() { "husk" } else { "runc" });
    assert!(state_root.join(&id).is_dir(), "state under {}", state_root.display());
    let st: serde_json::Value = serde_json::from_str(&call(&["state", &id]).ok().stdout).unwrap();
    assert_eq!(st["status"], "created", "{st}");
    let pid = st["pid"].as_u64().unwrap() as u32;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status_field(&status, "Uid").unwrap().split_whitespace().all(|x| x == u.uid.to_string()), "{status}");
    call(&["start", &id]).ok();
    let list = call(&["list"]).ok().stdout;
    let row = list.lines().find(|l| l.starts_with(&id)).unwrap_or_else(|| panic!("{list}"));
    assert!(row.contains("running") && row.ends_with(&u.name), "{row}");
    call(&["kill", &id, "KILL"]).ok();
    assert!(wait_for(10, || serde_json::from_str::<serde_json::Value>(&call(&["state", &id]).stdout)
        .is_ok_and(|s| s["status"] == "stopped")));
    call(&["delete", &id]).ok();
    assert!(!state_root.join(&id).exists());
    assert!(!alive(pid));
}

#[test]
fn rootless_kill_all_and_delete_force_without_a_cgroup() {
    // runc 1.1 differs: its `kill --all` fails rootless without a cgroup ("lstat : no such file").
    let mut ctx = Ctx::rootless("rlkill");
    ctx.sh("sleep 100 & sleep 100 & exec sleep 100");
    let id = ctx.id();
    ctx.run_with(&id, &["-d"]).ok();
    let pid = ctx.state(&id)["pid"].as_u64().unwrap() as u32;
    let children = |p: u32| -> Vec<u32> {
        fs::read_to_string(format!("/proc/{p}/task/{p}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .map(|c| c.parse().unwrap())
            .collect()
    };
    assert!(wait_for(5, || children(pid).len() == 2));
    let kids = children(pid);
    // No cgroup lists the processes: husk finds them by the container's pid namespace. (The
    // init, pid 1 there without a handler, is immune to TERM; the other two are not.)
    ctx.husk(&["kill", "--all", &id, "TERM"]).ok();
    assert!(wait_for(10, || kids.iter().all(|k| !alive(*k))), "kill --all reached every process");
    assert!(alive(pid));
    ctx.husk(&["kill", "--all", &id, "KILL"]).ok();
    ctx.wait_status(&id, "stopped");
    ctx.husk(&["delete", &id]).ok();

    let id = ctx.id();
    ctx.run_with(&id, &["-d"]).ok();
    let pid = ctx.state(&id)["pid"].as_u64().unwrap() as u32;
    ctx.husk(&["delete", "--force", &id]).ok();
    assert!(!alive(pid));
    assert!(!ctx.root.join(&id).exists());
}

#[test]
fn rootless_without_cgroups_says_so_and_cgroup_commands_fail_clearly() {
    // This host has cgroup v1 without delegation: the user can create no cgroup.
    let mut ctx = Ctx::rootless("rlnocg");
    ctx.sh("exec sleep 100");
    let id = ctx.id();
    ctx.write_config(&id);
    let o = ctx.husk(&["--debug", "run", "-d", "--bundle", ctx.bundle.to_str().unwrap(), &id]).ok();
    if is_husk() {
        assert!(o.stderr.contains("no cgroup") && o.stderr.contains("continuing without"), "{o}");
    }
    let cgroup_commands = [
        vec!["pause", &id],
        vec!["resume", &id],
        vec!["update", "--memory", "64M", &id],
        vec!["ps", &id],
        vec!["events", "--stats", &id],
    ];
    for args in cgroup_commands {
        let o = ctx.husk(&args);
        if args[0] == "events" && !is_husk() {
            // runc 1.1 differs: `events --stats` without a cgroup prints all-zero stats.
            continue;
        }
        let o = o.fails();
        if is_husk() {
            assert!(o.stderr.contains("has no cgroup") && o.stderr.contains("rootless"), "{args:?}: {o}");
            assert!(o.stderr.contains(&format!("{}: ", args[0])), "names the command: {o}");
            assert_eq!(o.stderr_lines().len(), 1, "{o}");
        }
    }
    // CRIU needs root: said before CRIU is asked.
    let o = ctx.husk(&["checkpoint", "--image-path", ctx.dir.join("img").to_str().unwrap(), &id]).fails();
    if is_husk() {
        assert!(o.stderr.contains("checkpoint: rootless husk cannot checkpoint a container: CRIU needs root"), "{o}");
    }
    assert_eq!(ctx.status(&id), "running");
    ctx.husk(&["delete", "--force", &id]).ok();
}

#[test]
fn rootless_explicit_cgroups_path_goes_on_without() {
    // runc 1.1 differs: it refuses an explicit cgroupsPath it cannot create rootless; husk goes
    // on without a cgroup whatever the path, as the issue asks.
    let mut ctx = Ctx::rootless("rlcgpath");
    ctx.config["linux"]["cgroupsPath"] = json!("/husk-tests/rootless-explicit");
    ctx.sh("echo hi");
    let id = ctx.id();
    assert_eq!(ctx.run(&id).ok().stdout, "hi\n");
    assert!(!Path::new("/sys/fs/cgroup/memory/husk-tests/rootless-explicit").exists());
}

#[test]
fn rootless_limits_without_a_cgroup_are_refused_by_field() {
    let mut ctx = Ctx::rootless("rllimit");
    ctx.config["linux"]["resources"] = json!({"memory": {"limit": 67108864}});
    let id = ctx.id();
    let before = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let o = ctx.run(&id).fails();
    if is_husk() {
        assert!(o.stderr.contains("linux.resources.memory") && o.stderr.contains("rootless"), "{o}");
    }
    ctx.assert_nothing_left(&id, &before);
}

#[test]
fn rootless_devices_are_bound_from_the_host() {
    let mut ctx = Ctx::rootless("rldev");
    ctx.config["linux"]["devices"] = json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}]);
    let out =
        ctx.run_sh("stat -c '%t:%T %F' /dev/null /dev/zero /dev/kmsg; grep ' /dev/kmsg ' /proc/self/mountinfo | wc -l");
    let l = lines(&out);
    assert_eq!(&l[0..3], ["1:3 character special file", "1:5 character special file", "1:b character special file"]);
    // No mknod in a user namespace: each is a bind mount of the host's node.
    assert_eq!(l[3], "1", "{out}");
}

#[test]
fn rootless_device_the_host_lacks_is_refused_by_field() {
    // The bind needs the host's node at the same path with the same numbers: a node the host does
    // not have, or one whose numbers differ, is an error naming the device, and nothing is left.
    // runc 1.1 differs: it binds whatever the host has at the path, without checking its numbers.
    let mut ctx = Ctx::rootless("rldevbad");
    for (i, dev) in [
        json!({"path": "/dev/husk-no-such-device", "type": "c", "major": 1, "minor": 3}),
        json!({"path": "/dev/zero", "type": "c", "major": 1, "minor": 3}),
    ]
    .into_iter()
    .enumerate()
    {
        ctx.config["linux"]["devices"] = json!([dev]);
        let id = ctx.id();
        let before = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let o = ctx.run(&id);
        if i == 1 && !is_husk() {
            continue;
        }
        let o = o.fails();
        if is_husk() {
            assert!(o.stderr.contains(&format!("linux.devices[0].path: {}", dev["path"].as_str().unwrap())), "{o}");
            let why = ["no such device on the host", "the host's node is 1:5, which is not device 1:3"][i];
            assert!(o.stderr.contains(why), "{o}");
            assert_eq!(o.stderr_lines().len(), 1, "{o}");
        }
        ctx.assert_nothing_left(&id, &before);
    }
}

#[test]
fn rootless_sysfs_mount_is_replaced_by_the_hosts() {
    // The rootful spec's `sysfs` mount: without its own network namespace a user namespace cannot
    // mount sysfs; the host's /sys is bound instead, read-only as asked.
    // runc 1.1 differs: it fails with EPERM (runc#3672); crun binds the host's /sys too.
    let mut ctx = Ctx::rootless("rlsysfs");
    let sys = ctx.config["mounts"].as_array_mut().unwrap().iter_mut().find(|m| m["destination"] == "/sys").unwrap();
    *sys = json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]});
    let out = ctx.run_sh("ls /sys/kernel >/dev/null && echo listed; touch /sys/kernel/x 2>/dev/null || echo ro");
    assert_eq!(out, "listed\nro\n");
}

#[test]
fn rootless_mount_that_needs_root_is_refused_clearly() {
    let mut ctx = Ctx::rootless("rlext4");
    let img = ctx.dir.join("fs.img");
    let st = status(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img).arg("4M"));
    assert!(st.success());
    ctx.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "ext4", "source": img
    }));
    let id = ctx.id();
    let before = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let o = ctx.run(&id).fails();
    if is_husk() {
        let n = ctx.config["mounts"].as_array().unwrap().len() - 1;
        assert!(o.stderr.contains(&format!("mounts[{n}]")) && o.stderr.contains("user namespace"), "{o}");
        assert_eq!(o.stderr_lines().len(), 1, "{o}");
    }
    ctx.assert_nothing_left(&id, &before);
}

#[test]
fn rootless_exec_joins_the_container() {
    let mut ctx = Ctx::rootless("rlexec");
    ctx.map_subids();
    ctx.sh("exec sleep 100");
    let id = ctx.id();
    ctx.run_with(&id, &["-d"]).ok();
    let u = ctx.user.clone().unwrap();
    let init = ctx.state(&id)["pid"].as_u64().unwrap() as u32;
    let ns = |pid: u32, n: &str| fs::read_link(format!("/proc/{pid}/ns/{n}")).unwrap().to_string_lossy().into_owned();
    let out = ctx
        .husk(&[
            "exec",
            "--env",
            "FROM_EXEC=yes",
            "--cwd",
            "/tmp",
            &id,
            "sh",
            "-c",
            "id -u; pwd; echo $FROM_EXEC; for n in user pid mnt; do readlink /proc/self/ns/$n; done",
        ])
        .ok()
        .stdout;
    let l = lines(&out);
    assert_eq!(&l[..3], ["0", "/tmp", "yes"], "{out}");
    assert_eq!(&l[3..6], [ns(init, "user"), ns(init, "pid"), ns(init, "mnt")], "{out}");

    // Another user of the multi-range map, a detached process, its pid file and host owner.
    let pf = ctx.dir.join("exec.pid");
    ctx.husk(&["exec", "-d", "--user", "1000:1000", "--pid-file", pf.to_str().unwrap(), &id, "sleep", "100"]).ok();
    let pid = read_pid_file(&pf);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let host_uid = u.subuid.0 + 999;
    assert!(status_field(&status, "Uid").unwrap().split_whitespace().all(|x| x == host_uid.to_string()), "{status}");
    assert_eq!(ns(pid, "pid"), ns(init, "pid"));

    // The exit status is the process's; a program that is not there is named.
    let o = ctx.husk(&["exec", &id, "sh", "-c", "exit 7"]);
    assert_eq!(o.code, Some(7), "{o}");
    let o = ctx.husk(&["exec", &id, "/no/such/program"]);
    assert!(!o.success() && o.stderr.contains("/no/such/program"), "{o}");
    ctx.husk(&["delete", "--force", &id]).ok();
    assert!(!alive(pid) && !alive(init));
}

#[test]
fn rootless_exec_does_not_reach_the_runtime_binary() {
    // CVE-2019-5736 where it matters most rootless: the runtime binary belongs to the user, whom
    // the container's root is on the host. The program exec'd is `#!/proc/self/exe`, so the
    // kernel runs whatever /proc/self/exe of the exec'ing process is, inside the container; a
    // process there holds every exe it can open and reopens it for writing once nothing runs it.
    // Only the container's own files or a sealed in-memory copy may be reachable.
    let mut ctx = Ctx::rootless("rlexe");
    let u = ctx.user.clone().unwrap();
    let own = ctx.dir.join("home").join("runtime-copy");
    fs::copy(fs::canonicalize(bin()).unwrap(), &own).unwrap();
    copy_shared_libraries(&own, &ctx.rootfs());
    rootless::chown_to(&own, &u);
    fs::write(ctx.rootfs().join("evil"), "#!/proc/self/exe\n").unwrap();
    fs::set_permissions(ctx.rootfs().join("evil"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let before = fs::read(&own).unwrap();
    ctx.sh(REOPEN_EXE_ATTACK);
    let id = ctx.id();
    ctx.write_config(&id);
    let runtime = |args: &[&str]| {
        let mut c = Command::new(&own);
        c.arg("--root").arg(&ctx.root).args(args).current_dir(&ctx.dir).stdin(std::process::Stdio::null());
        as_user(&mut c, &u, &ctx.dir);
        ctx.exec(c)
    };
    runtime(&["run", "-d", "--bundle", ctx.bundle.to_str().unwrap(), &id]).ok();
    for _ in 0..20 {
        let o = runtime(&["exec", &id, "/evil"]).no_panic();
        assert_ne!(o.code, Some(0), "the runtime binary ran as the container's program: {o}");
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let opened = runtime(&["exec", &id, "sh", "-c", "cat /dev/shm/opened 2>/dev/null; true"]).ok();
    let st: serde_json::Value = serde_json::from_str(&runtime(&["state", &id]).ok().stdout).unwrap();
    assert_eq!(st["status"], "running", "the attacking loop died");
    runtime(&["delete", "--force", &id]).ok();
    assert!(fs::read(&own).unwrap() == before, "the user's runtime binary {} changed", own.display());
    for l in opened.stdout.lines() {
        assert!(l.starts_with("/memfd:"), "the container reopened {l:?} for writing");
    }
}

#[test]
fn rootless_container_joins_another_containers_user_and_pid_namespaces() {
    // An unprivileged husk may enter a pid namespace only from inside the user namespace that
    // owns it: husk joins that user namespace first (runc's nsexec does the same in its child).
    let mut ctx = Ctx::rootless("rljoin");
    ctx.sh("exec sleep 100");
    let first = ctx.id();
    ctx.run_with(&first, &["-d"]).ok();
    let init = ctx.state(&first)["pid"].as_u64().unwrap() as u32;
    let linux = ctx.config["linux"].as_object_mut().unwrap();
    linux.remove("uidMappings");
    linux.remove("gidMappings");
    for ns in linux["namespaces"].as_array_mut().unwrap() {
        let t = ns["type"].as_str().unwrap().to_string();
        if t == "user" || t == "pid" {
            ns["path"] = json!(format!("/proc/{init}/ns/{t}"));
        }
    }
    ctx.sh("exec sleep 100");
    let second = ctx.id();
    ctx.run_with(&second, &["-d"]).ok();
    let pid = ctx.state(&second)["pid"].as_u64().unwrap() as u32;
    let ns = |p: u32, n: &str| fs::read_link(format!("/proc/{p}/ns/{n}")).unwrap();
    assert_eq!(ns(pid, "user"), ns(init, "user"));
    assert_eq!(ns(pid, "pid"), ns(init, "pid"));
    assert_ne!(ns(pid, "mnt"), ns(init, "mnt"));
    // Its pid 1 is the first container's init; an exec into it joins the same namespaces.
    let out = ctx.husk(&["exec", &second, "sh", "-c", "tr '\\0' ' ' </proc/1/cmdline; echo; id -u"]).ok().stdout;
    assert_eq!(lines(&out), ["sleep 100", "0"], "{out}");
    ctx.husk(&["delete", "--force", &second]).ok();
    assert!(!alive(pid));
    ctx.husk(&["delete", "--force", &first]).ok();
    assert!(!alive(init));
}
