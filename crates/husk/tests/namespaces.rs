//! Namespaces: what the container sees, compared with the host.
mod common;

use common::*;
use serde_json::json;
use std::os::unix::fs::MetadataExt;

#[test]
fn hostname_from_config() {
    let mut ctx = Ctx::new("hostname");
    ctx.config["hostname"] = json!("husk-box");
    let out = ctx.run_sh("hostname; cat /proc/sys/kernel/hostname");
    assert_eq!(out, "husk-box\nhusk-box\n");
    // The host's hostname is untouched.
    assert_ne!(std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim(), "husk-box");
}

#[test]
fn domainname_from_config() {
    // runc 1.1 differs: it ignores `domainname` (supported from runc 1.2).
    let mut ctx = Ctx::new("domainname");
    ctx.config["domainname"] = json!("husk.test");
    let out = ctx.run_sh("cat /proc/sys/kernel/domainname");
    assert_eq!(out.trim(), "husk.test");
}

#[test]
fn pid1_is_the_container_process() {
    let mut ctx = Ctx::new("pid1");
    let out = ctx.run_sh("echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo; ps -o pid,args | wc -l");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "{out}");
    assert!(lines[1].starts_with("sh -c"), "PID 1 is the container's process: {out}");
    // ps header + sh + ps + wc at most: nothing of the host is visible.
    let n: usize = lines[2].trim().parse().unwrap();
    assert!(n <= 5, "container sees {n} ps lines: {out}");
}

#[test]
fn new_netns_has_only_lo() {
    let mut ctx = Ctx::new("netns");
    let out = ctx.run_sh("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '");
    assert_eq!(out.trim(), "lo", "{out}");
}

#[test]
fn namespaces_differ_from_host() {
    let mut ctx = Ctx::new("nsdiff");
    ctx.config["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
    ]);
    let kinds = ["ipc", "uts", "mnt", "cgroup", "net", "pid"];
    let script: String = kinds.iter().map(|k| format!("readlink /proc/self/ns/{k}; ")).collect();
    let out = ctx.run_sh(&script);
    let inside: Vec<&str> = out.lines().collect();
    assert_eq!(inside.len(), kinds.len(), "{out}");
    for (k, v) in kinds.iter().zip(inside) {
        assert!(v.starts_with(&format!("{k}:[")), "{k}: {v}");
        assert_ne!(v, host_ns(k), "{k} namespace is the host's");
    }
}

#[test]
fn omitted_namespace_is_shared_with_host() {
    let mut ctx = Ctx::new("nsshared");
    // No network and no uts namespace: the container shares the host's.
    ctx.config["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "ipc"}, {"type": "mount"}]);
    ctx.config.as_object_mut().unwrap().remove("hostname");
    let out = ctx.run_sh("readlink /proc/self/ns/net; readlink /proc/self/ns/uts; readlink /proc/self/ns/ipc");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], host_ns("net"));
    assert_eq!(l[1], host_ns("uts"));
    assert_ne!(l[2], host_ns("ipc"));
}

#[test]
fn join_netns_by_path() {
    let mut ctx = Ctx::new("netnspath");
    let name = ctx.netns();
    let path = format!("/run/netns/{name}");
    let ino = std::fs::metadata(&path).unwrap().ino();
    ctx.config["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "network", "path": path}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}
    ]);
    let out = ctx.run_sh("readlink /proc/self/ns/net");
    assert_eq!(out.trim(), format!("net:[{ino}]"));
}

#[test]
fn join_namespace_of_another_container() {
    let mut ctx = Ctx::new("nsjoin");
    ctx.sh("exec sleep 100");
    let a = ctx.id();
    ctx.run_with(&a, &["-d"]).ok();
    let pid = ctx.state(&a)["pid"].as_u64().unwrap();
    let ipc = std::fs::read_link(format!("/proc/{pid}/ns/ipc")).unwrap();
    let pidns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    ctx.config["linux"]["namespaces"] = json!([
        {"type": "pid", "path": format!("/proc/{pid}/ns/pid")},
        {"type": "network"},
        {"type": "ipc", "path": format!("/proc/{pid}/ns/ipc")},
        {"type": "uts"}, {"type": "mount"}
    ]);
    // In A's pid namespace, A's init is PID 1 and it is `sleep`.
    let out = ctx.run_sh("readlink /proc/self/ns/ipc; readlink /proc/self/ns/pid; cat /proc/1/comm");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], ipc.to_str().unwrap());
    assert_eq!(l[1], pidns.to_str().unwrap());
    assert_eq!(l[2], "sleep");
}

fn userns_config(ctx: &mut Ctx) {
    chown_rootfs(ctx, 100000, 100000);
    let ns = ctx.config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.push(json!({"type": "user"}));
    ctx.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    ctx.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    // The cgroup filesystem cannot be mounted from a user namespace that does not own the cgroup ns.
    let mounts = ctx.config["mounts"].as_array_mut().unwrap();
    mounts.retain(|m| m["type"] != "cgroup");
}

#[test]
fn user_namespace_mapping() {
    let mut ctx = Ctx::new("userns");
    userns_config(&mut ctx);
    let out = ctx.run_sh("cat /proc/self/uid_map; cat /proc/self/gid_map; id -u; id -g; readlink /proc/self/ns/user");
    let l: Vec<String> = out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(l[0], "0 100000 65536", "{out}");
    assert_eq!(l[1], "0 100000 65536", "{out}");
    assert_eq!(l[2], "0");
    assert_eq!(l[3], "0");
    assert_ne!(l[4], host_ns("user"));
}

#[test]
fn user_namespace_seen_from_outside() {
    let mut ctx = Ctx::new("usernsout");
    userns_config(&mut ctx);
    ctx.config["root"]["readonly"] = json!(false);
    ctx.sh("touch /tmp/made-inside; exec sleep 100");
    let id = ctx.id();
    ctx.run_with(&id, &["-d"]).ok();
    let pid = ctx.state(&id)["pid"].as_u64().unwrap();
    let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    assert_eq!(map.split_whitespace().collect::<Vec<_>>(), ["0", "100000", "65536"]);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids = status_field(&status, "Uid").unwrap();
    assert!(uids.split_whitespace().all(|u| u == "100000"), "host sees uid 100000: {uids}");
    let f = ctx.rootfs().join("tmp/made-inside");
    assert!(wait_for(5, || f.exists()));
    assert_eq!(std::fs::metadata(&f).unwrap().uid(), 100000, "a file made by container root is owned by 100000");
}

#[test]
fn time_namespace_offsets() {
    // runc 1.1 differs: it does not support the time namespace (added in runc 1.2).
    let mut ctx = Ctx::new("timens");
    ctx.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "time"}));
    ctx.config["linux"]["timeOffsets"] = json!({
        "monotonic": {"secs": 86400, "nanosecs": 0},
        "boottime": {"secs": 172800, "nanosecs": 0}
    });
    let host_uptime: f64 =
        std::fs::read_to_string("/proc/uptime").unwrap().split_whitespace().next().unwrap().parse().unwrap();
    let out = ctx.run_sh("cat /proc/self/timens_offsets; cut -d' ' -f1 /proc/uptime; readlink /proc/self/ns/time");
    let l: Vec<String> = out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert!(l.contains(&"monotonic 86400 0".to_string()), "{out}");
    assert!(l.contains(&"boottime 172800 0".to_string()), "{out}");
    let up: f64 = l[2].parse().unwrap();
    assert!(up > host_uptime + 172000.0, "uptime inside {up} vs host {host_uptime}");
    assert_ne!(l[3], host_ns("time"));
}

#[test]
fn time_namespace_joined_before_start_has_its_offsets() {
    // runc 1.1 differs: no time namespaces.
    if !is_husk() {
        return;
    }
    // A pod's sandbox is created first and the others join its namespaces: joining the time
    // namespace of a container that is created but not started must give its clocks, not the
    // host's (husk's init stayed in the host's until its execve).
    let mut ctx = Ctx::new("timensjoin");
    ctx.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "time"}));
    ctx.config["linux"]["timeOffsets"] = json!({"boottime": {"secs": 1_000_000, "nanosecs": 0}});
    ctx.sh("exec sleep 100");
    let sandbox = ctx.id();
    ctx.create(&sandbox).ok();
    let pid = ctx.state(&sandbox)["pid"].as_u64().unwrap();
    assert_ne!(std::fs::read_link(format!("/proc/{pid}/ns/time")).unwrap().to_str().unwrap(), host_ns("time"));
    let namespaces = ctx.config["linux"]["namespaces"].as_array_mut().unwrap();
    namespaces.retain(|n| n["type"] != "time");
    namespaces.push(json!({"type": "time", "path": format!("/proc/{pid}/ns/time")}));
    ctx.config["linux"].as_object_mut().unwrap().remove("timeOffsets");
    let host_uptime: f64 =
        std::fs::read_to_string("/proc/uptime").unwrap().split_whitespace().next().unwrap().parse().unwrap();
    let out = ctx.run_sh("cut -d' ' -f1 /proc/uptime");
    let up: f64 = out.trim().parse().unwrap();
    assert!(up > host_uptime + 999_000.0, "uptime in the joined namespace {up} vs host {host_uptime}");
    // Offsets for a joined namespace cannot be written (the first process fixed them): refused
    // in runc's words.
    ctx.config["linux"]["timeOffsets"] = json!({"boottime": {"secs": 5, "nanosecs": 0}});
    let id = ctx.id();
    ctx.run(&id)
        .fails_with("linux.timeOffsets: time namespace enabled, but both namespace path and time offsets specified");
}

/// A veth pair on the host (this kernel has no dummy driver): the test moves `name`, its peer
/// `<name>p` stays. Deleted on drop if still there; once moved, the pair dies with the container's
/// network namespace.
struct HostLink(String);

impl HostLink {
    #[track_caller]
    fn veth(name: &str, cidr: &str) -> HostLink {
        output(std::process::Command::new("ip").args(["link", "del", name]));
        let ok = |args: &[&str]| status(std::process::Command::new("ip").args(args)).success();
        let peer = format!("{name}p");
        assert!(ok(&["link", "add", name, "type", "veth", "peer", "name", &peer]), "ip link add {name} type veth");
        let link = HostLink(name.to_string());
        assert!(ok(&["addr", "add", cidr, "dev", name]), "ip addr add {cidr} dev {name}");
        link
    }

    fn on_host(&self) -> bool {
        output(std::process::Command::new("ip").args(["link", "show", &self.0])).status.success()
    }
}

impl Drop for HostLink {
    fn drop(&mut self) {
        output(std::process::Command::new("ip").args(["link", "del", &self.0]));
    }
}

#[test]
fn net_devices_moved_into_container() {
    let mut ctx = Ctx::new("netdev");
    let pid = std::process::id();
    let x = pid % 200 + 1;
    let a = HostLink::veth(&format!("hk{pid}"), &format!("10.200.{x}.1/24"));
    let b = HostLink::veth(&format!("hj{pid}"), &format!("10.201.{x}.1/24"));
    let v6 = format!("2001:db8:{x}::1/64");
    let st = status(std::process::Command::new("ip").args(["-6", "addr", "add", &v6, "dev", &a.0]));
    assert!(st.success(), "ip -6 addr add {v6}");
    ctx.config["linux"]["netDevices"] = json!({ &a.0: {"name": "eth7"}, &b.0: {"name": "net%d"} });
    ctx.sh("ip addr show eth7; ip addr show net0; ls /sys/class/net");
    let id = ctx.id();
    let created = ctx.create(&id).ok();
    assert!(!a.on_host() && !b.on_host(), "the devices left the host network namespace");
    ctx.husk(&["start", &id]).ok();
    ctx.wait_status(&id, "stopped");
    let out = created.stdout_now();
    let eth7 = out.split("net0:").next().unwrap_or_default();
    assert!(eth7.contains(": eth7") && eth7.contains(",UP"), "eth7 is there and up: {out}");
    assert!(eth7.contains(&format!("inet 10.200.{x}.1/24")), "eth7 keeps its address: {out}");
    assert!(eth7.contains(&format!("inet6 {v6} scope global")), "eth7 keeps its IPv6 address: {out}");
    assert!(out.contains(&format!("inet 10.201.{x}.1/24")), "net%d became net0 with its address: {out}");
    assert!(!out.contains(&a.0) && !out.contains(&b.0), "host names are gone: {out}");
    let ls: Vec<&str> = out.lines().rev().take(3).collect();
    assert_eq!(ls, ["net0", "lo", "eth7"], "{out}");
}

#[test]
fn net_devices_errors_leave_nothing_behind() {
    let mut ctx = Ctx::new("netdeverr");
    let missing = format!("hm{}", std::process::id());
    ctx.config["linux"]["netDevices"] = json!({ &missing: {"name": "eth7"} });
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let id = ctx.id();
    let out = ctx.create(&id).fails();
    if is_husk() {
        assert!(out.stderr.contains(&format!("linux.netDevices.{missing}: ")), "{out}");
    }
    ctx.assert_nothing_left(&id, &mounts);

    // A device can only be moved into a network namespace of the container's own.
    let link = HostLink::veth(&format!("hn{}", std::process::id()), "10.202.0.1/24");
    ctx.config["linux"]["netDevices"] = json!({ &link.0: {} });
    ctx.config["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "network");
    let id = ctx.id();
    let out = ctx.create(&id).fails();
    if is_husk() {
        assert!(out.stderr.contains("linux.netDevices: needs a new network namespace"), "{out}");
    }
    ctx.assert_nothing_left(&id, &mounts);
    assert!(link.on_host(), "the device stays on the host");

    // A name taken in the container is an error (the spec's "MUST generate an error").
    ctx.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "network"}));
    ctx.config["linux"]["netDevices"] = json!({ &link.0: {"name": "lo"} });
    let id = ctx.id();
    let out = ctx.create(&id).fails();
    if is_husk() {
        assert!(out.stderr.contains(&format!("linux.netDevices.{}: ", link.0)), "{out}");
        assert!(out.stderr.contains("file exists"), "{out}");
    }
    ctx.assert_nothing_left(&id, &mounts);
    assert!(link.on_host(), "found before the move: the device stays on the host");
}

/// The Kubernetes user-namespace shape: join a pod's user namespace by path and create the
/// container's own pid, mount, uts, ipc and network namespaces inside it.
#[test]
fn join_user_namespace_and_create_others_in_it() {
    let mut ctx = Ctx::new("usernsjoin");
    userns_config(&mut ctx);
    ctx.sh("exec sleep 100");
    let a = ctx.id();
    ctx.run_with(&a, &["-d"]).ok();
    let pid = ctx.state(&a)["pid"].as_u64().unwrap();
    let userns = std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    let a_pidns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    let linux = &mut ctx.config["linux"];
    linux.as_object_mut().unwrap().remove("uidMappings");
    linux.as_object_mut().unwrap().remove("gidMappings");
    linux["namespaces"] = json!([
        {"type": "user", "path": format!("/proc/{pid}/ns/user")},
        {"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}, {"type": "network"}
    ]);
    let out = ctx.run_sh(
        "readlink /proc/self/ns/user; readlink /proc/self/ns/pid; echo $$; cat /proc/self/uid_map; id -u; hostname",
    );
    let l: Vec<String> = out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(l[0], userns.to_str().unwrap(), "{out}");
    assert_ne!(l[1], a_pidns.to_str().unwrap(), "a new pid namespace: {out}");
    assert_eq!(l[2], "1", "{out}");
    assert_eq!(l[3], "0 100000 65536", "{out}");
    assert_eq!(l[4], "0", "{out}");
    // The new namespaces belong to the joined user namespace: hostname could be set in the uts one.
    assert_eq!(l[5], ctx.config["hostname"].as_str().unwrap(), "{out}");
}

/// Joining a user namespace an unprivileged user made (Podman's pause process, a user's
/// sandbox): root's husk enters it, makes the container's other namespaces in it, and its
/// files are that user's. The namespace maps only the user's own id here, so devpts takes no
/// gid= the namespace cannot map.
#[test]
fn join_a_user_namespace_owned_by_another_user() {
    let mut ctx = Ctx::new("usernsother");
    let u = rootless::test_user().clone();
    let mut holder = std::process::Command::new("unshare");
    holder.args(["-U", "-r", "sleep", "100"]).stdin(std::process::Stdio::null());
    std::os::unix::process::CommandExt::uid(&mut holder, u.uid);
    std::os::unix::process::CommandExt::gid(&mut holder, u.gid);
    let mut holder = spawn(&mut holder);
    let pid = holder.id();
    assert!(wait_for(10, || std::fs::read_to_string(format!("/proc/{pid}/uid_map"))
        .is_ok_and(|m| m.contains(&u.uid.to_string()))));
    ctx.config["linux"]["namespaces"] = json!([
        {"type": "user", "path": format!("/proc/{pid}/ns/user")},
        {"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}, {"type": "network"}
    ]);
    for m in ctx.config["mounts"].as_array_mut().unwrap() {
        if m["type"] == "devpts" {
            m["options"].as_array_mut().unwrap().retain(|o| o != "gid=5");
        }
    }
    ctx.config["mounts"].as_array_mut().unwrap().retain(|m| m["type"] != "cgroup");
    ctx.config["root"]["readonly"] = json!(false);
    let out = ctx.run_sh("cat /proc/self/uid_map; id -u; echo x >/tmp/made && echo wrote");
    let _ = holder.kill();
    let _ = holder.wait();
    let l: Vec<String> = out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(l, [format!("0 {} 1", u.uid), "0".into(), "wrote".into()], "{out}");
    let made = std::fs::metadata(ctx.rootfs().join("tmp/made")).unwrap();
    assert_eq!(made.uid(), u.uid, "the container's root is the user");
}

/// No mount namespace at all: the container shares the host's, like runc runs it (hooks too),
/// chrooted into the rootfs; `exec` lands in the same root. husk mounts nothing then (runc would
/// make the config's mounts in the host's namespace, where they outlive the container): the
/// host's mount table is unchanged, and what would need a mount is refused by field. Before:
/// husk refused every config without a mount namespace.
#[test]
fn no_mount_namespace_runs_chrooted_and_mounts_nothing() {
    let mut ctx = Ctx::new("nomntns");
    fs_write(&ctx.rootfs().join("marker"), "inside\n");
    let marker = ctx.dir.join("prestart-ran");
    let hook = ctx.dir.join("prestart.sh");
    write_script(&hook, &format!("#!/bin/sh\necho ran > {}\n", marker.display()));
    ctx.config["hooks"] = json!({"prestart": [{"path": hook}]});
    ctx.config["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "mount");
    ctx.config["mounts"] = json!([]);
    ctx.config["root"]["readonly"] = json!(false);
    let linux = ctx.config["linux"].as_object_mut().unwrap();
    linux.remove("maskedPaths");
    linux.remove("readonlyPaths");
    let mounts_before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let key = ctx.dir.to_str().unwrap().to_string();
    let count = |text: &str| text.lines().filter(|l| l.contains(&key)).count();
    ctx.sh("cat /marker; exec sleep 60");
    let id = ctx.id();
    let o = ctx.run_with(&id, &["-d"]).ok();
    let pid = ctx.state(&id)["pid"].as_u64().unwrap();
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap().to_string_lossy(), host_ns("mnt"));
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/root")).unwrap(), ctx.rootfs(), "chrooted into the rootfs");
    assert!(wait_for(10, || o.stdout_now() == "inside\n"), "{}", o.stdout_now());
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "ran\n", "the prestart hook ran");
    let e = ctx.husk(&["exec", &id, "cat", "/marker"]).ok();
    assert_eq!(e.stdout, "inside\n", "exec lands in the container's root");
    assert_eq!(count(&std::fs::read_to_string("/proc/self/mountinfo").unwrap()), count(&mounts_before), "no mount");
    ctx.husk(&["delete", "--force", &id]).ok();

    // What would need a mount: refused by field, nothing made, nothing left.
    let fields: [(&str, serde_json::Value); 4] = [
        ("mounts", json!({"mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}]})),
        ("linux.maskedPaths", json!({"linux": {"maskedPaths": ["/proc/kcore"]}})),
        ("linux.devices", json!({"linux": {"devices": [{"path": "/dev/x", "type": "c", "major": 1, "minor": 3}]}})),
        ("root.readonly", json!({"root": {"readonly": true}})),
    ];
    for (field, extra) in fields {
        let mut c = ctx.config.clone();
        for (k, v) in extra.as_object().unwrap() {
            match v.as_object() {
                Some(o) => o.iter().for_each(|(k2, v2)| c[k][k2] = v2.clone()),
                None => c[k] = v.clone(),
            }
        }
        let saved = std::mem::replace(&mut ctx.config, c);
        let id = ctx.id();
        let o = ctx.run(&id).fails();
        ctx.config = saved;
        if is_husk() {
            assert!(o.stderr.contains(field) && o.stderr.contains("needs a mount namespace"), "{field}: {o}");
        }
        ctx.assert_nothing_left(&id, &mounts_before);
    }
}

fn fs_write(p: &std::path::Path, s: &str) {
    std::fs::write(p, s).unwrap();
}
