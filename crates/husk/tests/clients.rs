//! Real clients driving the runtime under test: containerd 1.6 through its runc v2 shim (the path
//! Docker and Kubernetes take) and Podman 4.3 through conmon, as root and rootless (run by the
//! unprivileged test user of common/rootless.rs). scripts/test.sh installs both; where one is
//! missing its test is skipped.
mod common;

use common::*;
use std::process::Command;

/// Runs scripts/clients/<script>.sh against the runtime under test (after `args`) when `client`
/// is installed; each check prints one line.
fn client_script(client: &str, script: &str, args: &[&str], checks: usize) {
    if Command::new(client).arg("--version").output().is_err() {
        eprintln!("{client} is not installed: skipping (scripts/test.sh installs it)");
        return;
    }
    let out =
        Command::new(repo_root().join(format!("scripts/clients/{script}.sh"))).arg(bin()).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches(&format!("ok   {script}:")).count(), checks, "{text}");
}

#[test]
fn containerd_runc_shim_runs_containers() {
    client_script("containerd", "containerd", &[], 6);
}

#[test]
fn podman_conmon_runs_containers() {
    client_script("podman", "podman", &[], 9);
}

#[test]
fn podman_rootless_runs_containers() {
    // podman, conmon and the runtime run by an unprivileged user: Podman's user namespace maps the
    // user and its /etc/subuid range (newuidmap), the runtime is root only in there.
    let user = common::rootless::test_user();
    client_script("podman", "podman-rootless", &[&user.name], 14);
}
