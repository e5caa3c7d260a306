//! `run`: create + start, then (unless detached) wait for the program, forwarding signals to it,
//! and exit with its status (128+signal when killed), deleting the container unless --keep.

use libhusk::container::{self, CreateOptions};
use libhusk::Result;

use crate::supervise::{Main, Signals};

pub fn run(opts: &CreateOptions, detach: bool, keep: bool, no_subreaper: bool) -> Result<u8> {
    if detach {
        container::create(opts)?;
        // With NOTIFY_SOCKET this returns once the container reported READY, as runc's does.
        container::start(&opts.root, &opts.id).inspect_err(|_| cleanup(opts))?;
        return Ok(0);
    }
    if !no_subreaper {
        // Orphans of a container without its own pid namespace come to us, not to PID 1.
        let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
    }
    // Blocked before the clone so nothing is lost; the init unblocks them before exec.
    let signals = Signals::block(!no_subreaper)?;
    let opts = CreateOptions { own_console: true, ..opts.clone() };
    let opts = &opts;
    let created = container::create(opts)?;
    let notify = container::start_foreground(&opts.root, &opts.id).inspect_err(|_| cleanup(opts))?;
    libhusk::crashpoint::here("run:started");
    let main = Main { pid: created.pid, pidfd: &created.pidfd };
    let code = match &created.console {
        Some(master) => crate::tty::proxy(&main, &signals, master, notify.as_ref())?,
        None => signals.wait(&main, notify.as_ref())?,
    };
    libhusk::crashpoint::here("run:exited");
    if !keep {
        container::delete(&opts.root, &opts.id, true)?;
    }
    Ok(code)
}

fn cleanup(opts: &CreateOptions) {
    let _ = container::delete(&opts.root, &opts.id, true);
}
