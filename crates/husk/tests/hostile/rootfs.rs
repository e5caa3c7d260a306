//! Hostile rootfs layouts: symlinked /proc, /dev, /dev/console, mount destinations through symlinks, a swapped rootfs.
#![allow(unused_imports)]

use crate::common::*;
use crate::host::HostSnapshot;

/// An image whose /etc/passwd is a fifo or a symlink to /dev/zero: the init reads it for HOME
/// (the config sets none) without waiting for a writer and within a bound, and HOME falls back
/// to `/`. Before, the init waited on the fifo for ever, or read /dev/zero until its memory ran
/// out (here: 1 GiB of address space).
#[test]
fn passwd_that_is_a_fifo_or_dev_zero_does_not_stall_the_init() {
    use std::os::unix::process::CommandExt;
    if !is_husk() {
        return; // runc main opens the fifo and waits for a writer
    }
    for what in ["fifo", "zero"] {
        let mut ctx = Ctx::new("hostile-passwd");
        ctx.sh("echo HOME=$HOME");
        let passwd = ctx.rootfs().join("etc/passwd");
        let _ = std::fs::remove_file(&passwd);
        if what == "fifo" {
            let c = std::ffi::CString::new(passwd.to_str().unwrap()).unwrap();
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        } else {
            std::os::unix::fs::symlink("/dev/zero", &passwd).unwrap();
        }
        let id = ctx.id();
        ctx.write_config(&id);
        let before = ctx.audit();
        let host = HostSnapshot::take(&ctx);
        let mut c = ctx.cmd();
        c.args(["run", "--bundle", ctx.bundle.to_str().unwrap(), &id]);
        // SAFETY: setrlimit only changes the child's own limits.
        unsafe {
            c.pre_exec(|| {
                let lim = libc::rlimit { rlim_cur: 1 << 30, rlim_max: 1 << 30 };
                libc::setrlimit(libc::RLIMIT_AS, &lim);
                Ok(())
            });
        }
        let o = run_cmd(c, &ctx.dir, std::time::Duration::from_secs(15));
        assert_eq!(o.ok().stdout, "HOME=/\n", "{what}");
        host.assert_unchanged();
        ctx.assert_no_leaks(&before);
    }
}
