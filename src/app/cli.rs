//! Command-line flags, in the style of Prometheus exporter-toolkit (`--web.*`, `--path.*`, `--log.*`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::xen::source::select::SourceKind;

/// The port we serve on by default. The default-port-allocations range 9100-9999 has been fully
/// allocated since 2023 (9603 is the xenlight Xen exporter, 9374 smokeping_prober), so we take a
/// port outside it that the page's "outside the standard range" list does not name either.
pub const DEFAULT_PORT: u16 = 19603;

/// Prometheus exporter for Xen Dom0: what xentop shows (CPU, memory, network, VBD I/O and VBD_OO),
/// I/O ring statistics, and continuous ICMP/TCP latency probes.
#[derive(Debug, Clone, Parser)]
#[command(name = "xen_exporter", version = crate::app::build_info::VERSION_LONG, about, long_about = None)]
pub struct Cli {
    /// Configuration file (YAML). Without it the embedded default configuration is used.
    #[arg(long = "config.file", value_name = "FILE")]
    pub config_file: Option<PathBuf>,

    /// Check the configuration file (and the web configuration file), print the result and exit.
    #[arg(long = "config.check")]
    pub config_check: bool,

    /// Address to listen on; repeat the flag to listen on several.
    #[arg(long = "web.listen-address", value_name = "ADDR", default_values_t = [default_listen_address()])]
    pub listen_addresses: Vec<SocketAddr>,

    /// Path under which to expose metrics.
    #[arg(long = "web.telemetry-path", value_name = "PATH", default_value = "/metrics", value_parser = parse_telemetry_path)]
    pub telemetry_path: String,

    /// Web configuration file (TLS, basic auth, headers), in exporter-toolkit's format.
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,

    /// Maximum number of parallel scrape requests; more get 503. 0 means no limit.
    #[arg(long = "web.max-requests", value_name = "N", default_value_t = 40)]
    pub max_requests: usize,

    /// Only log messages with the given severity or above.
    #[arg(long = "log.level", value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,

    /// Output format of log messages.
    #[arg(long = "log.format", value_enum, default_value_t = LogFormat::Logfmt)]
    pub log_format: LogFormat,

    /// sysfs mount point (blkback statistics, network interfaces).
    #[arg(long = "path.sysfs", value_name = "DIR", default_value = "/sys")]
    pub sysfs: PathBuf,

    /// procfs mount point (guest NIC counters from PID 1's net/dev, live tapdisk processes).
    #[arg(long = "path.procfs", value_name = "DIR", default_value = "/proc")]
    pub procfs: PathBuf,

    /// Shared-memory mount point (tapdisk3's VBD statistics and ring files, XCP-ng/XenServer).
    #[arg(long = "path.shm", value_name = "DIR", default_value = "/dev/shm")]
    pub shm: PathBuf,

    /// debugfs mount point (netback I/O rings).
    #[arg(
        long = "path.debugfs",
        value_name = "DIR",
        default_value = "/sys/kernel/debug"
    )]
    pub debugfs: PathBuf,

    /// Where hypervisor numbers come from: auto (libxenstat when it loads and a hypervisor runs),
    /// libxenstat, or simulated (a synthetic host for demos and tests).
    #[arg(long = "xen.source", value_enum, default_value_t = SourceKind::Auto)]
    pub xen_source: SourceKind,

    /// Path of libxenstat to load instead of searching `libxenstat.so` and its versioned names.
    #[arg(long = "xen.library", value_name = "FILE")]
    pub xen_library: Option<PathBuf>,

    /// Longest time one Xen collection may take before the scrape reports it failed.
    #[arg(long = "xen.timeout", value_name = "DURATION", default_value = "5s", value_parser = parse_duration_flag)]
    pub xen_timeout: Duration,

    /// Guests of the simulated host, Domain-0 not counted (with --xen.source=simulated).
    #[arg(long = "xen.simulated.domains", value_name = "N", default_value_t = 8)]
    pub simulated_domains: usize,

    /// A guest of the simulated host (e.g. guest-0002) whose first disk saturates its ring
    /// (sustained VBD_OO, backing queue at the ring's capacity) from --xen.simulated.storm-after
    /// on. Repeat the flag or give a comma-separated list to storm several guests at once (the
    /// host-wide storage saturation).
    #[arg(
        long = "xen.simulated.storm-domain",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub simulated_storm_domains: Vec<String>,

    /// When the simulated VBD_OO storm starts, counted from the exporter's start.
    #[arg(long = "xen.simulated.storm-after", value_name = "DURATION", default_value = "0s", value_parser = parse_duration_flag)]
    pub simulated_storm_after: Duration,

    /// A guest of the simulated host whose first disk hangs from --xen.simulated.stall-after on:
    /// requests stay in flight on its backing device and none completes.
    #[arg(long = "xen.simulated.stall-domain", value_name = "NAME")]
    pub simulated_stall_domain: Option<String>,

    /// When the simulated stall starts, counted from the exporter's start.
    #[arg(long = "xen.simulated.stall-after", value_name = "DURATION", default_value = "0s", value_parser = parse_duration_flag)]
    pub simulated_stall_after: Duration,

    /// Destroy and re-create one simulated guest (in turn, under a new domid) every DURATION;
    /// 0s keeps the set of domains fixed.
    #[arg(long = "xen.simulated.churn", value_name = "DURATION", default_value = "0s", value_parser = parse_duration_flag)]
    pub simulated_churn: Duration,

    /// Test only: stop the simulated host's clock at DURATION after start, so every scrape
    /// shows the same numbers (tests/golden.rs). Hidden: a frozen host is no demo.
    #[arg(long = "xen.simulated.frozen-at", value_name = "DURATION", hide = true, value_parser = parse_duration_flag)]
    pub simulated_frozen_at: Option<Duration>,

    /// Leave out the exporter's own process_* metrics.
    #[arg(long = "web.disable-exporter-metrics")]
    pub disable_exporter_metrics: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Logfmt,
    Json,
}

fn default_listen_address() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT))
}

fn parse_telemetry_path(value: &str) -> Result<String, String> {
    if !value.starts_with('/') {
        return Err("must start with '/'".into());
    }
    if ["/", "/-/healthy", "/-/ready", "/-/reload"].contains(&value) {
        return Err(format!("{value} is taken by another endpoint"));
    }
    Ok(value.to_owned())
}

fn parse_duration_flag(value: &str) -> Result<Duration, String> {
    crate::config::duration::parse(value)
}
