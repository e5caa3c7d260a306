//! pause/resume: the v1 freezer controller where it is bound, else cgroup v2's `cgroup.freeze`.
//!
//! v2 reports the end of freezing in `cgroup.events` ("frozen 1"), which we wait for with poll
//! (kernfs wakes POLLPRI on every change). v1 has no notification: FREEZING turns into FROZEN
//! when the last task stops, so that is re-read with a short, bounded back-off, as runc does.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use super::resources::write;
use super::Cgroup;
use crate::error::{Context, Error, Result};

const LIMIT: Duration = Duration::from_secs(10);

enum Freezer {
    V1(PathBuf),
    V2(PathBuf),
}

impl Cgroup {
    fn freezer(&self) -> Option<Freezer> {
        if let Some(p) = self.placements.iter().find(|p| !p.v2 && p.has("freezer")) {
            return Some(Freezer::V1(p.dir.clone()));
        }
        self.placements.iter().find(|p| p.v2).map(|p| Freezer::V2(p.dir.clone()))
    }

    /// Is the container frozen (paused)? Read on every `state`: one small file.
    pub fn is_frozen(&self) -> bool {
        let read = |p: &Path| crate::smallfile::read_string(p, 16).map(|s| s.trim().to_owned()).unwrap_or_default();
        match self.freezer() {
            Some(Freezer::V1(d)) => read(&d.join("freezer.state")) == "FROZEN",
            Some(Freezer::V2(d)) => read(&d.join("cgroup.freeze")) == "1",
            None => false,
        }
    }

    pub fn freeze(&self) -> Result<()> {
        match self.freezer() {
            Some(Freezer::V1(d)) => v1_set(&d, "FROZEN"),
            Some(Freezer::V2(d)) => v2_set(&d, true),
            None => Err(Error::msg("cgroups: no freezer: neither the v1 freezer nor cgroup v2 is mounted")),
        }
    }

    /// A cgroup removed meanwhile is thawed: nothing in it is frozen any more. systemd removes a
    /// scope's cgroup as soon as its last process is gone, which races the thaw that follows
    /// `kill --all KILL` (in v2 a frozen task dies of SIGKILL).
    pub fn thaw(&self) -> Result<()> {
        let (thawed, dir) = match self.freezer() {
            Some(Freezer::V1(d)) => (v1_set(&d, "THAWED"), d),
            Some(Freezer::V2(d)) => (v2_set(&d, false), d),
            None => return Err(Error::msg("cgroups: no freezer: neither the v1 freezer nor cgroup v2 is mounted")),
        };
        match thawed {
            Err(_) if !dir.exists() => Ok(()),
            thawed => thawed,
        }
    }
}

fn v1_set(dir: &Path, want: &str) -> Result<()> {
    let file = dir.join("freezer.state");
    let deadline = Instant::now() + LIMIT;
    let mut pause = Duration::from_micros(50);
    loop {
        write(dir, "freezer.state", want, "cgroup freezer")?;
        let now = std::fs::read_to_string(&file).ctx(|| format!("read {}", file.display()))?;
        if now.trim() == want {
            return Ok(());
        }
        if Instant::now() >= deadline {
            // Leave nothing half-frozen behind.
            let _ = write(dir, "freezer.state", "THAWED", "cgroup freezer");
            return Err(Error::msg(format!("{}: still {} after {} s", file.display(), now.trim(), LIMIT.as_secs())));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

fn v2_set(dir: &Path, frozen: bool) -> Result<()> {
    write(dir, "cgroup.freeze", if frozen { "1" } else { "0" }, "cgroup.freeze")?;
    let path = dir.join("cgroup.events");
    let mut f = std::fs::File::open(&path).ctx(|| format!("open {}", path.display()))?;
    let want = if frozen { "frozen 1" } else { "frozen 0" };
    let deadline = Instant::now() + LIMIT;
    loop {
        let mut buf = String::new();
        f.seek(std::io::SeekFrom::Start(0)).ctx(|| format!("read {}", path.display()))?;
        f.read_to_string(&mut buf).ctx(|| format!("read {}", path.display()))?;
        if buf.lines().any(|l| l.trim() == want) {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::msg(format!("{}: not {want} after {} s", path.display(), LIMIT.as_secs())));
        }
        let mut fds = [PollFd::new(&f, PollFlags::PRI | PollFlags::ERR)];
        let ts = Timespec { tv_sec: left.as_secs() as i64, tv_nsec: left.subsec_nanos() as i64 };
        match poll(&mut fds, Some(&ts)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::os(format!("poll {}", path.display()), e.raw_os_error())),
        }
    }
}
