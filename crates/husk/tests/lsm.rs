//! AppArmor and SELinux: `process.apparmorProfile` applied at exec (also when the image or a
//! volume fakes /proc: CVE-2019-16884, CVE-2019-19921, CVE-2023-28642), and clear errors where
//! the module is absent. `apparmor_*` tests need AppArmor and run in the guest (docs/guest.md);
//! elsewhere they are skipped, unless HUSK_REQUIRE=apparmor makes them fail.
mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::process::Command;

/// An AppArmor profile loaded with apparmor_parser for the test's lifetime: it allows
/// everything but writes under /husk-denied.
struct Profile {
    name: String,
    file: std::path::PathBuf,
}

impl Profile {
    fn load(ctx: &Ctx) -> Profile {
        let name = format!("husk-test-{}", ctx.dir.file_name().unwrap().to_string_lossy());
        let file = ctx.dir.join("apparmor.profile");
        let text = format!(
            "profile {name} flags=(attach_disconnected,mediate_deleted) {{\n  file,\n  capability,\n  network,\n  \
             signal,\n  ptrace,\n  unix,\n  mount,\n  umount,\n  pivot_root,\n  deny /husk-denied/** w,\n}}\n"
        );
        fs::write(&file, text).unwrap();
        let o = output(Command::new("apparmor_parser").arg("-r").arg(&file));
        assert!(o.status.success(), "apparmor_parser: {}", String::from_utf8_lossy(&o.stderr));
        Profile { name, file }
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        output(Command::new("apparmor_parser").arg("-R").arg(&self.file));
    }
}

/// The label of a host pid, as AppArmor reports it.
fn label_of(pid: u64) -> String {
    let current = fs::read_to_string(format!("/proc/{pid}/attr/apparmor/current"))
        .or_else(|_| fs::read_to_string(format!("/proc/{pid}/attr/current")))
        .unwrap();
    current.trim_end_matches(['\n', '\0']).to_string()
}

#[test]
fn apparmor_profile_applied_at_exec() {
    if !require(Feature::AppArmor) {
        return;
    }
    let mut ctx = Ctx::new("aa-exec");
    let profile = Profile::load(&ctx);
    fs::create_dir_all(ctx.rootfs().join("husk-denied")).unwrap();
    ctx.config["root"]["readonly"] = json!(false);
    ctx.config["process"]["apparmorProfile"] = json!(profile.name);
    let out = ctx.run_sh("cat /proc/self/attr/current; echo; touch /husk-denied/x 2>&1; touch /tmp/ok && echo allowed");
    assert!(out.starts_with(&format!("{} (enforce)", profile.name)), "{out}");
    assert!(out.contains("Permission denied"), "the profile's deny rule holds: {out}");
    assert!(out.ends_with("allowed\n"), "{out}");
    // From the host: the running container process carries the profile.
    ctx.sh("exec sleep 100");
    let id = ctx.id();
    ctx.run_with(&id, &["-d"]).ok();
    let pid = ctx.state(&id)["pid"].as_u64().unwrap();
    assert_eq!(label_of(pid), format!("{} (enforce)", profile.name));
}

#[test]
fn apparmor_profile_applied_despite_a_volume_over_proc() {
    // CVE-2019-19921 (and CVE-2019-16884, CVE-2023-28642): a mount over /proc holds plain files
    // where the runtime writes the label; a runtime that writes /proc/self/attr/... in the
    // container's /proc writes them and the process runs unconfined. husk writes through its own
    // checked procfs. runc 1.1.5 refuses the mount ("/proc cannot be mounted"), which is safe.
    if !require(Feature::AppArmor) {
        return;
    }
    let mut ctx = Ctx::new("aa-fakeproc");
    let profile = Profile::load(&ctx);
    let fake = ctx.dir.join("fakeproc");
    for pid in ["self", "1", "thread-self"] {
        for f in ["attr/exec", "attr/apparmor/exec", "attr/current", "attr/apparmor/current"] {
            let p = fake.join(pid).join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, "").unwrap();
        }
    }
    ctx.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/proc", "type": "bind", "source": fake, "options": ["rbind"]
    }));
    ctx.config["linux"]["maskedPaths"] = json!([]);
    ctx.config["linux"]["readonlyPaths"] = json!([]);
    ctx.config["process"]["apparmorProfile"] = json!(profile.name);
    ctx.sh("exec sleep 100");
    let id = ctx.id();
    let o = ctx.run_with(&id, &["-d"]).no_panic();
    for pid in ["self", "1", "thread-self"] {
        for f in ["attr/exec", "attr/apparmor/exec"] {
            assert_eq!(fs::read_to_string(fake.join(pid).join(f)).unwrap(), "", "the label went into a fake file");
        }
    }
    if o.success() {
        let pid = ctx.state(&id)["pid"].as_u64().unwrap();
        assert_eq!(label_of(pid), format!("{} (enforce)", profile.name), "running unconfined");
    }
    if is_husk() {
        assert!(o.success(), "{o}");
    }
}

#[test]
fn apparmor_unknown_profile_fails_create() {
    if !require(Feature::AppArmor) {
        return;
    }
    let mut ctx = Ctx::new("aa-missing");
    ctx.config["process"]["apparmorProfile"] = json!("husk-no-such-profile");
    let id = ctx.id();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let o = ctx.run(&id).fails();
    ctx.assert_nothing_left(&id, &mounts);
    if is_husk() {
        assert!(o.stderr.contains("process.apparmorProfile"), "{o}");
    }
}

#[test]
fn lsm_absent_is_an_error_naming_the_field() {
    // What this host (no AppArmor, no SELinux) does when asked for them: refuse, never run the
    // container unconfined.
    let cases = [
        (Feature::AppArmor, "/process/apparmorProfile", json!("husk-test"), "process.apparmorProfile"),
        (
            Feature::SELinux,
            "/process/selinuxLabel",
            json!("system_u:system_r:container_t:s0:c1,c2"),
            "process.selinuxLabel",
        ),
        (
            Feature::SELinux,
            "/linux/mountLabel",
            json!("system_u:object_r:container_file_t:s0:c1,c2"),
            "linux.mountLabel",
        ),
    ];
    for (feature, pointer, value, field) in cases {
        if feature.present() {
            continue;
        }
        let mut ctx = Ctx::new("lsm-absent");
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        ctx.config.pointer_mut(parent).unwrap()[key] = value;
        let id = ctx.id();
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let o = ctx.create(&id).no_panic();
        // runc 1.1 differs: it ignores linux.mountLabel and process.selinuxLabel without SELinux.
        if is_husk() {
            assert!(!o.success(), "{field}: {o}");
            assert_eq!(o.stderr_lines().len(), 1, "{o}");
            assert!(o.stderr.contains(&format!("{field}: ")) && o.stderr.contains("not enabled on this host"), "{o}");
            ctx.assert_nothing_left(&id, &mounts);
        }
    }
}
