//! `events --stats`: the container's usage read from its cgroup files, in runc's JSON shape
//! (runc's types/events.go: Go's `omitempty` drops zero numbers and empty lists, never structs).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};

use super::{Cgroup, Placement};

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

/// A number file; "max" reads as `max_as`.
fn num(dir: &Path, file: &str, max_as: u64) -> u64 {
    match read(dir, file) {
        Some(s) if s.trim() == "max" => max_as,
        Some(s) => s.trim().parse().unwrap_or(0),
        None => 0,
    }
}

/// `key value` lines (memory.stat, cpu.stat, memory.events, cpuacct.stat).
fn keyed(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    read(dir, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_owned(), it.next()?.parse().ok()?))
        })
        .collect()
}

/// Insert `v` under `k` unless it is 0 (Go's omitempty).
fn put(m: &mut Map<String, Value>, k: &str, v: u64) {
    if v != 0 {
        m.insert(k.to_owned(), json!(v));
    }
}

fn put_list(m: &mut Map<String, Value>, k: &str, v: Vec<u64>) {
    if !v.is_empty() {
        m.insert(k.to_owned(), json!(v));
    }
}

/// "0-2,5" → [0, 1, 2, 5].
pub fn cpu_list(s: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u64>(), b.parse::<u64>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u64>().ok()),
        }
    }
    out
}

impl Cgroup {
    fn v1(&self, controller: &str) -> Option<&Placement> {
        self.placements.iter().find(|p| !p.v2 && p.has(controller))
    }

    fn v2p(&self) -> Option<&Placement> {
        self.placements.iter().find(|p| p.v2)
    }

    /// The stats object (`data` of a `stats` event).
    pub fn stats(&self) -> Value {
        json!({
            "cpu": self.cpu_stats(),
            "cpuset": self.cpuset_stats(),
            "memory": self.memory_stats(),
            "pids": self.pids_stats(),
            "blkio": self.blkio_stats(),
            "hugetlb": self.hugetlb_stats(),
            "intel_rdt": {},
            "network_interfaces": null,
        })
    }

    fn cpu_stats(&self) -> Value {
        let mut usage = Map::new();
        let mut throttling = Map::new();
        if let Some(p) = self.v1("cpuacct") {
            let d = &p.dir;
            put(&mut usage, "total", num(d, "cpuacct.usage", 0));
            let list = |f: &str| -> Vec<u64> {
                read(d, f).unwrap_or_default().split_whitespace().filter_map(|n| n.parse().ok()).collect()
            };
            put_list(&mut usage, "percpu", list("cpuacct.usage_percpu"));
            // usage_all: "cpu user system" per line after a header.
            let all = read(d, "cpuacct.usage_all").unwrap_or_default();
            let rows: Vec<Vec<u64>> = all
                .lines()
                .skip(1)
                .map(|l| l.split_whitespace().filter_map(|n| n.parse().ok()).collect::<Vec<u64>>())
                .filter(|r| r.len() == 3)
                .collect();
            put_list(&mut usage, "percpu_kernel", rows.iter().map(|r| r[2]).collect());
            put_list(&mut usage, "percpu_user", rows.iter().map(|r| r[1]).collect());
            // cpuacct.stat counts USER_HZ ticks.
            let ticks = keyed(d, "cpuacct.stat");
            let tick_ns = 1_000_000_000 / clock_ticks();
            usage.insert("kernel".into(), json!(ticks.get("system").copied().unwrap_or(0) * tick_ns));
            usage.insert("user".into(), json!(ticks.get("user").copied().unwrap_or(0) * tick_ns));
        } else if let Some(p) = self.v2p() {
            let s = keyed(&p.dir, "cpu.stat");
            let g = |k: &str| s.get(k).copied().unwrap_or(0);
            put(&mut usage, "total", g("usage_usec") * 1000);
            usage.insert("kernel".into(), json!(g("system_usec") * 1000));
            usage.insert("user".into(), json!(g("user_usec") * 1000));
            put(&mut throttling, "periods", g("nr_periods"));
            put(&mut throttling, "throttledPeriods", g("nr_throttled"));
            put(&mut throttling, "throttledTime", g("throttled_usec") * 1000);
        }
        if !usage.contains_key("kernel") {
            usage.insert("kernel".into(), json!(0));
            usage.insert("user".into(), json!(0));
        }
        if let Some(p) = self.v1("cpu") {
            let s = keyed(&p.dir, "cpu.stat");
            let g = |k: &str| s.get(k).copied().unwrap_or(0);
            put(&mut throttling, "periods", g("nr_periods"));
            put(&mut throttling, "throttledPeriods", g("nr_throttled"));
            put(&mut throttling, "throttledTime", g("throttled_time"));
        }
        json!({"usage": usage, "throttling": throttling})
    }

    fn cpuset_stats(&self) -> Value {
        let mut m = Map::new();
        let (dir, v1) = match (self.v1("cpuset"), self.v2p()) {
            (Some(p), _) => (Some(p.dir.as_path()), true),
            (None, Some(p)) => (Some(p.dir.as_path()), false),
            _ => (None, false),
        };
        let list = |f: &str| dir.and_then(|d| read(d, f)).map(|s| cpu_list(&s)).unwrap_or_default();
        let (cpus, mems) =
            if v1 { ("cpuset.cpus", "cpuset.mems") } else { ("cpuset.cpus.effective", "cpuset.mems.effective") };
        put_list(&mut m, "cpus", list(cpus));
        let flag = |f: &str| if v1 { dir.map(|d| num(d, f, 0)).unwrap_or(0) } else { 0 };
        m.insert("cpu_exclusive".into(), json!(flag("cpuset.cpu_exclusive")));
        put_list(&mut m, "mems", list(mems));
        for (k, f) in [
            ("mem_hardwall", "cpuset.mem_hardwall"),
            ("mem_exclusive", "cpuset.mem_exclusive"),
            ("memory_migrate", "cpuset.memory_migrate"),
            ("memory_spread_page", "cpuset.memory_spread_page"),
            ("memory_spread_slab", "cpuset.memory_spread_slab"),
            ("memory_pressure", "cpuset.memory_pressure"),
            ("sched_load_balance", "cpuset.sched_load_balance"),
        ] {
            m.insert(k.into(), json!(flag(f)));
        }
        let relax = if v1 {
            dir.and_then(|d| read(d, "cpuset.sched_relax_domain_level")).and_then(|s| s.trim().parse::<i64>().ok())
        } else {
            None
        };
        m.insert("sched_relax_domain_level".into(), json!(relax.unwrap_or(0)));
        Value::Object(m)
    }

    fn memory_stats(&self) -> Value {
        let entry = |limit: u64, usage: u64, max: u64, failcnt: u64| {
            let mut e = Map::new();
            e.insert("limit".into(), json!(limit));
            put(&mut e, "usage", usage);
            put(&mut e, "max", max);
            e.insert("failcnt".into(), json!(failcnt));
            Value::Object(e)
        };
        let mut m = Map::new();
        if let Some(p) = self.v1("memory") {
            let d = &p.dir;
            let group = |prefix: &str| {
                entry(
                    num(d, &format!("{prefix}limit_in_bytes"), 0),
                    num(d, &format!("{prefix}usage_in_bytes"), 0),
                    num(d, &format!("{prefix}max_usage_in_bytes"), 0),
                    num(d, &format!("{prefix}failcnt"), 0),
                )
            };
            let raw = keyed(d, "memory.stat");
            put(&mut m, "cache", raw.get("cache").copied().unwrap_or(0));
            m.insert("usage".into(), group("memory."));
            m.insert("swap".into(), group("memory.memsw."));
            m.insert("kernel".into(), group("memory.kmem."));
            m.insert("kernelTCP".into(), group("memory.kmem.tcp."));
            if !raw.is_empty() {
                m.insert("raw".into(), json!(raw));
            }
        } else if let Some(p) = self.v2p() {
            let d = &p.dir;
            let raw = keyed(d, "memory.stat");
            put(&mut m, "cache", raw.get("file").copied().unwrap_or(0));
            let (usage, limit) = (num(d, "memory.current", 0), num(d, "memory.max", u64::MAX));
            let failcnt = keyed(d, "memory.events").get("max").copied().unwrap_or(0);
            m.insert("usage".into(), entry(limit, usage, num(d, "memory.peak", 0), failcnt));
            // v1 reports memory+swap: so does runc on v2.
            let (su, sl) = (num(d, "memory.swap.current", 0), num(d, "memory.swap.max", u64::MAX));
            let swap_limit = if sl == u64::MAX || limit == u64::MAX { u64::MAX } else { sl.saturating_add(limit) };
            m.insert("swap".into(), entry(swap_limit, su + usage, 0, 0));
            m.insert("kernel".into(), entry(0, 0, 0, 0));
            m.insert("kernelTCP".into(), entry(0, 0, 0, 0));
            if !raw.is_empty() {
                m.insert("raw".into(), json!(raw));
            }
        } else {
            for k in ["usage", "swap", "kernel", "kernelTCP"] {
                m.insert(k.into(), entry(0, 0, 0, 0));
            }
        }
        Value::Object(m)
    }

    fn pids_stats(&self) -> Value {
        let mut m = Map::new();
        if let Some(p) = self.v1("pids") {
            put(&mut m, "current", num(&p.dir, "pids.current", 0));
            put(&mut m, "limit", num(&p.dir, "pids.max", 0));
        } else if let Some(p) = self.v2p() {
            put(&mut m, "current", num(&p.dir, "pids.current", 0));
            put(&mut m, "limit", num(&p.dir, "pids.max", u64::MAX));
        }
        Value::Object(m)
    }

    fn blkio_stats(&self) -> Value {
        let mut m = Map::new();
        let entry = |major: u64, minor: u64, op: &str, value: u64| {
            let mut e = Map::new();
            put(&mut e, "major", major);
            put(&mut e, "minor", minor);
            if !op.is_empty() {
                e.insert("op".into(), json!(op));
            }
            put(&mut e, "value", value);
            Value::Object(e)
        };
        if let Some(p) = self.v1("blkio") {
            // v1 files: "maj:min Op value" lines and a "Total N" line. CFQ's files first, then
            // BFQ's, then the throttle layer's, as runc falls back.
            let parse = |file: &str| -> Vec<Value> {
                read(&p.dir, file)
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| {
                        let f: Vec<&str> = l.split_whitespace().collect();
                        let (dev, op, v) = (f.first()?, f.get(1)?, f.get(2)?);
                        let (ma, mi) = dev.split_once(':')?;
                        Some(entry(ma.parse().ok()?, mi.parse().ok()?, op, v.parse().ok()?))
                    })
                    .collect()
            };
            let prefix = ["blkio.", "blkio.bfq.", "blkio.throttle."]
                .into_iter()
                .find(|pre| !parse(&format!("{pre}io_serviced_recursive")).is_empty())
                .unwrap_or("blkio.throttle.");
            for (k, f) in [
                ("ioServiceBytesRecursive", "io_service_bytes_recursive"),
                ("ioServicedRecursive", "io_serviced_recursive"),
                ("ioQueueRecursive", "io_queued_recursive"),
                ("ioServiceTimeRecursive", "io_service_time_recursive"),
                ("ioWaitTimeRecursive", "io_wait_time_recursive"),
                ("ioMergedRecursive", "io_merged_recursive"),
                ("ioTimeRecursive", "time_recursive"),
                ("sectorsRecursive", "sectors_recursive"),
            ] {
                let v = parse(&format!("{prefix}{f}"));
                if !v.is_empty() {
                    m.insert(k.into(), Value::Array(v));
                }
            }
        } else if let Some(p) = self.v2p() {
            let (mut bytes, mut ios) = (Vec::new(), Vec::new());
            for line in read(&p.dir, "io.stat").unwrap_or_default().lines() {
                let mut f = line.split_whitespace();
                let Some((ma, mi)) = f.next().and_then(|d| d.split_once(':')) else { continue };
                let (Ok(ma), Ok(mi)) = (ma.parse::<u64>(), mi.parse::<u64>()) else { continue };
                for kv in f {
                    let Some((k, v)) = kv.split_once('=') else { continue };
                    let v: u64 = v.parse().unwrap_or(0);
                    match k {
                        "rbytes" => bytes.push(entry(ma, mi, "Read", v)),
                        "wbytes" => bytes.push(entry(ma, mi, "Write", v)),
                        "rios" => ios.push(entry(ma, mi, "Read", v)),
                        "wios" => ios.push(entry(ma, mi, "Write", v)),
                        _ => {}
                    }
                }
            }
            if !bytes.is_empty() {
                m.insert("ioServiceBytesRecursive".into(), Value::Array(bytes));
            }
            if !ios.is_empty() {
                m.insert("ioServicedRecursive".into(), Value::Array(ios));
            }
        }
        Value::Object(m)
    }

    fn hugetlb_stats(&self) -> Value {
        let mut m = Map::new();
        let sizes = super::hugetlb::sizes();
        let (dir, v2) = match (self.v1("hugetlb"), self.v2p()) {
            (Some(p), _) => (p.dir.as_path(), false),
            (None, Some(p)) => (p.dir.as_path(), true),
            _ => return Value::Object(m),
        };
        for s in sizes {
            let mut e = Map::new();
            if v2 {
                if !dir.join(format!("hugetlb.{s}.current")).exists() {
                    continue;
                }
                put(&mut e, "usage", num(dir, &format!("hugetlb.{s}.current"), 0));
                let ev = keyed(dir, &format!("hugetlb.{s}.events"));
                e.insert("failcnt".into(), json!(ev.get("max").copied().unwrap_or(0)));
            } else {
                if !dir.join(format!("hugetlb.{s}.usage_in_bytes")).exists() {
                    continue;
                }
                put(&mut e, "usage", num(dir, &format!("hugetlb.{s}.usage_in_bytes"), 0));
                put(&mut e, "max", num(dir, &format!("hugetlb.{s}.max_usage_in_bytes"), 0));
                e.insert("failcnt".into(), json!(num(dir, &format!("hugetlb.{s}.failcnt"), 0)));
            }
            m.insert(s, Value::Object(e));
        }
        Value::Object(m)
    }
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_lists() {
        assert_eq!(super::cpu_list("0-2,5\n"), [0, 1, 2, 5]);
        assert_eq!(super::cpu_list(""), Vec::<u64>::new());
    }
}
