//! Real clients driving the runtime under test: containerd 1.6 through its runc v2 shim (the path
//! Docker and Kubernetes take) and Podman 4.3 through conmon. scripts/test.sh installs both;
//! where one is missing its test is skipped.
mod common;

use common::*;
use std::process::Command;

/// Runs scripts/clients/<client>.sh against the runtime under test; each check prints one line.
fn client_script(client: &str, checks: usize) {
    if Command::new(client).arg("--version").output().is_err() {
        eprintln!("{client} is not installed: skipping (scripts/test.sh installs it)");
        return;
    }
    let out = Command::new(repo_root().join(format!("scripts/clients/{client}.sh"))).arg(bin()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches(&format!("ok   {client}:")).count(), checks, "{text}");
}

#[test]
fn containerd_runc_shim_runs_containers() {
    client_script("containerd", 8);
}

#[test]
fn podman_conmon_runs_containers() {
    client_script("podman", 12);
}
