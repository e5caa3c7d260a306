//! One error type for the whole runtime: a single line that names the config field or the path at
//! fault, worded like runc where callers match on the wording (drop-in.md).

use std::fmt;

#[derive(Debug)]
pub struct Error {
    msg: String,
    errno: Option<i32>,
}

pub type Result<T> = std::result::Result<T, Error>;

/// Control characters (a newline above all) and bidi overrides from user input (an id, a JSON
/// string echoed by serde) are written as escapes: an error is always one printable line.
fn one_line(text: String) -> String {
    let odd =
        |c: char| c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c) || ('\u{2066}'..='\u{2069}').contains(&c);
    if !text.chars().any(odd) {
        return text;
    }
    text.chars().map(|c| if odd(c) { c.escape_default().to_string() } else { c.to_string() }).collect()
}

impl Error {
    pub fn msg(msg: impl Into<String>) -> Self {
        Error { msg: one_line(msg.into()), errno: None }
    }

    /// An error about a config field, e.g. `field("process.rlimits[1]", "hard limit ...")`.
    pub fn field(field: impl fmt::Display, msg: impl fmt::Display) -> Self {
        Error::msg(format!("{field}: {msg}"))
    }

    /// A failed system call on a path or object: "`what`: no such file or directory".
    pub fn os(what: impl fmt::Display, errno: i32) -> Self {
        Error { msg: one_line(format!("{what}: {}", errno_text(errno))), errno: Some(errno) }
    }

    pub fn with_errno(self, errno: i32) -> Self {
        Error { errno: Some(errno), ..self }
    }

    pub fn errno(&self) -> Option<i32> {
        self.errno
    }

    /// Prefix the message with where it happened, keeping the errno.
    pub fn context(self, what: impl fmt::Display) -> Self {
        Error { msg: format!("{}: {}", one_line(what.to_string()), self.msg), errno: self.errno }
    }

    pub fn message(&self) -> &str {
        &self.msg
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Self {
        Error { msg: errno_text(e.raw_os_error()), errno: Some(e.raw_os_error()) }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        match e.raw_os_error() {
            Some(n) => Error { msg: errno_text(n), errno: Some(n) },
            None => Error::msg(e.to_string()),
        }
    }
}

/// The errno's text as runc prints it: lower case, no "(os error N)" suffix, so callers that match
/// on "no such file or directory" or "permission denied" keep working.
pub fn errno_text(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => format!("errno {errno}"),
    }
}

/// Attach context to any fallible call: `openat(...).ctx(|| format!("open {path}"))?`.
pub trait Context<T> {
    fn ctx<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn ctx<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| e.into().context(what()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_text_is_runc_wording() {
        assert_eq!(errno_text(libc::ENOENT), "no such file or directory");
        assert_eq!(errno_text(libc::EPERM), "operation not permitted");
        assert_eq!(errno_text(libc::EACCES), "permission denied");
    }

    #[test]
    fn errors_are_one_printable_line() {
        // Found by the fuzzer: serde echoes a bad enum string, newline and all.
        let e = Error::field("linux.namespaces[1].type", "unknown variant `a\nb\u{0}\u{202e}c`").context("x\ny");
        assert_eq!(e.to_string(), "x\\ny: linux.namespaces[1].type: unknown variant `a\\nb\\u{0}\\u{202e}c`");
        assert_eq!(Error::msg("plain é").to_string(), "plain é");
    }

    #[test]
    fn context_keeps_errno() {
        let r: std::result::Result<(), rustix::io::Errno> = Err(rustix::io::Errno::NOENT);
        let e = r.ctx(|| "open /x").unwrap_err();
        assert_eq!(e.to_string(), "open /x: no such file or directory");
        assert_eq!(e.errno(), Some(libc::ENOENT));
    }
}
