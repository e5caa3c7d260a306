//! Namespaces: which to create with the one clone3, which to join by path, and the user
//! namespace's id maps.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use oci_spec::runtime::{Linux, LinuxNamespaceType};
use rustix::fs::{Mode, OFlags};
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use crate::config::ns_name;
use crate::error::{Context, Error, Result};

/// How the container's namespaces come to be.
#[derive(Debug, Default)]
pub struct NsPlan {
    /// CLONE_NEW* flags passed to clone3 (everything new except time, see `new_time`).
    pub clone_flags: u64,
    /// When a user namespace is joined by path, the new namespaces must belong to it: the init
    /// unshares these after joining instead of clone3 creating them.
    pub unshare_flags: u64,
    /// The init is in a user namespace other than the host's (new or joined).
    pub in_userns: bool,
    /// Namespaces to join, user first, with their index in `linux.namespaces` for errors.
    pub join: Vec<(usize, LinuxNamespaceType, PathBuf)>,
    /// A new time namespace is made by unshare in the init so its offsets can be written before
    /// any process lives in it; the init then enters it itself ([`enter_time_ns_for_children`]).
    pub new_time: bool,
    pub new_user: bool,
    pub new_pid: bool,
    pub new_net: bool,
    pub new_mount: bool,
    /// A mount namespace other than husk's (new or joined). Without one the container shares the
    /// host's: husk then makes no mounts at all and chroots into the rootfs.
    pub own_mount: bool,
    pub new_cgroup: bool,
    /// CLONE_NEW* of every namespace the config lists, new or joined: the namespaces the
    /// container does not share with husk, which an exec'd process joins.
    pub listed: u64,
}

pub(crate) fn flag(t: LinuxNamespaceType) -> u64 {
    (match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }) as u64
}

/// The namespace's name under `/proc/PID/ns/`.
pub(crate) fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

impl NsPlan {
    pub fn from_config(linux: Option<&Linux>) -> Result<NsPlan> {
        let mut plan = NsPlan::default();
        // None listed: every namespace is the host's (runc runs such a container too).
        let namespaces = linux.and_then(|l| l.namespaces().as_deref()).unwrap_or_default();
        for (i, ns) in namespaces.iter().enumerate() {
            let t = ns.typ();
            plan.listed |= flag(t);
            match ns.path() {
                Some(p) if !p.as_os_str().is_empty() => plan.join.push((i, t, p.clone())),
                _ => match t {
                    LinuxNamespaceType::Time => plan.new_time = true,
                    _ => plan.clone_flags |= flag(t),
                },
            }
        }
        // Joining a user namespace first matters: the others are then entered with its privileges.
        plan.join.sort_by_key(|(_, t, _)| *t != LinuxNamespaceType::User);
        let joins = |t| plan.join.iter().any(|(_, jt, _)| *jt == t);
        if joins(LinuxNamespaceType::User) {
            plan.unshare_flags = std::mem::take(&mut plan.clone_flags);
        }
        let new = |t| (plan.clone_flags | plan.unshare_flags) & flag(t) != 0;
        plan.new_user = new(LinuxNamespaceType::User);
        plan.new_pid = new(LinuxNamespaceType::Pid);
        plan.new_net = new(LinuxNamespaceType::Network);
        plan.new_mount = new(LinuxNamespaceType::Mount);
        plan.new_cgroup = new(LinuxNamespaceType::Cgroup);
        // husk itself in a user namespace (run by rootless Podman) puts the init there too.
        plan.in_userns = plan.new_user || joins(LinuxNamespaceType::User) || crate::userns::in_user_namespace();
        plan.own_mount = plan.new_mount || joins(LinuxNamespaceType::Mount);
        if plan.new_user && linux.is_some_and(|l| l.uid_mappings().as_ref().is_none_or(|m| m.is_empty())) {
            return Err(Error::field("linux.uidMappings", "a new user namespace needs uid mappings"));
        }
        Ok(plan)
    }

    /// The new namespaces the init makes itself after joining a user namespace, without pid
    /// (a new pid namespace only applies to children: see `process::init`).
    pub fn unshare_now(&self) -> u64 {
        self.unshare_flags & !((libc::CLONE_NEWPID | libc::CLONE_NEWCGROUP) as u64)
    }

    pub fn unshare_pid(&self) -> bool {
        self.unshare_flags & libc::CLONE_NEWPID as u64 != 0
    }

    pub fn pid_ns_path(&self) -> Option<&(usize, LinuxNamespaceType, PathBuf)> {
        self.join.iter().find(|(_, t, _)| *t == LinuxNamespaceType::Pid)
    }

    pub fn user_ns_path(&self) -> Option<&(usize, LinuxNamespaceType, PathBuf)> {
        self.join.iter().find(|(_, t, _)| *t == LinuxNamespaceType::User)
    }
}

fn link_type(t: LinuxNamespaceType) -> LinkNameSpaceType {
    match t {
        LinuxNamespaceType::Mount => LinkNameSpaceType::Mount,
        LinuxNamespaceType::Cgroup => LinkNameSpaceType::ControlGroup,
        LinuxNamespaceType::Uts => LinkNameSpaceType::HostNameAndNISDomainName,
        LinuxNamespaceType::Ipc => LinkNameSpaceType::InterProcessCommunication,
        LinuxNamespaceType::User => LinkNameSpaceType::User,
        LinuxNamespaceType::Pid => LinkNameSpaceType::ProcessID,
        LinuxNamespaceType::Network => LinkNameSpaceType::Network,
        LinuxNamespaceType::Time => LinkNameSpaceType::Time,
    }
}

/// Enter the namespaces `flags` of the process behind `pidfd` in one setns: the kernel takes
/// the user namespace first, so the others are entered with its privileges.
pub fn join_process(pidfd: std::os::fd::BorrowedFd<'_>, flags: u64) -> Result<()> {
    if flags == 0 {
        return Ok(());
    }
    let types = rustix::thread::ThreadNameSpaceType::from_bits_retain(flags as u32);
    rustix::thread::move_into_thread_name_spaces(pidfd, types).ctx(|| "join the container's namespaces")
}

pub fn open_ns(index: usize, path: &std::path::Path) -> Result<OwnedFd> {
    rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .ctx(|| format!("linux.namespaces[{index}].path: open {}", path.display()))
}

/// Enter an existing namespace; setns checks the fd really is a namespace of that type.
pub fn join(index: usize, t: LinuxNamespaceType, path: &std::path::Path) -> Result<()> {
    let fd = open_ns(index, path)?;
    move_into_link_name_space(fd.as_fd(), Some(link_type(t)))
        .ctx(|| format!("linux.namespaces[{index}]: join {} namespace {}", ns_name(t), path.display()))
}

/// Where `enter_pid_ns_for_children` left us.
pub struct PidNsEntered {
    /// Our own pid namespace, to go back to once the child is made.
    pub own: Option<OwnedFd>,
    /// The plan's user namespace had to be joined first; we stay in it.
    pub user_joined: bool,
}

/// Make the plan's pid namespace (if it joins one) the one our next child is born into. An
/// unprivileged husk (rootless) may enter a pid namespace only from inside a user namespace
/// that owns it, since setns needs CAP_SYS_ADMIN in the caller's own user namespace too: then
/// the plan's user namespace is joined first (the init does not join it again) and kept, with
/// husk made undumpable before, so that the container's root cannot ptrace it.
pub fn enter_pid_ns_for_children(plan: &NsPlan) -> Result<PidNsEntered> {
    let Some((index, _, path)) = plan.pid_ns_path() else { return Ok(PidNsEntered { own: None, user_joined: false }) };
    let own = open_ns(*index, std::path::Path::new("/proc/self/ns/pid"))?;
    match join(*index, LinuxNamespaceType::Pid, path) {
        Ok(()) => Ok(PidNsEntered { own: Some(own), user_joined: false }),
        Err(e) if e.errno() == Some(libc::EPERM) => {
            let Some((user_index, _, user_path)) = plan.user_ns_path() else { return Err(e) };
            crate::process::setup::set_undumpable();
            join(*user_index, LinuxNamespaceType::User, user_path)?;
            join(*index, LinuxNamespaceType::Pid, path)?;
            // No way back to our pid namespace from in there (restore would be refused).
            Ok(PidNsEntered { own: None, user_joined: true })
        }
        Err(e) => Err(e),
    }
}

/// Back to our own pid namespace for later children. A husk in a user namespace that does not
/// own it (inside rootless Podman, ours is the host's) may not enter it again: that needs
/// CAP_SYS_ADMIN over its owner. Our later children (only the hooks a create runs) are then born
/// in the container's pid namespace, as they would be in crun's.
pub fn restore_pid_ns_for_children(own: OwnedFd) -> Result<()> {
    match move_into_link_name_space(own.as_fd(), Some(LinkNameSpaceType::ProcessID)) {
        Err(rustix::io::Errno::PERM) => {
            tracing::debug!("own pid namespace not re-entered (not ours to enter): later children in the container's");
            Ok(())
        }
        r => r.ctx(|| "restore pid namespace"),
    }
}

/// Time namespace offsets, written by the init after unshare(CLONE_NEWTIME).
pub fn write_time_offsets(linux: &Linux) -> Result<()> {
    let Some(offsets) = linux.time_offsets() else { return Ok(()) };
    let mut text = String::new();
    for (clock, off) in offsets {
        let name = match clock.as_str() {
            "monotonic" | "boottime" => clock.as_str(),
            other => return Err(Error::field(format!("linux.timeOffsets.{other}"), "unknown clock")),
        };
        text.push_str(&format!("{name} {} {}\n", off.secs().unwrap_or(0), off.nanosecs().unwrap_or(0)));
    }
    std::fs::write("/proc/self/timens_offsets", text).ctx(|| "linux.timeOffsets: write /proc/self/timens_offsets")
}

/// Enter the time namespace our unshare made for our children, once its offsets are written
/// (the first process in it fixes them). Without this the init stays in husk's time namespace
/// until its execve (older kernels: for good), so that another container joining
/// `/proc/<init>/ns/time` before `start` (a pod's sandbox is one) would get the host's clocks;
/// runc's init is forked after its unshare and is in the namespace from the start.
pub fn enter_time_ns_for_children() -> Result<()> {
    let fd = rustix::fs::open("/proc/self/ns/time_for_children", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .ctx(|| "linux.namespaces: open /proc/self/ns/time_for_children")?;
    move_into_link_name_space(fd.as_fd(), Some(LinkNameSpaceType::Time))
        .ctx(|| "linux.namespaces: enter the new time namespace")
}

/// A new network namespace has `lo` down; runc and crun bring it up, and so do we.
pub fn loopback_up() -> Result<()> {
    let sock = rustix::net::socket(rustix::net::AddressFamily::INET, rustix::net::SocketType::DGRAM, None)
        .ctx(|| "socket for lo")?;
    let mut req: libc::ifreq = ifreq_lo();
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write only `req`, which lives across both calls.
    let ok = unsafe {
        use std::os::fd::AsRawFd;
        libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) == 0 && {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) == 0
        }
    };
    if ok {
        Ok(())
    } else {
        Err(Error::from(std::io::Error::last_os_error()).context("bring up lo"))
    }
}

fn ifreq_lo() -> libc::ifreq {
    // SAFETY: ifreq is a plain C struct/union for which zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    req
}
