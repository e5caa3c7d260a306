//! `checkpoint` and `restore` when something is wrong: CRIU missing or too old, a dump CRIU
//! refuses, a restore that fails, a container in the wrong state, bad flags. These hold on any
//! host (here CRIU 3.17 fails on the vDSO); the `criu_*` twins run the same in the guest with a
//! working CRIU. The working paths are in tests/criu.rs.
mod common;

use common::criu::*;
use common::*;
use serde_json::json;
use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[test]
fn criu_checkpoint_failure_leaves_it_running() {
    if !require(Feature::Criu) {
        return;
    }
    checkpoint_failure_leaves_it_running("ckfail-guest", true);
}

/// The host's half of the same: here CRIU fails to dump (or is missing); the container goes on.
#[test]
fn checkpoint_failure_leaves_the_container_running() {
    checkpoint_failure_leaves_it_running("ckfail", false);
}

/// A container whose stdout is one end of a unix socket pair we hold: CRIU refuses to dump an
/// external socket without --ext-unix-sk, on any host.
fn checkpoint_failure_leaves_it_running(name: &str, from_criu: bool) {
    let mut ctx = Ctx::new(name);
    ctx.sh(COUNTER);
    ctx.config["root"]["readonly"] = json!(false);
    let id = ctx.id();
    ctx.write_config(&id);
    let (mine, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let theirs = OwnedFd::from(theirs);
    let b = ctx.bundle.to_str().unwrap().to_string();
    husk_with(&ctx.root, &["run", "-d", "--bundle", &b, &id], Some(&theirs), &ctx).ok();
    drop(theirs);
    mine.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut mine = mine;
    let mut b = [0u8; 64];
    assert!(mine.read(&mut b).unwrap() > 0);
    let pid = ctx.state(&id)["pid"].as_u64().unwrap();

    let img = images(&ctx, "img");
    let o = criu(&ctx, &ctx.root, &["checkpoint", "--image-path", img.to_str().unwrap(), &id]).fails();
    assert!(o.stderr.to_lowercase().contains("criu"), "the error names CRIU: {o}");
    if is_husk() {
        assert_eq!(o.stderr_lines().len(), 1, "one line: {o}");
        if from_criu {
            assert!(o.stderr.contains("full log:") && o.stderr.contains("dump.log"), "quotes CRIU's log: {o}");
        }
    }
    let st = ctx.state(&id);
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(st["pid"].as_u64(), Some(pid));
    // Not frozen either: it still writes.
    let mut more = 0;
    for _ in 0..5 {
        more += mine.read(&mut b).unwrap_or(0);
    }
    assert!(more > 0, "the container stopped writing after a failed checkpoint");
    ctx.husk(&["kill", &id, "KILL"]).ok();
    ctx.wait_status(&id, "stopped");
    ctx.husk(&["delete", &id]).ok();
}

#[test]
fn criu_restore_failure_leaves_nothing() {
    if !require(Feature::Criu) {
        return;
    }
    restore_failure_leaves_nothing("rsfail-guest");
}

#[test]
fn restore_failure_leaves_nothing_behind() {
    restore_failure_leaves_nothing("rsfail");
}

/// An image directory without an image: CRIU (or its absence) fails the restore, and no state,
/// cgroup, mount or process is left.
fn restore_failure_leaves_nothing(name: &str) {
    let mut ctx = Ctx::new(name);
    ctx.sh(COUNTER);
    let id = ctx.id();
    ctx.write_config(&id);
    let img = images(&ctx, "empty");
    fs::create_dir_all(&img).unwrap();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let (o, _) = restore(&ctx, &ctx.root, &id, &img, &[]);
    let o = o.fails();
    // runc 1.1 differs: it fails earlier, on the missing descriptors.json.
    if is_husk() {
        assert!(o.stderr.contains("criu restore failed") || o.stderr.contains("criu: "), "{o}");
    }
    ctx.assert_nothing_left(&id, &mounts);
}

#[test]
fn restore_of_an_existing_id_fails_and_leaves_it() {
    let mut ctx = Ctx::new("rsdup");
    ctx.sh(COUNTER);
    let id = ctx.id();
    ctx.run_with(&id, &["-d"]).ok();
    let pid = ctx.state(&id)["pid"].as_u64();
    let img = images(&ctx, "empty");
    fs::create_dir_all(&img).unwrap();
    let (o, _) = restore(&ctx, &ctx.root, &id, &img, &[]);
    o.fails_with("already exists");
    let st = ctx.state(&id);
    assert_eq!((st["status"].as_str(), st["pid"].as_u64()), (Some("running"), pid));
}

#[test]
fn checkpoint_needs_a_running_container() {
    let mut ctx = Ctx::new("ckcreated");
    ctx.sh(COUNTER);
    let id = ctx.id();
    ctx.create(&id).ok();
    let img = images(&ctx, "img");
    criu(&ctx, &ctx.root, &["checkpoint", "--image-path", img.to_str().unwrap(), &id]).fails_with("created");
    assert_eq!(ctx.status(&id), "created");
    criu(&ctx, &ctx.root, &["checkpoint", "nonexistent"]).fails_with("does not exist");
}

#[test]
fn checkpoint_without_criu_says_what_is_needed() {
    let mut ctx = Ctx::new("cknoc");
    ctx.sh(COUNTER);
    let id = ctx.id();
    ctx.run_with(&id, &["-d"]).ok();
    let img = images(&ctx, "img");
    let imgs = img.to_str().unwrap();
    // runc 1.1 differs: it says only "exec: \"criu\": executable file not found in $PATH".
    let o = criu(&ctx, &ctx.root, &["--criu", "/nonexistent/criu", "checkpoint", "--image-path", imgs, &id]).fails();
    let mut c = ctx.cmd();
    c.env("PATH", "/nonexistent").args(["checkpoint", "--image-path", imgs, &id]);
    let o2 = ctx.exec(c).fails();
    for o in [&o, &o2] {
        assert!(o.stderr.contains("criu"), "{o}");
        if is_husk() {
            assert!(o.stderr.contains("not found") && o.stderr.contains("CRIU 3.11 or newer"), "{o}");
        }
    }
    let b = ctx.bundle.to_str().unwrap();
    let o = criu(&ctx, &ctx.root, &["--criu", "/nonexistent/criu", "restore", "-b", b, "--image-path", imgs, "new-id"])
        .fails();
    assert!(o.stderr.contains("criu"), "{o}");
    if is_husk() {
        assert!(o.stderr.contains("/nonexistent/criu not found"), "{o}");
    }
    assert_eq!(ctx.status(&id), "running");
    assert!(!ctx.root.join("new-id").exists());
}

/// A stand-in `criu` that answers the version request as CRIU 3.5 would.
fn old_criu(dir: &Path) -> PathBuf {
    let path = dir.join("old-criu");
    // criu_resp { type: VERSION (10), success: true, version { major: 3, minor: 5 } }
    write_script(
        &path,
        "#!/usr/bin/python3\nimport os, sys\nfd = int(sys.argv[2])\nos.read(fd, 4096)\n\
         os.write(fd, bytes([0x08, 10, 0x10, 1, 0x52, 4, 0x08, 3, 0x10, 5]))\n",
    );
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn checkpoint_with_too_old_criu_says_so() {
    // runc 1.1 differs: it needs only CRIU 3.0, so a 3.5 passes its check.
    if !is_husk() || !Path::new("/usr/bin/python3").exists() {
        return;
    }
    let mut ctx = Ctx::new("ckold");
    ctx.sh(COUNTER);
    let id = ctx.id();
    ctx.run_with(&id, &["-d"]).ok();
    let old = old_criu(&ctx.dir);
    let o = criu(&ctx, &ctx.root, &["--criu", old.to_str().unwrap(), "checkpoint", "--image-path", "img", &id]);
    o.fails_with("CRIU 3.5").fails_with("too old").fails_with("3.11 or newer");
    assert_eq!(ctx.status(&id), "running");
}

#[test]
fn checkpoint_and_restore_check_their_flags() {
    let mut ctx = Ctx::new("ckflags");
    ctx.sh(COUNTER);
    let id = ctx.id();
    ctx.run_with(&id, &["-d"]).ok();
    // runc 1.1 words it "Invalid manage cgroups mode".
    let bad_mode = |o: Out| {
        let e = o.fails().stderr.to_lowercase().replace('-', " ");
        assert!(e.contains("manage cgroups mode"), "{e}");
    };
    bad_mode(criu(&ctx, &ctx.root, &["checkpoint", "--manage-cgroups-mode", "sloppy", &id]));
    // runc 1.1 differs: restore checks the mode only once it has set the container up.
    if is_husk() {
        let b = ctx.bundle.to_str().unwrap();
        bad_mode(criu(&ctx, &ctx.root, &["restore", "-b", b, "--manage-cgroups-mode", "sloppy", "other"]));
        assert!(!ctx.root.join("other").exists());
    }
    if is_husk() {
        criu(&ctx, &ctx.root, &["checkpoint", "--page-server", "nohost", &id]).fails_with("ADDRESS:PORT");
        criu(&ctx, &ctx.root, &["checkpoint", "--empty-ns", "pid", &id]).fails_with("empty-ns");
    }
    assert_eq!(ctx.status(&id), "running");
}

#[test]
fn features_say_checkpoint_is_supported() {
    let ctx = Ctx::new("ckfeatures");
    let o = ctx.husk(&["features"]).ok();
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["annotations"]["org.opencontainers.runc.checkpoint.enabled"], "true", "{o}");
}

/// CRIU's configuration file as runc picks it (libcontainer/criu_linux.go): the annotation
/// `org.criu.config` names one, an empty value none, no annotation `/etc/criu/runc.conf`. CRIU
/// reads it over the RPC options: seen here in what it logs (the dump itself fails on this
/// host's kernel, or works in the guest: the options reach CRIU either way).
#[test]
fn checkpoint_passes_criu_its_configuration_file() {
    // runc 1.1 differs only in the log it leaves; the files are runc's too.
    if !is_husk() || !output(Command::new("criu").arg("--version")).status.success() {
        return;
    }
    let cases = [
        // (annotation, what the dump's log shows)
        (Some("custom"), "custom"),
        (Some(""), "none"),
        (None, "default"),
    ];
    for (annotation, want) in cases {
        let mut ctx = Ctx::new("ckconf");
        ctx.sh(COUNTER);
        let conf = ctx.dir.join("criu.conf");
        let custom_log = ctx.dir.join("custom-criu.log");
        fs::write(&conf, format!("log-file {}\n", custom_log.display())).unwrap();
        match annotation {
            Some("custom") => ctx.config["annotations"] = json!({"org.criu.config": conf}),
            Some(v) => ctx.config["annotations"] = json!({"org.criu.config": v}),
            None => {}
        }
        let id = ctx.id();
        ctx.run_with(&id, &["-d"]).ok();
        let img = images(&ctx, "img");
        let args = ["checkpoint", "--leave-running", "--image-path", img.to_str().unwrap(), &id];
        let _ = criu(&ctx, &ctx.root, &args);
        let dump_log = fs::read_to_string(img.join("dump.log")).unwrap_or_default();
        let custom = fs::read_to_string(&custom_log).unwrap_or_default();
        match want {
            // The file's `log-file` won over husk's dump.log.
            "custom" => assert!(custom.contains(&format!("Parsing config file {}", conf.display())), "{custom}"),
            "none" => {
                assert!(custom.is_empty() && !dump_log.is_empty(), "{custom}");
                assert!(!dump_log.contains("Would overwrite RPC settings"), "{dump_log}");
            }
            _ => assert!(
                dump_log.contains("Would overwrite RPC settings with values from /etc/criu/runc.conf"),
                "{dump_log}"
            ),
        }
        ctx.husk(&["delete", "--force", &id]).ok();
    }
}
