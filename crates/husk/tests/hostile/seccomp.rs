//! seccomp profiles that cost too much: programs larger than a pipe buffer, very many rules,
//! rules too intricate for libseccomp to compile in reasonable time. Each is refused within a
//! deadline, in one line naming the field, with the host unchanged and nothing left.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;
use crate::host::HostSnapshot;

/// `n` rules on kill(2), each made by `rule(i)`.
fn profile(n: u64, rule: impl Fn(u64) -> Value) -> Value {
    json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": (0..n).map(rule).collect::<Vec<_>>()})
}

/// Create with `profile` under `deadline`: it must fail in time, in one line containing
/// `want` (husk's wording), leaving the host as it was and nothing behind.
fn refused_within(name: &str, profile: Value, deadline: Duration, want: &str) {
    let mut ctx = Ctx::new(name);
    ctx.config["linux"]["seccomp"] = profile;
    let id = ctx.id();
    let before = ctx.audit();
    let snap = HostSnapshot::take(&ctx);
    ctx.write_config(&id);
    let mut c = ctx.cmd();
    c.args(["create", "--bundle", ctx.bundle.to_str().unwrap(), &id]);
    let t = Instant::now();
    // Past the deadline run_cmd kills the runtime and fails the test: a hang is a failure.
    let o = run_cmd(c, &ctx.dir, deadline).fails();
    let took = t.elapsed();
    if is_husk() {
        assert_eq!(o.stderr_lines().len(), 1, "one line: {o}");
        assert!(o.stderr.contains(want), "expected {want:?}: {o}");
    }
    eprintln!("{name}: refused after {took:?}");
    snap.assert_unchanged();
    ctx.assert_no_leaks(&before);
}

#[test]
fn seccomp_program_larger_than_a_pipe_buffer_is_refused_in_time() {
    // 1024 rules of two 64-bit conditions: about 9,000 BPF instructions, 72 KiB, more than a
    // pipe's 64 KiB. libseccomp wrote the program into a pipe that husk read only afterwards:
    // create hung forever (issue 19.5). Now: compiled in under a second, and refused, since the
    // kernel loads at most 4096 instructions.
    let p = profile(1024, |i| {
        let v = (i << 33) | i;
        json!({"names": ["kill"], "action": "SCMP_ACT_ERRNO",
               "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": v, "op": "SCMP_CMP_GT"}]})
    });
    refused_within("hostile-sc-pipe", p, Duration::from_secs(30), "linux.seccomp: the compiled filter has");
}

#[test]
fn seccomp_ten_thousand_argument_rules_are_refused_at_once() {
    // Issue 19.5's profile: more rules than any loadable filter holds, refused before libseccomp
    // spends seconds on them.
    let p = profile(
        10_000,
        |i| json!({"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": i, "op": "SCMP_CMP_EQ"}]}),
    );
    refused_within(
        "hostile-sc-rules",
        p,
        Duration::from_secs(10),
        "linux.seccomp.syscalls[4096]: the profile asks for more than 4096 rules",
    );
}

#[test]
fn seccomp_profile_too_intricate_to_compile_is_refused_after_the_timeout() {
    // Few rules, but each of six SCMP_CMP_NE conditions: libseccomp's time explodes (341 such
    // rules took 66 s here, 500 take far longer). husk gives it 10 s.
    let p = profile(500, |i| {
        let args: Vec<Value> =
            (0..6).map(|a| json!({"index": a, "value": (i << 33) | (i + a), "op": "SCMP_CMP_NE"})).collect();
        json!({"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": args})
    });
    refused_within(
        "hostile-sc-slow",
        p,
        Duration::from_secs(40),
        "linux.seccomp: libseccomp did not compile the profile within 10s",
    );
}
