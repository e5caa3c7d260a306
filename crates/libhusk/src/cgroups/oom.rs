//! OOM notifications for `events`, from the kernel rather than by polling: on v1 an eventfd
//! registered for `memory.oom_control` through `cgroup.event_control`, on v2 inotify on
//! `memory.events` (its `oom_kill` count is what changed).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use rustix::event::{eventfd, EventfdFlags};
use rustix::fs::inotify;

use super::resources::write;
use super::Cgroup;
use crate::error::{Context, Error, Result};

pub struct OomWatch {
    fd: OwnedFd,
    kind: Kind,
}

enum Kind {
    /// The registration lasts as long as the oom_control fd is open.
    V1 {
        _control: std::fs::File,
        dir: PathBuf,
    },
    V2 {
        events: PathBuf,
        last: u64,
    },
}

fn v2_count(events: &std::path::Path) -> u64 {
    let text = std::fs::read_to_string(events).unwrap_or_default();
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0u64)
    };
    get("oom_kill").max(get("oom"))
}

impl Cgroup {
    /// A watch on the container's memory cgroup, or None when no memory controller holds it.
    pub fn oom_watch(&self) -> Result<Option<OomWatch>> {
        if let Some(p) = self.placements.iter().find(|p| !p.v2 && p.has("memory")) {
            let control_path = p.dir.join("memory.oom_control");
            let control = std::fs::File::open(&control_path).ctx(|| format!("open {}", control_path.display()))?;
            let fd = eventfd(0, EventfdFlags::CLOEXEC).ctx(|| "eventfd")?;
            let line = format!("{} {}", fd.as_raw_fd(), control.as_raw_fd());
            write(&p.dir, "cgroup.event_control", &line, "events")?;
            return Ok(Some(OomWatch { fd, kind: Kind::V1 { _control: control, dir: p.dir.clone() } }));
        }
        if let Some(p) = self.placements.iter().find(|p| p.v2) {
            let events = p.dir.join("memory.events");
            if !events.exists() {
                return Ok(None);
            }
            let fd = inotify::init(inotify::CreateFlags::CLOEXEC).ctx(|| "inotify_init")?;
            inotify::add_watch(&fd, &events, inotify::WatchFlags::MODIFY)
                .ctx(|| format!("inotify {}", events.display()))?;
            let last = v2_count(&events);
            return Ok(Some(OomWatch { fd, kind: Kind::V2 { events, last } }));
        }
        Ok(None)
    }
}

impl OomWatch {
    /// Readable when something happened; then call [`OomWatch::take`].
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// How many OOM events happened since the last call (0 when the wake-up was something
    /// else, e.g. the cgroup going away).
    pub fn take(&mut self) -> Result<u64> {
        let mut buf = [0u8; 4096];
        let n = rustix::io::read(&self.fd, &mut buf).map_err(|e| Error::from(e).context("read OOM notification"))?;
        match &mut self.kind {
            Kind::V1 { dir, .. } => {
                // The kernel also signals the eventfd when the cgroup is removed.
                if !dir.exists() || n < 8 {
                    return Ok(0);
                }
                Ok(u64::from_ne_bytes(buf[..8].try_into().unwrap_or([0; 8])))
            }
            Kind::V2 { events, last } => {
                let now = v2_count(events);
                let new = now.saturating_sub(*last);
                *last = now;
                Ok(new)
            }
        }
    }

    /// True when the cgroup being watched is gone.
    pub fn gone(&self) -> bool {
        match &self.kind {
            Kind::V1 { dir, .. } => !dir.exists(),
            Kind::V2 { events, .. } => !events.exists(),
        }
    }
}
