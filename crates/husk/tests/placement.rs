//! How the container process is scheduled and placed: process.scheduler, process.ioPriority,
//! linux.personality, linux.memoryPolicy (runtime-spec 1.2/1.3 fields), seen from inside.
mod common;

use common::*;
use serde_json::json;

/// Fields of /proc/1/stat inside the container, numbered as proc(5) numbers them (1-based).
fn init_stat_field(stat: &str, n: usize) -> String {
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split_whitespace().nth(n - 3).unwrap().to_string()
}

#[test]
fn scheduler_policy_and_nice() {
    let mut ctx = Ctx::new("sched");
    ctx.config["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
    let stat = ctx.run_sh("cat /proc/1/stat");
    assert_eq!(init_stat_field(&stat, 19), "7", "nice: {stat}");
    assert_eq!(init_stat_field(&stat, 41), "3", "policy SCHED_BATCH: {stat}");
}

#[test]
fn scheduler_unknown_flag_names_the_field() {
    if !is_husk() {
        return;
    }
    let mut ctx = Ctx::new("schedbad");
    ctx.config["process"]["scheduler"] = json!({"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_RECLAIM", "NOPE"]});
    let id = ctx.id();
    ctx.run(&id).fails_with("process.scheduler");
}

#[test]
fn io_priority_class() {
    let mut ctx = Ctx::new("ioprio");
    ctx.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
    let out = ctx.run_sh("ionice -p 1");
    assert!(out.starts_with("idle"), "{out}");
}

#[test]
fn personality_linux32() {
    let mut ctx = Ctx::new("persona");
    ctx.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    let out = ctx.run_sh("uname -m");
    assert_eq!(out.trim(), "i686");
}

#[test]
fn memory_policy_bind() {
    if !std::path::Path::new("/proc/self/numa_maps").exists() {
        return; // a kernel without NUMA support has no policies to see
    }
    let mut ctx = Ctx::new("mempol");
    ctx.config["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"});
    let out = ctx.run_sh("cat /proc/self/numa_maps");
    assert!(out.lines().any(|l| l.contains(" bind:0 ")), "{out}");
}

#[test]
fn memory_policy_bad_nodes_names_the_field() {
    if !is_husk() {
        return;
    }
    let mut ctx = Ctx::new("mempolbad");
    ctx.config["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "3-1"});
    let id = ctx.id();
    ctx.run(&id).fails_with("linux.memoryPolicy.nodes");
}

#[test]
fn intel_rdt_without_resctrl_names_the_field() {
    if !is_husk() || std::path::Path::new("/sys/fs/resctrl/schemata").exists() {
        return;
    }
    let mut ctx = Ctx::new("rdt");
    ctx.config["linux"]["intelRdt"] = json!({"closID": "x"});
    let id = ctx.id();
    ctx.run(&id).fails_with("linux.intelRdt");
}

/// This test process's own CPU list (`Cpus_allowed_list`), what a container gets when husk's
/// caller is not pinned; None on a one-CPU machine, where pinning changes nothing.
fn all_cpus() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let list = status_field(&status, "Cpus_allowed_list").unwrap().trim().to_string();
    (list != "0").then_some(list)
}

fn cpus_of(out: &str) -> String {
    status_field(out, "Cpus_allowed_list")
        .unwrap_or_else(|| panic!("no Cpus_allowed_list in {out:?}"))
        .trim()
        .to_string()
}

#[test]
fn caller_cpu_affinity_is_not_inherited() {
    let Some(all) = all_cpus() else { return };
    let mut ctx = Ctx::new("affinity");
    // husk run under `taskset -c 1`: the container still gets every CPU of its cgroup (runc).
    ctx.wrap = vec!["taskset".into(), "-c".into(), "1".into()];
    assert_eq!(cpus_of(&ctx.run_sh("grep Cpus_allowed_list /proc/self/status")), all);
    // The same for a process exec'd by a pinned husk.
    ctx.wrap.clear();
    let (id, _) = ctx.running("exec sleep 100");
    ctx.wrap = vec!["taskset".into(), "-c".into(), "1".into()];
    let o = ctx.husk(&["exec", &id, "grep", "Cpus_allowed_list", "/proc/self/status"]).ok();
    assert_eq!(cpus_of(&o.stdout), all, "exec");
}

#[test]
fn exec_cpu_affinity_initial_then_final() {
    if all_cpus().is_none() {
        return;
    }
    let cases = [
        // `initial` alone: the kernel keeps it once the process is in the cgroup.
        (json!({"initial": "1"}), "1"),
        (json!({"initial": "1", "final": "0"}), "0"),
        (json!({"final": "0"}), "0"),
    ];
    for (affinity, want) in cases {
        let mut ctx = Ctx::new("execaff");
        // The spec: not the init's (it gets every CPU), an exec'd process's.
        ctx.config["process"]["execCPUAffinity"] = affinity.clone();
        let (id, pid) = ctx.running("exec sleep 100");
        let init = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert_eq!(cpus_of(&init), all_cpus().unwrap(), "the init: {affinity}");
        let o = ctx.husk(&["exec", &id, "grep", "Cpus_allowed_list", "/proc/self/status"]).ok();
        assert_eq!(cpus_of(&o.stdout), want, "{affinity}");
    }
}

#[test]
fn scheduler_with_a_cpuset_is_refused_as_runc_does() {
    if all_cpus().is_none() {
        return;
    }
    // SCHED_DEADLINE needs every CPU of its root domain: with all of them it is set ...
    let mut ctx = Ctx::new("schedcpus");
    let deadline = json!({"policy": "SCHED_DEADLINE", "runtime": 10_000_000u64, "deadline": 30_000_000u64, "period": 30_000_000u64});
    ctx.config["process"]["scheduler"] = deadline;
    // A SCHED_DEADLINE process may not fork: grep reads its own policy.
    ctx.config["process"]["args"] = json!(["grep", "^policy", "/proc/self/sched"]);
    let id = ctx.id();
    let o = ctx.run(&id).ok();
    assert_eq!(o.stdout.split_whitespace().last(), Some("6"), "SCHED_DEADLINE: {o}");
    // ... and with a cpuset of one CPU the kernel refuses it: runc's explanation.
    ctx.config["linux"]["resources"]["cpu"] = json!({"cpus": "0"});
    let id = ctx.id();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let o = ctx.run(&id).fails_with("process scheduler can't be used together with AllowedCPUs");
    assert_eq!(o.stdout, "");
    ctx.assert_nothing_left(&id, &mounts);
}

#[test]
fn personality_and_memory_policy_apply_to_exec_too() {
    // runc main sets both in its setns init as well.
    let mut ctx = Ctx::new("personaexec");
    ctx.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    let numa = std::path::Path::new("/proc/self/numa_maps").exists();
    if numa {
        ctx.config["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"});
    }
    let (id, _) = ctx.running("exec sleep 100");
    let o = ctx.husk(&["exec", &id, "uname", "-m"]).ok();
    assert_eq!(o.stdout.trim(), "i686", "{o}");
    if numa {
        let o = ctx.husk(&["exec", &id, "cat", "/proc/self/numa_maps"]).ok();
        assert!(o.stdout.lines().any(|l| l.contains(" bind:0 ")), "{o}");
    }
}
