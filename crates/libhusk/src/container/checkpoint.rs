//! `checkpoint`: CRIU dumps the running container into an image directory, then (unless told
//! to leave it running, or for a pre-dump) the container is gone and its state removed, as with
//! runc. A failed dump leaves it running: CRIU resumes the tasks it had frozen.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use crate::cgroups::{self, Cgroup};
use crate::config::Bundle;
use crate::criu::rpc::{CgMode, Features, Opts, PageServerInfo, Req, ReqType};
use crate::criu::{self, externals, swrk::Swrk, Criu};
use crate::error::{Context, Error, Result};
use crate::namespaces::NsPlan;
use crate::state::{StateDir, Status};

/// runc's name for the stdio of the init, recorded so a restore can hand in new pipes.
pub const DESCRIPTORS: &str = "descriptors.json";

#[derive(Debug, Default, Clone)]
pub struct CheckpointOptions {
    pub root: PathBuf,
    pub id: String,
    /// `--criu PATH`; `criu` from $PATH without it.
    pub criu: Option<PathBuf>,
    pub image_path: PathBuf,
    pub work_path: Option<PathBuf>,
    /// `--parent-path`, relative to the image path: the pre-dump this dump builds on.
    pub parent_path: Option<PathBuf>,
    pub leave_running: bool,
    pub tcp_established: bool,
    pub tcp_skip_in_flight: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub pre_dump: bool,
    pub auto_dedup: bool,
    pub link_remap: bool,
    pub lazy_pages: bool,
    pub status_fd: Option<i32>,
    pub page_server: Option<(String, i32)>,
    pub manage_cgroups_mode: Option<CgMode>,
    /// CLONE_NEW* bits of namespaces CRIU creates on restore but does not fill (`--empty-ns`).
    pub empty_ns: u32,
}

pub fn checkpoint(opts: &CheckpointOptions) -> Result<()> {
    let dir = StateDir::open(&opts.root, &opts.id)?;
    dir.lock()?;
    let state = dir.load()?;
    match state.status(&dir) {
        Status::Running | Status::Paused => {}
        other => return Err(Error::msg(format!("cannot checkpoint a container in the {} state", other.as_str()))),
    }
    // As runc: the image directory made, the parent checked against it, before CRIU is asked
    // anything. A refused parent leaves no image directory that was not there.
    let made = !opts.image_path.exists();
    let images = make_dir(&opts.image_path, "--image-path")?;
    if let Some(parent) = &opts.parent_path {
        if let Err(e) = check_parent(&opts.image_path, parent) {
            if made {
                let _ = std::fs::remove_dir(&opts.image_path);
            }
            return Err(e);
        }
    }
    let criu = Criu::probe(opts.criu.as_deref())?;
    if cgroups::current_mode()? == cgroups::Mode::V2 {
        criu.require(criu::V2_VERSION, "checkpoint on a cgroup v2 host")?;
    }
    let bundle = Bundle::load(&state.bundle).map_err(|e| e.context("checkpoint: the container's bundle"))?;
    let plan = NsPlan::from_config(bundle.spec.linux().as_ref())?;
    if plan.pid_ns_path().is_some() {
        criu.require(criu::EXT_PID_NS_VERSION, "checkpoint of a container in a joined pid namespace")?;
    }
    if opts.status_fd.is_some() && !opts.lazy_pages {
        return Err(Error::msg("--status-fd is only used with --lazy-pages"));
    }
    if opts.pre_dump {
        feature_check(&criu, Features { mem_track: Some(true), ..Default::default() }, "--pre-dump (memory tracking)")?;
    }
    if opts.lazy_pages {
        feature_check(&criu, Features { lazy_pages: Some(true), ..Default::default() }, "--lazy-pages")?;
    }

    let work = opts.work_path.as_deref().map(|p| make_dir(p, "--work-path")).transpose()?;
    let log_dir = opts.work_path.as_deref().unwrap_or(&opts.image_path);
    let log = absolute(log_dir).join("dump.log");

    let mut o = base_opts(opts, &images, work.as_ref());
    o.config_file = criu::config_file(state.annotations.get(criu::CONFIG_ANNOTATION).map(String::as_str));
    o.pid = Some(state.init.pid);
    o.root = Some(state.rootfs.to_string_lossy().into_owned());
    o.external = externals::dump_external_ns(&plan)?;
    o.freeze_cgroup = freezer(&state.cgroup);
    if !opts.pre_dump {
        let ext = externals::mounts(&bundle.spec, &bundle.dir, &bundle.rootfs, &plan, &state.cgroup)?;
        o.ext_mnt = externals::dump_map(&ext);
        record_stdio(state.init.pid, &opts.image_path)?;
    }
    let kind = if opts.pre_dump { ReqType::PreDump } else { ReqType::Dump };
    let req = Req { r#type: kind as i32, opts: Some(o), ..Default::default() };
    let (swrk, _) = Swrk::spawn(&criu.path, &[])?;
    let status_fd = opts.status_fd;
    swrk.call(&req, &mut |n| {
        if n.script == "status-ready" {
            if let Some(fd) = status_fd {
                lazy_pages_ready(fd);
            }
        }
        Ok(())
    })
    .map_err(|e| criu::with_log(e.context(format!("checkpoint {}", opts.id)), &log))?;

    if opts.leave_running || opts.pre_dump {
        return Ok(());
    }
    // CRIU killed the container's processes after dumping them: what is left is husk's.
    let status = state.status(&dir);
    super::delete::destroy(dir, &state, status)
}

/// Request options common to every dump.
fn base_opts(opts: &CheckpointOptions, images: &OwnedFd, work: Option<&OwnedFd>) -> Opts {
    use std::os::fd::AsRawFd;
    Opts {
        // CRIU opens these through /proc/<our pid>/fd: they need not be inherited.
        images_dir_fd: images.as_raw_fd(),
        work_dir_fd: work.map(|w| w.as_raw_fd()),
        log_level: Some(4),
        log_file: Some("dump.log".into()),
        manage_cgroups: Some(true),
        manage_cgroups_mode: Some(opts.manage_cgroups_mode.unwrap_or(CgMode::Default) as i32),
        notify_scripts: Some(true),
        shell_job: Some(opts.shell_job),
        leave_running: Some(opts.leave_running),
        tcp_established: Some(opts.tcp_established),
        tcp_skip_in_flight: Some(opts.tcp_skip_in_flight),
        link_remap: Some(opts.link_remap),
        ext_unix_sk: Some(opts.ext_unix_sk),
        file_locks: Some(opts.file_locks),
        empty_ns: Some(opts.empty_ns),
        orphan_pts_master: Some(true),
        auto_dedup: Some(opts.auto_dedup),
        lazy_pages: Some(opts.lazy_pages),
        parent_img: opts.parent_path.as_ref().map(|p| p.to_string_lossy().into_owned()),
        track_mem: (opts.pre_dump || opts.parent_path.is_some()).then_some(true),
        ps: opts.page_server.as_ref().map(|(address, port)| PageServerInfo {
            address: Some(address.clone()),
            port: Some(*port),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Ask CRIU (and the kernel under it) for a feature; name the flag that needs it when missing.
fn feature_check(criu: &Criu, want: Features, flag: &str) -> Result<()> {
    let req = Req { r#type: ReqType::FeatureCheck as i32, features: Some(want.clone()), ..Default::default() };
    let (swrk, _) = Swrk::spawn(&criu.path, &[])?;
    let resp = swrk.call(&req, &mut |_| Ok(())).map_err(|e| e.context(format!("{flag}: CRIU feature check")))?;
    let got = resp.features.unwrap_or_default();
    let missing = (want.mem_track == Some(true) && got.mem_track != Some(true))
        || (want.lazy_pages == Some(true) && got.lazy_pages != Some(true));
    if missing {
        return Err(Error::msg(format!(
            "{flag}: not supported by CRIU {} on this kernel (criu check --feature mem_dirty_track / uffd)",
            criu::show_version(criu.version)
        )));
    }
    Ok(())
}

/// The cgroup CRIU freezes the container with (consistent dumps of many processes): the v2
/// directory, or the v1 freezer's.
fn freezer(cg: &Cgroup) -> Option<String> {
    let p = cg
        .placements
        .iter()
        .find(|p| p.v2 && cg.placements.len() == 1)
        .or_else(|| cg.placements.iter().find(|p| !p.v2 && p.controllers.iter().any(|c| c == "freezer")))?;
    Some(p.dir.to_string_lossy().into_owned())
}

/// What the init's fds 0-2 were (`pipe:[123]`, `/dev/null`, ...), in runc's descriptors.json.
fn record_stdio(pid: i32, images: &Path) -> Result<()> {
    let fds: Vec<String> = (0..3)
        .map(|i| {
            std::fs::read_link(format!("/proc/{pid}/fd/{i}"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    let json = serde_json::to_vec(&fds).unwrap_or_default();
    crate::state::write_durable(&images.join(DESCRIPTORS), &json)
}

/// CRIU's page server is up: whoever waits on --status-fd may start the lazy restore.
fn lazy_pages_ready(fd: i32) {
    // SAFETY: the caller handed us this fd number for exactly this one write; we only borrow it.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    if let Err(e) = rustix::io::write(fd, &[0]) {
        tracing::warn!("--status-fd: write: {e}");
    }
}

fn make_dir(path: &Path, flag: &str) -> Result<OwnedFd> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path).ctx(|| format!("{flag} {}", path.display()))?;
    rustix::fs::open(path, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .ctx(|| format!("{flag} {}", path.display()))
}

/// `--parent-path` is relative to the image path (CRIU resolves it there, through a `parent`
/// symlink it makes in the image directory) and must be a directory, as in runc. Beyond runc:
/// it must stay beside the image directory, in the directory that holds it (`../pre-dump`, what
/// Podman passes and runc documents) or below: CRIU reads the pre-dump's images there and, with
/// `--auto-dedup`, punches holes in their page files, so `../../..` must not reach the host's `/`;
/// nor may the image directory be its own parent (`.`) or that of its siblings (`..`).
fn check_parent(images: &Path, parent: &Path) -> Result<()> {
    if parent.is_absolute() {
        return Err(Error::msg(format!("--parent-path {}: must be relative to --image-path", parent.display())));
    }
    let real = images.join(parent);
    match std::fs::metadata(&real) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(Error::os(format!("--parent-path {}", real.display()), libc::ENOTDIR)),
        Err(e) => return Err(Error::from(e).context(format!("--parent-path {}", real.display()))),
    }
    let canonical = |p: &Path| std::fs::canonicalize(p).ctx(|| format!("--parent-path {}", p.display()));
    let (home, own, target) = (canonical(&images.join(".."))?, canonical(images)?, canonical(&real)?);
    if !target.starts_with(&home) || target == home || target == own {
        return Err(Error::msg(format!(
            "--parent-path {}: resolves to {}, which is not beside the image directory in {}",
            parent.display(),
            target.display(),
            home.display()
        )));
    }
    Ok(())
}

pub(crate) fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// `--manage-cgroups-mode`: soft, full, strict or ignore (runc's words).
pub fn parse_cg_mode(text: &str) -> Result<CgMode> {
    match text {
        "soft" => Ok(CgMode::Soft),
        "full" => Ok(CgMode::Full),
        "strict" => Ok(CgMode::Strict),
        "ignore" => Ok(CgMode::Ignore),
        other => Err(Error::msg(format!("--manage-cgroups-mode {other:?}: invalid (soft, full, strict or ignore)"))),
    }
}

/// `--empty-ns network`: the only namespace runc lets CRIU leave empty.
pub fn parse_empty_ns(names: &[String]) -> Result<u32> {
    let mut mask = 0u32;
    for n in names.iter().flat_map(|n| n.split(',')).filter(|n| !n.is_empty()) {
        match n {
            "network" => mask |= libc::CLONE_NEWNET as u32,
            other => return Err(Error::msg(format!("--empty-ns {other:?}: not supported (only \"network\")"))),
        }
    }
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_values() {
        assert_eq!(parse_cg_mode("soft").unwrap(), CgMode::Soft);
        assert!(parse_cg_mode("props").unwrap_err().to_string().contains("soft, full, strict or ignore"));
        assert_eq!(parse_empty_ns(&["network".into()]).unwrap(), libc::CLONE_NEWNET as u32);
        assert!(parse_empty_ns(&["pid".into()]).is_err());
        assert_eq!(parse_empty_ns(&[]).unwrap(), 0);
    }

    #[test]
    fn parent_path_must_be_relative_and_exist() {
        let dir = std::env::temp_dir().join(format!("husk-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("pre")).unwrap();
        assert!(check_parent(&dir, Path::new("pre")).is_ok());
        assert!(check_parent(&dir, Path::new("/pre")).unwrap_err().to_string().contains("relative"));
        assert!(check_parent(&dir, Path::new("nope")).unwrap_err().to_string().contains("no such file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parent_path_stays_beside_the_image_directory() {
        let top = std::env::temp_dir().join(format!("husk-ckpt-beside-{}", std::process::id()));
        let img = top.join("img");
        for d in ["img/sub", "pre", "pre2"] {
            std::fs::create_dir_all(top.join(d)).unwrap();
        }
        std::os::unix::fs::symlink("/", top.join("to-root")).unwrap();
        std::os::unix::fs::symlink("pre", top.join("to-pre")).unwrap();
        for ok in ["../pre", "../pre2/", "sub", "../to-pre", "../img/sub"] {
            assert!(check_parent(&img, Path::new(ok)).is_ok(), "{ok}");
        }
        for bad in ["../../..", "../..", "..", ".", "../to-root", "sub/..", "../pre/../.."] {
            let e = check_parent(&img, Path::new(bad)).unwrap_err().to_string();
            assert!(e.contains("not beside the image directory"), "{bad}: {e}");
        }
        std::fs::remove_dir_all(&top).unwrap();
    }
}
