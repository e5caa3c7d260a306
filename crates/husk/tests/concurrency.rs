//! Many runtime calls at once on one --root, as container managers make them: every call
//! succeeds or fails cleanly (one line, the caller's wording), and the leak audit is clean.
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::*;
use serde_json::json;

/// One config for all containers: no cgroupsPath, so each gets the default `<id>` cgroup.
fn shared_config(ctx: &mut Ctx) {
    ctx.config["linux"]["cgroupsPath"] = json!(null);
    ctx.write_config("unused");
}

#[test]
fn parallel_runs_on_one_root() {
    let mut ctx = Ctx::new("par");
    ctx.sh("echo $$");
    shared_config(&mut ctx);
    let ids: Vec<String> = (0..12).map(|_| ctx.id()).collect();
    let bundle = ctx.bundle.to_str().unwrap().to_string();
    let outs: Vec<Out> = std::thread::scope(|s| {
        let handles: Vec<_> =
            ids.iter().map(|id| s.spawn(|| ctx.husk(&["run", "--bundle", &bundle, id.as_str()]))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for o in outs {
        assert_eq!(o.ok().stdout, "1\n");
    }
    let list = ctx.husk(&["list", "-q"]).ok();
    assert_eq!(list.stdout, "", "every run deleted its container");
}

// runc 1.1 differs: its concurrent creates of one id race (seen here: two winners, or none,
// with "exec fifo ... already exists" and cgroups left busy); husk claims the id with one mkdir.
#[test]
fn racing_creates_of_one_id_one_wins() {
    let mut ctx = Ctx::new("race");
    ctx.sh("exec sleep 100");
    shared_config(&mut ctx);
    let id = ctx.id();
    let before = ctx.audit();
    let bundle = ctx.bundle.to_str().unwrap().to_string();
    let outs: Vec<Out> = std::thread::scope(|s| {
        let handles: Vec<_> =
            (0..6).map(|_| s.spawn(|| ctx.husk(&["create", "--bundle", &bundle, id.as_str()]))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won = outs.iter().filter(|o| o.success()).count();
    assert_eq!(won, 1, "{outs:?}");
    for o in outs.into_iter().filter(|o| !o.success()) {
        let o = o.fails_with("already exists");
        assert_eq!(o.stderr_lines().len(), 1, "{o}");
    }
    // Nothing of the losers: the winner's one init, its state, nothing else.
    assert_eq!(ctx.status(&id), "created");
    let now = ctx.audit();
    let init = ctx.state(&id)["pid"].as_u64().unwrap();
    let procs: Vec<&String> = now.procs.difference(&before.procs).collect();
    assert_eq!(procs.len(), 1, "one init only: {procs:?}");
    assert!(procs[0].starts_with(&format!("pid {init} ")), "{procs:?}");
    ctx.husk(&["delete", "--force", &id]).ok();
    ctx.husk(&["state", &id]).fails_with("does not exist");
    ctx.assert_no_leaks(&before);
}

/// A bundle of its own for `id` (config.json only; the rootfs is the test's, shared), with its
/// cgroup under `/husk-tests/<parent>/<id>`.
fn own_bundle(ctx: &Ctx, id: &str, parent: &str) -> PathBuf {
    let dir = ctx.dir.join("bundles").join(id);
    fs::create_dir_all(&dir).unwrap();
    let mut c = ctx.config.clone();
    c["root"]["path"] = json!(ctx.rootfs());
    c["linux"]["cgroupsPath"] = json!(format!("/{CGROUP_PARENT}/{parent}/{id}"));
    fs::write(dir.join("config.json"), serde_json::to_vec(&c).unwrap()).unwrap();
    dir
}

/// The parent cgroup the test named: husk removes the parents it made when it can, but a parent
/// shared by containers deleted in any order is the manager's to remove (runc never removes
/// them). Every one must be empty now: rmdir succeeds.
fn remove_parent_cgroups(parent: &str) {
    for m in ["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd", "unified"] {
        let d = Path::new("/sys/fs/cgroup").join(m).join(CGROUP_PARENT).join(parent);
        if d.exists() {
            fs::remove_dir(&d).unwrap_or_else(|e| panic!("parent cgroup {} is not empty: {e}", d.display()));
        }
    }
}

const CONTAINERS: usize = 50;

/// 50 containers at once, each through create, start, (exec,) kill and delete, all under one
/// new parent cgroup on one --root.
fn fifty_in_parallel(with_exec: bool) -> usize {
    let mut ctx = Ctx::new("fifty");
    ctx.sh("exec sleep 100");
    let parent = ctx.id();
    let ids: Vec<String> = (0..CONTAINERS).map(|_| ctx.id()).collect();
    let bundles: Vec<PathBuf> = ids.iter().map(|id| own_bundle(&ctx, id, &parent)).collect();
    let before = ctx.audit();
    let calls = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for (id, bundle) in ids.iter().zip(&bundles) {
            let (ctx, calls) = (&ctx, &calls);
            s.spawn(move || {
                let husk = |args: &[&str]| {
                    calls.fetch_add(1, Ordering::Relaxed);
                    ctx.husk(args)
                };
                husk(&["create", "--bundle", bundle.to_str().unwrap(), id]).ok();
                husk(&["start", id]).ok();
                if with_exec {
                    let o = husk(&["exec", id, "sh", "-c", "echo in-$0", id]).ok();
                    assert_eq!(o.stdout, format!("in-{id}\n"));
                }
                husk(&["kill", id, "KILL"]).ok();
                // Stopped once the init is gone (PID 1 reaps it late here); delete waits anyway.
                husk(&["delete", "--force", id]).ok();
                husk(&["state", id]).fails_with("does not exist");
            });
        }
    });
    assert_eq!(ctx.husk(&["list", "-q"]).ok().stdout, "");
    remove_parent_cgroups(&parent);
    ctx.assert_no_leaks(&before);
    let n = calls.into_inner();
    eprintln!("{CONTAINERS} containers in parallel: {n} runtime calls");
    n
}

#[test]
fn fifty_containers_in_parallel_on_one_root() {
    fifty_in_parallel(false);
}

#[test]
fn fifty_containers_with_exec_in_parallel_on_one_root() {
    fifty_in_parallel(true);
}

/// delete --force, kill, kill --all and state of one running container at the same moment:
/// each call succeeds or fails with the callers' wording, and nothing is left.
#[test]
fn concurrent_delete_and_kill_of_one_container() {
    let mut ctx = Ctx::new("delkill");
    ctx.sh("exec sleep 100");
    let mut calls = 0;
    for _ in 0..10 {
        let id = ctx.id();
        let before = ctx.audit();
        ctx.run_with(&id, &["-d"]).ok();
        let cmds: [&[&str]; 6] = [
            &["delete", "--force", &id],
            &["kill", &id, "KILL"],
            &["kill", "--all", &id, "TERM"],
            &["delete", "--force", &id],
            &["state", &id],
            &["kill", &id],
        ];
        let outs: Vec<Out> = std::thread::scope(|s| {
            let hs: Vec<_> = cmds.iter().map(|c| s.spawn(|| ctx.husk(c))).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        calls += outs.len();
        for (cmd, o) in cmds.iter().zip(outs) {
            let o = o.no_panic();
            if cmd[0] == "delete" {
                assert!(o.success(), "delete --force must always succeed: {o}");
            } else if !o.success() {
                assert_eq!(o.stderr_lines().len(), 1, "{cmd:?}: {o}");
                let e = o.stderr.to_lowercase();
                assert!(e.contains("does not exist") || e.contains("not running"), "{cmd:?}: unexpected wording: {o}");
            }
        }
        ctx.husk(&["state", &id]).fails_with("does not exist");
        ctx.assert_no_leaks(&before);
    }
    eprintln!("concurrent delete/kill/state: {calls} runtime calls");
}

/// `list` (both formats) and `state` of every id while other threads create, start and delete:
/// always a clean answer.
#[test]
fn list_while_creating_and_deleting() {
    let mut ctx = Ctx::new("listing");
    ctx.sh("exec sleep 100");
    let parent = ctx.id();
    let ids: Vec<String> = (0..16).map(|_| ctx.id()).collect();
    let bundles: Vec<PathBuf> = ids.iter().map(|id| own_bundle(&ctx, id, &parent)).collect();
    // A --root named on the command line must exist (runc main): as a manager's would.
    fs::create_dir_all(&ctx.root).unwrap();
    let before = ctx.audit();
    let done = AtomicBool::new(false);
    let lists = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let workers: Vec<_> = ids
            .chunks(4)
            .zip(bundles.chunks(4))
            .map(|(ids, bundles)| {
                let ctx = &ctx;
                s.spawn(move || {
                    for (id, b) in ids.iter().zip(bundles) {
                        ctx.husk(&["create", "--bundle", b.to_str().unwrap(), id]).ok();
                        ctx.husk(&["start", id]).ok();
                        ctx.husk(&["delete", "--force", id]).ok();
                    }
                })
            })
            .collect();
        for _ in 0..2 {
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    let o = ctx.husk(&["list", "--format", "json"]).ok();
                    let v: serde_json::Value = serde_json::from_str(&o.stdout)
                        .unwrap_or_else(|e| panic!("list output is not JSON ({e}): {o}"));
                    for c in v.as_array().into_iter().flatten() {
                        let st = c["status"].as_str().unwrap_or("");
                        assert!(["creating", "created", "running", "stopped"].contains(&st), "{c}");
                    }
                    ctx.husk(&["list"]).ok();
                    lists.fetch_add(2, Ordering::Relaxed);
                }
            });
        }
        for w in workers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });
    assert!(lists.load(Ordering::Relaxed) > 0);
    eprintln!("list while creating/deleting: {} lists during {} lifecycles", lists.load(Ordering::Relaxed), ids.len());
    remove_parent_cgroups(&parent);
    ctx.assert_no_leaks(&before);
}
