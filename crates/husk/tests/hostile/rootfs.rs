//! Hostile rootfs layouts: symlinked /proc, /dev, /dev/console, mount destinations through symlinks, a swapped rootfs.

use std::fs;
use std::time::Duration;

use serde_json::json;

use crate::common::*;
use crate::host::HostSnapshot;

/// Every refusal here comes well within this: a hang is a failure (run_cmd panics after it).
const DEADLINE: Duration = Duration::from_secs(20);

/// `run` of `id` that must fail: within the deadline, one line (husk) containing every `want`
/// (husk; any runtime must fail), nothing left behind, the host unchanged.
#[track_caller]
fn refused(ctx: &Ctx, id: &str, want: &[&str]) -> Out {
    let mounts_before = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let audit = ctx.audit();
    let snap = HostSnapshot::take(ctx);
    ctx.write_config(id);
    let mut c = ctx.cmd();
    c.args(["run", "--bundle", ctx.bundle.to_str().unwrap(), id]);
    let o = run_cmd(c, &ctx.dir, DEADLINE).fails();
    if is_husk() {
        assert_eq!(o.stderr_lines().len(), 1, "one line: {o}");
        for w in want {
            assert!(o.stderr.contains(w), "{w:?} missing: {o}");
        }
    }
    ctx.assert_nothing_left(id, &mounts_before);
    ctx.assert_no_leaks(&audit);
    snap.assert_unchanged();
    o
}

/// issue 19.8: `root.path` with a symlink in it is refused however it is spelled: `link/.` used
/// to pass the check (lstat follows a link before `/.`) and then be opened through the link.
/// runc refuses all three too ("invalid rootfs: not an absolute path, or a symlink").
#[test]
fn rootfs_path_with_a_symlink_is_refused() {
    for (n, spelling) in
        ["rootfs-link/.", "rootfs-link", "ABS/rootfs-link/./", "elsewhere/../rootfs-link/."].iter().enumerate()
    {
        let mut ctx = Ctx::new("hostile-rootlink");
        std::os::unix::fs::symlink("rootfs", ctx.bundle.join("rootfs-link")).unwrap();
        fs::create_dir(ctx.bundle.join("elsewhere")).unwrap();
        let path = spelling.replace("ABS", ctx.bundle.to_str().unwrap());
        ctx.config["root"]["path"] = json!(path);
        ctx.sh("echo RAN");
        let id = ctx.id();
        let o = refused(&ctx, &id, &["root.path", "symlink"]);
        assert!(!o.stdout.contains("RAN"), "case {n} ({path}): the container ran: {o}");
    }
}

/// issue 19.8: the rootfs is opened once; whoever controls a component of the bundle path and
/// swaps it while the container is being made (here a createContainer hook, which runs between
/// the mounts and pivot_root, moving the bundle aside and putting an impostor rootfs, a mount
/// point, at its path) does not get the container moved into the impostor. Before: pivot_root
/// reopened the rootfs by path and entered the impostor, without any of the container's mounts.
#[test]
fn rootfs_swapped_while_creating_is_not_entered() {
    let mut ctx = Ctx::new("hostile-rootswap");
    fs::write(ctx.rootfs().join("marker"), "original\n").unwrap();
    let impostor = ctx.dir.join("impostor");
    let st = status(std::process::Command::new("cp").arg("-a").arg(ctx.rootfs()).arg(&impostor));
    assert!(st.success());
    fs::write(impostor.join("marker"), "impostor\n").unwrap();
    let hook = ctx.dir.join("swap.sh");
    let b = ctx.bundle.display().to_string();
    write_script(
        &hook,
        &format!(
            "#!/bin/sh\nset -e\nmv {b} {b}.orig\nmkdir {b}\nmv {} {b}/rootfs\nmount --bind {b}/rootfs {b}/rootfs\n",
            impostor.display()
        ),
    );
    ctx.config["hooks"] = json!({"createContainer": [{"path": hook}]});
    ctx.sh("cat /marker; test -c /dev/null && echo has-devices");
    let id = ctx.id();
    let before = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let snap = HostSnapshot::take(&ctx);
    ctx.write_config(&id);
    let mut c = ctx.cmd();
    c.args(["run", "--bundle", &b, &id]);
    let o = run_cmd(c, &ctx.dir, DEADLINE).ok();
    assert!(ctx.bundle.join("rootfs/marker").exists(), "the hook did not swap the rootfs: {o}");
    assert_eq!(o.stdout, "original\nhas-devices\n", "the container ran in the swapped-in rootfs: {o}");
    snap.assert_unchanged();
    let after = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let key = ctx.dir.to_str().unwrap();
    let new: Vec<&str> = after.lines().filter(|l| l.contains(key) && !before.contains(l)).collect();
    assert!(new.is_empty(), "host mounts left: {new:?}");
}

/// A rootfs whose /proc (or /sys) is a symlink, dangling or to a directory of the image, is
/// refused in runc's words (runc's "mask paths [prohibit symlink /proc]" test): procfs is never
/// mounted through a link the container's later `/proc` would not follow. Before, husk mounted
/// procfs where an existing link led, and failed a dangling one with ELOOP.
#[test]
fn proc_or_sys_as_a_symlink_is_refused() {
    for (dir, target) in [("proc", "/symlink"), ("proc", "tmp"), ("proc", "/etc"), ("sys", "/symlink"), ("sys", "tmp")]
    {
        let mut ctx = Ctx::new("hostile-procsym");
        let p = ctx.rootfs().join(dir);
        fs::remove_dir(&p).unwrap();
        std::os::unix::fs::symlink(target, &p).unwrap();
        ctx.sh("echo RAN");
        let id = ctx.id();
        let fstype = if dir == "proc" { "proc" } else { "sysfs" };
        let o = refused(&ctx, &id, &["must be mounted on ordinary directory", fstype, "mounts["]);
        assert!(!o.stdout.contains("RAN"), "/{dir} -> {target}: the container ran: {o}");
        assert!(fs::symlink_metadata(&p).unwrap().file_type().is_symlink(), "/{dir} was replaced");
    }
}

/// A mount onto the rootfs's own top would be left underneath the root pivot_root enters (runc
/// refuses it too): refused, naming the mount.
#[test]
fn mount_on_the_top_of_the_rootfs_is_refused() {
    for dest in ["/", "/.", "/tmp/..", "/../.."] {
        let mut ctx = Ctx::new("hostile-mountroot");
        let n = ctx.config["mounts"].as_array().unwrap().len();
        ctx.config["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": dest, "type": "tmpfs", "source": "tmpfs"}));
        ctx.sh("echo RAN");
        let id = ctx.id();
        refused(&ctx, &id, &[&format!("mounts[{n}]"), "top of the rootfs"]);
    }
}

/// An image whose /etc/passwd is a fifo or a symlink to /dev/zero: the init reads it for HOME
/// (the config sets none) without waiting for a writer and within a bound, and HOME falls back
/// to `/`. Before, the init waited on the fifo for ever, or read /dev/zero until its memory ran
/// out (here: 1 GiB of address space).
#[test]
fn passwd_that_is_a_fifo_or_dev_zero_does_not_stall_the_init() {
    use std::os::unix::process::CommandExt;
    if !is_husk() {
        return; // runc main opens the fifo and waits for a writer
    }
    for what in ["fifo", "zero"] {
        let mut ctx = Ctx::new("hostile-passwd");
        ctx.sh("echo HOME=$HOME");
        let passwd = ctx.rootfs().join("etc/passwd");
        let _ = std::fs::remove_file(&passwd);
        if what == "fifo" {
            let c = std::ffi::CString::new(passwd.to_str().unwrap()).unwrap();
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        } else {
            std::os::unix::fs::symlink("/dev/zero", &passwd).unwrap();
        }
        let id = ctx.id();
        ctx.write_config(&id);
        let before = ctx.audit();
        let host = HostSnapshot::take(&ctx);
        let mut c = ctx.cmd();
        c.args(["run", "--bundle", ctx.bundle.to_str().unwrap(), &id]);
        // SAFETY: setrlimit only changes the child's own limits.
        unsafe {
            c.pre_exec(|| {
                let lim = libc::rlimit { rlim_cur: 1 << 30, rlim_max: 1 << 30 };
                libc::setrlimit(libc::RLIMIT_AS, &lim);
                Ok(())
            });
        }
        let o = run_cmd(c, &ctx.dir, std::time::Duration::from_secs(15));
        assert_eq!(o.ok().stdout, "HOME=/\n", "{what}");
        host.assert_unchanged();
        ctx.assert_no_leaks(&before);
    }
}
