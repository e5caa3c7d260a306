//! runc's log contract: `--log FILE` (stderr without it), `--log-format text|json`, one line per
//! event; containerd shows the `msg` of the last error line to the user.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};

pub struct Logger {
    out: Mutex<Box<dyn Write + Send>>,
    json: bool,
    max: Level,
    to_file: bool,
}

impl Logger {
    pub fn new(file: Option<File>, json: bool, debug: bool) -> Logger {
        let to_file = file.is_some();
        let out: Box<dyn Write + Send> = match file {
            Some(f) => Box::new(f),
            None => Box::new(std::io::stderr()),
        };
        Logger { out: Mutex::new(out), json, max: if debug { Level::DEBUG } else { Level::INFO }, to_file }
    }

    /// Whether log lines go to a file (then errors are also printed to stderr, as runc does).
    pub fn to_file(&self) -> bool {
        self.to_file
    }

    pub fn write(&self, level: Level, msg: &str) {
        let time = libhusk::state::now_rfc3339();
        // logrus's names, which runc writes and callers parse: `warning`, not `warn`.
        let level = match level {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        let line = if self.json {
            serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
        } else {
            format!("time={time:?} level={level} msg={msg:?}")
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{line}");
        }
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl Subscriber for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.max
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        // Lets every disabled callsite (all `debug!` without --debug) cost one comparison.
        Some(tracing::level_filters::LevelFilter::from_level(self.max))
    }
    fn event(&self, event: &Event<'_>) {
        let mut msg = Message(String::new());
        event.record(&mut msg);
        let level = *event.metadata().level();
        // In a container process husk cloned, the line goes to husk (see route_log).
        if let libhusk::sync::LogRoute::Here = libhusk::sync::route_log(level, &msg.0) {
            self.write(level, &msg.0);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
