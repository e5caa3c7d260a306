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

/// The mountinfo line of the container's `/`, as the container sees it.
fn root_mountinfo(ctx: &mut Ctx, propagation: Option<&str>) -> String {
    match propagation {
        Some(p) => ctx.config["linux"]["rootfsPropagation"] = json!(p),
        None => {
            ctx.config["linux"].as_object_mut().unwrap().remove("rootfsPropagation");
        }
    }
    let out = ctx.run_sh("cat /proc/self/mountinfo");
    out.lines().find(|l| l.split(' ').nth(4) == Some("/")).unwrap_or_else(|| panic!("no / in {out}")).to_string()
}

/// The optional fields of a mountinfo line (between the mount options and ` - `).
fn optional_fields(line: &str) -> Vec<String> {
    let pre = line.split(" - ").next().unwrap();
    pre.split(' ').skip(6).map(str::to_string).collect()
}

/// `linux.rootfsPropagation` as runc applies it: slave ones keep the container's `/` a slave of
/// the host's peer group (the rootfs's parent mount is made slave, not private, so the host's
/// mounts still propagate in); shared and unbindable are set on the container's `/` after
/// pivot_root; private leaves it private. Before: `slave` gave a private `/` (the parent was
/// made private) and `shared`/`unbindable` never reached the container's `/`.
#[test]
fn rootfs_propagation_as_runc_applies_it() {
    let mut ctx = Ctx::new("rootprop");
    // The test dirs sit on a shared mount (systemd's default), so a slave has a master.
    let host = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let shared_host = host.lines().any(|l| l.split(' ').nth(4) == Some("/") && l.contains("shared:"));
    for (prop, want) in [
        (Some("shared"), "shared:"),
        (Some("rshared"), "shared:"),
        (Some("unbindable"), "unbindable"),
        (Some("runbindable"), "unbindable"),
        (Some("slave"), "master:"),
        (Some("rslave"), "master:"),
        (None, "master:"),
    ] {
        if want == "master:" && !shared_host {
            continue;
        }
        if prop == Some("runbindable") {
            // Every mount of the namespace is then unbindable, the host's cgroup directories the
            // default `cgroup` mount binds too (runc fails the same way).
            ctx.config["mounts"].as_array_mut().unwrap().retain(|m| m["type"] != "cgroup");
        }
        let line = root_mountinfo(&mut ctx, prop);
        let fields = optional_fields(&line);
        assert!(fields.iter().any(|f| f.starts_with(want)), "rootfsPropagation {prop:?}: want {want} on /: {line}");
    }
    for prop in ["private", "rprivate"] {
        let line = root_mountinfo(&mut ctx, Some(prop));
        assert!(optional_fields(&line).is_empty(), "rootfsPropagation {prop}: / must be private: {line}");
    }
}

/// runc 1.2+: a tmpfs mounted over a directory of the image without `mode=` takes that
/// directory's mode (not tmpfs's 1777), while one on a directory the runtime makes keeps
/// tmpfs's default, and `mode=` always wins. Before: 1777 over the 0700 directory.
#[test]
fn tmpfs_without_mode_takes_the_directory_mode() {
    let mut ctx = Ctx::new("tmpfsdirmode");
    for (name, mode) in [("priv", 0o700), ("sticky", 0o1750)] {
        fs::create_dir_all(ctx.rootfs().join(name)).unwrap();
        fs::set_permissions(ctx.rootfs().join(name), std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
        add_mount(&mut ctx, json!({"destination": format!("/{name}"), "type": "tmpfs", "source": "tmpfs"}));
    }
    add_mount(&mut ctx, json!({"destination": "/made/here", "type": "tmpfs", "source": "tmpfs"}));
    let out = ctx.run_sh("stat -c %a /priv /sticky /made/here; grep -c ' /priv tmpfs' /proc/self/mounts");
    assert_eq!(out, "700\n1750\n1777\n1\n");
}

/// A read-only tmpfs on /dev (and read-only tmpfs mounts in general) are made writable first and
/// read-only once the rootfs is done, as runc does: the devices, /dev/pts, /dev/shm and the
/// console go inside it. Before: mkdir /dev/pts on the read-only tmpfs failed (EROFS).
#[test]
fn read_only_dev_with_devpts_under_it() {
    let mut ctx = Ctx::new("rodev");
    for m in ctx.config["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/dev" {
            m["options"].as_array_mut().unwrap().push(json!("ro"));
        }
    }
    add_mount(&mut ctx, json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["ro"]}));
    add_mount(&mut ctx, json!({"destination": "/scratch/sub", "type": "tmpfs", "source": "tmpfs"}));
    let out = ctx.run_sh(
        "grep -E ' /dev | /scratch ' /proc/self/mounts | cut -d' ' -f2,4 | cut -d, -f1; \
         grep ' /dev/pts ' /proc/self/mounts | cut -d' ' -f3; test -c /dev/null && echo null-ok; \
         touch /dev/x 2>/dev/null && echo DEV-WRITABLE; touch /scratch/x 2>/dev/null && echo SCRATCH-WRITABLE; \
         touch /scratch/sub/x && echo sub-rw",
    );
    assert_eq!(out, "/dev ro\n/scratch ro\ndevpts\nnull-ok\nsub-rw\n");
}

/// maskedPaths as runc 1.2+ masks them: a path listed twice is masked once, and every masked
/// directory shares one read-only tmpfs (one superblock, not one per directory). Before: two
/// stacked mounts for the duplicate and a tmpfs per directory.
#[test]
fn masked_paths_duplicates_once_and_directories_share_one_tmpfs() {
    let mut ctx = Ctx::new("maskshare");
    for d in ["testdir", "testdir2", "testdir3"] {
        fs::create_dir_all(ctx.rootfs().join(d)).unwrap();
        fs::write(ctx.rootfs().join(d).join("secret"), "x").unwrap();
    }
    fs::write(ctx.rootfs().join("testfile"), "Forbidden information!\n").unwrap();
    let masked = ctx.config["linux"]["maskedPaths"].as_array_mut().unwrap();
    for p in ["/testdir", "/testfile", "/testdir2", "/testdir3", "/testdir", "/testfile", "/testdir/../testdir2"] {
        masked.push(json!(p));
    }
    let out = ctx.run_sh(
        "grep -c ' /testdir ' /proc/self/mounts; grep -c ' /testfile ' /proc/self/mounts; \
         grep -c ' /testdir2 ' /proc/self/mounts; \
         set -- $(stat -c %d /testdir /testdir2 /testdir3); [ \"$1\" = \"$2\" ] && [ \"$2\" = \"$3\" ] && echo one-tmpfs; \
         ls -A /testdir2 | wc -l; cat /testfile | wc -c; touch /testdir3/x 2>/dev/null || echo ro",
    );
    let l: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(l, ["1", "1", "1", "one-tmpfs", "0", "0", "ro"], "{out}");
}

/// --no-pivot moves the rootfs over `/` and chroots: the old root's mounts stay underneath in the
/// container's mount namespace. The host's procfs and sysfs among them, whole and unmasked, must
/// be gone (runc's msMoveRoot): a whole procfs anywhere in a mount namespace is what lets the
/// kernel allow a new, unmasked procfs mount there, and whatever gets below the container's
/// root would find them. Seen from the host: enter the container's mount namespace, lift the
/// container's root off the old one, enter again and look at the old root's /proc and /sys.
/// Before: the host's /proc and /sys were there.
#[test]
fn no_pivot_leaves_no_host_proc_or_sys_underneath() {
    let mut ctx = Ctx::new("nopivotproc");
    ctx.sh("sleep 60");
    let id = ctx.id();
    ctx.run_with(&id, &["-d", "--no-pivot"]).ok();
    let pid = ctx.state(&id)["pid"].as_u64().unwrap();
    let ns = fs::File::open(format!("/proc/{pid}/ns/mnt")).unwrap();
    let mut c = std::process::Command::new("/bin/true");
    let raw = std::os::fd::AsRawFd::as_raw_fd(&ns);
    // SAFETY: only async-signal-safe syscalls between fork and _exit, on memory prepared before.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, move || {
            let code = (|| {
                if libc::setns(raw, libc::CLONE_NEWNS) != 0 {
                    return 2;
                }
                // The container's root, stacked on the old root: lift it off (in this throwaway
                // container's namespace) and enter again, landing on the old root.
                if libc::umount2(c"/".as_ptr(), libc::MNT_DETACH) != 0 {
                    return 3;
                }
                if libc::setns(raw, libc::CLONE_NEWNS) != 0 {
                    return 4;
                }
                let mut st: libc::statfs = std::mem::zeroed();
                if libc::statfs(c"/proc".as_ptr(), &mut st) == 0 && st.f_type == libc::PROC_SUPER_MAGIC {
                    return 10;
                }
                if libc::statfs(c"/sys".as_ptr(), &mut st) == 0 && st.f_type == libc::SYSFS_MAGIC {
                    return 11;
                }
                0
            })();
            libc::_exit(code)
        });
    }
    let status = status(&mut c);
    ctx.husk(&["delete", "--force", &id]).ok();
    match status.code() {
        Some(0) => {}
        Some(10) => panic!("the host's /proc is under the --no-pivot container's root"),
        Some(11) => panic!("the host's /sys is under the --no-pivot container's root"),
        other => panic!("the helper failed: {other:?}"),
    }
}

/// runc refuses `[r]private` root propagation with --no-pivot: the host's mounts it keeps
/// underneath would not follow the host's unmounts.
#[test]
fn no_pivot_refuses_private_root_propagation() {
    let mut ctx = Ctx::new("nopivotpriv");
    ctx.config["linux"]["rootfsPropagation"] = json!("rprivate");
    let id = ctx.id();
    let before = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let o = ctx.run_with(&id, &["--no-pivot"]).fails();
    if is_husk() {
        assert!(o.stderr.contains("linux.rootfsPropagation") && o.stderr.contains("pivot_root"), "{o}");
    }
    ctx.assert_nothing_left(&id, &before);
}

/// Run `script` in a container whose `/locked` binds `src` with `options`, in a private mount
/// namespace of the runtime's own where `src` is a tmpfs mounted nosuid,nodev,noexec,noatime
/// (nothing on the host). `userns`: the container has a user namespace, so the source's flags
/// are locked (MNT_LOCK_*) in its mount namespace.
fn run_with_locked_source(ctx: &mut Ctx, userns: bool, options: &[&str], script: &str) -> Out {
    let src = ctx.dir.join("locked-src");
    fs::create_dir_all(&src).unwrap();
    if userns && !ctx.config["linux"]["namespaces"].as_array().unwrap().iter().any(|n| n["type"] == "user") {
        chown_rootfs(ctx, 100000, 100000);
        ctx.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
        ctx.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        ctx.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        ctx.config["mounts"].as_array_mut().unwrap().retain(|m| m["type"] != "cgroup");
    }
    let mounts = ctx.config["mounts"].as_array_mut().unwrap();
    mounts.retain(|m| m["destination"] != "/locked");
    mounts.push(json!({"destination": "/locked", "type": "bind", "source": src, "options": options}));
    ctx.sh(script);
    let id = ctx.id();
    ctx.write_config(&id);
    let script = format!(
        "mount -t tmpfs -o nosuid,nodev,noexec,noatime,mode=755 tmpfs {} && exec \"$0\" --root {} run --bundle {} {}",
        src.display(),
        ctx.root.display(),
        ctx.bundle.display(),
        id
    );
    let mut c = std::process::Command::new("unshare");
    c.args(["-m", "--propagation", "private", "sh", "-c", &script]).arg(bin()).stdin(std::process::Stdio::null());
    ctx.exec(c)
}

const LOCKED_OPTS: &str = "grep ' /locked ' /proc/self/mountinfo | cut -d' ' -f6";

/// Bind mounts' flags as runc 1.2+ sets them (mount(8)'s `mount --bind -o`): no per-mount option
/// keeps the source's flags; any option gives exactly the options asked for, the source's
/// nosuid/nodev/noexec cleared (its atime kept unless one was asked for). Before: husk kept the
/// source's flags under the ones asked for (ro,nosuid,nodev,noexec,noatime).
#[test]
fn bind_mount_flags_as_mount_bind_o() {
    let mut ctx = Ctx::new("bindflags");
    let o = run_with_locked_source(&mut ctx, false, &["bind"], LOCKED_OPTS).ok();
    assert_eq!(o.stdout.trim(), "rw,nosuid,nodev,noexec,noatime", "no option: the source's flags: {o}");
    let o = run_with_locked_source(&mut ctx, false, &["bind", "ro"], LOCKED_OPTS).ok();
    assert_eq!(o.stdout.trim(), "ro,noatime", "ro alone: {o}");
    let o = run_with_locked_source(&mut ctx, false, &["rbind", "nodev", "relatime"], LOCKED_OPTS).ok();
    assert_eq!(o.stdout.trim(), "rw,nodev,relatime", "nodev,relatime: {o}");
}

/// The same in a user namespace, where the source's flags are locked: asking for ro keeps the
/// locked ones (runc retries with them re-applied); asking to clear a locked flag, or for another
/// atime than the locked one, fails naming it instead of making a mount other than asked for.
/// Before: the last two failed with a bare EPERM.
#[test]
fn bind_mount_flags_of_a_locked_source() {
    let mut ctx = Ctx::new("bindlocked");
    let o = run_with_locked_source(&mut ctx, true, &["bind", "ro"], LOCKED_OPTS).ok();
    assert_eq!(o.stdout.trim(), "ro,nosuid,nodev,noexec,noatime", "{o}");
    let o = run_with_locked_source(&mut ctx, true, &["bind", "nosuid", "nodev", "noexec", "noatime"], LOCKED_OPTS).ok();
    assert_eq!(o.stdout.trim(), "rw,nosuid,nodev,noexec,noatime", "{o}");
    let n = ctx.config["mounts"].as_array().unwrap().len() - 1;
    for (opts, want) in [
        (&["bind", "suid"][..], "cannot clear locked flags nosuid"),
        (&["bind", "ro", "exec", "dev"][..], "cannot clear locked flags nodev|noexec"),
        (&["bind", "relatime"][..], "cannot change locked atime flags noatime"),
    ] {
        let o = run_with_locked_source(&mut ctx, true, opts, "echo RAN").fails();
        assert!(!o.stdout.contains("RAN"), "{opts:?}: {o}");
        if is_husk() {
            assert!(
                o.stderr.contains(&format!("mounts[{n}]")) && o.stderr.contains(want),
                "{opts:?}: want {want:?}: {o}"
            );
        }
    }
}

/// crun's mount options Podman may pass are implemented or refused by name, never dropped: a
/// bind mount's filesystem options are refused (runc alike), crun's `idmap=uids=...;gids=...`
/// gives the mount's mappings. Before: all of these passed, doing nothing.
#[test]
fn crun_mount_options_are_taken_or_refused_by_name() {
    for (opt, want) in [
        ("src-nofollow", "(crun's extension) is not supported"),
        ("dest-nofollow", "(crun's extension) is not supported"),
        ("copy-symlink", "(crun's extension) is not supported"),
        ("size=1m", "is a filesystem option"),
        ("uid=1000", "is a filesystem option"),
    ] {
        let mut ctx = Ctx::new("crunopts");
        let src = ctx.dir.join("src");
        fs::create_dir_all(&src).unwrap();
        let n = ctx.config["mounts"].as_array().unwrap().len();
        add_mount(&mut ctx, json!({"destination": "/v", "type": "bind", "source": src, "options": ["rbind", opt]}));
        ctx.sh("echo RAN");
        let id = ctx.id();
        let before = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let o = ctx.run(&id);
        if is_husk() {
            let o = o.fails();
            assert!(
                o.stderr.contains(&format!("mounts[{n}]")) && o.stderr.contains(opt) && o.stderr.contains(want),
                "{opt}: {o}"
            );
            assert_eq!(o.stderr_lines().len(), 1, "{o}");
        }
        ctx.assert_nothing_left(&id, &before);
    }
    // Superblock flags on a bind change nothing and pass (runc takes them too).
    let mut ctx = Ctx::new("crunopts-sb");
    let src = ctx.dir.join("src");
    fs::create_dir_all(&src).unwrap();
    add_mount(
        &mut ctx,
        json!({"destination": "/v", "type": "bind", "source": src, "options": ["rbind", "sync", "nolazytime"]}),
    );
    assert_eq!(ctx.run_sh("echo ran"), "ran\n");
    // crun's idmap= syntax: filesystem ids 0.. shown as 5000.. (uids) and 7000.. (gids).
    let mut ctx = Ctx::new("crunidmap");
    let vol = ctx.dir.join("vol");
    fs::create_dir_all(&vol).unwrap();
    fs::write(vol.join("root-file"), "r").unwrap();
    add_mount(
        &mut ctx,
        json!({"destination": "/idm", "type": "bind", "source": vol, "options": ["rbind", "idmap=uids=0-5000-2000;gids=0-7000-2000"]}),
    );
    if is_husk() {
        assert_eq!(ctx.run_sh("stat -c %u:%g /idm/root-file"), "5000:7000\n");
    }
}

/// A bind source in a directory the container's user namespace may not enter (only its host
/// owner may) is opened by husk, as root outside that namespace, for the init (runc's mount
/// source requests). Before: `permission denied`.
#[test]
fn bind_source_the_user_namespace_cannot_reach() {
    let mut ctx = Ctx::new("bindreach");
    let private = ctx.dir.join("private");
    fs::create_dir_all(private.join("vol")).unwrap();
    fs::write(private.join("vol/file"), "reached\n").unwrap();
    std::os::unix::fs::chown(&private, Some(1234), Some(1234)).unwrap();
    fs::set_permissions(&private, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    chown_rootfs(&ctx, 100000, 100000);
    ctx.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
    ctx.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    ctx.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    ctx.config["mounts"].as_array_mut().unwrap().retain(|m| m["type"] != "cgroup");
    add_mount(
        &mut ctx,
        json!({"destination": "/vol", "type": "bind", "source": private.join("vol"), "options": ["rbind", "ro"]}),
    );
    assert_eq!(ctx.run_sh("cat /vol/file"), "reached\n");
}
