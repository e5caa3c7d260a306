//! `husk spec`: the default config, the same as runc's.
//!
//! Field for field what `runc spec [--rootless]` prints (runc 1.1), except `ociVersion`, which is
//! the version we implement, and no ambient capabilities: runc main's template has none (runc
//! commit 0de19533: without inheritable ones the kernel cannot raise them, and runc now warns
//! about each, as husk does). Tools diff their configs against runc's template, so keep it exact.

use serde_json::{json, Value};

use crate::config::OCI_VERSION;

const CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

pub fn default_spec(rootless: bool) -> Value {
    let mut spec = json!({
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": true,
            "user": { "uid": 0, "gid": 0 },
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": { "bounding": CAPS, "effective": CAPS, "permitted": CAPS },
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": true },
        "hostname": "runc",
        "mounts": mounts(rootless),
        "linux": {
            "namespaces": [{ "type": "pid" }, { "type": "network" }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" }],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    });
    let linux = &mut spec["linux"];
    if cgroup2_host() {
        // runc's template (and crun's) adds a cgroup namespace on a pure cgroup v2 host, so the
        // container sees its own cgroup as the root of /sys/fs/cgroup.
        if let Some(ns) = linux["namespaces"].as_array_mut() {
            ns.push(json!({ "type": "cgroup" }));
        }
    }
    if rootless {
        // An unprivileged user owns one uid and gid and no network: map the caller to root (runc's
        // ToRootless: the effective ids), drop the network namespace (no way to set it up) and
        // the device rules (no cgroup delegation assumed; devices are bound from the host).
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        linux["uidMappings"] = json!([{ "containerID": 0, "hostID": uid, "size": 1 }]);
        linux["gidMappings"] = json!([{ "containerID": 0, "hostID": gid, "size": 1 }]);
        // runc's ToRootless: the template's namespaces without network, then user.
        if let Some(ns) = linux["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != "network");
            ns.push(json!({ "type": "user" }));
        }
    } else {
        linux["resources"] = json!({ "devices": [{ "allow": false, "access": "rwm" }] });
    }
    spec
}

fn cgroup2_host() -> bool {
    rustix::fs::statfs("/sys/fs/cgroup").is_ok_and(|st| st.f_type as u32 == libc::CGROUP2_SUPER_MAGIC as u32)
}

fn mounts(rootless: bool) -> Value {
    let mut devpts = vec!["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"];
    // gid=5 (tty) does not exist in a user namespace that maps one id.
    if !rootless {
        devpts.push("gid=5");
    }
    let sys = if rootless {
        // sysfs cannot be mounted without owning the network namespace: bind the host's.
        json!({ "destination": "/sys", "type": "none", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"] })
    } else {
        json!({ "destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"] })
    };
    json!([
        { "destination": "/proc", "type": "proc", "source": "proc" },
        { "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
        { "destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": devpts },
        { "destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
        { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"] },
        sys,
        { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `runc spec` prints here, with our ociVersion; None when runc is not installed.
    fn runc_spec(rootless: bool) -> Option<Value> {
        let dir = std::env::temp_dir().join(format!("husk-spec-{}-{rootless}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join("config.json"));
        let mut cmd = std::process::Command::new("runc");
        cmd.arg("spec").current_dir(&dir);
        if rootless {
            cmd.arg("--rootless");
        }
        let ok = cmd.status().ok()?.success();
        assert!(ok, "runc spec failed");
        let mut v: Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        v["ociVersion"] = json!(OCI_VERSION);
        // runc main's template has no ambient set (see the module's comment); 1.1's has.
        if let Some(caps) = v["process"]["capabilities"].as_object_mut() {
            caps.remove("ambient");
        }
        Some(v)
    }

    #[test]
    fn parses_as_a_spec() {
        for rootless in [false, true] {
            let data = serde_json::to_vec(&default_spec(rootless)).unwrap();
            let spec = crate::config::parse_spec(&data).unwrap();
            assert_eq!(spec.version(), OCI_VERSION);
        }
    }

    #[test]
    fn equals_runc_spec() {
        for rootless in [false, true] {
            let Some(runc) = runc_spec(rootless) else {
                eprintln!("runc not installed: skipping");
                return;
            };
            assert_eq!(default_spec(rootless), runc, "rootless={rootless}");
        }
    }

    #[test]
    fn valid_against_config_schema() {
        for rootless in [false, true] {
            crate::features::tests::check_schema("config-schema.json", &default_spec(rootless));
        }
    }
}
