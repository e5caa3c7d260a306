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

/// The most of /etc/passwd read for HOME: real ones are a few KiB.
const PASSWD_MAX: usize = 4 << 20;

/// HOME from the container's /etc/passwd (read after pivot_root: the image's, never the host's),
/// as runc sets it when the config does not; `/` without an entry, as runc. The image is not
/// trusted: a FIFO there must not block the init (opened non-blocking, only a regular file is
/// read), a symlink to /dev/zero not fill its memory (at most PASSWD_MAX bytes).
pub fn home_dir(uid: u32) -> String {
    match read_passwd() {
        Some(text) => text
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[5].to_string())
            })
            .unwrap_or_else(|| "/".to_string()),
        None => "/".to_string(),
    }
}

fn read_passwd() -> Option<String> {
    use rustix::fs::{FileType, Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = rustix::fs::open("/etc/passwd", flags, Mode::empty()).ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        tracing::debug!("HOME not set in process.env, and /etc/passwd is not a regular file: HOME=/");
        return None;
    }
    let mut data = Vec::with_capacity((st.st_size.max(0) as usize).min(PASSWD_MAX) + 1);
    loop {
        if data.len() >= PASSWD_MAX {
            break;
        }
        if data.len() == data.capacity() {
            data.reserve(data.capacity().max(4096));
        }
        match rustix::io::read(&fd, rustix::buffer::spare_capacity(&mut data)) {
            Ok(0) => break,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return None,
        }
    }
    Some(String::from_utf8_lossy(&data).into_owned())
}
