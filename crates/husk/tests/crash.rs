//! husk killed with SIGKILL in the middle of `create`, `start`, `run` and `delete` (as a manager's
//! timeout or the OOM killer kills it): afterwards `state` reports a sane status or says the
//! container does not exist, never `creating` for ever; `delete --force` always succeeds; and the
//! leak audit is clean. Two ways to pick the moment: husk's test switch `HUSK_TEST_STOP_AT=<step>`
//! (deterministic, every step in `libhusk::crashpoint::STEPS`) and a sweep of kill delays.
//! A corrupt state file gets a clear error and is still deletable.
mod common;

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use libhusk::crashpoint::STEPS;

/// What a caller may see of a container after a husk call on it died.
#[track_caller]
fn check_after_crash(ctx: &Ctx, id: &str, what: &str) {
    let st = ctx.husk(&["state", id]).no_panic();
    if st.success() {
        let v: serde_json::Value =
            serde_json::from_str(&st.stdout).unwrap_or_else(|e| panic!("{what}: state is not JSON ({e}): {st}"));
        let status = v["status"].as_str().unwrap_or("");
        assert!(["created", "running", "stopped"].contains(&status), "{what}: status {status:?} after a crash: {st}");
    } else {
        assert!(st.stderr.contains("does not exist"), "{what}: state neither works nor says does not exist: {st}");
        assert_eq!(st.stderr_lines().len(), 1, "{what}: error is one line: {st}");
    }
    let list = ctx.husk(&["list", "-q"]).ok();
    assert_eq!(list.stdout.lines().any(|l| l == id), st.success(), "{what}: list and state disagree: {list}");
    let del = ctx.husk(&["delete", "--force", id]);
    assert!(del.success(), "{what}: delete --force after the crash: {del}");
    ctx.husk(&["state", id]).fails_with("does not exist");
}

fn with_step(mut c: Command, step: &str) -> Command {
    c.env("HUSK_TEST_STOP_AT", step);
    c
}

/// One lifecycle with the switch set on every call; returns which call died at the step (husk
/// steps) or saw the container's init die there (init steps: the call fails), if any.
fn lifecycle_at(ctx: &Ctx, id: &str, step: &str, pid_file: &str) -> Option<&'static str> {
    let b = ctx.bundle.to_str().unwrap();
    let calls: [(&'static str, Vec<&str>); 3] = [
        ("create", vec!["create", "--bundle", b, "--pid-file", pid_file, id]),
        ("start", vec!["start", id]),
        ("delete", vec!["delete", "--force", id]),
    ];
    for (name, args) in calls {
        let mut c = with_step(ctx.cmd(), step);
        c.args(&args);
        let o = ctx.exec(c).no_panic();
        if o.signal == Some(9) || (step.starts_with("init:") && !o.success()) {
            return Some(name);
        }
        if !o.success() {
            panic!("{step}: {args:?} failed without being killed: {o}");
        }
    }
    None
}

/// A create that died before it recorded the container as created leaves no process behind:
/// the init, which was waiting for it, exits by itself (no `delete` needed).
#[track_caller]
fn init_exits_by_itself(ctx: &Ctx, id: &str, before: &audit::Snapshot, what: &str) {
    let start = Instant::now();
    loop {
        let now = ctx.audit();
        let left: Vec<&String> = now.procs.difference(&before.procs).collect();
        if left.is_empty() {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{what}: processes of {id} outlived their creator: {left:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_at(ctx: &Ctx, id: &str, step: &str, pid_file: &str) -> bool {
    let b = ctx.bundle.to_str().unwrap();
    let mut c = with_step(ctx.cmd(), step);
    c.args(["run", "--bundle", b, "--pid-file", pid_file, id]);
    let o = ctx.exec(c).no_panic();
    if step.starts_with("init:") {
        return o.code == Some(137) || !o.success();
    }
    o.signal == Some(9)
}

fn sweep_steps(scenario: &str, steps: &[&str]) -> usize {
    if !is_husk() {
        eprintln!("skipped: HUSK_TEST_STOP_AT is husk's own switch");
        return 0;
    }
    let mut ctx = Ctx::new(&format!("crash{scenario}"));
    ctx.sh(if scenario == "run" { "true" } else { "exec sleep 100" });
    let mut killed = 0;
    for step in steps {
        let id = ctx.id();
        let pid_file = ctx.dir.join(format!("{id}.pid"));
        let before = ctx.audit();
        ctx.write_config(&id);
        let what = format!("{scenario} killed at {step}");
        let died = match scenario {
            "run" => run_at(&ctx, &id, step, pid_file.to_str().unwrap()).then_some("run"),
            _ => lifecycle_at(&ctx, &id, step, pid_file.to_str().unwrap()),
        };
        assert!(died.is_some(), "{scenario}: step {step} was never reached (is it still in the code?)");
        killed += 1;
        let created = ["create:saved", "create:pid-file"];
        if died == Some("create") && !created.contains(step) {
            init_exits_by_itself(&ctx, &id, &before, &what);
        }
        if died == Some("start") && ["start:signalled", "start:done"].contains(step) {
            // The init had its start signal: the program runs, whatever the socket says. Until
            // the init has read the signal and exec'd, it may still read `created` (its name and
            // the socket say so): on a loaded machine that takes a moment, so wait for it.
            ctx.wait_status(&id, "running");
        }
        check_after_crash(&ctx, &id, &what);
        let _ = fs::remove_file(&pid_file);
        ctx.assert_no_leaks(&before);
    }
    eprintln!("{scenario}: killed at {killed} steps");
    killed
}

/// Steps the lifecycle (create, start, delete --force) passes; `run:` only `run` passes.
fn lifecycle_steps() -> Vec<&'static str> {
    let mut v: Vec<&str> =
        STEPS.iter().copied().filter(|s| !s.starts_with("run:") && !s.starts_with("exec:")).collect();
    // create writes its state twice, then the pid file.
    v.extend(["atomic:written#2", "atomic:written#3"]);
    v
}

#[test]
fn killed_at_every_step_of_create_start_delete() {
    sweep_steps("life", &lifecycle_steps());
}

#[test]
fn killed_at_every_step_of_run() {
    let mut steps: Vec<&str> = STEPS.iter().copied().filter(|s| !s.starts_with("exec:")).collect();
    steps.extend(["atomic:written#2", "atomic:written#3"]);
    sweep_steps("run", &steps);
}

/// An exec killed at each of its steps: the container runs on untouched, the process it may
/// have started goes with the container, and nothing else is left.
#[test]
fn exec_killed_at_every_step() {
    if !is_husk() {
        eprintln!("skipped: HUSK_TEST_STOP_AT is husk's own switch");
        return;
    }
    let mut ctx = Ctx::new("crashexec");
    ctx.sh("exec sleep 100");
    let steps: Vec<&str> = STEPS.iter().copied().filter(|s| s.starts_with("exec:")).collect();
    for step in &steps {
        let id = ctx.id();
        let before = ctx.audit();
        ctx.run_with(&id, &["-d"]).ok();
        let pid_file = ctx.dir.join(format!("{id}.exec.pid"));
        let mut c = with_step(ctx.cmd(), step);
        c.args(["exec", "--pid-file", pid_file.to_str().unwrap(), &id, "sleep", "100"]);
        let o = ctx.exec(c).no_panic();
        assert_eq!(o.signal, Some(9), "exec at {step} was never reached (is it still in the code?): {o}");
        assert_eq!(ctx.status(&id), "running", "exec killed at {step}: the container runs on");
        // The state is untouched: another exec works.
        let o = ctx.husk(&["exec", &id, "echo", "ok"]).ok();
        assert_eq!(o.stdout.trim(), "ok", "exec after one killed at {step}");
        check_after_crash(&ctx, &id, &format!("exec killed at {step}"));
        let _ = fs::remove_file(&pid_file);
        ctx.assert_no_leaks(&before);
    }
    eprintln!("exec: killed at {} steps", steps.len());
}

/// Kill `args` after `delay` (it may have finished by then).
fn kill_after(ctx: &Ctx, args: &[&str], delay: Duration) -> Option<i32> {
    let mut c = ctx.cmd();
    c.args(args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut child = common::spawn(&mut c);
    let start = Instant::now();
    while start.elapsed() < delay {
        std::hint::spin_loop();
    }
    child.kill();
    child.wait().signal()
}

/// Kill the call made by `args` at 48 points spread over the time one whole call takes (timed
/// first, since this host's speed varies with its load), checking after each.
fn sweep_delays(name: &str, script: &str, prepare: impl Fn(&Ctx, &str), args: impl Fn(&str, &str) -> Vec<String>) {
    let mut ctx = Ctx::new(name);
    ctx.sh(script);
    let b = ctx.bundle.to_str().unwrap().to_string();
    let call = |ctx: &Ctx, id: &str| {
        ctx.write_config(id);
        prepare(ctx, id);
        args(&b, id)
    };
    let id = ctx.id();
    let a = call(&ctx, &id);
    let start = Instant::now();
    ctx.husk(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>()).ok();
    let whole = start.elapsed();
    ctx.husk(&["delete", "--force", &id]).ok();
    let (mut killed, mut total) = (0, 0);
    for step in 0..48u32 {
        let id = ctx.id();
        let before = ctx.audit();
        let a = call(&ctx, &id);
        let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
        let delay = whole * step / 44;
        let sig = kill_after(&ctx, &a, delay);
        total += 1;
        killed += usize::from(sig == Some(9));
        check_after_crash(&ctx, &id, &format!("{name}: killed after {delay:?}"));
        ctx.assert_no_leaks(&before);
    }
    eprintln!("{name}: one call took {whole:?}; {killed} of {total} calls killed before they finished");
}

#[test]
fn create_killed_after_a_sweep_of_delays() {
    sweep_delays(
        "sweepcreate",
        "exec sleep 100",
        |_, _| {},
        |b, id| ["create", "--bundle", b, id].map(String::from).to_vec(),
    );
}

#[test]
fn run_killed_after_a_sweep_of_delays() {
    sweep_delays("sweeprun", "true", |_, _| {}, |b, id| ["run", "--bundle", b, id].map(String::from).to_vec());
}

#[test]
fn delete_killed_after_a_sweep_of_delays() {
    sweep_delays(
        "sweepdel",
        "exec sleep 100",
        |ctx, id| {
            ctx.run_with(id, &["-d"]).ok();
        },
        |_, id| ["delete", "--force", id].map(String::from).to_vec(),
    );
}

#[test]
fn exec_killed_after_a_sweep_of_delays() {
    // The container outlives the killed exec: check_after_crash sees it running and deletes it.
    sweep_delays(
        "sweepexec",
        "exec sleep 100",
        |ctx, id| {
            ctx.run_with(id, &["-d"]).ok();
        },
        |_, id| ["exec", id, "sh", "-c", "sleep 0.01"].map(String::from).to_vec(),
    );
}

#[test]
fn corrupt_state_is_named_and_deletable() {
    let mut ctx = Ctx::new("corrupt");
    ctx.sh("exec sleep 100");
    for (i, garbage) in
        [&b"{\"ociVersion\":\"1.0.2\",\"id\":\"x\",\"sta"[..], b"", b"\x00\xff garbage", b"[]"].iter().enumerate()
    {
        let id = ctx.id();
        let before = ctx.audit();
        ctx.run_with(&id, &["-d"]).ok();
        let file = ctx.root.join(&id).join("state.json");
        fs::write(&file, garbage).unwrap();
        let o = ctx.husk(&["state", &id]).fails();
        assert_eq!(o.stderr_lines().len(), 1, "case {i}: one line: {o}");
        assert!(o.stderr.contains(file.to_str().unwrap()), "case {i}: the error names the file: {o}");
        ctx.husk(&["list"]).ok();
        ctx.husk(&["delete", &id]).fails();
        ctx.husk(&["delete", "--force", &id]).ok();
        ctx.husk(&["state", &id]).fails_with("does not exist");
        ctx.assert_no_leaks(&before);
    }
}

/// A state dir without state.json is removed only if it holds nothing but husk's own files: a
/// --root pointed at the wrong directory must not lose anyone's files (runc removes the dir).
#[test]
fn delete_never_removes_a_directory_husk_did_not_make() {
    if !is_husk() {
        return; // runc 1.1 differs: it removes <root>/<id> whatever is in it.
    }
    let ctx = Ctx::new("notours");
    let other = ctx.root.join("precious");
    fs::create_dir_all(other.join("sub")).unwrap();
    fs::write(other.join("data.txt"), "keep me").unwrap();
    for args in [&["delete", "precious"][..], &["delete", "--force", "precious"]] {
        let o = ctx.husk(args).fails_with("does not exist");
        assert_eq!(o.stderr_lines().len(), 1, "{o}");
    }
    assert_eq!(fs::read_to_string(other.join("data.txt")).unwrap(), "keep me");
    assert!(other.join("sub").is_dir());
    // What a create killed before its first save leaves is husk's: removed.
    let id = ctx.id();
    fs::create_dir_all(ctx.root.join(&id)).unwrap();
    fs::write(ctx.root.join(&id).join(format!(".state.json.{}.tmp", std::process::id())), "{").unwrap();
    ctx.husk(&["delete", &id]).fails_with("does not exist");
    assert!(!ctx.root.join(&id).exists());
}
