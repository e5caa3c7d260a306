//! `linux.seccomp`: real profiles loaded into real containers, their effects observed from inside
//! (the errno a syscall fails with, SIGSYS kills, a notify agent answering a syscall), Docker's
//! default profile, the load order, errors that name the field, and husk's compiled-filter cache.
mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// Exit status of a process killed by SIGSYS, as `run` reports it.
const SIGSYS_STATUS: i32 = 128 + libc::SIGSYS;

fn allow_but(rules: Value) -> Value {
    json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules})
}

fn with_profile(ctx: &mut Ctx, profile: Value) {
    ctx.config["linux"]["seccomp"] = profile;
}

#[test]
fn seccomp_errno_with_errno_ret_and_default_eperm() {
    let mut ctx = Ctx::new("sc-errno");
    with_profile(
        &mut ctx,
        allow_but(json!([
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EXDEV},
            {"names": ["rmdir", "unlinkat"], "action": "SCMP_ACT_ERRNO"}
        ])),
    );
    let out = ctx.run_sh("mkdir /tmp/x 2>&1; rmdir /tmp 2>&1; echo done");
    assert!(out.contains("can't create directory '/tmp/x': Invalid cross-device link"), "{out}");
    assert!(out.contains("Operation not permitted"), "no errnoRet means EPERM: {out}");
    assert!(out.ends_with("done\n"));
}

#[test]
fn seccomp_kill_actions_end_the_process_with_sigsys() {
    for action in ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL", "SCMP_ACT_TRAP"] {
        let mut ctx = Ctx::new("sc-kill");
        // sync(2): nothing but the sync applet calls it (busybox calls uname at startup).
        with_profile(&mut ctx, allow_but(json!([{"names": ["sync"], "action": action}])));
        ctx.config["process"]["args"] = json!(["sync"]);
        let id = ctx.id();
        let o = ctx.run(&id).no_panic();
        assert_eq!(o.code, Some(SIGSYS_STATUS), "{action}: {o}");
        assert_eq!(o.stdout, "", "{action}");
        // The shell survives a killed child (a subshell: busybox runs sync in-process) and sees
        // SIGSYS as its status.
        let out = ctx.run_sh("(sync); echo status=$?");
        assert_eq!(out, format!("status={SIGSYS_STATUS}\n"), "{action}");
    }
}

#[test]
fn seccomp_trace_without_tracer_is_enosys_and_log_allows() {
    let mut ctx = Ctx::new("sc-trace");
    with_profile(
        &mut ctx,
        allow_but(json!([
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_TRACE"},
            {"names": ["uname"], "action": "SCMP_ACT_LOG"}
        ])),
    );
    let out = ctx.run_sh("mkdir /tmp/t 2>&1; uname");
    assert_eq!(out, "mkdir: can't create directory '/tmp/t': Function not implemented\nLinux\n");
}

/// `kill -0 P` for P in 1..=5 with a rule on kill's pid argument that fails with EXDEV: one
/// character per pid: `X` the rule matched, `o` the pid exists (the shell is pid 1), `.` it does not.
fn kill_sweep(ctx: &mut Ctx, args: Value) -> String {
    with_profile(
        ctx,
        allow_but(json!([{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EXDEV, "args": args}])),
    );
    ctx.run_sh(
        r#"for p in 1 2 3 4 5; do r=$(kill -0 $p 2>&1); case "$r" in *ross-device*) printf X;; *"o such process"*) printf .;; "") printf o;; *) printf "[$r]";; esac; done"#,
    )
}

#[test]
fn seccomp_argument_operators() {
    let mut ctx = Ctx::new("sc-ops");
    let cases = [
        ("SCMP_CMP_EQ", 3, "o.X.."),
        ("SCMP_CMP_NE", 3, "XX.XX"),
        ("SCMP_CMP_LT", 3, "XX..."),
        ("SCMP_CMP_LE", 3, "XXX.."),
        ("SCMP_CMP_GE", 3, "o.XXX"),
        ("SCMP_CMP_GT", 3, "o..XX"),
    ];
    for (op, value, want) in cases {
        let got = kill_sweep(&mut ctx, json!([{"index": 0, "value": value, "op": op}]));
        assert_eq!(got, want, "{op} {value}");
    }
    // MASKED_EQ: value is the mask, valueTwo what the masked argument must be: odd pids.
    let got = kill_sweep(&mut ctx, json!([{"index": 0, "value": 1, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"}]));
    assert_eq!(got, "X.X.X");
    // Conditions on different arguments are ANDed: pid 3 and signal 0 ...
    let got = kill_sweep(
        &mut ctx,
        json!([{"index": 0, "value": 3, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]),
    );
    assert_eq!(got, "o.X..");
    // ... and pid 3 with signal 9 never happens here.
    let got = kill_sweep(
        &mut ctx,
        json!([{"index": 0, "value": 3, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]),
    );
    assert_eq!(got, "o....");
    // Two conditions on one argument mean either (runc's reading, which Docker's profile needs).
    let got = kill_sweep(
        &mut ctx,
        json!([{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 4, "op": "SCMP_CMP_EQ"}]),
    );
    assert_eq!(got, "oX.X.");
}

#[test]
fn seccomp_unknown_syscall_names_are_skipped() {
    let mut ctx = Ctx::new("sc-unknown");
    with_profile(
        &mut ctx,
        allow_but(json!([{"names": ["no_such_syscall_anywhere", "mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}])),
    );
    let out = ctx.run_sh("mkdir /tmp/u 2>&1; true");
    assert!(out.contains("Operation not permitted"), "{out}");
}

#[test]
fn seccomp_flags_and_status() {
    // runc 1.1 differs: "seccomp flags are not yet supported by runc".
    let mut ctx = Ctx::new("sc-flags");
    let mut p = allow_but(json!([{"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO"}]));
    p["flags"] = json!(["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]);
    with_profile(&mut ctx, p);
    let out = ctx.run_sh("grep -E '^Seccomp(_filters)?:' /proc/self/status");
    assert_eq!(out, "Seccomp:\t2\nSeccomp_filters:\t1\n", "one filter, filter mode");
}

#[test]
fn seccomp_loaded_last_with_no_new_privileges() {
    // Everything husk itself does after the capability drop and while waiting for start is
    // forbidden here; with noNewPrivileges the filter must come after all of it, right before
    // execve, so the container still starts.
    let mut ctx = Ctx::new("sc-last");
    ctx.config["process"]["noNewPrivileges"] = json!(true);
    let setup = [
        "capset",
        "setresuid",
        "setresgid",
        "setgroups",
        "prctl",
        "umask",
        "chdir",
        "accept4",
        "accept",
        "close_range",
        "rt_sigprocmask",
        "rt_sigaction",
        "recvfrom",
        "recvmsg",
        "sendto",
        "sendmsg",
    ];
    with_profile(&mut ctx, allow_but(json!([{"names": setup, "action": "SCMP_ACT_ERRNO", "errnoRet": 1}])));
    ctx.sh("grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status");
    let id = ctx.id();
    let o = ctx.create(&id).ok();
    ctx.husk(&["start", &id]).ok();
    assert!(wait_for(10, || o.stdout_now().lines().count() == 2), "{}", o.stdout_now());
    assert_eq!(o.stdout_now(), "NoNewPrivs:\t1\nSeccomp:\t2\n");
}

#[test]
fn seccomp_loaded_before_the_capability_drop_without_no_new_privileges() {
    // Without noNewPrivileges a process needs CAP_SYS_ADMIN to load a filter; a non-root user
    // has none after the drop, so the filter must be loaded before it.
    let mut ctx = Ctx::new("sc-early");
    ctx.config["process"]["noNewPrivileges"] = json!(false);
    ctx.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    with_profile(
        &mut ctx,
        allow_but(json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EXDEV}])),
    );
    let out = ctx.run_sh("id -u; grep -E '^(NoNewPrivs|Seccomp|CapEff):' /proc/self/status; mkdir /tmp/e 2>&1; true");
    assert_eq!(
        out,
        "1000\nCapEff:\t0000000000000000\nNoNewPrivs:\t0\nSeccomp:\t2\nmkdir: can't create directory '/tmp/e': Invalid cross-device link\n"
    );
}

#[test]
fn seccomp_errors_name_the_field() {
    // runc 1.1 differs: it accepts errnoRet with SCMP_ACT_ALLOW, which the spec says MUST fail.
    let bad = [
        (
            allow_but(json!([{"names": ["mkdir"], "action": "SCMP_ACT_ALLOW", "errnoRet": 5}])),
            "linux.seccomp.syscalls[0].errnoRet",
        ),
        (allow_but(json!([{"names": ["mkdir"], "action": "SCMP_ACT_BOGUS"}])), "linux.seccomp.syscalls[0].action"),
        (
            allow_but(
                json!([{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}, {"names": [], "action": "SCMP_ACT_ERRNO"}]),
            ),
            "linux.seccomp.syscalls[1].names",
        ),
        (
            allow_but(
                json!([{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 7, "value": 0, "op": "SCMP_CMP_EQ"}]}]),
            ),
            "linux.seccomp.syscalls[0].args[0].index",
        ),
        (
            allow_but(
                json!([{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_SOMETIMES"}]}]),
            ),
            "linux.seccomp.syscalls[0].args[0].op",
        ),
        (json!({"defaultAction": "SCMP_ACT_NOTIFY"}), "linux.seccomp.defaultAction"),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_PDP11"]}),
            "linux.seccomp.architectures[0]",
        ),
        (json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_BOGUS"]}), "linux.seccomp.flags[0]"),
        (allow_but(json!([{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}])), "linux.seccomp.listenerPath"),
    ];
    for (profile, field) in bad {
        let mut ctx = Ctx::new("sc-bad");
        with_profile(&mut ctx, profile);
        let id = ctx.id();
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let o = ctx.create(&id).fails();
        assert_eq!(o.stderr_lines().len(), 1, "one line: {o}");
        ctx.assert_nothing_left(&id, &mounts);
        if is_husk() {
            assert!(o.stderr.contains(field), "{field}: {o}");
        }
    }
}

/// Podman's default profile (Docker's, from containers-common) turned into OCI form for this
/// machine and `caps`, as Podman and Docker do: keep the rules whose `includes` match (arch,
/// capabilities, kernel version) and whose `excludes` do not, and list the native architecture
/// with its sub-architectures.
pub fn docker_default_profile(caps: &[&str]) -> Value {
    let src: Value = serde_json::from_slice(&fs::read("/usr/share/containers/seccomp.json").expect(
        "/usr/share/containers/seccomp.json (Debian's golang-github-containers-common, installed with podman)",
    ))
    .unwrap();
    let (oci_arch, go_arch) = match std::env::consts::ARCH {
        "x86_64" => ("SCMP_ARCH_X86_64", "amd64"),
        "aarch64" => ("SCMP_ARCH_AARCH64", "arm64"),
        other => panic!("no archMap entry known for {other}"),
    };
    let mut arches = vec![json!(oci_arch)];
    for m in src["archMap"].as_array().unwrap() {
        if m["architecture"] == oci_arch {
            arches.extend(m["subArchitectures"].as_array().unwrap().iter().cloned());
        }
    }
    let uname = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let kernel: Vec<u32> = uname.split(['.', '-']).take(2).map(|p| p.trim().parse().unwrap_or(0)).collect();
    let has_cap = |c: &Value| caps.contains(&c.as_str().unwrap());
    let mut syscalls = vec![];
    for s in src["syscalls"].as_array().unwrap() {
        let inc = &s["includes"];
        let exc = &s["excludes"];
        let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
        if !list(&inc["arches"]).is_empty() && !list(&inc["arches"]).contains(&json!(go_arch)) {
            continue;
        }
        if !list(&inc["caps"]).iter().all(has_cap) {
            continue;
        }
        if let Some(min) = inc["minKernel"].as_str() {
            let min: Vec<u32> = min.split('.').map(|p| p.parse().unwrap_or(0)).collect();
            if kernel < min {
                continue;
            }
        }
        if list(&exc["arches"]).contains(&json!(go_arch)) || list(&exc["caps"]).iter().any(has_cap) {
            continue;
        }
        let mut rule = json!({"names": s["names"], "action": s["action"]});
        if let Some(e) = s.get("errnoRet").filter(|e| !e.is_null()) {
            rule["errnoRet"] = e.clone();
        }
        if let Some(a) = s.get("args").filter(|a| a.as_array().is_some_and(|a| !a.is_empty())) {
            rule["args"] = a.clone();
        }
        syscalls.push(rule);
    }
    json!({
        "defaultAction": src["defaultAction"],
        "defaultErrnoRet": src["defaultErrnoRet"],
        "architectures": arches,
        "syscalls": syscalls,
    })
}

fn default_caps(ctx: &Ctx) -> Vec<String> {
    ctx.config["process"]["capabilities"]["bounding"]
        .as_array()
        .map(|a| a.iter().map(|c| c.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn seccomp_docker_default_profile() {
    let mut ctx = Ctx::new("sc-docker");
    let caps = default_caps(&ctx);
    let caps: Vec<&str> = caps.iter().map(String::as_str).collect();
    let profile = docker_default_profile(&caps);
    let rules: usize =
        profile["syscalls"].as_array().unwrap().iter().map(|s| s["names"].as_array().unwrap().len()).sum();
    assert!(rules > 300, "Docker's profile has {rules} syscall names");
    // The profile denies chroot(2) unless the container has CAP_SYS_CHROOT. Give the container
    // the capability but keep the profile made for the default set: the kernel alone would allow
    // chroot, so a refusal is the filter's doing.
    for set in ["bounding", "effective", "permitted"] {
        ctx.config["process"]["capabilities"][set].as_array_mut().unwrap().push(json!("CAP_SYS_CHROOT"));
    }
    let script = "echo hi; ls / >/dev/null && echo ls-ok; grep ^Seccomp: /proc/self/status; \
                  chroot / true 2>/dev/null && echo chrooted || echo chroot-denied";
    assert_eq!(ctx.run_sh(script), "hi\nls-ok\nSeccomp:\t0\nchrooted\n", "control run, no profile");
    with_profile(&mut ctx, profile.clone());
    for nnp in [true, false] {
        ctx.config["process"]["noNewPrivileges"] = json!(nnp);
        let out = ctx.run_sh(script);
        assert_eq!(out, "hi\nls-ok\nSeccomp:\t2\nchroot-denied\n", "noNewPrivileges {nnp}");
    }
    // defaultErrnoRet: take mkdir out of the allow list and it fails with the profile's ENOSYS.
    let mut p = profile;
    for s in p["syscalls"].as_array_mut().unwrap() {
        if s["action"] == "SCMP_ACT_ALLOW" {
            s["names"].as_array_mut().unwrap().retain(|n| n != "mkdir" && n != "mkdirat");
        }
    }
    with_profile(&mut ctx, p);
    let out = ctx.run_sh("mkdir /tmp/d 2>&1; true");
    assert_eq!(out, "mkdir: can't create directory '/tmp/d': Function not implemented\n");
}

#[test]
fn seccomp_cache_reused_and_saved_for_exec() {
    if !is_husk() {
        return; // husk's own cache and state layout
    }
    let mut ctx = Ctx::new("sc-cache");
    let caps = default_caps(&ctx);
    let caps: Vec<&str> = caps.iter().map(String::as_str).collect();
    with_profile(&mut ctx, docker_default_profile(&caps));
    let cache = ctx.root.join(".cache:seccomp");
    let entries = || fs::read_dir(&cache).map(|d| d.flatten().count()).unwrap_or(0);
    ctx.sh("exec sleep 100");
    let id = ctx.id();
    ctx.create(&id).ok();
    assert_eq!(entries(), 1, "compiled once, cached");
    let saved = fs::read(ctx.root.join(&id).join("seccomp.bpf")).unwrap();
    let cached = fs::read(fs::read_dir(&cache).unwrap().flatten().next().unwrap().path()).unwrap();
    assert_eq!(&cached[40..], &saved[..], "the state dir holds the cached program");
    let state: Value = serde_json::from_slice(&fs::read(ctx.root.join(&id).join("state.json")).unwrap()).unwrap();
    assert_eq!(state["seccomp"]["notify"], false);
    ctx.husk(&["delete", "--force", &id]).ok();
    // The same profile again: a hit (no new entry); another profile: a second entry.
    assert_eq!(ctx.run_sh("grep ^Seccomp: /proc/self/status"), "Seccomp:\t2\n");
    assert_eq!(entries(), 1);
    with_profile(&mut ctx, allow_but(json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}])));
    ctx.run_sh("true");
    assert_eq!(entries(), 2);
    // A corrupt entry is never loaded: it is recompiled.
    for e in fs::read_dir(&cache).unwrap().flatten() {
        fs::write(e.path(), b"HUSKBPF1garbage").unwrap();
    }
    assert!(ctx.run_sh("mkdir /tmp/c 2>&1; true").contains("Operation not permitted"));
}

#[test]
fn seccomp_parallel_creates_share_the_cache() {
    let ctx = Ctx::new("sc-par");
    let caps = default_caps(&ctx);
    let caps: Vec<&str> = caps.iter().map(String::as_str).collect();
    let mut base = ctx.config.clone();
    base["linux"]["seccomp"] = docker_default_profile(&caps);
    base["process"]["args"] = json!(["sh", "-c", "grep ^Seccomp: /proc/self/status"]);
    std::thread::scope(|s| {
        for t in 0..4 {
            let (ctx, base) = (&ctx, &base);
            s.spawn(move || {
                for i in 0..3 {
                    let bundle = ctx.dir.join(format!("b{t}-{i}"));
                    fs::create_dir_all(&bundle).unwrap();
                    let mut c = base.clone();
                    c["root"]["path"] = json!(ctx.rootfs());
                    let id = ctx.id();
                    c["linux"]["cgroupsPath"] = json!(format!("/{CGROUP_PARENT}/{id}"));
                    fs::write(bundle.join("config.json"), serde_json::to_vec(&c).unwrap()).unwrap();
                    let o = ctx.husk(&["run", "--bundle", bundle.to_str().unwrap(), &id]);
                    assert!(o.success(), "{o}");
                    assert_eq!(o.stdout, "Seccomp:\t2\n");
                }
            });
        }
    });
    if is_husk() {
        assert_eq!(fs::read_dir(ctx.root.join(".cache:seccomp")).unwrap().flatten().count(), 1);
    }
}

/// A seccomp agent: answer every notified `getppid` with `ppid` until the filter has no users.
/// Returns how many it answered.
fn serve_getppid(fd: &OwnedFd, ppid: i64) -> usize {
    let mut answered = 0;
    loop {
        let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one pollfd, valid for the call.
        let r = unsafe { libc::poll(&mut pfd, 1, 20_000) };
        if r <= 0 || pfd.revents & libc::POLLIN == 0 {
            return answered; // POLLHUP: every process using the filter is gone
        }
        // SAFETY: zeroed seccomp_notif/resp are valid inputs; the ioctls fill or read them.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) } != 0 {
            continue; // the caller died meanwhile
        }
        let mut resp: libc::seccomp_notif_resp = unsafe { std::mem::zeroed() };
        resp.id = req.id;
        if req.data.nr == libc::SYS_getppid as i32 {
            resp.val = ppid;
            answered += 1;
        } else {
            resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32;
        }
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
    }
}

#[test]
fn seccomp_notify_agent_answers_a_syscall() {
    let mut ctx = Ctx::new("sc-notify");
    let sock = ctx.dir.join("agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let mut p = allow_but(json!([{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]));
    p["listenerPath"] = json!(sock);
    p["listenerMetadata"] = json!("MKNOD=/dev/null;husk-test");
    if is_husk() {
        // runc 1.1 differs: no seccomp flags at all.
        p["flags"] = json!(["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]);
    }
    with_profile(&mut ctx, p);
    ctx.config["annotations"] = json!({"org.husk.test": "notify"});
    let agent = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let (payload, fd) = recv_with_fd(&stream).unwrap();
        // One state per connection, then the runtime closes it.
        let mut rest = [0u8; 1];
        assert_eq!(std::io::Read::read(&mut &stream, &mut rest).unwrap(), 0, "connection closed after the state");
        let state: Value = serde_json::from_slice(&payload).unwrap();
        (state, serve_getppid(&fd, 4242))
    });
    // The notify fd went to the agent, not to the container: only stdio and ls's own fd.
    ctx.sh("echo ppid=$PPID; ls /proc/self/fd | tr '\\n' ' '");
    let id = ctx.id();
    let o = ctx.create(&id).ok();
    let pid = ctx.state(&id)["pid"].as_i64().unwrap();
    ctx.husk(&["start", &id]).ok();
    let (state, answered) = agent.join().unwrap();
    assert_eq!(o.stdout_now(), "ppid=4242\n0 1 2 3 ", "the agent's answer is what getppid returned");
    assert!(answered >= 1);
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert_eq!(state["pid"], pid);
    assert_eq!(state["metadata"], "MKNOD=/dev/null;husk-test");
    assert!(state["ociVersion"].is_string());
    let s = &state["state"];
    assert_eq!(s["id"], id.as_str());
    assert_eq!(s["status"], "creating");
    assert_eq!(s["pid"], pid);
    assert_eq!(Path::new(s["bundle"].as_str().unwrap()), ctx.bundle.as_path());
    assert_eq!(s["annotations"]["org.husk.test"], "notify");
}

#[test]
fn seccomp_notify_agent_missing_fails_create() {
    let mut ctx = Ctx::new("sc-noagent");
    let mut p = allow_but(json!([{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]));
    p["listenerPath"] = json!(ctx.dir.join("nobody-listens.sock"));
    with_profile(&mut ctx, p);
    // Checked before the container is made: not even its prestart hook runs.
    let marker = ctx.dir.join("prestart-ran");
    ctx.config["hooks"] = json!({"prestart": [{"path": "/bin/touch", "args": ["touch", marker]}]});
    let id = ctx.id();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let o = ctx.create(&id).fails();
    ctx.assert_nothing_left(&id, &mounts);
    if is_husk() {
        // runc's words (runc connects only once the filter is loaded: its prestart hooks run).
        assert!(o.stderr.contains("linux.seccomp.listenerPath: failed to connect with seccomp agent"), "{o}");
        assert!(!marker.exists(), "the prestart hook ran before the agent was found missing");
    }
}

#[test]
fn exec_with_no_new_privileges_loads_the_filter_after_the_fork() {
    // The exec'd process is forked into the container's pid namespace by the exec trampoline
    // (docs/exec.md); with noNewPrivileges the filter is loaded by that process right before its
    // execve, so a profile may forbid the fork, the wait and everything else a runtime does.
    let mut ctx = Ctx::new("sc-execlast");
    ctx.config["process"]["noNewPrivileges"] = json!(true);
    let forbidden = ["clone", "clone3", "fork", "vfork", "setsid", "ioctl", "sendto", "prctl", "fcntl", "close_range"];
    with_profile(&mut ctx, allow_but(json!([{"names": forbidden, "action": "SCMP_ACT_ERRNO", "errnoRet": 1}])));
    let (id, _) = ctx.running("exec sleep 1000");
    let o = ctx.husk(&["exec", &id, "cat", "/proc/self/status"]).ok();
    assert!(o.stdout.contains("Seccomp:\t2"), "{o}");
    let o = ctx.husk(&["exec", &id, "sh", "-c", "sleep 1 & wait"]).fails();
    assert_ne!(o.code, Some(255), "the program ran, its fork was refused: {o}");
}

/// The host's python3 inside the container (its /usr bind-mounted read-only), to make any
/// syscall by number.
fn with_host_python(ctx: &mut Ctx) {
    ctx.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]
    }));
    for (link, target) in [("lib", "usr/lib"), ("lib64", "usr/lib64")] {
        std::os::unix::fs::symlink(target, ctx.rootfs().join(link)).unwrap();
    }
    ctx.config["process"]["env"] = json!(["PATH=/usr/bin:/bin"]);
}

/// The errno of each syscall number, made with no arguments, as the container sees it.
const ERRNO_OF: &str = "import ctypes, sys\n\
    libc = ctypes.CDLL(None, use_errno=True)\n\
    out = []\n\
    for n in sys.argv[1:]:\n\
    \x20   ctypes.set_errno(0)\n\
    \x20   r = libc.syscall(int(n))\n\
    \x20   out.append('%s=%d' % (n, ctypes.get_errno() if r == -1 else 0))\n\
    print(' '.join(out))\n";

#[test]
fn seccomp_syscalls_newer_than_the_profile_get_enosys() {
    // Docker's current profile (moby's default.json) sets defaultErrnoRet 1, EPERM, and relies
    // on the runtime to give syscalls newer than the profile ENOSYS (runc's patchbpf stub), so
    // that a C library falls back to the older call. Podman's profile as converted here, with
    // its defaultErrnoRet 38 left out, is that profile.
    if !std::path::Path::new("/usr/bin/python3").exists() {
        return;
    }
    let mut ctx = Ctx::new("sc-enosys");
    with_host_python(&mut ctx);
    let caps = default_caps(&ctx);
    let caps: Vec<&str> = caps.iter().map(String::as_str).collect();
    let mut p = docker_default_profile(&caps);
    p.as_object_mut().unwrap().remove("defaultErrnoRet");
    with_profile(&mut ctx, p);
    // 1000: above every syscall of x86_64 and of the profile; 103, syslog, below the largest
    // the profile names but not allowed without CAP_SYSLOG: the default action, EPERM.
    ctx.config["process"]["args"] = json!(["python3", "-c", ERRNO_OF, "1000", "103", "39"]);
    let id = ctx.id();
    let o = ctx.run(&id).ok();
    assert_eq!(o.stdout.trim(), format!("1000={} 103={} 39=0", libc::ENOSYS, libc::EPERM), "{o}");
}

#[test]
fn seccomp_flags_as_runc_sets_them() {
    // runc 1.1 differs: no seccomp flags at all.
    if !is_husk() {
        return;
    }
    let features: Value = serde_json::from_str(&Ctx::new("sc-flagsf").husk(&["features"]).ok().stdout).unwrap();
    let supported = &features["linux"]["seccomp"]["supportedFlags"];
    let spec_allow =
        if supported.as_array().unwrap().contains(&json!("SECCOMP_FILTER_FLAG_SPEC_ALLOW")) { 4 } else { 0 };
    let cases = [
        // No `flags`: SPEC_ALLOW where the kernel has it (runc main); `[]`: none at all.
        (None, spec_allow),
        (Some(json!([])), 0),
        // TSYNC is known and ignored, as by runc.
        (Some(json!(["SECCOMP_FILTER_FLAG_TSYNC"])), 0),
        (Some(json!(["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"])), 2),
        (Some(json!(["SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG"])), 6),
    ];
    for (flags, want) in cases {
        let mut ctx = Ctx::new("sc-flagsv");
        let mut p = allow_but(json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]));
        if let Some(f) = &flags {
            p["flags"] = f.clone();
        }
        with_profile(&mut ctx, p);
        ctx.sh("mkdir /tmp/x 2>&1; true");
        let id = ctx.id();
        ctx.write_config(&id);
        let o = ctx.husk(&["--debug", "run", "--bundle", ctx.bundle.to_str().unwrap(), &id]).ok();
        assert!(o.stdout.contains("Operation not permitted"), "{flags:?}: {o}");
        // runc's debug line (its tests read it too): what husk passes to seccomp(2).
        assert!(o.stderr.contains(&format!("seccomp filter flags: {want}")), "{flags:?}: {o}");
    }
    // WAIT_KILLABLE_RECV without a listener: the kernel would refuse the filter (runc fails
    // then); husk says so at create, naming the field.
    let mut ctx = Ctx::new("sc-flagsw");
    let mut p = allow_but(json!([{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]));
    p["flags"] = json!(["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]);
    with_profile(&mut ctx, p);
    let id = ctx.id();
    ctx.create(&id)
        .fails_with("linux.seccomp.flags[1]: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs an SCMP_ACT_NOTIFY");
}
