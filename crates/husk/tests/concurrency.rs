//! Many runtime calls at once on one --root, as container managers make them.
mod common;

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
    let bundle = ctx.bundle.to_str().unwrap().to_string();
    let outs: Vec<Out> = std::thread::scope(|s| {
        let handles: Vec<_> =
            (0..6).map(|_| s.spawn(|| ctx.husk(&["create", "--bundle", &bundle, id.as_str()]))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won = outs.iter().filter(|o| o.success()).count();
    assert_eq!(won, 1, "{outs:?}");
    for o in outs.into_iter().filter(|o| !o.success()) {
        o.fails_with("already exists");
    }
    assert_eq!(ctx.status(&id), "created");
    ctx.husk(&["delete", "--force", &id]).ok();
    ctx.husk(&["state", &id]).fails_with("does not exist");
}
