//! Benchmark: one full scrape of a simulated host of 1,000 guests (4 VCPUs, 2 vifs with 2
//! netback queues, 4 VBDs each): snapshot + encode in process, in the three formats, and the real
//! binary over HTTP with its peak RSS. Then the blkback sysfs reader on a 1,000-domain fixture
//! tree against the raw cost of reading the same files.
//!
//! Run: `cargo bench --bench scrape` (release profile). Results go in benches/README.md.

mod support;

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use tokio::sync::watch;
use xen_exporter::testing::sysfs;
use xen_exporter::testing::Config;
use xen_exporter::testing::ScrapeCollector;
use xen_exporter::testing::{Domain, Host, Vbd};
use xen_exporter::testing::{Format, Scraper};
use xen_exporter::testing::{HostFiles, XenCollector};
use xen_exporter::testing::{SimulatedHost, SimulatedOptions};

use support::percentile;

const GUESTS: usize = 1_000;

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1e3)
}

fn report(name: &str, mut samples: Vec<Duration>, extra: &str) {
    samples.sort();
    println!(
        "| {name} | {} | {} | {} | {} | {extra} |",
        samples.len(),
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        ms(samples[samples.len() - 1]),
    );
}

fn in_process(runtime: &tokio::runtime::Runtime) {
    let options = SimulatedOptions {
        guests: GUESTS,
        ..SimulatedOptions::default()
    };
    let (_config, updates) = watch::channel(Arc::new(Config::default()));
    let files = HostFiles {
        sysfs: "/nonexistent".into(),
        debugfs: "/nonexistent".into(),
        procfs: "/nonexistent".into(),
        shm: "/nonexistent".into(),
        xenstore: None,
    };
    let collector: Arc<dyn ScrapeCollector> = Arc::new(XenCollector::new(
        Ok(Box::new(SimulatedHost::new(options))),
        files,
        updates,
    ));
    let snapshots: Vec<Duration> = (0..200)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(collector.collect());
            start.elapsed()
        })
        .collect();
    report(
        "in process, snapshot only (the collector, no encoding)",
        snapshots,
        "simulated source, labels worked out",
    );
    let scraper = Scraper::new(Registry::default(), vec![collector], Duration::from_secs(5));
    for format in [Format::Text, Format::OpenMetrics, Format::Protobuf] {
        let scrape = || {
            runtime
                .block_on(scraper.exposition(format, false, None))
                .expect("encode")
                .body
        };
        for _ in 0..10 {
            scrape();
        }
        let cpu_before = support::cpu_time("self");
        let mut body = bytes::Bytes::new();
        let samples: Vec<Duration> = (0..200)
            .map(|_| {
                // The last body is freed first, as the server frees it once sent.
                body = bytes::Bytes::new();
                let start = Instant::now();
                body = scrape();
                start.elapsed()
            })
            .collect();
        let cpu_per_scrape = (support::cpu_time("self") - cpu_before) / samples.len() as u32;
        let bytes = body.len();
        // Protobuf has no lines: its samples are those of the text formats.
        let lines = body
            .split(|&byte| byte == b'\n')
            .filter(|line| !line.is_empty() && !line.starts_with(b"#"))
            .count();
        let lines = if format == Format::Protobuf {
            "(as text)".to_owned()
        } else {
            lines.to_string()
        };
        report(
            &format!("in process, {format:?}"),
            samples,
            &format!(
                "CPU {} per scrape; {lines} samples, {:.1} MiB; bench process peak RSS {:.1} MiB",
                ms(cpu_per_scrape),
                bytes as f64 / 1048576.0,
                support::peak_rss_kib("self").map_or(f64::NAN, |kib| kib as f64 / 1024.0)
            ),
        );
    }
}

fn over_http() {
    let exporter = support::Exporter::start(&[
        "--xen.source=simulated".to_owned(),
        format!("--xen.simulated.domains={GUESTS}"),
    ]);
    for (name, headers) in [
        ("HTTP, text 0.0.4", "Accept: text/plain; version=0.0.4\r\n"),
        (
            "HTTP, OpenMetrics + gzip",
            "Accept: application/openmetrics-text; version=1.0.0\r\nAccept-Encoding: gzip\r\n",
        ),
    ] {
        let mut size = 0;
        let pid = exporter.child.id().to_string();
        let cpu_before = support::cpu_time(&pid);
        let samples: Vec<Duration> = (0..100)
            .map(|_| {
                let start = Instant::now();
                size = exporter.scrape(headers).len();
                start.elapsed()
            })
            .collect();
        let cpu_per_scrape = (support::cpu_time(&pid) - cpu_before) / samples.len() as u32;
        report(
            name,
            samples,
            &format!(
                "exporter CPU {} per scrape; {:.2} MiB on the wire; exporter peak RSS {:.1} MiB",
                ms(cpu_per_scrape),
                size as f64 / 1048576.0,
                exporter.peak_rss_mib()
            ),
        );
    }
}

/// A blkback sysfs tree for `domains` guests with 4 VBDs each, and the matching host.
fn sysfs_tree(root: &Path, domains: u32) -> Host {
    let devnos = [51712, 51728, 51744, 51760];
    let mut host = Host::default();
    for domid in 1..=domains {
        let mut domain = Domain {
            domid,
            name: format!("guest-{domid}"),
            ..Domain::default()
        };
        for devno in devnos {
            let dir = sysfs::statistics_dir(root, "vbd", domid, devno);
            std::fs::create_dir_all(&dir).expect("fixture dir");
            for (file, value) in [
                ("oo_req", 3),
                ("rd_req", 515),
                ("wr_req", 512),
                ("rd_sect", 65560),
                ("wr_sect", 65536),
                ("f_req", 7),
                ("ds_req", 0),
            ] {
                std::fs::write(dir.join(file), format!("{value}\n")).expect("fixture file");
            }
            domain.vbds.push(Vbd {
                devno,
                ..Vbd::default()
            });
        }
        host.domains.push(domain);
    }
    host
}

fn sysfs_reader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let host = sysfs_tree(root, GUESTS as u32);
    let files: Vec<_> = host
        .domains
        .iter()
        .flat_map(|domain| {
            domain.vbds.iter().flat_map(move |vbd| {
                let stats = sysfs::statistics_dir(root, "vbd", domain.domid, vbd.devno);
                [
                    "oo_req", "rd_req", "wr_req", "rd_sect", "wr_sect", "f_req", "ds_req",
                ]
                .map(|file| stats.join(file))
            })
        })
        .collect();
    let mut reader = Vec::new();
    let mut raw = Vec::new();
    for round in 0..60 {
        let mut copy = host.clone();
        let start = Instant::now();
        let report = sysfs::read_vbds(&mut copy, root);
        let elapsed = start.elapsed();
        assert_eq!(report.read, GUESTS * 4);
        // The floor: open + read + close of the same files, nothing parsed.
        let start = Instant::now();
        let mut buffer = Vec::with_capacity(32);
        for path in &files {
            buffer.clear();
            std::fs::File::open(path)
                .and_then(|mut file| file.read_to_end(&mut buffer))
                .expect("read");
        }
        let raw_elapsed = start.elapsed();
        if round >= 10 {
            reader.push(elapsed);
            raw.push(raw_elapsed);
        }
    }
    reader.sort();
    raw.sort();
    let ratio = percentile(&reader, 0.5).as_secs_f64() / percentile(&raw, 0.5).as_secs_f64();
    report(
        "sysfs reader, 1000 domains x 4 VBDs (28,000 files)",
        reader,
        &format!("{ratio:.2}x the raw reads (p50)"),
    );
    report("raw open+read of the same 28,000 files", raw, "floor");
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!("| case | runs | p50 | p99 | max | notes |");
    println!("|---|---|---|---|---|---|");
    in_process(&runtime);
    over_http();
    sysfs_reader();
}
