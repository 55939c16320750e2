//! Native histograms end to end: the real exporter probes a netsim TUN responder (a device this
//! test creates on the host) that answers after an injected uniform delay, and a real Prometheus
//! started with `--enable-feature=native-histograms` scrapes it in the protobuf format. The
//! quantiles Prometheus computes from the native series must match the injected distribution
//! within the schema's resolution; the simulated host's `xen_*` families must arrive through the
//! same protobuf scrapes; the text formats keep their classic buckets.

mod common;

use std::time::Duration;

use common::prometheus::{Prometheus, PrometheusSetup};
use common::Exporter;
use netsim::{JitterDist, Options, Responder};
use prometheus_client::encoding::prometheus_protobuf::prometheus_data_model::{
    MetricFamily, MetricType,
};
use prost::Message;

/// What Prometheus 2.42 sends with `--enable-feature=native-histograms`.
const PROTOBUF_ACCEPT: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// The injected delay: uniform in [10 ms, 30 ms].
const DELAY: Duration = Duration::from_millis(20);
const JITTER: Duration = Duration::from_millis(10);

/// Schema 4: a bucket spans a factor of 2^(1/16), 4.4 %.
const BUCKET_WIDTH: f64 = 0.0443;

/// The exporter's protobuf exposition, decoded.
fn protobuf_families(exporter: &Exporter) -> Vec<MetricFamily> {
    let response = common::http(
        exporter.address,
        "GET",
        "/metrics",
        &[("Accept", PROTOBUF_ACCEPT)],
    )
    .expect("scrape the exporter");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited")
    );
    let mut body = response.body.as_slice();
    let mut families = Vec::new();
    while !body.is_empty() {
        families.push(MetricFamily::decode_length_delimited(&mut body).expect("a MetricFamily"));
    }
    families
}

/// The value of an instant query's first series, if it has one.
fn scalar(prometheus: &Prometheus, query: &str) -> Option<f64> {
    let json: serde_json::Value = serde_json::from_str(&prometheus.query(query)).ok()?;
    json["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn prometheus_reads_native_histograms_that_match_the_injected_delay() {
    let test = "prometheus_reads_native_histograms_that_match_the_injected_delay";
    if !netsim::require_privileged(test) {
        return;
    }
    let Some(binary) = common::tool(test, "prometheus") else {
        return;
    };
    let options = Options::default()
        .on_host()
        .delay(DELAY)
        .jitter(JITTER, JitterDist::Uniform)
        .seed(17);
    let target = match options.prefix4.expect("an IPv4 prefix").address {
        std::net::IpAddr::V4(device) => {
            let [a, b, c, _] = device.octets();
            std::net::Ipv4Addr::new(a, b, c, 2)
        }
        std::net::IpAddr::V6(_) => unreachable!("prefix4 is IPv4"),
    };
    let _responder = Responder::spawn(options).expect("start the responder");
    let dir = common::temp_dir();
    let config = dir.path().join("xen_exporter.yml");
    std::fs::write(
        &config,
        format!(
            "probes:\n  defaults:\n    interval: 40ms\n    timeout: 40ms\n  targets:\n    - {{host: {target}, protocol: icmp}}\n"
        ),
    )
    .expect("write config");
    let exporter = Exporter::start(&[
        &format!("--config.file={}", config.display()),
        "--xen.source=simulated",
    ]);

    // The exposition itself: native and classic buckets in one histogram, our families too.
    let families = common::poll(Duration::from_secs(10), || {
        let families = protobuf_families(&exporter);
        let rtt = families
            .iter()
            .find(|family| family.name == "latency_rtt_seconds")?;
        let histogram = rtt.metric.first()?.histogram.clone()?;
        (histogram.sample_count >= 20).then_some(families)
    })
    .expect("RTT samples in the protobuf exposition");
    let rtt = families
        .iter()
        .find(|family| family.name == "latency_rtt_seconds")
        .expect("the RTT family");
    assert_eq!(rtt.r#type, MetricType::Histogram as i32);
    let histogram = rtt.metric[0].histogram.as_ref().expect("a histogram");
    assert_eq!(histogram.schema, 4);
    assert!(!histogram.positive_span.is_empty(), "{histogram:?}");
    assert!(
        !histogram.bucket.is_empty(),
        "classic buckets: {histogram:?}"
    );
    let native_count: i64 = histogram
        .positive_delta
        .iter()
        .scan(0i64, |count, delta| {
            *count += delta;
            Some(*count)
        })
        .sum::<i64>()
        + histogram.zero_count as i64;
    assert_eq!(native_count as u64, histogram.sample_count);
    for name in [
        "xen_up",
        "xen_domain_cpu_seconds_total",
        "xen_domain_info",
        "xen_exporter_build_info",
        "xen_exporter_collector_success",
        "process_resident_memory_bytes",
    ] {
        assert!(
            families.iter().any(|family| family.name == name),
            "{name} missing from the protobuf exposition"
        );
    }
    // The text formats are unchanged: classic buckets only.
    let text = exporter.get("/metrics").text();
    assert!(text.contains("latency_rtt_seconds_bucket{"), "{text}");

    let prometheus = Prometheus::start_with_flags(
        &binary,
        &PrometheusSetup {
            targets: &[exporter.address],
            scrape_interval: "1s",
            rule_files: &[],
            alertmanager: None,
            extra_job_yaml: "",
        },
        &["--enable-feature=native-histograms"],
    );
    assert!(
        prometheus.wait_for_series("up{job=\"sut\"} == 1", Duration::from_secs(30)),
        "the target never came up: {}",
        prometheus.query("up")
    );
    // Only a native histogram answers `histogram_count` on the bare name.
    assert!(
        prometheus.wait_for_series(
            "histogram_count(latency_rtt_seconds{job=\"sut\"}) > 0",
            Duration::from_secs(20)
        ),
        "no native histogram: {}",
        prometheus.query("{__name__=~\"latency_rtt_seconds.*\"}")
    );
    // Our own families came through the same protobuf scrapes.
    assert!(prometheus.wait_for_series("xen_up{job=\"sut\"} == 1", Duration::from_secs(10)));
    assert!(prometheus.wait_for_series(
        "xen_domain_cpu_seconds_total{job=\"sut\"} > 0",
        Duration::from_secs(10)
    ));
    // Some 40 s of probes every 40 ms: about 1,000 RTTs in the window.
    std::thread::sleep(Duration::from_secs(40));
    let samples = scalar(
        &prometheus,
        "histogram_count(increase(latency_rtt_seconds{job=\"sut\"}[1m]))",
    )
    .unwrap_or(0.0);
    assert!(samples > 500.0, "{samples} RTTs in the window");
    let low = (DELAY - JITTER).as_secs_f64();
    let high = (DELAY + JITTER).as_secs_f64();
    for quantile in [0.1, 0.5, 0.9] {
        let query =
            format!("histogram_quantile({quantile}, rate(latency_rtt_seconds{{job=\"sut\"}}[1m]))");
        let measured = scalar(&prometheus, &query)
            .unwrap_or_else(|| panic!("{query}: {}", prometheus.query(&query)));
        let injected = low + quantile * (high - low);
        // One bucket's width, the sampling error of the quantile of a uniform distribution
        // (3 standard errors), and the kernel's and the responder's own time on top of the delay.
        let sampling = 3.0 * (high - low) * (quantile * (1.0 - quantile) / samples).sqrt();
        let tolerance = injected * BUCKET_WIDTH + sampling + 0.0005;
        println!(
            "quantile {quantile}: native {:.3} ms, injected {:.3} ms, tolerance {:.3} ms ({samples} RTTs)",
            measured * 1e3,
            injected * 1e3,
            tolerance * 1e3
        );
        assert!(
            (measured - injected).abs() <= tolerance,
            "{query} = {measured}, injected {injected} ± {tolerance}"
        );
    }
}

/// Every family of the text exposition is in the protobuf one, with as many series, gzipped or
/// not: the registry's (build info, process) and ours (the simulated host, collector outcomes).
#[test]
fn the_protobuf_exposition_has_every_family_of_the_text_one() {
    let exporter = Exporter::start(&["--xen.source=simulated", "--xen.simulated.domains=3"]);
    let text = exporter.get("/metrics").text();
    let mut expected: Vec<(String, usize)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap_or_default();
            expected.push((name.to_owned(), 0));
        } else if !line.starts_with('#') && !line.is_empty() {
            let (family, count) = expected.last_mut().expect("a sample after its # TYPE");
            let sample = line.split(['{', ' ']).next().unwrap_or_default();
            assert_eq!(sample, family, "no histograms without probes");
            *count += 1;
        }
    }
    assert!(expected.iter().any(|(name, _)| name == "xen_vbd_info"));
    assert!(expected
        .iter()
        .any(|(name, _)| name == "process_cpu_seconds_total"));

    let plain = protobuf_families(&exporter);
    let response = common::http(
        exporter.address,
        "GET",
        "/metrics",
        &[("Accept", PROTOBUF_ACCEPT), ("Accept-Encoding", "gzip")],
    )
    .expect("scrape the exporter");
    assert_eq!(response.header("content-encoding"), Some("gzip"));
    assert_eq!(response.header("vary"), Some("Accept, Accept-Encoding"));
    let mut decompressed = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::MultiGzDecoder::new(response.body.as_slice()),
        &mut decompressed,
    )
    .expect("gunzip");
    let mut body = decompressed.as_slice();
    let mut gzipped = Vec::new();
    while !body.is_empty() {
        gzipped.push(MetricFamily::decode_length_delimited(&mut body).expect("a MetricFamily"));
    }
    for families in [plain, gzipped] {
        let got: Vec<(String, usize)> = families
            .iter()
            .map(|family| (family.name.clone(), family.metric.len()))
            .collect();
        assert_eq!(got, expected);
        let info = families
            .iter()
            .find(|family| family.name == "xen_domain_info")
            .expect("xen_domain_info");
        assert_eq!(info.r#type, MetricType::Gauge as i32);
        assert!(info.metric.iter().all(|metric| {
            metric.gauge.as_ref().map(|gauge| gauge.value) == Some(1.0)
                && metric.label.iter().any(|label| label.name == "domain")
        }));
        let cpu = families
            .iter()
            .find(|family| family.name == "xen_domain_cpu_seconds_total")
            .expect("xen_domain_cpu_seconds_total");
        assert_eq!(cpu.r#type, MetricType::Counter as i32);
        assert_eq!(cpu.unit, "seconds");
        assert!(cpu.metric.iter().all(|metric| metric.counter.is_some()));
    }
}
