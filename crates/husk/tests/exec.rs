//! `exec` into a running container: output, exit status, namespaces, --process, -d, users, env,
//! capabilities and fd hygiene, and the runtime binary's protection (CVE-2019-5736).
mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
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
    let o = ctx.husk(&["exec", &id, "true"]).fails();
    assert_eq!(o.stderr_lines().len(), 1, "{o}");
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
