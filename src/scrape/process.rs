//! The standard `process_*` metrics of the exporter itself, read from `/proc/self` at scrape time.
//!
//! These describe this process, so they always read the real `/proc` (not `--path.procfs`, which
//! may be the host's procfs mounted into a container with another PID namespace).

use std::path::Path;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// Numbers of one process, as Go's client_golang process collector reports them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_memory_bytes: u64,
    pub virtual_memory_bytes: u64,
    pub start_time_seconds: f64,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
}

/// Why the process statistics could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {path}: {reason}")]
    Parse { path: String, reason: String },
}

/// Parses `/proc/<pid>/stat` (fields after the parenthesised command name, which may hold spaces).
pub fn parse_stat(
    text: &str,
    ticks_per_second: f64,
    boot_time_seconds: f64,
) -> Result<ProcessStats, String> {
    let after_comm = text
        .rfind(')')
        .map(|index| &text[index + 1..])
        .ok_or("no ')' after the command name")?;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // fields[0] is field 3 (state); utime is field 14, stime 15, starttime 22, vsize 23.
    let field = |number: usize| -> Result<u64, String> {
        fields
            .get(number - 3)
            .ok_or_else(|| format!("field {number} missing"))?
            .parse::<u64>()
            .map_err(|error| format!("field {number}: {error}"))
    };
    Ok(ProcessStats {
        cpu_seconds: (field(14)? + field(15)?) as f64 / ticks_per_second,
        start_time_seconds: boot_time_seconds + field(22)? as f64 / ticks_per_second,
        virtual_memory_bytes: field(23)?,
        resident_memory_bytes: 0,
        open_fds: None,
        max_fds: None,
    })
}

/// Parses the `btime` line of `/proc/stat`.
pub fn parse_boot_time(text: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse::<f64>().ok())
}

/// Parses the soft "Max open files" limit from `/proc/<pid>/limits`.
pub fn parse_max_fds(text: &str) -> Option<u64> {
    let line = text
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Reads the statistics of this process.
pub fn read_self() -> Result<ProcessStats, ProcessError> {
    let proc_root = Path::new("/proc");
    let read = |relative: &str| {
        let path = proc_root.join(relative);
        std::fs::read_to_string(&path).map_err(|source| ProcessError::Io {
            path: path.display().to_string(),
            source,
        })
    };
    let boot_time = parse_boot_time(&read("stat")?).unwrap_or(0.0);
    let mut stats =
        parse_stat(&read("self/stat")?, TICKS_PER_SECOND, boot_time).map_err(|reason| {
            ProcessError::Parse {
                path: "/proc/self/stat".into(),
                reason,
            }
        })?;
    // VmRSS is in kB already; using it avoids asking sysconf for the page size.
    stats.resident_memory_bytes = parse_status_kib(&read("self/status")?, "VmRSS:").unwrap_or(0);
    stats.open_fds = std::fs::read_dir(proc_root.join("self/fd"))
        .ok()
        .map(|entries| entries.count() as u64);
    stats.max_fds = read("self/limits").ok().as_deref().and_then(parse_max_fds);
    Ok(stats)
}

/// USER_HZ, the unit of the tick counts in `/proc/<pid>/stat`: 100 on every Linux architecture
/// (it is part of the kernel's user ABI, independent of the kernel's internal HZ).
const TICKS_PER_SECOND: f64 = 100.0;

/// Parses a `VmRSS:`-style line of `/proc/<pid>/status` (kB) into bytes.
pub fn parse_status_kib(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|line| line.starts_with(key))?;
    let kib: u64 = line[key.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// Encodes the process families at scrape time.
#[derive(Debug, Default)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(stats) = read_self() else {
            return Ok(());
        };
        let counter = ConstCounter::new(stats.cpu_seconds);
        counter.encode(encoder.encode_descriptor(
            "process_cpu",
            "Total user and system CPU time spent in seconds.",
            Some(&Unit::Seconds),
            counter.metric_type(),
        )?)?;
        let gauges: [(&str, &str, Option<Unit>, Option<f64>); 5] = [
            (
                "process_resident_memory",
                "Resident memory size in bytes.",
                Some(Unit::Bytes),
                Some(stats.resident_memory_bytes as f64),
            ),
            (
                "process_virtual_memory",
                "Virtual memory size in bytes.",
                Some(Unit::Bytes),
                Some(stats.virtual_memory_bytes as f64),
            ),
            (
                "process_start_time",
                "Start time of the process since unix epoch in seconds.",
                Some(Unit::Seconds),
                Some(stats.start_time_seconds),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                None,
                stats.open_fds.map(|n| n as f64),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                None,
                stats.max_fds.map(|n| n as f64),
            ),
        ];
        for (name, help, unit, value) in gauges {
            let Some(value) = value else { continue };
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(
                name,
                help,
                unit.as_ref(),
                gauge.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (xen exp) S 1 4242 4242 0 -1 4194560 2000 0 0 0 150 50 0 0 20 0 9 0 12345 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let stats = parse_stat(STAT, 100.0, 1_700_000_000.0).expect("valid stat");
        assert_eq!(stats.cpu_seconds, 2.0);
        assert_eq!(stats.virtual_memory_bytes, 104_857_600);
        assert_eq!(stats.start_time_seconds, 1_700_000_000.0 + 123.45);
    }

    #[test]
    fn rejects_truncated_stat() {
        assert!(parse_stat("1 (x) S 1 2", 100.0, 0.0).is_err());
        assert!(parse_stat("garbage", 100.0, 0.0).is_err());
    }

    #[test]
    fn parses_limits_and_btime() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(parse_max_fds(limits), Some(1024));
        assert_eq!(
            parse_boot_time("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000.0)
        );
        assert_eq!(
            parse_status_kib("Name: x\nVmRSS:\t  2048 kB\n", "VmRSS:"),
            Some(2048 * 1024)
        );
    }

    #[test]
    fn reads_this_process() {
        let stats = read_self().expect("/proc/self is readable on Linux");
        assert!(stats.resident_memory_bytes > 0);
        assert!(stats.open_fds.unwrap_or(0) >= 3);
    }
}
