//! `checkpoint` and `restore`, flag for flag as runc's (drop-in.md: containerd's shim passes
//! `restore --detach --pid-file P --no-pivot -no-subreaper --bundle B ID`).

use std::path::PathBuf;

use clap::Args;
use libhusk::container::{self, CheckpointOptions, RestoreOptions};
use libhusk::{Error, Result};

#[derive(Args, Debug, Clone)]
pub struct CheckpointArgs {
    /// Path for saving CRIU image files (default: ./checkpoint)
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    /// Path for saving work files and logs
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    /// Path of the previous (pre-dump) images, relative to --image-path
    #[arg(long = "parent-path")]
    pub parent_path: Option<PathBuf>,
    /// Leave the process running after checkpointing
    #[arg(long = "leave-running")]
    pub leave_running: bool,
    /// Allow open TCP connections
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// Skip in-flight TCP connections
    #[arg(long = "tcp-skip-in-flight")]
    pub tcp_skip_in_flight: bool,
    /// Allow external unix sockets
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// Allow shell jobs
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// Use userfaultfd to lazily restore memory pages
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
    /// CRIU writes \0 to this fd once lazy-pages is ready
    #[arg(long = "status-fd", default_value_t = -1, allow_negative_numbers = true)]
    pub status_fd: i32,
    /// ADDRESS:PORT of the page server
    #[arg(long = "page-server")]
    pub page_server: Option<String>,
    /// Handle file locks, for safety
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// Dump the container's memory only, leave it running
    #[arg(long = "pre-dump")]
    pub pre_dump: bool,
    /// cgroups mode: soft (default), full, strict or ignore
    #[arg(long = "manage-cgroups-mode")]
    pub manage_cgroups_mode: Option<String>,
    /// Create a namespace, but do not restore its properties (network)
    #[arg(long = "empty-ns")]
    pub empty_ns: Vec<String>,
    /// Enable auto deduplication of memory images
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
    /// Allow link remapping of open files that were unlinked
    #[arg(long = "link-remap")]
    pub link_remap: bool,
    pub id: String,
}

#[derive(Args, Debug, Clone)]
pub struct RestoreArgs {
    /// AF_UNIX socket that receives the master end of the console's pty
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Path to CRIU image files for restoring (default: ./checkpoint)
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    /// Path for saving work files and logs
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    /// Allow open TCP connections
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// Close established TCP connections on restore
    #[arg(long = "tcp-close")]
    pub tcp_close: bool,
    /// Allow external unix sockets
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// Allow shell jobs
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// Handle file locks, for safety
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// cgroups mode: soft (default), full, strict or ignore
    #[arg(long = "manage-cgroups-mode")]
    pub manage_cgroups_mode: Option<String>,
    /// Path to the root of the bundle directory
    #[arg(long, short = 'b', default_value = ".")]
    pub bundle: PathBuf,
    /// Detach from the container's process
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// File to write the restored init's pid to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Do not become a subreaper
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    /// Do not use pivot_root (accepted; CRIU sets up the root)
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Create a namespace, but do not restore its properties (network)
    #[arg(long = "empty-ns")]
    pub empty_ns: Vec<String>,
    /// Enable auto deduplication of memory images
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
    /// Use userfaultfd to lazily restore memory pages
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
    /// LSM profile for the restored process, TYPE:NAME
    #[arg(long = "lsm-profile")]
    pub lsm_profile: Option<String>,
    /// LSM mount context for the restored mounts
    #[arg(long = "lsm-mount-context")]
    pub lsm_mount_context: Option<String>,
    pub id: String,
}

/// Flags of these commands that runc (urfave/cli) also takes with a single dash.
pub const LONG_FLAGS: &[&str] = &[
    "image-path",
    "work-path",
    "parent-path",
    "leave-running",
    "tcp-established",
    "tcp-skip-in-flight",
    "tcp-close",
    "ext-unix-sk",
    "shell-job",
    "lazy-pages",
    "status-fd",
    "page-server",
    "file-locks",
    "pre-dump",
    "manage-cgroups-mode",
    "empty-ns",
    "auto-dedup",
    "link-remap",
    "lsm-profile",
    "lsm-mount-context",
];

/// runc's default image path: `checkpoint` in the current directory.
fn image_path(p: &Option<PathBuf>) -> PathBuf {
    p.clone().unwrap_or_else(|| PathBuf::from("checkpoint"))
}

fn cg_mode(m: &Option<String>) -> Result<Option<libhusk::criu::rpc::CgMode>> {
    m.as_deref().filter(|m| !m.is_empty()).map(container::parse_cg_mode).transpose()
}

pub fn checkpoint(root: PathBuf, criu: Option<PathBuf>, a: &CheckpointArgs) -> Result<()> {
    let page_server = match a.page_server.as_deref() {
        None | Some("") => None,
        Some(text) => Some(page_server(text)?),
    };
    let opts = CheckpointOptions {
        root,
        id: a.id.clone(),
        criu,
        image_path: image_path(&a.image_path),
        work_path: a.work_path.clone(),
        parent_path: a.parent_path.clone().filter(|p| !p.as_os_str().is_empty()),
        leave_running: a.leave_running,
        tcp_established: a.tcp_established,
        tcp_skip_in_flight: a.tcp_skip_in_flight,
        ext_unix_sk: a.ext_unix_sk,
        shell_job: a.shell_job,
        file_locks: a.file_locks,
        pre_dump: a.pre_dump,
        auto_dedup: a.auto_dedup,
        link_remap: a.link_remap,
        lazy_pages: a.lazy_pages,
        status_fd: (a.status_fd >= 0).then_some(a.status_fd),
        page_server,
        manage_cgroups_mode: cg_mode(&a.manage_cgroups_mode)?,
        empty_ns: container::parse_empty_ns(&a.empty_ns)?,
    };
    container::checkpoint(&opts)
}

/// `ADDRESS:PORT` (an IPv6 address in brackets).
fn page_server(text: &str) -> Result<(String, i32)> {
    let bad = || Error::msg(format!("--page-server {text:?}: use ADDRESS:PORT"));
    let (addr, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().map_err(|_| bad())?;
    if addr.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((addr.to_string(), i32::from(port)))
}

pub fn restore(root: PathBuf, criu: Option<PathBuf>, a: &RestoreArgs) -> Result<u8> {
    let opts = RestoreOptions {
        root,
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        criu,
        image_path: image_path(&a.image_path),
        work_path: a.work_path.clone(),
        console_socket: a.console_socket.clone(),
        pid_file: a.pid_file.clone(),
        no_pivot: a.no_pivot,
        tcp_established: a.tcp_established,
        tcp_close: a.tcp_close,
        ext_unix_sk: a.ext_unix_sk,
        shell_job: a.shell_job,
        file_locks: a.file_locks,
        auto_dedup: a.auto_dedup,
        lazy_pages: a.lazy_pages,
        manage_cgroups_mode: cg_mode(&a.manage_cgroups_mode)?,
        empty_ns: container::parse_empty_ns(&a.empty_ns)?,
        lsm_profile: a.lsm_profile.clone().filter(|s| !s.is_empty()),
        lsm_mount_context: a.lsm_mount_context.clone().filter(|s| !s.is_empty()),
        own_console: !a.detach,
    };
    if a.detach {
        container::restore(&opts)?;
        return Ok(0);
    }
    if !a.no_subreaper {
        // Orphans of a container without its own pid namespace come to us, not to PID 1.
        let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
    }
    let signals = crate::supervise::Signals::block(!a.no_subreaper)?;
    let restored = container::restore(&opts)?;
    let main = crate::supervise::Main { pid: restored.pid, pidfd: &restored.pidfd };
    let code = match &restored.console {
        Some(master) => crate::tty::proxy(&main, &signals, master, None)?,
        None => signals.wait(&main, None)?,
    };
    container::delete(&opts.root, &opts.id, true)?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::path::Path;

    #[test]
    fn parses_runc_command_lines() {
        let parse = |a: &[&str]| {
            crate::cli::Cli::try_parse_from(crate::cli::normalize_args(a.iter().map(std::ffi::OsString::from)))
        };
        // containerd's shim (drop-in.md), single-dash flag included.
        let words = "husk --root /r restore --detach --pid-file /p --no-pivot -no-subreaper --bundle /b \
                     --image-path /i --work-path /w x";
        let cli = parse(&words.split_whitespace().collect::<Vec<_>>()).unwrap();
        let Some(crate::cli::Command::Restore(a)) = cli.command else { panic!("not a restore") };
        assert!(a.detach && a.no_pivot && a.no_subreaper);
        assert_eq!((a.bundle.to_str(), a.pid_file.as_deref(), a.id.as_str()), (Some("/b"), Some(Path::new("/p")), "x"));
        let words = "husk checkpoint --image-path /i --work-path /w --leave-running --tcp-established --ext-unix-sk \
                     --shell-job --file-locks --pre-dump --manage-cgroups-mode soft --empty-ns network --auto-dedup \
                     --link-remap --tcp-skip-in-flight -parent-path ../p --status-fd -1 --page-server h:1 --lazy-pages x";
        let cli = parse(&words.split_whitespace().collect::<Vec<_>>()).unwrap();
        let Some(crate::cli::Command::Checkpoint(a)) = cli.command else { panic!("not a checkpoint") };
        assert!(a.leave_running && a.pre_dump && a.lazy_pages && a.tcp_skip_in_flight && a.link_remap);
        assert_eq!(
            (a.parent_path.as_deref(), a.status_fd, a.empty_ns.as_slice()),
            (Some(Path::new("../p")), -1, &["network".to_string()][..])
        );
    }

    #[test]
    fn page_server_addresses() {
        assert_eq!(page_server("10.0.0.1:27").unwrap(), ("10.0.0.1".to_string(), 27));
        assert_eq!(page_server("[::1]:27").unwrap(), ("::1".to_string(), 27));
        for bad in ["x", ":27", "h:", "h:0", "h:70000"] {
            assert!(page_server(bad).is_err(), "{bad}");
        }
    }
}
