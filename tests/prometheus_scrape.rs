//! A real Prometheus server scrapes the real exporter.

mod common;

use std::time::Duration;

use common::prometheus::Prometheus;
use common::Exporter;

#[test]
fn prometheus_scrapes_the_exporter() {
    let Some(binary) = common::tool("prometheus_scrapes_the_exporter", "prometheus") else {
        return;
    };
    let exporter = Exporter::start(&[]);
    let prometheus = Prometheus::scraping(&binary, exporter.address);
    // Prometheus's first scrape comes ~5.5 s after it starts.
    assert!(
        prometheus.wait_for_series("up{job=\"sut\"} == 1", Duration::from_secs(30)),
        "target never came up: {}",
        prometheus.query("up")
    );
    assert!(prometheus.wait_for_series(
        "xen_exporter_build_info{job=\"sut\"} == 1",
        Duration::from_secs(10)
    ));
    assert!(prometheus.wait_for_series(
        "process_resident_memory_bytes{job=\"sut\"} > 0",
        Duration::from_secs(10)
    ));
}

/// A demo host of 400 guests is a body of several MiB, gzipped in parts deflated at once
/// (`src/gzip.rs`): Prometheus, which asks for gzip, must read every sample of it.
#[test]
fn prometheus_reads_a_large_gzipped_scrape() {
    let Some(binary) = common::tool("prometheus_reads_a_large_gzipped_scrape", "prometheus") else {
        return;
    };
    let exporter = Exporter::start(&["--xen.source=simulated", "--xen.simulated.domains=400"]);
    let count_samples = |text: &str| {
        text.lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .count()
    };
    let text = exporter.get("/metrics").text();
    assert!(
        text.len() > 2 << 20,
        "{} bytes: too small to be cut in parts",
        text.len()
    );
    let samples = count_samples(&text);
    let decoded = exporter.get_gzipped("/metrics");
    assert_eq!(
        count_samples(&decoded),
        samples,
        "the whole body is in one gzip member"
    );
    let prometheus = Prometheus::scraping(&binary, exporter.address);
    let expected = format!("scrape_samples_scraped{{job=\"sut\"}} == {samples}");
    assert!(
        prometheus.wait_for_series(&expected, Duration::from_secs(30)),
        "Prometheus did not read the {samples} samples: {}",
        prometheus.query("scrape_samples_scraped")
    );
    assert!(prometheus.wait_for_series(
        "count(xen_vbd_out_of_requests_total{job=\"sut\"}) == 1600",
        Duration::from_secs(10)
    ));
}
