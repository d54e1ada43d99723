//! The standard `process_*` metrics (what Prometheus' client libraries export: resident and
//! virtual memory, CPU seconds, open and maximum file descriptors, start time), read from
//! `/proc/self` at each scrape. Linux only; elsewhere the collector writes nothing.
//!
//! Hand-written rather than a crate: prometheus-client has no process collector, and the
//! one for the `metrics` facade needs a global recorder, which a devnet of several nodes in
//! one process cannot share. It is five numbers out of two files.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// Reads `/proc/self` at each scrape.
#[derive(Debug)]
pub struct ProcessCollector;

/// What one read of `/proc/self` gives.
#[derive(Debug, PartialEq)]
pub struct ProcessStats {
    /// User + system CPU seconds.
    pub cpu_seconds: f64,
    /// Virtual memory, bytes.
    pub virtual_bytes: u64,
    /// Resident memory, bytes.
    pub resident_bytes: u64,
    /// Start time, seconds since the epoch.
    pub start_time_seconds: f64,
}

/// Parses `/proc/self/stat` (fields after the command name, which may hold spaces and
/// parentheses, so the split is at the last `)`), given the clock tick rate, the page size
/// and the boot time (`btime` of `/proc/stat`).
pub fn parse_stat(stat: &str, ticks: f64, page: u64, boot_time: u64) -> Option<ProcessStats> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): field N is f[N - 3].
    let num = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some(ProcessStats {
        cpu_seconds: (num(14)? + num(15)?) as f64 / ticks,
        virtual_bytes: num(23)?,
        resident_bytes: num(24)? * page,
        start_time_seconds: boot_time as f64 + num(22)? as f64 / ticks,
    })
}

fn read() -> Option<(ProcessStats, u64, u64)> {
    // SAFETY: sysconf and getrlimit only read process-wide values into what they are given.
    let (ticks, page, max_fds) = unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 { lim.rlim_cur } else { 0 };
        (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE), max)
    };
    if ticks <= 0 || page <= 0 {
        return None;
    }
    let boot = std::fs::read_to_string("/proc/stat").ok()?.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())?;
    let stats = parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?, ticks as f64, page as u64, boot)?;
    let fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some((stats, fds, max_fds))
}

impl Collector for ProcessCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let Some((s, fds, max_fds)) = read() else { return Ok(()) };
        enc.encode_descriptor("process_cpu_seconds", "Total user and system CPU time spent in seconds.", None, MetricType::Counter)?
            .encode_counter::<NoLabelSet, _, u64>(&s.cpu_seconds, None)?;
        for (name, help, v) in [
            ("process_resident_memory_bytes", "Resident memory size in bytes.", s.resident_bytes as f64),
            ("process_virtual_memory_bytes", "Virtual memory size in bytes.", s.virtual_bytes as f64),
            ("process_open_fds", "Number of open file descriptors.", fds as f64),
            ("process_max_fds", "Maximum number of open file descriptors.", max_fds as f64),
            ("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", s.start_time_seconds),
        ] {
            enc.encode_descriptor(name, help, None, MetricType::Gauge)?.encode_gauge(&v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_the_command_name() {
        // A command name with a space and a parenthesis, as a process may choose.
        let line = "4242 (my (node) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 9 0 1000 52428800 3000 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(line, 100.0, 4096, 1_700_000_000).unwrap();
        assert_eq!(s, ProcessStats { cpu_seconds: 3.0, virtual_bytes: 52_428_800, resident_bytes: 3000 * 4096, start_time_seconds: 1_700_000_010.0 });
        assert!(parse_stat("garbage", 100.0, 4096, 0).is_none());
    }

    #[test]
    fn this_process_reads() {
        let (s, fds, _) = read().expect("/proc/self reads on Linux");
        assert!(s.resident_bytes > 0 && fds > 0);
    }
}
