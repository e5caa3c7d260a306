//! What the host mounted: cgroup hierarchies from /proc/self/mountinfo and the caller's own
//! cgroups from /proc/self/cgroup. Both are read once per create.

use std::path::PathBuf;

use super::Hierarchy;
use crate::error::{Context, Error, Result};

/// How the host's cgroups are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only v1 hierarchies.
    V1,
    /// v1 hierarchies bound to the controllers, plus a cgroup2 mount (systemd's "unified").
    Hybrid,
    /// Only cgroup2.
    V2,
    /// No cgroup mounts at all.
    None,
}

impl Mode {
    pub fn of(hierarchies: &[Hierarchy]) -> Mode {
        let v1 = hierarchies.iter().any(|h| !h.v2 && h.controllers.iter().any(|c| !c.starts_with("name=")));
        let v2 = hierarchies.iter().any(|h| h.v2);
        match (v1, v2) {
            (true, true) => Mode::Hybrid,
            (true, false) => Mode::V1,
            (false, true) => Mode::V2,
            (false, false) => Mode::None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::V1 => "v1",
            Mode::Hybrid => "hybrid",
            Mode::V2 => "v2",
            Mode::None => "none",
        }
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
pub(crate) fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let v = (bytes[i + 1] - b'0') as u32 * 64 + (bytes[i + 2] - b'0') as u32 * 8 + (bytes[i + 3] - b'0') as u32;
            if let Ok(b) = u8::try_from(v) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse mountinfo text into cgroup hierarchies. A hierarchy mounted twice (bind mounts) is
/// reported once, at its first mount, like runc's FindCgroupMountpoint.
pub fn parse_mountinfo(text: &str) -> Vec<Hierarchy> {
    let mut seen: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    let mount_point = |line: &str| line.split(' ').nth(4).map(str::to_owned);
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        // A later mount on the same mount point hides this one (e.g. a tmpfs over the cgroup2
        // mount, as the crun workaround in host.md does): what is there now is not cgroupfs.
        let here = mount_point(line);
        if lines[i + 1..].iter().any(|l| mount_point(l) == here) {
            continue;
        }
        let Some((pre, post)) = line.split_once(" - ") else { continue };
        let pre: Vec<&str> = pre.split(' ').collect();
        let mut post = post.split(' ');
        let (Some(fstype), Some(_source), Some(superopts)) = (post.next(), post.next(), post.next()) else {
            continue;
        };
        if pre.len() < 5 || (fstype != "cgroup" && fstype != "cgroup2") {
            continue;
        }
        let dev = pre[2];
        if seen.contains(&dev) {
            continue;
        }
        let v2 = fstype == "cgroup2";
        let controllers: Vec<String> = if v2 {
            Vec::new()
        } else {
            // Super options mix controllers with mount options (rw, xattr, release_agent=...).
            superopts
                .split(',')
                .filter(|o| {
                    o.starts_with("name=")
                        || !(matches!(
                            *o,
                            "rw" | "ro"
                                | "none"
                                | "xattr"
                                | "noprefix"
                                | "cpuset_v2_mode"
                                | "clone_children"
                                | "favordynmods"
                                | "nofavordynmods"
                        ) || o.contains('='))
                })
                .map(str::to_owned)
                .collect()
        };
        if !v2 && controllers.is_empty() {
            continue;
        }
        seen.push(dev);
        out.push(Hierarchy {
            mount: PathBuf::from(unescape(pre[4])),
            root: PathBuf::from(unescape(pre[3])),
            controllers,
            v2,
        });
    }
    out
}

pub fn read_mountinfo() -> Result<Vec<Hierarchy>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ctx(|| "read /proc/self/mountinfo")?;
    Ok(parse_mountinfo(&text))
}

/// One line of /proc/self/cgroup: the controllers (empty for the v2 `0::` line) and the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnCgroup {
    pub controllers: Vec<String>,
    pub path: String,
}

pub fn parse_proc_cgroup(text: &str) -> Vec<OwnCgroup> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_id, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
            let controllers = ctrls.split(',').filter(|c| !c.is_empty()).map(str::to_owned).collect();
            Some(OwnCgroup { controllers, path: path.to_owned() })
        })
        .collect()
}

pub fn read_proc_cgroup() -> Result<Vec<OwnCgroup>> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ctx(|| "read /proc/self/cgroup")?;
    Ok(parse_proc_cgroup(&text))
}

/// The caller's cgroup in hierarchy `h`, as a path relative to the mount (runc's
/// getCgroupPathHelper: the /proc/self/cgroup path made relative to the mount's root).
pub fn own_relative(h: &Hierarchy, own: &[OwnCgroup]) -> Result<PathBuf> {
    let line = own
        .iter()
        .find(|o| if h.v2 { o.controllers.is_empty() } else { o.controllers == h.controllers })
        .ok_or_else(|| Error::msg(format!("/proc/self/cgroup: no entry for the hierarchy at {}", h.mount.display())))?;
    let path = std::path::Path::new(&line.path);
    let rel = path.strip_prefix(&h.root).map_err(|_| {
        Error::msg(format!(
            "/proc/self/cgroup: {} is outside the root {} of the mount {}",
            line.path,
            h.root.display(),
            h.mount.display()
        ))
    })?;
    Ok(rel.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime shared:9 - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const V1: &str = "\
25 18 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw shared:9 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/x,name=systemd
28 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw shared:10 - cgroup cgroup rw,cpu,cpuacct
29 25 0:26 /docker/abc /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
30 25 0:27 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio
31 25 0:25 / /mnt/with\\040space rw - cgroup cgroup rw,cpu,cpuacct
";

    const V2: &str = "\
22 1 8:1 / / rw - ext4 /dev/sda1 rw
27 21 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    #[test]
    fn mountinfo_hybrid() {
        let h = parse_mountinfo(HYBRID);
        assert_eq!(h.len(), 4);
        assert_eq!(h[0].controllers, ["cpu"]);
        assert_eq!(h[2].controllers, ["name=systemd"]);
        assert!(h[3].v2 && h[3].controllers.is_empty());
        assert_eq!(h[3].mount, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(Mode::of(&h), Mode::Hybrid);
    }

    #[test]
    fn mountinfo_v1() {
        let h = parse_mountinfo(V1);
        // The bind mount of cpu,cpuacct (same device) is not a second hierarchy.
        assert_eq!(h.len(), 4);
        assert_eq!(h[0].controllers, ["name=systemd"]);
        assert_eq!(h[1].controllers, ["cpu", "cpuacct"]);
        assert_eq!(h[2].root, PathBuf::from("/docker/abc"));
        assert_eq!(h[3].controllers, ["net_cls", "net_prio"]);
        assert_eq!(Mode::of(&h), Mode::V1);
        assert_eq!(unescape("/mnt/with\\040space"), "/mnt/with space");
    }

    #[test]
    fn mountinfo_v2() {
        let h = parse_mountinfo(V2);
        assert_eq!(h, [Hierarchy { mount: "/sys/fs/cgroup".into(), root: "/".into(), controllers: vec![], v2: true }]);
        assert_eq!(Mode::of(&h), Mode::V2);
        assert_eq!(Mode::of(&[]), Mode::None);
    }

    #[test]
    fn proc_cgroup_and_own_path() {
        let own = parse_proc_cgroup("4:memory:/process_api/03\n1:cpu,cpuacct:/\n29:pids:/docker/abc/x\n0::/a:b\n");
        assert_eq!(own[3], OwnCgroup { controllers: vec![], path: "/a:b".into() });
        let hs = parse_mountinfo(V1);
        assert_eq!(own_relative(&hs[1], &own).unwrap(), PathBuf::from(""));
        assert_eq!(own_relative(&hs[2], &own).unwrap(), PathBuf::from("x"));
        let mem = Hierarchy { mount: "/m".into(), root: "/".into(), controllers: vec!["memory".into()], v2: false };
        assert_eq!(own_relative(&mem, &own).unwrap(), PathBuf::from("process_api/03"));
        let v2 = Hierarchy { mount: "/u".into(), root: "/".into(), controllers: vec![], v2: true };
        assert_eq!(own_relative(&v2, &own).unwrap(), PathBuf::from("a:b"));
        let outside = Hierarchy { root: "/other".into(), ..mem };
        assert!(own_relative(&outside, &own).unwrap_err().to_string().starts_with("/proc/self/cgroup:"));
    }
}

#[cfg(test)]
mod overmount_tests {
    #[test]
    fn a_mount_hidden_by_a_later_one_is_not_a_hierarchy() {
        let text = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
                    90 41 0:60 / /sys/fs/cgroup/unified rw - tmpfs none rw,size=16m\n";
        let h = super::parse_mountinfo(text);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].controllers, vec!["memory".to_string()]);
    }
}
