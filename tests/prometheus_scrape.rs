//! A real Prometheus server scrapes the real exporter.

mod common;

use std::time::Duration;

use common::prometheus::{Prometheus, PrometheusSetup};
use common::Exporter;

#[test]
fn prometheus_scrapes_the_exporter() {
    let Some(binary) = common::tool("prometheus_scrapes_the_exporter", "prometheus") else {
        return;
    };
    let exporter = Exporter::start(&[]);
    let prometheus = Prometheus::start(
        &binary,
        &PrometheusSetup {
            targets: &[exporter.address],
            scrape_interval: "1s",
            rule_files: &[],
            alertmanager: None,
            extra_job_yaml: "",
        },
    );
    // Prometheus's first scrape comes ~5.5 s after it starts.
    assert!(
        prometheus.wait_for_series("up{job=\"sut\"} == 1", Duration::from_secs(30)),
        "target never came up: {}",
        prometheus.query("up")
    );
    assert!(prometheus.wait_for_series("xen_exporter_build_info{job=\"sut\"} == 1", Duration::from_secs(10)));
    assert!(prometheus.wait_for_series("process_resident_memory_bytes{job=\"sut\"} > 0", Duration::from_secs(10)));
}
