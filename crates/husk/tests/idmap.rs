//! Idmapped mounts (a mount's uidMappings/gidMappings, the `idmap` and `ridmap` options,
//! runtime-spec 1.2), as root and rootless: the owners the container sees on the mount, the
//! reverse mapping of files it creates, the recursion of `ridmap`, and the errors.
//!
//! runc 1.1 differs in every test here: it has no idmapped mounts (runc 1.2 added them) and
//! ignores or refuses the fields.
mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::Command;

use common::*;
use serde_json::{json, Value};

/// A host directory with a file owned by 0:0 and one by 1234:1234, writable by anyone.
fn volume(ctx: &Ctx, name: &str) -> PathBuf {
    let dir = ctx.dir.join(name);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("root-file"), "r").unwrap();
    fs::write(dir.join("u1234"), "u").unwrap();
    std::os::unix::fs::chown(dir.join("u1234"), Some(1234), Some(1234)).unwrap();
    std::os::unix::fs::chown(&dir, Some(0), Some(0)).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

fn map(container: u32, host: u32, size: u32) -> Value {
    json!([{"containerID": container, "hostID": host, "size": size}])
}

fn add_mount(ctx: &mut Ctx, m: Value) -> usize {
    let mounts = ctx.config["mounts"].as_array_mut().unwrap();
    mounts.push(m);
    mounts.len() - 1
}

#[test]
fn idmapped_bind_mount_shows_mapped_owners_as_root() {
    let mut ctx = Ctx::new("idmroot");
    let vol = volume(&ctx, "vol");
    add_mount(
        &mut ctx,
        json!({"destination": "/idm", "type": "bind", "source": vol, "options": ["bind", "idmap"],
        "uidMappings": map(0, 5000, 2000), "gidMappings": map(0, 7000, 2000)}),
    );
    add_mount(&mut ctx, json!({"destination": "/plain", "type": "bind", "source": vol, "options": ["bind"]}));
    // The process is 5000:7000, which the mount maps back to 0:0 on the filesystem.
    ctx.config["process"]["user"] = json!({"uid": 5000, "gid": 7000});
    let out = ctx.run_sh("stat -c '%u:%g' /idm/root-file /idm/u1234 /plain/root-file /plain/u1234; touch /idm/made");
    assert_eq!(out, "5000:7000\n6234:8234\n0:0\n1234:1234\n", "on-disk id k shows as host id 5000+k (7000+k)");
    let made = fs::metadata(vol.join("made")).unwrap();
    assert_eq!((made.uid(), made.gid()), (0, 0), "a file made by 5000:7000 through the mount is 0:0 on disk");
}

#[test]
fn idmap_without_maps_takes_the_containers_user_namespace() {
    // The Kubernetes user-namespace pod: host root's files are the container root's.
    let mut ctx = Ctx::new("idmuserns");
    chown_rootfs(&ctx, 100000, 100000);
    ctx.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
    ctx.config["linux"]["uidMappings"] = map(0, 100000, 65536);
    ctx.config["linux"]["gidMappings"] = map(0, 100000, 65536);
    ctx.config["mounts"].as_array_mut().unwrap().retain(|m| m["type"] != "cgroup");
    let vol = volume(&ctx, "vol");
    add_mount(&mut ctx, json!({"destination": "/idm", "type": "bind", "source": vol, "options": ["rbind", "idmap"]}));
    add_mount(&mut ctx, json!({"destination": "/plain", "type": "bind", "source": vol, "options": ["rbind"]}));
    let out = ctx.run_sh("stat -c '%u:%g' /idm/root-file /idm/u1234 /plain/root-file; echo x > /idm/by-root; id -u");
    assert_eq!(out, "0:0\n1234:1234\n65534:65534\n0\n", "unmapped host root is the overflow id on a plain bind");
    let made = fs::metadata(vol.join("by-root")).unwrap();
    assert_eq!(made.uid(), 0, "container root writes host-root files through the idmapped mount");
}

#[test]
fn ridmap_reaches_the_submounts_of_an_rbind_and_idmap_does_not() {
    let mut ctx = Ctx::new("idmrec");
    let vol = volume(&ctx, "vol");
    let inner = volume(&ctx, "inner");
    fs::create_dir_all(vol.join("sub")).unwrap();
    for (dest, opt) in [("/rec", "ridmap"), ("/top", "idmap")] {
        add_mount(
            &mut ctx,
            json!({"destination": dest, "type": "bind", "source": vol, "options": ["rbind", opt],
            "uidMappings": map(0, 3000, 2000), "gidMappings": map(0, 3000, 2000)}),
        );
    }
    ctx.sh("stat -c '%u' /rec/root-file /rec/sub/u1234 /top/root-file /top/sub/u1234");
    let id = ctx.id();
    ctx.write_config(&id);
    // A submount under the volume, in a private mount namespace of the runtime's own so that
    // nothing is left on the host.
    let script = format!(
        "mount --bind {} {} && exec \"$0\" --root {} run --bundle {} {}",
        inner.display(),
        vol.join("sub").display(),
        ctx.root.display(),
        ctx.bundle.display(),
        id
    );
    let mut c = Command::new("unshare");
    c.args(["-m", "--propagation", "private", "sh", "-c", &script]).arg(bin()).stdin(std::process::Stdio::null());
    let out = ctx.exec(c).ok().stdout;
    assert_eq!(out, "3000\n4234\n3000\n1234\n", "ridmap maps the submount; idmap leaves it as it is");
}

#[test]
fn idmap_errors_name_the_mount() {
    let cases: Vec<(Value, &str)> = vec![
        (json!({"options": ["bind", "idmap"]}), "has no user namespace"),
        (json!({"options": ["bind"], "uidMappings": map(0, 1000, 1)}), ".gidMappings: must be given with uidMappings"),
        (json!({"options": ["bind", "ridmap"], "gidMappings": map(0, 1000, 1)}), ".uidMappings: must be given"),
    ];
    for (extra, want) in cases {
        let mut ctx = Ctx::new("idmerr");
        let vol = volume(&ctx, "vol");
        let mut m = json!({"destination": "/idm", "type": "bind", "source": vol});
        m.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let n = add_mount(&mut ctx, m);
        let id = ctx.id();
        let before = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let o = ctx.run(&id).fails();
        if is_husk() {
            assert!(o.stderr.contains(&format!("mounts[{n}]")) && o.stderr.contains(want), "{want}: {o}");
            assert_eq!(o.stderr_lines().len(), 1, "{o}");
        }
        ctx.assert_nothing_left(&id, &before);
    }
    let mut ctx = Ctx::new("idmtmpfs");
    let n = add_mount(
        &mut ctx,
        json!({"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"],
        "uidMappings": map(0, 1000, 1), "gidMappings": map(0, 1000, 1)}),
    );
    let id = ctx.id();
    let o = ctx.run(&id).fails();
    if is_husk() {
        assert!(o.stderr.contains(&format!("mounts[{n}]")) && o.stderr.contains("bind mounts only"), "{o}");
    }
}

#[test]
fn idmapped_mount_rootless_on_a_filesystem_of_the_containers_user_namespace() {
    // Rootless husk may idmap only what the container's user namespace mounted: here a tmpfs the
    // config mounts first (its root dir owned by the container's root), bound again idmapped.
    let mut ctx = Ctx::rootless("idmrl");
    ctx.map_subids();
    let u = ctx.user.clone().unwrap();
    ctx.config["root"]["readonly"] = json!(false);
    add_mount(&mut ctx, json!({"destination": "/vol", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]}));
    let src = ctx.rootfs().join("vol");
    // On the tmpfs, id k (of the container's namespace, which owns it) shows as host subuid+999+k:
    // the container's 1000+k.
    add_mount(
        &mut ctx,
        json!({"destination": "/idvol", "type": "bind", "source": src, "options": ["bind", "idmap"],
        "uidMappings": map(0, u.subuid.0 + 999, 100), "gidMappings": map(0, u.subgid.0 + 999, 100)}),
    );
    let out = ctx.run_sh("stat -c '%u:%g' /vol /idvol; cat /proc/self/uid_map | wc -l");
    assert_eq!(out, "0:0\n1000:1000\n2\n");
}

#[test]
fn idmapped_mount_rootless_of_a_host_filesystem_is_refused_clearly() {
    // The kernel requires CAP_SYS_ADMIN over the user namespace that mounted the filesystem: for
    // the host's ext4, real root. crun fails the same way (crun#1632).
    let mut ctx = Ctx::rootless("idmrlhost");
    ctx.map_subids();
    let u = ctx.user.clone().unwrap();
    let vol = ctx.dir.join("vol");
    fs::create_dir(&vol).unwrap();
    rootless::chown_to(&vol, &u);
    let n = add_mount(
        &mut ctx,
        json!({"destination": "/idm", "type": "bind", "source": vol, "options": ["bind", "idmap"],
        "uidMappings": map(0, u.subuid.0, 10), "gidMappings": map(0, u.subgid.0, 10)}),
    );
    let id = ctx.id();
    let before = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let o = ctx.run(&id).fails();
    if is_husk() {
        assert!(o.stderr.contains(&format!("mounts[{n}]")) && o.stderr.contains("real root"), "{o}");
        assert_eq!(o.stderr_lines().len(), 1, "{o}");
    }
    ctx.assert_nothing_left(&id, &before);
    // A host id the container's namespace does not map cannot be given to the mount either.
    let mut ctx = Ctx::rootless("idmrlunmapped");
    ctx.config["root"]["readonly"] = json!(false);
    add_mount(&mut ctx, json!({"destination": "/vol", "type": "tmpfs", "source": "tmpfs"}));
    let src = ctx.rootfs().join("vol");
    let n = add_mount(
        &mut ctx,
        json!({"destination": "/idvol", "type": "bind", "source": src,
        "options": ["bind", "idmap"], "uidMappings": map(0, u.subuid.0, 1), "gidMappings": map(0, u.gid, 1)}),
    );
    let o = ctx.run(&ctx.id()).fails();
    if is_husk() {
        assert!(o.stderr.contains(&format!("mounts[{n}].uidMappings")) && o.stderr.contains("not mapped"), "{o}");
    }
}

#[test]
fn features_report_idmap_and_the_recursive_options() {
    let ctx = Ctx::new("idmfeat");
    let f: Value = serde_json::from_str(&ctx.husk(&["features"]).ok().stdout).unwrap();
    assert_eq!(f["linux"]["mountExtensions"]["idmap"]["enabled"], true, "{f}");
    let opts: Vec<&str> = f["mountOptions"].as_array().unwrap().iter().map(|o| o.as_str().unwrap()).collect();
    for o in ["idmap", "ridmap", "rro", "rrw", "rnosuid", "rnodev", "rnoexec", "rnoatime", "rnosymfollow"] {
        assert!(opts.contains(&o), "{o} missing from {opts:?}");
    }
}

/// A relative bind source is the bundle's, for idmapped mounts too (runc alike).
#[test]
fn idmapped_bind_mount_with_a_relative_source() {
    let mut ctx = Ctx::new("idmrel");
    let vol = volume(&ctx, "vol");
    fs::rename(&vol, ctx.bundle.join("vol")).unwrap();
    add_mount(
        &mut ctx,
        json!({"destination": "/idm", "type": "bind", "source": "vol", "options": ["rbind", "idmap"],
        "uidMappings": map(0, 5000, 2000), "gidMappings": map(0, 7000, 2000)}),
    );
    assert_eq!(ctx.run_sh("stat -c '%u:%g' /idm/root-file /idm/u1234"), "5000:7000\n6234:8234\n");
}

/// `idmap` without mappings in a container that joins a user namespace by path takes that
/// namespace as it is (runc 1.2+ passes the joined namespace to MOUNT_ATTR_IDMAP): host root's
/// files are the container root's. Before: refused as having no user namespace.
#[test]
fn idmap_without_maps_takes_a_joined_user_namespace() {
    let mut ctx = Ctx::new("idmjoin");
    chown_rootfs(&ctx, 100000, 100000);
    ctx.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
    ctx.config["linux"]["uidMappings"] = map(0, 100000, 65536);
    ctx.config["linux"]["gidMappings"] = map(0, 100000, 65536);
    ctx.config["mounts"].as_array_mut().unwrap().retain(|m| m["type"] != "cgroup");
    ctx.sh("exec sleep 100");
    let a = ctx.id();
    ctx.run_with(&a, &["-d"]).ok();
    let pid = ctx.state(&a)["pid"].as_u64().unwrap();
    let linux = &mut ctx.config["linux"];
    linux.as_object_mut().unwrap().remove("uidMappings");
    linux.as_object_mut().unwrap().remove("gidMappings");
    linux["namespaces"] = json!([
        {"type": "user", "path": format!("/proc/{pid}/ns/user")},
        {"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}, {"type": "network"}
    ]);
    let vol = volume(&ctx, "vol");
    let n = add_mount(
        &mut ctx,
        json!({"destination": "/idm", "type": "bind", "source": vol, "options": ["rbind", "idmap"]}),
    );
    add_mount(&mut ctx, json!({"destination": "/plain", "type": "bind", "source": vol, "options": ["rbind"]}));
    let out = ctx.run_sh("stat -c '%u:%g' /idm/root-file /idm/u1234 /plain/root-file; echo x > /idm/by-root");
    assert_eq!(out, "0:0\n1234:1234\n65534:65534\n", "mounts[{n}] idmapped through the joined namespace");
    assert_eq!(fs::metadata(vol.join("by-root")).unwrap().uid(), 0);
}
