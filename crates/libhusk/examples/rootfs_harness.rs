//! Real-namespace tests for `libhusk::rootfs`, run by `cargo test -p libhusk rootfs` (the unit
//! test `rootfs::harness::rootfs_in_namespaces` starts this binary). It must be single-threaded:
//! each scenario forks, unshares mount/pid/net/ipc namespaces, forks again to be pid 1, builds a
//! busybox container with prepare/apply_sysctls/pivot/finalize and checks it from inside.

use std::fs;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use libhusk::cgroups::{Cgroup, Placement};
use libhusk::rootfs::{self, RootfsContext};
use oci_spec::runtime::Spec;
use serde_json::{json, Value};

type Check = Box<dyn Fn() -> Result<(), String>>;
type Setup = Box<dyn Fn(&Path, &Path)>;

struct Scenario {
    name: &'static str,
    spec: Value,
    in_userns: bool,
    no_pivot: bool,
    /// Build the rootfs: (rootfs dir, bundle dir).
    setup: Setup,
    /// Some(text): some step must fail with an error containing `text`.
    expect_err: Option<&'static str>,
    inside: Check,
    after: Check,
}

fn main() {
    let base = PathBuf::from(format!("/tmp/husk-rootfs-test-{}", std::process::id()));
    let scenarios = scenarios(&base);
    let mut failed = 0;
    for (i, s) in scenarios.iter().enumerate() {
        let bundle = base.join(format!("b{i}"));
        let result = run(s, &bundle);
        match &result {
            Ok(()) => println!("ok   {}", s.name),
            Err(e) => {
                failed += 1;
                println!("FAIL {}: {e}", s.name)
            }
        }
    }
    let _ = fs::remove_dir_all(&base);
    std::process::exit(if failed == 0 { 0 } else { 1 });
}

fn run(s: &Scenario, bundle: &Path) -> Result<(), String> {
    let rootfs = bundle.join("rootfs");
    busybox_rootfs(&rootfs)?;
    (s.setup)(&rootfs, bundle);
    let status = fork_and_wait(|| in_namespaces(s, bundle, &rootfs));
    if status != 0 {
        return Err(format!("inside: exit status {status}"));
    }
    (s.after)()
}

fn in_namespaces(s: &Scenario, bundle: &Path, rootfs: &Path) -> i32 {
    let flags = libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWNET | libc::CLONE_NEWIPC;
    if let Err(e) = rustix_unshare(flags) {
        eprintln!("unshare: {e}");
        return 1;
    }
    fork_and_wait(|| match container(s, bundle, rootfs) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("  {}: {e}", s.name);
            1
        }
    })
}

fn container(s: &Scenario, bundle: &Path, rootfs: &Path) -> Result<(), String> {
    let spec: Spec = serde_json::from_value(s.spec.clone()).map_err(|e| format!("spec: {e}"))?;
    let cgroup = host_cgroup();
    let rootfs_fd = fs::File::open(rootfs).map_err(|e| format!("open {}: {e}", rootfs.display()))?;
    let ctx = RootfsContext {
        spec: &spec,
        bundle,
        rootfs,
        rootfs_fd: std::os::fd::AsFd::as_fd(&rootfs_fd),
        no_pivot: s.no_pivot,
        own_mount_ns: true,
        in_userns: s.in_userns,
        in_cgroupns: false,
        cgroup: &cgroup,
        userns: rootfs::idmap::Userns::None,
        idmapped: &[],
        source_broker: None,
    };
    let steps = rootfs::prepare(&ctx).and_then(|prepared| {
        rootfs::apply_sysctls(&ctx)?;
        rootfs::pivot(&ctx, &prepared)?;
        rootfs::finalize(&ctx, prepared)
    });
    match (steps, s.expect_err) {
        (Ok(()), None) => (s.inside)(),
        (Err(e), Some(want)) if e.to_string().contains(want) => {
            println!("     expected error: {e}");
            (s.inside)()
        }
        (Err(e), _) => Err(format!("unexpected error: {e}")),
        (Ok(()), Some(want)) => Err(format!("no error, wanted one containing {want:?}")),
    }
}

/// Bind placements for the memory v1 hierarchy and the hybrid unified mount: the host's roots.
fn host_cgroup() -> Cgroup {
    let mut placements = Vec::new();
    for (name, v2) in [("memory", false), ("unified", true)] {
        let mount = Path::new("/sys/fs/cgroup").join(name);
        if mount.is_dir() {
            let controllers = if v2 { vec![] } else { vec![name.to_string()] };
            placements.push(Placement { mount: mount.clone(), controllers, v2, dir: mount, created: vec![] });
        }
    }
    Cgroup { placements, ..Cgroup::default() }
}

fn busybox_rootfs(rootfs: &Path) -> Result<(), String> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"].into_iter().find(|p| Path::new(p).exists());
    let busybox = busybox.ok_or("busybox not installed (apt-get install -y busybox-static)")?;
    for d in ["bin", "proc", "sys", "dev", "etc", "root"] {
        fs::create_dir_all(rootfs.join(d)).map_err(|e| e.to_string())?;
    }
    fs::create_dir_all(rootfs.join("tmp")).map_err(|e| e.to_string())?;
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o700)).map_err(|e| e.to_string())?;
    fs::copy(busybox, rootfs.join("bin/busybox")).map_err(|e| e.to_string())?;
    for tool in ["sh", "ls", "cat", "stat", "touch", "echo"] {
        symlink("busybox", rootfs.join("bin").join(tool)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn fork_and_wait(child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the harness is single-threaded (no test harness), so the child is a full copy.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = child();
        // SAFETY: leave without running the parent's atexit handlers or destructors twice.
        unsafe { libc::_exit(code) };
    }
    if pid < 0 {
        return 100;
    }
    let mut status = 0;
    // SAFETY: plain waitpid on our own child with a valid out-pointer.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        return 101;
    }
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    }
}

fn rustix_unshare(flags: libc::c_int) -> Result<(), std::io::Error> {
    // SAFETY: unshare takes no pointers.
    if unsafe { libc::unshare(flags) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

// ---- checks ----

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

fn meta(p: &str) -> Result<fs::Metadata, String> {
    fs::symlink_metadata(p).map_err(|e| format!("{p}: {e}"))
}

fn char_dev(p: &str, major: u64, minor: u64, mode: u32) -> Result<(), String> {
    let m = meta(p)?;
    let rdev = m.rdev();
    let (ma, mi) = (libc::major(rdev) as u64, libc::minor(rdev) as u64);
    ensure(m.file_type().is_char_device() && (ma, mi) == (major, minor) && m.mode() & 0o7777 == mode, || {
        format!("{p}: want char {major}:{minor} {mode:o}, got {:o} {ma}:{mi}", m.mode())
    })
}

fn link_to(p: &str, target: &str) -> Result<(), String> {
    let t = fs::read_link(p).map_err(|e| format!("{p}: {e}"))?;
    ensure(t == Path::new(target), || format!("{p} -> {}, want {target}", t.display()))
}

fn erofs(p: &str) -> Result<(), String> {
    match fs::write(p, b"x") {
        Err(e) if e.raw_os_error() == Some(libc::EROFS) => Ok(()),
        other => Err(format!("write {p}: want EROFS, got {other:?}")),
    }
}

fn read(p: &str) -> Result<String, String> {
    fs::read_to_string(p).map_err(|e| format!("{p}: {e}"))
}

fn mountinfo_opts(dest: &str) -> Result<String, String> {
    let info = read("/proc/self/mountinfo")?;
    let line = info.lines().rfind(|l| l.split(' ').nth(4) == Some(dest));
    line.map(|l| l.to_string()).ok_or_else(|| format!("{dest} is not a mount point"))
}

fn empty_dir(p: &str) -> Result<bool, String> {
    Ok(!Path::new(p).exists() || fs::read_dir(p).map_err(|e| format!("{p}: {e}"))?.next().is_none())
}

fn ok() -> Check {
    Box::new(|| Ok(()))
}

fn full_inside(userns: bool, readonly_root: bool, outside: String) -> Check {
    Box::new(move || {
        char_dev("/dev/null", 1, 3, 0o666)?;
        char_dev("/dev/zero", 1, 5, 0o666)?;
        char_dev("/dev/tty", 5, 0, 0o666)?;
        link_to("/dev/fd", "/proc/self/fd")?;
        link_to("/dev/stderr", "/proc/self/fd/2")?;
        link_to("/dev/ptmx", "pts/ptmx")?;
        ensure(meta("/dev/fifo1")?.file_type().is_fifo(), || "/dev/fifo1 is not a fifo".into())?;
        if !userns {
            char_dev("/dev/custom/full2", 1, 7, 0o640)?;
            let m = meta("/dev/custom/full2")?;
            ensure((m.uid(), m.gid()) == (1000, 1001), || format!("full2 owner {}:{}", m.uid(), m.gid()))?;
        }
        let scratch = meta("/scratch")?.mode();
        ensure(scratch & 0o7777 == 0o1777, || format!("/scratch mode {scratch:o}: mode= must win"))?;
        ensure(read("/data/f")? == "hello", || "/data/f content".into())?;
        erofs("/data/new")?;
        ensure(read("/etc/injected")? == "filedata", || "/etc/injected content".into())?;
        erofs("/rro/sub/new")?;
        let opts = mountinfo_opts("/opts")?;
        for o in ["nosuid", "nodev", "noexec", "noatime"] {
            ensure(opts.contains(o), || format!("/opts lacks {o}: {opts}"))?;
        }
        // The symlinked destination resolved inside the root.
        mountinfo_opts(&format!("{outside}/sub"))?;
        for p in ["/proc/timer_list", "/proc/kcore", "/proc/keys"] {
            if Path::new(p).exists() {
                ensure(read(p)?.is_empty(), || format!("{p} is not masked"))?;
            }
        }
        ensure(empty_dir("/sys/firmware")?, || "/sys/firmware is not masked".into())?;
        erofs("/sys/firmware/x")?;
        ensure(read("/proc/sys/net/ipv4/ip_forward")?.trim() == "1", || "sysctl not applied".into())?;
        erofs("/proc/sys/kernel/hostname")?;
        if readonly_root {
            erofs("/newfile")?;
        } else {
            fs::write("/newfile", b"x").map_err(|e| format!("/newfile: {e}"))?;
        }
        if Path::new("/sys/fs/cgroup/memory").exists() {
            ensure(Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists(), || "no memory cgroup".into())?;
            erofs("/sys/fs/cgroup/x")?;
        }
        let status = std::process::Command::new("/bin/sh")
            .args(["-c", "ls /dev >/dev/null && cat /proc/self/mountinfo >/dev/null && echo hi >/dev/null"])
            .status()
            .map_err(|e| format!("exec /bin/sh: {e}"))?;
        ensure(status.success(), || format!("/bin/sh: {status}"))
    })
}

fn full_spec(userns: bool, readonly_root: bool, propagation: Option<&str>) -> Value {
    let mut devices = vec![json!({"path": "/dev/fifo1", "type": "p"})];
    if !userns {
        devices.push(json!({"path": "/dev/custom/full2", "type": "c", "major": 1, "minor": 7,
            "fileMode": 0o640, "uid": 1000, "gid": 1001}));
    }
    let mut linux = json!({
        "devices": devices,
        "maskedPaths": ["/proc/timer_list", "/proc/kcore", "/proc/keys", "/sys/firmware", "/nonexistent"],
        "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger", "/missing"],
        "sysctl": {"net.ipv4.ip_forward": "1"},
    });
    if let Some(p) = propagation {
        linux["rootfsPropagation"] = json!(p);
    }
    json!({
        "ociVersion": "1.3.0",
        "root": {"path": "rootfs", "readonly": readonly_root},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
            {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]},
            {"destination": "/data", "source": "hostdata", "options": ["bind", "ro"]},
            {"destination": "/etc/injected", "type": "bind", "source": "hostfile", "options": ["bind"]},
            {"destination": "/rro", "source": "hostdata", "options": ["rbind", "rro"]},
            {"destination": "/opts", "type": "tmpfs", "source": "tmpfs",
             "options": ["noexec", "nosuid", "nodev", "noatime", "rprivate"]},
            {"destination": "/escape/sub", "type": "tmpfs", "source": "tmpfs"},
        ],
        "linux": linux,
    })
}

fn full_setup(outside: PathBuf) -> Setup {
    Box::new(move |rootfs, bundle| {
        let data = bundle.join("hostdata");
        fs::create_dir_all(data.join("sub")).unwrap();
        fs::write(data.join("f"), "hello").unwrap();
        fs::write(bundle.join("hostfile"), "filedata").unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::create_dir_all(rootfs.join("scratch")).unwrap();
        fs::set_permissions(rootfs.join("scratch"), fs::Permissions::from_mode(0o700)).unwrap();
        // /escape points at a host path: it must resolve to the same path inside the rootfs.
        symlink(&outside, rootfs.join("escape")).unwrap();
        fs::create_dir_all(rootfs.join(outside.strip_prefix("/").unwrap())).unwrap();
    })
}

fn outside_untouched(outside: PathBuf, ip_forward: String) -> Check {
    Box::new(move || {
        ensure(empty_dir(outside.to_str().unwrap_or("/"))?, || {
            format!("{} was written on the host", outside.display())
        })?;
        let now = read("/proc/sys/net/ipv4/ip_forward")?;
        ensure(now == ip_forward, || "host ip_forward changed".into())
    })
}

fn scenarios(base: &Path) -> Vec<Scenario> {
    let outside = base.join("outside");
    let out_s = outside.display().to_string();
    let ip_forward = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
    let core_pattern = fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    let hostdev = base.join("hostdev");
    let hostdev2 = hostdev.clone();
    let hostdev3 = hostdev.clone();
    let minimal = |mounts: Value, linux: Value| json!({"ociVersion": "1.3.0", "root": {"path": "rootfs"}, "mounts": mounts, "linux": linux});
    let proc_mount = json!({"destination": "/proc", "type": "proc", "source": "proc"});
    vec![
        Scenario {
            name: "full config, pivot_root, read-only root",
            spec: full_spec(false, true, None),
            in_userns: false,
            no_pivot: false,
            setup: full_setup(outside.clone()),
            expect_err: None,
            inside: full_inside(false, true, out_s.clone()),
            after: outside_untouched(outside.clone(), ip_forward.clone()),
        },
        Scenario {
            name: "full config, devices bound from the host, --no-pivot, rshared",
            spec: full_spec(true, false, Some("rshared")),
            in_userns: true,
            no_pivot: true,
            setup: full_setup(outside.clone()),
            expect_err: None,
            inside: full_inside(true, false, out_s.clone()),
            after: outside_untouched(outside.clone(), ip_forward.clone()),
        },
        Scenario {
            name: "/dev -> host path (dangling inside the rootfs): error, nothing on the host",
            spec: minimal(json!([proc_mount]), json!({})),
            in_userns: false,
            no_pivot: false,
            setup: Box::new(move |rootfs, _| {
                fs::create_dir_all(&hostdev).unwrap();
                fs::remove_dir(rootfs.join("dev")).unwrap();
                symlink(&hostdev, rootfs.join("dev")).unwrap();
            }),
            expect_err: Some("mkdir /dev"),
            inside: ok(),
            after: Box::new(move || {
                ensure(empty_dir(hostdev2.to_str().unwrap_or("/"))?, || "devices written on the host".into())
            }),
        },
        Scenario {
            name: "/dev -> host path (present inside the rootfs): devices inside the rootfs",
            spec: minimal(json!([proc_mount]), json!({"maskedPaths": ["/proc/timer_list"]})),
            in_userns: false,
            no_pivot: false,
            setup: Box::new(move |rootfs, _| {
                fs::create_dir_all(&hostdev3).unwrap();
                fs::remove_dir(rootfs.join("dev")).unwrap();
                symlink(&hostdev3, rootfs.join("dev")).unwrap();
                fs::create_dir_all(rootfs.join(hostdev3.strip_prefix("/").unwrap())).unwrap();
            }),
            expect_err: None,
            inside: Box::new(|| {
                char_dev("/dev/null", 1, 3, 0o666)?;
                ensure(read("/proc/timer_list")?.is_empty(), || "/proc/timer_list not masked".into())
            }),
            after: {
                let hostdev = base.join("hostdev");
                Box::new(move || ensure(empty_dir(hostdev.to_str().unwrap_or("/"))?, || "host /dev written".into()))
            },
        },
        Scenario {
            name: "/dev/null -> /proc/sys/kernel/core_pattern with maskedPaths: refused",
            spec: minimal(
                json!([proc_mount, {"destination": "/dev", "source": "devdir", "options": ["bind"]}]),
                json!({"maskedPaths": ["/proc/timer_list", "/proc/kcore"]}),
            ),
            in_userns: false,
            no_pivot: false,
            setup: Box::new(|_, bundle| {
                fs::create_dir_all(bundle.join("devdir")).unwrap();
                symlink("/proc/sys/kernel/core_pattern", bundle.join("devdir/null")).unwrap();
            }),
            expect_err: Some("linux.maskedPaths[0]: /proc/timer_list: /dev/null is not the null device"),
            inside: Box::new(|| {
                let t = read("/proc/timer_list")?;
                ensure(!t.is_empty(), || "/proc/timer_list was replaced".into())
            }),
            after: Box::new(move || {
                let now = read("/proc/sys/kernel/core_pattern")?;
                ensure(now == core_pattern, || "core_pattern changed".into())
            }),
        },
        Scenario {
            name: "idmap on a tmpfs: refused naming the mount",
            spec: minimal(
                json!([{"destination": "/x", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]}]),
                json!({}),
            ),
            in_userns: false,
            no_pivot: false,
            setup: Box::new(|_, _| {}),
            expect_err: Some("mounts[0]: idmapped mounts are supported for bind mounts only"),
            inside: ok(),
            after: ok(),
        },
        Scenario {
            name: "bad tmpfs option: kernel message and mounts[i]",
            spec: minimal(
                json!([proc_mount, {"destination": "/x", "type": "tmpfs", "source": "tmpfs", "options": ["mode=zz"]}]),
                json!({}),
            ),
            in_userns: false,
            no_pivot: false,
            setup: Box::new(|_, _| {}),
            expect_err: Some("mounts[1]: mount tmpfs on /x"),
            inside: ok(),
            after: ok(),
        },
        Scenario {
            name: "unknown filesystem type",
            spec: minimal(json!([{"destination": "/x", "type": "nosuchfs", "source": "x"}]), json!({})),
            in_userns: false,
            no_pivot: false,
            setup: Box::new(|_, _| {}),
            expect_err: Some("mounts[0]: mount nosuchfs on /x: filesystem type \"nosuchfs\": no such device"),
            inside: ok(),
            after: ok(),
        },
        Scenario {
            name: "missing bind source",
            spec: minimal(json!([{"destination": "/x", "source": "nope", "options": ["rbind"]}]), json!({})),
            in_userns: false,
            no_pivot: false,
            setup: Box::new(|_, _| {}),
            expect_err: Some("mounts[0]: bind "),
            inside: ok(),
            after: ok(),
        },
        Scenario {
            name: "unknown sysctl",
            spec: minimal(json!([]), json!({"sysctl": {"net.ipv4.no_such_key": "1"}})),
            in_userns: false,
            no_pivot: false,
            setup: Box::new(|_, _| {}),
            expect_err: Some(r#"linux.sysctl["net.ipv4.no_such_key"]: no such file or directory"#),
            inside: ok(),
            after: ok(),
        },
    ]
}
