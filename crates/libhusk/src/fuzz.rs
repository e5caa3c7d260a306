//! A deterministic mutation fuzzer for husk's input parsers, on stable Rust (cargo-fuzz needs
//! nightly). Each target is a function from bytes to `Result`; the fuzzer feeds it the files of
//! its corpus (`fuzz/corpus/<target>/` in the repo) unchanged, then mutations of them — byte
//! edits and JSON-aware edits (a value swapped for an odd one, a key dropped or added, an array
//! item repeated) — and fails on a panic, a hang, or an error that is not one line.
//!
//! Bounded for CI by `HUSK_FUZZ_ITERS` (executions per target) and `HUSK_FUZZ_SECS` (seconds
//! per target), whichever ends first; `HUSK_FUZZ_SEED` varies the run (a failure prints the seed
//! and iteration that reproduce it, and writes the input to `target/fuzz-crashes/`). A crash
//! found goes into the corpus, where every later run replays it first.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// xorshift64*: deterministic, so a failure reproduces from its seed and iteration.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Tokens that break JSON or hit edge cases of the types behind it.
pub const JSON_TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\"",
    b"null",
    b"true",
    b"-1",
    b"1e309",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"\"RLIMIT_NOFILE\"",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b"\"type\"",
    b"\"path\"",
    b"\"\"",
    b"0",
    b"0.5",
    b"\"../../..\"",
    b"\"/proc/self/fd/3\"",
];

/// Values a JSON-aware mutation puts in place of any node.
fn odd_value(rng: &mut Rng) -> Value {
    match rng.below(16) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => Value::from(-1),
        3 => Value::from(0),
        4 => Value::from(u64::MAX),
        5 => Value::from(i64::MIN),
        6 => Value::from(1.5),
        7 => Value::from(""),
        8 => Value::from("/"),
        9 => Value::from("../".repeat(1 + rng.below(40))),
        10 => Value::from("x".repeat(1 + rng.below(5000))),
        11 => Value::from("\u{0}\n\u{202e}é"),
        12 => Value::Array(vec![]),
        13 => Value::Object(Default::default()),
        14 => Value::Array(vec![Value::from("a"); 1 + rng.below(300)]),
        _ => {
            let mut v = Value::from(1);
            for _ in 0..1 + rng.below(200) {
                v = Value::Array(vec![v]);
            }
            v
        }
    }
}

const ODD_KEYS: &[&str] =
    &["type", "path", "options", "source", "destination", "limit", "args", "id", "pid", "status", "huskUnknown"];

/// Every node of `v` as a JSON pointer.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                pointers(x, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// One structure-aware edit of a JSON document.
fn mutate_json(rng: &mut Rng, doc: &mut Value) {
    let mut ptrs = Vec::new();
    pointers(doc, String::new(), &mut ptrs);
    let at = rng.pick(&ptrs).clone();
    let Some(node) = doc.pointer_mut(&at) else { return };
    match rng.below(5) {
        0 | 1 => *node = odd_value(rng),
        2 => match node {
            Value::Object(m) if !m.is_empty() => {
                let k = m.keys().nth(rng.below(m.len())).cloned().unwrap_or_default();
                m.remove(&k);
            }
            Value::Array(a) if !a.is_empty() => {
                let i = rng.below(a.len());
                a.remove(i);
            }
            _ => *node = odd_value(rng),
        },
        3 => match node {
            Value::Object(m) => {
                m.insert(rng.pick(ODD_KEYS).to_string(), odd_value(rng));
            }
            Value::Array(a) if !a.is_empty() => {
                let x = a[rng.below(a.len())].clone();
                for _ in 0..1 + rng.below(3) {
                    a.push(x.clone());
                }
            }
            _ => *node = odd_value(rng),
        },
        _ => {
            // Swap in another node of the same document (a type from elsewhere).
            let other = rng.pick(&ptrs).clone();
            if let Some(x) = doc.pointer(&other).cloned() {
                if let Some(n) = doc.pointer_mut(&at) {
                    *n = x;
                }
            }
        }
    }
}

/// One to four byte-level edits: delete, overwrite, insert a token, truncate, duplicate a run.
fn mutate_bytes(rng: &mut Rng, data: &mut Vec<u8>, tokens: &[&[u8]]) {
    for _ in 0..1 + rng.below(4) {
        if data.is_empty() {
            let tok: &[u8] = tokens[rng.below(tokens.len())];
            data.extend_from_slice(tok);
            continue;
        }
        let at = rng.below(data.len());
        match rng.below(5) {
            0 => {
                data.remove(at);
            }
            1 => data[at] = rng.next_u64() as u8,
            2 => {
                let tok = *rng.pick(tokens);
                data.splice(at..at, tok.iter().copied());
            }
            3 => data.truncate(at),
            _ => {
                let end = (at + 1 + rng.below(64)).min(data.len());
                let run = data[at..end].to_vec();
                data.splice(at..at, run);
            }
        }
    }
}

/// One input from the seeds: a seed as is, mutated as JSON, or mutated as bytes.
pub fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], tokens: &[&[u8]]) -> Vec<u8> {
    let seed = rng.pick(seeds);
    if rng.below(2) == 0 {
        if let Ok(mut doc) = serde_json::from_slice::<Value>(seed) {
            for _ in 0..1 + rng.below(3) {
                mutate_json(rng, &mut doc);
            }
            let mut out = serde_json::to_vec(&doc).unwrap_or_default();
            if rng.below(4) == 0 {
                mutate_bytes(rng, &mut out, tokens);
            }
            return out;
        }
    }
    let mut out = seed.clone();
    mutate_bytes(rng, &mut out, tokens);
    out
}

/// The repo's corpus for `target` (`fuzz/corpus/<target>/`), sorted by name.
pub fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fuzz corpus {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap_or_default()).collect()
}

pub fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target)
}

/// How long one target runs: `HUSK_FUZZ_ITERS` executions or `HUSK_FUZZ_SECS` seconds.
pub struct Budget {
    pub iters: u64,
    pub time: Duration,
    pub seed: u64,
}

impl Budget {
    /// The CI default (`iters` executions, at most `secs` seconds), overridden by the env.
    pub fn from_env(iters: u64, secs: u64) -> Budget {
        let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
        let env_secs = env("HUSK_FUZZ_SECS");
        Budget {
            // A time given alone means: as many executions as fit in it.
            iters: env("HUSK_FUZZ_ITERS").unwrap_or(if env_secs.is_some() { u64::MAX } else { iters }),
            time: Duration::from_secs(env_secs.unwrap_or(secs)),
            seed: env("HUSK_FUZZ_SEED").unwrap_or(0x9E37_79B9_7F4A_7C15),
        }
    }
}

/// What a run did, for the log and the closing note.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    pub executions: u64,
    pub rejected: u64,
    pub slowest: Duration,
}

/// A single input that runs this long is a hang: the run stops with the input saved.
const HANG: Duration = Duration::from_secs(10);

/// Run `target` over the corpus, then over mutations until the budget is spent. Panics (failing
/// the test) on a panic in the target, a hang, or an error that is empty or not one line.
pub fn run<F>(name: &str, budget: &Budget, tokens: &[&[u8]], target: F) -> Report
where
    F: Fn(&[u8]) -> std::result::Result<(), String>,
{
    run_with(name, budget, |rng, seeds| mutate(rng, seeds, tokens), target)
}

/// `run` with a mutator of the caller's (e.g. one that edits whole command-line arguments).
pub fn run_with<F, M>(name: &str, budget: &Budget, mut mutator: M, target: F) -> Report
where
    F: Fn(&[u8]) -> std::result::Result<(), String>,
    M: FnMut(&mut Rng, &[Vec<u8>]) -> Vec<u8>,
{
    let seeds = corpus(name);
    assert!(!seeds.is_empty(), "fuzz corpus for {name} is empty");
    let current: Arc<Mutex<Vec<u8>>> = Arc::default();
    let started = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let watchdog = {
        let (current, started, done, name) = (current.clone(), started.clone(), done.clone(), name.to_string());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let since = started.load(Ordering::Relaxed);
                if since > 0 && t0.elapsed().saturating_sub(Duration::from_micros(since)) > HANG {
                    let input = current.lock().map(|c| c.clone()).unwrap_or_default();
                    let file = save_crash(&name, &input);
                    eprintln!("fuzz {name}: an input ran over {HANG:?} (hang); saved to {}", file.display());
                    std::process::abort();
                }
            }
        })
    };
    let mut rng = Rng(budget.seed | 1);
    let mut report = Report { executions: 0, rejected: 0, slowest: Duration::ZERO };
    let end = Instant::now() + budget.time;
    let mut i: u64 = 0;
    while i < seeds.len() as u64 || (i < budget.iters.saturating_add(seeds.len() as u64) && Instant::now() < end) {
        let input = match seeds.get(i as usize) {
            Some(s) => s.clone(),
            None => mutator(&mut rng, &seeds),
        };
        if let Ok(mut c) = current.lock() {
            c.clone_from(&input);
        }
        let t = Instant::now();
        started.store(t.duration_since(t0).as_micros().max(1) as u64, Ordering::Relaxed);
        let outcome = catch_unwind(AssertUnwindSafe(|| target(&input)));
        started.store(0, Ordering::Relaxed);
        report.slowest = report.slowest.max(t.elapsed());
        report.executions += 1;
        let fail = |what: String| -> ! {
            let file = save_crash(name, &input);
            panic!(
                "fuzz {name}: {what}\n  iteration {i}, HUSK_FUZZ_SEED={}, input saved to {}\n  input: {:?}",
                budget.seed,
                file.display(),
                String::from_utf8_lossy(&input).chars().take(600).collect::<String>()
            )
        };
        match outcome {
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                fail(format!("panicked: {msg}"))
            }
            Ok(Err(e)) => {
                report.rejected += 1;
                if e.trim().is_empty() || e.contains('\n') {
                    fail(format!("the error is not one line: {e:?}"))
                }
            }
            Ok(Ok(())) => {}
        }
        i += 1;
    }
    done.store(true, Ordering::Relaxed);
    let _ = watchdog.join();
    eprintln!(
        "fuzz {name}: {} executions ({} rejected, {} corpus files), slowest {:?}, 0 crashes",
        report.executions,
        report.rejected,
        seeds.len(),
        report.slowest
    );
    report
}

fn save_crash(name: &str, input: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-crashes");
    let _ = std::fs::create_dir_all(&dir);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in input {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
    }
    let file = dir.join(format!("{name}-{h:016x}"));
    let _ = std::fs::write(&file, input);
    file
}

/// The fuzz targets: what husk does with each kind of input before it touches the system.
pub mod targets {
    use oci_spec::runtime::Process;

    use crate::error::Result;

    fn text<T>(r: Result<T>) -> std::result::Result<(), String> {
        r.map(|_| ()).map_err(|e| e.to_string())
    }

    /// config.json: parse and validate, then every check create makes before its first mkdir
    /// (namespaces, net devices, cgroup resources, mount options, capabilities).
    pub fn config(data: &[u8]) -> std::result::Result<(), String> {
        text((|| {
            let spec = crate::config::parse_spec(data)?;
            let linux = spec.linux().as_ref();
            let plan = crate::namespaces::NsPlan::from_config(linux)?;
            if !plan.own_mount {
                crate::rootfs::check_without_mount_ns(&spec)?;
            }
            crate::netdevices::check(linux.and_then(|l| l.net_devices().as_ref()), plan.new_net)?;
            crate::rootfs::check_sysctls(&spec, &plan)?;
            if let Some(r) = linux.and_then(|l| l.resources().as_ref()) {
                crate::cgroups::check_resources(r)?;
            }
            for (i, m) in spec.mounts().iter().flatten().enumerate() {
                let opts = m.options().clone().unwrap_or_default();
                crate::rootfs::mount_options::parse(&opts).map_err(|e| e.context(format!("mounts[{i}].options")))?;
            }
            crate::rootfs::mount_options::rootfs_propagation(linux.and_then(|l| l.rootfs_propagation().as_deref()))?;
            let _ = crate::capabilities::CapSets::from_config(
                spec.process().as_ref().and_then(|p| p.capabilities().as_ref()),
            );
            Ok(())
        })())
    }

    /// process.json (`exec --process`): exec's own reader, over runc's default process, then the
    /// capability names it would apply.
    pub fn process(data: &[u8]) -> std::result::Result<(), String> {
        text((|| {
            let p = crate::container::parse_process_json(data, "--process", &Process::default())?;
            let _ = crate::capabilities::CapSets::from_config(p.capabilities().as_ref());
            Ok(())
        })())
    }

    /// `update --resources`: update's own reader, then the checks create makes on
    /// `linux.resources` (which update makes too, before it writes a file).
    pub fn resources(data: &[u8]) -> std::result::Result<(), String> {
        text((|| {
            let r = crate::container::parse_resources(&String::from_utf8_lossy(data))?;
            crate::cgroups::check_resources(&r)
        })())
    }

    /// The state file readers (the whole state, and the summary `state` and `list` read), then
    /// what `state` prints from it.
    pub fn state(data: &[u8]) -> std::result::Result<(), String> {
        if let Ok(s) = crate::state::parse_summary(data) {
            let _ = serde_json::to_string(&s.oci_with(crate::state::Status::Stopped));
        }
        text((|| {
            let s = crate::state::parse_state(data)?;
            let _ = serde_json::to_string(&s.oci_with(s.status));
            Ok(())
        })())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Executions per target in CI (and the seconds cap); the README's longer run raises both.
    const CI_ITERS: u64 = 20_000;

    #[test]
    fn fuzz_config() {
        let r = run("config", &Budget::from_env(CI_ITERS, 20), JSON_TOKENS, targets::config);
        assert!(r.rejected > 0 && r.rejected < r.executions, "the mutations reach both outcomes: {r:?}");
    }

    #[test]
    fn fuzz_process() {
        let r = run("process", &Budget::from_env(CI_ITERS, 20), JSON_TOKENS, targets::process);
        assert!(r.rejected > 0 && r.rejected < r.executions, "{r:?}");
    }

    #[test]
    fn fuzz_resources() {
        let r = run("resources", &Budget::from_env(CI_ITERS, 20), JSON_TOKENS, targets::resources);
        assert!(r.rejected > 0 && r.rejected < r.executions, "{r:?}");
    }

    #[test]
    fn fuzz_state() {
        let r = run("state", &Budget::from_env(CI_ITERS, 20), JSON_TOKENS, targets::state);
        assert!(r.rejected > 0 && r.rejected < r.executions, "{r:?}");
    }

    #[test]
    fn mutations_are_deterministic() {
        let seeds = vec![br#"{"a":[1,2,{"b":"c"}]}"#.to_vec()];
        let run = |seed| {
            let mut rng = Rng(seed);
            (0..50).map(|_| mutate(&mut rng, &seeds, JSON_TOKENS)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }
}
