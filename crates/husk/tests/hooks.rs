//! OCI hooks: each kind runs, in order, with the state on stdin; failures and timeouts.
mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The hook script: `hook.sh NAME LOGFILE [exit-code]` appends `NAME HOOKVAR <state json>` to
/// LOGFILE. Only sh builtins, `cat` and `tr`, so it runs on the host and in the busybox rootfs.
const HOOK: &str =
    "#!/bin/sh\nstate=$(cat | tr -d '\\n')\necho \"$1 ${HOOKVAR:-unset} $state\" >> \"$2\"\nexit ${3:-0}\n";

struct Hooks {
    /// Host path of the log dir; mounted at /hooks in the container.
    dir: PathBuf,
    script: PathBuf,
}

fn setup(ctx: &mut Ctx) -> Hooks {
    let dir = ctx.dir.join("hooks");
    fs::create_dir_all(&dir).unwrap();
    let script = dir.join("hook.sh");
    write_script(&script, HOOK);
    // startContainer resolves in the container: give the rootfs its own copy.
    write_script(&ctx.rootfs().join("bin/hook.sh"), HOOK);
    ctx.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/hooks", "type": "bind", "source": dir, "options": ["rbind", "rw"]}));
    Hooks { dir, script }
}

fn hook(h: &Hooks, name: &str) -> Value {
    let log = h.dir.join("log");
    json!({"path": h.script, "args": ["hook.sh", name, log], "env": ["HOOKVAR=v-" .to_string() + name]})
}

/// Log lines: (hook name, HOOKVAR, state JSON).
fn read_log(h: &Hooks) -> Vec<(String, String, Value)> {
    let text = fs::read_to_string(h.dir.join("log")).unwrap_or_default();
    text.lines()
        .map(|l| {
            let mut it = l.splitn(3, ' ');
            let name = it.next().unwrap().to_string();
            let var = it.next().unwrap_or("").to_string();
            let st: Value =
                serde_json::from_str(it.next().unwrap_or("")).unwrap_or_else(|e| panic!("state not JSON ({e}): {l}"));
            (name, var, st)
        })
        .collect()
}

/// A container with one hook of every kind; returns the log after create, start, kill, delete.
fn lifecycle_with_all_hooks(ctx: &mut Ctx, h: &Hooks) -> (String, Vec<String>, Vec<(String, String, Value)>) {
    let mut hooks = json!({});
    for kind in ["prestart", "createRuntime", "createContainer", "poststart", "poststop"] {
        hooks[kind] = json!([hook(h, kind)]);
    }
    hooks["startContainer"] = json!([{"path": "/bin/hook.sh", "args": ["hook.sh", "startContainer", "/hooks/log"], "env": ["HOOKVAR=v-startContainer"]}]);
    ctx.config["hooks"] = hooks;
    ctx.sh("echo started; exec sleep 100");
    let id = ctx.id();
    ctx.create(&id).ok();
    let after_create: Vec<String> = read_log(h).into_iter().map(|x| x.0).collect();
    ctx.husk(&["start", &id]).ok();
    assert!(wait_for(5, || read_log(h).len() >= 5), "{:?}", read_log(h));
    ctx.husk(&["kill", &id, "KILL"]).ok();
    ctx.wait_status(&id, "stopped");
    ctx.husk(&["delete", &id]).ok();
    (id, after_create, read_log(h))
}

#[test]
fn all_hooks_run_with_state() {
    let mut ctx = Ctx::new("hooksall");
    let h = setup(&mut ctx);
    let (id, _, log) = lifecycle_with_all_hooks(&mut ctx, &h);
    let mut names: Vec<&str> = log.iter().map(|x| x.0.as_str()).collect();
    names.sort();
    assert_eq!(names, ["createContainer", "createRuntime", "poststart", "poststop", "prestart", "startContainer"]);
    let pid = log[0].2["pid"].as_u64();
    for (name, var, st) in &log {
        assert_eq!(st["id"], id.as_str(), "{name}: {st}");
        assert_eq!(var, &format!("v-{name}"), "{name}: hook env");
        assert!(st["ociVersion"].is_string(), "{name}: {st}");
        assert_eq!(st["bundle"], ctx.bundle.to_str().unwrap(), "{name}: {st}");
        match name.as_str() {
            // Hooks in the container namespace see the pid as the container sees it (runtime.md).
            "createContainer" | "startContainer" => assert_eq!(st["pid"], 1, "{name}: {st}"),
            "poststop" => {}
            _ => assert_eq!(st["pid"].as_u64(), pid, "{name}: the host pid of init: {st}"),
        }
    }
    let status = |n: &str| log.iter().find(|x| x.0 == n).unwrap().2["status"].as_str().unwrap().to_string();
    assert_eq!(status("prestart"), "creating");
    assert_eq!(status("createRuntime"), "creating");
    assert_eq!(status("createContainer"), "creating");
    assert_eq!(status("poststop"), "stopped");
}

#[test]
fn hooks_order_poststart_after_start() {
    // runc 1.1 differs: it runs poststart hooks during `create` (before startContainer); the spec
    // (runtime.md steps 7-9) runs them after the user process started, in `start`.
    let mut ctx = Ctx::new("hooksorder");
    let h = setup(&mut ctx);
    let (_, after_create, log) = lifecycle_with_all_hooks(&mut ctx, &h);
    assert_eq!(after_create, ["prestart", "createRuntime", "createContainer"], "create runs the create hooks only");
    let names: Vec<&str> = log.iter().map(|x| x.0.as_str()).collect();
    assert_eq!(names, ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]);
    let poststart = &log.iter().find(|x| x.0 == "poststart").unwrap().2;
    assert_eq!(poststart["status"], "running", "{poststart}");
}

#[test]
fn run_runs_all_hooks() {
    let mut ctx = Ctx::new("hooksrun");
    let h = setup(&mut ctx);
    let mut hooks = json!({});
    for kind in ["prestart", "createRuntime", "createContainer", "poststart", "poststop"] {
        hooks[kind] = json!([hook(&h, kind), hook(&h, &format!("{kind}2"))]);
    }
    ctx.config["hooks"] = hooks;
    ctx.sh("echo hi");
    let id = ctx.id();
    ctx.run(&id).ok();
    let names: Vec<String> = read_log(&h).into_iter().map(|x| x.0).collect();
    assert_eq!(
        names,
        [
            "prestart",
            "prestart2",
            "createRuntime",
            "createRuntime2",
            "createContainer",
            "createContainer2",
            "poststart",
            "poststart2",
            "poststop",
            "poststop2"
        ]
    );
}

#[test]
fn failing_create_runtime_hook_leaves_nothing() {
    let mut ctx = Ctx::new("hookfail");
    let h = setup(&mut ctx);
    let mut bad = hook(&h, "createRuntime");
    bad["args"].as_array_mut().unwrap().push(json!("1"));
    ctx.config["hooks"] = json!({"createRuntime": [bad], "poststop": [hook(&h, "poststop")]});
    ctx.sh("exec sleep 100");
    let id = ctx.id();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let o = ctx.create(&id).fails();
    assert_eq!(o.stderr_lines().len().min(1), 1, "an error is reported: {o}");
    if is_husk() {
        // runc's words first (runc 1.1 says "error running hook #0"), then the field.
        assert!(o.stderr.contains("error running createRuntime hook #0: hooks.createRuntime[0]: "), "{o}");
    }
    ctx.assert_nothing_left(&id, &mounts);
    let names: Vec<String> = read_log(&h).into_iter().map(|x| x.0).collect();
    assert_eq!(names.first().map(|s| s.as_str()), Some("createRuntime"), "{names:?}");
}

#[test]
fn failing_poststart_hook_fails_start_and_stops_the_container() {
    // runtime.md step 9: an error, and the container stopped (runc main kills it and waits);
    // runc 1.1 differs: it only warns (and runs poststart during create).
    let mut ctx = Ctx::new("poststartfail");
    let h = setup(&mut ctx);
    let mut bad = hook(&h, "poststart");
    bad["args"].as_array_mut().unwrap().push(json!("3"));
    ctx.config["hooks"] = json!({"poststart": [bad, hook(&h, "poststart2")], "poststop": [hook(&h, "poststop")]});
    ctx.sh("exec sleep 100");
    let id = ctx.id();
    ctx.create(&id).ok();
    let pid = ctx.state(&id)["pid"].as_u64().unwrap() as u32;
    let o = ctx.husk(&["start", &id]).fails();
    if is_husk() {
        assert!(o.stderr.contains("error running poststart hook #0: hooks.poststart[0]: "), "{o}");
    }
    // Stopped by the time start returns, its process gone; delete runs the poststop hooks.
    assert_eq!(ctx.status(&id), "stopped");
    assert!(!alive(pid), "the container's process still runs");
    ctx.husk(&["delete", &id]).ok();
    let names: Vec<String> = read_log(&h).into_iter().map(|x| x.0).collect();
    assert_eq!(names, ["poststart", "poststop"], "the failed hook stops the list");

    // `run -d`: the same error, and the container is gone.
    let id = ctx.id();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    ctx.run_with(&id, &["-d"]).fails();
    ctx.husk(&["state", &id]).fails_with("does not exist");
    ctx.assert_nothing_left(&id, &mounts);
}

#[test]
fn start_container_hook_without_env_gets_the_process_env() {
    // runc's de facto behaviour (not the spec's): a startContainer hook with no env of its own
    // runs with the container process's.
    let mut ctx = Ctx::new("startenv");
    let h = setup(&mut ctx);
    ctx.config["process"]["env"].as_array_mut().unwrap().push(json!("HOOKVAR=from-the-process"));
    ctx.config["hooks"] = json!({
        "startContainer": [{"path": "/bin/hook.sh", "args": ["hook.sh", "startContainer", "/hooks/log"]}],
        "prestart": [{"path": h.script, "args": ["hook.sh", "prestart", h.dir.join("log")]}]
    });
    ctx.sh("true");
    let id = ctx.id();
    ctx.run(&id).ok();
    let log = read_log(&h);
    let var = |n: &str| log.iter().find(|x| x.0 == n).map(|x| x.1.clone());
    assert_eq!(var("startContainer").as_deref(), Some("from-the-process"), "{log:?}");
    // Other hooks get exactly their own environment, none here.
    if is_husk() {
        assert_eq!(var("prestart").as_deref(), Some("unset"), "{log:?}");
    }
}

#[test]
fn failing_prestart_hook_fails_run() {
    let mut ctx = Ctx::new("prefail");
    let h = setup(&mut ctx);
    let mut bad = hook(&h, "prestart");
    bad["args"].as_array_mut().unwrap().push(json!("2"));
    ctx.config["hooks"] = json!({"prestart": [bad]});
    ctx.sh("echo SHOULD-NOT-RUN");
    let id = ctx.id();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let o = ctx.run(&id).fails();
    assert!(!o.stdout.contains("SHOULD-NOT-RUN"), "{o}");
    ctx.assert_nothing_left(&id, &mounts);
}

#[test]
fn failing_poststop_hook_only_warns() {
    let mut ctx = Ctx::new("poststopfail");
    let h = setup(&mut ctx);
    let mut bad = hook(&h, "poststop");
    bad["args"].as_array_mut().unwrap().push(json!("1"));
    ctx.config["hooks"] = json!({"poststop": [bad, hook(&h, "poststop2")]});
    ctx.sh("exit 0");
    let id = ctx.id();
    ctx.create(&id).ok();
    ctx.husk(&["start", &id]).ok();
    ctx.wait_status(&id, "stopped");
    ctx.husk(&["delete", &id]).ok();
    ctx.husk(&["state", &id]).fails_with("does not exist");
    let names: Vec<String> = read_log(&h).into_iter().map(|x| x.0).collect();
    assert_eq!(names.first().map(|s| s.as_str()), Some("poststop"));
}

#[test]
fn failing_poststop_hook_later_hooks_still_run() {
    // runc 1.1 differs: it stops at the first failing poststop hook; runtime.md says the remaining
    // hooks and the lifecycle continue as if it had succeeded.
    let mut ctx = Ctx::new("poststopfail2");
    let h = setup(&mut ctx);
    let mut bad = hook(&h, "poststop");
    bad["args"].as_array_mut().unwrap().push(json!("1"));
    ctx.config["hooks"] = json!({"poststop": [bad, hook(&h, "poststop2")]});
    ctx.sh("exit 0");
    let id = ctx.id();
    ctx.run(&id).ok();
    let names: Vec<String> = read_log(&h).into_iter().map(|x| x.0).collect();
    assert_eq!(names, ["poststop", "poststop2"], "the remaining poststop hooks still run");
}

#[test]
fn hook_timeout() {
    let mut ctx = Ctx::new("hooktimeout");
    let slow = ctx.dir.join("slow.sh");
    write_script(&slow, "#!/bin/sh\nexec sleep 30\n");
    ctx.config["hooks"] = json!({"createRuntime": [{"path": slow, "timeout": 1}]});
    ctx.sh("exec sleep 100");
    let id = ctx.id();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let t = Instant::now();
    ctx.create(&id).fails();
    assert!(t.elapsed() < Duration::from_secs(10), "the timeout was not applied: {:?}", t.elapsed());
    ctx.assert_nothing_left(&id, &mounts);
}

#[test]
fn missing_hook_binary_fails_create() {
    let mut ctx = Ctx::new("hookmissing");
    ctx.config["hooks"] = json!({"prestart": [{"path": "/no/such/hook"}]});
    let id = ctx.id();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    ctx.create(&id).fails();
    ctx.assert_nothing_left(&id, &mounts);
}
