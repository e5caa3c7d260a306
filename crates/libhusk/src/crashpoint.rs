//! A test-only switch that makes husk die at a named step, so the tests can prove that a husk
//! killed anywhere (by a manager's timeout, the OOM killer, a reboot of the shim) leaves a state
//! that later calls can read and `delete --force` can clean.
//!
//! `HUSK_TEST_STOP_AT=<step>` (or `<step>#<n>` for the n-th time the step is reached) makes the
//! process that reaches it SIGKILL itself there, exactly as if it had been killed from outside at
//! that moment. The container's init reaches the `init:` steps, so those kill the init instead.
//! Unset, a step costs one environment lookup for the whole process, then a load.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The steps husk passes, in order, for the tests to sweep (`tests/crash.rs` kills at each
/// and checks the container's state and leftovers); `exec:` steps only `exec` passes.
pub const STEPS: &[&str] = &[
    "create:state-dir",
    "create:state-saved",
    "cgroup:first-made",
    "create:cgroup-made",
    "create:cloned",
    "create:in-cgroup",
    "init:go",
    "init:rootfs",
    "create:go-sent",
    // The init's last step in husk's code: from here the exec trampoline waits for Created
    // and `start` (with startContainer hooks, husk's code waits instead and passes
    // init:created and init:accepted, not swept).
    "init:ready",
    "create:ready",
    "atomic:written",
    "create:saved",
    "create:pid-file",
    "start:locked",
    "start:connected",
    "start:signalled",
    "start:done",
    "run:started",
    "run:exited",
    "delete:locked",
    "delete:killed",
    "delete:cgroup-removed",
    "exec:loaded",
    "exec:cloned",
    "exec:started",
    "exec:handed-over",
];

struct Target {
    step: String,
    nth: u32,
}

fn target() -> Option<&'static Target> {
    static T: OnceLock<Option<Target>> = OnceLock::new();
    T.get_or_init(|| {
        let v = std::env::var("HUSK_TEST_STOP_AT").ok().filter(|v| !v.is_empty())?;
        let (step, nth) = match v.split_once('#') {
            Some((s, n)) => (s.to_string(), n.parse().unwrap_or(1)),
            None => (v, 1),
        };
        Some(Target { step, nth })
    })
    .as_ref()
}

/// Die here if the test switch names this step.
pub fn here(step: &'static str) {
    static HITS: AtomicU32 = AtomicU32::new(0);
    let Some(t) = target() else { return };
    if t.step != step || HITS.fetch_add(1, Ordering::Relaxed) + 1 != t.nth {
        return;
    }
    // SAFETY: kill(2) on our own pid, then _exit. The init of a new pid namespace ignores even
    // SIGKILL from inside it, so it leaves by _exit: to its parent that is the same sudden death.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
        libc::_exit(137)
    }
}
