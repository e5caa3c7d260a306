//! Becoming the configured user: groups, gid, uid, umask, and the HOME a login would give.

use oci_spec::runtime::User;
use rustix::process::{Gid, Uid};

use crate::error::{Context, Error, Result};

/// setgroups, setresgid, setresuid — in that order, since after setuid we could no longer
/// change groups.
/// `setgroups_allowed`: known already (an exec'd process, which is not in the pid namespace of
/// the container's procfs), else read from `/proc/self` when setgroups is refused.
pub fn switch(user: &User, setgroups_allowed: Option<bool>) -> Result<()> {
    let groups: Vec<Gid> = user.additional_gids().iter().flatten().map(|g| Gid::from_raw(*g)).collect();
    match rustix::thread::set_thread_groups(&groups) {
        Ok(()) => {}
        // The kernel denies setgroups in a user namespace whose gid map an unprivileged user wrote
        // alone (`/proc/self/setgroups` says deny, asked only then): with no groups asked for the
        // caller's stay (shown as the overflow gid); asked for, they cannot be had.
        Err(rustix::io::Errno::PERM)
            if !setgroups_allowed.unwrap_or_else(|| crate::userns::setgroups_allowed("self")) =>
        {
            if !groups.is_empty() {
                return Err(Error::field(
                    "process.user.additionalGids",
                    "cannot be set: setgroups is denied in this user namespace (its gid map is the caller's gid \
                     only; map a range from /etc/subgid to allow it)",
                ));
            }
        }
        Err(e) => Err::<(), _>(e).ctx(|| "process.user.additionalGids: setgroups")?,
    }
    let gid = Gid::from_raw(user.gid());
    rustix::thread::set_thread_res_gid(gid, gid, gid).ctx(|| format!("process.user.gid: setgid {}", user.gid()))?;
    let uid = Uid::from_raw(user.uid());
    rustix::thread::set_thread_res_uid(uid, uid, uid).ctx(|| format!("process.user.uid: setuid {}", user.uid()))?;
    Ok(())
}

/// HOME from the container's /etc/passwd, as runc sets it when the config does not.
pub fn home_dir(uid: u32) -> String {
    crate::smallfile::read_string("/etc/passwd", 4096)
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[5].to_string())
            })
        })
        .unwrap_or_else(|| "/".to_string())
}
