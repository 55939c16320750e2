//! End to end with real servers: the exporter's simulated Xen host is scraped by a real
//! Prometheus that loads `alerts/*.yml` (rendered from `mixin/`); every metric name the rules and
//! dashboards use is served; every dashboard query (variables substituted as Grafana would)
//! returns a series; the busy but healthy host raises no saturation alert; then one guest's disk goes into a VBD_OO storm and
//! `XenVbdSaturated` (warning) reaches a webhook through a real Alertmanager configured with the
//! inhibitions of docs/alertmanager.md.
//!
//! Pages (a second test, root): after a healthy phase, two guests' disks storm at once and a
//! netsim TUN device of the test starts dropping the probes to three of the four targets of one
//! exchange (two lose all, one half); Alertmanager runs docs/alertmanager.md's whole example (routes by severity, receivers, inhibitions) and its
//! `pager` receiver gets exactly XenHostStorageSaturated and LatencyExchangeDegraded, while the
//! per-VBD and per-target warnings they inhibit fire in Prometheus and reach no receiver.
//!
//! Latency: the exporter's real probes measure loopback targets this test owns: a TCP listener; a
//! closed TCP port (refused: `LatencyPacketLoss` arrives, `LatencyTargetUnreachable` must not,
//! the path works); a listener whose accept queue this test keeps full, so the exporter's SYNs are
//! dropped and time out (`LatencyTargetUnreachable` arrives and inhibits that target's
//! `LatencyPacketLoss` in Alertmanager); and ICMP to 127.0.0.1 as root.
//!
//! The rules are loaded with their time windows shrunk (every `[range]` to 15 s, every `for:` and
//! `keep_firing_for:` from minutes to as many seconds, the 5-minute baseline group to 1 s) and
//! their job selector pointed at the test's job, so a storm fires in seconds instead of 20
//! minutes; expressions and thresholds are the committed ones. The promtool tests in
//! `alerts/tests/` check the real windows.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::prometheus::{Prometheus, PrometheusSetup};
use common::{free_port, http, poll, Exporter, ToolServer};
use netsim::{Impairment, Options, Responder};
use serde_json::Value;

const TEST: &str = "e2e_alerts";
/// The guest whose `xvda` storms; the dashboards' `domain` variable is set to it (it has every
/// kind of device), as an operator would pick it.
const STORM_DOMAIN: &str = "guest-0002";
/// Healthy phase before the storm: long enough for the first scrape (~5.5 s after Prometheus
/// starts) and a few rule evaluations on a loaded machine.
const STORM_AFTER: Duration = Duration::from_secs(40);
/// Simulated guests, each with 4 VBDs (3 blkback with rings, 1 qdisk).
const GUESTS: usize = 4;
/// The guests whose `xvda` storm together in the paging test: two domains saturated at once is
/// XenHostStorageSaturated's "several domains".
const STORM_DOMAINS: [&str; 2] = ["guest-0001", "guest-0003"];
/// The exchange most of whose targets lose probes in the paging test, and one that stays healthy.
const PAGE_IX: &str = "EXAMPLE-IX";
const CALM_IX: &str = "CALM-IX";
/// Share of probes netsim drops to each of the degraded exchange's four targets: two answer
/// nothing (LatencyTargetUnreachable and LatencyPacketLoss fire), one loses half (only
/// LatencyPacketLoss, which then only the exchange-wide page inhibits), one stays healthy.
const PAGE_LOSS: [f64; 4] = [1.0, 1.0, 0.5, 0.0];
/// Healthy phase of the paging test before the storms start and netsim starts dropping.
const PAGES_AFTER: Duration = Duration::from_secs(30);
/// What the test substitutes for Grafana's time variables.
const BUILTINS: &[(&str, &str)] = &[
    ("__rate_interval", "10s"),
    ("__interval", "5s"),
    ("__range", "1m"),
];

/// The mixin's default job selector, pointed at the test Prometheus's job (`sut`).
const RULES_JOB: (&str, &str) = ("job=\"xen_exporter\"", "job=\"sut\"");
/// The mixin's default runbook URL pattern up to the repository path.
const RUNBOOK_BASE: &str = "https://example.invalid/xen_exporter/blob/main/";
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn dashboards_and_storm_alert_end_to_end() {
    let Some(prometheus_binary) = common::tool(TEST, "prometheus") else {
        return;
    };
    let Some(alertmanager_binary) = common::tool(TEST, "prometheus-alertmanager") else {
        return;
    };
    let webhook = Webhook::start();
    let alertmanager =
        Alertmanager::start(&alertmanager_binary, &catch_all_config(webhook.address));
    let storm_after = format!("{}s", STORM_AFTER.as_secs());
    let guests = GUESTS.to_string();
    // Real probes: TCP to a loopback listener of this test, and ICMP echo to 127.0.0.1 when this
    // process may open ICMP sockets (root).
    let probe_target = LoopbackTcpTarget::start();
    let blackhole = BlackholeTcpTarget::start();
    let config_dir = common::temp_dir();
    let icmp = common::is_root();
    let config = probe_config(
        config_dir.path(),
        probe_target.address,
        blackhole.address,
        icmp,
    );
    let config_flag = format!("--config.file={}", config.display());
    let args = vec![
        "--xen.source=simulated",
        "--xen.simulated.domains",
        &guests,
        "--xen.simulated.storm-domain",
        STORM_DOMAIN,
        "--xen.simulated.storm-after",
        &storm_after,
        &config_flag,
    ];
    let started = Instant::now();
    let exporter = Exporter::start(&args);
    let storm_starts = started + STORM_AFTER;
    let serves_latency = poll(Duration::from_secs(20), || {
        let metrics = exporter.get("/metrics").text();
        metrics
            .lines()
            .any(|line| line.starts_with("latency_rtt_seconds_bucket"))
            .then_some(())
    })
    .is_some();
    assert!(
        serves_latency,
        "the exporter probes its targets but serves no RTT histogram: {}",
        exporter.logs()
    );
    let mut skipped_queries = Vec::new();
    if !icmp {
        common::skip(TEST, "latency_reply_ttl queries: ICMP probes need root");
        skipped_queries.push("latency_reply_ttl");
    }
    let rules_dir = common::temp_dir();
    let prometheus = start_prometheus(
        &prometheus_binary,
        exporter.address,
        &shortened_rules(rules_dir.path()),
        alertmanager.server.address,
    );

    check_metric_names(&exporter.get("/metrics").text());

    // Busy but healthy: every VBD has been judged by the saturation rule, none saturated, no
    // alert pending or firing, and all before the storm begins.
    let vbds = GUESTS * 4;
    let judged = poll(Duration::from_secs(20), || {
        (prometheus.series_count("xen_vbd:saturated:bool5m") == vbds).then_some(())
    });
    assert!(
        judged.is_some(),
        "the saturation rule never covered all {vbds} VBDs: {}",
        prometheus.query("xen_vbd:saturated:bool5m")
    );
    assert_eq!(
        prometheus.series_count("xen_vbd:saturated:bool5m == 1"),
        0,
        "a healthy VBD counted as saturated: {}",
        prometheus.query("xen_vbd:out_of_requests_per_request:rate5m")
    );
    assert_eq!(
        prometheus.series_count("ALERTS{alertname=\"XenVbdSaturated\"}"),
        0,
        "saturation alert on a busy but healthy host: {}",
        prometheus.query("ALERTS")
    );
    assert!(
        Instant::now() < storm_starts,
        "the healthy phase was checked after the storm began (machine too slow for STORM_AFTER)"
    );

    check_dashboard_queries(&prometheus, &skipped_queries);
    check_rule_health(&prometheus);

    // The storm: XenVbdSaturated for the storming disk, and only for it, reaches the webhook.
    let deadline =
        (storm_starts + Duration::from_secs(90)).saturating_duration_since(Instant::now());
    let alert = poll(deadline, || {
        webhook.alerts().into_iter().find(|alert| {
            alert["labels"]["alertname"] == "XenVbdSaturated" && alert["status"] == "firing"
        })
    });
    let alert = alert.unwrap_or_else(|| {
        panic!(
            "XenVbdSaturated never reached the webhook; webhook got {:?}; ALERTS: {}; ratio: {}",
            webhook.alerts(),
            prometheus.query("ALERTS"),
            prometheus.query("xen_vbd:out_of_requests_per_request:rate5m > 0.01")
        )
    });
    assert!(
        Instant::now() >= storm_starts,
        "the alert arrived before the storm"
    );
    let labels = &alert["labels"];
    assert_eq!(labels["domain"], STORM_DOMAIN, "{alert}");
    assert_eq!(labels["device"], "xvda", "{alert}");
    assert_eq!(labels["severity"], "warning", "{alert}");
    assert_eq!(labels["backend"], "blkback", "{alert}");
    let runbook = alert["annotations"]["runbook_url"]
        .as_str()
        .expect("runbook_url annotation");
    let page = runbook
        .strip_prefix(RUNBOOK_BASE)
        .unwrap_or_else(|| panic!("runbook_url {runbook} is not under {RUNBOOK_BASE}"));
    assert!(repo().join(page).is_file(), "runbook {runbook} missing");
    assert!(
        alert["annotations"]["dashboard_url"]
            .as_str()
            .is_some_and(
                |url| url.contains("/d/xen-exporter-domain?") && url.contains(STORM_DOMAIN)
            ),
        "{alert}"
    );
    // The blackholed target (SYNs dropped: timeouts) is unreachable and that warning arrives; its
    // LatencyPacketLoss is inhibited by it. The closed port (refused) loses every probe but is
    // reachable: its LatencyPacketLoss arrives, no LatencyTargetUnreachable.
    let find = |name: &str, target: &str| {
        webhook.alerts().into_iter().find(|alert| {
            alert["labels"]["alertname"] == name && alert["labels"]["target"] == target
        })
    };
    let unreachable = poll(Duration::from_secs(30), || {
        find("LatencyTargetUnreachable", "loopback-blackhole")
    })
    .unwrap_or_else(|| {
        panic!(
            "LatencyTargetUnreachable never reached the webhook: {:?}; ALERTS: {}",
            webhook.alerts(),
            prometheus.query("ALERTS")
        )
    });
    assert_eq!(
        unreachable["labels"]["severity"], "warning",
        "{unreachable}"
    );
    let refused = poll(Duration::from_secs(30), || {
        find("LatencyPacketLoss", "loopback-closed")
    })
    .unwrap_or_else(|| {
        panic!(
            "LatencyPacketLoss of the refused target never reached the webhook: {:?}",
            webhook.alerts()
        )
    });
    assert_eq!(refused["labels"]["severity"], "warning", "{refused}");
    assert!(
        prometheus.series_count(
            "ALERTS{alertname=\"LatencyPacketLoss\", target=\"loopback-blackhole\", alertstate=\"firing\"}"
        ) == 1,
        "the blackholed target's LatencyPacketLoss is not firing in Prometheus, so its absence at \
         the webhook would prove nothing: {}",
        prometheus.query("ALERTS")
    );
    assert!(
        find("LatencyPacketLoss", "loopback-blackhole").is_none(),
        "LatencyTargetUnreachable did not inhibit the same target's LatencyPacketLoss: {:?}",
        webhook.alerts()
    );
    assert!(
        webhook.alerts().iter().all(|alert| {
            alert["labels"]["alertname"] != "LatencyTargetUnreachable"
                || alert["labels"]["target"] == "loopback-blackhole"
        }),
        "a refused or answering target was reported unreachable: {:?}",
        webhook.alerts()
    );
    // One storming disk of one domain and one dead target of an exchange page nobody.
    assert!(
        webhook
            .alerts()
            .iter()
            .all(|alert| alert["labels"]["severity"] != "critical"),
        "a critical notification on a host with one saturated disk: {:?}",
        webhook.alerts()
    );
    for other in webhook.alerts() {
        if other["labels"]["alertname"] == "XenVbdSaturated" {
            assert_eq!(
                (&other["labels"]["domain"], &other["labels"]["device"]),
                (&alert["labels"]["domain"], &alert["labels"]["device"]),
                "a healthy disk alerted: {other}"
            );
        }
    }
}

/// After a healthy phase, two guests' disks storm and three of the four targets of one exchange
/// lose all or half their probes (netsim on a TUN device of this test): through
/// docs/alertmanager.md's own routes and inhibitions, the `pager` receiver gets exactly the two pages, XenHostStorageSaturated for the
/// host and LatencyExchangeDegraded for that exchange; the per-VBD and per-target warnings they
/// explain fire in Prometheus but reach no receiver.
#[test]
fn storage_and_exchange_pages_reach_the_pager_and_inhibit_their_symptoms() {
    const PAGES_TEST: &str = "e2e_alerts_pages";
    if !netsim::require_privileged(PAGES_TEST) {
        return;
    }
    let Some(prometheus_binary) = common::tool(PAGES_TEST, "prometheus") else {
        return;
    };
    let Some(alertmanager_binary) = common::tool(PAGES_TEST, "prometheus-alertmanager") else {
        return;
    };
    let started = Instant::now();
    let webhook = Webhook::start();
    let alertmanager = Alertmanager::start(&alertmanager_binary, &docs_config(webhook.address));
    // A TUN device on the host with a route to its own /24 only: the exporter (on loopback, where
    // Prometheus scrapes it) probes addresses netsim answers, and nothing else.
    let options = Options::default().on_host().seed(16);
    let prefix = options.prefix4.expect("on_host gives an IPv4 prefix");
    let address = |index: u128| prefix.nth(index).expect("address in the /24");
    let exchange: Vec<(String, IpAddr, f64)> = (2..=5)
        .zip(PAGE_LOSS)
        .map(|(index, loss)| (format!("ix-peer-{index}"), address(index), loss))
        .collect();
    let calm: Vec<(String, IpAddr)> = (6..=7)
        .map(|index| (format!("calm-peer-{index}"), address(index)))
        .collect();
    let responder = Responder::spawn(options).expect("start the netsim responder");
    let count_losing = |at_least: f64| {
        exchange
            .iter()
            .filter(|(_, _, loss)| *loss >= at_least)
            .count()
    };
    let config_dir = common::temp_dir();
    let mut config =
        "probes:\n  defaults:\n    interval: 500ms\n    timeout: 500ms\n  targets:\n".to_owned();
    for (name, address, _) in &exchange {
        config.push_str(&format!(
            "    - {{host: {address}, protocol: icmp, name: {name}, labels: {{ix: {PAGE_IX}}}}}\n"
        ));
    }
    for (name, address) in &calm {
        config.push_str(&format!(
            "    - {{host: {address}, protocol: icmp, name: {name}, labels: {{ix: {CALM_IX}}}}}\n"
        ));
    }
    let config_path = config_dir.path().join("xen_exporter.yml");
    std::fs::write(&config_path, config).expect("write probe config");
    let config_flag = format!("--config.file={}", config_path.display());
    let guests = GUESTS.to_string();
    let storms = STORM_DOMAINS.join(",");
    let storm_after = format!("{}s", PAGES_AFTER.as_secs());
    let exporter = Exporter::start(&[
        "--xen.source=simulated",
        "--xen.simulated.domains",
        &guests,
        "--xen.simulated.storm-domain",
        &storms,
        "--xen.simulated.storm-after",
        &storm_after,
        &config_flag,
    ]);
    let trouble_starts = Instant::now() + PAGES_AFTER;
    let rules_dir = common::temp_dir();
    let prometheus = start_prometheus(
        &prometheus_binary,
        exporter.address,
        &shortened_rules(rules_dir.path()),
        alertmanager.server.address,
    );

    // Healthy first: every target and VBD judged, none degraded or saturated, nothing paged.
    let targets = exchange.len() + calm.len();
    let judged = poll(Duration::from_secs(20), || {
        (prometheus.series_count("latency:target_degraded:bool") == targets
            && prometheus.series_count("xen_host:domains_saturated:count") == 1)
            .then_some(())
    });
    assert!(
        judged.is_some(),
        "the rules never judged all {targets} targets and the host: {}",
        prometheus.query("latency:target_degraded:bool")
    );
    for healthy in [
        "latency:target_degraded:bool == 1",
        "xen_host:domains_saturated:count > 0",
        "ALERTS{severity=\"critical\"}",
    ] {
        assert_eq!(
            prometheus.series_count(healthy),
            0,
            "{healthy} before the trouble: {}",
            prometheus.query(healthy)
        );
    }
    assert!(
        Instant::now() < trouble_starts,
        "the healthy phase was checked after the trouble began (machine too slow for PAGES_AFTER)"
    );
    // The trouble: the storms start by the exporter's clock, netsim starts dropping now.
    std::thread::sleep(trouble_starts.saturating_duration_since(Instant::now()));
    for (_, address, loss) in &exchange {
        responder.impair(
            *address,
            Impairment {
                loss: *loss,
                ..Impairment::default()
            },
        );
    }

    // Both pages reach the pager.
    let instance = exporter.address.to_string();
    let expected: BTreeSet<(String, String)> = [
        ("XenHostStorageSaturated".to_owned(), instance.clone()),
        ("LatencyExchangeDegraded".to_owned(), PAGE_IX.to_owned()),
    ]
    .into();
    let pages = |webhook: &Webhook| -> BTreeSet<(String, String)> {
        webhook
            .notifications()
            .iter()
            .filter(|notification| notification.alert["labels"]["severity"] == "critical")
            .map(|notification| page_key(&notification.alert))
            .collect()
    };
    let arrived = poll(Duration::from_secs(120), || {
        (pages(&webhook) == expected).then_some(())
    });
    assert!(
        arrived.is_some(),
        "the pager did not get exactly {expected:?}: got {:?}\nall notifications: {:?}\n\
         ALERTS: {}\nexchange ratio: {}\nresponder: {}",
        pages(&webhook),
        webhook.notifications(),
        prometheus.query("ALERTS"),
        prometheus.query("latency:exchange_targets_degraded:ratio"),
        responder.stats()
    );
    // The symptoms the pages explain fire in Prometheus, so their absence at the receivers means
    // the inhibitions held: both storming VBDs' XenVbdSaturated, the silent targets'
    // LatencyTargetUnreachable and every losing target's LatencyPacketLoss.
    let firing = |alertname: &str, matcher: &str| {
        format!("ALERTS{{alertname=\"{alertname}\", alertstate=\"firing\"{matcher}}}")
    };
    let symptoms = [
        (firing("XenVbdSaturated", ""), STORM_DOMAINS.len()),
        (
            firing("LatencyTargetUnreachable", &format!(", ix=\"{PAGE_IX}\"")),
            count_losing(1.0),
        ),
        (
            firing("LatencyPacketLoss", &format!(", ix=\"{PAGE_IX}\"")),
            count_losing(0.05),
        ),
    ];
    for (expr, count) in &symptoms {
        let fired = poll(Duration::from_secs(30), || {
            (prometheus.series_count(expr) >= *count).then_some(())
        });
        assert!(
            fired.is_some(),
            "{expr} not firing {count} times, so its absence at the receivers would prove \
             nothing: {}",
            prometheus.query("ALERTS")
        );
    }
    // Past the group wait of the symptoms' groups: had they not been inhibited, they would be here.
    std::thread::sleep(Duration::from_secs(8));
    let notifications = webhook.notifications();
    assert_eq!(
        pages(&webhook),
        expected,
        "pages besides the expected ones: {notifications:?}"
    );
    for notification in &notifications {
        let labels = &notification.alert["labels"];
        let critical = labels["severity"] == "critical";
        assert_eq!(
            notification.receiver,
            if critical { "pager" } else { "tickets" },
            "routed by severity as docs/alertmanager.md says: {notification:?}"
        );
        let name = labels["alertname"].as_str().unwrap_or_default();
        assert!(
            !matches!(name, "XenVbdSaturated" | "XenNoisyNeighbour"),
            "XenHostStorageSaturated did not inhibit {name}: {notification:?}"
        );
        assert!(
            !(name.starts_with("Latency") && !critical && labels["ix"] == PAGE_IX),
            "LatencyExchangeDegraded did not inhibit {name} of {PAGE_IX}: {notification:?}"
        );
    }
    let storm_vbds = prometheus.query(&firing("XenVbdSaturated", ""));
    for domain in STORM_DOMAINS {
        assert!(
            storm_vbds.contains(&format!("\"domain\":\"{domain}\"")),
            "{domain}'s disk is not among the saturated VBDs: {storm_vbds}"
        );
    }
    // The healthy exchange's peers answer every probe: no page, no warning for them.
    assert!(
        notifications
            .iter()
            .all(|notification| notification.alert["labels"]["ix"] != CALM_IX),
        "a healthy exchange alerted: {notifications:?}"
    );
    eprintln!(
        "{PAGES_TEST}: pages {expected:?} arrived, {} notifications in all, {:.0} s",
        notifications.len(),
        started.elapsed().as_secs_f64()
    );
    drop(responder);
}

/// (alertname, what it is about) of a page: the exchange of an exchange-wide page, else the
/// instance.
fn page_key(alert: &Value) -> (String, String) {
    let labels = &alert["labels"];
    let about = labels["ix"].as_str().or(labels["instance"].as_str());
    (
        labels["alertname"].as_str().unwrap_or("?").to_owned(),
        about.unwrap_or("?").to_owned(),
    )
}

/// A Prometheus scraping the exporter every second, evaluating `rule_files` and sending to
/// `alertmanager`, once it has scraped the exporter.
fn start_prometheus(
    binary: &Path,
    exporter: SocketAddr,
    rule_files: &[PathBuf],
    alertmanager: SocketAddr,
) -> Prometheus {
    let prometheus = Prometheus::start(
        binary,
        &PrometheusSetup {
            targets: &[exporter],
            scrape_interval: "1s",
            rule_files,
            alertmanager: Some(alertmanager),
            extra_job_yaml: "",
        },
    );
    assert!(
        prometheus.wait_for_series("xen_up{job=\"sut\"} == 1", Duration::from_secs(30)),
        "Prometheus never scraped the exporter: {}",
        prometheus.query("up")
    );
    prometheus
}

/// Copies of `alerts/*.yml` with every range selector `[..]` set to 15 s, every `for:` and
/// `keep_firing_for:` of N minutes set to N seconds (their order kept: a 5-minute alert still
/// fires before a 10-minute one, which inhibitions rely on), every group `interval:` to 1 s, and
/// the mixin's default job selector set to the test's job.
fn shortened_rules(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(repo().join("alerts"))
        .expect("read alerts/")
        .map(|entry| entry.expect("alerts/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yml"))
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path).expect("read rule file");
        let shortened: Vec<String> = text
            .lines()
            .map(|line| {
                // In block scalars and in double-quoted YAML strings (quotes escaped).
                let line = line.replace(RULES_JOB.0, RULES_JOB.1).replace(
                    &RULES_JOB.0.replace('"', "\\\""),
                    &RULES_JOB.1.replace('"', "\\\""),
                );
                let trimmed = line.trim_start();
                // A key may open a list item (`- interval: "5m"` starts a group).
                let item = trimmed.strip_prefix("- ").unwrap_or(trimmed);
                let indent = &line[..line.len() - item.len()];
                if let Some((key, value)) = item.split_once(": ") {
                    if matches!(key, "for" | "keep_firing_for" | "interval") {
                        return format!("{indent}{key}: {}", minutes_as_seconds(key, value));
                    }
                }
                shorten_ranges(&line)
            })
            .collect();
        let target = dir.join(path.file_name().expect("file name"));
        std::fs::write(&target, shortened.join("\n") + "\n").expect("write rule file");
        files.push(target);
    }
    assert!(files.len() >= 2, "alerts/*.yml not found");
    files
}

/// `"10m"` -> `10s` for `for`/`keep_firing_for`; a group's `interval` -> `1s`.
fn minutes_as_seconds(key: &str, value: &str) -> String {
    if key == "interval" {
        return "1s".to_owned();
    }
    let minutes: u64 = value
        .trim_matches('"')
        .strip_suffix('m')
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("{key}: {value} is not a number of minutes"));
    format!("{minutes}s")
}

/// `rate(x[5m])` -> `rate(x[15s])`; subqueries and variables (`[$__range:1m]`) stay. A bracket
/// inside a label value would be rewritten too; the rules have none.
fn shorten_ranges(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find('[') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find(']') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = &rest[start + 1..start + end];
        if !inner.is_empty()
            && inner.chars().all(|c| c.is_ascii_alphanumeric())
            && inner.starts_with(|c: char| c.is_ascii_digit())
        {
            out.push_str("[15s]");
        } else {
            out.push_str(&rest[start..=start + end]);
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

/// Every metric name in `alerts/metrics.txt` (the names the rules and dashboards use) is served:
/// as a sample, or as a declared family without series yet (a labelled counter such as
/// `latency_errors_total{reason}` appears with its first error). Names Prometheus makes itself
/// (`up`, `scrape_duration_seconds`, `ALERTS`) are not the exporter's.
fn check_metric_names(metrics: &str) {
    let served = served_names(metrics);
    let listed = std::fs::read_to_string(repo().join("alerts/metrics.txt")).expect("metrics.txt");
    let mut missing = Vec::new();
    for name in listed.lines().map(str::trim) {
        if name.is_empty()
            || name.starts_with('#')
            || ["up", "scrape_duration_seconds", "ALERTS"].contains(&name)
        {
            continue;
        }
        if !served.contains(name) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "alerts/metrics.txt names metrics /metrics does not serve: {missing:?}"
    );
}

/// Names /metrics serves, as samples or declared families (with their suffixes).
fn served_names(metrics: &str) -> BTreeSet<String> {
    let mut served: BTreeSet<String> = metrics
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| line[..line.find(['{', ' ']).unwrap_or(line.len())].to_owned())
        .collect();
    for family in metrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
    {
        for suffix in ["", "_total", "_bucket", "_sum", "_count", "_info"] {
            served.insert(format!("{family}{suffix}"));
        }
    }
    served
}

/// Runs every dashboard query against Prometheus, variables substituted, and asserts each
/// returns at least one series.
fn check_dashboard_queries(prometheus: &Prometheus, skipped: &[&str]) {
    let mut skips = 0;
    let mut paths: Vec<PathBuf> = std::fs::read_dir(repo().join("dashboards"))
        .expect("read dashboards/")
        .map(|entry| entry.expect("dashboards/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    assert_eq!(paths.len(), 5, "expected 5 dashboards, found {paths:?}");
    let mut queries = Vec::new();
    for path in &paths {
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("read dashboard"))
                .expect("dashboard is JSON");
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let exprs = panel_queries(&dashboard);
        let values = resolve_variables(prometheus, &dashboard, &name);
        for (panel, expr) in exprs {
            if skipped.iter().any(|part| expr.contains(part)) {
                skips += 1;
            } else {
                queries.push((format!("{name}: {panel}"), substitute(&expr, &values)));
            }
        }
    }
    assert!(
        queries.len() > 40,
        "too few dashboard queries: {}",
        queries.len()
    );
    // Recording rules need a few evaluations: poll the ones still empty, with one deadline.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut empty: Vec<&(String, String)> = queries.iter().collect();
    loop {
        empty.retain(|(_, expr)| prometheus.series_count(expr) == 0);
        if empty.is_empty() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let report: Vec<String> = empty
        .iter()
        .map(|(panel, expr)| format!("{panel}\n    {expr}\n    -> {}", prometheus.query(expr)))
        .collect();
    assert!(
        report.is_empty(),
        "{} of {} dashboard queries returned no series:\n{}",
        report.len(),
        queries.len(),
        report.join("\n")
    );
    eprintln!(
        "{TEST}: {} dashboard queries all returned series ({skips} skipped)",
        queries.len()
    );
}

/// Every rule evaluates without error (many-to-many matches and the like only show at run
/// time) once Prometheus has evaluated them all.
fn check_rule_health(prometheus: &Prometheus) {
    let rules = |prometheus: &Prometheus| -> Vec<Value> {
        let response = http(prometheus.address, "GET", "/api/v1/rules", &[])
            .map(|response| response.text())
            .unwrap_or_default();
        let json: Value = serde_json::from_str(&response).unwrap_or(Value::Null);
        json["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
            .collect()
    };
    let evaluated = poll(Duration::from_secs(20), || {
        let all = rules(prometheus);
        (!all.is_empty() && all.iter().all(|rule| rule["health"] != "unknown")).then_some(all)
    })
    .expect("Prometheus evaluates every rule");
    let failing: Vec<String> = evaluated
        .iter()
        .filter(|rule| rule["health"] != "ok")
        .map(|rule| format!("{}: {}", rule["name"], rule["lastError"]))
        .collect();
    assert!(
        failing.is_empty(),
        "rules failing to evaluate: {failing:#?}"
    );
    eprintln!("{TEST}: {} rules evaluate without error", evaluated.len());
}

/// (panel title + refId, expr) of every target of every panel, rows included.
fn panel_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        panels.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            panels.extend(nested);
        }
    }
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_default().to_owned();
            let title = format!(
                "{} [{}]",
                panel["title"].as_str().unwrap_or("?"),
                target["refId"].as_str().unwrap_or("?")
            );
            out.push((title, expr));
        }
    }
    out
}

/// Values for the dashboard's variables, in order (later ones may use earlier ones), as Grafana
/// picks them: `All` (its allValue) for multi-value variables, else the first value of the
/// variable's query, except `domain`, set to the storming guest.
fn resolve_variables(
    prometheus: &Prometheus,
    dashboard: &Value,
    name: &str,
) -> Vec<(String, String)> {
    let mut values: Vec<(String, String)> = BUILTINS
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect();
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        let var = variable["name"].as_str().expect("variable name").to_owned();
        if variable["type"] == "datasource" {
            continue;
        }
        if variable["includeAll"] == true {
            let all = variable["allValue"].as_str().unwrap_or(".*").to_owned();
            values.push((var, all));
            continue;
        }
        let query = substitute(variable["query"].as_str().expect("query string"), &values);
        let (expr, label) = label_values(&query)
            .unwrap_or_else(|| panic!("{name}: variable {var}: not label_values(): {query}"));
        let options = poll(Duration::from_secs(20), || {
            let options = label_values_of(prometheus, &expr, &label);
            (!options.is_empty()).then_some(options)
        })
        .unwrap_or_else(|| panic!("{name}: variable {var} has no values: {query}"));
        let value = if var == "domain" && options.contains(STORM_DOMAIN) {
            STORM_DOMAIN.to_owned()
        } else {
            options.into_iter().next().expect("non-empty")
        };
        values.push((var, value));
    }
    values
}

/// `label_values(expr, label)` -> (expr, label).
fn label_values(query: &str) -> Option<(String, String)> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let (expr, label) = inner.rsplit_once(',')?;
    Some((expr.trim().to_owned(), label.trim().to_owned()))
}

fn label_values_of(prometheus: &Prometheus, expr: &str, label: &str) -> BTreeSet<String> {
    let response: Value = serde_json::from_str(&prometheus.query(expr)).unwrap_or(Value::Null);
    response["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|series| series["metric"][label].as_str().map(str::to_owned))
        .collect()
}

/// Replaces `$name` and `${name}` with the variable's value (Grafana's substitution).
fn substitute(text: &str, values: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match values.iter().find(|(key, _)| key == name) {
            Some((_, value)) if !name.is_empty() => {
                out.push_str(value);
                rest = &after[consumed..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A webhook receiver on loopback that keeps every alert Alertmanager posts, with the name of
/// the receiver (route) that sent it.
struct Webhook {
    address: SocketAddr,
    notifications: Arc<Mutex<Vec<Notification>>>,
}

/// One alert as a receiver got it.
#[derive(Clone, Debug)]
struct Notification {
    receiver: String,
    alert: Value,
}

impl Webhook {
    fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind webhook");
        let address = listener.local_addr().expect("webhook address");
        let notifications = Arc::new(Mutex::new(Vec::new()));
        let sink = notifications.clone();
        // The thread ends with the test process; it holds no child process.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                if let Some(body) = read_request_body(&mut stream) {
                    if let Ok(payload) = serde_json::from_slice::<Value>(&body) {
                        let receiver = payload["receiver"].as_str().unwrap_or("?").to_owned();
                        let mut notifications = sink.lock().expect("webhook lock");
                        notifications.extend(
                            payload["alerts"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .map(|alert| Notification {
                                    receiver: receiver.clone(),
                                    alert: alert.clone(),
                                }),
                        );
                    }
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Webhook {
            address,
            notifications,
        }
    }

    fn notifications(&self) -> Vec<Notification> {
        self.notifications.lock().expect("webhook lock").clone()
    }

    fn alerts(&self) -> Vec<Value> {
        self.notifications()
            .into_iter()
            .map(|notification| notification.alert)
            .collect()
    }
}

fn read_request_body(stream: &mut std::net::TcpStream) -> Option<Vec<u8>> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((key, value)) = line.split_once(':') {
            if key.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(body)
}

/// A real Alertmanager (Debian `prometheus-alertmanager`) with a given configuration; stopped by
/// PID on drop.
struct Alertmanager {
    server: ToolServer,
}

impl Alertmanager {
    fn start(binary: &Path, config: &str) -> Alertmanager {
        let dir = common::temp_dir();
        let config_path = dir.path().join("alertmanager.yml");
        std::fs::write(&config_path, config).expect("write alertmanager.yml");
        let data = dir.path().join("data");
        let server = ToolServer::start(
            binary,
            dir,
            &[
                format!("--config.file={}", config_path.display()),
                format!("--storage.path={}", data.display()),
                // No gossip cluster: a lone test instance.
                "--cluster.listen-address=".to_owned(),
            ],
        );
        Alertmanager { server }
    }
}

/// Routes every alert to the webhook at once, with docs/alertmanager.md's inhibitions.
fn catch_all_config(webhook: SocketAddr) -> String {
    format!(
        "route:\n  receiver: webhook\n  group_by: [alertname, domain, device, target]\n  \
         group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: \
         webhook\n    webhook_configs:\n      - url: http://{webhook}/alerts\n        \
         send_resolved: false\n{}",
        docs_inhibit_rules()
    )
}

/// The whole example configuration of docs/alertmanager.md (its routes by severity, receivers
/// `pager` and `tickets`, and inhibitions), with both receivers' URLs pointed at the webhook and
/// the timers shortened: `group_wait` 30 s -> 5 s, `group_interval` 5 m -> 1 s. The group wait
/// stays above the few seconds of scrape, evaluation and probe-timeout jitter by which an
/// inhibited alert may fire before the alert that inhibits it (both have the same `for:`), as
/// 30 s does for the real windows.
fn docs_config(webhook: SocketAddr) -> String {
    let block = docs_alertmanager_block();
    let mut config = block.clone();
    for (from, to) in [
        (
            "http://pager.example.invalid/hook".to_owned(),
            format!("http://{webhook}/pager"),
        ),
        (
            "http://tickets.example.invalid/hook".to_owned(),
            format!("http://{webhook}/tickets"),
        ),
        ("group_wait: 30s".to_owned(), "group_wait: 5s".to_owned()),
        (
            "group_interval: 5m".to_owned(),
            "group_interval: 1s".to_owned(),
        ),
    ] {
        assert!(
            config.contains(&from),
            "docs/alertmanager.md's example lacks `{from}`: update the test\n{block}"
        );
        config = config.replace(&from, &to);
    }
    config
}

/// The ```yaml alertmanager.yml block of docs/alertmanager.md.
fn docs_alertmanager_block() -> String {
    let doc =
        std::fs::read_to_string(repo().join("docs/alertmanager.md")).expect("docs/alertmanager.md");
    doc.split("```yaml alertmanager.yml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/alertmanager.md has a ```yaml alertmanager.yml block")
        .to_owned()
}

/// The `inhibit_rules:` section of the example Alertmanager configuration in
/// docs/alertmanager.md (the ```yaml alertmanager.yml block), so the test runs what users copy.
fn docs_inhibit_rules() -> String {
    let block = docs_alertmanager_block();
    let rules = block
        .split_once("inhibit_rules:")
        .map(|(_, rules)| format!("inhibit_rules:{rules}"))
        .expect("the example has inhibit_rules");
    assert!(rules.contains("LatencyTargetUnreachable"), "{rules}");
    rules
}

/// A loopback TCP listener the TCP probe connects to; accepted connections are dropped at once.
struct LoopbackTcpTarget {
    address: SocketAddr,
}

impl LoopbackTcpTarget {
    fn start() -> LoopbackTcpTarget {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind probe target");
        let address = listener.local_addr().expect("probe target address");
        // The thread ends with the test process; it holds no child process.
        std::thread::spawn(move || for _connection in listener.incoming() {});
        LoopbackTcpTarget { address }
    }
}

/// A loopback TCP listener (backlog 0) whose only accept-queue slot this test fills at once and
/// never accepts: the kernel drops every further SYN, so the exporter's probes time out as on a
/// path that is down. The listener and the parked connection live as long as this value.
struct BlackholeTcpTarget {
    address: SocketAddr,
    _listener: socket2::Socket,
    _parked: std::net::TcpStream,
}

impl BlackholeTcpTarget {
    fn start() -> BlackholeTcpTarget {
        let listener = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("blackhole socket");
        let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
        listener.bind(&any.into()).expect("bind blackhole");
        listener.listen(0).expect("listen blackhole");
        let address = listener
            .local_addr()
            .expect("blackhole address")
            .as_socket()
            .expect("inet address");
        let parked = std::net::TcpStream::connect(address).expect("fill the accept queue");
        BlackholeTcpTarget {
            address,
            _listener: listener,
            _parked: parked,
        }
    }
}

/// A config file with loopback probe targets labelled like the exchange targets: `loopback-web`
/// (TCP, answers), `loopback-closed` (TCP to a closed port: refused, so the errors family has
/// series and LatencyPacketLoss fires, LatencyTargetUnreachable not), `loopback-blackhole` (SYNs
/// dropped: timeouts, LatencyTargetUnreachable), `loopback-name` (the listener by host name, so
/// the DNS lookup series exist), and `loopback` (ICMP echo, when `icmp`).
fn probe_config(dir: &Path, tcp: SocketAddr, blackhole: SocketAddr, icmp: bool) -> PathBuf {
    let labels = "labels: {ix: NIX, city: Oslo, org: Example}";
    let closed = free_port();
    // Traces every 2 s (default 5 min), loopback declared an exchange: the path panels and
    // their families have series within the test.
    let mut text = format!(
        "ixes:\n  NIX: [127.0.0.0/8]\nprobes:\n  defaults:\n    trace: {{interval: 2s}}\n  targets:\n    - host: {ip}\n      protocol: tcp\n      port: {}\n      \
         name: loopback-web\n      {labels}\n    - host: {ip}\n      protocol: tcp\n      \
         port: {closed}\n      name: loopback-closed\n      {labels}\n    - host: {ip}\n      \
         protocol: tcp\n      port: {}\n      name: loopback-blackhole\n      {labels}\n    - host: \
         localhost\n      protocol: tcp\n      port: {}\n      name: loopback-name\n      {labels}\n",
        tcp.port(),
        blackhole.port(),
        tcp.port(),
        ip = tcp.ip(),
    );
    if icmp {
        text.push_str(&format!(
            "    - host: 127.0.0.1\n      protocol: icmp\n      name: loopback\n      {labels}\n"
        ));
    }
    let path = dir.join("xen_exporter.yml");
    std::fs::write(&path, text).expect("write probe config");
    path
}

#[test]
fn ranges_and_variables_are_rewritten() {
    assert_eq!(
        shorten_ranges(r#"rate(x{a="b"}[5m]) / y[1d] + z[$__range:1m] + w[5m:1m]"#),
        r#"rate(x{a="b"}[15s]) / y[15s] + z[$__range:1m] + w[5m:1m]"#
    );
    assert_eq!(minutes_as_seconds("for", "\"10m\""), "10s");
    assert_eq!(minutes_as_seconds("keep_firing_for", "\"15m\""), "15s");
    assert_eq!(minutes_as_seconds("interval", "\"5m\""), "1s");
    let values = vec![
        ("job".to_owned(), "sut".to_owned()),
        ("__rate_interval".to_owned(), "10s".to_owned()),
    ];
    assert_eq!(
        substitute(
            r#"rate(a{job=~"$job"}[$__rate_interval]) ${job} $nope"#,
            &values
        ),
        r#"rate(a{job=~"sut"}[10s]) sut $nope"#
    );
    assert_eq!(
        label_values(r#"label_values(xen_up{job=~"sut"}, instance)"#),
        Some((r#"xen_up{job=~"sut"}"#.to_owned(), "instance".to_owned()))
    );
}
