//! `cgroup` mounts. With a cgroup namespace: cgroupfs itself (cgroup2 on a pure-v2 host; on a
//! v1 or hybrid host a tmpfs holding one mount per host hierarchy, like runc). Without one: the
//! container's own cgroup directories bound from the host, so it cannot see its neighbours.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};

use super::mount_api::{attach, clone_path, new_fs, setattr};
use super::mount_options::{Attrs, Data, MountOptions, ATTR_RDONLY};
use super::mounts::{propagate, set_attrs};
use super::RootfsContext;
use crate::cgroups::{host_hierarchies, Cgroup, Hierarchy};
use crate::error::{Context, Error, Result};

pub fn mount(ctx: &RootfsContext, target: BorrowedFd<'_>, opts: &MountOptions) -> Result<()> {
    if ctx.in_cgroupns {
        return mount_namespaced(target, opts);
    }
    // In a user namespace without a cgroup namespace the container does not own what it sees
    // here, whatever the options say: read-only (CVE-2023-25809, where rootless runc left a
    // delegated /sys/fs/cgroup writable).
    let forced;
    let opts = if ctx.in_userns {
        forced = opts.read_only();
        &forced
    } else {
        opts
    };
    // A rootless container without a cgroup of its own (no delegation) sees husk's.
    let current;
    let cgroup = if ctx.cgroup.placements.is_empty() {
        current = Cgroup::current()?;
        &current
    } else {
        ctx.cgroup
    };
    bind_own(cgroup, target, opts)
}

fn mount_namespaced(target: BorrowedFd<'_>, opts: &MountOptions) -> Result<()> {
    let fresh = opts.attrs.on_fresh_mount(&opts.rec_attrs);
    let hier = host_hierarchies()?;
    if is_pure_v2(&hier)? {
        let mnt = new_fs("cgroup2", Some("cgroup2"), &opts.data, fresh)?;
        return attach_with(mnt, target, opts);
    }
    if hier.is_empty() {
        return Err(Error::msg("no cgroup hierarchies found on the host"));
    }
    with_tmpfs(target, opts, hier.iter().map(|h| (h.mount.as_path(), h)), |h| v1_fs(h, fresh))
}

/// Without a cgroup namespace: the container's own cgroup directories bound from the host.
fn bind_own(cgroup: &Cgroup, target: BorrowedFd<'_>, opts: &MountOptions) -> Result<()> {
    let fresh = opts.attrs.on_fresh_mount(&opts.rec_attrs);
    let placements = &cgroup.placements;
    if let [p] = placements.as_slice() {
        if p.v2 {
            let mnt = clone_path(&p.dir, false).ctx(|| format!("bind {}", p.dir.display()))?;
            set_attrs(mnt.as_fd(), opts)?;
            return attach_with(mnt, target, opts);
        }
    }
    if placements.is_empty() {
        return Err(Error::msg("the container has no cgroup to mount"));
    }
    with_tmpfs(target, opts, placements.iter().map(|p| (p.mount.as_path(), p)), |p| {
        let mnt = clone_path(&p.dir, false).ctx(|| format!("bind {}", p.dir.display()))?;
        setattr(mnt.as_fd(), false, Attrs { set: fresh, clear: 0 }, 0)?;
        Ok(mnt)
    })
}

fn attach_with(mnt: OwnedFd, target: BorrowedFd<'_>, opts: &MountOptions) -> Result<()> {
    attach(mnt.as_fd(), target)?;
    propagate(mnt.as_fd(), opts)
}

/// No hierarchies reported: trust the filesystem at /sys/fs/cgroup.
fn is_pure_v2(hier: &[Hierarchy]) -> Result<bool> {
    match hier {
        [] => {
            let st = rustix::fs::statfs("/sys/fs/cgroup").ctx(|| "statfs /sys/fs/cgroup")?;
            Ok(st.f_type as u32 == libc::CGROUP2_SUPER_MAGIC as u32)
        }
        [h] => Ok(h.v2),
        _ => Ok(false),
    }
}

fn v1_fs(h: &Hierarchy, fresh: u64) -> Result<OwnedFd> {
    if h.v2 {
        return new_fs("cgroup2", Some("cgroup2"), &[], fresh);
    }
    let mut data: Vec<Data> = h
        .controllers
        .iter()
        .map(|c| match c.strip_prefix("name=") {
            Some(name) => Data::Value("name".into(), name.into()),
            None => Data::Flag(c.clone()),
        })
        .collect();
    if h.controllers.iter().all(|c| c.starts_with("name=")) {
        data.push(Data::Flag("none".into()));
    }
    new_fs("cgroup", Some("cgroup"), &data, fresh)
}

/// A tmpfs on `target` with one mount per item, in a subdirectory named like the host's mount
/// point (`memory`, `cpu,cpuacct`, `unified`), symlinks for co-mounted controllers (`cpu` →
/// `cpu,cpuacct`), and read-only last if asked.
fn with_tmpfs<'a, T: 'a>(
    target: BorrowedFd<'_>,
    opts: &MountOptions,
    items: impl Iterator<Item = (&'a Path, &'a T)>,
    make: impl Fn(&T) -> Result<OwnedFd>,
) -> Result<()> {
    let fresh = opts.attrs.on_fresh_mount(&opts.rec_attrs);
    let mode = [Data::Value("mode".into(), "755".into())];
    let tmpfs = new_fs("tmpfs", Some("tmpfs"), &mode, fresh & !ATTR_RDONLY)?;
    attach(tmpfs.as_fd(), target)?;
    for (mount, item) in items {
        let Some(name) = mount.file_name() else { continue };
        match rustix::fs::mkdirat(&tmpfs, name, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(Error::os(format!("mkdir {}", name.to_string_lossy()), e.raw_os_error())),
        }
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let dir = rustix::fs::openat(&tmpfs, name, flags, Mode::empty())?;
        let mnt = make(item).map_err(|e| e.context(name.to_string_lossy()))?;
        attach(mnt.as_fd(), dir.as_fd())?;
        let name = name.to_string_lossy();
        if name.contains(',') {
            for ctrl in name.split(',') {
                match rustix::fs::symlinkat(name.as_ref(), &tmpfs, ctrl) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(Error::os(format!("symlink {ctrl}"), e.raw_os_error())),
                }
            }
        }
    }
    if fresh & ATTR_RDONLY != 0 {
        setattr(tmpfs.as_fd(), false, Attrs { set: ATTR_RDONLY, clear: 0 }, 0)?;
    }
    propagate(tmpfs.as_fd(), opts)
}
