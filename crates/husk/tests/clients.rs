//! Real clients driving the runtime under test: containerd 1.6 through its runc v2 shim (the path
//! Docker and Kubernetes take). scripts/test.sh installs containerd; without it this is skipped.
mod common;

use common::*;
use std::process::Command;

#[test]
fn containerd_runc_shim_runs_containers() {
    if Command::new("containerd").arg("--version").output().is_err() {
        eprintln!("containerd is not installed: skipping (scripts/test.sh installs it)");
        return;
    }
    let out = Command::new(repo_root().join("scripts/clients/containerd.sh")).arg(bin()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches("ok   containerd:").count(), 6, "{text}");
}
