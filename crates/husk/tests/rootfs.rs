//! The container's filesystem: mounts, /dev, read-only root, masked and read-only paths, sysctls,
//! devices, --no-pivot, and symlinks in the rootfs that must never lead outside it.
mod common;

use common::*;
use serde_json::json;
use std::fs;

fn add_mount(ctx: &mut Ctx, m: serde_json::Value) {
    ctx.config["mounts"].as_array_mut().unwrap().push(m);
}

/// `destination fstype options` of the mount at `dest` from /proc/self/mounts output.
fn mount_at<'a>(mounts: &'a str, dest: &str) -> Option<(&'a str, &'a str)> {
    mounts.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 4 && f[1] == dest).then(|| (f[2], f[3]))
    })
}

#[test]
fn default_mounts() {
    let mut ctx = Ctx::new("defmounts");
    let out = ctx.run_sh("cat /proc/self/mounts");
    for (dest, ty) in [
        ("/proc", "proc"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
        ("/sys", "sysfs"),
    ] {
        let (fstype, _) = mount_at(&out, dest).unwrap_or_else(|| panic!("no mount at {dest}:\n{out}"));
        assert_eq!(fstype, ty, "{dest}");
    }
    assert!(mount_at(&out, "/sys/fs/cgroup").is_some(), "no /sys/fs/cgroup:\n{out}");
    let (_, opts) = mount_at(&out, "/sys").unwrap();
    assert!(opts.split(',').any(|o| o == "ro"), "/sys is ro: {opts}");
    let (_, opts) = mount_at(&out, "/dev/shm").unwrap();
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(opts.split(',').any(|x| x == o), "/dev/shm has {o}: {opts}");
    }
}

#[test]
fn default_devices() {
    let mut ctx = Ctx::new("defdev");
    let out = ctx.run_sh(
        "for d in null zero full random urandom tty; do test -c /dev/$d && echo c-$d; done; \
         readlink /dev/ptmx; readlink /dev/fd; readlink /dev/stdin; readlink /dev/stdout; readlink /dev/stderr; \
         echo hi > /dev/null && echo null-ok; head -c 4 /dev/zero | wc -c; stat -c %t:%T /dev/null",
    );
    let l: Vec<&str> = out.lines().collect();
    for d in ["null", "zero", "full", "random", "urandom", "tty"] {
        assert!(l.contains(&format!("c-{d}").as_str()), "/dev/{d} is not a char device:\n{out}");
    }
    assert!(l.contains(&"pts/ptmx"), "/dev/ptmx -> pts/ptmx:\n{out}");
    assert!(l.contains(&"/proc/self/fd"), "/dev/fd -> /proc/self/fd:\n{out}");
    assert!(l.contains(&"/proc/self/fd/0") && l.contains(&"/proc/self/fd/1") && l.contains(&"/proc/self/fd/2"));
    assert!(l.contains(&"null-ok"));
    assert!(l.contains(&"4"));
    assert!(l.contains(&"1:3"), "/dev/null is 1:3:\n{out}");
}

#[test]
fn readonly_bind_mount() {
    let mut ctx = Ctx::new("robind");
    let src = ctx.dir.join("hostdata");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("file"), "host content\n").unwrap();
    add_mount(&mut ctx, json!({"destination": "/data", "type": "bind", "source": src, "options": ["rbind", "ro"]}));
    let out = ctx.run_sh("cat /data/file; touch /data/new 2>/dev/null && echo WRITABLE || echo ro-ok");
    assert_eq!(out, "host content\nro-ok\n");
    assert!(!src.join("new").exists());
    // The mount point was made inside the rootfs.
    assert!(ctx.rootfs().join("data").is_dir());
}

#[test]
fn writable_bind_mount() {
    let mut ctx = Ctx::new("rwbind");
    let src = ctx.dir.join("hostrw");
    fs::create_dir_all(&src).unwrap();
    add_mount(&mut ctx, json!({"destination": "/rw", "type": "bind", "source": src, "options": ["rbind", "rw"]}));
    ctx.run_sh("echo written > /rw/out");
    assert_eq!(fs::read_to_string(src.join("out")).unwrap(), "written\n");
}

#[test]
fn bind_mount_file() {
    let mut ctx = Ctx::new("bindfile");
    let src = ctx.dir.join("afile");
    fs::write(&src, "file content\n").unwrap();
    add_mount(&mut ctx, json!({"destination": "/etc/afile", "type": "bind", "source": src, "options": ["bind", "ro"]}));
    assert_eq!(ctx.run_sh("cat /etc/afile"), "file content\n");
}

#[test]
fn tmpfs_mode_wins() {
    // runc 1.1 differs: it applies the underlying directory's mode instead of the tmpfs `mode=`
    // (drop-in.md); husk must honour `mode=700`.
    let mut ctx = Ctx::new("tmpfsmode");
    fs::create_dir_all(ctx.rootfs().join("scratch")).unwrap();
    fs::set_permissions(ctx.rootfs().join("scratch"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    add_mount(
        &mut ctx,
        json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["mode=700"]}),
    );
    add_mount(
        &mut ctx,
        json!({"destination": "/new/deep/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777", "size=1m"]}),
    );
    let out = ctx
        .run_sh("stat -c %a /scratch; stat -c %a /new/deep/tmp; grep ' /scratch ' /proc/self/mounts | cut -d' ' -f3");
    assert_eq!(out, "700\n1777\ntmpfs\n");
}

/// runc's `tmpcopyup` (Podman puts it on --read-only's /tmp, /run, /var/tmp and on --tmpfs): the
/// tmpfs starts with a copy of the directory it covers, owners and modes kept (the directory's
/// own mode too), symlinks copied as symlinks (one pointing out of the rootfs is not followed);
/// writes land in the tmpfs only.
#[test]
fn tmpfs_copyup() {
    let mut ctx = Ctx::new("copyup");
    let data = ctx.rootfs().join("data");
    fs::create_dir_all(data.join("sub")).unwrap();
    fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o750)).unwrap();
    fs::write(data.join("sub/file"), "image\n").unwrap();
    fs::set_permissions(data.join("sub/file"), std::os::unix::fs::PermissionsExt::from_mode(0o604)).unwrap();
    std::os::unix::fs::chown(data.join("sub/file"), Some(1000), Some(1001)).unwrap();
    // Absolute: inside the container /etc/passwd is the image's; a copy that followed the link
    // from the host would have taken the host's.
    std::os::unix::fs::symlink("/etc/passwd", data.join("link")).unwrap();
    add_mount(&mut ctx, json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]}));
    add_mount(&mut ctx, json!({"destination": "/empty", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]}));
    let out = ctx.run_sh(
        "grep ' /data ' /proc/self/mounts | cut -d' ' -f3; cat /data/sub/file; stat -c '%a %u %g' /data/sub/file /data; \
         readlink /data/link; echo new >/data/new; cat /data/new; ls -A /empty | wc -l",
    );
    assert_eq!(out, "tmpfs\nimage\n604 1000 1001\n750 0 0\n/etc/passwd\nnew\n0\n");
    assert!(!data.join("new").exists(), "a write went to the image's directory");

    // Only a tmpfs can be copied up into.
    ctx.config["mounts"].as_array_mut().unwrap().pop();
    add_mount(&mut ctx, json!({"destination": "/proc2", "type": "proc", "source": "proc", "options": ["tmpcopyup"]}));
    ctx.sh("true");
    let id = ctx.id();
    let r = ctx.run(&id);
    // runc 1.1 differs: it ignores tmpcopyup on anything but a tmpfs.
    if is_husk() {
        assert!(!r.success());
        assert!(r.stderr.contains("tmpcopyup") && r.stderr.contains("mounts["), "{r}");
    }
}

#[test]
fn readonly_root() {
    let mut ctx = Ctx::new("roroot");
    ctx.config["root"]["readonly"] = json!(true);
    let out = ctx.run_sh("touch /newfile 2>/dev/null && echo WRITABLE || echo ro-ok; touch /dev/shm/x && echo shm-ok");
    assert_eq!(out, "ro-ok\nshm-ok\n");
    assert!(!ctx.rootfs().join("newfile").exists());

    ctx.config["root"]["readonly"] = json!(false);
    let out = ctx.run_sh("touch /newfile && echo rw-ok");
    assert_eq!(out, "rw-ok\n");
    assert!(ctx.rootfs().join("newfile").exists());
}

#[test]
fn masked_paths() {
    let mut ctx = Ctx::new("masked");
    let hostdir = ctx.dir.join("secret");
    fs::create_dir_all(&hostdir).unwrap();
    fs::write(hostdir.join("s"), "x").unwrap();
    add_mount(&mut ctx, json!({"destination": "/secretdir", "type": "bind", "source": hostdir, "options": ["rbind"]}));
    ctx.config["linux"]["maskedPaths"].as_array_mut().unwrap().push(json!("/secretdir"));
    ctx.config["linux"]["maskedPaths"].as_array_mut().unwrap().push(json!("/no/such/path"));
    // /proc/kcore does not exist on this host's kernel; /proc/keys and /proc/timer_list do and are
    // not empty on the host.
    assert!(!fs::read_to_string("/proc/timer_list").unwrap().is_empty());
    let out = ctx.run_sh(
        "cat /proc/timer_list | wc -c; ls -A /secretdir | wc -l; ls -A /sys/firmware | wc -l; cat /proc/keys | wc -c; \
         test -c /proc/keys && echo keys-is-char",
    );
    let l: Vec<&str> = out.lines().map(|s| s.trim()).collect();
    assert_eq!(l, ["0", "0", "0", "0", "keys-is-char"], "{out}");
}

#[test]
fn readonly_paths() {
    let mut ctx = Ctx::new("ropaths");
    let hostdir = ctx.dir.join("rodir");
    fs::create_dir_all(&hostdir).unwrap();
    add_mount(
        &mut ctx,
        json!({"destination": "/rodir", "type": "bind", "source": hostdir, "options": ["rbind", "rw"]}),
    );
    ctx.config["linux"]["readonlyPaths"].as_array_mut().unwrap().push(json!("/rodir"));
    let out = ctx.run_sh(
        "touch /rodir/x 2>/dev/null && echo WRITABLE || echo ro-ok; grep ' /proc/sys ' /proc/self/mounts | cut -d' ' -f4",
    );
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "ro-ok", "{out}");
    assert!(l[1].split(',').any(|o| o == "ro"), "/proc/sys is mounted ro: {out}");
    assert!(!hostdir.join("x").exists());
}

#[test]
fn sysctl_in_new_netns() {
    let mut ctx = Ctx::new("sysctl");
    let host_before = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let want = if host_before.trim() == "1" { "0" } else { "1" };
    ctx.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": want});
    let out = ctx.run_sh("cat /proc/sys/net/ipv4/ip_forward");
    assert_eq!(out.trim(), want);
    assert_eq!(fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(), host_before, "the host's sysctl changed");
}

#[test]
fn linux_devices() {
    let mut ctx = Ctx::new("devices");
    ctx.config["linux"]["devices"] = json!([
        {"path": "/dev/husk-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 0, "gid": 0},
        {"path": "/dev/sub/husk-zero", "type": "c", "major": 1, "minor": 5}
    ]);
    ctx.config["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"}
    ]);
    let out = ctx.run_sh(
        "stat -c '%F %t:%T %a' /dev/husk-null; stat -c '%F %t:%T' /dev/sub/husk-zero; echo x > /dev/husk-null && echo w-ok",
    );
    assert_eq!(out, "character special file 1:3 640\ncharacter special file 1:5\nw-ok\n");
}

#[test]
fn device_cgroup_denies() {
    // The default spec denies all devices except the defaults; /dev/sda-like nodes made by the
    // container (mknod needs CAP_MKNOD) cannot be opened. A denied device listed in linux.devices
    // exists but cannot be opened.
    let mut ctx = Ctx::new("devdeny");
    ctx.config["linux"]["devices"] = json!([
        {"path": "/dev/husk-mem", "type": "c", "major": 1, "minor": 1, "fileMode": 0o600}
    ]);
    let out = ctx.run_sh(
        "test -c /dev/husk-mem && echo exists; head -c1 /dev/husk-mem >/dev/null 2>&1 && echo OPENED || echo denied",
    );
    assert_eq!(out, "exists\ndenied\n");
}

#[test]
fn no_pivot() {
    let mut ctx = Ctx::new("nopivot");
    ctx.sh("test -x /bin/busybox && echo in-rootfs; test -e /bundle-marker || echo no-host; echo $$");
    fs::write(ctx.bundle.join("bundle-marker"), "").unwrap();
    let id = ctx.id();
    let o = ctx.run_with(&id, &["--no-pivot"]).ok();
    assert_eq!(o.stdout, "in-rootfs\nno-host\n1\n");
}

#[test]
fn symlinked_mount_destination_stays_inside_rootfs() {
    // rootfs/mnt-link -> <host path>/created: a runtime that follows the link on the host side
    // would create or mount on the host. It must resolve it inside the rootfs (or refuse).
    let mut ctx = Ctx::new("symdest");
    let hostdir = ctx.dir.join("hostdir");
    fs::create_dir_all(&hostdir).unwrap();
    let target = hostdir.join("created");
    std::os::unix::fs::symlink(&target, ctx.rootfs().join("mnt-link")).unwrap();
    let src = ctx.dir.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("marker"), "m").unwrap();
    add_mount(&mut ctx, json!({"destination": "/mnt-link", "type": "bind", "source": src, "options": ["rbind"]}));
    add_mount(&mut ctx, json!({"destination": "/mnt-link/sub", "type": "tmpfs", "source": "tmpfs"}));
    let before = fs::read_to_string("/proc/self/mountinfo").unwrap();
    ctx.sh("ls /mnt-link; echo done");
    let id = ctx.id();
    let o = ctx.run(&id).no_panic();
    assert!(!target.exists(), "the runtime created {} on the host: {o}", target.display());
    assert_eq!(fs::read_dir(&hostdir).unwrap().count(), 0, "host dir touched: {o}");
    assert!(!src.join("sub").exists() || o.success(), "tmpfs mount point leaked into the source");
    let after = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let key = hostdir.to_str().unwrap();
    let new: Vec<&str> = after.lines().filter(|l| l.contains(key) && !before.contains(l)).collect();
    assert!(new.is_empty(), "host mounts: {new:?}");
    if o.success() {
        // Resolved inside the rootfs: the mount is reachable through the link.
        assert!(o.stdout.contains("marker"), "{o}");
    }
}

#[test]
fn dotdot_mount_destination_stays_inside_rootfs() {
    let mut ctx = Ctx::new("dotdot");
    let src = ctx.dir.join("src2");
    fs::create_dir_all(&src).unwrap();
    add_mount(&mut ctx, json!({"destination": "/../../../../escape-husk-test", "type": "tmpfs", "source": "tmpfs"}));
    let id = ctx.id();
    ctx.sh("test -d /escape-husk-test && echo inside");
    let o = ctx.run(&id).no_panic();
    assert!(!std::path::Path::new("/escape-husk-test").exists(), "made a dir on the host /: {o}");
    if o.success() {
        assert_eq!(o.stdout.trim(), "inside");
    }
}

#[test]
fn rootfs_relative_and_absolute() {
    // root.path absolute works as well as relative.
    let mut ctx = Ctx::new("absroot");
    ctx.config["root"]["path"] = json!(ctx.rootfs());
    assert_eq!(ctx.run_sh("echo abs-ok"), "abs-ok\n");
}
