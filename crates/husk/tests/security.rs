//! Regression tests for escapes runtimes have shipped (security.md). All of them are
//! non-destructive: they detect the escape without using it against the host.
mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::path::Path;

/// Remove the default /dev tmpfs so the rootfs's own /dev is used.
fn no_dev_tmpfs(ctx: &mut Ctx) {
    ctx.config["mounts"].as_array_mut().unwrap().retain(|m| m["destination"] != "/dev");
}

#[test]
fn dev_null_symlink_does_not_unmask() {
    // CVE-2025-31133: the image's /dev/null is a symlink into /proc; masking /proc/timer_list by
    // bind-mounting "/dev/null" would then expose that procfs file there. The masked path must be
    // the 1:3 character device (or create must fail).
    //
    // runc 1.1 differs: 1.1.5 is vulnerable (the masked path becomes the procfs file).
    //
    // SAFETY OF THE TEST: the real attack points /dev/null at /proc/sys/kernel/core_pattern, and a
    // vulnerable runtime (runc 1.1.5 here) then writes the container's output into the *host's*
    // core_pattern. We point it at /proc/sys/kernel/domainname instead: it is per UTS namespace
    // (the container has its own), so a vulnerable runtime only scribbles on the container's.
    let mut ctx = Ctx::new("devnullsym");
    let ns = ctx.config["linux"]["namespaces"].as_array().unwrap();
    assert!(ns.iter().any(|n| n["type"] == "uts"), "this test needs its own UTS namespace");
    no_dev_tmpfs(&mut ctx);
    let _ = fs::remove_file(ctx.rootfs().join("dev/null"));
    std::os::unix::fs::symlink("/proc/sys/kernel/domainname", ctx.rootfs().join("dev/null")).unwrap();
    let host_core = fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let host_domain = fs::read_to_string("/proc/sys/kernel/domainname").unwrap();
    ctx.sh("stat -c '%F %t:%T' /proc/timer_list; head -c 100 /proc/timer_list | wc -c");
    let id = ctx.id();
    let o = ctx.run(&id).no_panic();
    assert_eq!(fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(), host_core);
    assert_eq!(fs::read_to_string("/proc/sys/kernel/domainname").unwrap(), host_domain);
    if o.success() {
        assert_eq!(o.stdout, "character special file 1:3\n0\n", "masked path is not /dev/null: {o}");
    }
}

#[test]
fn proc_symlink_stays_inside() {
    // CVE-2019-16884 family: the image makes /proc a symlink to a host path. Nothing may be created
    // or mounted there; husk refuses such a rootfs.
    let mut ctx = Ctx::new("procsym");
    let host = ctx.dir.join("fakeproc");
    fs::remove_dir(ctx.rootfs().join("proc")).unwrap();
    std::os::unix::fs::symlink(&host, ctx.rootfs().join("proc")).unwrap();
    let before = fs::read_to_string("/proc/self/mountinfo").unwrap();
    ctx.sh("true");
    let id = ctx.id();
    let o = ctx.run(&id).no_panic();
    assert!(!host.exists(), "the runtime created {} on the host: {o}", host.display());
    let after = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let new: Vec<&str> = after.lines().filter(|l| l.contains("fakeproc") && !before.contains(l)).collect();
    assert!(new.is_empty(), "{new:?}");
    if is_husk() {
        assert!(!o.success(), "husk refuses a symlinked /proc: {o}");
    }
}

#[test]
fn dev_symlink_stays_inside() {
    // CVE-2026-41579: the image's /dev is a symlink to a host path; device setup must not write there.
    // runc 1.1 differs: 1.1.5 follows the link and makes its /dev symlinks (fd, stdin, ptmx...) in
    // the host dir (harmless here: the host dir is the test's temp dir).
    let mut ctx = Ctx::new("devsym");
    no_dev_tmpfs(&mut ctx);
    let host = ctx.dir.join("hostdev");
    fs::create_dir_all(&host).unwrap();
    fs::remove_dir_all(ctx.rootfs().join("dev")).unwrap();
    std::os::unix::fs::symlink(&host, ctx.rootfs().join("dev")).unwrap();
    ctx.config["mounts"].as_array_mut().unwrap().retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
    ctx.sh("ls /dev >/dev/null; true");
    let id = ctx.id();
    let o = ctx.run(&id).no_panic();
    let entries: Vec<_> = fs::read_dir(&host).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(entries.is_empty(), "the runtime wrote {entries:?} into the host dir: {o}");
}

#[test]
fn cgroupfs_read_only() {
    // CVE-2023-25809 family: the container must not be able to make cgroups on the host.
    let mut ctx = Ctx::new("cgro");
    let id = ctx.id();
    ctx.write_config(&id);
    ctx.sh("for c in pids memory; do mkdir /sys/fs/cgroup/$c/husk-escape 2>/dev/null && echo MADE-$c; done; true");
    let o = ctx.run(&id).ok();
    assert_eq!(o.stdout, "");
    for c in ["pids", "memory"] {
        for base in
            [format!("/sys/fs/cgroup/{c}/husk-escape"), format!("/sys/fs/cgroup/{c}/{CGROUP_PARENT}/{id}/husk-escape")]
        {
            assert!(!Path::new(&base).exists(), "{base}");
        }
    }
}

#[test]
fn cwd_symlink_to_host_stays_inside() {
    // process.cwd through a symlink in the rootfs that points at a host path.
    let mut ctx = Ctx::new("cwdsym");
    let host = ctx.dir.join("hostcwd");
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("host-marker"), "").unwrap();
    std::os::unix::fs::symlink(&host, ctx.rootfs().join("cwdlink")).unwrap();
    ctx.config["root"]["readonly"] = json!(false);
    ctx.config["process"]["cwd"] = json!("/cwdlink");
    ctx.sh("ls; true");
    let id = ctx.id();
    let o = ctx.run(&id).no_panic();
    assert!(!o.stdout.contains("host-marker"), "the process started in a host dir: {o}");
}

#[test]
fn container_cannot_see_host_processes_or_files() {
    let mut ctx = Ctx::new("isolation");
    fs::write(ctx.dir.join("host-only-file"), "").unwrap();
    let out = ctx.run_sh("ls /proc | grep -c '^[0-9]'; find / -xdev -name host-only-file 2>/dev/null | wc -l");
    let l: Vec<u32> = out.lines().map(|s| s.trim().parse().unwrap()).collect();
    assert!(l[0] <= 4, "sees {} pids", l[0]);
    assert_eq!(l[1], 0);
}
