//! Benchmark: one scrape of the exporter's self-metrics, in process (collect + encode) and over
//! HTTP on loopback (the real binary), plus the binary's size and idle RSS.
//!
//! Run: `cargo bench --bench self_metrics` (release profile). Results go in benches/README.md.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use xen_exporter::scrape::{Format, Scraper};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

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
    xen_exporter::self_metrics::register(&mut registry).record_success();
    registry.register_collector(Box::new(xen_exporter::process::ProcessCollector));
    let scraper = Scraper::new(registry, Vec::new(), Duration::from_secs(5));
    println!("| case | scrapes | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    for format in [Format::Text, Format::OpenMetrics] {
        let samples: Vec<Duration> = (0..5000)
            .map(|_| {
                let start = Instant::now();
                let text = runtime.block_on(scraper.scrape(format, None)).expect("encode");
                std::hint::black_box(text);
                start.elapsed()
            })
            .collect();
        report(&format!("in process, {format:?}"), samples);
    }

    let binary = env!("CARGO_BIN_EXE_xen_exporter");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    let mut child = Command::new(binary)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--xen.source=simulated")
        .arg("--xen.simulated.domains=0")
        .stderr(Stdio::null())
        .spawn()
        .expect("start exporter");
    let address = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&address).is_err() {
        assert!(Instant::now() < deadline, "exporter did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let scrape = || {
        let mut stream = TcpStream::connect(&address).expect("connect");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).expect("read");
        response
    };
    let samples: Vec<Duration> = (0..2000)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(scrape());
            start.elapsed()
        })
        .collect();
    report("HTTP round trip (new connection each), text", samples);
    std::thread::sleep(Duration::from_secs(2));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).expect("status");
    let rss = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap_or("VmRSS: ?");
    let size = std::fs::metadata(binary).map(|meta| meta.len()).unwrap_or(0);
    println!();
    println!("binary {binary}: {:.2} MiB; after 2000 scrapes + 2 s idle: {}", size as f64 / 1048576.0, rss.split_whitespace().skip(1).collect::<Vec<_>>().join(" "));
    let _ = child.kill();
    let _ = child.wait();
}
