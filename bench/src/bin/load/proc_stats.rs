//! CPU time figures from Linux's `/proc`: per process and for the whole machine.

use std::time::Duration;

use anyhow::Context;

/// `sysconf(_SC_CLK_TCK)`, which is 100 on Linux for x86-64 and arm64.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// Reads the CPU time of a process from its `/proc/…/stat` file: fields 14 and 15 (utime,
/// stime) in clock ticks.
pub fn cpu_time(path: &str) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    // The command name in field 2 may contain spaces, so count fields after its closing bracket.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("unexpected format of {path}"))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| -> anyhow::Result<u64> {
        fields
            .get(index)
            .and_then(|value| value.parse().ok())
            .with_context(|| format!("unexpected format of {path}"))
    };
    // After the name, field 3 (state) is index 0, so utime (14) is index 11 and stime index 12.
    let total_ticks = ticks(11)? + ticks(12)?;
    Ok(ticks_to_duration(total_ticks))
}

/// Reads the CPU time all processes of the machine have used since boot, from the `cpu` line
/// of `/proc/stat`: everything except idle and iowait.
pub fn machine_busy_time() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
    let line = stat
        .lines()
        .find(|line| line.starts_with("cpu "))
        .context("no cpu line in /proc/stat")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|value| value.parse().context("unexpected format of /proc/stat"))
        .collect::<anyhow::Result<_>>()?;
    // user nice system idle iowait irq softirq steal …; guest time is already in user.
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&index| ticks.get(index))
        .sum();
    Ok(ticks_to_duration(busy))
}

fn ticks_to_duration(ticks: u64) -> Duration {
    Duration::from_secs_f64(ticks as f64 / CLOCK_TICKS_PER_SECOND)
}
