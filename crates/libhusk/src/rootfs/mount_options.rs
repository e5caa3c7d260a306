//! OCI mount options → what the new mount API wants: per-mount attributes (plain and recursive),
//! propagation changes, bind flags, and filesystem data for fsconfig.

use crate::error::{Error, Result};
use crate::userns::Range;

pub const ATTR_RDONLY: u64 = libc::MOUNT_ATTR_RDONLY;
pub const ATTR_NOSUID: u64 = libc::MOUNT_ATTR_NOSUID;
pub const ATTR_NODEV: u64 = libc::MOUNT_ATTR_NODEV;
pub const ATTR_NOEXEC: u64 = libc::MOUNT_ATTR_NOEXEC;
pub const ATTR_ATIME_MASK: u64 = libc::MOUNT_ATTR__ATIME;
pub const ATTR_RELATIME: u64 = libc::MOUNT_ATTR_RELATIME;
pub const ATTR_NOATIME: u64 = libc::MOUNT_ATTR_NOATIME;
pub const ATTR_STRICTATIME: u64 = libc::MOUNT_ATTR_STRICTATIME;
pub const ATTR_NODIRATIME: u64 = libc::MOUNT_ATTR_NODIRATIME;
pub const ATTR_NOSYMFOLLOW: u64 = libc::MOUNT_ATTR_NOSYMFOLLOW;

// c_ulong is u64 only on 64-bit targets.
#[allow(clippy::unnecessary_cast)]
pub const PROP_SHARED: u64 = libc::MS_SHARED as u64;
#[allow(clippy::unnecessary_cast)]
pub const PROP_SLAVE: u64 = libc::MS_SLAVE as u64;
#[allow(clippy::unnecessary_cast)]
pub const PROP_PRIVATE: u64 = libc::MS_PRIVATE as u64;
#[allow(clippy::unnecessary_cast)]
pub const PROP_UNBINDABLE: u64 = libc::MS_UNBINDABLE as u64;

/// Attribute changes for `mount_setattr`: bits to set and bits to clear. The atime mode is one
/// value inside `ATTR_ATIME_MASK`, so choosing one clears the whole mask.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Attrs {
    pub set: u64,
    pub clear: u64,
}

impl Attrs {
    fn apply(&mut self, on: bool, bit: u64) {
        if on {
            self.set |= bit;
            self.clear &= !bit;
        } else {
            self.clear |= bit;
            self.set &= !bit;
        }
    }

    fn atime(&mut self, mode: u64) {
        self.set = (self.set & !ATTR_ATIME_MASK) | mode;
        self.clear |= ATTR_ATIME_MASK;
    }

    pub fn is_empty(&self) -> bool {
        self.set == 0 && self.clear == 0
    }

    /// The attributes of a fresh mount (rw, suid, dev, exec, relatime) after these changes.
    pub fn on_fresh_mount(&self, then: &Attrs) -> u64 {
        let once = self.set;
        (once & !then.clear) | then.set
    }
}

/// A data option for fsconfig: `key=value` or a bare flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    Flag(String),
    Value(String, String),
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MountOptions {
    pub bind: bool,
    pub recursive_bind: bool,
    /// Changes to the mount itself.
    pub attrs: Attrs,
    /// Changes to the mount and every mount below it (`rro`, `rnosuid`, ...), applied after `attrs`.
    pub rec_attrs: Attrs,
    /// Propagation changes in order: (MS_SHARED/SLAVE/PRIVATE/UNBINDABLE, recursive).
    pub propagation: Vec<(u64, bool)>,
    /// Everything else, for the filesystem (superblock flags like `sync` included: fsconfig knows them).
    pub data: Vec<Data>,
    /// `idmap`/`ridmap` was asked for.
    pub idmap: bool,
    /// `ridmap`: the idmapping applies to every mount of an `rbind` tree, not just its top.
    pub ridmap: bool,
    /// `tmpcopyup`: fill a new tmpfs with what the directory under it held (runc's extension).
    pub copy_up: bool,
    /// crun's `idmap=uids=A-B-N#...;gids=...` (Podman's custom idmapping): (uid, gid) ranges,
    /// each `A-B-N` a filesystem id A shown as host id B, N of them (a mount's uidMappings).
    pub idmap_maps: Option<(Vec<Range>, Vec<Range>)>,
    /// The per-mount flags asked to be set and cleared, as mount(2) flags (runc's Flags and
    /// ClearedFlags): for a bind mount's flags on a locked source (see mounts::set_bind_attrs).
    pub ms_set: u64,
    pub ms_clear: u64,
    /// Options only a new superblock can take (`sync`, `dirsync`, `lazytime`, `mand` and their
    /// opposites): on a bind mount they change nothing (runc passes them to a bind remount,
    /// which ignores them).
    pub sb_flags: Vec<String>,
}

impl MountOptions {
    /// The same options with the mount and everything below it read-only.
    pub fn read_only(&self) -> MountOptions {
        let mut o = self.clone();
        o.attrs.apply(true, ATTR_RDONLY);
        o.rec_attrs.apply(true, ATTR_RDONLY);
        o
    }
}

/// Parse one mount's options. Only options that can never work are errors here; the kernel
/// judges the data options of new filesystems, and a bind mount refuses any (`check_bind`).
pub fn parse(options: &[String]) -> Result<MountOptions> {
    let mut o = MountOptions::default();
    for opt in options {
        if let Some(rest) = opt.strip_prefix('r') {
            if let Some(attr) = recursive_attr(rest) {
                attr(&mut o.rec_attrs);
                continue;
            }
        }
        match opt.as_str() {
            "bind" => o.bind = true,
            "rbind" => {
                o.bind = true;
                o.recursive_bind = true;
            }
            // Superblock flags the new mount API has no use for (i_version is the filesystem's choice).
            "defaults" | "silent" | "loud" | "iversion" | "noiversion" => {}
            "sync" | "async" | "dirsync" | "mand" | "nomand" | "lazytime" | "nolazytime" => {
                o.sb_flags.push(opt.clone());
                o.data.push(Data::Flag(opt.clone()));
            }
            "tmpcopyup" => o.copy_up = true,
            "notmpcopyup" => o.copy_up = false,
            "shared" => o.propagation.push((PROP_SHARED, false)),
            "rshared" => o.propagation.push((PROP_SHARED, true)),
            "slave" => o.propagation.push((PROP_SLAVE, false)),
            "rslave" => o.propagation.push((PROP_SLAVE, true)),
            "private" => o.propagation.push((PROP_PRIVATE, false)),
            "rprivate" => o.propagation.push((PROP_PRIVATE, true)),
            "unbindable" => o.propagation.push((PROP_UNBINDABLE, false)),
            "runbindable" => o.propagation.push((PROP_UNBINDABLE, true)),
            "idmap" => o.idmap = true,
            "ridmap" => {
                o.idmap = true;
                o.ridmap = true;
            }
            // crun's extensions that Podman may pass: named, never taken for filesystem data.
            "copy-symlink" | "src-nofollow" | "dest-nofollow" => {
                return Err(Error::msg(format!("option {opt:?} (crun's extension) is not supported by husk")))
            }
            "" => {}
            _ => {
                if let Some(spec) = opt.strip_prefix("idmap=").or_else(|| opt.strip_prefix("ridmap=")) {
                    o.idmap = true;
                    o.ridmap |= opt.starts_with('r');
                    o.idmap_maps = Some(parse_crun_idmap(spec).map_err(|e| e.context(format!("option {opt:?}")))?);
                    continue;
                }
                match plain_attr(opt) {
                    Some(attr) => {
                        attr(&mut o.attrs);
                        if let Some((set, bit)) = ms_flag(opt) {
                            if set {
                                o.ms_set |= bit;
                                o.ms_clear &= !bit;
                            } else {
                                o.ms_clear |= bit;
                                o.ms_set &= !bit;
                            }
                        }
                    }
                    None => o.data.push(match opt.split_once('=') {
                        Some((k, v)) => Data::Value(k.to_string(), v.to_string()),
                        None => Data::Flag(opt.clone()),
                    }),
                }
            }
        }
    }
    Ok(o)
}

impl MountOptions {
    /// A bind mount shares its source's superblock: it cannot take filesystem options, which
    /// would be dropped without a word (runc refuses them too). Superblock flags pass: runc
    /// takes them and the kernel ignores them on a bind.
    pub fn check_bind(&self) -> Result<()> {
        for d in &self.data {
            let shown = match d {
                Data::Flag(k) if self.sb_flags.contains(k) => continue,
                Data::Flag(k) => k.clone(),
                Data::Value(k, v) => format!("{k}={v}"),
            };
            return Err(Error::msg(format!(
                "option {shown:?} is a filesystem option, which a bind mount cannot apply (it shares its source's \
                 filesystem)"
            )));
        }
        Ok(())
    }
}

/// crun's `uids=0-1-10#10-11-10;gids=0-100-10` (either part may be missing, and then takes the
/// other's ranges, as crun does).
fn parse_crun_idmap(spec: &str) -> Result<(Vec<Range>, Vec<Range>)> {
    let mut uids = None;
    let mut gids = None;
    for part in spec.split(';').filter(|p| !p.is_empty()) {
        let (key, ranges) =
            part.split_once('=').ok_or_else(|| Error::msg(format!("{part:?}: expected uids= or gids=")))?;
        let parsed = ranges
            .split('#')
            .map(|t| {
                let n: Vec<u32> = t
                    .split('-')
                    .map(|x| x.parse::<u32>())
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| Error::msg(format!("{t:?}: expected FROM-TO-COUNT")))?;
                match n[..] {
                    [inner, outer, size] if size > 0 => Ok(Range { inner, outer, size }),
                    _ => Err(Error::msg(format!("{t:?}: expected FROM-TO-COUNT with a COUNT above 0"))),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        match key {
            "uids" => uids = Some(parsed),
            "gids" => gids = Some(parsed),
            _ => return Err(Error::msg(format!("{key:?}: expected uids or gids"))),
        }
    }
    match (uids, gids) {
        (Some(u), Some(g)) => Ok((u, g)),
        (Some(u), None) => Ok((u.clone(), u)),
        (None, Some(g)) => Ok((g.clone(), g)),
        (None, None) => Err(Error::msg("no uids= or gids= ranges")),
    }
}

/// The mount(2) flag a per-mount option sets (true) or clears (false), as runc parses it.
fn ms_flag(opt: &str) -> Option<(bool, u64)> {
    #[allow(clippy::unnecessary_cast)]
    let f = |b: libc::c_ulong| b as u64;
    Some(match opt {
        "ro" => (true, f(libc::MS_RDONLY)),
        "rw" => (false, f(libc::MS_RDONLY)),
        "nosuid" => (true, f(libc::MS_NOSUID)),
        "suid" => (false, f(libc::MS_NOSUID)),
        "nodev" => (true, f(libc::MS_NODEV)),
        "dev" => (false, f(libc::MS_NODEV)),
        "noexec" => (true, f(libc::MS_NOEXEC)),
        "exec" => (false, f(libc::MS_NOEXEC)),
        "noatime" => (true, f(libc::MS_NOATIME)),
        "atime" => (false, f(libc::MS_NOATIME)),
        "relatime" => (true, f(libc::MS_RELATIME)),
        "norelatime" => (false, f(libc::MS_RELATIME)),
        "strictatime" => (true, f(libc::MS_STRICTATIME)),
        "nostrictatime" => (false, f(libc::MS_STRICTATIME)),
        "nodiratime" => (true, f(libc::MS_NODIRATIME)),
        "diratime" => (false, f(libc::MS_NODIRATIME)),
        "nosymfollow" => (true, MS_NOSYMFOLLOW),
        "symfollow" => (false, MS_NOSYMFOLLOW),
        _ => return None,
    })
}

/// Not in every libc crate's table.
pub const MS_NOSYMFOLLOW: u64 = 256;

type AttrFn = fn(&mut Attrs);

/// `atime`, `norelatime` and `nostrictatime` undo a choice, which leaves the kernel's default:
/// relatime.
fn plain_attr(opt: &str) -> Option<AttrFn> {
    Some(match opt {
        "ro" => |a| a.apply(true, ATTR_RDONLY),
        "rw" => |a| a.apply(false, ATTR_RDONLY),
        "nosuid" => |a| a.apply(true, ATTR_NOSUID),
        "suid" => |a| a.apply(false, ATTR_NOSUID),
        "nodev" => |a| a.apply(true, ATTR_NODEV),
        "dev" => |a| a.apply(false, ATTR_NODEV),
        "noexec" => |a| a.apply(true, ATTR_NOEXEC),
        "exec" => |a| a.apply(false, ATTR_NOEXEC),
        "noatime" => |a| a.atime(ATTR_NOATIME),
        "strictatime" => |a| a.atime(ATTR_STRICTATIME),
        "relatime" | "atime" | "norelatime" | "nostrictatime" => |a| a.atime(ATTR_RELATIME),
        "nodiratime" => |a| a.apply(true, ATTR_NODIRATIME),
        "diratime" => |a| a.apply(false, ATTR_NODIRATIME),
        "nosymfollow" => |a| a.apply(true, ATTR_NOSYMFOLLOW),
        "symfollow" => |a| a.apply(false, ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

/// The `r`-prefixed recursive forms exist for exactly the per-mount attributes.
fn recursive_attr(rest: &str) -> Option<AttrFn> {
    match rest {
        "ro" | "rw" | "nosuid" | "suid" | "nodev" | "dev" | "noexec" | "exec" | "noatime" | "atime" | "relatime"
        | "norelatime" | "strictatime" | "nostrictatime" | "nodiratime" | "diratime" | "nosymfollow" | "symfollow" => {
            plain_attr(rest)
        }
        _ => None,
    }
}

/// `linux.rootfsPropagation` → (propagation, recursive); runc's default is rslave.
pub fn rootfs_propagation(value: Option<&str>) -> Result<(u64, bool)> {
    Ok(match value.unwrap_or("rslave") {
        "shared" => (PROP_SHARED, false),
        "rshared" => (PROP_SHARED, true),
        "slave" => (PROP_SLAVE, false),
        "rslave" => (PROP_SLAVE, true),
        "private" => (PROP_PRIVATE, false),
        "rprivate" => (PROP_PRIVATE, true),
        "unbindable" => (PROP_UNBINDABLE, false),
        "runbindable" => (PROP_UNBINDABLE, true),
        other => return Err(Error::field("linux.rootfsPropagation", format!("{other:?} is not supported"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> MountOptions {
        parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn rootfs_options_plain_flags() {
        let o = p(&["nosuid", "noexec", "nodev", "ro"]);
        assert_eq!(o.attrs.set, ATTR_NOSUID | ATTR_NOEXEC | ATTR_NODEV | ATTR_RDONLY);
        assert_eq!(o.attrs.clear, 0);
        let o = p(&["ro", "rw", "dev"]);
        assert_eq!(o.attrs.set, 0);
        assert_eq!(o.attrs.clear, ATTR_RDONLY | ATTR_NODEV);
        assert!(o.data.is_empty() && !o.bind);
    }

    #[test]
    fn rootfs_options_atime_family() {
        let o = p(&["noatime"]);
        assert_eq!(o.attrs.set, ATTR_NOATIME);
        assert_eq!(o.attrs.clear, ATTR_ATIME_MASK);
        let o = p(&["noatime", "atime"]);
        assert_eq!(o.attrs.set, ATTR_RELATIME);
        let o = p(&["strictatime", "nodiratime"]);
        assert_eq!(o.attrs.set, ATTR_STRICTATIME | ATTR_NODIRATIME);
        let o = p(&["nodiratime", "diratime"]);
        assert_eq!(o.attrs.set, 0);
        assert_eq!(o.attrs.clear, ATTR_NODIRATIME);
    }

    #[test]
    fn rootfs_options_recursive_forms() {
        let o = p(&["rbind", "rro", "rnosuid", "rnoatime", "rnosymfollow", "rw"]);
        assert!(o.bind && o.recursive_bind);
        assert_eq!(o.rec_attrs.set, ATTR_RDONLY | ATTR_NOSUID | ATTR_NOATIME | ATTR_NOSYMFOLLOW);
        assert_eq!(o.attrs.clear, ATTR_RDONLY);
        let o = p(&["rro", "rrw"]);
        assert_eq!(o.rec_attrs.set, 0);
        assert_eq!(o.rec_attrs.clear, ATTR_RDONLY);
        // Not a recursive attribute: plain data.
        assert_eq!(p(&["rsize=8192"]).data, vec![Data::Value("rsize".into(), "8192".into())]);
        assert!(p(&["rprivate"]).rec_attrs.is_empty());
    }

    #[test]
    fn rootfs_options_propagation_and_data() {
        let o = p(&["rprivate", "shared", "mode=755", "size=65536k", "sync", "nr_inodes=10"]);
        assert_eq!(o.propagation, vec![(PROP_PRIVATE, true), (PROP_SHARED, false)]);
        assert_eq!(
            o.data,
            vec![
                Data::Value("mode".into(), "755".into()),
                Data::Value("size".into(), "65536k".into()),
                Data::Flag("sync".into()),
                Data::Value("nr_inodes".into(), "10".into()),
            ]
        );
        assert!(p(&["idmap"]).idmap && !p(&["idmap"]).ridmap && p(&["ridmap"]).idmap && p(&["ridmap"]).ridmap);
        assert!(p(&["tmpcopyup"]).copy_up && !p(&["tmpcopyup", "notmpcopyup"]).copy_up);
        assert!(p(&["tmpcopyup"]).data.is_empty());
        assert!(parse(&["copy-symlink".to_string()]).is_err());
    }

    #[test]
    fn rootfs_options_crun_extensions_and_bind_data() {
        for o in ["src-nofollow", "dest-nofollow", "copy-symlink"] {
            let e = parse(&[o.to_string()]).unwrap_err().to_string();
            assert!(e.contains(o) && e.contains("crun"), "{e}");
        }
        let o = p(&["rbind", "idmap=uids=0-1000-10#10-2000-5;gids=0-3000-15"]);
        assert!(o.idmap && !o.ridmap);
        let r = |inner, outer, size| Range { inner, outer, size };
        assert_eq!(o.idmap_maps, Some((vec![r(0, 1000, 10), r(10, 2000, 5)], vec![r(0, 3000, 15)])));
        // One part alone serves both, as crun takes it.
        assert_eq!(p(&["ridmap=uids=0-1-2"]).idmap_maps, Some((vec![r(0, 1, 2)], vec![r(0, 1, 2)])));
        assert!(p(&["ridmap=uids=0-1-2"]).ridmap);
        for bad in ["idmap=", "idmap=uids=0-1", "idmap=uids=0-1-0", "idmap=uids=a-b-c", "idmap=users=0-1-2"] {
            assert!(parse(&[bad.to_string()]).is_err(), "{bad}");
        }
        // A bind takes no filesystem data; superblock flags pass (they change nothing there).
        assert!(p(&["bind", "ro", "nosuid", "rprivate", "sync", "nolazytime"]).check_bind().is_ok());
        let e = p(&["bind", "size=1m"]).check_bind().unwrap_err().to_string();
        assert!(e.contains("size=1m") && e.contains("filesystem option"), "{e}");
        assert!(p(&["bind", "mode"]).check_bind().is_err());
    }

    #[test]
    fn rootfs_options_mount2_flags_asked_and_cleared() {
        #[allow(clippy::unnecessary_cast)]
        let (ro, nosuid, noatime) = (libc::MS_RDONLY as u64, libc::MS_NOSUID as u64, libc::MS_NOATIME as u64);
        let o = p(&["ro", "suid", "noatime", "rw"]);
        assert_eq!(o.ms_set, noatime);
        assert_eq!(o.ms_clear, nosuid | ro);
        assert_eq!(p(&["nosymfollow"]).ms_set, MS_NOSYMFOLLOW);
    }

    #[test]
    fn rootfs_options_fresh_mount_attrs() {
        let o = p(&["ro", "nosuid", "rrw", "rnoexec"]);
        assert_eq!(o.attrs.on_fresh_mount(&o.rec_attrs), ATTR_NOSUID | ATTR_NOEXEC);
    }

    #[test]
    fn rootfs_propagation_values() {
        assert_eq!(rootfs_propagation(None).unwrap(), (PROP_SLAVE, true));
        assert_eq!(rootfs_propagation(Some("shared")).unwrap(), (PROP_SHARED, false));
        assert_eq!(rootfs_propagation(Some("runbindable")).unwrap(), (PROP_UNBINDABLE, true));
        let e = rootfs_propagation(Some("bogus")).unwrap_err();
        assert!(e.to_string().starts_with("linux.rootfsPropagation"));
    }
}
