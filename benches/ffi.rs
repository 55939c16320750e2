//! Benchmark: one libxenstat snapshot through the real dlopen + FFI path, against the fake
//! libxenstat (tests/fake-libxenstat) serving 1,000 domains with 4 VCPUs, 2 vifs and 4 VBDs each.
//! The time includes the fake's own allocation of the node (as the real library mallocs one per
//! call) and the copy into `model::Host`; a real libxenstat adds its hypercalls and file reads.
//!
//! Run: `cargo bench --bench ffi` (release profile). Results go in benches/README.md, "FFI".

#[path = "../tests/fake-libxenstat/fake.rs"]
mod fake;
mod support;

use support::{peak_rss_kib, percentile};

use std::time::{Duration, Instant};

use xen_exporter::testing::LibXenstat;
use xen_exporter::testing::XenSource;

const DOMAINS: usize = 1000;
const WARMUP: usize = 20;
const SAMPLES: usize = 500;

fn main() {
    // Read by the fake at every xenstat_get_node; set before any other thread exists.
    std::env::set_var("FAKE_XENSTAT_DOMAINS", DOMAINS.to_string());
    let lib = fake::build(&[]);
    let source = LibXenstat::open(Some(&lib.path), None).expect("the fake libxenstat opens");

    let host = source.snapshot().expect("snapshot");
    assert_eq!(host.domains.len(), DOMAINS);
    for domain in &host.domains {
        assert_eq!(
            (domain.vcpus.len(), domain.vifs.len(), domain.vbds.len()),
            (4, 2, 4),
            "{}",
            domain.name
        );
    }
    drop(host);

    for _ in 0..WARMUP {
        std::hint::black_box(source.snapshot().expect("snapshot"));
    }
    let mut samples: Vec<Duration> = (0..SAMPLES)
        .map(|_| {
            let start = Instant::now();
            let host = source.snapshot().expect("snapshot");
            let elapsed = start.elapsed();
            std::hint::black_box(host);
            elapsed
        })
        .collect();
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("| case | snapshots | p50 | p99 | max | peak RSS |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| libxenstat FFI, fake lib, {DOMAINS} domains x (4 VCPUs, 2 vifs, 4 VBDs) | {SAMPLES} | {:.2} ms | {:.2} ms | {:.2} ms | {} |",
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        ms(samples[samples.len() - 1]),
        peak_rss_kib("self").map_or_else(|| "n/a".to_owned(), |kib| format!("{:.1} MiB", kib as f64 / 1024.0)),
    );
}
