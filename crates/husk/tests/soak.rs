//! Long runs with nothing growing: 2 000 sequential `run`s of `true` (and, once `exec` exists,
//! 500 execs into one container). At the start and the end: the leak audit's counts, the open
//! fds of this test process, and the fds and memory of the long-lived processes — a container's
//! init and the `husk run` that waits on it for the whole soak. Nothing may grow.
//!
//! CI runs the counts below, but stops a soak after `HUSK_SOAK_SECS` (default 60) once at least
//! a tenth of it ran, so a loaded host cannot push the suite past its limit; the log says how
//! many ran. The longer run: `HUSK_SOAK_RUNS=20000 HUSK_SOAK_EXECS=5000 HUSK_SOAK_SECS=3600
//! cargo test --release -p husk --test soak -- --nocapture --include-ignored`.
mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Whether a soak of `total` may stop after `done` iterations: the time is up and a tenth ran.
fn time_up(start: Instant, done: usize, total: usize) -> bool {
    let limit = Duration::from_secs(env_count("HUSK_SOAK_SECS", 60) as u64);
    start.elapsed() > limit && done * 10 >= total
}

/// The soak tests count this process's fds, which a test running beside them changes: one at a
/// time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn own_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|r| r.count()).unwrap_or(0)
}

/// A long-lived `husk run` (foreground, waiting on its container) and its container's init.
struct LongLived {
    husk: Guarded,
    init: u32,
}

impl LongLived {
    fn start(ctx: &Ctx, id: &str) -> LongLived {
        ctx.write_config(id);
        let mut c = ctx.cmd();
        c.args(["run", "--bundle", ctx.bundle.to_str().unwrap(), id]).stdout(Stdio::null()).stderr(Stdio::null());
        // It lives for the whole soak: bounded by the soak's own time (see `time_up`), with room
        // for a loaded host to need more for its first tenth.
        let bound = Duration::from_secs(3 * env_count("HUSK_SOAK_SECS", 60) as u64 + 300);
        let husk = spawn_for(&mut c, bound);
        assert!(wait_for(10, || ctx.husk(&["state", id]).success()), "the long-lived container did not start");
        ctx.wait_status(id, "running");
        let init = ctx.state(id)["pid"].as_u64().unwrap() as u32;
        LongLived { husk, init }
    }

    fn sample(&self) -> [(usize, u64); 2] {
        [audit::fds_and_rss(self.husk.id()), audit::fds_and_rss(self.init)]
    }
}

#[test]
fn two_thousand_runs_grow_nothing() {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let runs = env_count("HUSK_SOAK_RUNS", 2000);
    let mut ctx = Ctx::new("soak");
    ctx.sh("exec sleep 10000");
    let long_id = ctx.id();
    let mut long = LongLived::start(&ctx, &long_id);
    ctx.sh("true");
    let ids: Vec<String> = (0..runs).map(|_| ctx.id()).collect();
    // One config for every run: cgroups at the default <id>.
    ctx.config["linux"]["cgroupsPath"] = serde_json::json!(null);
    ctx.write_config("unused");
    let before = ctx.audit();
    let (fds0, long0) = (own_fds(), long.sample());
    let bundle = ctx.bundle.to_str().unwrap().to_string();
    let t = Instant::now();
    let mut ran = 0;
    for (i, id) in ids.iter().enumerate() {
        if time_up(t, i, runs) {
            break;
        }
        ran += 1;
        let mut c = ctx.cmd();
        c.args(["run", "--bundle", &bundle, id]).stdout(Stdio::null()).stderr(Stdio::null());
        let st = status(&mut c);
        assert!(st.success(), "run {i} of {runs} ({id}) failed: {st}");
    }
    let took = t.elapsed();
    let after = ctx.audit();
    let (fds1, long1) = (own_fds(), long.sample());
    eprintln!("soak: {ran} of {runs} runs in {took:?} ({:?} each)", took / ran as u32);
    eprintln!("soak: audit at start {}; at end {}", before.counts(), after.counts());
    eprintln!("soak: test process fds {fds0} -> {fds1}");
    eprintln!(
        "soak: long-lived husk run: fds {} -> {}, RSS {} -> {} KiB",
        long0[0].0, long1[0].0, long0[0].1, long1[0].1
    );
    eprintln!("soak: long-lived init: fds {} -> {}, RSS {} -> {} KiB", long0[1].0, long1[1].0, long0[1].1, long1[1].1);
    assert_eq!(before.counts(), after.counts(), "{:?}", before.leaks_in(&after));
    assert!(before.leaks_in(&after).is_empty());
    assert_eq!(fds0, fds1, "this process's fds");
    for (a, b) in long0.iter().zip(&long1) {
        assert_eq!(a.0, b.0, "fds of a long-lived process");
        // Memory: an idle process's RSS may move by a page or two, not by what a leak adds.
        assert!(b.1 <= a.1 + 256, "RSS of a long-lived process grew: {} -> {} KiB", a.1, b.1);
    }
    ctx.husk(&["kill", &long_id, "KILL"]).ok();
    let st = long.husk.wait();
    assert_eq!(st.code(), Some(137), "the long-lived husk run reports the kill");
}

#[test]
fn five_hundred_execs_grow_nothing() {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let execs = env_count("HUSK_SOAK_EXECS", 500);
    let mut ctx = Ctx::new("soakexec");
    ctx.sh("exec sleep 10000");
    let id = ctx.id();
    let long = LongLived::start(&ctx, &id);
    let before = ctx.audit();
    let (fds0, long0) = (own_fds(), long.sample());
    let t = Instant::now();
    let mut ran = 0;
    for i in 0..execs {
        if time_up(t, i, execs) {
            break;
        }
        ran += 1;
        let mut c = ctx.cmd();
        c.args(["exec", &id, "true"]).stdout(Stdio::null()).stderr(Stdio::null());
        let st = status(&mut c);
        assert!(st.success(), "exec {i} of {execs} failed: {st}");
    }
    let took = t.elapsed();
    let after = ctx.audit();
    let (fds1, long1) = (own_fds(), long.sample());
    eprintln!("soak: {ran} of {execs} execs in {took:?}");
    eprintln!("soak: audit at start {}; at end {}", before.counts(), after.counts());
    eprintln!("soak: init fds {} -> {}, RSS {} -> {} KiB", long0[1].0, long1[1].0, long0[1].1, long1[1].1);
    assert!(before.leaks_in(&after).is_empty(), "{:?}", before.leaks_in(&after));
    assert_eq!(fds0, fds1);
    assert_eq!(long0[1].0, long1[1].0, "the init's fds");
    assert!(long1[1].1 <= long0[1].1 + 256, "the init's RSS grew");
}
