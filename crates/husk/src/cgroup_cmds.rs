//! The cgroup commands' command lines: `update`, `pause`, `resume`, `ps`, `events`, with runc's
//! flags and value syntax (go-units sizes like `64M`, Go durations like `5s`).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use clap::Args;
use libhusk::container::{self, RdtUpdate};
use libhusk::{smallfile, Error, Result};
use serde_json::{json, Map, Value};

#[derive(Args, Debug, Clone)]
pub struct UpdateArgs {
    /// File with the resources to update (LinuxResources JSON), `-` for stdin; other flags are then ignored
    #[arg(long, short = 'r')]
    pub resources: Option<String>,
    /// Block IO weight (10..1000)
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period in µs
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota in µs per period
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU CFS burst in µs
    #[arg(long = "cpu-burst")]
    pub cpu_burst: Option<u64>,
    /// CPU shares (relative weight)
    #[arg(long = "cpu-share")]
    pub cpu_share: Option<u64>,
    /// Realtime period in µs
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    /// Realtime runtime in µs per period
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// 1: SCHED_IDLE for the cgroup, 0: normal
    #[arg(long = "cpu-idle", allow_hyphen_values = true)]
    pub cpu_idle: Option<i64>,
    /// CPUs to use, e.g. 0-2,4
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Memory limit (bytes, or with a unit: 64M, 1g)
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit; -1 for unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Maximum number of pids
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Intel RDT/CAT L3 cache schema
    #[arg(long = "l3-cache-schema")]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT/MBA memory bandwidth schema
    #[arg(long = "mem-bw-schema")]
    pub mem_bw_schema: Option<String>,
    pub id: String,
}

/// Long flags of these commands, for the single-dash spelling runc accepts.
pub const LONG_FLAGS: &[&str] = &[
    "resources",
    "blkio-weight",
    "cpu-period",
    "cpu-quota",
    "cpu-burst",
    "cpu-share",
    "cpu-rt-period",
    "cpu-rt-runtime",
    "cpu-idle",
    "cpuset-cpus",
    "cpuset-mems",
    "memory",
    "memory-reservation",
    "memory-swap",
    "pids-limit",
    "l3-cache-schema",
    "mem-bw-schema",
    "interval",
    "stats",
];

/// go-units' RAMInBytes: `1024`, `64M`, `64mb`, `1.5GiB`; units are powers of 1024.
pub fn parse_size(flag: &str, s: &str) -> Result<i64> {
    let bad = || Error::msg(format!("--{flag}: invalid size {s:?}"));
    let t = s.trim();
    let num_end = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(num_end);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(bad()),
    };
    let v = num * mult;
    if !v.is_finite() || v > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(v as i64)
}

/// Go's time.ParseDuration: `5s`, `100ms`, `1m30s`, `1.5h`, `250us`.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let bad = || Error::msg(format!("--interval: invalid duration {s:?}"));
    let mut rest = s.trim();
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let value: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let secs = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * secs;
        rest = &rest[u..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// The resources an `update` asks for, as LinuxResources JSON: the `-r` file, or the flags.
fn requested(a: &UpdateArgs) -> Result<String> {
    if let Some(src) = &a.resources {
        // Bounded, and a file must be a regular one (libhusk's smallfile.rs): `-r /dev/zero`
        // or a fifo is refused, `-r -` fed endless or binary input stops at its first bad byte.
        let data = if src == "-" {
            smallfile::read_document_from(std::io::stdin().lock(), "--resources: stdin")?
        } else {
            smallfile::read_document(Path::new(src)).map_err(|e| e.context("--resources"))?
        };
        return String::from_utf8(data).map_err(|_| Error::msg(format!("--resources {src}: invalid JSON: not UTF-8")));
    }
    let mut memory = Map::new();
    for (key, flag, v) in [
        ("limit", "memory", &a.memory),
        ("reservation", "memory-reservation", &a.memory_reservation),
        ("swap", "memory-swap", &a.memory_swap),
    ] {
        if let Some(v) = v {
            let n = if v.trim() == "-1" { -1 } else { parse_size(flag, v)? };
            memory.insert(key.into(), json!(n));
        }
    }
    let mut cpu = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            cpu.insert(k.into(), v);
        }
    };
    put("shares", a.cpu_share.map(|v| json!(v)));
    put("quota", a.cpu_quota.map(|v| json!(v)));
    put("period", a.cpu_period.map(|v| json!(v)));
    put("burst", a.cpu_burst.map(|v| json!(v)));
    put("realtimeRuntime", a.cpu_rt_runtime.map(|v| json!(v)));
    put("realtimePeriod", a.cpu_rt_period.map(|v| json!(v)));
    put("idle", a.cpu_idle.map(|v| json!(v)));
    put("cpus", a.cpuset_cpus.as_ref().map(|v| json!(v)));
    put("mems", a.cpuset_mems.as_ref().map(|v| json!(v)));
    let mut r = Map::new();
    if !memory.is_empty() {
        r.insert("memory".into(), Value::Object(memory));
    }
    if !cpu.is_empty() {
        r.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(w) = a.blkio_weight {
        r.insert("blockIO".into(), json!({ "weight": w }));
    }
    if let Some(l) = a.pids_limit {
        r.insert("pids".into(), json!({ "limit": l }));
    }
    Ok(Value::Object(r).to_string())
}

pub fn update(root: &Path, a: &UpdateArgs) -> Result<()> {
    let change = requested(a)?;
    let rdt = RdtUpdate { l3_cache_schema: a.l3_cache_schema.clone(), mem_bw_schema: a.mem_bw_schema.clone() };
    container::update(root, &a.id, &change, &rdt)
}

/// `ps`: `ps(1)` with the given options (default `-ef`), only the container's lines; or the
/// pids as a JSON array.
pub fn ps(root: &Path, id: &str, format: &str, ps_args: &[String]) -> Result<()> {
    let pids = container::pids(root, id)?;
    match format {
        "json" => {
            println!("{}", serde_json::to_string(&pids).unwrap_or_default());
            return Ok(());
        }
        "table" => {}
        other => return Err(Error::msg(format!("invalid format option {other:?} (table or json)"))),
    }
    let args: Vec<&str> = if ps_args.is_empty() { vec!["-ef"] } else { ps_args.iter().map(String::as_str).collect() };
    let out = std::process::Command::new("ps")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::from(e).context("exec ps"))?;
    if !out.status.success() {
        return Err(Error::msg(format!("ps {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let col = header
        .split_whitespace()
        .position(|f| f == "PID")
        .ok_or_else(|| Error::msg("couldn't find PID field in ps output"))?;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{header}");
    for line in lines {
        let pid = line.split_whitespace().nth(col).and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            let _ = writeln!(stdout, "{line}");
        }
    }
    Ok(())
}

pub fn events(root: &Path, id: &str, interval: &str, stats: bool) -> Result<()> {
    let interval = parse_duration(interval)?;
    container::events(root, id, interval, stats, |e| {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{e}").and_then(|_| out.flush()).map_err(|e| Error::from(e).context("write event"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_go_units_reads_them() {
        assert_eq!(parse_size("memory", "1024").unwrap(), 1024);
        assert_eq!(parse_size("memory", "64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("memory", "64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("memory", "64MB").unwrap(), 64 << 20);
        assert_eq!(parse_size("memory", "1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("memory", "1.5k").unwrap(), 1536);
        assert_eq!(parse_size("memory", "512 KB").unwrap(), 512 << 10);
        assert!(parse_size("memory", "12X").is_err());
        assert!(parse_size("memory", "M").is_err());
    }

    #[test]
    fn durations_as_go_reads_them() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
    }
}
