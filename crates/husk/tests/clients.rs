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

/// A fresh machine's /run/netns is a plain directory until `ip netns add` or Podman first make
/// it a shared mount point of its own, by a recursive bind mount of it on itself. Done while
/// the CRI pod's netns was mounted there (docker.sh's and podman.sh's first netns, beside
/// cri.sh), that bind hid the pod's mount under a copy, and containerd's RemovePodSandbox
/// failed: "failed to remove netns: unlinkat /run/netns/cni-...: device or resource busy" (not
/// husk's doing: see `netns_dir_shared` in scripts/clients/lib.sh). Staged here in a private
/// mount namespace: /run/netns plain again, cri.sh run, and `ip netns add` as soon as the pod's
/// netns is mounted.
#[test]
fn cri_pod_netns_is_removed_when_another_netns_is_made_meanwhile() {
    if !which("containerd") {
        eprintln!("containerd is not installed: skipping (scripts/test.sh installs it)");
        return;
    }
    const STAGE: &str = r#"
        set -u
        while mountpoint -q /run/netns; do umount -l /run/netns; done
        before=$(ls /run/netns)
        scripts/clients/cri.sh "$1" &
        cri=$!
        for _ in $(seq 1200); do
            [ -n "$(comm -13 <(echo "$before") <(ls /run/netns))" ] && break
            sleep 0.05
        done
        name=husk-race-$$
        ip netns add "$name" && ip netns del "$name"
        wait "$cri"
    "#;
    let mut c = Command::new("unshare");
    c.args(["-m", "--propagation", "private", "bash", "-c", STAGE, "bash"]).arg(bin()).current_dir(repo_root());
    let out = output_for(&mut c, SCRIPT_BOUND);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches("ok   cri:").count(), 22, "{text}");
}
