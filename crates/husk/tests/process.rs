//! The container process: args, env, cwd, user, umask, rlimits, capabilities, no_new_privs,
//! oom_score_adj, --preserve-fds and fd hygiene, the console socket.
mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;

#[test]
fn args_env_cwd() {
    let mut ctx = Ctx::new("argsenv");
    ctx.config["process"]["env"] = json!(["PATH=/bin", "FOO=bar baz", "EMPTY="]);
    ctx.config["process"]["cwd"] = json!("/tmp");
    ctx.config["process"]["args"] =
        json!(["sh", "-c", "pwd; echo \"$FOO\"; echo \"[$EMPTY]\"; echo \"$0 $1\"", "zero", "one"]);
    let id = ctx.id();
    let o = ctx.run(&id).ok();
    assert_eq!(o.stdout, "/tmp\nbar baz\n[]\nzero one\n");
}

#[test]
fn args0_resolved_with_container_path() {
    let mut ctx = Ctx::new("argspath");
    ctx.config["process"]["env"] = json!(["PATH=/bin"]);
    ctx.config["process"]["args"] = json!(["busybox", "echo", "found"]);
    let id = ctx.id();
    assert_eq!(ctx.run(&id).ok().stdout, "found\n");
}

#[test]
fn cwd_created_if_missing() {
    let mut ctx = Ctx::new("cwdmk");
    ctx.config["root"]["readonly"] = json!(false);
    ctx.config["process"]["cwd"] = json!("/work/dir");
    assert_eq!(ctx.run_sh("pwd"), "/work/dir\n");
}

#[test]
fn home_set_from_passwd() {
    let mut ctx = Ctx::new("home");
    ctx.config["process"]["env"] = json!(["PATH=/bin"]);
    assert_eq!(ctx.run_sh("echo $HOME"), "/root\n");
}

#[test]
fn user_ids_and_groups() {
    let mut ctx = Ctx::new("userids");
    ctx.config["process"]["user"] = json!({"uid": 1000, "gid": 1001, "additionalGids": [5, 2000]});
    let out = ctx.run_sh("id -u; id -g; grep -E '^(Uid|Gid|Groups):' /proc/self/status");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "1000");
    assert_eq!(l[1], "1001");
    assert!(l[2].split_whitespace().skip(1).all(|u| u == "1000"), "{out}");
    assert!(l[3].split_whitespace().skip(1).all(|u| u == "1001"), "{out}");
    let mut groups: Vec<&str> = l[4].split_whitespace().skip(1).collect();
    groups.sort();
    assert_eq!(groups, ["2000", "5"], "{out}");
}

#[test]
fn umask() {
    let mut ctx = Ctx::new("umask");
    ctx.config["process"]["user"]["umask"] = json!(0o027);
    assert_eq!(ctx.run_sh("umask"), "0027\n");
}

#[test]
fn rlimits() {
    let mut ctx = Ctx::new("rlimits");
    ctx.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 777, "hard": 888},
        {"type": "RLIMIT_NPROC", "soft": 1234, "hard": 2345},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
    ]);
    let out = ctx.run_sh("ulimit -n; ulimit -Hn; grep -E 'Max (processes|core file size)' /proc/self/limits");
    let l: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(l[0], ["777"]);
    assert_eq!(l[1], ["888"]);
    let procs = l.iter().find(|x| x.get(1) == Some(&"processes")).expect(&out);
    assert_eq!(&procs[2..4], ["1234", "2345"]);
    let core = l.iter().find(|x| x.get(1) == Some(&"core")).expect(&out);
    assert_eq!(&core[4..6], ["0", "0"]);
}

fn caps_of(status: &str) -> [u64; 5] {
    let f = |k| u64::from_str_radix(status_field(status, k).unwrap_or_else(|| panic!("{k}: {status}")), 16).unwrap();
    [f("CapInh"), f("CapPrm"), f("CapEff"), f("CapBnd"), f("CapAmb")]
}

#[test]
fn capabilities_root_default_sets() {
    // The default spec: bounding = effective = permitted = {AUDIT_WRITE, KILL, NET_BIND_SERVICE},
    // no inheritable. CapInh must be empty (CVE-2022-29162).
    let mut ctx = Ctx::new("capsroot");
    let out = ctx.run_sh("cat /proc/self/status");
    let [inh, prm, eff, bnd, _amb] = caps_of(&out);
    let want = caps_mask(&["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    assert_eq!(inh, 0, "CapInh must be empty");
    assert_eq!(bnd, want, "CapBnd");
    assert_eq!(prm, want, "CapPrm");
    assert_eq!(eff, want, "CapEff");
}

#[test]
fn capabilities_custom_root() {
    let mut ctx = Ctx::new("capscustom");
    let set = ["CAP_CHOWN", "CAP_NET_RAW", "CAP_SYS_CHROOT"];
    ctx.config["process"]["capabilities"] = json!({
        "bounding": set, "effective": set, "permitted": set, "inheritable": [], "ambient": []
    });
    let out = ctx.run_sh("cat /proc/self/status");
    let [inh, prm, eff, bnd, amb] = caps_of(&out);
    let want = caps_mask(&set);
    assert_eq!((inh, prm, eff, bnd, amb), (0, want, want, want, 0), "{out}");
}

#[test]
fn capabilities_nonroot_ambient() {
    // A non-root process keeps exactly its ambient set across exec.
    let mut ctx = Ctx::new("capsamb");
    ctx.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    ctx.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"],
        "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE"]
    });
    let out = ctx.run_sh("cat /proc/self/status");
    let [inh, prm, eff, bnd, amb] = caps_of(&out);
    let nbs = caps_mask(&["CAP_NET_BIND_SERVICE"]);
    assert_eq!(bnd, caps_mask(&["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"]), "CapBnd");
    assert_eq!(inh, nbs, "CapInh");
    assert_eq!(amb, nbs, "CapAmb");
    assert_eq!(prm, nbs, "CapPrm");
    assert_eq!(eff, nbs, "CapEff");
}

#[test]
fn capabilities_nonroot_none() {
    let mut ctx = Ctx::new("capsnone");
    ctx.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let out = ctx.run_sh("cat /proc/self/status");
    let [inh, prm, eff, _bnd, amb] = caps_of(&out);
    assert_eq!((inh, prm, eff), (0, 0, 0), "{out}");
    // Nor ambient ones (runc 1.1's default spec lists some without inheritable ones: the
    // kernel cannot raise those either).
    assert_eq!(amb, 0, "{out}");
}

#[test]
fn no_new_privileges() {
    let mut ctx = Ctx::new("nnp");
    ctx.config["process"]["noNewPrivileges"] = json!(true);
    assert_eq!(ctx.run_sh("grep NoNewPrivs /proc/self/status").split_whitespace().last(), Some("1"));
    ctx.config["process"]["noNewPrivileges"] = json!(false);
    assert_eq!(ctx.run_sh("grep NoNewPrivs /proc/self/status").split_whitespace().last(), Some("0"));
}

#[test]
fn oom_score_adj() {
    let mut ctx = Ctx::new("oom");
    ctx.config["process"]["oomScoreAdj"] = json!(123);
    assert_eq!(ctx.run_sh("cat /proc/self/oom_score_adj"), "123\n");
}

/// Run the runtime with two files open on fds 3 and 4 (not close-on-exec).
fn run_with_fds(ctx: &Ctx, id: &str, extra: &[&str]) -> Out {
    run_with_fds_env(ctx, id, extra, &[])
}

fn run_with_fds_env(ctx: &Ctx, id: &str, extra: &[&str], env: &[(&str, &str)]) -> Out {
    ctx.write_config(id);
    let a = ctx.dir.join("fd3.txt");
    let b = ctx.dir.join("fd4.txt");
    fs::write(&a, "three\n").unwrap();
    fs::write(&b, "four\n").unwrap();
    let fa = fs::File::open(&a).unwrap();
    let fb = fs::File::open(&b).unwrap();
    // Park them on high fds first so dup2 onto 3 and 4 cannot clobber one another.
    let ha = unsafe { libc::fcntl(fa.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 200) };
    let hb = unsafe { libc::fcntl(fb.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 200) };
    assert!(ha >= 200 && hb >= 200);
    let (ha, hb) = unsafe { (OwnedFd::from_raw_fd(ha), OwnedFd::from_raw_fd(hb)) };
    let (ra, rb): (RawFd, RawFd) = (ha.as_raw_fd(), hb.as_raw_fd());
    let mut c = if env.is_empty() {
        ctx.cmd()
    } else {
        // As systemd does: LISTEN_PID is the pid of the process the fds are for, the runtime.
        let mut c = std::process::Command::new("sh");
        c.arg("-c").arg("LISTEN_PID=$$ exec \"$@\"").arg("sh").arg(bin()).arg("--root").arg(&ctx.root);
        c.stdin(std::process::Stdio::null()).current_dir(&ctx.dir).envs(env.iter().copied());
        c
    };
    c.arg("run").arg("--bundle").arg(&ctx.bundle).args(extra).arg(id);
    unsafe {
        c.pre_exec(move || {
            if libc::dup2(ra, 3) < 0 || libc::dup2(rb, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = ctx.exec(c);
    drop((ha, hb));
    o
}

#[test]
fn preserve_fds() {
    let mut ctx = Ctx::new("pfds");
    // `ls /proc/$$/fd` lists the shell's fds (ls's own directory fd is in ls's table, not sh's).
    // No pipes in the shell: a pipeline would make the shell hold pipe fds while ls runs.
    ctx.sh("ls /proc/$$/fd; echo --; cat <&3; cat <&4");
    let id = ctx.id();
    let o = run_with_fds(&ctx, &id, &["--preserve-fds", "2"]).ok();
    assert_eq!(o.stdout, "0\n1\n2\n3\n4\n--\nthree\nfour\n", "{o}");
    let id = ctx.id();
    let o = run_with_fds(&ctx, &id, &["--preserve-fds=1"]).no_panic();
    assert!(o.stdout.starts_with("0\n1\n2\n3\n--\nthree\n"), "{o}");
}

#[test]
fn socket_activation_fds() {
    // systemd socket activation: with LISTEN_FDS=N the caller's fds 3.. are passed on and the
    // container sees LISTEN_FDS=N and LISTEN_PID=1 (itself); --preserve-fds comes after them.
    let mut ctx = Ctx::new("listenfds");
    ctx.sh("ls /proc/$$/fd; echo \"$LISTEN_FDS $LISTEN_PID\"; cat <&3; cat <&4");
    let id = ctx.id();
    let o = run_with_fds_env(&ctx, &id, &["--preserve-fds", "1"], &[("LISTEN_FDS", "1")]).ok();
    assert_eq!(o.stdout, "0\n1\n2\n3\n4\n1 1\nthree\nfour\n", "{o}");
}

#[test]
fn no_leaked_fds() {
    // CVE-2024-21626: nothing but stdio reaches the container without --preserve-fds.
    let mut ctx = Ctx::new("nofds");
    // The trailing `true` keeps sh from exec-ing ls (whose own dir fd would show).
    ctx.sh("ls /proc/$$/fd; true");
    let id = ctx.id();
    let o = run_with_fds(&ctx, &id, &[]);
    assert_eq!(o.stdout, "0\n1\n2\n", "{o}");
}

#[test]
fn cwd_proc_self_fd_never_outside_rootfs() {
    // CVE-2024-21626: cwd=/proc/self/fd/N with a leaked host fd N would start outside the rootfs.
    let mut ctx = Ctx::new("cwdfd");
    let script = r#"P=$(readlink /proc/self/cwd); if [ "$(stat -c %d:%i "$P" 2>/dev/null)" = "$(stat -c %d:%i .)" ]; then echo INSIDE; else echo "ESCAPED $P"; fi; ls .. | grep -q husk-tests && echo ESCAPED-HOST; true"#;
    ctx.sh(script);
    for n in 3..20 {
        ctx.config["process"]["cwd"] = json!(format!("/proc/self/fd/{n}"));
        let id = ctx.id();
        let o = run_with_fds(&ctx, &id, &[]).no_panic();
        assert!(!o.stdout.contains("ESCAPED"), "cwd=/proc/self/fd/{n} started outside the rootfs: {o}");
        if o.success() {
            assert!(o.stdout.contains("INSIDE"), "{o}");
        }
    }
}

#[test]
fn console_socket() {
    let mut ctx = Ctx::new("console");
    ctx.config["process"]["terminal"] = json!(true);
    ctx.config["process"]["consoleSize"] = json!({"height": 33, "width": 111});
    ctx.sh("test -t 0 && test -t 1 && echo is-a-tty; stty size; tty; exec sleep 100");
    let sock = ctx.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let th = std::thread::spawn(move || recv_fd(listener));
    let id = ctx.id();
    ctx.create_with(&id, &["--console-socket", sock.to_str().unwrap()]).ok();
    let master = th.join().unwrap().expect("no fd received on the console socket");

    let mfd = master.as_raw_fd();
    let mut name = [0 as libc::c_char; 128];
    assert_eq!(unsafe { libc::ptsname_r(mfd, name.as_mut_ptr(), name.len()) }, 0, "the fd is not a pty master");
    assert_eq!(unsafe { libc::isatty(mfd) }, 1);
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::ioctl(mfd, libc::TIOCGWINSZ, &mut ws) }, 0);
    assert_eq!((ws.ws_row, ws.ws_col), (33, 111), "consoleSize applied");

    ctx.husk(&["start", &id]).ok();
    // Read the container's output from the master.
    unsafe { libc::fcntl(mfd, libc::F_SETFL, libc::fcntl(mfd, libc::F_GETFL) | libc::O_NONBLOCK) };
    let mut got = Vec::new();
    let ok = wait_for(10, || {
        let mut b = [0u8; 1024];
        let n = unsafe { libc::read(mfd, b.as_mut_ptr().cast(), b.len()) };
        if n > 0 {
            got.extend_from_slice(&b[..n as usize]);
        }
        let s = String::from_utf8_lossy(&got);
        s.contains("/dev/pts/") || s.contains("not a tty")
    });
    let s = String::from_utf8_lossy(&got).replace('\r', "");
    assert!(ok, "no output on the pty: {s:?}");
    assert!(s.contains("is-a-tty\n33 111\n/dev/pts/0"), "{s:?}");
    assert_eq!(ctx.status(&id), "running");
}

#[test]
fn terminal_without_console_socket_fails_create() {
    let mut ctx = Ctx::new("noconsock");
    ctx.config["process"]["terminal"] = json!(true);
    let id = ctx.id();
    ctx.create(&id).fails();
    assert!(!ctx.root.join(&id).exists());
}

#[test]
fn foreground_run_with_terminal_proxies_a_pty() {
    // No --console-socket: `run` makes the pty itself and copies its output to our stdout.
    if !is_husk() {
        return; // runc 1.1 does the same, but words its tty setup differently on a non-tty stdin
    }
    let mut ctx = Ctx::new("fgtty");
    ctx.config["process"]["terminal"] = json!(true);
    ctx.config["process"]["consoleSize"] = json!({"height": 30, "width": 100});
    ctx.sh("tty; stty size; exit 4");
    let id = ctx.id();
    let o = ctx.run(&id);
    assert_eq!(o.code, Some(4), "{o}");
    let out = o.stdout.replace('\r', "");
    assert!(out.starts_with("/dev/pts/0\n"), "{o}");
    assert_eq!(out.lines().nth(1), Some("30 100"), "consoleSize applied: {o}");
    ctx.husk(&["state", &id]).fails_with("does not exist");
}

#[test]
fn env_last_entry_wins_path_included() {
    // runc's prepareEnv: one entry per name, the last one's value in the last one's place, so
    // the program is looked up in the last PATH; an empty HOME is replaced from /etc/passwd.
    let mut ctx = Ctx::new("envdedup");
    ctx.config["process"]["env"] = json!(["PATH=/nope", "A=1", "HOME=", "PATH=/bin", "A=2"]);
    ctx.config["process"]["args"] = json!(["env"]);
    let id = ctx.id();
    let o = ctx.run(&id).ok();
    let mut lines: Vec<&str> = o.stdout.lines().collect();
    lines.sort();
    assert_eq!(lines, ["A=2", "HOME=/root", "PATH=/bin"], "{o}");
}

#[test]
fn env_entry_without_equals_is_refused() {
    // runc 1.1 differs: it passes such an entry on; runc main refuses it.
    let mut ctx = Ctx::new("envbad");
    for (env, why) in [("NOEQUALS", "missing '='"), ("=value", "name cannot be empty")] {
        ctx.config["process"]["env"] = json!(["PATH=/bin", env]);
        let id = ctx.id();
        let o = ctx.create(&id).fails_with(why);
        assert!(o.stderr.contains("invalid environment variable"), "{o}");
        if is_husk() {
            assert!(o.stderr.contains("process.env[1]"), "{o}");
        }
        ctx.husk(&["state", &id]).fails_with("does not exist");
    }
}

#[test]
fn unknown_capabilities_are_warned_about_and_left_out() {
    // runc: `ignoring unknown or unavailable capabilities: [...]`, and the container runs.
    let mut ctx = Ctx::new("capsunknown");
    ctx.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_KILL", "CAP_FUTURE_THING"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL", "CAP_OTHER"]
    });
    let log = ctx.dir.join("husk.log");
    ctx.global = vec!["--log".into(), log.to_str().unwrap().into()];
    let out = ctx.run_sh("cat /proc/self/status");
    let [_, prm, _, bnd, _] = caps_of(&out);
    assert_eq!((prm, bnd), (caps_mask(&["CAP_KILL"]), caps_mask(&["CAP_KILL"])));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("ignoring unknown or unavailable capabilities: [CAP_FUTURE_THING CAP_OTHER]"), "{text}");
    assert!(text.contains("level=warning"), "{text}");
}

#[test]
fn ambient_capabilities_without_inheritable_are_warned_about() {
    // runc main tries each ambient capability and warns when the kernel refuses (not
    // inheritable): `can't raise ambient capability CAP_X: operation not permitted`. The warning
    // is made by the container's process: it reaches husk's --log through husk.
    // runc 1.1 differs: it says nothing.
    let mut ctx = Ctx::new("capsamberr");
    ctx.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL", "CAP_CHOWN"],
        "inheritable": ["CAP_CHOWN"], "ambient": ["CAP_KILL", "CAP_CHOWN"]
    });
    let log = ctx.dir.join("husk.log");
    ctx.global = vec!["--log".into(), log.to_str().unwrap().into(), "--log-format".into(), "json".into()];
    let out = ctx.run_sh("cat /proc/self/status");
    assert_eq!(caps_of(&out)[4], caps_mask(&["CAP_CHOWN"]), "CapAmb: {out}");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let warnings: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["level"] == "warning")
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert_eq!(warnings[0]["msg"], "can't raise ambient capability CAP_KILL: operation not permitted", "{text}");
}
