//! Rootless husk with cgroup v2 delegated by the user's systemd manager (`--systemd-cgroup` run
//! by a user): the container's scope is the user's manager's, below user@UID.service, with the
//! limits written there and read back by the manager. These need the guest (pure cgroup v2,
//! systemd, the lingering user `husk` whose manager has `cpuset cpu io memory pids` delegated,
//! see docs/guest.md); elsewhere they skip.
mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::rootless::{as_user, guest_user, User};
use common::*;
use serde_json::{json, Value};

/// A rootless context for the guest's delegated user, talking to its manager's session bus.
fn user_ctx(name: &str) -> Option<(Ctx, User)> {
    if !require(Feature::Cgroup2) || !require(Feature::Systemd) {
        return None;
    }
    let u = guest_user().expect("the guest's delegated user `husk` (docs/guest.md)");
    let mut ctx = Ctx::rootless_as(name, &u);
    ctx.env.push(("DBUS_SESSION_BUS_ADDRESS".into(), bus(&u)));
    ctx.global.push("--systemd-cgroup".into());
    Some((ctx, u))
}

fn bus(u: &User) -> String {
    format!("unix:path=/run/user/{}/bus", u.uid)
}

/// `systemctl --user ARGS` as the user: what its manager says.
fn user_systemctl(ctx: &Ctx, u: &User, args: &[&str]) -> Out {
    let mut c = Command::new("systemctl");
    c.arg("--user").args(args).current_dir(&ctx.dir);
    as_user(&mut c, u, &ctx.dir);
    c.env("DBUS_SESSION_BUS_ADDRESS", bus(u));
    ctx.exec(c)
}

fn unit_property(ctx: &Ctx, u: &User, unit: &str, prop: &str) -> String {
    user_systemctl(ctx, u, &["show", "-p", prop, "--value", unit]).ok().stdout.trim().to_string()
}

/// The cgroup v2 directory of `pid` as the host sees it.
fn cgroup_of(pid: u32) -> PathBuf {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let rel = text.lines().find_map(|l| l.strip_prefix("0::")).expect("a cgroup v2 line");
    Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'))
}

fn read(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display())).trim().to_string()
}

#[test]
fn cgroup2_rootless_systemd_scope_limits_and_lifecycle() {
    let Some((mut ctx, u)) = user_ctx("rlsd") else { return };
    ctx.map_subids();
    let id = ctx.id();
    let unit = format!("husktest-{id}.scope");
    ctx.config["linux"]["cgroupsPath"] = json!(format!("user.slice:husktest:{id}"));
    ctx.config["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 32}});
    ctx.sh(
        "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /proc/self/cgroup /proc/self/uid_map; exec sleep 1000",
    );
    let o = ctx.run_with(&id, &["-d"]).ok();
    let pid = ctx.state(&id)["pid"].as_u64().unwrap() as u32;
    assert!(wait_for(10, || o.stdout_now().lines().count() >= 5), "{}", o.stdout_now());
    let inside: Vec<String> =
        o.stdout_now().lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    // Inside: its own cgroup namespace rooted at the scope, the limits, the subordinate ids.
    assert_eq!(&inside[0..3], ["67108864", "32", "0::/"], "{inside:?}");
    assert_eq!(inside[3], format!("0 {} 1", u.uid), "{inside:?}");
    assert_eq!(inside[4], format!("1 {} {}", u.subuid.0, u.subuid.1), "{inside:?}");

    // Outside: the scope is the user's manager's, in its user.slice, owned by the user.
    let cg = cgroup_of(pid);
    let manager = format!("user.slice/user-{0}.slice/user@{0}.service", u.uid);
    assert!(cg.ends_with(format!("{manager}/user.slice/{unit}")), "{}", cg.display());
    assert_eq!(fs::metadata(&cg).unwrap().uid(), u.uid, "{}", cg.display());
    assert_eq!(read(&cg, "memory.max"), "67108864");
    assert_eq!(read(&cg, "pids.max"), "32");
    assert_eq!(unit_property(&ctx, &u, &unit, "MemoryMax"), "67108864");
    assert_eq!(unit_property(&ctx, &u, &unit, "TasksMax"), "32");
    assert_eq!(unit_property(&ctx, &u, &unit, "ActiveState"), "active");

    // Everything that needs a cgroup works with a delegated one.
    ctx.husk(&["pause", &id]).ok();
    assert_eq!(ctx.status(&id), "paused");
    assert_eq!(read(&cg, "cgroup.freeze"), "1");
    ctx.husk(&["resume", &id]).ok();
    assert_eq!(ctx.status(&id), "running");
    ctx.husk(&["update", "--memory", "128M", "--pids-limit", "64", &id]).ok();
    assert_eq!(read(&cg, "memory.max"), "134217728");
    assert_eq!(read(&cg, "pids.max"), "64");
    assert_eq!(unit_property(&ctx, &u, &unit, "MemoryMax"), "134217728");
    let ps: Value =
        serde_json::from_str(&ctx.husk(&["ps", "--format", "json", &id]).ok().stdout).expect("ps --format json");
    assert_eq!(ps, json!([pid]));
    // A rootless exec joins the scope (from the container's user namespace) and is counted.
    let o = ctx.husk(&["exec", &id, "sh", "-c", "cat /proc/self/cgroup; id -u"]).ok();
    assert_eq!(o.stdout.lines().collect::<Vec<_>>(), ["0::/", "0"], "{o}");
    let pf = ctx.dir.join("exec.pid");
    ctx.husk(&["exec", "-d", "--pid-file", pf.to_str().unwrap(), &id, "sleep", "1000"]).ok();
    let exec_pid = read_pid_file(&pf);
    assert_eq!(cgroup_of(exec_pid), cg);
    let mut ps: Vec<u32> = serde_json::from_str(&ctx.husk(&["ps", "--format", "json", &id]).ok().stdout).unwrap();
    ps.sort_unstable();
    let mut want = vec![pid, exec_pid];
    want.sort_unstable();
    assert_eq!(ps, want);
    let ev = ctx.husk(&["events", "--stats", &id]).ok();
    let ev: Value = serde_json::from_str(&ev.stdout).unwrap_or_else(|e| panic!("events --stats: {e}: {ev}"));
    assert_eq!(ev["data"]["pids"]["current"], json!(2), "{ev}");
    assert!(ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0, "{ev}");

    ctx.husk(&["kill", "--all", &id, "KILL"]).ok();
    ctx.wait_status(&id, "stopped");
    ctx.husk(&["delete", &id]).ok();
    assert!(!cg.exists(), "{} left behind", cg.display());
    assert_ne!(unit_property(&ctx, &u, &unit, "ActiveState"), "active");
}

#[test]
fn cgroup2_rootless_systemd_default_slice_from_inside_a_user_session() {
    // husk run from inside the user's manager (a `systemd-run --user --scope`, where rootless
    // Podman runs it): the default cgroupsPath, and the pids limit enforced.
    let Some((mut ctx, u)) = user_ctx("rlsdsess") else { return };
    ctx.wrap = ["systemd-run", "--user", "--scope", "--quiet", "--"].map(String::from).to_vec();
    ctx.config["linux"]["resources"] = json!({"pids": {"limit": 4}});
    // After the limit is hit only shell builtins and exec run (a fork fails while the sleeps live).
    ctx.sh("(for i in 1 2 3 4 5 6 7 8; do sleep 30 & done) 2>/dev/null; \
         while read k v; do [ \"$k\" = max ] && [ \"$v\" -gt 0 ] && echo limited; done < /sys/fs/cgroup/pids.events; \
         exec sleep 1000");
    let id = ctx.id();
    let o = ctx.run_with(&id, &["-d"]).ok();
    let pid = ctx.state(&id)["pid"].as_u64().unwrap() as u32;
    assert!(wait_for(20, || o.stdout_now() == "limited\n"), "{}", o.stdout_now());
    // runc 1.1 differs: its default unit is runc-<id>.scope.
    let unit = format!("{}-{id}.scope", if is_husk() { "husk" } else { "runc" });
    let cg = cgroup_of(pid);
    let manager = format!("user.slice/user-{0}.slice/user@{0}.service", u.uid);
    assert!(cg.ends_with(format!("{manager}/user.slice/{unit}")), "{}", cg.display());
    assert_eq!(read(&cg, "pids.max"), "4");
    assert!(read(&cg, "pids.events").starts_with("max ") && !read(&cg, "pids.events").ends_with(" 0"));
    ctx.husk(&["delete", "--force", &id]).ok();
    assert!(!alive(pid) && !cg.exists(), "{}", cg.display());
    assert_ne!(unit_property(&ctx, &u, &unit, "ActiveState"), "active");
}

#[test]
fn cgroup2_rootless_systemd_without_a_session_bus_fails_clearly() {
    // No DBUS_SESSION_BUS_ADDRESS and an XDG_RUNTIME_DIR without a bus: no user manager to ask.
    let Some((mut ctx, _)) = user_ctx("rlsdnobus") else { return };
    ctx.env = vec![("DBUS_SESSION_BUS_ADDRESS".into(), String::new())];
    let id = ctx.id();
    let before = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let o = ctx.run(&id).fails();
    if is_husk() {
        let bus = ctx.dir.join("xdg/bus");
        assert!(o.stderr.contains(&format!("no user session bus at {}", bus.display())), "{o}");
        assert_eq!(o.stderr_lines().len(), 1, "{o}");
    }
    ctx.assert_nothing_left(&id, &before);
}

#[test]
fn cgroup2_rootless_cgroupfs_in_the_users_delegated_subtree() {
    // Without --systemd-cgroup: a cgroupsPath inside the subtree the user's manager was
    // delegated, husk run from inside that subtree (the kernel lets a process move between two
    // cgroups only with write access to their common ancestor), so the cgroupfs driver makes,
    // limits and removes the container's cgroup as the user.
    let Some((mut ctx, u)) = user_ctx("rlcgfs") else { return };
    ctx.global.clear();
    ctx.wrap = ["systemd-run", "--user", "--scope", "--quiet", "--"].map(String::from).to_vec();
    let id = ctx.id();
    let rel = format!("/user.slice/user-{0}.slice/user@{0}.service/husktest-{id}", u.uid);
    let cg = Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
    ctx.config["linux"]["cgroupsPath"] = json!(rel);
    ctx.config["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 16}});
    ctx.sh("cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; exec sleep 1000");
    let o = ctx.run_with(&id, &["-d"]).ok();
    let pid = ctx.state(&id)["pid"].as_u64().unwrap() as u32;
    assert!(wait_for(10, || o.stdout_now() == "67108864\n16\n"), "{}", o.stdout_now());
    assert_eq!(cgroup_of(pid), cg);
    assert_eq!(fs::metadata(&cg).unwrap().uid(), u.uid);
    assert_eq!(read(&cg, "memory.max"), "67108864");
    ctx.husk(&["update", "--memory", "96M", &id]).ok();
    assert_eq!(read(&cg, "memory.max"), "100663296");
    // exec from inside the subtree lands in the container's cgroup; from outside it (the
    // harness's cgroup is root's) the kernel refuses the move, and husk says why.
    let pf = ctx.dir.join("exec.pid");
    ctx.husk(&["exec", "-d", "--pid-file", pf.to_str().unwrap(), &id, "sleep", "1000"]).ok();
    assert_eq!(cgroup_of(read_pid_file(&pf)), cg);
    let wrap = std::mem::take(&mut ctx.wrap);
    let o = ctx.husk(&["exec", &id, "true"]).fails();
    if is_husk() {
        assert!(o.stderr.contains("permission denied") && o.stderr.contains("delegated subtree"), "{o}");
    }
    ctx.wrap = wrap;
    ctx.husk(&["pause", &id]).ok();
    assert_eq!(read(&cg, "cgroup.freeze"), "1");
    ctx.husk(&["delete", "--force", &id]).ok();
    assert!(!alive(pid) && !cg.exists(), "{} left behind", cg.display());
}
