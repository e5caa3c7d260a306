//! Scheduling and placement of the container process: `process.scheduler`, `process.ioPriority`,
//! `linux.personality`, `linux.memoryPolicy`. Applied in the init while it still has the
//! capabilities that real-time policies need.

use oci_spec::runtime::{LinuxIOPriority, LinuxMemoryPolicy, LinuxPersonality, LinuxPersonalityDomain, Scheduler};
use serde::Serialize;

use crate::error::{Error, Result};

/// The config's spelling of an enum value (e.g. `SCHED_FIFO`), which is what we match on.
fn name_of(v: &impl Serialize) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn last_os_error(field: &str, what: &str) -> Error {
    Error::from(std::io::Error::last_os_error()).context(format!("{field}: {what}"))
}

/// `cpuset`: the container's cgroup restricts its CPUs (see `setup::Placement`).
pub fn apply_scheduler(s: &Scheduler, cpuset: bool) -> Result<()> {
    const FIELD: &str = "process.scheduler";
    let policy = name_of(&s.policy());
    let policy_num: u32 = match policy.as_str() {
        "SCHED_OTHER" => 0,
        "SCHED_FIFO" => 1,
        "SCHED_RR" => 2,
        "SCHED_BATCH" => 3,
        "SCHED_ISO" => 4,
        "SCHED_IDLE" => 5,
        "SCHED_DEADLINE" => 6,
        other => return Err(Error::field(format!("{FIELD}.policy"), format!("unknown policy {other:?}"))),
    };
    let mut flags = 0u64;
    for (i, f) in s.flags().iter().flatten().enumerate() {
        flags |= match name_of(f).as_str() {
            "SCHED_FLAG_RESET_ON_FORK" => 0x01,
            "SCHED_FLAG_RECLAIM" => 0x02,
            "SCHED_FLAG_DL_OVERRUN" => 0x04,
            "SCHED_FLAG_KEEP_POLICY" => 0x08,
            "SCHED_FLAG_KEEP_PARAMS" => 0x10,
            "SCHED_FLAG_UTIL_CLAMP_MIN" => 0x20,
            "SCHED_FLAG_UTIL_CLAMP_MAX" => 0x40,
            other => return Err(Error::field(format!("{FIELD}.flags[{i}]"), format!("unknown flag {other:?}"))),
        };
    }
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: policy_num,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0).max(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    };
    // SAFETY: sched_setattr(0, attr, 0) on ourselves reads `attr`, whose size field is correct
    // (SCHED_ATTR_SIZE_VER0).
    if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) } != 0 {
        let err = last_os_error(FIELD, &format!("sched_setattr {policy}"));
        if err.errno() == Some(libc::EPERM) && cpuset {
            // runc's words (its AllowedCPUs is linux.resources.cpu.cpus).
            return Err(Error::field(
                FIELD,
                "process scheduler can't be used together with AllowedCPUs (linux.resources.cpu.cpus)",
            ));
        }
        return Err(err);
    }
    Ok(())
}

pub fn apply_io_priority(p: &LinuxIOPriority) -> Result<()> {
    const FIELD: &str = "process.ioPriority";
    let class: i64 = match name_of(&p.class()).as_str() {
        "IOPRIO_CLASS_RT" => 1,
        "IOPRIO_CLASS_BE" => 2,
        "IOPRIO_CLASS_IDLE" => 3,
        other => return Err(Error::field(format!("{FIELD}.class"), format!("unknown class {other:?}"))),
    };
    if !(0..=7).contains(&p.priority()) {
        return Err(Error::field(format!("{FIELD}.priority"), format!("{} is not within 0..7", p.priority())));
    }
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    let value = (class << 13) | p.priority();
    // SAFETY: ioprio_set takes integers only.
    if unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) } != 0 {
        return Err(last_os_error(FIELD, "ioprio_set"));
    }
    Ok(())
}

pub fn apply_personality(p: &LinuxPersonality) -> Result<()> {
    const FIELD: &str = "linux.personality";
    if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        // The spec defines no flag values yet.
        return Err(Error::field(format!("{FIELD}.flags"), "no personality flags are supported"));
    }
    let persona: libc::c_ulong = match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    };
    // SAFETY: personality takes an integer.
    if unsafe { libc::personality(persona) } == -1 {
        return Err(last_os_error(FIELD, "personality"));
    }
    Ok(())
}

/// `0-3,7` → the set bits, as the kernel's list format.
pub fn parse_list(field: &str, text: &str) -> Result<Vec<u32>> {
    let bad = || Error::field(field, format!("invalid list {text:?} (e.g. \"0-3,7\")"));
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u32>().map_err(|_| bad())?, b.trim().parse::<u32>().map_err(|_| bad())?),
            None => {
                let n = part.parse::<u32>().map_err(|_| bad())?;
                (n, n)
            }
        };
        if lo > hi || hi >= 4096 {
            return Err(bad());
        }
        out.extend(lo..=hi);
    }
    Ok(out)
}

/// `process.execCPUAffinity` (`initial` in husk before the clone, `final` in the exec'd process
/// once it is in the container's cgroup): a CPU list such as `0-3,7`.
pub fn set_affinity(field: &str, cpus: &str) -> Result<()> {
    let list = parse_list(field, cpus)?;
    if list.is_empty() {
        return Ok(());
    }
    // SAFETY: cpu_set_t is a plain bit array; CPU_ZERO/CPU_SET write within it (parse_list
    // bounds the CPU numbers below 4096, CPU_SET ignores those beyond CPU_SETSIZE).
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        for cpu in list {
            libc::CPU_SET(cpu as usize, &mut set);
        }
        set
    };
    // SAFETY: sched_setaffinity(0, ...) on ourselves reads `set`, whose size we pass.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(last_os_error(field, &format!("sched_setaffinity {cpus}")));
    }
    Ok(())
}

/// Every CPU there may be, as runc's tryResetCPUAffinity: the kernel narrows the mask to the
/// CPUs that exist and to the cgroup's cpuset, and lets the process onto CPUs added to the
/// cpuset later. What the caller had (`taskset` around husk, a pinned manager) is not the
/// container's. A failure is only worth a warning, as in runc.
pub fn reset_affinity() {
    // 8192 CPUs; the kernel ignores the bits past its own nr_cpu_ids.
    let mask = [u64::MAX; 128];
    // SAFETY: sched_setaffinity(0, len, mask) reads `len` bytes of `mask`, which lives across it.
    let r = unsafe { libc::syscall(libc::SYS_sched_setaffinity, 0, std::mem::size_of_val(&mask), mask.as_ptr()) };
    if r != 0 {
        tracing::warn!("reset the CPU affinity: {}", std::io::Error::last_os_error());
    }
}

/// `linux.memoryPolicy.mode` values and their set_mempolicy(2) numbers, sorted by name (as
/// `features` lists them, like runc).
pub const MEMORY_POLICY_MODES: [(&str, i32); 7] = [
    ("MPOL_BIND", 2),
    ("MPOL_DEFAULT", 0),
    ("MPOL_INTERLEAVE", 3),
    ("MPOL_LOCAL", 4),
    ("MPOL_PREFERRED", 1),
    ("MPOL_PREFERRED_MANY", 5),
    ("MPOL_WEIGHTED_INTERLEAVE", 6),
];

/// `linux.memoryPolicy.flags` values and their mode bits, sorted by name.
pub const MEMORY_POLICY_FLAGS: [(&str, i32); 3] =
    [("MPOL_F_NUMA_BALANCING", 1 << 13), ("MPOL_F_RELATIVE_NODES", 1 << 14), ("MPOL_F_STATIC_NODES", 1 << 15)];

fn lookup(table: &[(&str, i32)], name: &str) -> Option<i32> {
    table.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

pub fn apply_memory_policy(m: &LinuxMemoryPolicy) -> Result<()> {
    const FIELD: &str = "linux.memoryPolicy";
    let mode = name_of(&m.mode());
    let mode = lookup(&MEMORY_POLICY_MODES, &mode)
        .ok_or_else(|| Error::field(format!("{FIELD}.mode"), format!("unknown mode {mode:?}")))?;
    let mut flags = 0i32;
    for (i, f) in m.flags().iter().flatten().enumerate() {
        let name = name_of(f);
        flags |= lookup(&MEMORY_POLICY_FLAGS, &name)
            .ok_or_else(|| Error::field(format!("{FIELD}.flags[{i}]"), format!("unknown flag {name:?}")))?;
    }
    let nodes = parse_list(&format!("{FIELD}.nodes"), m.nodes().as_deref().unwrap_or(""))?;
    let mut mask = vec![0u64; nodes.iter().max().map_or(0, |n| *n as usize / 64 + 1)];
    for n in &nodes {
        mask[*n as usize / 64] |= 1 << (n % 64);
    }
    let (ptr, maxnode) = if mask.is_empty() { (std::ptr::null(), 0) } else { (mask.as_ptr(), mask.len() * 64 + 1) };
    // SAFETY: the mask pointer is NULL or points at `maxnode - 1` bits of a live Vec.
    if unsafe { libc::syscall(libc::SYS_set_mempolicy, mode | flags, ptr, maxnode) } != 0 {
        return Err(last_os_error(FIELD, "set_mempolicy"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_policy_names_are_the_specs() {
        use oci_spec::runtime::{MemoryPolicyFlagType, MemoryPolicyModeType};
        for (name, _) in MEMORY_POLICY_MODES {
            let m: MemoryPolicyModeType = serde_json::from_value(serde_json::json!(name)).unwrap();
            assert_eq!(name_of(&m), name);
        }
        for (name, _) in MEMORY_POLICY_FLAGS {
            let f: MemoryPolicyFlagType = serde_json::from_value(serde_json::json!(name)).unwrap();
            assert_eq!(name_of(&f), name);
        }
        assert!(MEMORY_POLICY_MODES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(MEMORY_POLICY_FLAGS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn cpu_and_node_lists() {
        assert_eq!(parse_list("f", "0-3,7").unwrap(), vec![0, 1, 2, 3, 7]);
        assert_eq!(parse_list("f", "").unwrap(), Vec::<u32>::new());
        assert!(parse_list("f", "3-1").unwrap_err().to_string().starts_with("f: invalid list"));
        assert!(parse_list("f", "x").is_err());
    }
}
