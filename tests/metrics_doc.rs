//! `docs/METRICS.md` is the exporter's real output: its generated part is rebuilt here from
//! what `/metrics` serves (simulated host, so every Xen family is present) and must match the
//! committed file. After changing a metric, run with `UPDATE_DOCS=1` and commit the result.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::Exporter;

const BEGIN: &str = "<!-- BEGIN GENERATED: tests/metrics_doc.rs -->";
const END: &str = "<!-- END GENERATED -->";

#[derive(Default)]
struct Family {
    kind: String,
    help: String,
    labels: BTreeSet<String>,
}

/// Families of a Prometheus 0.0.4 text exposition, with the label names their samples use.
fn families(text: &str) -> BTreeMap<String, Family> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut kinds: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            families.entry(name.to_owned()).or_default().help = help.to_owned();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            families.entry(name.to_owned()).or_default().kind = kind.to_owned();
            kinds.push((name.to_owned(), kind.to_owned()));
        } else if !line.starts_with('#') && !line.is_empty() {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let sample = &line[..name_end];
            // The family a sample belongs to: the longest family name it starts with.
            let Some((family, _)) = kinds
                .iter()
                .filter(|(family, _)| sample.starts_with(family.as_str()))
                .max_by_key(|(family, _)| family.len())
            else {
                continue;
            };
            let labels = line[name_end..]
                .strip_prefix('{')
                .and_then(|rest| rest.split_once('}'))
                .map(|(labels, _)| labels)
                .unwrap_or("");
            let entry = families.entry(family.clone()).or_default();
            for pair in labels.split("\",").filter(|pair| !pair.is_empty()) {
                if let Some((key, _)) = pair.split_once('=') {
                    if key != "le" && key != "quantile" {
                        entry.labels.insert(key.to_owned());
                    }
                }
            }
        }
    }
    families
}

/// The section a family is documented in.
fn section(name: &str) -> &'static str {
    const RINGS: [&str; 5] = [
        "xen_vbd_ring_",
        "xen_vif_ring_",
        "xen_vif_queues",
        "xen_vif_tx_",
        "xen_vif_rx_queue",
    ];
    if name.starts_with("xen_exporter_") || name.starts_with("process_") {
        "Exporter"
    } else if name.starts_with("xen_vbd_backing_") {
        "Backing devices (collector `backing`)"
    } else if RINGS.iter().any(|prefix| name.starts_with(prefix)) {
        "I/O rings (collector `rings`)"
    } else if name.starts_with("latency_") {
        "Latency probes"
    } else {
        "Hypervisor (collectors `xen` and `vbd`)"
    }
}

fn generate(text: &str) -> String {
    let mut sections: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, family) in families(text) {
        let labels = family
            .labels
            .iter()
            .map(|label| format!("`{label}`"))
            .collect::<Vec<_>>()
            .join(", ");
        sections.entry(section(&name)).or_default().push(format!(
            "| `{name}` | {} | {labels} | {} |",
            family.kind,
            family.help.replace('|', "\\|")
        ));
    }
    let order = [
        "Hypervisor (collectors `xen` and `vbd`)",
        "I/O rings (collector `rings`)",
        "Backing devices (collector `backing`)",
        "Latency probes",
        "Exporter",
    ];
    let mut out = String::new();
    for title in order {
        let Some(rows) = sections.get(title) else {
            continue;
        };
        out.push_str(&format!(
            "\n### {title}\n\n| Metric | Type | Labels | Help |\n|---|---|---|---|\n"
        ));
        for row in rows {
            out.push_str(row);
            out.push('\n');
        }
    }
    out
}

#[test]
fn metrics_md_matches_what_metrics_serves() {
    // Probe targets so that every latency family has series: TCP by host name to a listener of
    // this test (DNS families, RTT, jitter), TCP to a closed port (errors), ICMP to loopback
    // (reply TTL; needs root or ping sockets); every target traced each second (path families),
    // one through an interface that does not exist (trace errors).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind probe target");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || for _connection in listener.incoming() {});
    let dir = common::temp_dir();
    let config = dir.path().join("xen_exporter.yml");
    std::fs::write(
        &config,
        format!(
            "probes:\n  defaults:\n    interval: 50ms\n    timeout: 50ms\n    family: ip4\n    \
             labels: {{ix: NIX}}\n    trace: {{interval: 1s}}\n  targets:\n    - {{host: localhost, protocol: tcp, port: {port}}}\n    \
             - {{host: 127.0.0.1, protocol: tcp, port: {}}}\n    - {{host: 127.0.0.1, protocol: icmp}}\n    \
             - {{name: no-interface, host: 127.0.0.1, protocol: tcp, port: 9, interface: xe-doc-none}}\n\
             \x20 target_files: ['{}']\n\
             ixes:\n  NIX: [192.0.2.0/24]\n",
            common::free_port(),
            dir.path().join("targets.yml").display()
        ),
    )
    .expect("write config");
    // A target file, so the target-file gauges have series (its target: loopback, TCP).
    std::fs::write(
        dir.path().join("targets.yml"),
        format!("- targets: ['127.0.0.2:{port}']\n  labels: {{__protocol: tcp}}\n"),
    )
    .expect("write target file");
    let exporter = Exporter::start(&[
        "--xen.source=simulated",
        "--xen.simulated.domains=2",
        &format!("--config.file={}", config.display()),
    ]);
    let scrape = || {
        let response = common::http(
            exporter.address,
            "GET",
            "/metrics",
            &[("Accept", "text/plain; version=0.0.4")],
        )
        .expect("GET /metrics");
        assert_eq!(response.status, 200);
        response.text()
    };
    let icmp = common::is_root();
    let families_present = |text: &str| {
        [
            "latency_jitter_seconds{",
            "latency_errors_total{",
            "latency_dns_lookups_total{",
            "latency_path_info{",
            "latency_path_via_ix{",
            "latency_path_trace_errors_total{",
            "xen_exporter_target_file_targets{",
        ]
        .iter()
        .all(|needle| text.contains(needle))
            && (!icmp || text.contains("latency_reply_ttl{"))
    };
    let text = common::poll(std::time::Duration::from_secs(20), || {
        Some(scrape()).filter(|text| families_present(text))
    })
    .unwrap_or_else(|| panic!("latency families never all had series:\n{}", scrape()));
    let mut generated = generate(&text);
    // Without root, ICMP cannot run here and latency_reply_ttl has no series (so no labels):
    // its row is left out of the comparison rather than documented wrong.
    let ttl_row = "| `latency_reply_ttl`";
    if !icmp {
        eprintln!("SKIP part of metrics_md_matches_what_metrics_serves: latency_reply_ttl needs ICMP (root)");
        generated = generated
            .lines()
            .filter(|line| !line.starts_with(ttl_row))
            .map(|line| format!("{line}\n"))
            .collect();
    }
    assert!(
        generated.contains("`xen_vbd_out_of_requests_total` | counter | `device`, `domain`"),
        "the simulated host shows VBD_OO:\n{generated}"
    );

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/METRICS.md");
    let mut current = std::fs::read_to_string(&path).expect("docs/METRICS.md exists");
    if !icmp {
        current = current
            .lines()
            .filter(|line| !line.starts_with(ttl_row))
            .map(|line| format!("{line}\n"))
            .collect();
    }
    let (Some(begin), Some(end)) = (current.find(BEGIN), current.find(END)) else {
        panic!("docs/METRICS.md lacks the {BEGIN} … {END} markers");
    };
    let wanted = format!(
        "{}{BEGIN}\n{generated}\n{}",
        &current[..begin],
        &current[end..]
    );
    if std::env::var("UPDATE_DOCS").is_ok_and(|value| value == "1") {
        assert!(
            icmp,
            "UPDATE_DOCS needs root: every latency family must have series"
        );
        std::fs::write(&path, &wanted).expect("write docs/METRICS.md");
        return;
    }
    assert!(
        current == wanted,
        "docs/METRICS.md is out of date with /metrics: run `UPDATE_DOCS=1 cargo nextest run \
         --test metrics_doc` and commit. Generated part:\n{generated}"
    );
}
