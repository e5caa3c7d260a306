//! What `seccomp::prepare` costs in husk itself, without the noise of a whole `run`: the profile
//! of a config.json compiled by libseccomp (no cache) and taken from a warm cache, N times each.
//!
//!   seccomp_prepare CONFIG.json [N]     (scripts/bench-seccomp.sh runs it)

use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let config = args.next().ok_or("usage: seccomp_prepare CONFIG.json [N]")?;
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(200);
    let spec = libhusk::config::parse_spec(&std::fs::read(&config)?)?;
    let profile = spec.linux().as_ref().and_then(|l| l.seccomp().clone()).ok_or("no linux.seccomp")?;
    let cache = std::env::temp_dir().join(format!("husk-seccomp-prepare.{}", std::process::id()));
    let time = |cache: Option<&std::path::Path>| -> Result<f64, libhusk::Error> {
        let t = Instant::now();
        let p = libhusk::seccomp::prepare(&profile, cache)?;
        let us = t.elapsed().as_secs_f64() * 1e6;
        std::hint::black_box(p);
        Ok(us)
    };
    let cold: Vec<f64> = (0..n).map(|_| time(None)).collect::<Result<_, _>>()?;
    time(Some(&cache))?;
    let warm: Vec<f64> = (0..n).map(|_| time(Some(&cache))).collect::<Result<_, _>>()?;
    let insns = libhusk::seccomp::prepare(&profile, Some(&cache))?.len();
    let _ = std::fs::remove_dir_all(&cache);
    println!(
        "seccomp::prepare, {insns} BPF instructions, median of {n}: compile {:.0} µs, cached {:.0} µs",
        median(cold),
        median(warm)
    );
    Ok(())
}
