//! `--no-pivot`: the rootfs is moved over `/` and chrooted into, so the old root's mounts stay in
//! the container's mount namespace, underneath. Among them the host's procfs and sysfs, whole:
//! the kernel lets a user namespace mount a new procfs or sysfs where one is fully visible in
//! its mount namespace, and a new procfs has none of maskedPaths' covers. So, before the move,
//! every whole procfs and sysfs outside the rootfs is unmounted, or covered where it is locked
//! (runc's msMoveRoot alike).

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::UnmountFlags;

use super::mount_api::{attach, new_fs, setattr};
use super::mount_options::{Attrs, Data, ATTR_NODEV, ATTR_NOEXEC, ATTR_NOSUID, ATTR_RDONLY, PROP_SLAVE};
use crate::error::{Error, Result};

/// `root` is the rootfs mount (`bind_rootfs`'s), whose own mounts stay.
pub fn hide_host_pseudo_filesystems(root: std::os::fd::BorrowedFd<'_>, label: Option<&str>) -> Result<()> {
    // Where the rootfs mount is, as the mount table spells it (the bundle path may have gone
    // through symlinks).
    use std::os::unix::ffi::OsStringExt;
    let rootfs = rustix::fs::readlink(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&root)), Vec::new())
        .map(|p| PathBuf::from(std::ffi::OsString::from_vec(p.into_bytes())))
        .map_err(|e| Error::os("--no-pivot: find the rootfs mount", e.raw_os_error()))?;
    let table = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::from(e).context("--no-pivot: read mountinfo"))?;
    for mount_point in whole_pseudo_filesystems(&table, &rootfs) {
        hide(&mount_point, label).map_err(|e| e.context(format!("--no-pivot: hide {}", mount_point.display())))?;
    }
    Ok(())
}

/// Mount points of procfs and sysfs mounts of a whole filesystem (root `/`) outside `rootfs`.
fn whole_pseudo_filesystems(mountinfo: &str, rootfs: &Path) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let fstype = post.split(' ').next()?;
            let (root, mount_point) = (pre.get(3)?, PathBuf::from(crate::cgroups::unescape_mountinfo(pre.get(4)?)));
            let pseudo = fstype == "proc" || fstype == "sysfs";
            (pseudo && *root == "/" && !mount_point.starts_with(rootfs)).then_some(mount_point)
        })
        .collect()
}

fn hide(mount_point: &Path, label: Option<&str>) -> Result<()> {
    let fd = match rustix::fs::open(
        mount_point,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        // Gone with a parent hidden before it.
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    // Our unmount must not reach the host's namespace.
    setattr(fd.as_fd(), true, Attrs::default(), PROP_SLAVE)?;
    match rustix::mount::unmount(mount_point, UnmountFlags::DETACH) {
        Ok(()) => Ok(()),
        // Locked (inherited into a user namespace) or not ours to unmount: cover it.
        Err(Errno::INVAL | Errno::PERM) => {
            let mut data =
                vec![Data::Value("nr_blocks".into(), "1".into()), Data::Value("nr_inodes".into(), "1".into())];
            data.extend(label.map(crate::lsm::mount_label_option));
            let cover = new_fs("tmpfs", Some("tmpfs"), &data, ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC)?;
            attach(cover.as_fd(), fd.as_fd())?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_pivot_finds_whole_proc_and_sysfs_outside_the_rootfs() {
        let table = "\
22 1 0:5 / /proc rw,nosuid - proc proc rw
23 1 0:21 / /sys rw - sysfs sysfs rw
24 23 0:6 / /sys/kernel/security rw - securityfs securityfs rw
25 1 0:22 /sub /mnt/proc-part rw - proc proc rw
26 1 8:1 / /b/rootfs rw - ext4 /dev/sda1 rw
27 26 0:30 / /b/rootfs/proc rw - proc proc rw
28 1 0:31 / /with\\040space rw - sysfs sysfs rw
";
        let got = whole_pseudo_filesystems(table, Path::new("/b/rootfs"));
        assert_eq!(got, [PathBuf::from("/proc"), PathBuf::from("/sys"), PathBuf::from("/with space")]);
    }
}
