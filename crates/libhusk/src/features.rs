//! `husk features`: what this runtime and this host support, in runc's JSON shape.
//!
//! Truthful over flattering: a caller (containerd's CRI reads `mountOptions` for "rro") enables
//! behaviour from this output, so only list what the code really does. A feature not implemented
//! yet says `enabled: false` rather than being left out, so the output stays one stable shape.

use serde_json::{json, Value};

use crate::config::{OCI_VERSION, OCI_VERSION_MIN};
use crate::process::sched::{MEMORY_POLICY_FLAGS, MEMORY_POLICY_MODES};
use crate::seccomp;

const HOOKS: [&str; 6] = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"];

/// Every option the mount code understands (rootfs/mount_options.rs), sorted as runc prints them:
/// each recursive `r` form mount_setattr(AT_RECURSIVE) applies, `idmap`/`ridmap` and runc's
/// `tmpcopyup` too.
const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "idmap",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "ridmap",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
];

/// Annotations a manager should not take from an untrusted user (features.md; a trailing `.`
/// is a prefix): runc's list, so that a manager filters the same ones whichever of the two it
/// runs. Of these husk acts on `org.criu.config` (checkpoint/restore's CRIU configuration
/// file); `bundle` and `org.systemd.property.` change runc's behaviour, not husk's yet.
pub const UNSAFE_ANNOTATIONS: [&str; 3] = ["bundle", "org.systemd.property.", "org.criu.config"];

const NAMESPACES: [&str; 8] = ["cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"];

pub fn features() -> Value {
    json!({
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION,
        "hooks": HOOKS,
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": NAMESPACES,
            "capabilities": capabilities(),
            // Cgroup managers we drive: the fs drivers for v1 and v2 (rdma.max on both) and the
            // systemd driver (v2 hosts), PID 1's or, rootless, the user's own manager.
            "cgroup": { "v1": true, "v2": true, "systemd": true, "systemdUser": true, "rdma": true },
            "seccomp": {
                "enabled": true,
                "actions": seccomp::ACTIONS,
                "operators": seccomp::OPERATORS,
                "archs": seccomp::ARCHES,
                "knownFlags": seccomp::KNOWN_FLAGS,
                // What this kernel accepts (probed), as runc reports it.
                "supportedFlags": seccomp::supported_flags()
            },
            // The runtime's support, whatever this host has (features-linux.md); a profile or
            // label asked for on a host without the module fails create, naming the field.
            "apparmor": { "enabled": true },
            "selinux": { "enabled": true },
            "intelRdt": { "enabled": true, "schemata": true, "monitoring": true },
            // uidMappings/gidMappings of bind mounts (mount_setattr(MOUNT_ATTR_IDMAP)), root and
            // rootless; the option without maps takes the container's.
            "mountExtensions": { "idmap": { "enabled": true } },
            "netDevices": { "enabled": true },
            // Every mode and flag `linux.memoryPolicy` may name, each applied with set_mempolicy(2)
            // (process/sched.rs), whatever NUMA this host has.
            "memoryPolicy": {
                "modes": MEMORY_POLICY_MODES.map(|(name, _)| name),
                "flags": MEMORY_POLICY_FLAGS.map(|(name, _)| name)
            }
        },
        "potentiallyUnsafeConfigAnnotations": UNSAFE_ANNOTATIONS,
        // `checkpoint`/`restore` drive CRIU (found at run time, 3.11 or newer; `criu check`
        // tells whether this kernel can).
        "annotations": {
            "io.github.seccomp.libseccomp.version": seccomp::libseccomp_version(),
            "org.opencontainers.runc.checkpoint.enabled": "true",
            "org.opencontainers.husk.version": env!("CARGO_PKG_VERSION")
        }
    })
}

/// Capability names the running kernel knows, in number order (as runc lists them). Numbers the
/// kernel knows but we have no name for are left out: a config could not name them either.
fn capabilities() -> Vec<String> {
    let last = crate::capabilities::last_cap() as usize;
    crate::capabilities::NAMES.iter().take(last + 1).map(|n| n.to_string()).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `shared/` sits beside the project root (DEVELOPERS.md), in CI as on a developer machine.
    const SCHEMA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/spec/schema");

    /// Validate `value` against one of the spec's JSON schemas with Python's jsonschema; skipped
    /// (with a note) when python3-jsonschema or the schema directory is missing.
    pub(crate) fn check_schema(schema: &str, value: &Value) {
        const SCRIPT: &str = r#"
import json, pathlib, sys, warnings
warnings.simplefilter("ignore")
import jsonschema
d = pathlib.Path(sys.argv[1])
schema = json.loads((d / sys.argv[2]).read_text())
resolver = jsonschema.RefResolver(base_uri=d.as_uri() + "/", referrer=schema)
cls = jsonschema.validators.validator_for(schema)
errors = [e.message + " at " + "/".join(map(str, e.path)) for e in cls(schema, resolver=resolver).iter_errors(json.load(sys.stdin))]
print("\n".join(errors))
sys.exit(1 if errors else 0)
"#;
        use std::io::Write;
        use std::process::{Command, Stdio};
        let has_jsonschema =
            Command::new("python3").args(["-c", "import jsonschema"]).status().is_ok_and(|s| s.success());
        if !has_jsonschema || !std::path::Path::new(SCHEMA_DIR).join(schema).exists() {
            eprintln!("python3 jsonschema or {SCHEMA_DIR} missing: skipping schema check");
            return;
        }
        let mut child = Command::new("python3")
            .args(["-c", SCRIPT, SCHEMA_DIR, schema])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&serde_json::to_vec(value).unwrap()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "not valid against {schema}:\n{}", String::from_utf8_lossy(&out.stdout));
    }

    #[test]
    fn shape() {
        let f = features();
        assert_eq!(f["ociVersionMin"], OCI_VERSION_MIN);
        assert_eq!(f["ociVersionMax"], OCI_VERSION);
        assert_eq!(f["hooks"].as_array().unwrap().len(), 6);
        let opts = f["mountOptions"].as_array().unwrap();
        assert!(opts.contains(&json!("rro")) && opts.contains(&json!("nosymfollow")));
        assert!(opts.windows(2).all(|w| w[0].as_str() < w[1].as_str()), "sorted and unique");
        assert_eq!(opts.len(), 61);
        for o in ["idmap", "ridmap", "rsymfollow", "rnoexec", "tmpcopyup"] {
            assert!(opts.contains(&json!(o)), "{o}");
        }
        // Listed means understood: every one parses.
        for o in MOUNT_OPTIONS {
            let parsed = crate::rootfs::mount_options::parse(&[o.to_string()]);
            assert!(parsed.is_ok(), "{o}: {:?}", parsed.err());
        }
        assert_eq!(f["linux"]["mountExtensions"]["idmap"]["enabled"], true);
        let linux = &f["linux"];
        assert_eq!(linux["namespaces"].as_array().unwrap().len(), 8);
        assert_eq!(linux["seccomp"]["enabled"], true);
        assert_eq!(linux["seccomp"]["actions"].as_array().unwrap().len(), 9);
        assert_eq!(linux["seccomp"]["operators"].as_array().unwrap().len(), 7);
        assert!(linux["seccomp"]["archs"].as_array().unwrap().contains(&json!("SCMP_ARCH_X86_64")));
        let known = linux["seccomp"]["knownFlags"].as_array().unwrap();
        assert!(linux["seccomp"]["supportedFlags"].as_array().unwrap().iter().all(|f| known.contains(f)));
        assert_eq!(f["annotations"]["io.github.seccomp.libseccomp.version"], "2.5.4");
        assert_eq!(linux["netDevices"]["enabled"], true);
        assert_eq!(linux["cgroup"]["systemd"], true);
        assert_eq!(linux["cgroup"]["systemdUser"], true);
        assert!(linux["intelRdt"]["enabled"].is_boolean());
        assert_eq!(f["annotations"]["org.opencontainers.runc.checkpoint.enabled"], "true");
        let modes = linux["memoryPolicy"]["modes"].as_array().unwrap();
        assert_eq!(modes.len(), 7);
        assert!(modes.contains(&json!("MPOL_WEIGHTED_INTERLEAVE")) && modes.contains(&json!("MPOL_LOCAL")));
        assert_eq!(
            linux["memoryPolicy"]["flags"],
            json!(["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"])
        );
        assert_eq!(
            f["potentiallyUnsafeConfigAnnotations"],
            json!(["bundle", "org.systemd.property.", "org.criu.config"])
        );
        // Round trip: what we print is what a caller parses.
        let text = serde_json::to_string_pretty(&f).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), f);
    }

    #[test]
    fn capabilities_follow_the_kernel() {
        let caps = capabilities();
        assert_eq!(caps.first().map(String::as_str), Some("CAP_CHOWN"));
        let last: usize = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").unwrap().trim().parse().unwrap();
        if last <= 40 {
            assert_eq!(caps.len(), last + 1);
        }
        assert!(caps.iter().all(|c| c.starts_with("CAP_")));
    }

    #[test]
    fn valid_against_features_schema() {
        check_schema("features-schema.json", &features());
    }
}
