//! The five capability sets of `process.capabilities`, applied in the order that keeps them.

use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use crate::error::{Error, Result};

/// Capability names by number, as the kernel numbers them.
pub const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The highest capability the running kernel knows, asked of the kernel itself: PR_CAPBSET_READ
/// fails with EINVAL past it. Not /proc/sys/kernel/cap_last_cap: the init reads this after
/// pivot_root, where /proc is the container's and a volume over that file could make husk stop
/// dropping bounding capabilities early. The search starts at the last capability husk names,
/// the running kernel's last one almost always: two prctls instead of one per number from 63 down
/// (each init and exec'd process asks).
pub fn last_cap() -> u32 {
    // SAFETY: PR_CAPBSET_READ takes an integer and only reads our own bounding set.
    let known = |cap: u32| unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) } >= 0;
    let named = NAMES.len() as u32 - 1;
    if known(named) {
        (named + 1..64).find(|&c| !known(c)).map_or(63, |c| c - 1)
    } else {
        (0..named).rev().find(|&c| known(c)).unwrap_or(named)
    }
}

/// A set as a 64-bit mask. Names the kernel does not know are skipped (into `ignored`), as runc
/// skips them, so a config written for a newer kernel still runs.
fn mask(set: &Option<Capabilities>, last: u32, ignored: &mut std::collections::BTreeSet<String>) -> u64 {
    let mut bits = 0u64;
    for cap in set.iter().flatten() {
        let name = cap.to_string();
        let name = if name.starts_with("CAP_") { name } else { format!("CAP_{name}") };
        match NAMES.iter().position(|n| *n == name) {
            Some(n) if n as u32 <= last => bits |= 1 << n,
            _ => {
                ignored.insert(name);
            }
        }
    }
    bits
}

/// runc's one warning for the capability names it leaves out (runc main, capabilities.New):
/// those no kernel has (left out when the config is read) and those this kernel lacks.
pub fn warn_ignored(names: &std::collections::BTreeSet<String>) {
    if !names.is_empty() {
        let list: Vec<&str> = names.iter().map(String::as_str).collect();
        tracing::warn!("ignoring unknown or unavailable capabilities: [{}]", list.join(" "));
    }
}

pub struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
    pub last: u32,
}

impl CapSets {
    /// Missing `process.capabilities` means no capabilities at all, as in runc. Warns, with
    /// runc's words, about names this kernel lacks and about ambient capabilities the kernel
    /// will refuse to raise (not both permitted and inheritable).
    pub fn from_config(caps: Option<&LinuxCapabilities>) -> CapSets {
        let last = last_cap();
        let Some(c) = caps else {
            return CapSets { bounding: 0, effective: 0, permitted: 0, inheritable: 0, ambient: 0, last };
        };
        let mut ignored = std::collections::BTreeSet::new();
        let sets = CapSets {
            bounding: mask(c.bounding(), last, &mut ignored),
            effective: mask(c.effective(), last, &mut ignored),
            permitted: mask(c.permitted(), last, &mut ignored),
            inheritable: mask(c.inheritable(), last, &mut ignored),
            ambient: mask(c.ambient(), last, &mut ignored),
            last,
        };
        warn_ignored(&ignored);
        sets.warn_unraisable_ambient();
        sets
    }

    /// The kernel raises an ambient capability only if it is permitted and inheritable too;
    /// runc tries and warns per capability (`can't raise ambient capability CAP_X: operation not
    /// permitted`). Said here, before the container process closes the fds it does not pass on,
    /// since the raise itself comes after.
    fn warn_unraisable_ambient(&self) {
        let refused = self.ambient & !(self.permitted & self.inheritable);
        for cap in (0..=self.last).filter(|c| refused & (1 << c) != 0) {
            tracing::warn!(
                "can't raise ambient capability {}: {}",
                cap_name(cap),
                crate::error::errno_text(libc::EPERM)
            );
        }
    }

    /// Drop from the bounding set what the config leaves out. Needs CAP_SETPCAP, so it runs
    /// before the uid change.
    pub fn drop_bounding(&self) -> Result<()> {
        for cap in 0..=self.last {
            if self.bounding & (1 << cap) == 0 {
                prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong)
                    .map_err(|e| e.context(format!("process.capabilities.bounding: drop {}", cap_name(cap))))?;
            }
        }
        Ok(())
    }

    /// Effective, permitted and inheritable in one capset, then ambient. Inheritable is exactly
    /// the config's set (CVE-2022-29162).
    pub fn apply(&self) -> Result<()> {
        capset(self.effective, self.permitted, self.inheritable).map_err(|e| e.context("process.capabilities"))?;
        prctl4(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0)
            .map_err(|e| e.context("process.capabilities.ambient: clear"))?;
        for cap in 0..=self.last {
            if self.ambient & (1 << cap) != 0 {
                // The kernel refuses ambient caps that are not also permitted and inheritable
                // (warned about in `from_config`); runc's own default spec asks for that, and
                // runc only warns, so we go on too.
                let _ = prctl4(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong, cap as libc::c_ulong);
            }
        }
        Ok(())
    }
}

fn cap_name(cap: u32) -> &'static str {
    NAMES.get(cap as usize).copied().unwrap_or("CAP_UNKNOWN")
}

fn prctl(op: libc::c_int, arg: libc::c_ulong) -> Result<()> {
    prctl4(op, arg, 0)
}

fn prctl4(op: libc::c_int, arg2: libc::c_ulong, arg3: libc::c_ulong) -> Result<()> {
    // SAFETY: the capability prctls used here take integer arguments only.
    if unsafe { libc::prctl(op, arg2, arg3, 0 as libc::c_ulong, 0 as libc::c_ulong) } == 0 {
        Ok(())
    } else {
        Err(Error::from(std::io::Error::last_os_error()))
    }
}

fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let header = Header { version: VERSION_3, pid: 0 };
    let half = |v: u64, hi: bool| if hi { (v >> 32) as u32 } else { v as u32 };
    let data: [Data; 2] = [false, true].map(|hi| Data {
        effective: half(effective, hi),
        permitted: half(permitted, hi),
        inheritable: half(inheritable, hi),
    });
    // SAFETY: header and data are the v3 layout the kernel expects and live across the call.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) };
    if ret == 0 {
        Ok(())
    } else {
        Err(Error::from(std::io::Error::last_os_error()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_cap_is_the_kernels() {
        let kernel: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").unwrap().trim().parse().unwrap();
        assert_eq!(last_cap(), kernel);
    }

    #[test]
    fn masks_from_names() {
        let caps: LinuxCapabilities = serde_json::from_str(
            r#"{"bounding":["CAP_CHOWN","CAP_KILL"],"effective":["CAP_KILL"],"ambient":["CAP_CHECKPOINT_RESTORE"]}"#,
        )
        .unwrap();
        let sets = CapSets::from_config(Some(&caps));
        assert_eq!(sets.bounding, 1 | 1 << 5);
        assert_eq!(sets.effective, 1 << 5);
        assert_eq!(sets.inheritable, 0);
        if sets.last >= 40 {
            assert_eq!(sets.ambient, 1 << 40);
        }
    }
}
