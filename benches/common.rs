//! Helpers shared by the benchmarks in this folder, included by each with `#[path]` (a bench is a
//! crate of its own; this keeps one copy without a crate for a few functions). Not every bench
//! uses every helper.
#![allow(dead_code)]

// Not every bench that includes this file reads ../shared.
#[allow(unused_imports)]
pub use gc_testdata::shared;
use serde_json::Value;
use std::process::Command;

/// Peak resident set size of this process in MiB (Linux: VmHWM).
pub fn peak_rss_mib() -> Option<f64> {
    peak_rss_mib_of("self")
}

/// Peak resident set size in MiB of the process `pid` (a number, or `self`).
pub fn peak_rss_mib_of(pid: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Runs a side in a child process and parses the JSON line it prints last.
pub fn run_child(mut cmd: Command) -> Result<Value, String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| format!("{shown}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or(format!("{shown} printed no result"))?;
    serde_json::from_str(line).map_err(|e| format!("{shown}: {e}"))
}

/// Wall time of a whole process, median of `runs` runs after one unmeasured run (which warms the
/// page cache); its first output is shown on stderr so a wrong result is seen.
pub fn time_process(
    mut make: impl FnMut() -> Command,
    runs: usize,
) -> Result<std::time::Duration, String> {
    let mut times = Vec::new();
    for i in 0..=runs {
        let start = std::time::Instant::now();
        let out = make().output().map_err(|e| e.to_string())?;
        let took = start.elapsed();
        if !out.status.success() {
            return Err(format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        if i == 0 {
            eprintln!(
                "  first output: {}",
                String::from_utf8_lossy(&out.stdout).trim()
            );
        } else {
            times.push(took);
        }
    }
    times.sort();
    Ok(times[times.len() / 2])
}

/// The median of `values` (the mean of the middle two for an even count; NaN for none).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}
