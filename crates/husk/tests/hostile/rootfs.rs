//! Hostile rootfs layouts: symlinked /proc, /dev, /dev/console, mount destinations through symlinks, a swapped rootfs.
#![allow(unused_imports)]

use crate::common::*;
use crate::host::HostSnapshot;

/// HOME comes from the image's /etc/passwd when the config has none: a FIFO there must not block
/// the init (create would hang), a symlink to /dev/zero not make it read for ever (memory
/// limited here, so an unbounded read is the container's OOM and not the host's). HOME is then
/// `/`, as for a uid without an entry.
#[test]
fn passwd_that_blocks_or_never_ends_is_not_read() {
    use serde_json::json;
    for kind in ["fifo", "zero"] {
        let mut ctx = Ctx::new(&format!("hostile-passwd-{kind}"));
        let passwd = ctx.rootfs().join("etc/passwd");
        std::fs::remove_file(&passwd).unwrap();
        match kind {
            "fifo" => {
                let c = std::ffi::CString::new(passwd.to_str().unwrap()).unwrap();
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
            }
            _ => std::os::unix::fs::symlink("/dev/zero", &passwd).unwrap(),
        }
        ctx.config["process"]["env"] = json!(["PATH=/bin"]);
        ctx.config["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
        ctx.sh("echo HOME=$HOME");
        let id = ctx.id();
        let before = ctx.audit();
        let snap = HostSnapshot::take(&ctx);
        ctx.write_config(&id);
        let b = ctx.bundle.to_str().unwrap().to_string();
        let mut c = ctx.cmd();
        c.args(["run", "--bundle", &b, &id]);
        let o = run_cmd(c, &ctx.dir, std::time::Duration::from_secs(20)).ok();
        assert_eq!(o.stdout, "HOME=/\n", "{kind}: {o}");
        snap.assert_unchanged();
        ctx.assert_no_leaks(&before);
    }
}
