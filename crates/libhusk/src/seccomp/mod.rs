//! `linux.seccomp`: the OCI profile compiled to a BPF program by libseccomp, cached, and loaded
//! with the raw seccomp(2) system call.
//!
//! The interface, for `create` and `exec` alike:
//!
//! 1. [`prepare`] runs in husk before the container process exists (host side, before clone or
//!    fork): it checks the profile (every error names `linux.seccomp...`), and compiles it or takes
//!    the compiled program from the [`cache`]. The result, [`Prepared`], is plain data: a BPF
//!    program and the seccomp(2) flags. `create` also writes it to the state directory
//!    ([`Prepared::save`]) and records a [`Record`] in the state, so that `exec` gets the same
//!    filter back with [`Prepared::from_state`] without re-reading config.json or libseccomp.
//! 2. [`Prepared::load`] runs in the container process: one seccomp(2) call, no allocation, no
//!    libseccomp. It returns the notify fd when the profile uses `SCMP_ACT_NOTIFY`.
//!
//! Where the process calls `load` ([`load_point`]): last, right before execve, when it will
//! still be allowed to (no_new_privs set, or CAP_SYS_ADMIN in its effective set). Otherwise,
//! like runc and crun, before the capability drop, while it still may. A profile that uses
//! `SCMP_ACT_NOTIFY` is loaded before the process tells husk it is ready, because the notify fd
//! has to travel through husk to the agent at `listenerPath` with the container's state, exactly
//! as runc sends it: husk connects to the agent ([`notify::connect_agent`]) before the process
//! exists, so a missing agent fails before anything is made, and sends on that connection
//! ([`notify::send_to_agent`]) once the fd arrives.
//!
//! `exec`, step by step: in husk, `Prepared::from_state(&state_dir.fd, state.seccomp)` (no
//! config.json, no libseccomp) and, for a notify profile, the agent connection; in the new
//! process, `load_point(&f, no_new_privs, keeps_sys_admin)` and `f.load()` at that point
//! (`BeforeExec` right before execve); when `load` returns a notify fd, it goes to husk
//! (SCM_RIGHTS on the exec's own socket), which sends it to the agent with the exec'd
//! process's pid.
//!
//! The program is libseccomp's, after a stub of husk's own that makes syscalls newer than the
//! profile fail with ENOSYS (enosys.rs, runc's "patchbpf").

pub mod cache;
mod enosys;
mod kernel;
pub mod notify;
mod profile;

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::LinuxSeccomp;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

pub use kernel::{supported_flags, KNOWN_FLAGS};
pub use profile::{libseccomp_version, ACTIONS, ARCHES, OPERATORS};

/// The compiled program in the state directory, for `exec`.
pub const STATE_FILE: &str = "seccomp.bpf";

/// A filter ready to load: the BPF program and the flags for seccomp(2).
#[derive(Debug, Clone)]
pub struct Prepared {
    program: Vec<libc::sock_filter>,
    flags: u32,
    notify: bool,
}

/// What the container's state keeps about its filter (the program itself is [`STATE_FILE`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub flags: u32,
    pub notify: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<std::path::PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_metadata: Option<String>,
}

/// When the process must load its filter; see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadPoint {
    /// Before the capability drop: without no_new_privs, loading needs CAP_SYS_ADMIN.
    BeforeCapDrop,
    /// After the rest of the setup, before reporting ready: the notify fd must reach husk.
    BeforeReady,
    /// Right before execve.
    BeforeExec,
}

/// Where a process with this profile loads it: `no_new_privs` is `process.noNewPrivileges`,
/// `keeps_sys_admin` whether CAP_SYS_ADMIN is in its final effective set.
pub fn load_point(prepared: &Prepared, no_new_privs: bool, keeps_sys_admin: bool) -> LoadPoint {
    if !no_new_privs && !keeps_sys_admin {
        LoadPoint::BeforeCapDrop
    } else if prepared.notify {
        LoadPoint::BeforeReady
    } else {
        LoadPoint::BeforeExec
    }
}

/// Check and compile `seccomp`, through the cache in `cache_dir` when there is one.
/// A filter that did not load (here, or in the exec trampoline: `Msg::SeccompFailed`).
pub fn load_error(errno: i32) -> Error {
    Error::os("linux.seccomp: load the filter", errno)
}

pub fn prepare(seccomp: &LinuxSeccomp, cache_dir: Option<&Path>) -> Result<Prepared> {
    let checked = profile::check(seccomp)?;
    let flags = kernel::flags(seccomp, checked.notify)?;
    // runc's wording, which its tests (and so callers' checks) look for in the debug log.
    tracing::debug!("seccomp filter flags: {flags}");
    let key = cache::key(seccomp)?;
    let cache = cache_dir.map(cache::Cache::new);
    if let Some(program) = cache.as_ref().and_then(|c| c.get(&key)) {
        return Ok(Prepared { program, flags, notify: checked.notify });
    }
    let mut program = enosys::stub(seccomp);
    program.extend(compile_bounded(seccomp)?);
    if program.len() > libc::BPF_MAXINSNS as usize {
        return Err(Error::field(
            "linux.seccomp",
            format!(
                "the compiled filter has {} BPF instructions, more than the {} the kernel loads",
                program.len(),
                libc::BPF_MAXINSNS
            ),
        ));
    }
    let bytes = kernel::program_to_bytes(&program);
    if let Some(c) = &cache {
        // A cache that cannot be written only costs speed.
        if let Err(e) = c.put(&key, &bytes) {
            tracing::debug!("seccomp cache: {e}");
        }
    }
    Ok(Prepared { program, flags, notify: checked.notify })
}

/// How long libseccomp may take to compile a profile. Its time grows much faster than the
/// rules: measured here, 1024 one-condition rules 0.08 s, 1024 two-condition 64-bit ones
/// 0.8 s, but 170 rules of six SCMP_CMP_NE conditions 6 s and 341 of them 66 s, all within
/// [`profile::MAX_RULES`]. Docker's default profile takes about 30 ms, so this leaves it room
/// on a loaded machine while no profile can keep `create` busy for minutes.
pub const COMPILE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// [`profile::compile`] on a thread of its own, waited for at most [`COMPILE_TIMEOUT`]. Past
/// that, `create` fails and the thread is left to die with the process (nothing exists yet to
/// clean up). Otherwise it is joined, so husk is single-threaded again before it clones.
fn compile_bounded(seccomp: &LinuxSeccomp) -> Result<Vec<libc::sock_filter>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let profile = seccomp.clone();
    let spawned = std::thread::Builder::new().name("seccomp".into()).spawn(move || {
        let _ = tx.send(profile::compile(&profile));
    });
    let Ok(thread) = spawned else {
        // No thread to be had (a pids limit): compile here, unbounded but working.
        return profile::compile(seccomp);
    };
    match rx.recv_timeout(COMPILE_TIMEOUT) {
        Ok(result) => {
            let _ = thread.join();
            result
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err(Error::field("linux.seccomp", "the compiling thread ended without a result"))
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(Error::field(
            "linux.seccomp",
            format!(
                "libseccomp did not compile the profile within {}s (its conditions are too many or too \
                 intricate for one filter)",
                COMPILE_TIMEOUT.as_secs()
            ),
        )),
    }
}

impl Prepared {
    /// Whether the profile uses `SCMP_ACT_NOTIFY` (then `load` returns the notify fd).
    pub fn uses_notify(&self) -> bool {
        self.notify
    }

    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.program.len()
    }

    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }

    /// Install the filter on the calling thread (and, with TSYNC, its siblings).
    /// The program in a memfd (offset 0, close-on-exec), for the exec trampoline to load right
    /// before its execve (see trampoline.rs, `s`), and the seccomp(2) flags. Never for a filter
    /// with a notify listener, whose fd husk must pass on.
    pub fn handoff(&self) -> Result<(OwnedFd, u32)> {
        let fd = rustix::fs::memfd_create("husk-seccomp", rustix::fs::MemfdFlags::CLOEXEC)
            .ctx(|| "linux.seccomp: memfd for the filter")?;
        let bytes = kernel::program_to_bytes(&self.program);
        let mut at = 0;
        while at < bytes.len() {
            at += rustix::io::pwrite(&fd, &bytes[at..], at as u64).ctx(|| "linux.seccomp: write the filter")?;
        }
        Ok((fd, self.flags))
    }

    pub fn load(&self) -> Result<Option<OwnedFd>> {
        kernel::load(&self.program, self.flags).map_err(|e| load_error(e.raw_os_error()))
    }

    /// Write the program to `<state dir>/seccomp.bpf` for `exec`, and say what the state keeps.
    pub fn save(&self, dir: impl AsFd, seccomp: &LinuxSeccomp) -> Result<Record> {
        let bytes = kernel::program_to_bytes(&self.program);
        let file = rustix::fs::openat(
            dir,
            STATE_FILE,
            rustix::fs::OFlags::CREATE
                | rustix::fs::OFlags::EXCL
                | rustix::fs::OFlags::WRONLY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .ctx(|| format!("create {STATE_FILE}"))?;
        std::io::Write::write_all(&mut std::fs::File::from(file), &bytes).ctx(|| format!("write {STATE_FILE}"))?;
        Ok(Record {
            flags: self.flags,
            notify: self.notify,
            listener_path: seccomp.listener_path().clone(),
            listener_metadata: seccomp.listener_metadata().clone(),
        })
    }

    /// The filter a container's `create` saved, for a process joining it.
    pub fn from_state(dir: impl AsFd, record: &Record) -> Result<Prepared> {
        let file = rustix::fs::openat(
            dir,
            STATE_FILE,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .ctx(|| format!("open {STATE_FILE}"))?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::fs::File::from(file), &mut bytes).ctx(|| format!("read {STATE_FILE}"))?;
        let program = kernel::program_from_bytes(&bytes).ok_or_else(|| Error::msg(format!("{STATE_FILE}: corrupt")))?;
        Ok(Prepared { program, flags: record.flags, notify: record.notify })
    }
}
