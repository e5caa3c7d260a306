//! `exec`: a process in a running container. Detached, husk returns once it runs; in the
//! foreground husk forwards signals to it, proxies its terminal when it has one and no
//! --console-socket, and exits with its status (128+signal when killed).

use libhusk::container::{self, ExecOptions, ProcessFlags, ProcessSpec};
use libhusk::Result;

use crate::cli::{Cli, ExecArgs};
use crate::supervise::{Main, Signals};

pub fn exec(cli: &Cli, a: &ExecArgs) -> Result<u8> {
    let process = match &a.process {
        Some(path) => {
            if !a.command.is_empty() {
                tracing::warn!("exec: --process given: the command line's {:?} is ignored", a.command);
            }
            ProcessSpec::File(path.clone())
        }
        None => ProcessSpec::Flags(ProcessFlags {
            args: a.command.clone(),
            cwd: a.cwd.clone(),
            env: a.env.clone(),
            user: a.user.clone(),
            additional_gids: a.additional_gids.clone(),
            caps: a.cap.clone(),
            no_new_privs: a.no_new_privs,
            apparmor: a.apparmor.clone(),
            process_label: a.process_label.clone(),
            tty: a.tty,
        }),
    };
    let opts = ExecOptions {
        root: cli.root.clone(),
        id: a.id.clone(),
        process,
        detach: a.detach,
        console_socket: a.console_socket.clone(),
        pid_file: a.pid_file.clone(),
        pidfd_socket: a.pidfd_socket.clone(),
        preserve_fds: a.preserve_fds,
        cgroup: a.cgroup.clone(),
        ignore_paused: a.ignore_paused,
    };
    if a.detach {
        container::exec(&opts)?;
        return Ok(0);
    }
    // Blocked before the clone so nothing is lost; the child unblocks them before its execve.
    let signals = Signals::block(false)?;
    let started = container::exec(&opts)?;
    let main = Main { pid: started.pid, pidfd: &started.pidfd };
    match &started.console {
        Some(master) => crate::tty::proxy(&main, &signals, master, None),
        None => signals.wait(&main, None),
    }
}
