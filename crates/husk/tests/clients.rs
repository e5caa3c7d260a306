//! Real clients driving the runtime under test: containerd 1.6 through its runc v2 shim (the path
//! Docker and Kubernetes take), Podman 4.3 through conmon, Docker 20.10 (dockerd, its own
//! containerd, the same shim), and Kubernetes' CRI (runtime.v1 over gRPC) to containerd's CRI
//! plugin with husk as a runtime handler. scripts/test.sh installs them; where one is missing its test is
//! skipped. Each script starts its manager with state of its own and checks that nothing is left.
mod common;

use common::*;
use std::process::Command;

/// Runs scripts/clients/<client>.sh against the runtime under test; each check prints one line.
fn client_script(client: &str, checks: usize) {
    client_script_needing(client, client, checks)
}

/// The same, skipped when `program` (the manager's daemon or CLI) is missing.
fn client_script_needing(client: &str, program: &str, checks: usize) {
    if Command::new(program).arg("--version").output().is_err() {
        eprintln!("{program} is not installed: skipping (scripts/test.sh installs it)");
        return;
    }
    let out = Command::new(repo_root().join(format!("scripts/clients/{client}.sh"))).arg(bin()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches(&format!("ok   {client}:")).count(), checks, "{text}");
}

#[test]
fn containerd_runc_shim_runs_containers() {
    client_script("containerd", 21);
}

#[test]
fn podman_conmon_runs_containers() {
    client_script("podman", 30);
}

#[test]
fn docker_dockerd_runs_containers() {
    client_script_needing("docker", "dockerd", 23);
}

#[test]
fn cri_containerd_runtime_handler_runs_pods() {
    client_script_needing("cri", "containerd", 22);
}
