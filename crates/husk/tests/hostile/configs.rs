//! Malformed, oversized and non-regular config.json and process.json; hostile CLI numbers (`--preserve-fds`).
//!
//! Every JSON file husk reads from a path the caller names (config.json, `exec --process`,
//! `update -r FILE`, a state file under `--root`) must be a regular file of at most 16 MiB: a
//! path pointed at `/dev/zero` or at a fifo is refused at once, not read until the memory is gone
//! or waited on forever; `update -r -` stops at the first byte no JSON has. The runtime runs with
//! its address space capped at 1 GiB here, so a runtime without the bound fails the case instead
//! of taking the host's memory. runc opens a fifo and waits for a writer: those cases are husk's
//! only.
#![allow(unused_imports)]

use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;
use crate::host::HostSnapshot;

/// What a refusal may take at most: a bounded reader refuses in milliseconds.
const QUICK: Duration = Duration::from_secs(15);

/// The runtime with `args`, its address space capped at 1 GiB, killed (failing the test) after
/// [`QUICK`]; stdin from `stdin` when given. It gets no fd but stdio, whatever this process has
/// open without close-on-exec (cargo's jobserver under scripts/test.sh).
fn capped(ctx: &Ctx, args: &[&str], stdin: Option<std::process::Stdio>) -> Out {
    let mut c = ctx.cmd();
    c.args(args);
    if let Some(s) = stdin {
        c.stdin(s);
    }
    // SAFETY: setrlimit and close_range are async-signal-safe and touch only the child's own
    // limits and fd table.
    unsafe {
        c.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: 1 << 30, rlim_max: 1 << 30 };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    run_cmd(c, &ctx.dir, QUICK)
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
}

/// A sparse regular file one byte over the 16 MiB bound.
fn oversized(path: &Path) {
    let f = fs::File::create(path).unwrap();
    f.set_len((16 << 20) + 1).unwrap();
}

/// Put `what` where the bundle's config.json is: "zero" (a symlink to /dev/zero), "fifo",
/// "big" (over the bound) or "dir".
fn hostile_config(ctx: &Ctx, what: &str) {
    let path = ctx.bundle.join("config.json");
    let _ = fs::remove_file(&path);
    match what {
        "zero" => std::os::unix::fs::symlink("/dev/zero", &path).unwrap(),
        "fifo" => mkfifo(&path),
        "big" => oversized(&path),
        "dir" => fs::create_dir(&path).unwrap(),
        other => panic!("{other}"),
    }
}

/// create with a hostile config.json: refused quickly by what the file is, nothing made, the
/// host unchanged.
fn config_refused(what: &str, says: &str) {
    let ctx = Ctx::new("hostile-config");
    let id = ctx.id();
    hostile_config(&ctx, what);
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let before = ctx.audit();
    let host = HostSnapshot::take(&ctx);
    let b = ctx.bundle.to_str().unwrap().to_string();
    let t = Instant::now();
    let o = capped(&ctx, &["create", "--bundle", &b, &id], None).fails();
    if is_husk() {
        let o = o.fails_with(says);
        assert!(o.stderr.contains("config.json"), "names the file: {o}");
        assert_eq!(o.stderr_lines().len(), 1, "one line: {o}");
        assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
    }
    ctx.assert_nothing_left(&id, &mounts);
    host.assert_unchanged();
    ctx.assert_no_leaks(&before);
}

#[test]
fn config_json_that_is_dev_zero_is_refused() {
    config_refused("zero", "not a regular file but a character device");
}

#[test]
fn config_json_that_is_a_fifo_is_refused() {
    if !is_husk() {
        return; // runc opens it and waits for a writer
    }
    config_refused("fifo", "not a regular file but a fifo");
}

#[test]
fn config_json_over_16_mib_is_refused() {
    config_refused("big", "larger (16777217 bytes) than the 16 MiB husk reads as JSON");
}

#[test]
fn config_json_that_is_a_directory_is_refused() {
    config_refused("dir", "not a regular file but a directory");
}

/// `exec --process` of a hostile file: refused, the container untouched.
#[test]
fn process_json_that_is_not_a_regular_file_is_refused() {
    let mut ctx = Ctx::new("hostile-pjson");
    let (id, pid) = ctx.running("exec sleep 1000");
    let before = ctx.audit();
    let host = HostSnapshot::take(&ctx);
    let zero = ctx.dir.join("zero.json");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let fifo = ctx.dir.join("fifo.json");
    mkfifo(&fifo);
    let big = ctx.dir.join("big.json");
    oversized(&big);
    let mut cases = vec![(zero, "not a regular file but a character device"), (big, "than the 16 MiB husk reads")];
    if is_husk() {
        cases.push((fifo, "not a regular file but a fifo"));
    }
    for (file, says) in cases {
        let t = Instant::now();
        let o = capped(&ctx, &["exec", "--process", file.to_str().unwrap(), &id], None).fails();
        if is_husk() {
            let o = o.fails_with(says);
            assert!(o.stderr.contains("--process"), "names the flag: {o}");
            assert_eq!(o.stderr_lines().len(), 1, "one line: {o}");
            assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
        }
    }
    assert_eq!(ctx.state(&id)["pid"].as_u64(), Some(pid as u64));
    assert_eq!(ctx.status(&id), "running");
    host.assert_unchanged();
    ctx.assert_no_leaks(&before);
}

/// `update -r FILE` and `update -r -` with hostile input: refused quickly, the limits unchanged.
#[test]
fn update_resources_from_hostile_input_are_refused() {
    let mut ctx = Ctx::new("hostile-update");
    ctx.config["linux"]["resources"] = json!({"pids": {"limit": 50}});
    let (id, _) = ctx.running("exec sleep 1000");
    let before = ctx.audit();
    let host = HostSnapshot::take(&ctx);
    let zero = ctx.dir.join("zero.json");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let fifo = ctx.dir.join("fifo.json");
    mkfifo(&fifo);
    let mut files = vec![(zero.clone(), "not a regular file but a character device")];
    if is_husk() {
        files.push((fifo, "not a regular file but a fifo"));
    }
    for (file, says) in files {
        let o = capped(&ctx, &["update", "-r", file.to_str().unwrap(), &id], None).fails();
        if is_husk() {
            o.fails_with(says).fails_with("--resources");
        }
    }
    // `-r -` from /dev/zero: the first byte is no JSON.
    let o = capped(&ctx, &["update", "-r", "-", &id], Some(fs::File::open("/dev/zero").unwrap().into())).fails();
    if is_husk() {
        o.fails_with("byte 0x00 at offset 0");
    }
    // `-r -` fed spaces without end: the bound stops it (runc would read on).
    if is_husk() {
        let (r, mut w) = std::os::unix::net::UnixStream::pair().unwrap();
        let feeder = std::thread::spawn(move || {
            let spaces = [b' '; 65536];
            while w.write_all(&spaces).is_ok() {}
        });
        let t = Instant::now();
        let o = capped(&ctx, &["update", "-r", "-", &id], Some(std::os::fd::OwnedFd::from(r).into()));
        feeder.join().unwrap();
        o.fails_with("larger than the 16 MiB husk reads as JSON");
        assert!(t.elapsed() < Duration::from_secs(10), "took {:?}", t.elapsed());
    }
    let pids = Ctx::cgroup_dirs(&id).into_iter().map(|d| d.join("pids.max")).find(|p| p.exists()).unwrap();
    assert_eq!(fs::read_to_string(&pids).unwrap().trim(), "50", "the limit moved");
    host.assert_unchanged();
    ctx.assert_no_leaks(&before);
}

/// A `--root` whose state file is a fifo or /dev/zero (a root the caller points anywhere):
/// `state`, `list` and `delete` answer quickly instead of waiting or reading without end.
#[test]
fn state_file_that_is_not_a_regular_file_never_hangs() {
    if !is_husk() {
        return; // runc opens the fifo and waits
    }
    let ctx = Ctx::new("hostile-statefile");
    let host = HostSnapshot::take(&ctx);
    for (id, what) in [("fifo-state", "fifo"), ("zero-state", "zero")] {
        let dir = ctx.root.join(id);
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("state.json");
        match what {
            "fifo" => mkfifo(&file),
            _ => std::os::unix::fs::symlink("/dev/zero", &file).unwrap(),
        }
        for args in [vec!["state", id], vec!["delete", id]] {
            let t = Instant::now();
            capped(&ctx, &args, None).fails();
            assert!(t.elapsed() < Duration::from_secs(5), "{args:?} took {:?}", t.elapsed());
        }
        capped(&ctx, &["list"], None).no_panic();
    }
    host.assert_unchanged();
}

/// `--preserve-fds` beyond the open fds: refused as runc main does ("unable to stat
/// preserved-fd"), before anything is made; 4294967295 wrapped `3 + N` to 2 and closed the
/// container's stderr.
#[test]
fn preserve_fds_beyond_the_open_ones_are_refused() {
    if !is_husk() {
        return; // runc 1.1.5 makes a file object for each of 4294967295 fds
    }
    let mut ctx = Ctx::new("hostile-pfds");
    ctx.sh("echo ran; ls /proc/$$/fd");
    let b = ctx.bundle.to_str().unwrap().to_string();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    for n in ["4294967295", "1", "2147483648"] {
        let id = ctx.id();
        ctx.write_config(&id);
        let before = ctx.audit();
        let host = HostSnapshot::take(&ctx);
        let t = Instant::now();
        let o = capped(&ctx, &["run", "--preserve-fds", n, "--bundle", &b, &id], None).fails();
        let o = o.fails_with(&format!("unable to stat preserved-fd 0 (of {n}): fd 3 is not open"));
        assert!(!o.stdout.contains("ran"), "the container ran: {o}");
        assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
        ctx.assert_nothing_left(&id, &mounts);
        host.assert_unchanged();
        ctx.assert_no_leaks(&before);
    }
    // exec into a running container: the same, and the container goes on.
    let (id, pid) = ctx.running("exec sleep 1000");
    let host = HostSnapshot::take(&ctx);
    let o = capped(&ctx, &["exec", "--preserve-fds", "4294967295", &id, "echo", "ran"], None);
    let o = o.fails_with("unable to stat preserved-fd 0 (of 4294967295): fd 3 is not open");
    assert_eq!(o.code, Some(255), "{o}");
    assert!(!o.stdout.contains("ran"), "{o}");
    assert_eq!(ctx.state(&id)["pid"].as_u64(), Some(pid as u64));
    host.assert_unchanged();
}

/// Environment entries without `=` or with an empty name: refused as runc main's init refuses
/// them ("invalid environment variable"), in the config and by `exec -e`; runc does not take
/// the value of `-e A` from its own environment either.
#[test]
fn env_entries_without_a_name_value_are_refused() {
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    for (env, field, why) in [
        (json!(["PATH=/bin", "A"]), "process.env[1]", "missing '='"),
        (json!(["=x", "PATH=/bin"]), "process.env[0]", "name cannot be empty"),
    ] {
        let mut ctx = Ctx::new("hostile-env");
        ctx.sh("echo ran");
        ctx.config["process"]["env"] = env;
        let id = ctx.id();
        let before = ctx.audit();
        let host = HostSnapshot::take(&ctx);
        let o = ctx.run(&id).fails();
        assert!(!o.stdout.contains("ran"), "{o}");
        if is_husk() {
            o.fails_with(field).fails_with(why);
        }
        ctx.assert_nothing_left(&id, &mounts);
        host.assert_unchanged();
        ctx.assert_no_leaks(&before);
    }
    let mut ctx = Ctx::new("hostile-exec-env");
    let (id, _) = ctx.running("exec sleep 1000");
    let host = HostSnapshot::take(&ctx);
    for (flag, why) in [("A", "missing '='"), ("=x", "name cannot be empty")] {
        let mut c = ctx.cmd();
        // A in runc's own environment: still refused, not taken from there.
        c.env("A", "from-the-runtime").args(["exec", "-e", flag, &id, "sh", "-c", "echo ran A=$A"]);
        let o = ctx.exec(c).fails();
        assert!(!o.stdout.contains("ran"), "exec -e {flag} ran: {o}");
        if is_husk() {
            // (the text log escapes the quotes around the value)
            let o = o.fails_with("--env").fails_with(why);
            assert_eq!(o.code, Some(255), "{o}");
        }
    }
    assert_eq!(ctx.status(&id), "running");
    host.assert_unchanged();
}

/// `checkpoint --parent-path` that leaves the directory holding the image path: refused before
/// CRIU is asked, nothing made. runc takes any relative path to a directory (husk differs, see
/// README).
#[test]
fn checkpoint_parent_path_that_escapes_is_refused() {
    if !is_husk() {
        return;
    }
    let mut ctx = Ctx::new("hostile-ckpt-parent");
    let (id, pid) = ctx.running("exec sleep 1000");
    let before = ctx.audit();
    let host = HostSnapshot::take(&ctx);
    let images = ctx.dir.join("ckpt");
    fs::create_dir(&images).unwrap();
    let img = images.join("img");
    for parent in ["../../..", "../../../../../../..", "..", "."] {
        let o = ctx
            .husk(&["checkpoint", "--image-path", img.to_str().unwrap(), "--parent-path", parent, &id])
            .fails_with("not beside the image directory");
        assert!(o.stderr.contains(&format!("--parent-path {parent}")), "{o}");
        assert!(!img.exists(), "the image directory was made: {o}");
    }
    // Absolute: refused as runc refuses it.
    ctx.husk(&["checkpoint", "--image-path", img.to_str().unwrap(), "--parent-path", "/", &id])
        .fails_with("must be relative");
    assert_eq!(ctx.state(&id)["pid"].as_u64(), Some(pid as u64));
    assert_eq!(ctx.status(&id), "running");
    host.assert_unchanged();
    ctx.assert_no_leaks(&before);
}
