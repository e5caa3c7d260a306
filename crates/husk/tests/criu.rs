//! Checkpoint and restore with CRIU, for real: every test here is named `criu_*` and runs in the
//! guest (`scripts/guest/test.sh criu_`), where `criu check` passes; on this host they skip.
mod common;

use common::criu::*;
use common::*;
use serde_json::json;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn criu_counter_continues_after_restore() {
    if !require(Feature::Criu) {
        return;
    }
    let mut ctx = Ctx::new("criu-count");
    let (id, mut out) = start_counter(&mut ctx, COUNTER);
    let before = out.wait_numbers(10, 60);
    let img = images(&ctx, "img");
    criu(&ctx, &ctx.root, &["checkpoint", "--image-path", img.to_str().unwrap(), &id]).ok();
    // Checkpointed and gone, like runc: no state left, the old pipe at end of file.
    ctx.husk(&["state", &id]).fails_with("does not exist");
    let last = *out.drain(20).last().unwrap();
    assert!(last >= *before.last().unwrap());
    assert!(img.join("inventory.img").exists() && img.join("descriptors.json").exists());

    let (o, mut after) = restore(&ctx, &ctx.root, &id, &img, &[]);
    o.ok();
    // The rootfs bind CRIU restored from is gone again.
    assert!(!ctx.root.join(&id).join("criu-root").exists());
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let ours = ctx.root.join(&id).join("criu-root");
    assert!(!mounts.contains(ours.to_str().unwrap()), "{mounts}");
    let st = ctx.state(&id);
    assert_eq!(st["status"], "running", "{st}");
    let pid = st["pid"].as_u64().unwrap() as u32;
    assert!(alive(pid));
    let list = ctx.husk(&["list", "-q"]).ok();
    assert!(list.stdout.lines().any(|l| l == id), "{}", list.stdout);
    assert_continues(&after.wait_numbers(10, 60), last);
    // The restored init is in the container's cgroup, as create puts it.
    let procs: Vec<String> =
        Ctx::cgroup_dirs(&id).iter().filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok()).collect();
    assert!(procs.iter().any(|p| p.lines().any(|l| l == pid.to_string())), "pid {pid} not in {procs:?}");

    ctx.husk(&["kill", &id, "KILL"]).ok();
    ctx.wait_status(&id, "stopped");
    ctx.husk(&["delete", &id]).ok();
    for d in Ctx::cgroup_dirs(&id) {
        assert!(!d.exists(), "{} left", d.display());
    }
}

#[test]
fn criu_leave_running_keeps_it_running() {
    if !require(Feature::Criu) {
        return;
    }
    let mut ctx = Ctx::new("criu-leave");
    let (id, mut out) = start_counter(&mut ctx, COUNTER);
    let before = *out.wait_numbers(10, 60).last().unwrap();
    let img = images(&ctx, "img");
    criu(&ctx, &ctx.root, &["checkpoint", "--leave-running", "--image-path", img.to_str().unwrap(), &id]).ok();
    assert_eq!(ctx.status(&id), "running");
    // The dump was taken between `before` and what the counter printed by the time it returned.
    out.fill(Duration::ZERO);
    let n = out.numbers().len();
    let by_return = out.numbers()[n - 1];
    let later = out.wait_numbers(n + 20, 60);
    assert!(later.windows(2).all(|w| w[1] == w[0] + 1), "the original skipped: {later:?}");

    // The snapshot, restored in place of the original: it goes on from the checkpoint, not from
    // where the original got to.
    ctx.husk(&["delete", "--force", &id]).ok();
    let (o, mut after) = restore(&ctx, &ctx.root, &id, &img, &[]);
    o.ok();
    let after = after.wait_numbers(5, 60);
    assert!(after.windows(2).all(|w| w[1] == w[0] + 1), "restored counter skips: {after:?}");
    assert!(
        after[0] + 2 >= before && after[0] <= by_return + 2,
        "restored counter starts at {}, the dump was taken between {before} and {by_return}",
        after[0]
    );
    assert!(
        after[0] + 10 < *later.last().unwrap(),
        "restored from the checkpoint: {after:?}, original reached {later:?}"
    );
}

#[test]
fn criu_pre_dump_then_final_dump() {
    if !require(Feature::Criu) {
        return;
    }
    let mut ctx = Ctx::new("criu-predump");
    let (id, mut out) = start_counter(&mut ctx, COUNTER);
    out.wait_numbers(5, 60);
    let pre = images(&ctx, "pre");
    let fin = images(&ctx, "final");
    criu(&ctx, &ctx.root, &["checkpoint", "--pre-dump", "--image-path", pre.to_str().unwrap(), &id]).ok();
    assert_eq!(ctx.status(&id), "running", "a pre-dump leaves the container running");
    let n = out.numbers().len();
    out.wait_numbers(n + 5, 60);
    criu(&ctx, &ctx.root, &["checkpoint", "--image-path", fin.to_str().unwrap(), "--parent-path", "../pre", &id]).ok();
    ctx.husk(&["state", &id]).fails_with("does not exist");
    assert!(fin.join("parent").is_symlink(), "the final dump refers to the pre-dump");
    let last = *out.drain(20).last().unwrap();
    let (o, mut after) = restore(&ctx, &ctx.root, &id, &fin, &[]);
    o.ok();
    assert_continues(&after.wait_numbers(5, 60), last);
}

#[test]
fn criu_restore_under_another_root() {
    if !require(Feature::Criu) {
        return;
    }
    let mut ctx = Ctx::new("criu-move");
    let (id, mut out) = start_counter(&mut ctx, COUNTER);
    out.wait_numbers(10, 60);
    let img = images(&ctx, "img");
    let work = ctx.dir.join("work");
    criu(
        &ctx,
        &ctx.root,
        &["checkpoint", "--image-path", img.to_str().unwrap(), "--work-path", work.to_str().unwrap(), &id],
    )
    .ok();
    assert!(work.join("dump.log").exists(), "--work-path holds CRIU's log");
    let last = *out.drain(20).last().unwrap();

    let mut other = OtherRoot { ctx: &ctx, root: ctx.dir.join("other-host"), ids: vec![id.clone()] };
    let (o, mut after) = restore(&ctx, &other.root, &id, &img, &[]);
    o.ok();
    assert_continues(&after.wait_numbers(10, 60), last);
    ctx.husk(&["state", &id]).fails_with("does not exist");
    let st = criu(&ctx, &other.root, &["state", &id]).ok();
    assert!(st.stdout.contains("\"running\""), "{st}");
    criu(&ctx, &other.root, &["kill", &id, "KILL"]).ok();
    assert!(wait_for(20, || criu(&ctx, &other.root, &["state", &id]).stdout.contains("\"stopped\"")));
    criu(&ctx, &other.root, &["delete", &id]).ok();
    other.ids.clear();
}

#[test]
fn criu_bind_mount_comes_back_from_the_new_source() {
    if !require(Feature::Criu) {
        return;
    }
    let mut ctx = Ctx::new("criu-bind");
    let data = ctx.dir.join("data");
    fs::create_dir_all(&data).unwrap();
    let mount = |src: &Path| json!({"destination": "/data", "type": "bind", "source": src, "options": ["rbind", "rw"]});
    ctx.config["mounts"].as_array_mut().unwrap().push(mount(&data));
    let (id, mut out) =
        start_counter(&mut ctx, "i=0; while :; do i=$((i+1)); echo $i; echo $i > /data/count; sleep 0.1; done");
    out.wait_numbers(10, 60);
    let img = images(&ctx, "img");
    criu(&ctx, &ctx.root, &["checkpoint", "--image-path", img.to_str().unwrap(), &id]).ok();
    let last = *out.drain(20).last().unwrap();

    // Another host's copy of the bundle: the rootfs lacks the mount point, the data is elsewhere.
    let bundle2 = ctx.dir.join("bundle2");
    let st = status(Command::new("cp").arg("-a").arg(&ctx.bundle).arg(&bundle2));
    assert!(st.success());
    fs::remove_dir(bundle2.join("rootfs/data")).unwrap();
    // The volume's data moved along: the shell may have been checkpointed inside
    // `echo $i > /data/count`, with the file open, and CRIU reopens it on restore.
    let data2 = ctx.dir.join("data2");
    let st = status(Command::new("cp").arg("-a").arg(&data).arg(&data2));
    assert!(st.success());
    let mut config: serde_json::Value =
        serde_json::from_slice(&fs::read(bundle2.join("config.json")).unwrap()).unwrap();
    let mounts = config["mounts"].as_array_mut().unwrap();
    let i = mounts.iter().position(|m| m["destination"] == "/data").unwrap();
    mounts[i] = mount(&data2);
    fs::write(bundle2.join("config.json"), serde_json::to_vec(&config).unwrap()).unwrap();

    let (o, mut after) = restore_from(&ctx, &bundle2, &ctx.root, &id, &img, &[]);
    o.ok();
    assert_continues(&after.wait_numbers(5, 60), last);
    let count = || fs::read_to_string(data2.join("count")).ok().and_then(|c| c.trim().parse::<u64>().ok());
    assert!(wait_for(30, || count().is_some_and(|c| c > last)), "nothing written to the new source: {:?}", count());
    assert!(bundle2.join("rootfs/data").is_dir(), "the mount point was made");
    assert_eq!(ctx.state(&id)["bundle"], bundle2.to_str().unwrap());
}

#[test]
fn criu_joined_network_namespace_stays_the_same() {
    if !require(Feature::Criu) {
        return;
    }
    let mut ctx = Ctx::new("criu-netns");
    let ns = ctx.netns();
    let ns_path = format!("/run/netns/{ns}");
    for n in ctx.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if n["type"] == "network" {
            n["path"] = json!(ns_path);
        }
    }
    let (id, mut out) = start_counter(&mut ctx, COUNTER);
    out.wait_numbers(10, 60);
    let img = images(&ctx, "img");
    criu(&ctx, &ctx.root, &["checkpoint", "--image-path", img.to_str().unwrap(), &id]).ok();
    let last = *out.drain(20).last().unwrap();
    let (o, mut after) = restore(&ctx, &ctx.root, &id, &img, &[]);
    o.ok();
    assert_continues(&after.wait_numbers(5, 60), last);
    let pid = ctx.state(&id)["pid"].as_u64().unwrap();
    use std::os::unix::fs::MetadataExt;
    let want = fs::metadata(&ns_path).unwrap().ino();
    let got = fs::metadata(format!("/proc/{pid}/ns/net")).unwrap().ino();
    assert_eq!(got, want, "the restored container is back in the joined network namespace");
}

#[test]
fn criu_tcp_connection_kept() {
    if !require(Feature::Criu) {
        return;
    }
    let mut ctx = Ctx::new("criu-conn");
    // A server and a client in the container's network namespace, one connection between them:
    // the client sends a count, the server writes what it receives to a file in the rootfs.
    // busybox nc ends at end of file on its stdin: the server's is a pipe that stays open.
    let script = "sleep 100000 | nc -l -p 5000 > /tmp/received & sleep 1; \
                  (i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done) | nc 127.0.0.1 5000 & wait";
    let (id, _out) = start_counter(&mut ctx, script);
    let received = ctx.rootfs().join("tmp/received");
    let count = || -> Vec<u64> {
        fs::read_to_string(&received).unwrap_or_default().lines().filter_map(|l| l.parse().ok()).collect()
    };
    assert!(wait_for(60, || count().len() >= 10), "nothing received: {:?}", count());
    let img = images(&ctx, "img");
    let imgs = img.to_str().unwrap();
    // Without --tcp-established CRIU refuses, and the container goes on.
    let o = criu(&ctx, &ctx.root, &["checkpoint", "--image-path", imgs, &id]).fails();
    assert!(o.stderr.contains("--tcp-established"), "the error says what to do: {o}");
    assert_eq!(ctx.status(&id), "running", "a failed checkpoint leaves the container running");
    let n = count().len();
    assert!(wait_for(60, || count().len() > n + 5), "the connection stalled after a failed checkpoint");

    criu(&ctx, &ctx.root, &["checkpoint", "--tcp-established", "--image-path", imgs, &id]).ok();
    let last = *count().last().unwrap();
    let (o, _after) = restore(&ctx, &ctx.root, &id, &img, &["--tcp-established"]);
    o.ok();
    assert!(wait_for(60, || count().len() as u64 > last + 10), "no data over the restored connection: {:?}", count());
    let all = count();
    assert_eq!(all.first(), Some(&1));
    assert!(all.windows(2).all(|w| w[1] == w[0] + 1), "the stream has a gap or repeats: {all:?}");
}

#[test]
fn criu_terminal_gets_a_new_console() {
    if !require(Feature::Criu) {
        return;
    }
    let mut ctx = Ctx::new("criu-tty");
    ctx.config["process"]["terminal"] = json!(true);
    ctx.sh(COUNTER);
    let id = ctx.id();
    let sock = ctx.dir.join("console.sock");
    let th = console_listener(&sock);
    ctx.run_with(&id, &["-d", "--console-socket", sock.to_str().unwrap()]).ok();
    let mut tty = pty_reader(th.join().unwrap().unwrap());
    tty.wait_numbers(10, 60);
    let img = images(&ctx, "img");
    criu(&ctx, &ctx.root, &["checkpoint", "--image-path", img.to_str().unwrap(), &id]).ok();
    let last = *tty.drain(5).last().unwrap();

    let sock2 = ctx.dir.join("console2.sock");
    let th = console_listener(&sock2);
    let (o, _) = restore(&ctx, &ctx.root, &id, &img, &["--console-socket", sock2.to_str().unwrap()]);
    o.ok();
    let master = th.join().unwrap().expect("restore sent no pty master to --console-socket");
    let mut tty = pty_reader(master);
    assert_continues(&tty.wait_numbers(5, 60), last);
    // Still the container's terminal: what we type comes back as its echo.
    rustix::io::write(&tty.fd, b"typed-in\n").unwrap();
    let start = Instant::now();
    while !String::from_utf8_lossy(&tty.buf).contains("typed-in") && start.elapsed() < Duration::from_secs(30) {
        tty.fill(Duration::from_millis(200));
    }
    assert!(String::from_utf8_lossy(&tty.buf).contains("typed-in"), "no echo from the restored terminal");
    assert_eq!(ctx.status(&id), "running");
}

#[test]
fn criu_foreground_restore_exits_with_the_container() {
    if !require(Feature::Criu) {
        return;
    }
    let mut ctx = Ctx::new("criu-fg");
    let (id, mut out) =
        start_counter(&mut ctx, "i=0; while [ $i -lt 80 ]; do i=$((i+1)); echo $i; sleep 0.1; done; exit 7");
    out.wait_numbers(10, 60);
    let img = images(&ctx, "img");
    criu(&ctx, &ctx.root, &["checkpoint", "--image-path", img.to_str().unwrap(), &id]).ok();
    let last = *out.drain(20).last().unwrap();
    let (pipe, w) = Pipe::new();
    let b = ctx.bundle.to_str().unwrap().to_string();
    let o =
        husk_with(&ctx.root, &["restore", "--bundle", &b, "--image-path", img.to_str().unwrap(), &id], Some(&w), &ctx);
    drop(w);
    assert_eq!(o.code, Some(7), "restore in the foreground exits with the container's status: {o}");
    let mut pipe = pipe;
    let after = pipe.drain(10);
    assert_continues(&after, last);
    assert_eq!(after.last(), Some(&80));
    ctx.husk(&["state", &id]).fails_with("does not exist");
}

#[test]
fn criu_restored_container_can_be_exec_d_into() {
    if !require(Feature::Criu) {
        return;
    }
    let mut ctx = Ctx::new("criu-exec");
    ctx.config["hostname"] = json!("restored-host");
    let (id, mut out) = start_counter(&mut ctx, COUNTER);
    out.wait_numbers(5, 60);
    let img = images(&ctx, "img");
    criu(&ctx, &ctx.root, &["checkpoint", "--image-path", img.to_str().unwrap(), &id]).ok();
    let (o, _after) = restore(&ctx, &ctx.root, &id, &img, &[]);
    o.ok();
    let o = criu(&ctx, &ctx.root, &["exec", &id, "hostname"]).ok();
    assert_eq!(o.stdout.trim(), "restored-host");
}
