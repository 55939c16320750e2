//! The real binary on a loopback port: routes, methods, formats, compression, limits.

mod common;

use std::process::{Command, Stdio};

use common::{http, Exporter};

const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

#[test]
fn landing_page_links_metrics_and_names_the_version() {
    let exporter = Exporter::start(&[]);
    let response = exporter.get("/");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let page = response.text();
    assert!(page.contains(r#"<a href="/metrics">Metrics</a>"#), "{page}");
    assert!(page.contains(env!("CARGO_PKG_VERSION")));
    // What is enabled, and where the Xen numbers come from.
    assert!(
        page.contains("<th>xen</th><td>unavailable (") || page.contains("<th>xen</th><td>source "),
        "{page}"
    );
    let demo = Exporter::start(&["--xen.source=simulated", "--xen.simulated.domains=3"]);
    let page = demo.get("/").text();
    assert!(
        page.contains("<th>xen</th><td>source simulated host, 3 guests"),
        "{page}"
    );
}

#[test]
fn health_and_readiness() {
    let exporter = Exporter::start(&[]);
    assert_eq!(exporter.get("/-/healthy").status, 200);
    assert_eq!(exporter.get("/-/ready").status, 200);
    assert_eq!(exporter.get("/nope").status, 404);
}

#[test]
fn wrong_methods_get_405_with_allow() {
    let exporter = Exporter::start(&[]);
    for (method, path, allow) in [
        ("POST", "/metrics", "GET, HEAD"),
        ("DELETE", "/", "GET, HEAD"),
        ("PUT", "/-/healthy", "GET, HEAD"),
        ("GET", "/-/reload", "POST, PUT"),
    ] {
        let response = http(exporter.address, method, path, &[]).expect("request");
        assert_eq!(response.status, 405, "{method} {path}");
        assert_eq!(response.header("allow"), Some(allow), "{method} {path}");
    }
}

#[test]
fn head_has_headers_but_no_body() {
    let exporter = Exporter::start(&[]);
    let response = http(exporter.address, "HEAD", "/metrics", &[]).expect("request");
    assert_eq!(response.status, 200);
    assert!(response.body.is_empty());
    assert!(response
        .header("content-type")
        .is_some_and(|value| value.starts_with("text/plain; version=0.0.4")));
}

#[test]
fn openmetrics_when_asked_text_otherwise() {
    let exporter = Exporter::start(&[]);
    let open = http(
        exporter.address,
        "GET",
        "/metrics",
        &[("Accept", PROMETHEUS_ACCEPT)],
    )
    .expect("request");
    assert_eq!(
        open.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(open.text().ends_with("# EOF\n"));
    assert!(open.text().contains("# TYPE xen_exporter_build info\n"));

    let text = exporter.get("/metrics");
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(!text.text().contains("# EOF"));
    assert!(text
        .text()
        .contains("# TYPE xen_exporter_build_info gauge\n"));
    assert!(text
        .text()
        .contains("# TYPE process_cpu_seconds_total counter\n"));
}

#[test]
fn gzip_when_accepted() {
    let exporter = Exporter::start(&[]);
    let decoded = exporter.get_gzipped("/metrics");
    assert!(decoded.contains("xen_exporter_build_info{"));
    let plain = exporter.get("/metrics");
    assert_eq!(plain.header("content-encoding"), None);
}

#[test]
fn custom_telemetry_path() {
    let exporter = Exporter::start(&["--web.telemetry-path=/xen/metrics"]);
    assert_eq!(exporter.get("/xen/metrics").status, 200);
    assert_eq!(exporter.get("/metrics").status, 404);
    assert!(exporter.get("/").text().contains(r#"href="/xen/metrics""#));
}

#[test]
fn oversized_request_bodies_are_refused() {
    let exporter = Exporter::start(&[]);
    let response = http(
        exporter.address,
        "POST",
        "/-/reload",
        &[("Content-Length", "10000000")],
    )
    .expect("request");
    assert_eq!(response.status, 413);
}

#[test]
fn oversized_headers_are_refused() {
    let exporter = Exporter::start(&[]);
    let huge = "x".repeat(512 * 1024);
    let status = http(exporter.address, "GET", "/metrics", &[("X-Huge", &huge)])
        .map(|response| response.status)
        .unwrap_or(0);
    assert_eq!(status, 431, "a 512 KiB header must be refused");
    // The server is still fine afterwards.
    assert_eq!(exporter.get("/-/healthy").status, 200);
}

/// promtool parses and lints the text format: of a host without Xen, and of the demo host,
/// where every Xen and ring family is present.
#[test]
fn text_output_passes_promtool_check_metrics() {
    let Some(promtool) = common::tool("text_output_passes_promtool_check_metrics", "promtool")
    else {
        return;
    };
    let demo = ["--xen.source=simulated", "--xen.simulated.domains=3"];
    for (args, family) in [(&[][..], "xen_up 0"), (&demo[..], "xen_vif_ring_entries{")] {
        let exporter = Exporter::start(args);
        let text = exporter.get("/metrics").body;
        assert!(
            String::from_utf8_lossy(&text).contains(family),
            "{args:?}: no {family}"
        );
        let mut child = Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run promtool");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), &text)
            .expect("write metrics");
        let output = child.wait_with_output().expect("promtool output");
        assert!(
            output.status.success(),
            "{args:?}: promtool check metrics failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn bind_error_is_reported_before_serving() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address");
    let output = Command::new(common::exporter_binary())
        .arg(format!("--web.listen-address={address}"))
        .output()
        .expect("run exporter");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("error: listen on {address}: ")),
        "{stderr}"
    );
    assert!(!stderr.contains("msg=listening"), "{stderr}");
}

#[test]
fn sigterm_stops_gracefully() {
    let mut exporter = Exporter::start(&[]);
    exporter.signal("TERM");
    let status = common::poll(std::time::Duration::from_secs(10), || {
        exporter.child.try_wait().ok().flatten()
    })
    .expect("exporter exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(exporter.logs().contains("msg=\"shutting down\""));
}

#[test]
fn version_flag() {
    let output = Command::new(common::exporter_binary())
        .arg("--version")
        .output()
        .expect("run");
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout)
        .starts_with(&format!("xen_exporter {}", env!("CARGO_PKG_VERSION"))));
}
