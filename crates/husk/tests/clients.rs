//! Real clients driving the runtime under test: containerd 1.6 through its runc v2 shim (the path
//! Docker and Kubernetes take), Podman 4.3 through conmon, as root and rootless (run by the
//! unprivileged test user of common/rootless.rs), Docker 20.10 (dockerd, its own containerd, the
//! same shim), and Kubernetes' CRI (runtime.v1 over gRPC) to containerd's CRI plugin with husk as
//! a runtime handler. scripts/test.sh installs them; where one is missing its test is skipped.
//! Each script starts its manager with state of its own and checks that nothing is left.
mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

/// What one client script may take (a whole manager started, driven and stopped: 3-25 s here);
/// past it the watchdog ends the script and everything below it (SIGTERM first: its EXIT trap
/// removes what it made) and the test fails.
const SCRIPT_BOUND: Duration = Duration::from_secs(600);

/// Runs scripts/clients/<script>.sh against the runtime under test (then `args`), skipped when
/// `program` (the manager's daemon or CLI) is missing; each check prints one line.
fn client_script(program: &str, script: &str, args: &[&str], checks: usize) {
    if !which(program) {
        eprintln!("{program} is not installed: skipping (scripts/test.sh installs it)");
        return;
    }
    let out = output_for(
        Command::new(repo_root().join(format!("scripts/clients/{script}.sh"))).arg(bin()).args(args),
        SCRIPT_BOUND,
    );
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches(&format!("ok   {script}:")).count(), checks, "{text}");
}

#[test]
fn containerd_runc_shim_runs_containers() {
    client_script("containerd", "containerd", &[], 21);
}

#[test]
fn podman_conmon_runs_containers() {
    client_script("podman", "podman", &[], 30);
}

#[test]
fn podman_rootless_runs_containers() {
    // podman, conmon and the runtime run by an unprivileged user: Podman's user namespace maps the
    // user and its /etc/subuid range (newuidmap), the runtime is root only in there.
    let user = common::rootless::test_user();
    client_script("podman", "podman-rootless", &[&user.name], 18);
}

#[test]
fn cgroup2_rootless_podman_with_the_users_systemd() {
    // (guest) rootless Podman as most users run it: cgroup v2, Podman's cgroup_manager systemd,
    // husk --systemd-cgroup with the user's manager, the container in a scope of it.
    if !require(Feature::Cgroup2) || !require(Feature::Systemd) {
        return;
    }
    let user = common::rootless::guest_user().expect("the guest's delegated user `husk` (docs/guest.md)");
    client_script("podman", "podman-rootless", &[&user.name, "systemd"], 23);
}

#[test]
fn docker_dockerd_runs_containers() {
    client_script("dockerd", "docker", &[], 23);
}

#[test]
fn cri_containerd_runtime_handler_runs_pods() {
    client_script("containerd", "cri", &[], 22);
}

