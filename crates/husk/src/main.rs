//! husk: a runc-compatible command line over libhusk.

mod cgroup_cmds;
mod checkpoint;
mod cli;
mod exec;
mod logging;
mod run;
mod supervise;
mod tty;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::normalize_args(std::env::args_os());
    let cli = match cli::parse(args) {
        Ok(c) => c,
        // --help and --version print as clap made them; a usage error is one line, like every
        // other error.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::from(0);
        }
        Err(e) => {
            logging::Logger::new(None, false, false).write(tracing::Level::ERROR, &cli::usage_error(&e));
            return ExitCode::from(1);
        }
    };
    // Before husk opens anything: fds the caller promised but did not open must not be filled
    // by husk's own files and handed to the container as "preserved". Reported once the log is.
    let passed_fds = cli::check_passed_fds(&cli);
    let is_exec = matches!(cli.command, Some(cli::Command::Exec(_)));
    let logger = match cli::logger(&cli) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let logger = std::sync::Arc::new(logger);
    let _ = tracing::subscriber::set_global_default(ArcSubscriber(logger.clone()));
    match passed_fds.and_then(|()| cli::dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // runc's wording and status for a failed exec: callers tell it from the process's
            // own exit status by the 255.
            let (msg, code) =
                if is_exec { (format!("exec failed: {}", e.message()), 255) } else { (e.message().to_string(), 1) };
            logger.write(tracing::Level::ERROR, &msg);
            if logger.to_file() {
                eprintln!("{msg}");
            }
            ExitCode::from(code)
        }
    }
}

struct ArcSubscriber(std::sync::Arc<logging::Logger>);

impl tracing::Subscriber for ArcSubscriber {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        self.0.enabled(m)
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        self.0.max_level_hint()
    }
    fn new_span(&self, a: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        self.0.new_span(a)
    }
    fn record(&self, s: &tracing::span::Id, r: &tracing::span::Record<'_>) {
        self.0.record(s, r)
    }
    fn record_follows_from(&self, a: &tracing::span::Id, b: &tracing::span::Id) {
        self.0.record_follows_from(a, b)
    }
    fn event(&self, e: &tracing::Event<'_>) {
        self.0.event(e)
    }
    fn enter(&self, s: &tracing::span::Id) {
        self.0.enter(s)
    }
    fn exit(&self, s: &tracing::span::Id) {
        self.0.exit(s)
    }
}
