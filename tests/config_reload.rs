//! SIGHUP and `POST /-/reload`: a bad file keeps the old configuration and says why.

mod common;

use std::time::Duration;

use common::{http, sample, Exporter};

fn reload_successful(exporter: &Exporter) -> Option<f64> {
    sample(
        &exporter.get("/metrics").text(),
        "xen_exporter_config_last_reload_successful",
        "",
    )
}

#[test]
fn sighup_with_a_bad_file_keeps_serving_the_old_config() {
    let dir = common::temp_dir();
    let path = dir.path().join("xen_exporter.yml");
    std::fs::write(&path, "xen:\n  rings: true\n").expect("write config");
    let exporter = Exporter::start(&[&format!("--config.file={}", path.display())]);
    assert_eq!(reload_successful(&exporter), Some(1.0));

    std::fs::write(&path, "xen:\n  rings: perhaps\n").expect("write bad config");
    exporter.signal("HUP");
    let failed = common::poll(Duration::from_secs(10), || {
        (reload_successful(&exporter) == Some(0.0)).then_some(())
    });
    assert!(
        failed.is_some(),
        "reload failure not reported; logs:\n{}",
        exporter.logs()
    );
    assert!(
        exporter
            .logs()
            .contains("xen.rings: invalid type: string \\\"perhaps\\\", expected a boolean"),
        "{}",
        exporter.logs()
    );
    assert_eq!(exporter.get("/-/healthy").status, 200);

    let response = http(exporter.address, "POST", "/-/reload", &[]).expect("reload request");
    assert_eq!(response.status, 500);
    assert!(
        response
            .text()
            .contains("xen_exporter.yml:2:10: xen.rings:"),
        "{}",
        response.text()
    );

    std::fs::write(&path, "xen:\n  rings: false\n").expect("write fixed config");
    exporter.signal("HUP");
    let recovered = common::poll(Duration::from_secs(10), || {
        (reload_successful(&exporter) == Some(1.0)).then_some(())
    });
    assert!(
        recovered.is_some(),
        "good reload not reported; logs:\n{}",
        exporter.logs()
    );
    let response = http(exporter.address, "POST", "/-/reload", &[]).expect("reload request");
    assert_eq!(response.status, 200);
    let timestamp = sample(
        &exporter.get("/metrics").text(),
        "xen_exporter_config_last_reload_success_timestamp_seconds",
        "",
    )
    .expect("timestamp sample");
    assert!(timestamp > 1.7e9, "{timestamp}");
}

#[test]
fn the_landing_page_shows_the_reloaded_configuration() {
    let dir = common::temp_dir();
    let path = dir.path().join("xen_exporter.yml");
    std::fs::write(&path, "xen:\n  rings: true\n").expect("write config");
    let exporter = Exporter::start(&[&format!("--config.file={}", path.display())]);
    let page = exporter.get("/").text();
    assert!(
        page.contains("latency probes: no targets configured"),
        "{page}"
    );

    // Nothing listens on the port: the probes are refused, on loopback only.
    let port = common::free_port();
    std::fs::write(
        &path,
        format!(
            "probes:\n  targets:\n    - {{host: 127.0.0.1, protocol: tcp, port: {port}}}\n\
             \x20   - {{host: 127.0.0.2, protocol: tcp, port: {port}}}\n"
        ),
    )
    .expect("write the new config");
    let response = http(exporter.address, "POST", "/-/reload", &[]).expect("reload request");
    assert_eq!(response.status, 200, "{}", response.text());
    let page = exporter.get("/").text();
    assert!(
        page.contains("latency probes: 2 targets (0 icmp, 2 tcp)"),
        "{page}\n{}",
        exporter.logs()
    );
}
