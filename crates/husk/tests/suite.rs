//! The suite's checks of itself:
//!
//! - hangs are bugs: every process a test starts runs under the watchdog (common/watchdog.rs),
//!   no test starts one past it, and a hung runtime call fails its test naming it and is killed.
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

// ---- Hangs are bugs ----

/// No test starts a process past the watchdog: `Command::spawn`, `status` and `output` are
/// called in common/watchdog.rs only; everything else goes through it.
#[test]
fn tests_start_processes_only_under_the_watchdog() {
    let root = repo_root().join("crates/husk/tests");
    let mut found = vec![];
    for f in rust_files(&root) {
        if f.ends_with("common/watchdog.rs") {
            continue;
        }
        let text = fs::read_to_string(&f).unwrap();
        for (n, l) in text.lines().enumerate() {
            let code = l.split("//").next().unwrap_or("");
            let t = code.trim_start();
            for name in ["spawn", "status", "output", "wait_with_output"] {
                // (made here, so that this line is no match of its own)
                let call = format!(".{name}()");
                // The chained form (`Command::new(x)` on one line, `.status()` on the next) too.
                if code.contains(&call) || t.starts_with(&call[1..]) {
                    found.push(format!("{}:{}: {}", f.strip_prefix(&root).unwrap().display(), n + 1, l.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "processes started past the watchdog (use common::spawn/spawn_for/status/output, run_cmd or Ctx::husk):\n  {}",
        found.join("\n  ")
    );
}

/// A command past its bound: SIGTERM, then SIGKILL for what ignores it, below it too; its
/// owner fails naming it.
#[test]
fn watchdog_ends_a_hang_and_says_so() {
    let mut c = Command::new("sh");
    // The shell ignores SIGTERM, so only the SIGKILL after the grace period ends it; two
    // children sleep below it.
    c.args(["-c", "trap '' TERM; sleep 300 & sleep 301; wait"]).stdin(Stdio::null());
    let t = Instant::now();
    let mut g = spawn_for(&mut c, Duration::from_millis(800));
    let pid = g.id() as i32;
    assert!(wait_for(5, || common::watchdog::descendants(pid).len() == 2), "the shell's two children");
    let below = common::watchdog::descendants(pid);
    let err = g.wait_or_hang().expect_err("a hang must be reported");
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    assert!(err.starts_with("hang: ") && err.contains("sleep 301") && err.contains("800ms"), "{err}");
    for (p, start) in below {
        let gone = wait_for(5, || common::watchdog::start_time(p) != Some(start) || !alive(p as u32));
        assert!(gone, "process {p} below the hung one survived");
    }
    // A quick one is left alone.
    assert!(status(Command::new("true").stdin(Stdio::null())).success());
}

/// A runtime call that does not return (here `events`, which streams until killed) fails its
/// test with a message naming it, within its bound, and leaves no runtime process behind.
#[test]
fn a_runtime_call_past_its_bound_fails_the_test_and_is_killed() {
    let mut ctx = Ctx::new("suite-hang");
    let (id, _) = ctx.running("exec sleep 1000");
    let mut c = ctx.cmd();
    c.args(["events", "--interval", "100ms", &id]);
    let dir = ctx.dir.clone();
    let t = Instant::now();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || run_cmd(c, &dir, Duration::from_secs(2))));
    let msg = r.expect_err("a call past its bound must fail the test");
    let text = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(text.starts_with("hang: ") && text.contains("events") && text.contains("2s"), "{text}");
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    let left = || procs_of(&id, &ctx.dir).into_iter().filter(|(_, cmd)| cmd.contains("events")).count();
    assert!(wait_for(5, || left() == 0), "the hung runtime call is still there: {:?}", procs_of(&id, &ctx.dir));
    assert_eq!(ctx.status(&id), "running", "the container is not the runtime call's to end");
}
