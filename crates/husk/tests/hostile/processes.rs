//! Hostile processes inside the container: the runtime binary through /proc/PID/exe (CAP_SYS_PTRACE), /proc races.
#![allow(unused_imports)]

use crate::common::*;
use crate::host::HostSnapshot;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

/// `tests/hostile/exe_probe.c`, built static into the rootfs as `/probe`.
fn build_probe(ctx: &Ctx) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile/exe_probe.c");
    let out = ctx.rootfs().join("probe");
    let st = status(Command::new("cc").args(["-static", "-O2", "-o"]).arg(&out).arg(&src));
    assert!(st.success(), "cc -static exe_probe.c");
}

/// A private copy of the runtime under test, so that no other test's runtime process keeps the
/// file busy (ETXTBSY) and hides the hole; and its `dev:ino`, what the probe looks for.
fn private_runtime(ctx: &Ctx) -> (PathBuf, String) {
    let copy = ctx.dir.join("runtime-copy");
    fs::copy(fs::canonicalize(bin()).unwrap(), &copy).unwrap();
    let m = fs::metadata(&copy).unwrap();
    (copy, format!("{}:{}", m.dev(), m.ino()))
}

fn add_cap(config: &mut serde_json::Value, cap: &str) {
    for set in ["bounding", "effective", "permitted"] {
        let list = config["process"]["capabilities"][set].as_array_mut().expect("capability set");
        list.push(json!(cap));
    }
}

/// What the probe wrote to `/dev/shm/probe.log` of the container whose init is `pid` (the
/// default root is read-only), read through that process's root.
fn probe_log(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/root/dev/shm/probe.log")).unwrap_or_default()
}

/// CVE-2019-5736 with CAP_SYS_PTRACE (issue 19, item 1): a process in the container that may
/// ptrace (`--cap-add SYS_PTRACE`, common for debugging) watches for every new process of its pid
/// namespace and grabs `/proc/PID/exe`. Whatever `exec` puts into the container's pid namespace
/// must never be the runtime's binary, not even for the instant after the clone: the probe must
/// never reach it, over many execs (before the fix it did on the first few).
#[test]
fn exec_never_shows_the_runtime_binary_to_a_ptrace_capable_container() {
    let mut ctx = Ctx::new("exeptrace");
    build_probe(&ctx);
    let (copy, target) = private_runtime(&ctx);
    add_cap(&mut ctx.config, "CAP_SYS_PTRACE");
    ctx.config["process"]["args"] = json!(["/probe", target, "/dev/shm/probe.log"]);
    let runtime = |args: &[&str]| {
        let mut c = Command::new(&copy);
        c.arg("--root").arg(&ctx.root).args(args).stdin(std::process::Stdio::null());
        ctx.exec(c)
    };
    let id = ctx.id();
    ctx.write_config(&id);
    runtime(&["run", "-d", "--bundle", ctx.bundle.to_str().unwrap(), &id]).ok();
    let init = ctx.state(&id)["pid"].as_u64().unwrap() as u32;
    let log = || probe_log(init);
    assert!(wait_for(10, || log().contains("alive")), "the probe did not start: {}", log());
    let before = fs::read(&copy).unwrap();
    let snap = HostSnapshot::take(&ctx);
    for _ in 0..150 {
        runtime(&["exec", &id, "true"]).ok();
        assert!(!log().contains("reached"), "the container reached the runtime binary:\n{}", log());
    }
    // A last chance for a handle taken late to be reopened once the runtime is idle.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let log = log();
    assert!(!log.contains("reached") && !log.contains("writable"), "the container reached the runtime binary:\n{log}");
    assert!(fs::read(&copy).unwrap() == before, "the runtime binary changed");
    assert_eq!(ctx.status(&id), "running", "the probe died:\n{log}");
    runtime(&["delete", "--force", &id]).ok();
    snap.assert_unchanged();
}

/// The same probe exec'd into a *created* container (issue 19, item 1): until `start` the init
/// waits there, and what waits must not be the runtime's binary (before, the init ran husk's
/// code until start: the probe reached it at once); nor what the init becomes at start.
#[test]
fn a_created_containers_init_is_not_the_runtime_binary() {
    let mut ctx = Ctx::new("exeptracecreated");
    build_probe(&ctx);
    let (copy, target) = private_runtime(&ctx);
    ctx.sh("echo started > /dev/shm/started; exec sleep 1000");
    let runtime = |args: &[&str]| {
        let mut c = Command::new(&copy);
        c.arg("--root").arg(&ctx.root).args(args).stdin(std::process::Stdio::null());
        ctx.exec(c)
    };
    let id = ctx.id();
    ctx.write_config(&id);
    let before = fs::read(&copy).unwrap();
    let snap = HostSnapshot::take(&ctx);
    runtime(&["create", "--bundle", ctx.bundle.to_str().unwrap(), &id]).ok();
    let init = ctx.state(&id)["pid"].as_u64().unwrap() as u32;
    runtime(&["exec", "-d", "--cap", "CAP_SYS_PTRACE", &id, "/probe", &target, "/dev/shm/probe.log"]).ok();
    let log = || probe_log(init);
    assert!(wait_for(10, || log().contains("alive 64")), "the probe did not run: {}", log());
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(ctx.status(&id), "created");
    assert!(!log().contains("reached"), "the created container's init is the runtime binary:\n{}", log());
    runtime(&["start", &id]).ok();
    assert!(wait_for(10, || fs::read_to_string(format!("/proc/{init}/root/dev/shm/started")).is_ok()));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = log();
    assert!(!log.contains("reached") && !log.contains("writable"), "the container reached the runtime binary:\n{log}");
    assert!(fs::read(&copy).unwrap() == before, "the runtime binary changed");
    runtime(&["delete", "--force", &id]).ok();
    snap.assert_unchanged();
}
