//! Bad input: every error is one line with a non-zero exit, never a panic, and a failed create
//! leaves nothing behind (state dir, process, cgroup dir, host mount). Config errors name the JSON
//! path of the field at fault; that wording is husk's (runc's differs), so it is asserted only when
//! the runtime under test is husk.
mod common;

use common::*;
use serde_json::json;
use std::fs;

/// Create `id` with the current config (already written if `raw`), expect failure, check the
/// error is one line, check nothing is left. Returns the Out.
#[track_caller]
fn create_fails(ctx: &Ctx, id: &str) -> Out {
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let o = ctx.create(id).fails();
    one_line(&o);
    ctx.assert_nothing_left(id, &mounts);
    o
}

#[track_caller]
fn one_line(o: &Out) {
    let lines = o.stderr_lines();
    assert_eq!(lines.len(), 1, "the error is one line: {o}");
}

#[track_caller]
fn husk_says(o: &Out, what: &str) {
    if is_husk() {
        assert!(o.stderr.contains(what), "husk's error must contain {what:?}: {o}");
    }
}

#[test]
fn malformed_config() {
    let ctx = Ctx::new("badjson");
    let id = ctx.id();
    fs::write(ctx.bundle.join("config.json"), "{ \"ociVersion\": \"1.0.2\", ").unwrap();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let b = ctx.bundle.to_str().unwrap();
    let o = ctx.husk(&["create", "--bundle", b, &id]).fails();
    one_line(&o);
    husk_says(&o, "invalid JSON");
    ctx.assert_nothing_left(&id, &mounts);
}

#[test]
fn wrong_type_in_config() {
    let mut ctx = Ctx::new("badtype");
    ctx.config["process"]["user"]["uid"] = json!("zero");
    let id = ctx.id();
    let o = create_fails(&ctx, &id);
    husk_says(&o, "process.user.uid");
}

#[test]
fn missing_config() {
    let ctx = Ctx::new("noconfig");
    let id = ctx.id();
    let b = ctx.bundle.to_str().unwrap();
    // runc says "JSON specification file config.json not found"; husk names the path and errno.
    let o = ctx.husk(&["create", "--bundle", b, &id]).fails_with("config.json");
    husk_says(&o, "no such file or directory");
    one_line(&o);
    assert!(!ctx.root.join(&id).exists());
}

#[test]
fn missing_bundle() {
    let ctx = Ctx::new("nobundle");
    let id = ctx.id();
    let o = ctx.husk(&["create", "--bundle", "/no/such/bundle", &id]).fails();
    one_line(&o);
    assert!(!ctx.root.join(&id).exists());
}

#[test]
fn unknown_fields_ignored() {
    let mut ctx = Ctx::new("unkfield");
    ctx.config["huskUnknownTopLevel"] = json!({"a": 1});
    ctx.config["process"]["someFutureField"] = json!(true);
    ctx.config["linux"]["someFutureLinuxField"] = json!([1, 2]);
    assert_eq!(ctx.run_sh("echo ran"), "ran\n");
}

#[test]
fn missing_rootfs() {
    let mut ctx = Ctx::new("norootfs");
    ctx.config["root"]["path"] = json!("no-such-rootfs");
    let id = ctx.id();
    let o = create_fails(&ctx, &id);
    husk_says(&o, "root.path");
}

#[test]
fn symlinked_rootfs() {
    let mut ctx = Ctx::new("symrootfs");
    std::os::unix::fs::symlink("rootfs", ctx.bundle.join("rootfs-link")).unwrap();
    ctx.config["root"]["path"] = json!("rootfs-link");
    let id = ctx.id();
    let o = create_fails(&ctx, &id);
    husk_says(&o, "root.path");
}

#[test]
fn impossible_mount() {
    let mut ctx = Ctx::new("badmount");
    let i = ctx.config["mounts"].as_array().unwrap().len();
    ctx.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/bad", "type": "nosuchfs", "source": "none"}));
    let id = ctx.id();
    let o = create_fails(&ctx, &id);
    husk_says(&o, &format!("mounts[{i}]"));
}

#[test]
fn bind_mount_missing_source() {
    let mut ctx = Ctx::new("badsrc");
    let i = ctx.config["mounts"].as_array().unwrap().len();
    ctx.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "bind", "source": "/no/such/source/dir", "options": ["rbind"]
    }));
    let id = ctx.id();
    let o = create_fails(&ctx, &id);
    assert!(o.stderr.contains("no such file or directory"), "{o}");
    husk_says(&o, &format!("mounts[{i}]"));
}

#[test]
fn rlimit_above_hard_limit() {
    // Root lacks CAP_SYS_RESOURCE on this host (hard RLIMIT_NOFILE 20000): raising it fails.
    let mut ctx = Ctx::new("badrlimit");
    ctx.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 1048576, "hard": 1048576}]);
    let id = ctx.id();
    let o = create_fails(&ctx, &id);
    husk_says(&o, "process.rlimits[0]");
}

#[test]
fn unknown_rlimit_type() {
    let mut ctx = Ctx::new("rlimittype");
    ctx.config["process"]["rlimits"] =
        json!([{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 100}, {"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]);
    let id = ctx.id();
    let o = create_fails(&ctx, &id);
    husk_says(&o, "process.rlimits[1]");
}

#[test]
fn executable_not_in_path() {
    let mut ctx = Ctx::new("nocmd");
    ctx.config["process"]["args"] = json!(["no-such-command-husk"]);
    let id = ctx.id();
    let o = create_fails(&ctx, &id);
    assert!(o.stderr.contains("executable file not found in $PATH"), "{o}");
}

#[test]
fn executable_missing_absolute() {
    let mut ctx = Ctx::new("noabs");
    ctx.config["process"]["args"] = json!(["/no/such/binary"]);
    let id = ctx.id();
    let o = create_fails(&ctx, &id);
    assert!(o.stderr.contains("no such file or directory"), "{o}");
}

#[test]
fn executable_missing_run() {
    let mut ctx = Ctx::new("noexecrun");
    ctx.config["process"]["args"] = json!(["no-such-command-husk"]);
    let id = ctx.id();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let o = ctx.run(&id).fails();
    assert!(o.stderr.contains("executable file not found in $PATH"), "{o}");
    ctx.assert_nothing_left(&id, &mounts);
}

#[test]
fn execve_failure_in_runcs_words() {
    // A script whose interpreter is missing passes the lookup and fails at execve: runc main's
    // `exec /run.sh: no such file or directory` (its linux.Exec's PathError), for run and exec.
    let mut ctx = Ctx::new("nointerp");
    fs::write(ctx.rootfs().join("run.sh"), "#!/no/such/interpreter\necho hi\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(ctx.rootfs().join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    ctx.config["process"]["args"] = json!(["/run.sh"]);
    let id = ctx.id();
    let o = ctx.run(&id).fails();
    assert!(o.stderr.contains("exec /run.sh: no such file or directory"), "{o}");
    let (id, _) = ctx.running("exec sleep 1000");
    let o = ctx.husk(&["exec", &id, "/run.sh"]).fails();
    assert!(o.stderr.contains("exec /run.sh: no such file or directory"), "{o}");
    if is_husk() {
        // runc 1.1 exits 1 here; runc main's `runc init` exits 255 when its execve fails.
        assert_eq!(o.code, Some(255), "{o}");
    }
}

#[test]
fn relative_cwd() {
    let mut ctx = Ctx::new("relcwd");
    ctx.config["process"]["cwd"] = json!("tmp");
    let id = ctx.id();
    let o = create_fails(&ctx, &id);
    husk_says(&o, "process.cwd");
}

#[test]
fn empty_args() {
    let mut ctx = Ctx::new("noargs");
    ctx.config["process"]["args"] = json!([]);
    let id = ctx.id();
    let o = create_fails(&ctx, &id);
    husk_says(&o, "process.args");
}

#[test]
fn bad_namespace_type() {
    let mut ctx = Ctx::new("badns");
    ctx.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "bogus"}));
    let id = ctx.id();
    let o = create_fails(&ctx, &id);
    husk_says(&o, "linux.namespaces[5]");
}

#[test]
fn bad_namespace_path() {
    let mut ctx = Ctx::new("badnspath");
    ctx.config["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "network", "path": "/no/such/netns"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}
    ]);
    let id = ctx.id();
    let o = create_fails(&ctx, &id);
    husk_says(&o, "linux.namespaces[1]");
}

#[test]
fn unsupported_oci_version() {
    // runc 1.1 differs: it runs any ociVersion; husk refuses versions outside 1.0.0..1.3.x, naming
    // the field.
    let mut ctx = Ctx::new("ociver");
    ctx.config["ociVersion"] = json!("2.0.0");
    let id = ctx.id();
    let o = create_fails(&ctx, &id);
    husk_says(&o, "ociVersion");
}

#[test]
fn invalid_container_id() {
    let ctx = Ctx::new("badid");
    ctx.write_config("x");
    let b = ctx.bundle.to_str().unwrap();
    for bad in ["../escape", "a/b", "..", ""] {
        let o = ctx.husk(&["create", "--bundle", b, bad]).fails();
        one_line(&o);
    }
    assert!(!ctx.dir.join("escape").exists());
    assert!(!ctx.root.join("a").exists());
}

#[test]
fn unknown_id_one_line() {
    let ctx = Ctx::new("unkline");
    for cmd in [&["state", "nope"][..], &["start", "nope"], &["kill", "nope", "9"], &["delete", "nope"]] {
        let o = ctx.husk(cmd).fails_with("does not exist");
        one_line(&o);
    }
}

#[test]
fn duplicate_id_leaves_first_alone() {
    let mut ctx = Ctx::new("dup2");
    ctx.sh("exec sleep 100");
    let id = ctx.id();
    ctx.run_with(&id, &["-d"]).ok();
    let pid = ctx.state(&id)["pid"].as_u64().unwrap() as u32;
    let o = ctx.create(&id).fails_with("already exists");
    one_line(&o);
    assert_eq!(ctx.status(&id), "running");
    assert!(alive(pid));
}

#[test]
fn failed_start_of_running_container() {
    let mut ctx = Ctx::new("startrun");
    ctx.sh("exec sleep 100");
    let id = ctx.id();
    ctx.run_with(&id, &["-d"]).ok();
    let o = ctx.husk(&["start", &id]).fails();
    one_line(&o);
}
