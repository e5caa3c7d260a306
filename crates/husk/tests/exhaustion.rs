//! Resources running out: a pids limit of 1, `--root` on a full filesystem, a read-only rootfs,
//! a tiny RLIMIT_NOFILE in the caller, a cgroup that cannot be made. Each gives a clear one-line
//! error (or works), with no panic, no partial container and a clean leak audit. Nothing here
//! touches the host beyond the test's own dir: tmpfs and bind mounts are made inside it (and
//! unmounted by a guard), rlimits are set on the husk child only.
mod common;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::json;

/// A mount made by a test inside its own dir, unmounted (lazily, whatever happened) on drop.
struct MountGuard(PathBuf);

impl MountGuard {
    fn new(args: &[&str], target: &Path) -> MountGuard {
        fs::create_dir_all(target).unwrap();
        let st = status(Command::new("mount").args(args).arg(target));
        assert!(st.success(), "mount {args:?} {}", target.display());
        MountGuard(target.to_path_buf())
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        status(Command::new("umount").arg("-l").arg(&self.0));
    }
}

#[track_caller]
fn one_line(o: &Out) {
    assert_eq!(o.stderr_lines().len(), 1, "the error is one line: {o}");
}

/// A create that must fail: one line that mentions `what`, and nothing left.
#[track_caller]
fn fails_cleanly(ctx: &Ctx, o: Out, what: &str, before: &audit::Snapshot) -> Out {
    let o = o.fails_with(what);
    one_line(&o);
    ctx.assert_no_leaks(before);
    o
}

#[test]
fn pids_limit_of_one() {
    let mut ctx = Ctx::new("pids1");
    ctx.config["linux"]["resources"]["pids"] = json!({"limit": 1});
    // The init is the one process allowed: it runs, but cannot fork.
    ctx.sh("echo start; true | true; echo forked");
    let id = ctx.id();
    let before = ctx.audit();
    let o = ctx.run(&id).no_panic();
    assert!(o.stdout.contains("start") && !o.stdout.contains("forked"), "{o}");
    assert_ne!(o.code, Some(0), "the shell could not fork: {o}");
    ctx.assert_no_leaks(&before);
    // A createContainer hook is forked by the init inside the container's cgroup: refused.
    ctx.sh("true");
    ctx.config["hooks"] = json!({"createContainer": [{"path": "/bin/true"}]});
    let id = ctx.id();
    let before = ctx.audit();
    let o = ctx.create(&id);
    let o = fails_cleanly(&ctx, o, "createContainer", &before);
    if is_husk() {
        assert!(o.stderr.contains("resource temporarily unavailable"), "{o}");
    }
}

/// `--root` on a tmpfs that is full (no space for state.json) or out of inodes (no mkdir).
#[test]
fn state_root_on_a_full_filesystem() {
    let mut ctx = Ctx::new("fullroot");
    ctx.sh("true");
    for (opts, fill) in [("size=64k,nr_inodes=64", true), ("size=1m,nr_inodes=2", false)] {
        let mnt = ctx.dir.join(format!("full-{}", opts.len()));
        let _guard = MountGuard::new(&["-t", "tmpfs", "-o", opts, "tmpfs"], &mnt);
        let root = mnt.join("root");
        fs::create_dir_all(&root).unwrap();
        if fill {
            // Fill the data blocks; inodes are left.
            status(
                Command::new("dd")
                    .args(["if=/dev/zero", "bs=4k", "count=1000"])
                    .arg(format!("of={}", mnt.join("fill").display()))
                    .stderr(std::process::Stdio::null()),
            );
        }
        let id = ctx.id();
        let mut scope = ctx.audit_scope();
        scope.roots.push(root.clone());
        let before = audit::Snapshot::take(&scope);
        ctx.write_config(&id);
        let mut c = Command::new(bin());
        c.arg("--root").arg(&root).args(["run", "--bundle", ctx.bundle.to_str().unwrap(), &id]);
        c.current_dir(&ctx.dir).stdin(std::process::Stdio::null());
        let o = ctx.exec(c).fails_with("no space left on device");
        one_line(&o);
        if is_husk() {
            assert!(o.stderr.contains(root.to_str().unwrap()), "the error names the path: {o}");
        }
        let leaks = audit::wait_clean(&scope, &before, std::time::Duration::from_secs(5));
        assert!(leaks.is_empty(), "{opts}: left behind: {leaks:?}");
    }
}

/// A --pid-file on a full filesystem fails create, and the created container goes with it.
#[test]
fn pid_file_on_a_full_filesystem() {
    let mut ctx = Ctx::new("fullpid");
    ctx.sh("exec sleep 100");
    let mnt = ctx.dir.join("full");
    let _guard = MountGuard::new(&["-t", "tmpfs", "-o", "size=4k,nr_inodes=3", "tmpfs"], &mnt);
    let _ = fs::write(mnt.join("a"), "x");
    let _ = fs::write(mnt.join("b"), "x");
    let id = ctx.id();
    let before = ctx.audit();
    let pid_file = mnt.join("init.pid");
    let o = ctx.create_with(&id, &["--pid-file", pid_file.to_str().unwrap()]);
    let o = fails_cleanly(&ctx, o, "no space left on device", &before);
    if is_husk() {
        assert!(o.stderr.contains("--pid-file"), "{o}");
    }
    assert!(!pid_file.exists());
}

/// The rootfs on a read-only filesystem: what needs no new files runs; a mount point or cwd that
/// must be made fails naming the field.
#[test]
fn read_only_rootfs() {
    let mut ctx = Ctx::new("rorootfs");
    let rootfs = ctx.rootfs();
    let rootfs_s = rootfs.to_str().unwrap().to_string();
    let _bind = MountGuard::new(&["--bind", &rootfs_s], &rootfs);
    let st = status(Command::new("mount").args(["-o", "remount,bind,ro", &rootfs_s]));
    assert!(st.success());
    assert!(fs::write(rootfs.join("probe"), "x").is_err(), "the rootfs is read-only");
    ctx.config["root"]["readonly"] = json!(false);
    assert_eq!(ctx.run_sh("echo ran"), "ran\n");

    let i = ctx.config["mounts"].as_array().unwrap().len();
    ctx.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/newdir", "type": "tmpfs", "source": "tmpfs"}));
    let id = ctx.id();
    let before = ctx.audit();
    let o = ctx.create(&id);
    let o = fails_cleanly(&ctx, o, "read-only file system", &before);
    if is_husk() {
        assert!(o.stderr.contains(&format!("mounts[{i}]")), "{o}");
    }
    ctx.config["mounts"].as_array_mut().unwrap().pop();

    ctx.config["process"]["cwd"] = json!("/no/such/cwd");
    let id = ctx.id();
    let before = ctx.audit();
    let o = ctx.create(&id);
    let o = fails_cleanly(&ctx, o, "read-only file system", &before);
    if is_husk() {
        assert!(o.stderr.contains("process.cwd"), "{o}");
    }
}

/// husk started with RLIMIT_NOFILE from 4 to 24: each run works or fails with a one-line
/// error; never a panic or a partial container.
#[test]
fn tiny_nofile_limit_of_the_caller() {
    let mut ctx = Ctx::new("nofile");
    ctx.sh("echo ok");
    let mut first_ok = None;
    for limit in 4..=24u64 {
        let id = ctx.id();
        let before = ctx.audit();
        ctx.write_config(&id);
        let mut c = ctx.cmd();
        c.args(["run", "--bundle", ctx.bundle.to_str().unwrap(), &id]);
        // SAFETY: setrlimit is async-signal-safe; it runs in the child between fork and exec.
        unsafe {
            c.pre_exec(move || {
                let r = libc::rlimit { rlim_cur: limit, rlim_max: 20000 };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let o = ctx.exec(c).no_panic();
        if o.success() {
            assert_eq!(o.stdout, "ok\n", "limit {limit}: {o}");
            first_ok.get_or_insert(limit);
        } else {
            assert!(o.code.is_some(), "limit {limit}: killed by a signal: {o}");
            assert_eq!(o.stderr_lines().len(), 1, "limit {limit}: one line: {o}");
            assert!(o.stderr.contains("too many open files"), "limit {limit}: {o}");
            assert!(first_ok.is_none(), "limit {limit} failed after {first_ok:?} worked: {o}");
        }
        ctx.assert_no_leaks(&before);
    }
    let first_ok = first_ok.expect("a run works with 24 fds");
    eprintln!("nofile: runs work from RLIMIT_NOFILE={first_ok}");
}

/// A cgroup that cannot be made: a path through a file (`cgroup.procs` of the cgroup just made:
/// the first hierarchy fails half way), and a v2 parent that allows no more descendants (the last hierarchy fails after the
/// v1 ones were made: they must all go).
#[test]
fn cgroup_cannot_be_created() {
    let mut ctx = Ctx::new("nocgroup");
    ctx.sh("true");
    let id = ctx.id();
    ctx.config["linux"]["cgroupsPath"] = json!(format!("/{CGROUP_PARENT}/{id}/cgroup.procs/x"));
    let before = ctx.audit();
    let o = ctx.run(&id);
    fails_cleanly(&ctx, o, "not a directory", &before);

    let unified = Path::new("/sys/fs/cgroup/unified");
    if !unified.join("cgroup.max.descendants").exists() {
        eprintln!("skipped the v2 part: no cgroup2 mount at {}", unified.display());
        return;
    }
    let parent_id = ctx.id();
    let parent = unified.join(CGROUP_PARENT).join(&parent_id);
    fs::create_dir_all(&parent).unwrap();
    fs::write(parent.join("cgroup.max.descendants"), "0").unwrap();
    let id = ctx.id();
    ctx.config["linux"]["cgroupsPath"] = json!(format!("/{CGROUP_PARENT}/{parent_id}/{id}"));
    let before = ctx.audit();
    let o = ctx.run(&id);
    let o = fails_cleanly(&ctx, o, "resource temporarily unavailable", &before);
    if is_husk() {
        assert!(o.stderr.contains(parent.to_str().unwrap()), "the error names the cgroup: {o}");
    }
    fs::remove_dir(&parent).unwrap();
}
