//! User namespaces beyond the clone flag: the id maps of a new namespace (written directly, or
//! through newuidmap/newgidmap when an unprivileged caller maps more than its own ids), what
//! that means for setgroups, and throwaway namespaces whose only use is as the mapping of an
//! idmapped mount (`mount_setattr(MOUNT_ATTR_IDMAP)` takes a user namespace fd, not a map).

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use oci_spec::runtime::LinuxIdMapping;
use rustix::fs::{Mode, OFlags};

use crate::error::{Context, Error, Result};
use crate::syscalls::{self, Forked};

/// One line of a map: ids `inner..inner+size` in the namespace are `outer..` in its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub inner: u32,
    pub outer: u32,
    pub size: u32,
}

impl Range {
    pub fn of(m: &LinuxIdMapping) -> Range {
        Range { inner: m.container_id(), outer: m.host_id(), size: m.size() }
    }
}

pub fn ranges(maps: Option<&Vec<LinuxIdMapping>>) -> Vec<Range> {
    maps.map(|m| m.iter().map(Range::of).collect()).unwrap_or_default()
}

fn map_text(maps: &[Range]) -> String {
    maps.iter().map(|m| format!("{} {} {}\n", m.inner, m.outer, m.size)).collect()
}

/// Root in the namespace husk runs in has CAP_SETUID/CAP_SETGID over every id it can see: it may
/// write any map itself. Anyone else may map only their own id, once (user_namespaces(7)).
pub fn privileged() -> bool {
    rustix::process::geteuid().is_root()
}

/// One line of `/proc/self/uid_map` is 33 bytes (a map may have up to 340: the buffer grows).
const UID_MAP_SIZE: usize = 64;

/// Is husk itself in a user namespace other than the initial one (e.g. inside a rootless
/// Podman container)? Then "root" is not the host's root, and cgroups are not ours to make.
pub fn in_user_namespace() -> bool {
    match crate::smallfile::read_string("/proc/self/uid_map", UID_MAP_SIZE) {
        Ok(text) => {
            let line: Vec<&str> = text.split_whitespace().collect();
            line != ["0", "0", "4294967295"]
        }
        Err(_) => false,
    }
}

/// Our effective uid as the namespace outside ours knows it (`/proc/self/uid_map`): what a
/// peer there, such as the user's D-Bus, sees on our sockets. Inside rootless Podman that is the
/// user's uid, not 0.
pub fn outer_uid() -> u32 {
    let euid = rustix::process::geteuid().as_raw();
    let map = crate::smallfile::read_string("/proc/self/uid_map", UID_MAP_SIZE).unwrap_or_default();
    for line in map.lines() {
        let f: Vec<u64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        if let [inner, outer, count] = f[..] {
            if (inner..inner + count).contains(&(euid as u64)) {
                return (outer + euid as u64 - inner) as u32;
            }
        }
    }
    euid
}

#[derive(Clone, Copy)]
enum Kind {
    Uid,
    Gid,
}

impl Kind {
    fn file(self) -> &'static str {
        match self {
            Kind::Uid => "uid_map",
            Kind::Gid => "gid_map",
        }
    }
    fn field(self) -> &'static str {
        match self {
            Kind::Uid => "linux.uidMappings",
            Kind::Gid => "linux.gidMappings",
        }
    }
    fn tool(self) -> &'static str {
        match self {
            Kind::Uid => "newuidmap",
            Kind::Gid => "newgidmap",
        }
    }
    fn own_id(self) -> u32 {
        match self {
            Kind::Uid => rustix::process::geteuid().as_raw(),
            Kind::Gid => rustix::process::getegid().as_raw(),
        }
    }
}

/// Write the uid and gid maps of `pid`, which has just been cloned into a new user namespace and
/// waits. As root: directly. Unprivileged: a map of exactly our own id is written directly (for
/// gids after `deny` in `setgroups`, which the kernel requires so that a user cannot drop a
/// group that denies it access); anything else goes through the setuid helpers
/// newuidmap/newgidmap, which check the ranges against /etc/subuid and /etc/subgid.
pub fn write_maps(pid: i32, uid: &[Range], gid: &[Range]) -> Result<()> {
    // The helpers are two setuid programs of a few ms each: both run at once.
    let uid_map = start_map(pid, Kind::Uid, uid)?;
    let gid_map = start_map(pid, Kind::Gid, gid);
    let uid_done = finish_map(pid, uid_map);
    uid_done.and(gid_map.and_then(|g| finish_map(pid, g)))
}

/// A map written already, or a helper still writing it.
enum Pending {
    Done,
    Helper(Kind, Child, Vec<Range>),
}

fn start_map(pid: i32, kind: Kind, maps: &[Range]) -> Result<Pending> {
    if maps.is_empty() {
        return Ok(Pending::Done);
    }
    let path = format!("/proc/{pid}/{}", kind.file());
    let write = || {
        std::fs::write(&path, map_text(maps)).ctx(|| format!("{}: write {path}", kind.field())).map(|()| Pending::Done)
    };
    if privileged() {
        return write();
    }
    let own = kind.own_id();
    if let [Range { outer, size: 1, .. }] = maps {
        if *outer == own {
            if let Kind::Gid = kind {
                let setgroups = format!("/proc/{pid}/setgroups");
                std::fs::write(&setgroups, "deny").ctx(|| format!("{}: write {setgroups}", kind.field()))?;
            }
            return write();
        }
    }
    spawn_helper(pid, kind, maps)
}

/// `newuidmap PID INNER OUTER SIZE...`: the helper refuses ranges /etc/subuid does not give us
/// and says so on stderr, which becomes the error.
fn spawn_helper(pid: i32, kind: Kind, maps: &[Range]) -> Result<Pending> {
    let tool = kind.tool();
    let Some(bin) = find_in_path(tool) else {
        return Err(Error::field(
            kind.field(),
            format!(
                "mapping {} needs {tool} (Debian's uidmap package) when husk is not root, and it is not in $PATH",
                describe(maps)
            ),
        ));
    };
    let mut cmd = Command::new(&bin);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([m.inner.to_string(), m.outer.to_string(), m.size.to_string()]);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ctx(|| format!("{}: run {}", kind.field(), bin.display()))?;
    Ok(Pending::Helper(kind, child, maps.to_vec()))
}

fn finish_map(pid: i32, pending: Pending) -> Result<()> {
    let Pending::Helper(kind, child, maps) = pending else { return Ok(()) };
    let tool = kind.tool();
    let out = child.wait_with_output().ctx(|| format!("{}: wait for {tool}", kind.field()))?;
    if out.status.success() {
        return Ok(());
    }
    let why = String::from_utf8_lossy(&out.stderr);
    let why = why.trim().lines().last().unwrap_or("failed").to_string();
    Err(Error::field(kind.field(), format!("{tool} {pid} {}: {why}", describe(&maps))))
}

fn describe(maps: &[Range]) -> String {
    maps.iter().map(|m| format!("{} {} {}", m.inner, m.outer, m.size)).collect::<Vec<_>>().join(" ")
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    // The helpers live in /usr/bin; a caller with a minimal PATH (a daemon) still finds them.
    let dirs = std::env::split_paths(&path).chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")]);
    dirs.map(|d| d.join(name)).find(|p| rustix::fs::access(p, rustix::fs::Access::EXEC_OK).is_ok())
}

/// Whether a process of `pid`'s user namespace (`"self"`: ours) may call setgroups(2): not in a
/// user namespace whose gid map was written by an unprivileged user without the helpers
/// (`setgroups` reads `deny`).
pub fn setgroups_allowed(pid: &str) -> bool {
    crate::smallfile::read_string(format!("/proc/{pid}/setgroups"), 64).map(|s| s.trim() != "deny").unwrap_or(true)
}

/// Rewrite `maps`, whose outer ids are the host's, in terms of the namespace `through` maps
/// (`through`'s outer ids being the host's too): what a process inside that namespace must write
/// to give a child namespace the same host ids. A host id `through` does not map is an error.
pub fn translate(maps: &[Range], through: &[Range], field: &str) -> Result<Vec<Range>> {
    let mut out = Vec::new();
    for m in maps {
        let (mut inner, mut outer, mut left) = (m.inner as u64, m.outer as u64, m.size as u64);
        while left > 0 {
            let hit = through.iter().find(|t| (t.outer as u64..t.outer as u64 + t.size as u64).contains(&outer));
            let Some(t) = hit else {
                return Err(Error::field(
                    field,
                    format!("host id {outer} is not mapped in the container's user namespace, so husk cannot map it"),
                ));
            };
            let n = left.min(t.outer as u64 + t.size as u64 - outer);
            out.push(Range {
                inner: inner as u32,
                outer: (t.inner as u64 + outer - t.outer as u64) as u32,
                size: n as u32,
            });
            (inner, outer, left) = (inner + n, outer + n, left - n);
        }
    }
    Ok(out)
}

/// The maps of the user namespace we are in, as `/proc/self/{uid,gid}_map` shows them.
pub fn own_maps() -> Result<(Vec<Range>, Vec<Range>)> {
    let read = |file: &str| -> Result<Vec<Range>> {
        let text = std::fs::read_to_string(file).ctx(|| format!("read {file}"))?;
        let mut out = Vec::new();
        for line in text.lines() {
            let f: Vec<u32> = line.split_whitespace().filter_map(|v| v.parse().ok()).collect();
            if let [inner, outer, size] = f[..] {
                out.push(Range { inner, outer, size });
            }
        }
        Ok(out)
    };
    Ok((read("/proc/self/uid_map")?, read("/proc/self/gid_map")?))
}

/// A user namespace with these maps (written by us, so we must be privileged over the ids, in the
/// namespace we are in), held by a fd: a child is cloned into a new user namespace, made
/// dumpable so its map files are ours to write, mapped, and let go once its namespace is open.
pub fn mapped_namespace(uid: &[Range], gid: &[Range], what: &str) -> Result<OwnedFd> {
    let (ready_r, ready_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).ctx(|| "pipe")?;
    let (hold_r, hold_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).ctx(|| "pipe")?;
    let (pid, pidfd) = match syscalls::clone3(libc::CLONE_NEWUSER as u64, None) {
        Ok(Forked::Child) => holder(ready_r, ready_w, hold_r, hold_w),
        Ok(Forked::Parent { pid, pidfd }) => (pid, pidfd),
        Err(e) => return Err(Error::from(e).context(format!("{what}: clone a user namespace"))),
    };
    drop(ready_w);
    drop(hold_r);
    let result = (|| {
        // The init calls this in the container's pid namespace with the host's /proc still
        // mounted: its pid there is not `pid`. The pidfd's fdinfo says which it is.
        let pid = proc_pid(&pidfd)?;
        let mut byte = [0u8; 1];
        let mut ready = std::fs::File::from(ready_r);
        if !matches!(ready.read(&mut byte), Ok(1)) {
            return Err(Error::msg(format!("{what}: the user namespace holder exited")));
        }
        for (file, maps) in [("uid_map", uid), ("gid_map", gid)] {
            let path = format!("/proc/{pid}/{file}");
            std::fs::write(&path, map_text(maps)).ctx(|| format!("{what}: write {path}"))?;
        }
        rustix::fs::open(format!("/proc/{pid}/ns/user"), OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .ctx(|| format!("{what}: open the user namespace"))
    })();
    drop(hold_w);
    let _ = rustix::process::waitpid(rustix::process::Pid::from_raw(pid), rustix::process::WaitOptions::empty());
    result
}

/// The pid of `pidfd`'s process as /proc (the mounted one) numbers it.
fn proc_pid(pidfd: &OwnedFd) -> Result<i32> {
    let file = format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd());
    let text = std::fs::read_to_string(&file).ctx(|| format!("read {file}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("Pid:").and_then(|v| v.trim().parse::<i32>().ok()))
        .filter(|p| *p > 0)
        .ok_or_else(|| Error::msg(format!("{file}: no pid of the user namespace holder")))
}

/// The child of [`mapped_namespace`]: only raw system calls (the parent may be a library caller's
/// process), then it waits for the hold pipe to close and exits.
fn holder(ready_r: OwnedFd, ready_w: OwnedFd, hold_r: OwnedFd, hold_w: OwnedFd) -> ! {
    // SAFETY: prctl, close, write, read and _exit on fds this copy of the process owns; no
    // allocation, no locks.
    unsafe {
        libc::close(ready_r.as_raw_fd());
        libc::close(hold_w.as_raw_fd());
        // A new user namespace does not make us dumpable; our /proc files would stay root's.
        libc::prctl(
            libc::PR_SET_DUMPABLE,
            1 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        );
        let b = 1u8;
        libc::write(ready_w.as_raw_fd(), &b as *const u8 as *const libc::c_void, 1);
        let mut buf = 0u8;
        while libc::read(hold_r.as_raw_fd(), &mut buf as *mut u8 as *mut libc::c_void, 1) < 0 {}
        libc::_exit(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outer_uid_outside_any_user_namespace_is_ours() {
        // The host's user namespace (identity map): the outer uid is the euid.
        if !in_user_namespace() {
            assert_eq!(outer_uid(), rustix::process::geteuid().as_raw());
        }
    }

    fn r(inner: u32, outer: u32, size: u32) -> Range {
        Range { inner, outer, size }
    }

    #[test]
    fn translate_through_the_container_maps() {
        let through = [r(0, 1000, 1), r(1, 100000, 65536)];
        // Host 1000 is the container's 0, host 100005.. its 6..
        assert_eq!(translate(&[r(0, 1000, 1)], &through, "f").unwrap(), [r(0, 0, 1)]);
        assert_eq!(translate(&[r(10, 100005, 3)], &through, "f").unwrap(), [r(10, 6, 3)]);
        // A range that spans two lines of the container's map is split.
        let two = [r(0, 100000, 10), r(10, 200000, 10)];
        assert_eq!(translate(&[r(0, 100008, 2)], &two, "f").unwrap(), [r(0, 8, 2)]);
        let gap = [r(0, 100000, 10), r(10, 100010, 10)];
        assert_eq!(translate(&[r(5, 100008, 4)], &gap, "f").unwrap(), [r(5, 8, 2), r(7, 10, 2)]);
        let e = translate(&[r(0, 5, 1)], &through, "mounts[0].uidMappings").unwrap_err();
        assert!(e.to_string().starts_with("mounts[0].uidMappings: host id 5 is not mapped"), "{e}");
    }

    #[test]
    fn map_text_format() {
        assert_eq!(map_text(&[r(0, 1000, 1), r(1, 100000, 65536)]), "0 1000 1\n1 100000 65536\n");
    }
}
