//! Idmapped mounts (runtime-spec 1.2: a mount's `uidMappings`/`gidMappings`, the `idmap` and
//! `ridmap` options): a bind mount whose files' owners are seen through the id maps of a user
//! namespace, set with `mount_setattr(MOUNT_ATTR_IDMAP)` on the detached tree before it is
//! attached. A file owned by id `containerID + k` on the filesystem shows as host id
//! `hostID + k` on the mount (so, with the container's own maps, host root's files are the
//! container root's).
//!
//! The kernel lets only a process with CAP_SYS_ADMIN over the user namespace that mounted the
//! filesystem idmap it, and over the namespace it maps through. For a host filesystem that is
//! real root: husk as root makes these trees in the parent, before the clone, through a throwaway
//! namespace with exactly the mount's maps, and the init attaches them. Rootless husk can only
//! idmap filesystems mounted inside the container's user namespace (a tmpfs the config mounts
//! first): the init does it, through a throwaway namespace nested in the container's, whose maps
//! are the mount's host ids rewritten in the container's terms.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Linux, Mount, Spec};
use rustix::fs::{Mode, OFlags};

use super::mount_api::clone_path;
use super::mount_options::{self, MountOptions};
use super::mounts::{is_bind, set_bind_attrs};
use crate::error::{Error, Result};
use crate::userns::{self, Range};

/// One mount's idmapping: host-id maps and whether it reaches every mount of an rbind tree, or
/// the user namespace the container joins (its maps are that namespace's, used as it is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub uid: Vec<Range>,
    pub gid: Vec<Range>,
    pub recursive: bool,
    pub joined: Option<PathBuf>,
}

/// The container's user namespace, for `idmap` without mappings.
#[derive(Debug, Clone, Copy)]
pub enum Userns<'a> {
    /// The host's (or a mount that cannot be idmapped: only its errors matter).
    None,
    /// A new one, with `linux.uidMappings`/`gidMappings`.
    New(Option<&'a Linux>),
    /// One joined by path.
    Joined(&'a Path),
}

/// What mount `i` asks for; None when it is not idmapped. Mappings without the option count as
/// `idmap` (older configs and runc 1.2 alike); the option without mappings takes the container's
/// own user namespace, as the spec allows (a joined one as it is, like runc), and is an error
/// without one.
pub fn request(i: usize, m: &Mount, opts: &MountOptions, userns: Userns<'_>) -> Result<Option<Request>> {
    let mut uid = userns::ranges(m.uid_mappings().as_ref());
    let mut gid = userns::ranges(m.gid_mappings().as_ref());
    if !opts.idmap && uid.is_empty() && gid.is_empty() {
        return Ok(None);
    }
    if !is_bind(m, opts) {
        return Err(Error::field(format!("mounts[{i}]"), "idmapped mounts are supported for bind mounts only"));
    }
    if let Some((u, g)) = &opts.idmap_maps {
        if !uid.is_empty() || !gid.is_empty() {
            return Err(Error::field(
                format!("mounts[{i}]"),
                "an idmap= option and uidMappings/gidMappings both give the mount's mappings; give one",
            ));
        }
        (uid, gid) = (u.clone(), g.clone());
    }
    let recursive = opts.ridmap;
    let (uid, gid) = match (uid.is_empty(), gid.is_empty(), userns) {
        (false, false, _) => (uid, gid),
        (false, true, _) => {
            return Err(Error::field(format!("mounts[{i}].gidMappings"), "must be given with uidMappings"))
        }
        (true, false, _) => {
            return Err(Error::field(format!("mounts[{i}].uidMappings"), "must be given with gidMappings"))
        }
        (true, true, Userns::New(linux)) => (
            userns::ranges(linux.and_then(|l| l.uid_mappings().as_ref())),
            userns::ranges(linux.and_then(|l| l.gid_mappings().as_ref())),
        ),
        (true, true, Userns::Joined(path)) => {
            return Ok(Some(Request { uid, gid, recursive, joined: Some(path.to_path_buf()) }))
        }
        (true, true, Userns::None) => {
            return Err(Error::field(
                format!("mounts[{i}]"),
                "idmap without uidMappings and gidMappings takes the container's user namespace maps, and the \
                 container has no user namespace",
            ))
        }
    };
    Ok(Some(Request { uid, gid, recursive, joined: None }))
}

/// Detached trees made in the parent, by `mounts` index, for the init to attach.
pub type Prepared = Vec<(usize, OwnedFd)>;

/// As root, before the clone: every idmapped bind tree of the config, idmapped and with its
/// attributes set (`mounts[i]` errors). Unprivileged husk leaves them to the init.
pub fn prepare(spec: &Spec, bundle: &Path, userns: Userns<'_>) -> Result<Prepared> {
    let mut out = Prepared::new();
    if !userns::privileged() {
        return Ok(out);
    }
    let mut namespaces: Vec<(Request, OwnedFd)> = Vec::new();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let opts = mount_options::parse(m.options().as_deref().unwrap_or(&[]))
            .map_err(|e| e.context(format!("mounts[{i}]: options of {}", m.destination().display())))?;
        let Some(req) = request(i, m, &opts, userns)? else { continue };
        opts.check_bind().map_err(|e| e.context(format!("mounts[{i}]: options of {}", m.destination().display())))?;
        let source = m.source().as_ref().ok_or_else(|| Error::field(format!("mounts[{i}].source"), "missing"))?;
        let source = if source.is_absolute() { source.clone() } else { bundle.join(source) };
        let what = || format!("mounts[{i}]: idmapped bind of {}", source.display());
        let tree = clone_path(&source, opts.recursive_bind).map_err(|e| Error::from(e).context(what()))?;
        // Volumes with the same maps (a pod's) share one namespace.
        let ns =
            match namespaces.iter().position(|(r, _)| r.uid == req.uid && r.gid == req.gid && r.joined == req.joined) {
                Some(n) => &namespaces[n].1,
                None => {
                    let fd = match &req.joined {
                        Some(path) => {
                            rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map_err(|e| {
                                Error::os(
                                    format!("{}: open the user namespace {}", what(), path.display()),
                                    e.raw_os_error(),
                                )
                            })?
                        }
                        None => userns::mapped_namespace(&req.uid, &req.gid, &what())?,
                    };
                    namespaces.push((req.clone(), fd));
                    &namespaces[namespaces.len() - 1].1
                }
            };
        apply(tree.as_fd(), ns.as_fd(), req.recursive, &source).map_err(|e| e.context(format!("mounts[{i}]")))?;
        set_bind_attrs(tree.as_fd(), &opts).map_err(|e| e.context(what()))?;
        out.push((i, tree));
    }
    Ok(out)
}

/// In the init (rootless): idmap `tree` through a namespace nested in the container's, the
/// request's host ids rewritten as the container's ids.
pub fn apply_in_container(i: usize, tree: BorrowedFd<'_>, req: &Request, source: &Path) -> Result<()> {
    if let Some(path) = &req.joined {
        let ns = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map_err(|e| {
            Error::os(format!("mounts[{i}]: open the user namespace {}", path.display()), e.raw_os_error())
        })?;
        return apply(tree, ns.as_fd(), req.recursive, source).map_err(|e| e.context(format!("mounts[{i}]")));
    }
    let (own_uid, own_gid) = userns::own_maps()?;
    let uid = userns::translate(&req.uid, &own_uid, &format!("mounts[{i}].uidMappings"))?;
    let gid = userns::translate(&req.gid, &own_gid, &format!("mounts[{i}].gidMappings"))?;
    let what = format!("mounts[{i}]: idmapped bind of {}", source.display());
    let ns = userns::mapped_namespace(&uid, &gid, &what)?;
    apply(tree, ns.as_fd(), req.recursive, source).map_err(|e| e.context(format!("mounts[{i}]")))
}

fn apply(tree: BorrowedFd<'_>, ns: BorrowedFd<'_>, recursive: bool, source: &Path) -> Result<()> {
    crate::syscalls::mount_setattr_idmap(tree, recursive, ns).map_err(|e| {
        let why = match e.raw_os_error() {
            libc::EPERM => {
                "the kernel lets only a process privileged over the user namespace that mounted a filesystem \
                 idmap it: real root for a host filesystem (rootless, only filesystems mounted in the container's \
                 user namespace, such as a tmpfs mounted before, can be idmapped)"
            }
            libc::EINVAL => "this filesystem does not support idmapped mounts, or the mount is idmapped already",
            _ => "mount_setattr(MOUNT_ATTR_IDMAP)",
        };
        Error::os(format!("idmap {}: {why}", source.display()), e.raw_os_error())
    })
}
