//! `process.rlimits`, set in the init before it drops privileges (raising a hard limit needs them).

use oci_spec::runtime::PosixRlimit;

use crate::error::{Error, Result};

fn resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    Some(match name {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        _ => return None,
    })
}

pub fn apply(rlimits: &[PosixRlimit]) -> Result<()> {
    for (i, rl) in rlimits.iter().enumerate() {
        let field = format!("process.rlimits[{i}]");
        let name = serde_json::to_value(rl.typ()).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let res = resource(&name).ok_or_else(|| Error::field(&field, format!("unknown rlimit type {name:?}")))?;
        if rl.soft() > rl.hard() {
            return Err(Error::field(&field, format!("soft limit {} is above hard limit {}", rl.soft(), rl.hard())));
        }
        let lim = libc::rlimit64 { rlim_cur: rl.soft(), rlim_max: rl.hard() };
        // SAFETY: prlimit64 on ourselves (pid 0) reads `lim` and writes nothing (old = NULL).
        if unsafe { libc::prlimit64(0, res, &lim, std::ptr::null_mut()) } != 0 {
            let e = Error::from(std::io::Error::last_os_error());
            return Err(e.context(format!("{field}: set {name} to soft {} hard {}", rl.soft(), rl.hard())));
        }
    }
    Ok(())
}
