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
