//! create / start / state / kill / delete / run / list.
mod common;

use common::*;
use serde_json::Value;
use std::fs;

const LOOP: &str = "while :; do sleep 0.1; done";

#[test]
fn create_start_kill_delete() {
    let mut ctx = Ctx::new("lc");
    ctx.sh(LOOP);
    let id = ctx.id();
    let pidfile = ctx.dir.join("init.pid");
    ctx.create_with(&id, &["--pid-file", pidfile.to_str().unwrap()]).ok();

    let st = ctx.state(&id);
    assert_eq!(st["status"], "created", "{st}");
    let pid = st["pid"].as_u64().expect("created state has a pid") as u32;
    assert!(pid > 0);
    assert_eq!(read_pid_file(&pidfile), pid, "--pid-file holds the host pid of init");
    assert!(alive(pid));

    ctx.husk(&["start", &id]).ok();
    assert_eq!(ctx.status(&id), "running");
    assert!(alive(pid));

    ctx.husk(&["kill", &id, "KILL"]).ok();
    ctx.wait_status(&id, "stopped");
    assert!(wait_for(5, || !alive(pid)), "init {pid} still alive after SIGKILL");

    ctx.husk(&["delete", &id]).ok();
    assert!(!ctx.root.join(&id).exists(), "state dir remains after delete");
    ctx.husk(&["state", &id]).fails_with("does not exist");
}

#[test]
fn state_json_keys() {
    let mut ctx = Ctx::new("statekeys");
    ctx.sh(LOOP);
    ctx.config["annotations"] = serde_json::json!({"org.husk.test": "yes"});
    let id = ctx.id();
    ctx.create(&id).ok();
    let st = ctx.state(&id);
    for k in ["ociVersion", "id", "status", "pid", "bundle", "rootfs", "created", "owner"] {
        assert!(st.get(k).is_some(), "state lacks {k}: {st}");
    }
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["bundle"], ctx.bundle.to_str().unwrap());
    assert_eq!(st["rootfs"], ctx.rootfs().to_str().unwrap());
    assert_eq!(st["annotations"]["org.husk.test"], "yes", "{st}");
    assert!(st["created"].as_str().unwrap().contains('T'), "created is RFC 3339: {st}");
    assert!(st["ociVersion"].as_str().unwrap().starts_with("1."), "{st}");
}

#[test]
fn run_exit_status() {
    let mut ctx = Ctx::new("runexit");
    ctx.sh("echo hello; exit 3");
    let id = ctx.id();
    let o = ctx.run(&id);
    assert_eq!(o.code, Some(3), "{o}");
    assert_eq!(o.stdout.trim(), "hello", "run passes stdout through: {o}");
    // run removes the container when it exits.
    assert!(!ctx.root.join(&id).exists());
    ctx.husk(&["state", &id]).fails_with("does not exist");
}

#[test]
fn run_killed_is_128_plus_signal() {
    let mut ctx = Ctx::new("run137");
    // PID 1 ignores SIGKILL from inside its namespace: kill it from outside while `run` waits.
    ctx.sh(LOOP);
    let id = ctx.id();
    ctx.write_config(&id);
    let mut c = ctx.cmd();
    c.args(["run", "--bundle", ctx.bundle.to_str().unwrap(), &id]);
    c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut child = spawn_for(&mut c, BACKGROUND);
    let running = wait_for(10, || ctx.husk(&["state", &id]).stdout.contains("\"running\""));
    if !running {
        child.kill();
        panic!("container never ran");
    }
    ctx.husk(&["kill", &id, "KILL"]).ok();
    let st = child.wait();
    assert_eq!(st.code(), Some(137), "{st:?}");
}

#[test]
fn run_passes_stdin() {
    let ctx = Ctx::new("runstdin");
    let mut ctx = ctx;
    ctx.sh("cat");
    let id = ctx.id();
    ctx.write_config(&id);
    let input = ctx.dir.join("in.txt");
    fs::write(&input, "from stdin\n").unwrap();
    let mut c = ctx.cmd();
    c.args(["run", "--bundle", ctx.bundle.to_str().unwrap(), &id]);
    c.stdin(fs::File::open(&input).unwrap());
    let o = ctx.exec(c).ok();
    assert_eq!(o.stdout, "from stdin\n");
}

#[test]
fn run_detach_returns_after_start() {
    let mut ctx = Ctx::new("rund");
    ctx.sh(LOOP);
    let id = ctx.id();
    ctx.run_with(&id, &["-d"]).ok();
    assert_eq!(ctx.status(&id), "running");
    ctx.husk(&["delete", "--force", &id]).ok();
    ctx.husk(&["state", &id]).fails_with("does not exist");
}

#[test]
fn run_keep_keeps_state() {
    let mut ctx = Ctx::new("runkeep");
    ctx.sh("exit 0");
    let id = ctx.id();
    ctx.run_with(&id, &["--keep"]).ok();
    assert_eq!(ctx.status(&id), "stopped");
    ctx.husk(&["delete", &id]).ok();
    ctx.husk(&["state", &id]).fails_with("does not exist");
}

#[test]
fn delete_running_needs_force() {
    let mut ctx = Ctx::new("delforce");
    ctx.sh(LOOP);
    let id = ctx.id();
    ctx.run_with(&id, &["-d"]).ok();
    let pid = ctx.state(&id)["pid"].as_u64().unwrap() as u32;
    ctx.husk(&["delete", &id]).fails();
    assert_eq!(ctx.status(&id), "running", "a failed delete leaves the container alone");
    ctx.husk(&["delete", "--force", &id]).ok();
    assert!(wait_for(5, || !alive(pid)), "delete --force did not kill {pid}");
    ctx.husk(&["state", &id]).fails_with("does not exist");
    for d in Ctx::cgroup_dirs(&id) {
        assert!(!d.exists(), "{} left after delete --force", d.display());
    }
}

#[test]
fn delete_force_created() {
    let mut ctx = Ctx::new("delcreated");
    ctx.sh(LOOP);
    let id = ctx.id();
    ctx.create(&id).ok();
    let pid = ctx.state(&id)["pid"].as_u64().unwrap() as u32;
    ctx.husk(&["delete", "--force", &id]).ok();
    assert!(wait_for(5, || !alive(pid)));
    ctx.husk(&["state", &id]).fails_with("does not exist");
}

#[test]
fn kill_stopped_fails_but_all_does_not() {
    let mut ctx = Ctx::new("killstopped");
    ctx.sh("exit 0");
    let id = ctx.id();
    ctx.run_with(&id, &["--keep"]).ok();
    assert_eq!(ctx.status(&id), "stopped");
    ctx.husk(&["kill", &id, "KILL"]).fails_with("container not running");
    ctx.husk(&["kill", "--all", &id, "KILL"]).ok();
    ctx.husk(&["kill", "-a", &id, "9"]).ok();
    ctx.husk(&["delete", &id]).ok();
}

#[test]
fn kill_signal_forms() {
    for sig in ["9", "KILL", "SIGKILL"] {
        let mut ctx = Ctx::new("killforms");
        ctx.sh(LOOP);
        let id = ctx.id();
        ctx.run_with(&id, &["-d"]).ok();
        ctx.husk(&["kill", &id, sig]).ok();
        ctx.wait_status(&id, "stopped");
        ctx.husk(&["delete", &id]).ok();
    }
}

#[test]
fn kill_default_is_sigterm() {
    let mut ctx = Ctx::new("killterm");
    // PID 1 of a pid namespace only gets signals it has a handler for: SIGTERM runs the trap,
    // anything else (e.g. SIGKILL from outside aside) would not produce exit 7.
    ctx.sh("trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.1; done");
    let id = ctx.id();
    let o = ctx.create(&id).ok();
    ctx.husk(&["start", &id]).ok();
    assert!(wait_for(10, || o.stdout_now().contains("ready")), "container never got ready");
    ctx.husk(&["kill", &id]).ok();
    ctx.wait_status(&id, "stopped");
    assert!(wait_for(5, || o.stdout_now().contains("got-term")), "no SIGTERM seen: {}", o.stdout_now());
    ctx.husk(&["delete", &id]).ok();
}

#[test]
fn kill_usr1_by_name_and_number() {
    let mut ctx = Ctx::new("killusr");
    ctx.sh("trap 'echo usr1' USR1; trap 'echo usr2' USR2; echo ready; while :; do sleep 0.1; done");
    let id = ctx.id();
    let o = ctx.create(&id).ok();
    ctx.husk(&["start", &id]).ok();
    assert!(wait_for(10, || o.stdout_now().contains("ready")));
    ctx.husk(&["kill", &id, "USR1"]).ok();
    assert!(wait_for(5, || o.stdout_now().contains("usr1")), "{}", o.stdout_now());
    ctx.husk(&["kill", &id, "12"]).ok();
    assert!(wait_for(5, || o.stdout_now().contains("usr2")), "{}", o.stdout_now());
    assert_eq!(ctx.status(&id), "running");
}

#[test]
fn kill_bad_signal_fails() {
    let mut ctx = Ctx::new("killbad");
    ctx.sh(LOOP);
    let id = ctx.id();
    ctx.run_with(&id, &["-d"]).ok();
    ctx.husk(&["kill", &id, "NOSUCHSIG"]).fails();
    assert_eq!(ctx.status(&id), "running");
}

#[test]
fn start_twice_fails() {
    let mut ctx = Ctx::new("start2");
    ctx.sh(LOOP);
    let id = ctx.id();
    ctx.create(&id).ok();
    ctx.husk(&["start", &id]).ok();
    ctx.husk(&["start", &id]).fails();
    assert_eq!(ctx.status(&id), "running");
}

#[test]
fn stopped_after_exit() {
    let mut ctx = Ctx::new("stopped");
    ctx.sh("exit 0");
    let id = ctx.id();
    ctx.create(&id).ok();
    ctx.husk(&["start", &id]).ok();
    ctx.wait_status(&id, "stopped");
    ctx.husk(&["delete", &id]).ok();
}

#[test]
fn duplicate_id() {
    let mut ctx = Ctx::new("dupid");
    ctx.sh(LOOP);
    let id = ctx.id();
    ctx.create(&id).ok();
    ctx.create(&id).fails_with("already exists");
    assert_eq!(ctx.status(&id), "created", "the first container is untouched");
}

#[test]
fn unknown_id() {
    let ctx = Ctx::new("unknown");
    for cmd in ["state", "start", "delete", "kill"] {
        ctx.husk(&[cmd, "no-such-container"]).fails_with("does not exist");
    }
}

#[test]
fn list_formats() {
    let mut ctx = Ctx::new("list");
    ctx.sh(LOOP);
    let a = ctx.id();
    let b = ctx.id();
    ctx.create(&a).ok();
    ctx.run_with(&b, &["-d"]).ok();

    let o = ctx.husk(&["list"]).ok();
    let mut lines = o.stdout.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"], "{o}");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 2, "{o}");
    let row_a = rows.iter().find(|r| r[0] == a).expect("a listed");
    assert_eq!(row_a[2], "created");
    assert_eq!(row_a[3], ctx.bundle.to_str().unwrap());
    assert_eq!(row_a[5], "root");
    let row_b = rows.iter().find(|r| r[0] == b).expect("b listed");
    assert_eq!(row_b[2], "running");

    let o = ctx.husk(&["list", "-q"]).ok();
    let mut ids: Vec<&str> = o.stdout.lines().collect();
    ids.sort();
    let mut want = vec![a.as_str(), b.as_str()];
    want.sort();
    assert_eq!(ids, want);

    for args in [&["list", "-f", "json"][..], &["list", "--format=json"], &["list", "--format", "json"]] {
        let o = ctx.husk(args).ok();
        let v: Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {o}"));
        let arr = v.as_array().expect("array");
        assert_eq!(arr.len(), 2);
        let ea = arr.iter().find(|e| e["id"] == a.as_str()).expect("a in json");
        assert_eq!(ea["status"], "created");
        assert!(ea["pid"].as_u64().unwrap() > 0);
        assert_eq!(ea["bundle"], ctx.bundle.to_str().unwrap());
        assert!(ea.get("created").is_some() && ea.get("owner").is_some(), "{ea}");
    }
}

#[test]
fn list_empty_root() {
    let ctx = Ctx::new("listempty");
    fs::create_dir_all(&ctx.root).unwrap();
    let o = ctx.husk(&["list"]).ok();
    assert_eq!(o.stdout.lines().count(), 1, "only the header: {o}");
    let o = ctx.husk(&["list", "-q"]).ok();
    assert_eq!(o.stdout.trim(), "");
    let o = ctx.husk(&["list", "--format", "json"]).ok();
    // runc prints `null` for an empty list (Go's encoding of a nil slice).
    assert_eq!(o.stdout, "null\n", "{o}");
}

#[test]
fn list_of_a_named_root_that_does_not_exist_fails() {
    // runc main: a --root the caller named must exist (only the default one may be missing,
    // before any container was made). runc 1.1 differs: it lists nothing.
    let ctx = Ctx::new("listnoroot");
    assert!(!ctx.root.exists());
    let o = ctx.husk(&["list"]).fails_with("no such file or directory");
    assert_eq!(o.stderr_lines().len(), 1, "{o}");
    assert!(o.stderr.contains(ctx.root.to_str().unwrap()), "names the root: {o}");
    ctx.husk(&["list", "-q"]).fails_with("no such file or directory");
}

#[test]
fn list_json_is_runcs_single_line() {
    // runc's containerState, encoded by Go: one line, its keys in the struct's order,
    // annotations (when there are some) before owner.
    let mut ctx = Ctx::new("listjson");
    ctx.sh(LOOP);
    ctx.config["annotations"] = serde_json::json!({"org.husk.test": "yes"});
    let a = ctx.id();
    ctx.create(&a).ok();
    let o = ctx.husk(&["list", "-f", "json"]).ok();
    assert_eq!(o.stdout.lines().count(), 1, "{o}");
    let keys = ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "annotations", "owner"];
    let at: Vec<usize> =
        keys.iter().map(|k| o.stdout.find(&format!("\"{k}\":")).unwrap_or_else(|| panic!("no {k}: {o}"))).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "key order {keys:?}: {o}");
    assert!(o.stdout.starts_with("[{\"ociVersion\":"), "{o}");
}

#[test]
fn kill_zero_checks_that_the_container_runs() {
    // Signal 0 sends nothing: success while the init lives, `container not running` after.
    let mut ctx = Ctx::new("killzero");
    ctx.sh("trap 'echo got-a-signal' USR1 TERM HUP; echo ready; while :; do sleep 0.1; done");
    let id = ctx.id();
    let o = ctx.create(&id).ok();
    ctx.husk(&["kill", &id, "0"]).ok();
    ctx.husk(&["start", &id]).ok();
    assert!(wait_for(10, || o.stdout_now().contains("ready")));
    ctx.husk(&["kill", &id, "0"]).ok();
    ctx.husk(&["kill", "--all", &id, "0"]).ok();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(ctx.status(&id), "running");
    assert!(!o.stdout_now().contains("got-a-signal"), "signal 0 delivered something: {}", o.stdout_now());
    ctx.husk(&["kill", &id, "KILL"]).ok();
    ctx.wait_status(&id, "stopped");
    ctx.husk(&["kill", &id, "0"]).fails_with("container not running");
    ctx.husk(&["kill", &id, "TERM"]).fails_with("container not running");
}

#[test]
fn pid_file_is_absolute_host_pid_relative_path() {
    // A relative --pid-file is relative to the caller's cwd.
    let mut ctx = Ctx::new("pidrel");
    ctx.sh(LOOP);
    let id = ctx.id();
    ctx.create_with(&id, &["--pid-file", "rel.pid"]).ok();
    let pid = ctx.state(&id)["pid"].as_u64().unwrap() as u32;
    assert_eq!(read_pid_file(&ctx.dir.join("rel.pid")), pid);
}

#[test]
fn many_containers_in_parallel_ids() {
    // Several containers in one root at once, each sees itself as PID 1.
    let mut ctx = Ctx::new("many");
    ctx.sh("echo $$; exec sleep 100");
    let ids: Vec<String> = (0..4).map(|_| ctx.id()).collect();
    let mut outs = vec![];
    for id in &ids {
        outs.push(ctx.create(id).ok());
    }
    for id in &ids {
        ctx.husk(&["start", id]).ok();
    }
    for o in &outs {
        assert!(wait_for(10, || o.stdout_now().trim() == "1"), "{}", o.stdout_now());
    }
    let pids: std::collections::HashSet<u64> = ids.iter().map(|i| ctx.state(i)["pid"].as_u64().unwrap()).collect();
    assert_eq!(pids.len(), 4);
}
