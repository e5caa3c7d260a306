//! The command line, flag for flag as runc's (drop-in.md lists what real callers pass).

use std::ffi::OsString;
use std::fs::File;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use libhusk::container::{self, CreateOptions};
use libhusk::{Error, Result};

use crate::logging::Logger;

#[derive(Parser, Debug)]
#[command(name = "husk", about = "husk: an OCI container runtime", disable_version_flag = true)]
pub struct Cli {
    /// Root directory for container state (default /run/husk; $XDG_RUNTIME_DIR/husk for a
    /// non-root user, as runc)
    #[arg(long, global = true, default_value_os_t = libhusk::rootless::default_root())]
    pub root: PathBuf,
    /// Whether --root was given (`list` fails on a named root that does not exist, as runc).
    #[arg(skip)]
    pub root_given: bool,
    /// Log file (default: stderr)
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text or json
    #[arg(long = "log-format", global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Debug logging
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use the systemd cgroup driver
    #[arg(long = "systemd-cgroup", short = 's', global = true)]
    pub systemd_cgroup: bool,
    /// Rootless mode: true, false or auto (the default: rootless when not root). Rootless, cgroups
    /// the user may not make are done without
    #[arg(long, value_parser = ["true", "false", "auto"], num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// Path to the criu binary used for checkpoint and restore (default: criu in $PATH)
    #[arg(long, global = true)]
    pub criu: Option<PathBuf>,
    /// Print the version
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// Path to the bundle directory
    #[arg(long, short = 'b', default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket that receives the pty master
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// File to write the init's pid to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Do not use pivot_root (for ramdisk roots)
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N extra fds (3..3+N-1) to the container
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Unix socket that receives a pidfd of the container's init
    #[arg(long = "pidfd-socket")]
    pub pidfd_socket: Option<PathBuf>,
    pub id: String,
}

// runc's `exec` flags; everything after the container id is the command. A plain comment: as
// subcommands are deferred, a doc comment here would replace the `exec --help` text.
#[derive(Args, Debug, Clone)]
pub struct ExecArgs {
    /// Unix socket that receives the pty master
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Unix socket that receives a pidfd of the process
    #[arg(long = "pidfd-socket")]
    pub pidfd_socket: Option<PathBuf>,
    /// Working directory in the container
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (repeatable)
    #[arg(long, short = 'e')]
    pub env: Vec<String>,
    /// Allocate a pseudo-TTY
    #[arg(long, short = 't')]
    pub tty: bool,
    /// UID (format: <uid>[:<gid>])
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// Additional gids (repeatable)
    #[arg(long = "additional-gids", short = 'g')]
    pub additional_gids: Vec<u32>,
    /// Path to a process.json (the OCI process object)
    #[arg(long, short = 'p')]
    pub process: Option<PathBuf>,
    /// Detach from the process
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// File to write the process's pid to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// SELinux label for the process
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// AppArmor profile for the process
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Set no_new_privs
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Add a capability to the bounding, effective and permitted sets (repeatable)
    #[arg(long, short = 'c')]
    pub cap: Vec<String>,
    /// Pass N extra fds (3..3+N-1) to the process
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Run in a sub-cgroup of the container's: [controller[,controller]:]path (repeatable)
    #[arg(long)]
    pub cgroup: Vec<String>,
    /// Allow exec in a paused container
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    pub id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

// Deferred: clap builds only the arguments of the subcommand being run, not those of all 17 on
// every call.
#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum Command {
    /// Write a default config.json
    Spec {
        #[arg(long, short = 'b', default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        rootless: bool,
    },
    /// Create a container (the init waits for start)
    Create(CreateArgs),
    /// Start a created container
    Start { id: String },
    /// Run a process in a running container
    Exec(Box<ExecArgs>),
    /// Create, start and wait for a container
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once the container has started
        #[arg(long, short = 'd')]
        detach: bool,
        /// Keep the container's state after it exits
        #[arg(long)]
        keep: bool,
        /// Do not become a subreaper
        #[arg(long = "no-subreaper")]
        no_subreaper: bool,
    },
    /// Print a container's state as JSON
    State { id: String },
    /// List containers
    #[command(alias = "ps-all")]
    List {
        #[arg(long, short = 'f', default_value = "table")]
        format: String,
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Send a signal to a container's init (default SIGTERM)
    Kill {
        /// Signal every process of the container
        #[arg(long, short = 'a')]
        all: bool,
        id: String,
        signal: Option<String>,
    },
    /// Delete a container
    Delete {
        /// Kill it first if it is running
        #[arg(long, short = 'f')]
        force: bool,
        id: String,
    },
    /// Print what this runtime supports, as JSON
    Features,
    /// Change a container's resource limits
    Update(Box<crate::cgroup_cmds::UpdateArgs>),
    /// Freeze every process of a container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// List a container's processes (extra arguments go to ps(1))
    Ps {
        /// table or json
        #[arg(long, short = 'f', default_value = "table")]
        format: String,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Print a container's stats and OOM events as JSON lines
    Events {
        /// Stats interval, a Go duration (5s, 500ms)
        #[arg(long, default_value = "5s")]
        interval: String,
        /// Print the stats once and exit
        #[arg(long)]
        stats: bool,
        id: String,
    },
    /// Checkpoint a running container with CRIU
    Checkpoint(crate::checkpoint::CheckpointArgs),
    /// Restore a container from a checkpoint
    Restore(crate::checkpoint::RestoreArgs),
}

/// Parse the (normalized) command line; as clap's derive does, and notes whether --root was
/// given, which clap's default hides.
pub fn parse(args: Vec<OsString>) -> std::result::Result<Cli, clap::Error> {
    use clap::{CommandFactory, FromArgMatches};
    let mut matches = Cli::command().try_get_matches_from(args)?;
    // Asked before the derive takes the values out; a global flag given after the subcommand
    // is in the subcommand's matches.
    let given = |m: &clap::ArgMatches| m.value_source("root") == Some(clap::parser::ValueSource::CommandLine);
    let root_given = given(&matches) || matches.subcommand().is_some_and(|(_, m)| given(m));
    let mut cli = Cli::from_arg_matches_mut(&mut matches)?;
    cli.root_given = root_given;
    Ok(cli)
}

/// Long flags that runc (urfave/cli) also takes with a single dash, e.g. `-no-subreaper`.
const LONG_FLAGS: &[&str] = &[
    "root",
    "log",
    "log-format",
    "debug",
    "systemd-cgroup",
    "rootless",
    "criu",
    "version",
    "bundle",
    "console-socket",
    "pid-file",
    "no-pivot",
    "no-new-keyring",
    "preserve-fds",
    "detach",
    "keep",
    "no-subreaper",
    "format",
    "quiet",
    "all",
    "force",
    "pidfd-socket",
    "tty",
    "process",
    "cwd",
    "env",
    "user",
    "additional-gids",
    "process-label",
    "apparmor",
    "no-new-privs",
    "cap",
    "cgroup",
    "ignore-paused",
];

/// Flags that take a value (`--flag value`): the word after them is not a positional.
const VALUE_FLAGS: &[&str] = &[
    "root",
    "log",
    "log-format",
    "criu",
    "bundle",
    "b",
    "console-socket",
    "pid-file",
    "preserve-fds",
    "pidfd-socket",
    "format",
    "f",
    "process",
    "p",
    "cwd",
    "env",
    "e",
    "user",
    "u",
    "additional-gids",
    "g",
    "process-label",
    "apparmor",
    "cap",
    "c",
    "cgroup",
];

/// runc's commands that stop parsing flags after their first positional argument, the container
/// id (urfave/cli's StopOnNthArg(1)): what follows is the container's command line (`exec`),
/// ps(1)'s options (`ps`) or the signal (`kill`), however it looks.
const STOP_AFTER_ID: &[&str] = &["exec", "ps", "kill"];

/// Rewrite `-no-subreaper` / `-bundle=x` to their `--` forms: only husk's own long flags, and
/// only where runc's parser reads flags. It stops at `--`, and for `exec`, `ps` and `kill` at the
/// container id; after that id a `--` is put in, so that clap too takes the rest as it is
/// (`ps ID -all`, `exec ID ls -all`, `kill ID -all` are never husk's `--all`).
pub fn normalize_args(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut passthrough = false;
    let mut value_next = false;
    let mut command: Option<OsString> = None;
    // After the id of a STOP_AFTER_ID command: the next argument starts the passthrough.
    let mut stop_next = false;
    let long = |n: &str| {
        LONG_FLAGS.contains(&n)
            || crate::cgroup_cmds::LONG_FLAGS.contains(&n)
            || crate::checkpoint::LONG_FLAGS.contains(&n)
    };
    for (i, arg) in args.enumerate() {
        if i == 0 || passthrough {
            out.push(arg);
            continue;
        }
        if std::mem::take(&mut stop_next) {
            passthrough = true;
            if arg != "--" {
                out.push(OsString::from("--"));
            }
            out.push(arg);
            continue;
        }
        if std::mem::take(&mut value_next) {
            out.push(arg);
            continue;
        }
        if arg == "--" {
            passthrough = true;
            out.push(arg);
            continue;
        }
        if let Some(s) = arg.to_str().filter(|s| s.starts_with('-') && s.len() > 1) {
            let rest = s.trim_start_matches('-');
            let name = rest.split('=').next().unwrap_or("");
            value_next = !rest.contains('=') && VALUE_FLAGS.contains(&name);
            if !s.starts_with("--") && name.len() > 1 && long(name) {
                out.push(OsString::from(format!("-{s}")));
                continue;
            }
            out.push(arg);
            continue;
        }
        match &command {
            None => command = Some(arg.clone()),
            Some(c) if STOP_AFTER_ID.iter().any(|x| c == x) => stop_next = true,
            Some(_) => {}
        }
        out.push(arg);
    }
    out
}

/// clap's usage error as one line: the message without its usage block, lines joined, control
/// characters from the arguments escaped. A flag given without its value is said in runc's
/// words, `flag needs an argument: --flag`, which callers match: Podman and CRI-O probe
/// `restore --lsm-mount-context` and look for exactly that.
pub fn usage_error(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() == ErrorKind::InvalidValue {
        if let (Some(ContextValue::String(arg)), Some(ContextValue::String(value))) =
            (e.get(ContextKind::InvalidArg), e.get(ContextKind::InvalidValue))
        {
            if value.is_empty() {
                let flag = arg.split_whitespace().next().unwrap_or(arg);
                return Error::msg(format!("flag needs an argument: {flag} (see husk --help)")).message().to_string();
            }
        }
    }
    let text = e.render().to_string();
    let head = text.split("\nUsage:").next().unwrap_or(&text);
    let head = head.trim().strip_prefix("error: ").unwrap_or(head.trim());
    let joined: Vec<&str> = head.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    Error::msg(format!("{} (see husk --help)", joined.join(" "))).message().to_string()
}

pub fn logger(cli: &Cli) -> Result<Logger> {
    let file = match &cli.log {
        Some(path) => Some(
            File::options()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| Error::from(e).context(format!("--log {}", path.display())))?,
        ),
        None => None,
    };
    Ok(Logger::new(file, cli.log_format == LogFormat::Json, cli.debug))
}

fn create_options(cli: &Cli, a: &CreateArgs) -> CreateOptions {
    CreateOptions {
        rootless: rootless(cli),
        root: cli.root.clone(),
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        console_socket: a.console_socket.clone(),
        pid_file: a.pid_file.clone(),
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
        own_console: false,
        pidfd_socket: a.pidfd_socket.clone(),
        systemd_cgroup: cli.systemd_cgroup,
    }
}

/// fds 3.. that reach the container, checked and held before husk opens anything, so that
/// none of husk's own files (the log, the state directory: host paths, CVE-2024-21626's class)
/// lands on a number the container is promised and is passed in its place:
/// - LISTEN_FDS (create/run) the caller promised but did not open are held with /dev/null;
/// - `--preserve-fds N` must name open fds, as in runc main ("unable to stat preserved-fd"),
///   checked one by one up to the first missing: a huge N (4294967295 wrapped `3 + N` to 2 and
///   closed stderr) costs as little as a small one.
///
/// The error is returned for main to report once the logger is set up.
pub fn check_passed_fds(cli: &Cli) -> Result<()> {
    let listen = || {
        let for_us = std::env::var("LISTEN_PID").ok().and_then(|v| v.parse::<u32>().ok()) == Some(std::process::id());
        if for_us {
            std::env::var("LISTEN_FDS").ok().and_then(|v| v.parse::<u32>().ok()).unwrap_or(0)
        } else {
            0
        }
    };
    let (listen, preserve) = match &cli.command {
        Some(Command::Create(a)) | Some(Command::Run { create: a, .. }) => (listen(), a.preserve_fds),
        Some(Command::Exec(a)) => (0, a.preserve_fds),
        _ => return Ok(()),
    };
    let first = 3 + u64::from(listen);
    for i in 0..u64::from(preserve) {
        if !fd_is_open(first + i) {
            return Err(Error::msg(format!(
                "--preserve-fds {preserve}: unable to stat preserved-fd {i} (of {preserve}): fd {} is not open",
                first + i
            )));
        }
    }
    if listen > 0 {
        hold_missing_fds(3, first.min(65536) as i32);
    }
    Ok(())
}

fn fd_is_open(fd: u64) -> bool {
    let Ok(fd) = i32::try_from(fd) else { return false };
    // SAFETY: F_GETFD only queries the fd table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Hold every fd in `from..end` that is not open with /dev/null.
fn hold_missing_fds(from: i32, end: i32) {
    let Ok(null) = std::fs::File::open("/dev/null") else { return };
    // SAFETY: F_DUPFD_CLOEXEC makes a new fd above the range, owned here and closed below; F_GETFD
    // only queries; dup2 onto a number that is not open creates it without touching any fd a Rust
    // object owns.
    unsafe {
        use std::os::fd::AsRawFd;
        let src = libc::fcntl(null.as_raw_fd(), libc::F_DUPFD_CLOEXEC, end);
        drop(null);
        if src < 0 {
            return;
        }
        for fd in from..end {
            if libc::fcntl(fd, libc::F_GETFD) < 0 {
                libc::dup2(src, fd);
            }
        }
        libc::close(src);
    }
}

/// runc's `--rootless`: `auto` (the default) means rootless when husk is not root, or is root
/// only inside a user namespace.
fn rootless(cli: &Cli) -> bool {
    match cli.rootless.as_deref() {
        Some("true") => true,
        Some("false") => false,
        _ => libhusk::rootless::is_rootless_caller(),
    }
}

/// CRIU checkpoints and restores only as root; rootless husk says so before it asks CRIU.
fn check_criu(command: &str) -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        return Err(Error::msg(format!("{command}: rootless husk cannot {command} a container: CRIU needs root")));
    }
    Ok(())
}

pub fn dispatch(cli: Cli) -> Result<u8> {
    if cli.version {
        println!("husk version {}\nspec: {}", env!("CARGO_PKG_VERSION"), libhusk::config::OCI_VERSION);
        return Ok(0);
    }
    let Some(command) = &cli.command else {
        return Err(Error::msg("no command given; see husk --help"));
    };
    match command {
        Command::Spec { bundle, rootless } => {
            let path = bundle.join("config.json");
            if path.exists() {
                return Err(Error::msg(format!("File {} exists. Remove it first", path.display())));
            }
            let spec = libhusk::spec_template::default_spec(*rootless);
            let text = serde_json::to_string_pretty(&spec).unwrap_or_default();
            std::fs::write(&path, text + "\n")
                .map_err(|e| Error::from(e).context(format!("write {}", path.display())))?;
        }
        Command::Create(a) => {
            container::create(&create_options(&cli, a))?;
        }
        Command::Start { id } => container::start(&cli.root, id)?,
        Command::Exec(a) => return crate::exec::exec(&cli, a),
        Command::Run { create, detach, keep, no_subreaper } => {
            let opts = create_options(&cli, create);
            return crate::run::run(&opts, *detach, *keep, *no_subreaper);
        }
        Command::State { id } => println!("{}", container::state(&cli.root, id)?),
        Command::List { format, quiet } => list(&cli, format, *quiet)?,
        Command::Kill { all, id, signal } => {
            let sig = container::parse_signal(signal.as_deref().unwrap_or("SIGTERM"))?;
            container::kill(&cli.root, id, sig, *all)?;
        }
        Command::Delete { force, id } => container::delete(&cli.root, id, *force)?,
        Command::Features => {
            println!("{}", serde_json::to_string_pretty(&libhusk::features::features()).unwrap_or_default())
        }
        Command::Update(a) => crate::cgroup_cmds::update(&cli.root, a)?,
        Command::Pause { id } => container::pause(&cli.root, id)?,
        Command::Resume { id } => container::resume(&cli.root, id)?,
        Command::Ps { format, id, ps_args } => crate::cgroup_cmds::ps(&cli.root, id, format, ps_args)?,
        Command::Events { interval, stats, id } => crate::cgroup_cmds::events(&cli.root, id, interval, *stats)?,
        Command::Checkpoint(a) => {
            check_criu("checkpoint")?;
            crate::checkpoint::checkpoint(cli.root.clone(), cli.criu.clone(), a)?
        }
        Command::Restore(a) => {
            check_criu("restore")?;
            return crate::checkpoint::restore(cli.root.clone(), cli.criu.clone(), a);
        }
    }
    Ok(0)
}

fn list(cli: &Cli, format: &str, quiet: bool) -> Result<()> {
    let containers = container::list(&cli.root, cli.root_given)?;
    if quiet {
        for (s, _) in &containers {
            println!("{}", s.id);
        }
        return Ok(());
    }
    match format {
        "json" => println!("{}", container::list_json(&containers)),
        "table" => {
            let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from).to_vec()];
            for (s, st) in &containers {
                let pid = if *st == libhusk::state::Status::Stopped { 0 } else { s.init.pid };
                rows.push(vec![
                    s.id.clone(),
                    pid.to_string(),
                    st.as_str().to_string(),
                    s.bundle.display().to_string(),
                    s.created.clone(),
                    s.owner.clone(),
                ]);
            }
            print!("{}", table(&rows));
        }
        other => return Err(Error::msg(format!("invalid format option {other:?} (table or json)"))),
    }
    Ok(())
}

/// Columns as Go's tabwriter lays out runc's table: min width 12, padding 3.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map_or(0, |r| r.len());
    let widths: Vec<usize> =
        (0..cols).map(|c| rows.iter().map(|r| r[c].len() + 3).max().unwrap_or(0).max(12)).collect();
    let mut out = String::new();
    for row in rows {
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == cols {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}", w = widths[c]));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Vec<String> {
        normalize_args(args.iter().map(OsString::from)).into_iter().map(|s| s.into_string().unwrap()).collect()
    }

    #[test]
    fn single_dash_long_flags() {
        assert_eq!(
            norm(&["husk", "-no-subreaper", "-bundle=/b", "-d"]),
            ["husk", "--no-subreaper", "--bundle=/b", "-d"]
        );
        assert_eq!(norm(&["husk", "--", "-all"]), ["husk", "--", "-all"]);
        assert_eq!(norm(&["husk", "kill", "-a", "x"]), ["husk", "kill", "-a", "x"]);
        // exec: flags before the id are ours, everything after it the container's.
        assert_eq!(
            norm(&["husk", "-root", "/r", "exec", "-cwd", "/tmp", "-tty", "ctr", "ls", "-format", "-all"]),
            ["husk", "--root", "/r", "exec", "--cwd", "/tmp", "--tty", "ctr", "--", "ls", "-format", "-all"]
        );
        assert_eq!(
            norm(&["husk", "exec", "-e", "all", "ctr", "-all"]),
            ["husk", "exec", "-e", "all", "ctr", "--", "-all"]
        );
        // ps and kill stop after the id too (runc's StopOnNthArg): ps(1)'s and the signal's.
        assert_eq!(
            norm(&["husk", "ps", "-format", "json", "ctr", "-all"]),
            ["husk", "ps", "--format", "json", "ctr", "--", "-all"]
        );
        assert_eq!(norm(&["husk", "kill", "ctr", "-all"]), ["husk", "kill", "ctr", "--", "-all"]);
        assert_eq!(norm(&["husk", "kill", "-all", "ctr", "KILL"]), ["husk", "kill", "--all", "ctr", "--", "KILL"]);
        // A `--` of the caller's right after the id is the one clap reads.
        assert_eq!(norm(&["husk", "exec", "ctr", "--", "ls"]), ["husk", "exec", "ctr", "--", "ls"]);
        // Other commands read flags after their positionals, as runc's parser does.
        assert_eq!(norm(&["husk", "delete", "ctr", "-force"]), ["husk", "delete", "ctr", "--force"]);
    }

    #[test]
    fn what_follows_the_id_is_not_husks() {
        let parse = |a: &[&str]| Cli::try_parse_from(normalize_args(a.iter().map(OsString::from)));
        let Some(Command::Ps { ps_args, format, .. }) = parse(&["husk", "ps", "ctr", "-all"]).unwrap().command else {
            panic!("not ps")
        };
        assert_eq!((ps_args, format.as_str()), (vec!["-all".to_string()], "table"));
        let Some(Command::Ps { ps_args, .. }) = parse(&["husk", "ps", "ctr", "-f", "-e"]).unwrap().command else {
            panic!("not ps")
        };
        assert_eq!(ps_args, ["-f", "-e"]);
        let Some(Command::Kill { all, signal, .. }) = parse(&["husk", "kill", "ctr", "-all"]).unwrap().command else {
            panic!("not kill")
        };
        assert_eq!((all, signal.as_deref()), (false, Some("-all")));
        let Some(Command::Exec(a)) = parse(&["husk", "exec", "ctr", "ls", "-all", "--", "-x"]).unwrap().command else {
            panic!("not exec")
        };
        assert_eq!(a.command, ["ls", "-all", "--", "-x"]);
        let Some(Command::Exec(a)) = parse(&["husk", "exec", "ctr", "--", "ls"]).unwrap().command else {
            panic!("not exec")
        };
        assert_eq!(a.command, ["ls"]);
    }

    #[test]
    fn a_flag_without_its_value_is_said_in_runcs_words() {
        let parse = |a: &[&str]| parse(normalize_args(a.iter().map(OsString::from))).unwrap_err();
        for (args, flag) in [
            (&["husk", "--root"][..], "--root"),
            (&["husk", "exec", "--user"], "--user"),
            (&["husk", "restore", "--lsm-mount-context"], "--lsm-mount-context"),
            (&["husk", "restore", "-lsm-mount-context"], "--lsm-mount-context"),
        ] {
            let e = usage_error(&parse(args));
            assert!(e.starts_with(&format!("flag needs an argument: {flag}")), "{args:?}: {e}");
        }
    }

    #[test]
    fn parses_exec_command_lines() {
        let parse = |a: &[&str]| Cli::try_parse_from(normalize_args(a.iter().map(OsString::from)));
        let cli = parse(&[
            "husk",
            "exec",
            "--user",
            "1000:1001",
            "--cwd",
            "/tmp",
            "--env",
            "FOO=bar",
            "--env=BAZ=qux",
            "-e",
            "X=1",
            "-t",
            "-d",
            "--cap",
            "CAP_KILL",
            "-g",
            "5",
            "-g",
            "6",
            "--cgroup",
            "sub",
            "ctr",
            "sh",
            "-c",
            "echo -n hi",
        ])
        .unwrap();
        let Some(Command::Exec(a)) = cli.command else { panic!("not exec") };
        assert_eq!(a.id, "ctr");
        assert_eq!(a.command, ["sh", "-c", "echo -n hi"]);
        assert_eq!(a.env, ["FOO=bar", "BAZ=qux", "X=1"]);
        assert_eq!(a.additional_gids, [5, 6]);
        assert!(a.tty && a.detach);
        let cli = parse(&["husk", "exec", "--process", "/p.json", "--detach", "--pid-file", "/x.pid", "ctr"]).unwrap();
        let Some(Command::Exec(a)) = cli.command else { panic!("not exec") };
        assert!(a.command.is_empty() && a.process.is_some());
        let cli = parse(&["husk", "exec", "ctr", "ls", "-la", "--", "-x"]).unwrap();
        let Some(Command::Exec(a)) = cli.command else { panic!("not exec") };
        assert_eq!(a.command, ["ls", "-la", "--", "-x"]);
    }

    /// Arguments the CLI fuzzer puts in: every command and flag in both spellings, and odd values.
    fn fuzz_tokens() -> Vec<String> {
        let mut t: Vec<String> = [
            "create",
            "start",
            "run",
            "state",
            "list",
            "ps-all",
            "kill",
            "delete",
            "features",
            "spec",
            "exec",
            "update",
            "ps",
            "pause",
            "events",
            "-a",
            "-b",
            "-d",
            "-f",
            "-q",
            "-s",
            "-v",
            "-h",
            "--help",
            "-",
            "--",
            "=",
            "",
            "9",
            "-9",
            "KILL",
            "SIGRTMIN+3",
            "0",
            "4294967296",
            "-1",
            "x=y",
            "--preserve-fds=-1",
            "--rootless=maybe",
            "--log-format=xml",
            "é",
            "\u{202e}",
            "a\nb",
            "id with space",
            "../id",
            "/",
            "json",
            "table",
        ]
        .map(String::from)
        .to_vec();
        for f in LONG_FLAGS {
            t.extend([format!("--{f}"), format!("-{f}"), format!("--{f}="), format!("--{f}=v")]);
        }
        t.push("x".repeat(5000));
        t
    }

    /// One to three edits of a command line: insert, drop, replace or repeat an argument.
    fn mutate_args(rng: &mut libhusk::fuzz::Rng, seeds: &[Vec<u8>], tokens: &[String]) -> Vec<u8> {
        let seed = String::from_utf8_lossy(rng.pick(seeds).as_slice()).into_owned();
        let mut args: Vec<String> = seed.lines().map(String::from).collect();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(args.len() + 1);
            match rng.below(4) {
                0 => args.insert(at, rng.pick(tokens).clone()),
                1 if at < args.len() => {
                    args.remove(at);
                }
                2 if at < args.len() => args[at] = rng.pick(tokens).clone(),
                _ if at < args.len() => {
                    let a = args[at].clone();
                    args.insert(at, a);
                }
                _ => args.push(rng.pick(tokens).clone()),
            }
        }
        args.join("\n").into_bytes()
    }

    /// What husk does with its arguments before it acts: parse (after the single-dash rewrite),
    /// then the checks dispatch makes first (signal names, --rootless, list format).
    fn cli_target(data: &[u8]) -> std::result::Result<(), String> {
        let text = String::from_utf8_lossy(data);
        let args = std::iter::once("husk").chain(text.split('\n')).map(OsString::from);
        let cli = Cli::try_parse_from(normalize_args(args)).map_err(|e| {
            if e.use_stderr() {
                usage_error(&e)
            } else {
                "help".to_string()
            }
        })?;
        match &cli.command {
            Some(Command::Kill { signal, .. }) => {
                container::parse_signal(signal.as_deref().unwrap_or("SIGTERM")).map_err(|e| e.to_string())?;
            }
            Some(Command::List { format, .. }) if format != "json" && format != "table" => {
                return Err(format!("invalid format option {format:?}"));
            }
            _ => {}
        }
        Ok(())
    }

    #[test]
    fn fuzz_cli() {
        let tokens = fuzz_tokens();
        let budget = libhusk::fuzz::Budget::from_env(20_000, 20);
        let r = libhusk::fuzz::run_with("cli", &budget, |rng, seeds| mutate_args(rng, seeds, &tokens), cli_target);
        assert!(r.rejected > 0 && r.rejected < r.executions, "{r:?}");
    }

    #[test]
    fn usage_errors_are_one_line() {
        let parse = |a: &[&str]| Cli::try_parse_from(a.iter().map(OsString::from)).unwrap_err();
        let e = usage_error(&parse(&["husk", "kill"]));
        assert!(e.starts_with("the following required arguments were not provided: <ID>"), "{e}");
        assert!(!e.contains('\n'));
        let e = usage_error(&parse(&["husk", "state", "--bogus\nx", "id"]));
        assert!(e.contains("--bogus") && !e.contains('\n'), "{e}");
    }

    #[test]
    fn notes_an_explicit_root() {
        let p = |a: &[&str]| parse(normalize_args(a.iter().map(OsString::from))).unwrap().root_given;
        assert!(!p(&["husk", "list"]));
        assert!(p(&["husk", "--root", "/r", "list"]));
        assert!(p(&["husk", "list", "--root=/r"]));
        assert!(p(&["husk", "-root", "/r", "list"]));
    }

    #[test]
    fn parses_runc_command_lines() {
        let parse = |a: &[&str]| Cli::try_parse_from(normalize_args(a.iter().map(OsString::from)));
        assert!(parse(&[
            "husk",
            "--root",
            "/r",
            "--log",
            "/l",
            "--log-format",
            "json",
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/p",
            "x"
        ])
        .is_ok());
        assert!(parse(&["husk", "--root=/r", "create", "--bundle=/b", "--preserve-fds=2", "x"]).is_ok());
        assert!(parse(&["husk", "run", "-d", "--no-subreaper", "-b", "/b", "x"]).is_ok());
        assert!(parse(&["husk", "restore-like", "-no-subreaper"]).is_err());
        assert!(parse(&["husk", "kill", "--all", "x", "9"]).is_ok());
        assert!(parse(&["husk", "--rootless=false", "delete", "--force", "x"]).is_ok());
        assert!(parse(&["husk", "list", "-f", "json", "-q"]).is_ok());
    }
}
