//! Benchmark (issue 15): the exporter's footprint at rest, side by side in one run with
//! Debian's `prometheus-node-exporter` (default collectors), the exporter every Dom0 already
//! runs.
//!
//! Both are scraped every 15 s, as a Prometheus would, for the same window:
//! - `xen_exporter` (this package's release binary): a 100-guest simulated host and the
//!   embedded default's shape of probes — 10 targets once a second (8 ICMP, 2 TCP) — sent to
//!   loopback addresses (127.0.0.0/8 and a listener this benchmark owns), never the internet;
//! - `prometheus-node-exporter` with its default collectors.
//!
//! CPU is utime + stime from /proc/PID/stat over the window (start-up excluded), scaled to
//! seconds per hour; RSS is VmRSS at the end and VmHWM (peak). Run as root (ICMP raw sockets):
//! `cargo bench --bench footprint`; `FOOTPRINT_SECONDS` sets the window (default 600).

// Shared with the probe benchmark, of which this one uses a part.
#[path = "probes/process.rs"]
#[allow(dead_code)]
mod process;

use std::net::TcpListener;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use process::{cpu_seconds, load_average, Prober};

const OURS_PORT: u16 = 19613;
const NODE_PORT: u16 = 19610;
const SCRAPE_EVERY: Duration = Duration::from_secs(15);
const WARMUP: Duration = Duration::from_secs(20);
const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";

struct Measured {
    name: &'static str,
    cpu_seconds_per_hour: f64,
    rss_mib: f64,
    peak_rss_mib: f64,
    scrape_bytes: usize,
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn config(tcp_port: u16) -> String {
    let mut targets = String::new();
    for index in 1..=8 {
        targets.push_str(&format!(
            "    - {{name: icmp-{index}, host: 127.0.0.{index}, protocol: icmp}}\n"
        ));
    }
    for index in 1..=2 {
        targets.push_str(&format!(
            "    - {{name: tcp-{index}, host: 127.0.0.1, protocol: tcp, port: {tcp_port}}}\n"
        ));
    }
    format!(
        "probes:\n  defaults: {{interval: 1s, timeout: 1s, labels: {{ix: NIX, city: Oslo}}}}\n  targets:\n{targets}"
    )
}

fn main() -> ExitCode {
    if !std::path::Path::new(NODE_EXPORTER).exists() {
        eprintln!("footprint: {NODE_EXPORTER} missing: apt-get install prometheus-node-exporter");
        return ExitCode::FAILURE;
    }
    let window = Duration::from_secs(
        std::env::var("FOOTPRINT_SECONDS")
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or(600),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    // The TCP targets' listener: the kernel completes the handshakes from its backlog, and a
    // thread accepts and drops them so the backlog never fills.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind listener");
    let tcp_port = listener.local_addr().expect("listener address").port();
    std::thread::spawn(move || {
        for connection in listener.incoming() {
            drop(connection);
        }
    });
    let config_path = dir.path().join("xen_exporter.yml");
    std::fs::write(&config_path, config(tcp_port)).expect("write config");

    let mut ours_command = Command::new(env!("CARGO_BIN_EXE_xen_exporter"));
    ours_command.args([
        format!("--web.listen-address=127.0.0.1:{OURS_PORT}"),
        format!("--config.file={}", config_path.display()),
        "--xen.source=simulated".into(),
        "--xen.simulated.domains=100".into(),
    ]);
    let mut node_command = Command::new(NODE_EXPORTER);
    node_command.arg(format!("--web.listen-address=127.0.0.1:{NODE_PORT}"));
    let mut ours = Prober::start("xen_exporter", OURS_PORT, ours_command, dir.path());
    let mut node = Prober::start("node_exporter", NODE_PORT, node_command, dir.path());
    ours.wait_ready("/metrics");
    node.wait_ready("/metrics");
    std::thread::sleep(WARMUP);

    let mut probers = [&mut ours, &mut node];
    let started_cpu: Vec<f64> = probers.iter().map(|p| p.cpu_seconds()).collect();
    let started = Instant::now();
    let mut bytes = [0usize; 2];
    let mut next = started;
    while started.elapsed() < window {
        for (index, prober) in probers.iter_mut().enumerate() {
            prober.assert_running();
            bytes[index] = prober.metrics().map(|body| body.len()).unwrap_or(0);
        }
        next += SCRAPE_EVERY;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let results: Vec<Measured> = probers
        .iter()
        .enumerate()
        .map(|(index, prober)| Measured {
            name: prober.name,
            cpu_seconds_per_hour: (cpu_seconds(prober.pid()).unwrap_or(f64::NAN)
                - started_cpu[index])
                / elapsed
                * 3600.0,
            rss_mib: rss_mib(prober.pid()),
            peak_rss_mib: prober.peak_rss_mib(),
            scrape_bytes: bytes[index],
        })
        .collect();

    println!(
        "\nFootprint at rest, {:.0} s window, scraped every {} s, load average {}\n",
        elapsed,
        SCRAPE_EVERY.as_secs(),
        load_average()
    );
    println!("| exporter | CPU s/hour | RSS MiB | peak RSS MiB | scrape bytes |");
    println!("|---|---|---|---|---|");
    for result in &results {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {} |",
            result.name,
            result.cpu_seconds_per_hour,
            result.rss_mib,
            result.peak_rss_mib,
            result.scrape_bytes
        );
    }
    let (ours, node) = (&results[0], &results[1]);
    println!(
        "\nfootprint: ours/node_exporter CPU {:.2}x RSS {:.2}x",
        ours.cpu_seconds_per_hour / node.cpu_seconds_per_hour,
        ours.rss_mib / node.rss_mib
    );
    if ours.cpu_seconds_per_hour < node.cpu_seconds_per_hour && ours.rss_mib < node.rss_mib {
        ExitCode::SUCCESS
    } else {
        eprintln!("footprint: ours costs more than node_exporter");
        ExitCode::FAILURE
    }
}
