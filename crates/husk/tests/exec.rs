//! `exec` into a running container: output, exit status, namespaces, --process, -d, users, env,
//! capabilities and fd hygiene, and the runtime binary's protection (CVE-2019-5736).
mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;

fn running(ctx: &mut Ctx) -> (String, u64) {
    ctx.sh("exec sleep 1000");
    let id = ctx.id();
    ctx.run_with(&id, &["-d"]).ok();
    let pid = ctx.state(&id)["pid"].as_u64().unwrap();
    (id, pid)
}

#[test]
fn exec_output_and_status() {
    let mut ctx = Ctx::new("exec");
    let (id, _) = running(&mut ctx);
    let o = ctx.husk(&["exec", &id, "sh", "-c", "echo hi; echo err >&2; exit 5"]);
    assert_eq!(o.code, Some(5), "{o}");
    assert_eq!(o.stdout, "hi\n");
    assert!(o.stderr.contains("err"));
    let o = ctx.husk(&["exec", &id, "true"]).ok();
    assert_eq!(o.stdout, "");
}

#[test]
fn exec_joins_the_container() {
    let mut ctx = Ctx::new("execns");
    ctx.config["hostname"] = json!("exec-host");
    let (id, pid) = running(&mut ctx);
    let o = ctx
        .husk(&[
            "exec",
            &id,
            "sh",
            "-c",
            "hostname; for n in pid mnt net; do readlink /proc/self/ns/$n; done; cat /proc/1/comm",
        ])
        .ok();
    let l: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(l[0], "exec-host");
    for (i, ns) in ["pid", "mnt", "net"].iter().enumerate() {
        let init = fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        assert_eq!(l[1 + i], init.to_str().unwrap(), "{ns}");
    }
    assert_eq!(l[4], "sleep");
}

#[test]
fn exec_options() {
    let mut ctx = Ctx::new("execopts");
    let (id, _) = running(&mut ctx);
    let o = ctx
        .husk(&[
            "exec",
            "--user",
            "1000:1001",
            "--cwd",
            "/tmp",
            "--env",
            "FOO=bar",
            "--env=BAZ=qux",
            &id,
            "sh",
            "-c",
            "id -u; id -g; pwd; echo $FOO $BAZ",
        ])
        .ok();
    assert_eq!(o.stdout, "1000\n1001\n/tmp\nbar qux\n");
}

#[test]
fn exec_process_json() {
    let mut ctx = Ctx::new("execproc");
    let (id, _) = running(&mut ctx);
    let p = ctx.dir.join("process.json");
    let proc = json!({
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh", "-c", "echo from-json $X; grep -E '^Cap(Inh|Amb)' /proc/self/status"],
        "env": ["PATH=/bin", "X=y"],
        "cwd": "/",
        "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}
    });
    fs::write(&p, serde_json::to_vec(&proc).unwrap()).unwrap();
    let o = ctx.husk(&["exec", "--process", p.to_str().unwrap(), &id]).ok();
    let l: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(l[0], "from-json y");
    // CVE-2022-29162: no inheritable capabilities unless asked for.
    assert_eq!(status_field(&o.stdout, "CapInh"), Some("0000000000000000"), "{o}");
}

#[test]
fn exec_default_caps_inheritable_empty() {
    let mut ctx = Ctx::new("execcaps");
    let (id, _) = running(&mut ctx);
    let o = ctx.husk(&["exec", &id, "cat", "/proc/self/status"]).ok();
    assert_eq!(status_field(&o.stdout, "CapInh"), Some("0000000000000000"));
    let want = format!("{:016x}", caps_mask(&["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]));
    assert_eq!(status_field(&o.stdout, "CapBnd"), Some(want.as_str()));
    assert_eq!(status_field(&o.stdout, "NoNewPrivs"), Some("1"));
}

#[test]
fn exec_detached_pid_file() {
    let mut ctx = Ctx::new("execd");
    let (id, _) = running(&mut ctx);
    let pf = ctx.dir.join("exec.pid");
    ctx.husk(&["exec", "-d", "--pid-file", pf.to_str().unwrap(), &id, "sleep", "300"]).ok();
    let pid = read_pid_file(&pf);
    assert!(alive(pid));
    assert_eq!(fs::read_to_string(format!("/proc/{pid}/comm")).unwrap().trim(), "sleep");
}

#[test]
fn exec_in_stopped_container_fails() {
    let mut ctx = Ctx::new("execstopped");
    ctx.sh("exit 0");
    let id = ctx.id();
    ctx.run_with(&id, &["--keep"]).ok();
    let o = ctx.husk(&["exec", &id, "true"]).fails_with("cannot exec in a stopped container");
    assert_eq!(o.stderr_lines().len(), 1, "{o}");
    if is_husk() {
        // drop-in.md: callers also match this for exec on a stopped container.
        assert!(o.stderr.contains("container not running"), "{o}");
    }
    ctx.husk(&["exec", "no-such-ctr", "true"]).fails_with("does not exist");
}

#[test]
fn exec_missing_executable() {
    let mut ctx = Ctx::new("execmissing");
    let (id, _) = running(&mut ctx);
    ctx.husk(&["exec", &id, "no-such-command-husk"]).fails_with("executable file not found in $PATH");
    assert_eq!(ctx.status(&id), "running");
}

#[test]
fn exec_no_leaked_fds() {
    let mut ctx = Ctx::new("execfds");
    let (id, _) = running(&mut ctx);
    let f = fs::File::open("/etc/hostname").unwrap();
    let h = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 200) };
    let h = unsafe { OwnedFd::from_raw_fd(h) };
    let raw = h.as_raw_fd();
    let mut c = ctx.cmd();
    c.args(["exec", &id, "sh", "-c", "ls /proc/$$/fd; true"]);
    unsafe {
        c.pre_exec(move || {
            if libc::dup2(raw, 3) < 0 || libc::dup2(raw, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = ctx.exec(c).ok();
    assert_eq!(o.stdout, "0\n1\n2\n", "{o}");
    let mut c = ctx.cmd();
    c.args(["exec", "--preserve-fds", "1", &id, "sh", "-c", "ls /proc/$$/fd; true"]);
    unsafe {
        c.pre_exec(move || {
            if libc::dup2(raw, 3) < 0 || libc::dup2(raw, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = ctx.exec(c).ok();
    assert_eq!(o.stdout, "0\n1\n2\n3\n", "{o}");
}

fn file_hash(p: &std::path::Path) -> (u64, Vec<u8>) {
    let data = fs::read(p).unwrap();
    (data.len() as u64, data)
}

#[test]
fn runtime_binary_not_writable_during_exec() {
    // CVE-2019-5736: while execs run, the container tries to open every /proc/*/exe for writing
    // (no data is written). The runtime binary on the host must be unchanged and never opened.
    let mut ctx = Ctx::new("exe5736");
    ctx.sh(
        "while :; do for f in /proc/[0-9]*/exe; do if true 2>/dev/null >>\"$f\"; then readlink \"$f\" >>/dev/shm/opened; fi; done; done",
    );
    let id = ctx.id();
    ctx.run_with(&id, &["-d"]).ok();
    let bin = fs::canonicalize(bin()).unwrap();
    let before = file_hash(&bin);
    for _ in 0..20 {
        ctx.husk(&["exec", &id, "true"]).ok();
    }
    let opened = ctx.husk(&["exec", &id, "cat", "/dev/shm/opened"]);
    assert_eq!(ctx.status(&id), "running", "the attacking loop died");
    assert!(file_hash(&bin) == before, "the runtime binary {} changed", bin.display());
    // Files in the container's own rootfs (busybox) may be writable by container root; anything
    // else opened for writing is the runtime leaking through.
    for l in opened.stdout.lines() {
        assert!(l.starts_with("/bin/"), "the container opened {l:?} for writing");
    }
}

/// The host's view of a process's cgroups: `controllers:path` per line, sorted.
fn cgroups_of(pid: u32) -> Vec<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mut v: Vec<String> = text.lines().map(|l| l.split_once(':').unwrap().1.to_string()).collect();
    v.sort();
    v
}

/// `exec -d --pid-file` of `args`; the exec'd process's host pid.
fn exec_detached(ctx: &Ctx, id: &str, extra: &[&str], args: &[&str]) -> u32 {
    let pf = ctx.dir.join(format!("exec-{}.pid", ctx.id()));
    let mut a = vec!["exec", "-d", "--pid-file", pf.to_str().unwrap()];
    a.extend_from_slice(extra);
    a.push(id);
    a.extend_from_slice(args);
    ctx.husk(&a).ok();
    read_pid_file(&pf)
}

#[test]
fn exec_joins_every_namespace_of_the_init() {
    // Compared by inode with the init's, for every namespace type the container has.
    let mut ctx = Ctx::new("execallns");
    let ns = ctx.config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.push(json!({"type": "cgroup"}));
    // runc 1.1 has no time namespaces (namespaces::time_namespace_offsets).
    if is_husk() {
        ns.push(json!({"type": "time"}));
        ctx.config["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 86400, "nanosecs": 0}});
    }
    let (id, pid) = ctx.running("exec sleep 1000");
    let kinds = ["pid", "mnt", "net", "ipc", "uts", "cgroup", "time", "user"];
    let script: String = kinds.iter().map(|k| format!("readlink /proc/self/ns/{k}; ")).collect();
    let o = ctx.husk(&["exec", &id, "sh", "-c", &script]).ok();
    let got: Vec<&str> = o.stdout.lines().collect();
    for (i, k) in kinds.iter().enumerate() {
        // The container's time namespace is the init's for its children (kernel 6.1 leaves the
        // init itself outside it; newer kernels move it in at its execve).
        let k = if *k == "time" { "time_for_children" } else { k };
        let init = fs::read_link(format!("/proc/{pid}/ns/{k}")).unwrap();
        assert_eq!(got[i], init.to_str().unwrap(), "{k} namespace: {o}");
    }
    assert_ne!(got[0], host_ns("pid"));
    if is_husk() {
        assert_ne!(got[6], host_ns("time"), "the container's own time namespace");
    }
    // In the init's pid namespace, not its own: the init is 1 there.
    let o = ctx.husk(&["exec", &id, "cat", "/proc/1/comm"]).ok();
    assert_eq!(o.stdout, "sleep\n");
}

#[test]
fn exec_joins_a_user_namespace() {
    let mut ctx = Ctx::new("execuserns");
    chown_rootfs(&ctx, 100000, 100000);
    ctx.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
    ctx.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    ctx.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    ctx.config["mounts"].as_array_mut().unwrap().retain(|m| m["type"] != "cgroup");
    let (id, pid) = ctx.running("exec sleep 1000");
    let o = ctx
        .husk(&[
            "exec",
            "-u",
            "1000:1000",
            &id,
            "sh",
            "-c",
            "readlink /proc/self/ns/user; cat /proc/self/uid_map; id -u; touch /dev/shm/f; stat -c %u /dev/shm/f",
        ])
        .ok();
    let l: Vec<String> = o.stdout.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(l[0], fs::read_link(format!("/proc/{pid}/ns/user")).unwrap().to_str().unwrap(), "{o}");
    assert_eq!(l[1], "0 100000 65536");
    assert_eq!(l[2], "1000");
    assert_eq!(l[3], "1000", "files are the container user's: {o}");
    let pid = exec_detached(&ctx, &id, &["-u", "1000"], &["sleep", "100"]);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status_field(&status, "Uid").unwrap().starts_with("101000"), "host uid: {status}");
}

#[test]
fn exec_user_groups_and_gid_default() {
    let mut ctx = Ctx::new("execuser");
    ctx.config["process"]["user"] = json!({"uid": 0, "gid": 0, "additionalGids": [10]});
    let (id, _) = ctx.running("exec sleep 1000");
    let o = ctx
        .husk(&[
            "exec",
            "-u",
            "1000:1001",
            "-g",
            "5",
            "-g",
            "2000",
            &id,
            "sh",
            "-c",
            "id -u; id -g; grep ^Groups: /proc/self/status",
        ])
        .ok();
    let l: Vec<&str> = o.stdout.lines().collect();
    assert_eq!((l[0], l[1]), ("1000", "1001"), "{o}");
    let mut groups: Vec<&str> = l[2].split_whitespace().skip(1).collect();
    groups.sort();
    assert_eq!(groups, ["10", "2000", "5"], "the container's groups and the added ones: {o}");
    // Only a uid: the gid stays the container's.
    let o = ctx.husk(&["exec", "--user", "1000", "--additional-gids", "7", &id, "sh", "-c", "id -u; id -g"]).ok();
    assert_eq!(o.stdout, "1000\n0\n");
}

#[test]
fn exec_user_is_parsed_strictly() {
    // CVE-2026-30892 (crun): a lax parse of uid[:gid] ran the process as the wrong user.
    // runc 1.1 differs: it truncates 4294967296 to uid 0 and runs the process as root.
    let mut ctx = Ctx::new("execbaduser");
    let (id, _) = ctx.running("exec sleep 1000");
    for bad in ["1000:", ":1000", "1000:1001:5", "-1", "abc", "1000:x", "4294967296"] {
        let o = ctx.husk(&["exec", "-u", bad, &id, "id", "-u"]).fails();
        assert_eq!(o.stdout, "", "--user {bad:?} ran something: {o}");
    }
}

#[test]
fn exec_cap_adds_capabilities_inheritable_stays_empty() {
    let mut ctx = Ctx::new("execcap");
    let (id, _) = ctx.running("exec sleep 1000");
    let o =
        ctx.husk(&["exec", "--cap", "CAP_NET_RAW", "--cap", "CAP_SYS_CHROOT", &id, "cat", "/proc/self/status"]).ok();
    let want = caps_mask(&["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_CHROOT"]);
    for set in ["CapBnd", "CapEff", "CapPrm"] {
        assert_eq!(status_field(&o.stdout, set), Some(format!("{want:016x}").as_str()), "{set}");
    }
    assert_eq!(status_field(&o.stdout, "CapInh"), Some("0000000000000000"));
    assert_eq!(status_field(&o.stdout, "CapAmb"), Some("0000000000000000"));
    // An unknown --cap: warned about in runc main's words, left out, and the process runs.
    let o = ctx.husk(&["exec", "--cap", "CAP_NO_SUCH", "--cap", "CAP_NET_RAW", &id, "cat", "/proc/self/status"]).ok();
    let want = caps_mask(&["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"]);
    assert_eq!(status_field(&o.stdout, "CapBnd"), Some(format!("{want:016x}").as_str()), "{o}");
    assert!(o.stderr.contains("ignoring unknown or unavailable capabilities: [CAP_NO_SUCH]"), "{o}");
}

#[test]
fn exec_process_json_needs_only_args_and_cwd() {
    // Every other field of the process object is optional: runc takes Go's zero values (uid 0,
    // gid 0, no terminal, no env) and the container's capabilities and rlimits.
    let mut ctx = Ctx::new("execprocmin");
    let (id, _) = ctx.running("exec sleep 1000");
    let p = ctx.dir.join("p.json");
    fs::write(&p, r#"{"args":["/bin/sh","-c","id -u; id -g; echo $HOME; pwd"],"cwd":"/tmp"}"#).unwrap();
    let o = ctx.husk(&["exec", "--process", p.to_str().unwrap(), &id]).ok();
    assert_eq!(o.stdout, "0\n0\n/root\n/tmp\n", "{o}");
    fs::write(&p, r#"{"args":["/bin/true"]}"#).unwrap();
    ctx.husk(&["exec", "--process", p.to_str().unwrap(), &id]).fails_with("cwd");
}

#[test]
fn exec_env_last_entry_wins_and_home_from_passwd() {
    // runc's prepareEnv: one entry per name, the last one's value; HOME from the container's
    // /etc/passwd for the process's uid when unset or empty.
    let mut ctx = Ctx::new("execenvdedup");
    let passwd = ctx.rootfs().join("etc/passwd");
    let mut text = fs::read_to_string(&passwd).unwrap();
    text.push_str("user:x:1000:1000:user:/home/user:/bin/sh\n");
    fs::write(&passwd, text).unwrap();
    let (id, _) = ctx.running("exec sleep 1000");
    let script = "env | grep -c '^A='; echo $A $HOME";
    let o = ctx.husk(&["exec", "-e", "A=1", "-e", "A=2", "-e", "HOME=", &id, "sh", "-c", script]).ok();
    assert_eq!(o.stdout, "1\n2 /root\n", "{o}");
    let o = ctx.husk(&["exec", "-u", "1000", &id, "sh", "-c", script]).ok();
    assert_eq!(o.stdout, "0\n/home/user\n", "{o}");
    let o = ctx.husk(&["exec", "-u", "1001", &id, "sh", "-c", script]).ok();
    assert_eq!(o.stdout, "0\n/\n", "no passwd entry: {o}");
    let o = ctx.husk(&["exec", "-e", "NOEQUALS", &id, "true"]).fails_with("invalid environment variable");
    if is_husk() {
        assert!(o.stderr.contains("--env"), "names the flag: {o}");
    }
}

#[test]
fn exec_no_new_privs_flag() {
    let mut ctx = Ctx::new("execnnp");
    ctx.config["process"]["noNewPrivileges"] = json!(false);
    let (id, _) = ctx.running("exec sleep 1000");
    let o = ctx.husk(&["exec", &id, "grep", "NoNewPrivs", "/proc/self/status"]).ok();
    assert_eq!(o.stdout.split_whitespace().last(), Some("0"));
    let o = ctx.husk(&["exec", "--no-new-privs", &id, "grep", "NoNewPrivs", "/proc/self/status"]).ok();
    assert_eq!(o.stdout.split_whitespace().last(), Some("1"));
}

#[test]
fn exec_env_cwd_and_rlimits() {
    // runc 1.1 differs: an exec'd process gets neither the container's umask nor its soft
    // RLIMIT_NOFILE (Go raises the soft limit to the hard one).
    let mut ctx = Ctx::new("execenv");
    ctx.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 777, "hard": 888}]);
    ctx.config["process"]["user"]["umask"] = json!(0o027);
    let (id, _) = ctx.running("exec sleep 1000");
    let o = ctx
        .husk(&[
            "exec",
            "-e",
            "TERM=dumb",
            "-e",
            "NEW=1",
            "--cwd",
            "/etc",
            &id,
            "sh",
            "-c",
            "echo $TERM $NEW; env | grep -c ^TERM=; pwd; ulimit -n; umask; echo $HOME",
        ])
        .ok();
    assert_eq!(o.stdout, "dumb 1\n1\n/etc\n777\n0027\n/root\n", "{o}");
    // A cwd that does not exist is an error naming the field, not a process elsewhere.
    ctx.husk(&["exec", "--cwd", "/no/such/dir", &id, "true"]).fails_with("no such file or directory");
}

#[test]
fn exec_process_json_takes_missing_fields_from_the_container() {
    // runc 1.1 differs: a process JSON without rlimits gets runc's own, not the container's.
    let mut ctx = Ctx::new("execprocdef");
    ctx.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 555, "hard": 555}]);
    let (id, _) = ctx.running("exec sleep 1000");
    let p = ctx.dir.join("p.json");
    fs::write(&p, r#"{"user":{"uid":0,"gid":0},"args":["sh","-c","ulimit -n; cat /proc/self/status"],"env":["PATH=/bin"],"cwd":"/"}"#)
        .unwrap();
    let o = ctx.husk(&["exec", "--process", p.to_str().unwrap(), &id]).ok();
    assert!(o.stdout.starts_with("555\n"), "the container's rlimits: {o}");
    let want = format!("{:016x}", caps_mask(&["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]));
    assert_eq!(status_field(&o.stdout, "CapBnd"), Some(want.as_str()), "the container's capabilities");
    assert_eq!(status_field(&o.stdout, "NoNewPrivs"), Some("0"), "noNewPrivileges is the JSON's (absent: false)");
    fs::write(&p, r#"{"user":{"uid":"x"},"args":["true"],"cwd":"/"}"#).unwrap();
    let o = ctx.husk(&["exec", "--process", p.to_str().unwrap(), &id]).fails();
    if is_husk() {
        assert!(o.stderr.contains("user.uid"), "names the field: {o}");
    }
}

#[test]
fn exec_cgroup_membership_is_the_inits() {
    let mut ctx = Ctx::new("execcg");
    let (id, init) = ctx.running("exec sleep 1000");
    let pid = exec_detached(&ctx, &id, &[], &["sleep", "100"]);
    assert_eq!(cgroups_of(pid), cgroups_of(init));
}

/// The container's cgroup dir in every hierarchy, from the host's view of its init.
fn container_cgroup_dirs(init: u32) -> Vec<(String, std::path::PathBuf)> {
    let text = fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
    text.lines()
        .map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
            let pure_v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
            let mount = match ctrls {
                "" if pure_v2 => String::new(),
                "" => "unified".to_string(),
                c => c.strip_prefix("name=").unwrap_or(c).split(',').next().unwrap().to_string(),
            };
            (ctrls.to_string(), std::path::Path::new("/sys/fs/cgroup").join(mount).join(&path[1..]))
        })
        .filter(|(_, d)| d.is_dir())
        .collect()
}

#[test]
fn exec_into_sub_cgroups() {
    let mut ctx = Ctx::new("execsubcg");
    let (id, init) = ctx.running("exec sleep 1000");
    for (ctrls, dir) in container_cgroup_dirs(init) {
        for sub in ["sub", "sub2"] {
            fs::create_dir(dir.join(sub)).unwrap();
            if ctrls == "cpuset" {
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    fs::write(dir.join(sub).join(f), fs::read_to_string(dir.join(f)).unwrap().trim()).unwrap();
                }
            }
        }
    }
    let pid = exec_detached(&ctx, &id, &["--cgroup", "sub"], &["sleep", "100"]);
    for (line, init_line) in cgroups_of(pid).iter().zip(cgroups_of(init)) {
        assert_eq!(*line, format!("{init_line}/sub"), "every hierarchy");
    }
    // Out of the container's cgroup: runc main's wording, which tools match (runc 1.1 differs:
    // "../escape is not a sub cgroup path").
    for bad in ["../escape", "sub/../../escape"] {
        let want = if is_husk() { "bad sub cgroup path" } else { "sub cgroup path" };
        ctx.husk(&["exec", "--cgroup", bad, &id, "true"]).fails_with(want);
    }
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        // Pure v2 has one hierarchy: controller prefixes name nothing (runc refuses them too).
        ctx.husk(&["exec", "--cgroup", "memory:sub2", &id, "true"]).fails();
        return;
    }
    let pid = exec_detached(&ctx, &id, &["--cgroup", "memory,pids:sub2"], &["sleep", "100"]);
    for (line, init_line) in cgroups_of(pid).iter().zip(cgroups_of(init)) {
        let ctrl = line.split(':').next().unwrap();
        if ctrl == "memory" || ctrl == "pids" {
            assert_eq!(*line, format!("{init_line}/sub2"));
        } else {
            assert_eq!(*line, init_line, "only memory and pids move");
        }
    }
    ctx.husk(&["exec", "--cgroup", "no-such-sub", &id, "true"]).fails();
    ctx.husk(&["exec", "--cgroup", "nosuchctrl:sub", &id, "true"]).fails();
}

#[test]
fn cgroup2_exec_is_born_in_the_container_cgroup() {
    // Pure cgroup v2 (the guest): CLONE_INTO_CGROUP, into the container's cgroup or a sub-cgroup.
    if !common::require(Feature::Cgroup2) {
        return;
    }
    let mut ctx = Ctx::new("cg2exec");
    let (id, init) = ctx.running("exec sleep 1000");
    let pid = exec_detached(&ctx, &id, &[], &["sleep", "100"]);
    assert_eq!(cgroups_of(pid), cgroups_of(init));
    let dirs = container_cgroup_dirs(init);
    let (_, dir) = dirs.iter().find(|(c, _)| c.is_empty()).expect("a cgroup2 dir");
    fs::create_dir(dir.join("sub")).unwrap();
    let pid = exec_detached(&ctx, &id, &["--cgroup", "sub"], &["sleep", "100"]);
    assert_eq!(cgroups_of(pid), vec![format!("{}/sub", cgroups_of(init)[0])]);
}

#[test]
fn exec_gets_the_containers_seccomp_filter() {
    let mut ctx = Ctx::new("execseccomp");
    ctx.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EXDEV}
    ]});
    let (id, _) = ctx.running("exec sleep 1000");
    let o = ctx.husk(&["exec", &id, "sh", "-c", "grep ^Seccomp: /proc/self/status; mkdir /tmp/x 2>&1; true"]).ok();
    assert!(o.stdout.starts_with("Seccomp:\t2\n"), "{o}");
    assert!(o.stdout.contains("Invalid cross-device link"), "the container's filter: {o}");
}

#[test]
fn exec_lsm_flags_are_refused_without_the_lsm() {
    if !is_husk() {
        return; // runc 1.1 words these its own way (and may ignore them on a host without an LSM)
    }
    let mut ctx = Ctx::new("execlsm");
    let (id, _) = ctx.running("exec sleep 1000");
    // Where the module is there, the label is applied (lsm.rs tests that for create).
    if !Feature::AppArmor.present() {
        ctx.husk(&["exec", "--apparmor", "docker-default", &id, "true"]).fails_with("process.apparmorProfile");
    }
    if !Feature::SELinux.present() {
        ctx.husk(&["exec", "--process-label", "system_u:system_r:container_t:s0", &id, "true"])
            .fails_with("process.selinuxLabel");
    }
}

#[test]
fn exec_into_created_container() {
    // runc allows it: the init's namespaces exist, it just has not run its program yet.
    let mut ctx = Ctx::new("execcreated");
    ctx.sh("echo started");
    let id = ctx.id();
    let c = ctx.create(&id).ok();
    // Not the program yet: the init waiting for start (husk's init, or the exec trampoline
    // that waits in its place, both named husk-init; runc's is `runc:[2:INIT]`).
    let o = ctx.husk(&["exec", &id, "cat", "/proc/1/comm"]).ok();
    if is_husk() {
        assert_eq!(o.stdout.trim(), "husk-init", "{o}");
    } else {
        assert_ne!(o.stdout.trim(), "sh", "{o}");
    }
    assert_eq!(ctx.status(&id), "created");
    ctx.husk(&["start", &id]).ok();
    assert!(wait_for(10, || c.stdout_now().contains("started")));
}

#[test]
fn exec_paused_container_needs_ignore_paused() {
    let mut ctx = Ctx::new("execpaused");
    let (id, _) = ctx.running("exec sleep 1000");
    if !ctx.husk(&["pause", &id]).success() {
        eprintln!("skipped: the runtime has no pause yet");
        return;
    }
    ctx.husk(&["exec", &id, "true"]).fails_with("cannot exec in a paused container");
    // The new process is frozen with the rest until resume: exec returns only then.
    let pf = ctx.dir.join("paused.pid");
    let e = ctx.spawn(&["exec", "-d", "--ignore-paused", "--pid-file", pf.to_str().unwrap(), &id, "sleep", "100"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    ctx.husk(&["resume", &id]).ok();
    e.wait().ok();
    assert!(alive(read_pid_file(&pf)));
}

#[test]
fn exec_exit_status_of_a_killed_process() {
    let mut ctx = Ctx::new("execkilled");
    let (id, _) = ctx.running("exec sleep 1000");
    let o = ctx.husk(&["exec", &id, "sh", "-c", "kill -9 $$"]);
    assert_eq!(o.code, Some(137), "{o}");
    let o = ctx.husk(&["exec", &id, "sh", "-c", "kill -TERM $$"]);
    assert_eq!(o.code, Some(143), "{o}");
}

#[test]
fn exec_failure_wording_and_status() {
    let mut ctx = Ctx::new("execfailcode");
    let (id, _) = ctx.running("exec sleep 1000");
    let o = ctx.husk(&["exec", &id, "/etc/passwd"]).fails();
    assert!(o.stderr.contains("permission denied"), "{o}");
    // runc exits 255 when exec itself fails, so callers can tell it from the program's status.
    assert_eq!(o.code, Some(255), "{o}");
    let o = ctx.husk(&["exec", &id, "/no/such/file"]).fails_with("no such file or directory");
    assert_eq!(o.code, Some(255));
    let o = ctx.husk(&["exec", &id]).fails();
    assert_eq!(o.stderr_lines().len(), 1, "{o}");
}

#[test]
fn exec_tty_needs_a_console_socket_when_detached() {
    let mut ctx = Ctx::new("exectty");
    let (id, _) = ctx.running("exec sleep 1000");
    ctx.husk(&["exec", "-d", "-t", &id, "true"]).fails_with("console socket");
    let sock = ctx.dir.join("c.sock");
    let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    ctx.husk(&["exec", "-d", "--console-socket", sock.to_str().unwrap(), &id, "true"]).fails();
}

#[test]
fn exec_console_socket_receives_the_pty_master() {
    // The receiver is what containerd's and conmon's do: accept, take the SCM_RIGHTS fd.
    let mut ctx = Ctx::new("execconsole");
    let (id, _) = ctx.running("exec sleep 1000");
    let sock = ctx.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let th = std::thread::spawn(move || recv_fd(listener));
    let p = ctx.dir.join("p.json");
    let proc = json!({
        "terminal": true, "consoleSize": {"height": 40, "width": 120},
        "user": {"uid": 0, "gid": 0}, "cwd": "/", "env": ["PATH=/bin"],
        "args": ["sh", "-c", "test -t 0 && test -t 1 && echo is-a-tty; stty size; tty; read line; echo got-$line"]
    });
    fs::write(&p, serde_json::to_vec(&proc).unwrap()).unwrap();
    let pf = ctx.dir.join("e.pid");
    ctx.husk(&[
        "exec",
        "-d",
        "--console-socket",
        sock.to_str().unwrap(),
        "--pid-file",
        pf.to_str().unwrap(),
        "--process",
        p.to_str().unwrap(),
        &id,
    ])
    .ok();
    let master = th.join().unwrap().expect("no fd on the console socket");
    let out = read_until(master.as_fd(), |s| s.contains("/dev/pts/"));
    assert!(out.contains("is-a-tty\n40 120\n/dev/pts/"), "{out:?}");
    let line = b"hello\n";
    assert_eq!(unsafe { libc::write(master.as_raw_fd(), line.as_ptr().cast(), line.len()) }, line.len() as isize);
    let out = read_until(master.as_fd(), |s| s.contains("got-hello"));
    assert!(out.contains("got-hello"), "{out:?}");
    let pid = read_pid_file(&pf);
    assert!(wait_for(10, || !alive(pid)));
}

#[test]
fn exec_pid_file_it_cannot_write_kills_the_process() {
    let mut ctx = Ctx::new("execbadpf");
    let (id, init) = ctx.running("exec sleep 1000");
    let bad = ctx.dir.join("no-such-dir/e.pid");
    ctx.husk(&["exec", "-d", "--pid-file", bad.to_str().unwrap(), &id, "sleep", "4242"]).fails();
    let left = fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap_or_default();
    assert!(wait_for(5, || procs_of("4242", &ctx.dir).is_empty()), "the exec'd process runs on unseen ({left})");
}

#[test]
fn exec_pidfd_socket() {
    // runc 1.1 differs: --pidfd-socket is runc 1.2's.
    let mut ctx = Ctx::new("execpidfd");
    let (id, _) = ctx.running("exec sleep 1000");
    let sock = ctx.dir.join("pidfd.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let th = std::thread::spawn(move || recv_fd(listener));
    let pid = exec_detached(&ctx, &id, &["--pidfd-socket", sock.to_str().unwrap()], &["sleep", "100"]);
    let pidfd = th.join().unwrap().expect("no pidfd received");
    assert_eq!(pidfd_pid(&pidfd), pid as i32, "a pidfd of the exec'd process");
    assert!(!poll_readable(&pidfd, 0), "readable before it exited");
    assert_eq!(unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), libc::SIGKILL, 0, 0) }, 0);
    assert!(poll_readable(&pidfd, 10_000), "the pidfd reports the exit");
}

#[test]
fn exec_does_not_reach_the_runtime_binary_through_proc_self_exe() {
    // CVE-2019-5736 as exploited: the program exec'd into the container is `#!/proc/self/exe`, so
    // the kernel runs whatever /proc/self/exe of the exec'ing process is, inside the container;
    // a process there holds that file open and reopens it for writing once nothing runs it any
    // more. Only the container's own files or a runtime's sealed in-memory copy may be reachable.
    // The runtime is a private copy, so that no other test's runtime process keeps the file busy
    // (ETXTBSY) and hides the hole; nothing is ever written to it.
    let mut ctx = Ctx::new("exe5736b");
    let copy = ctx.dir.join("runtime-copy");
    fs::copy(fs::canonicalize(bin()).unwrap(), &copy).unwrap();
    // Like any glibc-based image: the runtime's own loader and libraries are there, so the
    // kernel can really start the runtime binary inside the container.
    copy_shared_libraries(&copy, &ctx.rootfs());
    fs::write(ctx.rootfs().join("evil"), "#!/proc/self/exe\n").unwrap();
    fs::set_permissions(ctx.rootfs().join("evil"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (id, _) = ctx.running(REOPEN_EXE_ATTACK);
    let before = file_hash(&copy);
    let runtime = |args: &[&str]| {
        let mut c = std::process::Command::new(&copy);
        c.arg("--root").arg(&ctx.root).args(args).stdin(std::process::Stdio::null());
        ctx.exec(c)
    };
    for _ in 0..20 {
        let o = runtime(&["exec", &id, "/evil"]).no_panic();
        assert_ne!(o.code, Some(0), "the runtime binary ran as the container's program: {o}");
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let opened = runtime(&["exec", &id, "sh", "-c", "cat /dev/shm/opened 2>/dev/null; true"]).ok();
    assert_eq!(ctx.status(&id), "running", "the attacking loop died");
    assert!(file_hash(&copy) == before, "the runtime binary changed");
    for l in opened.stdout.lines() {
        assert!(l.starts_with("/memfd:"), "the container reopened {l:?} for writing");
    }
}

fn pidfd_pid(fd: &OwnedFd) -> i32 {
    let info = fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
    status_field(&info, "Pid").unwrap().parse().unwrap()
}

fn poll_readable(fd: &OwnedFd, ms: i32) -> bool {
    let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    unsafe { libc::poll(&mut p, 1, ms) == 1 }
}
