//! Benchmark: one scrape of the exporter's self-metrics, in process (collect + encode) and over
//! HTTP on loopback (the real binary), plus the binary's size and idle RSS.
//!
//! Run: `cargo bench --bench self_metrics` (release profile). Results go in benches/README.md.

mod support;

use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use xen_exporter::testing::{Format, Scraper};

use support::percentile;

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "| {name} | {} | {:.1} µs | {:.1} µs | {:.1} µs |",
        samples.len(),
        percentile(&samples, 0.5).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
        samples[samples.len() - 1].as_secs_f64() * 1e6,
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut registry = Registry::default();
    xen_exporter::testing::register_self_metrics(&mut registry).record_success();
    registry.register_collector(Box::new(xen_exporter::testing::ProcessCollector));
    let scraper = Scraper::new(registry, Vec::new(), Duration::from_secs(5));
    println!("| case | scrapes | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    for format in [Format::Text, Format::OpenMetrics] {
        let samples: Vec<Duration> = (0..5000)
            .map(|_| {
                let start = Instant::now();
                let text = runtime
                    .block_on(scraper.scrape(format, None))
                    .expect("encode");
                std::hint::black_box(text);
                start.elapsed()
            })
            .collect();
        report(&format!("in process, {format:?}"), samples);
    }

    let exporter = support::Exporter::start(&[
        "--xen.source=simulated".to_owned(),
        "--xen.simulated.domains=0".to_owned(),
    ]);
    let samples: Vec<Duration> = (0..2000)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(exporter.scrape(""));
            start.elapsed()
        })
        .collect();
    report("HTTP round trip (new connection each), text", samples);
    std::thread::sleep(Duration::from_secs(2));
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", exporter.child.id())).expect("status");
    let rss = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .unwrap_or("VmRSS: ?");
    let binary = env!("CARGO_BIN_EXE_xen_exporter");
    let size = std::fs::metadata(binary)
        .map(|meta| meta.len())
        .unwrap_or(0);
    println!();
    println!(
        "binary {binary}: {:.2} MiB; after 2000 scrapes + 2 s idle: {}",
        size as f64 / 1048576.0,
        rss.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
    );
}
