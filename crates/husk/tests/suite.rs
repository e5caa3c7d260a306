//! The suite's checks of itself:
//!
//! - a fresh machine has what it runs: every external command the tests, the scripts they run
//!   and husk itself exec comes from a package `scripts/test.sh` installs — one named in
//!   `scripts/test-packages.txt` or one they depend on — or from Debian's required set (what
//!   every Debian 12 has), as dpkg says (`dpkg-query -S`);
//! - hangs are bugs: every process a test starts runs under the watchdog (common/watchdog.rs),
//!   no test starts one past it, and a hung runtime call fails its test naming it and is killed.
mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

// ---- What the suite runs, and where it comes from ----

/// The install list: `scripts/test-packages.txt`, a package a line, `#` comments.
fn install_list() -> BTreeSet<String> {
    let text = fs::read_to_string(repo_root().join("scripts/test-packages.txt")).unwrap();
    text.lines()
        .filter_map(|l| l.split('#').next())
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// Shell words that are no commands of their own.
const KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac", "in", "function",
    "select", "time", "!", "{", "}", "[[", "]]", "coproc",
];

/// bash builtins (no package needed beyond bash).
#[rustfmt::skip]
const BUILTINS: &[&str] = &[
    ".", ":", "[", "alias", "bg", "bind", "break", "builtin", "caller", "cd", "command", "compgen", "complete",
    "continue", "declare", "dirs", "disown", "echo", "enable", "eval", "exec", "exit", "export", "false", "fc", "fg",
    "getopts", "hash", "help", "history", "jobs", "kill", "let", "local", "logout", "mapfile", "popd", "printf",
    "pushd", "pwd", "read", "readarray", "readonly", "return", "set", "shift", "shopt", "source", "suspend", "test",
    "times", "trap", "true", "type", "typeset", "ulimit", "umask", "unalias", "unset", "wait",
];

/// Commands that run another command: what follows them (after their options) is a command too.
/// The value: options of theirs that take a separate argument.
const WRAPPERS: &[(&str, &[&str])] = &[
    ("exec", &[]),
    ("command", &[]),
    ("builtin", &[]),
    ("nohup", &[]),
    ("setsid", &[]),
    ("env", &["-u", "-C", "-S"]),
    ("xargs", &["-I", "-n", "-d", "-L", "-P", "-s", "-E", "-a"]),
    ("timeout", &["-s", "-k", "--signal", "--kill-after"]),
    ("nice", &["-n"]),
    ("chroot", &[]),
    ("runuser", &["-u", "-g", "-G", "-l", "--user", "--group"]),
    ("setpriv", &["--reuid", "--regid", "--groups", "--inh-caps", "--bounding-set"]),
    ("unshare", &["--propagation", "--setgroups", "--map-user", "--map-group"]),
    ("nsenter", &["-t", "--target", "-S", "-G", "--setuid", "--setgid"]),
];

/// The commands a shell script runs: the first word of every simple command (after variable
/// assignments and redirections, and after wrappers like `timeout 5` or `xargs -r`), in
/// pipelines, lists, `$(...)`, backquotes, `if`/`while` conditions and case branches; not
/// here-documents, case patterns, `for` word lists, `[[ ]]`/`(( ))`, builtins, keywords, words
/// built from variables (unknowable here) or functions the scanned scripts define. Each with
/// the line it is on.
fn shell_commands(text: &str) -> Vec<(String, usize)> {
    Scanner::new(text).run()
}

/// The names of the functions a shell script defines (`name() {`, `function name`).
fn shell_functions(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for l in text.lines() {
        let t = l.trim_start();
        let t = t.strip_prefix("function ").unwrap_or(t);
        if let Some(i) = t.find("()") {
            let name = &t[..i];
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                out.insert(name.to_string());
            }
        }
    }
    out
}

struct Scanner {
    s: Vec<char>,
    i: usize,
    line: usize,
    out: Vec<(String, usize)>,
    /// Here-document delimiters seen on the current line, skipped from the next one.
    heredocs: Vec<String>,
}

/// Where the scanner is in a simple command.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Pos {
    /// The next word is a command (or an assignment, a redirection, a keyword).
    Command,
    /// Arguments: nothing to record until the next separator.
    Args,
    /// After a wrapper: options, then its command.
    Wrapped(usize),
    /// `for`/`select` (false) or `case` (true) headers: skip words up to `do` / `in`.
    Header(bool),
}

/// A word as the scanner read it: its text if it is literal (no expansion in it).
struct Word {
    text: String,
    literal: bool,
}

impl Scanner {
    fn new(text: &str) -> Scanner {
        Scanner { s: text.chars().collect(), i: 0, line: 1, out: vec![], heredocs: vec![] }
    }

    fn run(mut self) -> Vec<(String, usize)> {
        self.list(None);
        self.out
    }

    fn peek(&self, k: usize) -> Option<char> {
        self.s.get(self.i + k).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.s.get(self.i).copied()?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// A newline: here-documents announced on the line that ends are skipped.
    fn newline(&mut self) {
        for delim in std::mem::take(&mut self.heredocs) {
            loop {
                let start = self.i;
                while self.peek(0).is_some_and(|c| c != '\n') {
                    self.i += 1;
                }
                let l: String = self.s[start..self.i].iter().collect();
                if self.bump().is_none() || l.trim() == delim {
                    break;
                }
            }
        }
    }

    /// Commands up to `end` (`)` of `$(`, a backquote) or the end of the text.
    fn list(&mut self, end: Option<char>) {
        let mut pos = Pos::Command;
        // In a case body: the next word at command position starts a pattern.
        let mut case_depth: Vec<bool> = vec![];
        loop {
            let Some(c) = self.peek(0) else { return };
            match c {
                _ if Some(c) == end => {
                    self.bump();
                    return;
                }
                ' ' | '\t' => {
                    self.bump();
                }
                '\\' if self.peek(1) == Some('\n') => {
                    self.bump();
                    self.bump();
                }
                '#' => {
                    while self.peek(0).is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                '\n' => {
                    self.bump();
                    self.newline();
                    if !matches!(pos, Pos::Header(_)) {
                        pos = Pos::Command;
                    }
                }
                ';' => {
                    self.bump();
                    if self.peek(0) == Some(';') || self.peek(0) == Some('&') {
                        self.bump();
                        if let Some(top) = case_depth.last_mut() {
                            *top = true;
                        }
                    }
                    if !matches!(pos, Pos::Header(_)) {
                        pos = Pos::Command;
                    }
                }
                '&' | '|' => {
                    self.bump();
                    if self.peek(0) == Some(c) || (c == '|' && self.peek(0) == Some('&')) {
                        self.bump();
                    }
                    pos = Pos::Command;
                }
                '(' => {
                    self.bump();
                    if self.peek(0) == Some('(') {
                        self.skip_until("))");
                        pos = Pos::Args;
                    } else {
                        pos = Pos::Command;
                    }
                }
                ')' => {
                    self.bump();
                    pos = Pos::Command;
                }
                '<' | '>' => {
                    self.redirection(c);
                    if pos == Pos::Command || matches!(pos, Pos::Wrapped(_)) {
                        // The command may come after the redirection: `>x cmd`.
                        let keep = pos;
                        self.skip_blanks();
                        self.word();
                        pos = keep;
                    } else {
                        self.skip_blanks();
                        self.word();
                    }
                }
                _ => {
                    // A case pattern: everything up to its unquoted `)`.
                    if pos == Pos::Command && case_depth.last() == Some(&true) {
                        let w = self.peek_word();
                        if w != "esac" {
                            self.skip_pattern();
                            if let Some(top) = case_depth.last_mut() {
                                *top = false;
                            }
                            pos = Pos::Command;
                            continue;
                        }
                    }
                    let line = self.line;
                    let w = self.word();
                    // `name() {`: a function's definition.
                    if self.peek(0) == Some('(') && self.peek(1) == Some(')') {
                        self.bump();
                        self.bump();
                        pos = Pos::Command;
                        continue;
                    }
                    // `2>` and `2>&1`: the digits are the fd of a redirection.
                    if w.literal && !w.text.is_empty() && w.text.chars().all(|c| c.is_ascii_digit()) {
                        if let Some(r @ ('<' | '>')) = self.peek(0) {
                            self.redirection(r);
                            self.skip_blanks();
                            self.word();
                            continue;
                        }
                    }
                    pos = self.classify(pos, &w, line, &mut case_depth);
                }
            }
        }
    }

    /// What a word at `pos` means, and where that leaves the scanner.
    fn classify(&mut self, pos: Pos, w: &Word, line: usize, case_depth: &mut Vec<bool>) -> Pos {
        let t = w.text.as_str();
        match pos {
            // `case WORD in`: patterns follow.
            Pos::Header(true) if t == "in" => {
                case_depth.push(true);
                Pos::Command
            }
            Pos::Header(false) if t == "do" => Pos::Command,
            Pos::Header(h) => Pos::Header(h),
            Pos::Args => Pos::Args,
            Pos::Wrapped(skip) => {
                if skip > 0 {
                    return Pos::Wrapped(skip - 1);
                }
                if t.starts_with('-') || (t.contains('=') && !t.starts_with('=')) {
                    let takes = WRAPPERS.iter().any(|(_, opts)| opts.contains(&t));
                    return Pos::Wrapped(usize::from(takes));
                }
                if t.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                    // timeout's duration, nice's level
                    return Pos::Wrapped(0);
                }
                self.command(w, line)
            }
            Pos::Command => {
                // `x=1`, `y=$(cmd)`: the command, if any, comes after.
                if is_assignment(t) {
                    return Pos::Command;
                }
                if !w.literal {
                    return Pos::Args;
                }
                match t {
                    "for" | "select" => Pos::Header(false),
                    "case" => Pos::Header(true),
                    "esac" => {
                        case_depth.pop();
                        Pos::Args
                    }
                    "[[" => {
                        self.skip_until("]]");
                        Pos::Args
                    }
                    _ if KEYWORDS.contains(&t) => Pos::Command,
                    _ => self.command(w, line),
                }
            }
        }
    }

    fn command(&mut self, w: &Word, line: usize) -> Pos {
        if !w.literal || w.text.is_empty() {
            return Pos::Args;
        }
        let t = w.text.as_str();
        if WRAPPERS.iter().any(|(name, _)| *name == t) {
            if !BUILTINS.contains(&t) {
                self.out.push((t.to_string(), line));
            }
            return Pos::Wrapped(0);
        }
        if !BUILTINS.contains(&t) && !KEYWORDS.contains(&t) {
            self.out.push((t.to_string(), line));
        }
        Pos::Args
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(0), Some(' ' | '\t')) {
            self.bump();
        }
    }

    /// `<`, `>`, `>>`, `>&`, `<&`, `&>`, `<<`, `<<-`, `<<<`, `<(`: consumed; a here-document's
    /// delimiter remembered.
    fn redirection(&mut self, first: char) {
        self.bump();
        if first == '<' && self.peek(0) == Some('(') {
            // Process substitution: a command list.
            self.bump();
            self.list(Some(')'));
            return;
        }
        if first == '<' && self.peek(0) == Some('<') {
            self.bump();
            if self.peek(0) == Some('<') {
                self.bump();
                return;
            }
            if self.peek(0) == Some('-') {
                self.bump();
            }
            self.skip_blanks();
            let d = self.word();
            self.heredocs.push(d.text);
            return;
        }
        while matches!(self.peek(0), Some('>' | '&' | '|')) {
            self.bump();
        }
    }

    /// The next word's text without consuming it (for `esac` in a case body).
    fn peek_word(&self) -> String {
        self.s[self.i..].iter().take_while(|c| !c.is_whitespace() && !matches!(c, ';' | ')' | '|' | '&')).collect()
    }

    /// A case pattern, through its closing `)`.
    fn skip_pattern(&mut self) {
        let mut depth = 0;
        while let Some(c) = self.bump() {
            match c {
                '\'' | '"' => {
                    while let Some(q) = self.bump() {
                        if q == c {
                            break;
                        }
                    }
                }
                '(' => depth += 1,
                ')' if depth == 0 => return,
                ')' => depth -= 1,
                _ => {}
            }
        }
    }

    fn skip_until(&mut self, end: &str) {
        let e: Vec<char> = end.chars().collect();
        while self.i < self.s.len() {
            if self.s[self.i..].starts_with(&e) {
                for _ in 0..e.len() {
                    self.bump();
                }
                return;
            }
            self.bump();
        }
    }

    /// One word: quotes joined, expansions marking it non-literal, command substitutions in it
    /// scanned as command lists.
    fn word(&mut self) -> Word {
        let mut w = Word { text: String::new(), literal: true };
        while let Some(c) = self.peek(0) {
            match c {
                // `a=(x y)`: an array's words are no commands.
                '(' if w.text.ends_with('=') => {
                    w.literal = false;
                    let mut depth = 0;
                    while let Some(c) = self.bump() {
                        match c {
                            '(' => depth += 1,
                            ')' if depth == 1 => break,
                            ')' => depth -= 1,
                            _ => {}
                        }
                    }
                }
                ' ' | '\t' | '\n' | ';' | '&' | '|' | '<' | '>' | '(' | ')' => break,
                '\\' => {
                    self.bump();
                    if let Some(n) = self.bump() {
                        if n != '\n' {
                            w.text.push(n);
                        }
                    }
                }
                '\'' => {
                    self.bump();
                    while let Some(q) = self.bump() {
                        if q == '\'' {
                            break;
                        }
                        w.text.push(q);
                    }
                }
                '"' => {
                    self.bump();
                    while let Some(q) = self.peek(0) {
                        match q {
                            '"' => {
                                self.bump();
                                break;
                            }
                            '\\' => {
                                self.bump();
                                if let Some(n) = self.bump() {
                                    w.text.push(n);
                                }
                            }
                            '$' => {
                                self.dollar();
                                w.literal = false;
                            }
                            '`' => {
                                self.bump();
                                self.list(Some('`'));
                                w.literal = false;
                            }
                            _ => {
                                self.bump();
                                w.text.push(q);
                            }
                        }
                    }
                }
                '$' => {
                    self.dollar();
                    w.literal = false;
                }
                '`' => {
                    self.bump();
                    self.list(Some('`'));
                    w.literal = false;
                }
                _ => {
                    self.bump();
                    w.text.push(c);
                }
            }
        }
        w
    }

    /// `$name`, `${...}`, `$((...))`, `$(...)` (scanned), `$'...'`.
    fn dollar(&mut self) {
        self.bump();
        match self.peek(0) {
            Some('(') if self.peek(1) == Some('(') => self.skip_until("))"),
            Some('(') => {
                self.bump();
                self.list(Some(')'));
            }
            Some('{') => {
                let mut depth = 0;
                while let Some(c) = self.bump() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            Some('\'') => {
                self.bump();
                while let Some(c) = self.bump() {
                    if c == '\\' {
                        self.bump();
                    } else if c == '\'' {
                        break;
                    }
                }
            }
            _ => {
                while self.peek(0).is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || "@*#?$!-".contains(c)) {
                    let special = !self.peek(0).is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
                    self.bump();
                    if special {
                        break;
                    }
                }
            }
        }
    }
}

fn is_assignment(t: &str) -> bool {
    match t.split_once('=') {
        Some((name, _)) => {
            let name = name.strip_suffix('+').unwrap_or(name);
            let name = name.split('[').next().unwrap_or(name);
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit())
        }
        None => false,
    }
}

#[test]
fn the_shell_scanner_finds_commands_and_nothing_else() {
    let script = r#"#!/bin/bash
set -euo pipefail # comment: not a command
x=1 y=$(basename "$0") jq -r . </dev/null 2>&1 | sort -u >"$out"
for f in alpha beta; do grep -q x "$f" && sed 's/a/b/' || awk '{print}'; done
case "$1" in
    start|begin) ip link show ;;
    *.json) "$husk" state ;;
    other) return ;;
esac
if ! command -v curl >/dev/null; then timeout -k 5 10 tar -x; fi
cat >"$dir/f" <<EOF
not-a-command here
EOF
cat <<'X' | wc -l
also not
X
v=$(dirname "$(readlink -f x)") `uname -r`
[[ -e /x && $y == z ]] && mountpoint -q /x
echo "$(( 1 + 2 ))" "a $(findmnt -n /) b"
xargs -r -n1 umount -l <list
f() { local a; ls; }
"#;
    let got: Vec<String> = shell_commands(script).into_iter().map(|(c, _)| c).collect();
    let want = [
        "basename",
        "jq",
        "sort",
        "grep",
        "sed",
        "awk",
        "ip",
        "curl",
        "timeout",
        "tar",
        "cat",
        "cat",
        "wc",
        "dirname",
        "readlink",
        "uname",
        "mountpoint",
        "findmnt",
        "xargs",
        "umount",
        "ls",
    ];
    let mut g = got.clone();
    g.sort();
    let mut w: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    w.sort();
    assert_eq!(g, w, "in order: {got:?}");
    assert_eq!(shell_functions(script), BTreeSet::from(["f".to_string()]));
}

/// Where the host suite's commands are named: `scripts/test.sh` and the scripts it runs or
/// sources, the client scripts tests/clients.rs runs, and the scripts the Rust tests name
/// (`"scripts/..."` literals), each followed into what it runs (a repository script at a command
/// position) and sources (`. FILE`). Not the guest's (`scripts/guest/`: its image brings its own
/// packages, scripts/guest/build-image.sh).
fn scripts_the_suite_runs() -> Vec<PathBuf> {
    let root = repo_root();
    let mut todo = vec![root.join("scripts/test.sh")];
    // tests/clients.rs runs every scripts/clients/<name>.sh by a name it formats.
    for e in fs::read_dir(root.join("scripts/clients")).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "sh") {
            todo.push(e.path());
        }
    }
    for f in rust_files(&root.join("crates/husk/tests")) {
        for l in fs::read_to_string(&f).unwrap().lines() {
            let code = strip_comment(l);
            let mut rest = code;
            while let Some(i) = rest.find("\"scripts/") {
                let tail = &rest[i + 1..];
                let end = tail.find('"').unwrap_or(tail.len());
                let p = &tail[..end];
                if p.ends_with(".sh") && !p.contains('{') && !p.starts_with("scripts/guest/") {
                    todo.push(root.join(p));
                }
                rest = &tail[end..];
            }
        }
    }
    let mut seen = BTreeSet::new();
    let mut out = vec![];
    while let Some(p) = todo.pop() {
        if !seen.insert(p.clone()) || !p.is_file() {
            continue;
        }
        let text = fs::read_to_string(&p).unwrap();
        for (cmd, _) in shell_commands(&text) {
            if cmd.starts_with("scripts/") && !cmd.starts_with("scripts/guest/") {
                todo.push(root.join(cmd));
            }
        }
        for l in text.lines() {
            let t = l.trim_start();
            if let Some(f) = t.strip_prefix(". ").or_else(|| t.strip_prefix("source ")) {
                let f = f.split_whitespace().next().unwrap_or("");
                if f.starts_with("scripts/") {
                    todo.push(root.join(f));
                }
            }
        }
        out.push(p);
    }
    out
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// A line without its comment: from a `#` that starts a shell word, or from `//` (Rust).
fn strip_comment(l: &str) -> &str {
    let t = l.trim_start();
    if t.starts_with('#') || t.starts_with("//") {
        return "";
    }
    let cut = [l.find(" #"), l.find("\t#"), l.find("// ")].into_iter().flatten().min();
    cut.map_or(l, |i| &l[..i])
}

/// `Command::new` of a string literal in Rust source, outside comments: the programs it runs by
/// name.
fn rust_commands(text: &str) -> Vec<(String, usize)> {
    let needle = concat!("Command::new", "(\"");
    let mut out = vec![];
    for (n, l) in text.lines().enumerate() {
        let mut rest = strip_comment(l);
        while let Some(i) = rest.find(needle) {
            let tail = &rest[i + needle.len()..];
            if let Some(j) = tail.find('"') {
                let name = &tail[..j];
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "/._+-".contains(c)) {
                    out.push((name.to_string(), n + 1));
                }
            }
            rest = tail;
        }
    }
    out
}

/// Programs husk itself executes, and the source that says so (checked to still say so).
const RUNTIME_EXECS: &[(&str, &str)] = &[
    ("newuidmap", "crates/libhusk/src/userns.rs"),
    ("newgidmap", "crates/libhusk/src/userns.rs"),
    ("ps", "crates/husk/src/cgroup_cmds.rs"),
    ("criu", "crates/libhusk/src/criu/mod.rs"),
];

/// Python modules the suite imports: cri.py's, and the schema check of `features`.
const PYTHON_MODULES: &[(&str, &str)] = &[
    ("grpc", "scripts/clients/cri/cri.py"),
    ("google.protobuf", "scripts/clients/cri/cri.py"),
    ("jsonschema", "crates/libhusk/src/features.rs"),
];

/// Commands the host suite does not need, with the reason.
const NOT_ON_THE_HOST: &[(&str, &str)] = &[
    ("cargo", "put on PATH by scripts/lib/deps.sh's ensure_cargo (rustup)"),
    ("apparmor_parser", "lsm.rs: only its apparmor_ tests run it, in the guest (scripts/guest/build-image.sh)"),
    ("systemctl", "only cgroup2_/systemd_ tests run it, in the guest (scripts/guest/build-image.sh)"),
    ("systemd-run", "only cgroup2_rootless_ tests run it, in the guest (scripts/guest/build-image.sh)"),
    ("apt-get", "scripts/lib/deps.sh installs with it: part of apt (Debian's required set)"),
];

/// The PATH a root shell on Debian 12 has.
const ROOT_PATH: &[&str] = &["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

fn find_in_path(cmd: &str) -> Option<PathBuf> {
    if cmd.contains('/') {
        let p = PathBuf::from(cmd);
        return p.is_file().then_some(p);
    }
    ROOT_PATH.iter().map(|d| Path::new(d).join(cmd)).find(|p| p.is_file())
}

/// Installed packages: name -> (in Debian's required set, what it depends on, what it provides).
struct Installed {
    required: BTreeSet<String>,
    depends: HashMap<String, Vec<String>>,
    providers: HashMap<String, Vec<String>>,
}

fn installed() -> Installed {
    let o = output(Command::new("dpkg-query").args([
        "-W",
        "-f",
        "${db:Status-Abbrev}\t${Package}\t${Essential}\t${Priority}\t${Pre-Depends}, ${Depends}\t${Provides}\n",
    ]));
    assert!(o.status.success(), "dpkg-query -W: {}", String::from_utf8_lossy(&o.stderr));
    let names = |field: &str| -> Vec<String> {
        field
            .split([',', '|'])
            .filter_map(|d| d.split_whitespace().next())
            .map(|n| n.split(':').next().unwrap_or(n).to_string())
            .filter(|n| !n.is_empty())
            .collect()
    };
    let mut inst = Installed { required: BTreeSet::new(), depends: HashMap::new(), providers: HashMap::new() };
    for l in String::from_utf8_lossy(&o.stdout).lines() {
        let f: Vec<&str> = l.split('\t').collect();
        if f.len() < 6 || !f[0].starts_with("ii") {
            continue;
        }
        let name = f[1].to_string();
        if f[2] == "yes" || f[3] == "required" {
            inst.required.insert(name.clone());
        }
        inst.depends.entry(name.clone()).or_default().extend(names(f[4]));
        for p in names(f[5]) {
            inst.providers.entry(p).or_default().push(name.clone());
        }
    }
    inst
}

impl Installed {
    /// The packages `roots` bring in: themselves and what they depend on, transitively (every
    /// installed alternative, every installed provider of a virtual package).
    fn closure(&self, roots: &BTreeSet<String>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut todo: Vec<String> = roots.iter().cloned().collect();
        while let Some(p) = todo.pop() {
            let mut names = vec![p.clone()];
            names.extend(self.providers.get(&p).cloned().unwrap_or_default());
            for n in names {
                if self.depends.contains_key(&n) && out.insert(n.clone()) {
                    todo.extend(self.depends[&n].iter().cloned());
                }
            }
        }
        out
    }
}

/// The packages owning `path` (as found, resolved, and with or without /usr: dpkg records
/// /bin/ps where usrmerge puts it at /usr/bin/ps).
fn owners(path: &Path) -> BTreeSet<String> {
    let mut cands = vec![path.to_path_buf()];
    if let Ok(c) = fs::canonicalize(path) {
        cands.push(c);
    }
    for c in cands.clone() {
        let s = c.to_string_lossy().into_owned();
        cands.push(PathBuf::from(match s.strip_prefix("/usr") {
            Some(rest) => rest.to_string(),
            None => format!("/usr{s}"),
        }));
    }
    let o = output(Command::new("dpkg-query").arg("-S").args(&cands));
    let mut out = BTreeSet::new();
    for l in String::from_utf8_lossy(&o.stdout).lines() {
        if l.starts_with("diversion ") {
            continue;
        }
        if let Some((pkgs, _)) = l.split_once(": ") {
            out.extend(pkgs.split(", ").map(|p| p.split(':').next().unwrap_or(p).to_string()));
        }
    }
    out
}

/// A fresh Debian 12 has what `scripts/test.sh` runs once it installed its list: every command
/// the suite runs (scripts, tests, husk itself) and every Python module it imports is a file of
/// a package in the list, in what the list depends on, or in Debian's required set. A command
/// missing, or installed here by hand and named by no list, fails this test.
#[test]
fn every_command_the_suite_runs_comes_from_the_install_list() {
    let root = repo_root();
    let list = install_list();
    let inst = installed();
    let not_installed: Vec<&String> = list.iter().filter(|p| !inst.depends.contains_key(*p)).collect();
    assert!(
        not_installed.is_empty(),
        "scripts/test-packages.txt names packages that are not installed: {not_installed:?}"
    );
    let mut allowed = inst.closure(&list);
    allowed.extend(inst.required.iter().cloned());

    // Every command, with where it is used.
    let mut uses: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let scripts = scripts_the_suite_runs();
    let mut functions = BTreeSet::new();
    for s in &scripts {
        functions.extend(shell_functions(&fs::read_to_string(s).unwrap()));
    }
    for s in scripts.iter().filter(|s| s.extension().is_some_and(|x| x == "sh")) {
        let rel = s.strip_prefix(&root).unwrap().display().to_string();
        for (cmd, line) in shell_commands(&fs::read_to_string(s).unwrap()) {
            if functions.contains(&cmd) || root.join(&cmd).is_file() {
                continue; // a function, or one of the project's scripts
            }
            uses.entry(cmd).or_default().push(format!("{rel}:{line}"));
        }
    }
    for dir in ["crates/husk/tests", "crates/husk/src", "crates/libhusk/src"] {
        for f in rust_files(&root.join(dir)) {
            let rel = f.strip_prefix(&root).unwrap().display().to_string();
            for (cmd, line) in rust_commands(&fs::read_to_string(&f).unwrap()) {
                uses.entry(cmd).or_default().push(format!("{rel}:{line}"));
            }
        }
    }
    for (cmd, src) in RUNTIME_EXECS {
        let text = fs::read_to_string(root.join(src)).unwrap();
        assert!(text.contains(&format!("\"{cmd}\"")), "{src} no longer runs {cmd}: update RUNTIME_EXECS");
        uses.entry(cmd.to_string()).or_default().push(format!("{src} (husk runs it)"));
    }
    assert!(uses.len() > 40, "the scan found only {} commands: {uses:?}", uses.len());

    let mut wrong = vec![];
    let mut report = vec![];
    for (cmd, at) in &uses {
        if NOT_ON_THE_HOST.iter().any(|(c, _)| c == cmd) {
            continue;
        }
        let Some(path) = find_in_path(cmd) else {
            wrong.push(format!(
                "{cmd} (run at {}): not installed; name its package in scripts/test-packages.txt",
                at[0]
            ));
            continue;
        };
        let pkgs = owners(&path);
        match pkgs.iter().find(|p| allowed.contains(*p)) {
            Some(p) => report.push(format!("{cmd}: {p}")),
            None => wrong.push(format!(
                "{cmd} (run at {}): {} is {}, which scripts/test-packages.txt does not bring in",
                at[0],
                path.display(),
                if pkgs.is_empty() { "in no package".to_string() } else { format!("in {pkgs:?}") }
            )),
        }
    }
    for (module, src) in PYTHON_MODULES {
        let text = fs::read_to_string(root.join(src)).unwrap();
        assert!(text.contains(module), "{src} no longer imports {module}: update PYTHON_MODULES");
        let o = output(
            Command::new("/usr/bin/python3").args(["-c", &format!("import {module}; print({module}.__file__)")]),
        );
        let file = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if !o.status.success() || file.is_empty() {
            wrong.push(format!(
                "python module {module} ({src}): not installed; name its package in scripts/test-packages.txt"
            ));
            continue;
        }
        let pkgs = owners(Path::new(&file));
        match pkgs.iter().find(|p| allowed.contains(*p)) {
            Some(p) => report.push(format!("python {module}: {p}")),
            None => {
                wrong.push(format!("python module {module} ({src}): {file} is in {pkgs:?}, not brought in by the list"))
            }
        }
    }
    let names: Vec<String> = scripts.iter().map(|s| s.strip_prefix(&root).unwrap().display().to_string()).collect();
    eprintln!("scripts scanned: {}", names.join(" "));
    eprintln!(
        "{} commands and modules, each from a package the list brings in:\n  {}",
        report.len(),
        report.join("\n  ")
    );
    assert!(wrong.is_empty(), "what a fresh machine would lack:\n  {}", wrong.join("\n  "));
}

// ---- Hangs are bugs ----

/// No test starts a process past the watchdog: `Command::spawn`, `status` and `output` are
/// called in common/watchdog.rs only; everything else goes through it.
#[test]
fn tests_start_processes_only_under_the_watchdog() {
    let root = repo_root().join("crates/husk/tests");
    let mut found = vec![];
    for f in rust_files(&root) {
        if f.ends_with("common/watchdog.rs") {
            continue;
        }
        let text = fs::read_to_string(&f).unwrap();
        for (n, l) in text.lines().enumerate() {
            let code = l.split("//").next().unwrap_or("");
            let t = code.trim_start();
            for name in ["spawn", "status", "output", "wait_with_output"] {
                // (made here, so that this line is no match of its own)
                let call = format!(".{name}()");
                // The chained form (`Command::new(x)` on one line, `.status()` on the next) too.
                if code.contains(&call) || t.starts_with(&call[1..]) {
                    found.push(format!("{}:{}: {}", f.strip_prefix(&root).unwrap().display(), n + 1, l.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "processes started past the watchdog (use common::spawn/spawn_for/status/output, run_cmd or Ctx::husk):\n  {}",
        found.join("\n  ")
    );
}

/// A command past its bound: SIGTERM, then SIGKILL for what ignores it, below it too; its
/// owner fails naming it.
#[test]
fn watchdog_ends_a_hang_and_says_so() {
    let mut c = Command::new("sh");
    // The shell ignores SIGTERM, so only the SIGKILL after the grace period ends it; two
    // children sleep below it.
    c.args(["-c", "trap '' TERM; sleep 300 & sleep 301; wait"]).stdin(Stdio::null());
    let t = Instant::now();
    let mut g = spawn_for(&mut c, Duration::from_millis(800));
    let pid = g.id() as i32;
    assert!(wait_for(5, || common::watchdog::descendants(pid).len() == 2), "the shell's two children");
    let below = common::watchdog::descendants(pid);
    let err = g.wait_or_hang().expect_err("a hang must be reported");
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    assert!(err.starts_with("hang: ") && err.contains("sleep 301") && err.contains("800ms"), "{err}");
    for (p, start) in below {
        let gone = wait_for(5, || common::watchdog::start_time(p) != Some(start) || !alive(p as u32));
        assert!(gone, "process {p} below the hung one survived");
    }
    // A quick one is left alone.
    assert!(status(Command::new("true").stdin(Stdio::null())).success());
}

/// A runtime call that does not return (here `events`, which streams until killed) fails its
/// test with a message naming it, within its bound, and leaves no runtime process behind.
#[test]
fn a_runtime_call_past_its_bound_fails_the_test_and_is_killed() {
    let mut ctx = Ctx::new("suite-hang");
    let (id, _) = ctx.running("exec sleep 1000");
    let mut c = ctx.cmd();
    c.args(["events", "--interval", "100ms", &id]);
    let dir = ctx.dir.clone();
    let t = Instant::now();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || run_cmd(c, &dir, Duration::from_secs(2))));
    let msg = r.expect_err("a call past its bound must fail the test");
    let text = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(text.starts_with("hang: ") && text.contains("events") && text.contains("2s"), "{text}");
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    let left = || procs_of(&id, &ctx.dir).into_iter().filter(|(_, cmd)| cmd.contains("events")).count();
    assert!(wait_for(5, || left() == 0), "the hung runtime call is still there: {:?}", procs_of(&id, &ctx.dir));
    assert_eq!(ctx.status(&id), "running", "the container is not the runtime call's to end");
}
