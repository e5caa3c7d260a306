//! Running the runtime as an unprivileged user: a dedicated test user with /etc/subuid and
//! /etc/subgid ranges (made once per host, idempotently, and reused by later runs), and
//! [`Ctx::rootless`], a context whose runtime calls run as that user, with the bundle, the state
//! and `XDG_RUNTIME_DIR` in directories the user owns.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::{json, Value};

use super::{bin, run_cmd, Ctx, TIMEOUT};

/// The host's test user. On a host without it the first rootless test creates it.
pub const TEST_USER: &str = "husk-rootless-test";
/// The guest's user whose systemd manager runs with delegated cgroup controllers (docs/guest.md).
pub const GUEST_USER: &str = "husk";

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// (first, count) of the user's line in /etc/subuid and /etc/subgid.
    pub subuid: (u32, u32),
    pub subgid: (u32, u32),
}

fn id_of(name: &str, flag: &str) -> Option<u32> {
    let out = super::output(Command::new("id").args([flag, name]));
    String::from_utf8_lossy(&out.stdout).trim().parse().ok().filter(|_| out.status.success())
}

/// The user's (first, count) in an /etc/subuid-style file.
fn sub_range(file: &str, name: &str) -> Option<(u32, u32)> {
    fs::read_to_string(file).ok()?.lines().find_map(|l| {
        let f: Vec<&str> = l.trim().split(':').collect();
        match f[..] {
            [n, first, count] if n == name => Some((first.parse().ok()?, count.parse().ok()?)),
            _ => None,
        }
    })
}

/// A 65536-id range above every range already given out in either file (at least 100000).
fn free_range() -> u32 {
    let mut end = 100_000u64;
    for file in ["/etc/subuid", "/etc/subgid"] {
        for l in fs::read_to_string(file).unwrap_or_default().lines() {
            let f: Vec<&str> = l.trim().split(':').collect();
            if let [_, first, count] = f[..] {
                if let (Ok(a), Ok(n)) = (first.parse::<u64>(), count.parse::<u64>()) {
                    end = end.max(a + n);
                }
            }
        }
    }
    (end.div_ceil(65536) * 65536) as u32
}

fn sh(args: &[&str]) {
    let st = super::status(Command::new(args[0]).args(&args[1..]).stdin(Stdio::null()));
    assert!(st.success(), "{args:?}: {st:?}");
}

fn lookup(name: &str) -> Option<User> {
    Some(User {
        name: name.to_string(),
        uid: id_of(name, "-u")?,
        gid: id_of(name, "-g")?,
        subuid: sub_range("/etc/subuid", name)?,
        subgid: sub_range("/etc/subgid", name)?,
    })
}

/// The dedicated unprivileged test user, created if missing: a system account without a home
/// or a login shell, with 65536 subordinate uids and gids. Serialised across test processes by
/// a lock file, so parallel test binaries do not race useradd.
pub fn test_user() -> &'static User {
    static U: OnceLock<User> = OnceLock::new();
    U.get_or_init(|| {
        let lock = fs::File::create("/run/lock/husk-rootless-test.lock").expect("lock file");
        // SAFETY: flock on a file we hold open; released when it is closed.
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
        if id_of(TEST_USER, "-u").is_none() {
            sh(&["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"]
                .iter()
                .copied()
                .chain(["--shell", "/usr/sbin/nologin", TEST_USER])
                .collect::<Vec<_>>());
        }
        if sub_range("/etc/subuid", TEST_USER).is_none() || sub_range("/etc/subgid", TEST_USER).is_none() {
            let first = free_range();
            let range = format!("{first}-{}", first + 65535);
            if sub_range("/etc/subuid", TEST_USER).is_none() {
                sh(&["usermod", "--add-subuids", &range, TEST_USER]);
            }
            if sub_range("/etc/subgid", TEST_USER).is_none() {
                sh(&["usermod", "--add-subgids", &range, TEST_USER]);
            }
        }
        lookup(TEST_USER).expect("the rootless test user")
    })
}

/// The guest's delegated user, when this host has it (with its subordinate ranges).
pub fn guest_user() -> Option<User> {
    lookup(GUEST_USER)
}

/// `dir` and every directory below it, the deepest first (for rmdir of a cgroup tree).
pub fn subdirs_deepest_first(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(subdirs_deepest_first(&e.path()));
            }
        }
    }
    out.push(dir.to_path_buf());
    out
}

/// `chown -R user: path`.
pub fn chown_to(path: &Path, user: &User) {
    sh(&["chown", "-R", "-h", &format!("{}:{}", user.uid, user.gid), path.to_str().unwrap()]);
}

/// Make `cmd` run as `user`: ids and groups dropped by the spawn (std's `uid` clears the
/// supplementary groups of a root parent), a login-like environment, `XDG_RUNTIME_DIR` in `dir`.
pub fn as_user(cmd: &mut Command, user: &User, dir: &Path) {
    cmd.uid(user.uid).gid(user.gid);
    user_env(cmd, user, dir);
}

/// The environment of [`as_user`] alone (for a command that drops to the user itself).
pub fn user_env(cmd: &mut Command, user: &User, dir: &Path) {
    cmd.env("USER", &user.name).env("LOGNAME", &user.name).env("HOME", dir.join("home"));
    cmd.env("XDG_RUNTIME_DIR", dir.join("xdg"));
    cmd.env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
}

impl Ctx {
    /// A context for `user`: the test dir (bundle and --root inside) owned by the user, the
    /// config from `$HUSK_BIN spec --rootless` run as the user (so it maps that user to root),
    /// `terminal: false`, args `["true"]`, and no cgroupsPath (runc 1.1 refuses an explicit one
    /// it cannot create).
    pub fn rootless_as(name: &str, user: &User) -> Ctx {
        let mut ctx = Ctx::new(name);
        ctx.user = Some(user.clone());
        for d in ["xdg", "home", "spec"] {
            fs::create_dir_all(ctx.dir.join(d)).unwrap();
        }
        chown_to(&ctx.dir, user);
        fs::set_permissions(ctx.dir.join("xdg"), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let mut c = Command::new(bin());
        c.args(["spec", "--rootless"]).current_dir(ctx.dir.join("spec")).stdin(Stdio::null());
        as_user(&mut c, user, &ctx.dir);
        run_cmd(c, &ctx.dir, TIMEOUT).ok();
        let mut config: Value = serde_json::from_slice(&fs::read(ctx.dir.join("spec/config.json")).unwrap()).unwrap();
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(["true"]);
        config["linux"]["cgroupsPath"] = json!("");
        ctx.config = config;
        ctx
    }

    /// [`Ctx::rootless_as`] the host's dedicated test user.
    pub fn rootless(name: &str) -> Ctx {
        Ctx::rootless_as(name, test_user())
    }

    /// Map the user to root and their subordinate range to 1..65536 (what rootless Podman does):
    /// multi-range maps, which go through newuidmap/newgidmap.
    pub fn map_subids(&mut self) {
        let u = self.user.clone().expect("a rootless context");
        self.config["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": u.uid, "size": 1},
            {"containerID": 1, "hostID": u.subuid.0, "size": u.subuid.1}
        ]);
        self.config["linux"]["gidMappings"] = json!([
            {"containerID": 0, "hostID": u.gid, "size": 1},
            {"containerID": 1, "hostID": u.subgid.0, "size": u.subgid.1}
        ]);
    }
}
