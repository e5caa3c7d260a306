//! Foreground `run` and `exec`: signals sent to the runtime reach the container process, its
//! exit status comes back (128+signal when killed), and a subreaper runtime adopts and reaps the
//! container's orphans unless `--no-subreaper`.
mod common;

use common::*;

const TRAPS: &str = "for s in HUP INT QUIT USR1 USR2 WINCH CONT ALRM; do trap \"echo got-$s\" $s; done; \
                     trap 'echo got-TERM; exit 3' TERM; echo ready; while :; do sleep 0.05; done";

fn forwards(s: &Spawned) {
    s.wait_stdout("ready");
    for (sig, name) in [
        (libc::SIGHUP, "HUP"),
        (libc::SIGINT, "INT"),
        (libc::SIGQUIT, "QUIT"),
        (libc::SIGUSR1, "USR1"),
        (libc::SIGUSR2, "USR2"),
        (libc::SIGALRM, "ALRM"),
        (libc::SIGWINCH, "WINCH"),
    ] {
        // runc 1.1 differs: without a terminal it swallows SIGWINCH instead of forwarding it.
        if sig == libc::SIGWINCH && !is_husk() {
            continue;
        }
        s.signal(sig);
        s.wait_stdout(&format!("got-{name}"));
    }
    s.signal(libc::SIGTERM);
}

#[test]
fn run_forwards_signals() {
    let mut ctx = Ctx::new("sigrun");
    ctx.sh(TRAPS);
    let id = ctx.id();
    ctx.write_config(&id);
    let s = ctx.spawn(&["run", "--bundle", ctx.bundle.to_str().unwrap(), &id]);
    forwards(&s);
    let o = s.wait();
    assert_eq!(o.code, Some(3), "the container's exit status: {o}");
    assert!(o.stdout.contains("got-TERM"));
}

#[test]
fn exec_forwards_signals() {
    let mut ctx = Ctx::new("sigexec");
    let (id, _) = ctx.running("exec sleep 1000");
    let s = ctx.spawn(&["exec", &id, "sh", "-c", TRAPS]);
    forwards(&s);
    let o = s.wait();
    assert_eq!(o.code, Some(3), "{o}");
    assert_eq!(ctx.status(&id), "running");
}

#[test]
fn run_exit_status_when_the_signal_kills() {
    let mut ctx = Ctx::new("sigkill");
    // Not a pid-namespace init, which the kernel only sends signals it has a handler for.
    ctx.config["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "pid");
    ctx.sh("echo ready; exec sleep 1000");
    let id = ctx.id();
    ctx.write_config(&id);
    let s = ctx.spawn(&["run", "--bundle", ctx.bundle.to_str().unwrap(), &id]);
    s.wait_stdout("ready");
    s.signal(libc::SIGUSR1);
    assert_eq!(s.wait().code, Some(128 + libc::SIGUSR1));
}

/// A container sharing the runtime's pid namespace, so its orphans go to the runtime (a
/// subreaper) or beyond it.
fn orphan_config(ctx: &mut Ctx) {
    ctx.config["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "pid");
    ctx.sh("sh -c 'sleep 30 & echo $! >/dev/shm/o1'; sh -c 'sleep 0.1 & echo $! >/dev/shm/o2'; sleep 0.6; \
         o=$(cat /dev/shm/o1); echo parent=$(grep PPid /proc/$o/status | cut -f2) runtime=$PPID; kill $o; \
         echo zombie=$(grep -c 'State:.*Z' /proc/$(cat /dev/shm/o2)/status 2>/dev/null)");
}

#[test]
fn run_adopts_and_reaps_orphans() {
    let mut ctx = Ctx::new("subreaper");
    orphan_config(&mut ctx);
    let id = ctx.id();
    let o = ctx.run(&id).ok();
    let line = o.stdout.lines().find(|l| l.starts_with("parent=")).unwrap_or_else(|| panic!("{o}"));
    let (parent, runtime) = line.split_once(' ').unwrap();
    assert_eq!(parent.strip_prefix("parent="), runtime.strip_prefix("runtime="), "the runtime adopted it: {o}");
    assert!(o.stdout.contains("zombie=\n") || o.stdout.contains("zombie=0"), "an exited orphan was reaped: {o}");
}

#[test]
fn run_no_subreaper() {
    let mut ctx = Ctx::new("nosubreaper");
    orphan_config(&mut ctx);
    let id = ctx.id();
    let o = ctx.run_with(&id, &["--no-subreaper"]).ok();
    let line = o.stdout.lines().find(|l| l.starts_with("parent=")).unwrap_or_else(|| panic!("{o}"));
    let (parent, runtime) = line.split_once(' ').unwrap();
    assert_ne!(parent.strip_prefix("parent="), runtime.strip_prefix("runtime="), "not adopted by the runtime: {o}");
}

#[test]
fn run_passes_stdio_untouched() {
    // No pipes or ptys in between: the container's fds 0-2 are the caller's own files.
    // runc 1.1 differs: a foreground run without a terminal copies stdio through pipes.
    let mut ctx = Ctx::new("stdio");
    ctx.sh("stat -L -c %i /proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2");
    let id = ctx.id();
    ctx.write_config(&id);
    let input = ctx.dir.join("in.txt");
    std::fs::write(&input, "x").unwrap();
    let mut c = ctx.cmd();
    c.args(["run", "--bundle", ctx.bundle.to_str().unwrap(), &id]).stdin(std::fs::File::open(&input).unwrap());
    let o = ctx.exec(c).ok();
    use std::os::unix::fs::MetadataExt;
    let ino = |p: &std::path::Path| std::fs::metadata(p).unwrap().ino().to_string();
    let want = [ino(&input), ino(&o.stdout_path), ino(&o.stderr_path)];
    assert_eq!(o.stdout.lines().collect::<Vec<_>>(), want, "{o}");
}

/// A caller that ignores signals (`nohup` ignores SIGHUP, a background shell job SIGINT and
/// SIGQUIT) passes none of that on: the container's process starts with every signal at its
/// default, for `run` and `exec` alike (a shell could not even trap one ignored at its start).
#[test]
fn ignored_signals_of_the_caller_are_not_inherited() {
    use std::os::unix::process::CommandExt;
    let mut ctx = Ctx::new("sigign");
    let (id, _) = ctx.running("exec sleep 1000");
    {
        let args = ["exec", id.as_str(), "grep", "SigIgn", "/proc/self/status"];
        let mut c = ctx.cmd();
        c.args(args);
        // SAFETY: signal() is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            c.pre_exec(|| {
                for s in [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGUSR1] {
                    libc::signal(s, libc::SIG_IGN);
                }
                Ok(())
            });
        }
        let o = ctx.exec(c).ok();
        assert_eq!(o.stdout.split_whitespace().nth(1), Some("0000000000000000"), "{args:?}: {o}");
    }
    // Not through sh: busybox's sh ignores SIGQUIT itself when it is pid 1.
    ctx.config["process"]["args"] = serde_json::json!(["grep", "SigIgn", "/proc/self/status"]);
    let id = ctx.id();
    ctx.write_config(&id);
    let mut c = ctx.cmd();
    c.args(["run", "--bundle", ctx.bundle.to_str().unwrap(), &id]);
    // SAFETY: as above.
    unsafe {
        c.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let o = ctx.exec(c).ok();
    assert_eq!(o.stdout.split_whitespace().nth(1), Some("0000000000000000"), "run: {o}");
}
