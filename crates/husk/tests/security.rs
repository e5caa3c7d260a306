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

/// A pids cgroup owned by the rootless test user, as a delegation would give it; removed on drop.
struct DelegatedCgroup(std::path::PathBuf);

impl Drop for DelegatedCgroup {
    fn drop(&mut self) {
        for d in common::rootless::subdirs_deepest_first(&self.0) {
            let _ = fs::remove_dir(d);
        }
    }
}

#[test]
fn cgroupfs_read_only_rootless() {
    // CVE-2023-25809: rootless without a cgroup namespace, runc bound the host's cgroupfs
    // writable, so a container could write to a cgroup its user owns (a delegated one). Here the
    // runtime runs, as the test user, inside a pids cgroup that user owns, and the config's
    // cgroup mount even lacks "ro": nothing under /sys/fs/cgroup may be writable.
    // How we know it catches the bug: husk with the forced read-only undone (cgroupfs.rs, by
    // hand) fails it (MADE-/sys/fs/cgroup/pids).
    // runc 1.1 differs: 1.1.5 fixed this only for cgroup v2; on this v1 host its tmpfs and the
    // bound pids cgroup stay writable (MADE-/sys/fs/cgroup/pids).
    let pids = Path::new("/sys/fs/cgroup/pids");
    if !pids.join("cgroup.procs").exists() {
        eprintln!("no v1 pids hierarchy: skipping");
        return;
    }
    let mut ctx = Ctx::rootless("cgrorl");
    let u = ctx.user.clone().unwrap();
    let own = DelegatedCgroup(pids.join(CGROUP_PARENT).join(format!("rootless-{}", std::process::id())));
    fs::create_dir_all(&own.0).unwrap();
    common::rootless::chown_to(&own.0, &u);
    for m in ctx.config["mounts"].as_array_mut().unwrap() {
        if m["type"] == "cgroup" {
            m["options"] = json!(["nosuid", "noexec", "nodev", "relatime"]);
        }
    }
    ctx.sh("for d in /sys/fs/cgroup /sys/fs/cgroup/*; do mkdir $d/husk-escape 2>/dev/null && echo MADE-$d; \
         echo 1 > $d/husk-file 2>/dev/null && echo WROTE-$d; done; true");
    let id = ctx.id();
    ctx.write_config(&id);
    let mut c = std::process::Command::new("sh");
    let script = r#"u=$1 g=$2; shift 2; echo $$ > "$0/cgroup.procs" && exec setpriv --reuid "$u" --regid "$g" --clear-groups "$@""#;
    c.args(["-c", script]);
    c.arg(&own.0).arg(u.uid.to_string()).arg(u.gid.to_string());
    c.arg(bin()).arg("--root").arg(&ctx.root).args(["run", "--bundle"]).arg(&ctx.bundle).arg(&id);
    common::rootless::user_env(&mut c, &u, &ctx.dir);
    c.current_dir(&ctx.dir).stdin(std::process::Stdio::null());
    let o = ctx.exec(c).ok();
    assert_eq!(o.stdout, "", "{o}");
    assert!(!own.0.join("husk-escape").exists() && !own.0.join("husk-file").exists());
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

/// A helper that keeps swapping two paths with renameat2(RENAME_EXCHANGE), as a process in
/// another container sharing the volume would; stopped (and its swap count returned) by `stop`.
struct Swapper {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl Swapper {
    fn start(a: &Path, b: &Path) -> Swapper {
        use std::os::unix::ffi::OsStrExt;
        let a = std::ffi::CString::new(a.as_os_str().as_bytes()).unwrap();
        let b = std::ffi::CString::new(b.as_os_str().as_bytes()).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut n = 0u64;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                // SAFETY: two NUL-terminated paths that live across the call.
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_renameat2,
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                assert_eq!(r, 0, "renameat2: {}", std::io::Error::last_os_error());
                n += 1;
            }
            n
        });
        Swapper { stop, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

const RACE_RUNS: usize = 40;

#[test]
fn mount_destination_swapped_for_a_symlink_never_mounts_outside() {
    // CVE-2021-30465: two containers share a volume; the other one keeps exchanging the
    // destination directory of our bind mount with a symlink to a host path. A runtime that
    // resolves the destination to a path and then calls mount(2) on that path can follow the
    // symlink and mount onto the host path. husk resolves it inside the rootfs by fd and mounts
    // onto that fd.
    //
    // The escape is seen by a createContainer hook: it runs in the container's mount namespace
    // before pivot_root, where the host path is visible, and reports a marker found there.
    // How we know the test catches the bug: with husk's mount onto the fd replaced by
    // mount(2) on the path (rootfs + destination, symlinks followed), several of the 40 runs
    // report the marker on the host path.
    let mut ctx = Ctx::new("cve30465");
    let vol = ctx.dir.join("vol");
    let host = ctx.dir.join("hostside");
    let marker = ctx.dir.join("marker");
    let report = ctx.dir.join("report");
    for d in [vol.join("dst"), host.clone(), marker.clone()] {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(marker.join("MARKER"), "").unwrap();
    std::os::unix::fs::symlink(&host, vol.join("sw")).unwrap();
    let mounts = ctx.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/vol", "type": "bind", "source": vol, "options": ["rbind"]}));
    mounts.push(json!({"destination": "/vol/dst", "type": "bind", "source": marker, "options": ["bind"]}));
    let check = format!("test -e {}/MARKER && echo escaped >> {}; true", host.display(), report.display());
    ctx.config["hooks"] = json!({"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", check]}]});
    let swapper = Swapper::start(&vol.join("dst"), &vol.join("sw"));
    let mut started = 0;
    for _ in 0..RACE_RUNS {
        let id = ctx.id();
        started += ctx.run(&id).no_panic().success() as usize;
    }
    let swaps = swapper.stop();
    assert!(swaps > 0);
    assert!(!report.exists(), "a mount landed on the host path: {}", fs::read_to_string(&report).unwrap());
    assert_eq!(fs::read_dir(&host).unwrap().count(), 0, "the host dir was written to");
    eprintln!("{started}/{RACE_RUNS} runs started during {swaps} swaps");
}

#[test]
fn mount_point_creation_racing_a_symlink_stays_inside() {
    // CVE-2024-45310: while the runtime creates a mount point inside a shared volume, the other
    // container swaps a directory on the way for a symlink to a host directory; a runtime that
    // creates the missing directories by path follows it and makes them on the host. husk makes
    // them with mkdirat in directory fds resolved inside the rootfs.
    //
    // How we know the test catches the bug: runc 1.1.5 has it (fixed in 1.1.14), and against it
    // (HUSK_BIN=/usr/sbin/runc) this test finds `newdir` created in the host directory. Harmless
    // to the host: the directory is the test's own.
    // runc 1.1 differs: vulnerable, see above.
    let mut ctx = Ctx::new("cve45310");
    let vol = ctx.dir.join("vol");
    let host = ctx.dir.join("hostdir");
    fs::create_dir_all(vol.join("sw")).unwrap();
    fs::create_dir_all(&host).unwrap();
    std::os::unix::fs::symlink(&host, vol.join("lnk")).unwrap();
    ctx.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/vol", "type": "bind", "source": vol, "options": ["rbind"]
    }));
    let base = ctx.config.clone();
    let swapper = Swapper::start(&vol.join("sw"), &vol.join("lnk"));
    for i in 0..RACE_RUNS {
        // A new mount point each run (cleaning up while the swapper runs could itself follow
        // the symlink).
        ctx.config = base.clone();
        ctx.config["mounts"].as_array_mut().unwrap().push(json!({
            "destination": format!("/vol/sw/newdir{i}/deeper"), "type": "tmpfs", "source": "tmpfs"
        }));
        let id = ctx.id();
        ctx.run(&id).no_panic();
    }
    let swaps = swapper.stop();
    assert!(swaps > 0);
    let made: Vec<_> = fs::read_dir(&host).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(made.is_empty(), "the runtime created {made:?} in the host directory");
}

#[test]
fn dev_console_symlink_is_not_followed() {
    // CVE-2025-52565: the pty is bind-mounted onto /dev/console; if that is a symlink in the
    // image, a runtime that mounts by path puts the pty over the symlink's target, typically a
    // procfs file it meant to mask or make read-only. husk binds from the pty fd itself onto
    // /dev/console opened without following it.
    //
    // SAFETY OF THE TEST: the target is /proc/sys/kernel/domainname, which is per UTS namespace.
    // How we know the test catches the bug: runc 1.1.5 has it, and against it this test finds
    // the pty mounted over domainname ("character special file").
    // runc 1.1 differs: vulnerable, see above.
    let mut ctx = Ctx::new("cve52565");
    no_dev_tmpfs(&mut ctx);
    let _ = fs::remove_file(ctx.rootfs().join("dev/console"));
    std::os::unix::fs::symlink("/proc/sys/kernel/domainname", ctx.rootfs().join("dev/console")).unwrap();
    let out = ctx.dir.join("out");
    fs::create_dir_all(&out).unwrap();
    ctx.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/out", "type": "bind", "source": out, "options": ["bind"]}));
    ctx.config["process"]["terminal"] = json!(true);
    ctx.sh("{ stat -c '%F' /proc/sys/kernel/domainname; stat -L -c '%F %t' /dev/console; } >/out/r 2>&1");
    let sock = ctx.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let th = std::thread::spawn(move || recv_fd(listener));
    let id = ctx.id();
    let o = ctx.create_with(&id, &["--console-socket", sock.to_str().unwrap()]).no_panic();
    let _master = th.join().unwrap();
    if !o.success() {
        return; // refusing such an image is safe too
    }
    ctx.husk(&["start", &id]).ok();
    let done = wait_for(10, || fs::read_to_string(out.join("r")).is_ok_and(|r| r.lines().count() >= 2));
    assert!(done, "no report: {:?} {}", fs::read_to_string(out.join("r")), ctx.husk(&["state", &id]));
    let r = fs::read_to_string(out.join("r")).unwrap();
    let l: Vec<&str> = r.lines().collect();
    assert_eq!(l[0], "regular empty file", "the pty was mounted over the symlink's target: {r}");
    assert_eq!(l[1], "character special file 88", "/dev/console is the pty (major 136 = 0x88): {r}");
}

#[test]
fn sysctl_write_through_a_planted_symlink_stays_on_its_file() {
    // CVE-2025-52881: a volume over part of /proc/sys holds a symlink where the sysctl's file
    // should be, pointing at another procfs file; a runtime that writes /proc/sys/<key> in the
    // container's /proc writes the value there. husk writes sysctls through its own procfs
    // (mounted by husk, walked without symlinks or mount crossings), which no volume covers.
    //
    // SAFETY OF THE TEST: the other file is /proc/sys/kernel/domainname (per UTS namespace).
    // How we know the test catches the bug: with husk's sysctl write replaced by a write to
    // /proc/sys/<key> after pivot_root and before the read-only paths (runc's order), the
    // container reads "1" as its domainname.
    // runc 1.1.5 refuses the volume ("mount destination ... cannot be mounted": /proc is
    // off-limits to it), so it fails create, which is safe.
    let mut ctx = Ctx::new("cve52881");
    let vol = ctx.dir.join("vol");
    fs::create_dir_all(&vol).unwrap();
    std::os::unix::fs::symlink("/proc/sys/kernel/domainname", vol.join("ip_forward")).unwrap();
    ctx.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/proc/sys/net/ipv4", "type": "bind", "source": vol, "options": ["rbind"]
    }));
    ctx.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    ctx.sh("cat /proc/sys/kernel/domainname");
    let id = ctx.id();
    let o = ctx.run(&id).no_panic();
    if o.success() {
        assert_eq!(o.stdout, "(none)\n", "the sysctl value landed in another procfs file");
    }
    assert!(fs::symlink_metadata(vol.join("ip_forward")).unwrap().file_type().is_symlink());
    if is_husk() {
        assert!(o.success(), "{o}");
    }
}

#[test]
fn lying_cap_last_cap_keeps_no_bounding_capability() {
    // Found while writing these tests: husk read /proc/sys/kernel/cap_last_cap in the init after
    // pivot_root, from the container's /proc. A volume over that file saying "10" made it stop
    // dropping bounding capabilities at 10, leaving CAP_SYS_ADMIN and the rest in the bounding
    // set (and CAP_AUDIT_WRITE, 29, out of the others). The kernel is now asked directly
    // (PR_CAPBSET_READ). How we know the test catches it: it fails on the old code.
    let mut ctx = Ctx::new("caplast");
    let liar = ctx.dir.join("cap_last_cap");
    fs::write(&liar, "10\n").unwrap();
    ctx.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/proc/sys/kernel/cap_last_cap", "type": "bind", "source": liar, "options": ["bind"]
    }));
    let id = ctx.id();
    ctx.sh("cat /proc/sys/kernel/cap_last_cap; grep -E '^Cap(Bnd|Eff):' /proc/self/status");
    let o = ctx.run(&id).no_panic();
    if !o.success() {
        return; // refusing the volume is safe too (runc 1.1.5 refuses mounts under /proc)
    }
    let want: Vec<String> = ctx.config["process"]["capabilities"]["bounding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let want = caps_mask(&want.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.stdout, format!("10\nCapEff:\t{want:016x}\nCapBnd:\t{want:016x}\n"), "{o}");
}
