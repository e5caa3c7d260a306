//! Command-line compatibility: flag spellings, global flags, logging, --version, spec, features.
mod common;

use common::*;
use serde_json::Value;
use std::fs;
use std::process::Command;

const LOOP: &str = "while :; do sleep 0.1; done";

#[test]
fn version_first_line() {
    let o = run_cmd(
        {
            let mut c = Command::new(bin());
            c.arg("--version");
            c
        },
        &std::env::temp_dir(),
        TIMEOUT,
    )
    .ok();
    let first = o.stdout.lines().next().unwrap_or("");
    let words: Vec<&str> = first.split(' ').collect();
    assert!(
        words.len() == 3 && !words[0].is_empty() && words[1] == "version" && !words[2].is_empty(),
        "first line must be `<name> version X`: {first:?}"
    );
}

#[test]
fn version_short_flag() {
    let ctx = Ctx::new("vshort");
    let mut c = Command::new(bin());
    c.arg("-v");
    let o = ctx.exec(c).ok();
    assert!(o.stdout.lines().next().unwrap_or("").contains(" version "), "{o}");
}

#[test]
fn bundle_flag_spellings() {
    // `--bundle B`, `--bundle=B`, `-b B`, `-bundle B` (Go's flag package, used by restore callers).
    let mut ctx = Ctx::new("bflags");
    ctx.sh("echo ok");
    let b = ctx.bundle.to_str().unwrap().to_string();
    let eq = format!("--bundle={b}");
    let forms: Vec<Vec<&str>> = vec![vec!["--bundle", &b], vec![&eq], vec!["-b", &b], vec!["-bundle", &b]];
    for form in forms {
        let id = ctx.id();
        ctx.write_config(&id);
        let mut args = vec!["run"];
        args.extend(form.iter());
        args.push(&id);
        let o = ctx.husk(&args);
        assert!(o.success() && o.stdout.trim() == "ok", "{form:?}: {o}");
    }
}

#[test]
fn bundle_defaults_to_cwd() {
    let mut ctx = Ctx::new("bcwd");
    ctx.sh("echo cwd-ok");
    let id = ctx.id();
    ctx.write_config(&id);
    let mut c = ctx.cmd();
    c.current_dir(&ctx.bundle).args(["run", &id]);
    let o = ctx.exec(c).ok();
    assert_eq!(o.stdout.trim(), "cwd-ok");
}

#[test]
fn single_dash_long_flags() {
    // `-no-subreaper` as the containerd shim passes it on restore; `-pid-file` likewise.
    let mut ctx = Ctx::new("sdash");
    ctx.sh(LOOP);
    let id = ctx.id();
    ctx.write_config(&id);
    let pidfile = ctx.dir.join("p.pid");
    let b = ctx.bundle.to_str().unwrap();
    ctx.husk(&["run", "-d", "-no-subreaper", "-pid-file", pidfile.to_str().unwrap(), "-bundle", b, &id]).ok();
    assert_eq!(ctx.status(&id), "running");
    assert_eq!(read_pid_file(&pidfile) as u64, ctx.state(&id)["pid"].as_u64().unwrap());
}

#[test]
fn equals_forms() {
    let mut ctx = Ctx::new("eqforms");
    ctx.sh(LOOP);
    let id = ctx.id();
    ctx.write_config(&id);
    let pidfile = ctx.dir.join("eq.pid");
    let mut c = Command::new(bin());
    c.arg(format!("--root={}", ctx.root.display()))
        .arg("create")
        .arg(format!("--bundle={}", ctx.bundle.display()))
        .arg(format!("--pid-file={}", pidfile.display()))
        .arg(&id)
        .current_dir(&ctx.dir);
    ctx.exec(c).ok();
    assert!(ctx.root.join(&id).exists(), "--root=DIR was not used");
    assert_eq!(ctx.status(&id), "created");
    assert!(pidfile.exists());
    let mut c = Command::new(bin());
    c.arg("--root").arg(&ctx.root).args(["--log-format=text", "delete", "--force", &id]);
    ctx.exec(c).ok();
}

#[test]
fn root_is_respected() {
    // A container in one root is invisible from another.
    let mut ctx = Ctx::new("roots");
    ctx.sh(LOOP);
    let id = ctx.id();
    ctx.create(&id).ok();
    let other = ctx.dir.join("other-root");
    std::fs::create_dir_all(&other).unwrap();
    let mut c = Command::new(bin());
    c.arg("--root").arg(&other).args(["state", &id]);
    ctx.exec(c).fails_with("does not exist");
    let mut c = Command::new(bin());
    c.arg("--root").arg(&other).args(["list", "-q"]);
    let o = ctx.exec(c).ok();
    assert_eq!(o.stdout.trim(), "");
}

fn check_json_log(path: &std::path::Path, want: &str) {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("log {}: {e}", path.display()));
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "log file empty");
    let mut last_error = None;
    for l in &lines {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("log line not JSON ({e}): {l:?}"));
        for k in ["level", "msg", "time"] {
            assert!(v.get(k).map(|x| x.is_string()).unwrap_or(false), "log line lacks {k}: {l}");
        }
        let t = v["time"].as_str().unwrap();
        assert!(t.len() >= 20 && t.as_bytes()[4] == b'-' && t.as_bytes()[10] == b'T', "time not RFC 3339: {t}");
        if v["level"] == "error" {
            last_error = Some(v["msg"].as_str().unwrap().to_string());
        }
    }
    let msg = last_error.expect("no error line in log");
    assert!(msg.contains(want), "last error msg {msg:?} lacks {want:?}");
}

#[test]
fn log_json_on_error() {
    let ctx = Ctx::new("logjson");
    let log = ctx.dir.join("log.json");
    let o = ctx.husk(&["--log", log.to_str().unwrap(), "--log-format", "json", "start", "no-such-ctr"]).fails();
    check_json_log(&log, "does not exist");
    let _ = o;
    // --flag=value forms too.
    let log2 = ctx.dir.join("log2.json");
    ctx.husk(&[&format!("--log={}", log2.display()), "--log-format=json", "state", "no-such-ctr"]).fails();
    check_json_log(&log2, "does not exist");
}

#[test]
fn log_json_appends() {
    let ctx = Ctx::new("logappend");
    let log = ctx.dir.join("log.json");
    fs::write(&log, "").unwrap();
    for _ in 0..2 {
        ctx.husk(&["--log", log.to_str().unwrap(), "--log-format", "json", "kill", "no-such-ctr", "9"]).fails();
    }
    let text = fs::read_to_string(&log).unwrap();
    let errors = text.lines().filter(|l| l.contains("\"error\"")).count();
    assert!(errors >= 2, "the log is appended to, not truncated: {text}");
}

#[test]
fn log_text_format() {
    let ctx = Ctx::new("logtext");
    let log = ctx.dir.join("log.txt");
    ctx.husk(&["--log", log.to_str().unwrap(), "delete", "no-such-ctr"]).fails();
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains("does not exist"), "{text}");
    assert!(serde_json::from_str::<Value>(text.lines().next().unwrap()).is_err(), "text format is not JSON: {text}");
}

#[test]
fn error_on_stderr_without_log() {
    let ctx = Ctx::new("errstderr");
    let o = ctx.husk(&["state", "no-such-ctr"]).fails_with("does not exist");
    assert_eq!(o.stdout.trim(), "", "errors do not go to stdout");
}

#[test]
fn spec_writes_default_config() {
    let ctx = Ctx::new("spec");
    let d = ctx.dir.join("specdir");
    fs::create_dir_all(&d).unwrap();
    let mut c = Command::new(bin());
    c.arg("spec").current_dir(&d);
    ctx.exec(c).ok();
    let v: Value = serde_json::from_slice(&fs::read(d.join("config.json")).unwrap()).unwrap();
    assert_eq!(v["process"]["args"], serde_json::json!(["sh"]));
    assert_eq!(v["root"]["path"], "rootfs");
    assert!(v["ociVersion"].as_str().unwrap().starts_with("1."));
    assert!(v["linux"]["namespaces"].as_array().unwrap().len() >= 5);
    // A second `spec` refuses to overwrite.
    let mut c = Command::new(bin());
    c.arg("spec").current_dir(&d);
    ctx.exec(c).fails_with("exists");
    // --bundle puts it elsewhere.
    let e = ctx.dir.join("specdir2");
    fs::create_dir_all(&e).unwrap();
    let mut c = Command::new(bin());
    c.args(["spec", "--bundle", e.to_str().unwrap()]).current_dir(&ctx.dir);
    ctx.exec(c).ok();
    assert!(e.join("config.json").exists());
}

#[test]
fn spec_rootless_has_user_namespace() {
    let ctx = Ctx::new("specrl");
    let d = ctx.dir.join("rl");
    fs::create_dir_all(&d).unwrap();
    let mut c = Command::new(bin());
    c.args(["spec", "--rootless"]).current_dir(&d);
    ctx.exec(c).ok();
    let v: Value = serde_json::from_slice(&fs::read(d.join("config.json")).unwrap()).unwrap();
    let ns = v["linux"]["namespaces"].as_array().unwrap();
    assert!(ns.iter().any(|n| n["type"] == "user"), "{ns:?}");
    assert!(v["linux"]["uidMappings"].is_array());
}

#[test]
fn features_is_json() {
    let ctx = Ctx::new("features");
    let o = ctx.husk(&["features"]).ok();
    let v: Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("features not JSON: {e}: {o}"));
    assert!(v["ociVersionMin"].is_string() && v["ociVersionMax"].is_string(), "{v}");
    let hooks: Vec<&str> = v["hooks"].as_array().unwrap().iter().map(|h| h.as_str().unwrap()).collect();
    for h in ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"] {
        assert!(hooks.contains(&h), "features lacks hook {h}");
    }
    assert!(v["mountOptions"].as_array().map(|a| !a.is_empty()).unwrap_or(false));
}

#[test]
fn features_lists_memory_policies_and_unsafe_annotations() {
    // runc 1.1 differs: neither field (runtime-spec 1.2/1.3).
    if !is_husk() {
        return;
    }
    let ctx = Ctx::new("featmpol");
    let v: Value = serde_json::from_str(&ctx.husk(&["features"]).ok().stdout).unwrap();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().unwrap_or_else(|| panic!("not a list: {v}")).iter().map(|s| s.as_str().unwrap().into()).collect()
    };
    // Every mode and flag config-linux.md names, sorted as runc prints them.
    assert_eq!(
        strings(&v["linux"]["memoryPolicy"]["modes"]),
        [
            "MPOL_BIND",
            "MPOL_DEFAULT",
            "MPOL_INTERLEAVE",
            "MPOL_LOCAL",
            "MPOL_PREFERRED",
            "MPOL_PREFERRED_MANY",
            "MPOL_WEIGHTED_INTERLEAVE"
        ]
    );
    assert_eq!(
        strings(&v["linux"]["memoryPolicy"]["flags"]),
        ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"]
    );
    // runc main's list, so a manager filters the same annotations for either runtime.
    assert_eq!(
        strings(&v["potentiallyUnsafeConfigAnnotations"]),
        ["bundle", "org.systemd.property.", "org.criu.config"]
    );
    // Listed means applied: a config with the last mode and every flag runs.
    let mut ctx = Ctx::new("featmpol2");
    if std::path::Path::new("/proc/self/numa_maps").exists() {
        ctx.config["linux"]["memoryPolicy"] =
            serde_json::json!({"mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]});
        let out = ctx.run_sh("cat /proc/self/numa_maps");
        assert!(out.lines().any(|l| l.contains(" prefer=static:0 ") || l.contains(" prefer:0 ")), "{out}");
    }
}

#[test]
fn unknown_command_fails() {
    let ctx = Ctx::new("unkcmd");
    ctx.husk(&["no-such-command"]).fails();
}

#[test]
fn unknown_flag_fails() {
    let ctx = Ctx::new("unkflag");
    ctx.husk(&["state", "--no-such-flag", "x"]).fails();
}

#[test]
fn help_succeeds() {
    let ctx = Ctx::new("help");
    let o = ctx.husk(&["--help"]).ok();
    assert!(o.stdout.contains("create") && o.stdout.contains("delete"), "{o}");
}

#[test]
fn missing_id_fails() {
    let ctx = Ctx::new("noid");
    for cmd in ["state", "start", "delete", "create"] {
        ctx.husk(&[cmd]).fails();
    }
}

#[test]
fn a_flag_without_its_value() {
    // Podman (CRRuntimeSupportsPodCheckpointRestore) and CRI-O run `restore --lsm-mount-context`
    // and look for "flag needs an argument" in the output: then the runtime has the flag.
    let ctx = Ctx::new("flagnoval");
    for args in [&["restore", "--lsm-mount-context"][..], &["exec", "--user"], &["--root"]] {
        let o = ctx.husk(args).fails_with("flag needs an argument");
        assert_eq!(o.stderr_lines().len(), if is_husk() { 1 } else { o.stderr_lines().len() }, "{o}");
    }
}

#[test]
fn single_dash_words_after_the_id_are_not_flags() {
    // runc main stops reading flags after the id of exec, ps and kill: `-all` there is the
    // container's, ps(1)'s or a (bad) signal, never the runtime's `--all`.
    // runc 1.1 differs: its parser reads flags after the id too, so `kill ID -all` sends
    // SIGTERM to every process.
    let mut ctx = Ctx::new("dashafterid");
    ctx.sh("trap 'echo got-signal' TERM; echo ready; while :; do sleep 0.1; done");
    let id = ctx.id();
    let o = ctx.create(&id).ok();
    ctx.husk(&["start", &id]).ok();
    assert!(wait_for(10, || o.stdout_now().contains("ready")));
    ctx.husk(&["kill", &id, "-all"]).fails();
    let p = ctx.husk(&["ps", &id, "-e", "-all"]).ok();
    assert!(p.stdout.starts_with("F S"), "ps(1) got -all (long format): {p}");
    let e = ctx.husk(&["exec", &id, "echo", "-all"]).ok();
    assert_eq!(e.stdout, "-all\n");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!o.stdout_now().contains("got-signal"), "kill ID -all signalled the container: {}", o.stdout_now());
    assert_eq!(ctx.status(&id), "running");
}

#[test]
fn debug_lines_reach_the_log() {
    // --debug: debug-level lines about what the runtime does, in either format, including
    // those of the container's own init (which husk writes for it, as runc's log pipe does).
    let mut ctx = Ctx::new("debuglog");
    ctx.sh("true");
    for format in ["text", "json"] {
        let id = ctx.id();
        let log = ctx.dir.join(format!("debug.{format}"));
        ctx.global =
            vec!["--debug".into(), "--log".into(), log.to_str().unwrap().into(), "--log-format".into(), format.into()];
        ctx.run(&id).ok();
        let text = fs::read_to_string(&log).unwrap_or_default();
        let debug: Vec<String> = text
            .lines()
            .filter_map(|l| match format {
                "json" => {
                    let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
                    (v["level"] == "debug").then(|| v["msg"].as_str().unwrap_or("").to_string())
                }
                _ => l.contains("level=debug").then(|| l.to_string()),
            })
            .collect();
        assert!(debug.len() >= 3, "{format}: {text}");
        if is_husk() {
            assert!(debug.iter().any(|l| l.contains(&id)), "{format}: a line names the container: {text}");
            assert!(debug.iter().any(|l| l.contains("init: ")), "{format}: the init's own lines: {text}");
        }
    }
    // Without --debug, none.
    let id = ctx.id();
    let log = ctx.dir.join("quiet.log");
    ctx.global = vec!["--log".into(), log.to_str().unwrap().into()];
    ctx.run(&id).ok();
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert!(!text.contains("level=debug"), "{text}");
}
