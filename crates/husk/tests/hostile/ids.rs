//! Hostile ids: uids and gids out of range in config.json, process.json and `exec -u`.
//!
//! `(uid_t)-1`, 4294967295, means "leave it unchanged" to setresuid and setresgid: a process
//! given it stays root. husk refuses every id above 2^31-1 (as containerd's and Docker's user
//! parsing does), naming the field; runc main refuses only 4294967295 (setuid's EINVAL at start)
//! and runs 2^31..2^32-2, so those cases assert the refusal only for husk. For every runtime the
//! process must never run as root.
#![allow(unused_imports)]

use serde_json::{json, Value};

use crate::common::*;
use crate::host::HostSnapshot;

/// `id -u`, `id -g` and `id -G` of the process, so a run that was not refused shows whether it
/// kept root.
const SHOW_IDS: &str = "echo uid=$(id -u) gid=$(id -g) groups=$(id -G)";

/// A run of the config with `user` as process.user must fail naming `field` (for husk; for other
/// runtimes: fail, or at least not run as root), leave nothing and change nothing on the host.
#[track_caller]
fn refused_in_config(user: Value, field: &str, every_runtime: bool) {
    let mut ctx = Ctx::new("hostile-ids");
    ctx.sh(SHOW_IDS);
    ctx.config["process"]["user"] = user.clone();
    let id = ctx.id();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let before = ctx.audit();
    let host = HostSnapshot::take(&ctx);
    let o = ctx.run(&id).no_panic();
    if is_husk() || every_runtime {
        assert!(!o.success(), "process.user {user} ran: {o}");
        assert!(!o.stdout.contains("uid="), "the process ran before the refusal: {o}");
    } else if o.success() {
        assert!(!o.stdout.contains("uid=0 ") && !o.stdout.contains("gid=0 "), "process.user {user} kept root: {o}");
    }
    let o = if is_husk() {
        let o = o.fails_with(field);
        assert!(o.stderr.contains("is out of range (0 to 2147483647)"), "{o}");
        assert_eq!(o.stderr_lines().len(), 1, "one line: {o}");
        o
    } else {
        o
    };
    if !o.success() {
        ctx.assert_nothing_left(&id, &mounts);
    } else {
        ctx.husk(&["delete", "--force", &id]);
    }
    host.assert_unchanged();
    ctx.assert_no_leaks(&before);
}

#[test]
fn uid_minus_one_in_the_config_is_refused() {
    refused_in_config(json!({"uid": 4294967295u32, "gid": 0}), "process.user.uid", true);
}

#[test]
fn gid_minus_one_in_the_config_is_refused() {
    refused_in_config(json!({"uid": 0, "gid": 4294967295u32}), "process.user.gid", true);
}

#[test]
fn additional_gid_minus_one_in_the_config_is_refused() {
    // runc main: setgroups with -1 in the list fails (EINVAL), so every runtime refuses it.
    refused_in_config(
        json!({"uid": 0, "gid": 0, "additionalGids": [10, 4294967295u32]}),
        "process.user.additionalGids[1]",
        true,
    );
}

#[test]
fn ids_above_2_31_in_the_config_are_refused() {
    // runc main runs these (setresuid takes them on a host without a user namespace).
    refused_in_config(json!({"uid": 2147483648u32, "gid": 0}), "process.user.uid", false);
    refused_in_config(json!({"uid": 1000, "gid": 3000000000u32}), "process.user.gid", false);
}

/// The largest id taken still works, and is what the process gets.
#[test]
fn the_largest_id_runs() {
    let mut ctx = Ctx::new("hostile-ids-max");
    ctx.config["process"]["user"] = json!({"uid": 2147483647, "gid": 2147483647, "additionalGids": [2147483647]});
    let out = ctx.run_sh(SHOW_IDS);
    assert_eq!(out.trim(), "uid=2147483647 gid=2147483647 groups=2147483647", "{out}");
}

/// `exec` into a running container with `flags` (before the container id) must fail naming
/// the flag `what` and the id `bad` (husk; every runtime: fail, or at least not run as root),
/// leaving the container running.
#[track_caller]
fn exec_refused(flags: &[&str], what: &str, bad: &str, every_runtime: bool) {
    let mut ctx = Ctx::new("hostile-exec-ids");
    let (id, pid) = ctx.running("exec sleep 1000");
    let before = ctx.audit();
    let host = HostSnapshot::take(&ctx);
    let mut args = vec!["exec"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[&id, "sh", "-c", SHOW_IDS]);
    let o = ctx.husk(&args).no_panic();
    if is_husk() || every_runtime {
        assert!(!o.success(), "exec {flags:?} ran: {o}");
        assert!(!o.stdout.contains("uid="), "the process ran: {o}");
    } else if o.success() {
        assert!(!o.stdout.contains("uid=0 ") && !o.stdout.contains("gid=0 "), "exec {flags:?} kept root: {o}");
    }
    if is_husk() {
        let o = o.fails_with(what).fails_with(&format!("{bad} is out of range (0 to 2147483647)"));
        assert_eq!(o.code, Some(255), "exec's failure status: {o}");
        assert_eq!(o.stderr_lines().len(), 1, "one line: {o}");
    }
    assert_eq!(ctx.status(&id), "running");
    assert_eq!(ctx.state(&id)["pid"].as_u64(), Some(pid as u64));
    host.assert_unchanged();
    ctx.assert_no_leaks(&before);
}

#[test]
fn exec_user_minus_one_is_refused() {
    exec_refused(&["-u", "4294967295"], "--user", "4294967295", true);
}

#[test]
fn exec_group_minus_one_is_refused() {
    exec_refused(&["-u", "1000:4294967295"], "--user", "4294967295", true);
}

#[test]
fn exec_additional_gid_minus_one_is_refused() {
    exec_refused(&["-u", "1000:1000", "-g", "4294967295"], "--additional-gids", "4294967295", true);
}

#[test]
fn exec_ids_above_2_31_are_refused() {
    exec_refused(&["-u", "2147483648"], "--user", "2147483648", false);
    exec_refused(&["-u", "1000", "-g", "2147483648"], "--additional-gids", "2147483648", false);
}

#[test]
fn exec_process_json_ids_are_refused() {
    for (user, field) in [
        (json!({"uid": 4294967295u32, "gid": 0}), "process.user.uid"),
        (json!({"uid": 0, "gid": 4294967295u32}), "process.user.gid"),
        (json!({"uid": 0, "gid": 0, "additionalGids": [4294967295u32]}), "process.user.additionalGids[0]"),
    ] {
        let ctx = Ctx::new("hostile-exec-pjson");
        let p = ctx.dir.join("process.json");
        let process = json!({"args": ["sh", "-c", SHOW_IDS], "cwd": "/", "user": user, "env": ["PATH=/bin"]});
        std::fs::write(&p, process.to_string()).unwrap();
        exec_refused_in(ctx, &["--process", p.to_str().unwrap()], field);
    }
}

/// `exec_refused` for a process.json: the id check is the same for every runtime (runc main
/// fails setuid/setgid/setgroups with -1).
fn exec_refused_in(mut ctx: Ctx, flags: &[&str], what: &str) {
    let (id, _) = ctx.running("exec sleep 1000");
    let before = ctx.audit();
    let host = HostSnapshot::take(&ctx);
    let mut args = vec!["exec"];
    args.extend_from_slice(flags);
    args.push(&id);
    let o = ctx.husk(&args).fails();
    assert!(!o.stdout.contains("uid="), "the process ran: {o}");
    if is_husk() {
        let o = o.fails_with(what);
        assert!(o.stderr.contains("is out of range (0 to 2147483647)"), "{o}");
    }
    assert_eq!(ctx.status(&id), "running");
    host.assert_unchanged();
    ctx.assert_no_leaks(&before);
}
