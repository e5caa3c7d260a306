//! Runs examples/rootfs_harness (built by `cargo test`): the real-namespace tests need a
//! single-threaded process, which the test harness is not.

#[test]
fn rootfs_in_namespaces() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let Some(profile_dir) = exe.parent().and_then(|deps| deps.parent()) else { panic!("unexpected test binary path") };
    let harness = profile_dir.join("examples").join("rootfs_harness");
    assert!(harness.exists(), "{} is missing: run `cargo test` (it builds examples)", harness.display());
    let out = std::process::Command::new(&harness).output().expect("run rootfs_harness");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    assert!(out.status.success(), "rootfs_harness failed:\n{text}");
}
