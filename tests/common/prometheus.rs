//! A throwaway real Prometheus server (Debian's `prometheus`) in a temp dir on a free port.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{http, poll, ToolServer};

/// A running Prometheus; stopped by PID and its directory removed on drop.
pub struct Prometheus {
    _server: ToolServer,
    pub address: SocketAddr,
}

/// What the server scrapes and evaluates.
pub struct PrometheusSetup<'a> {
    pub targets: &'a [SocketAddr],
    pub scrape_interval: &'a str,
    pub rule_files: &'a [PathBuf],
    pub alertmanager: Option<SocketAddr>,
    /// Extra `scrape_configs` entries' fields, e.g. `scheme: https`.
    pub extra_job_yaml: &'a str,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second, with no rules, and waits until it is
    /// ready.
    pub fn scraping(binary: &std::path::Path, target: SocketAddr) -> Prometheus {
        Self::start(
            binary,
            &PrometheusSetup {
                targets: &[target],
                scrape_interval: "1s",
                rule_files: &[],
                alertmanager: None,
                extra_job_yaml: "",
            },
        )
    }

    /// Starts Prometheus and waits until it is ready.
    pub fn start(binary: &std::path::Path, setup: &PrometheusSetup<'_>) -> Prometheus {
        Self::start_with_flags(binary, setup, &[])
    }

    /// Like [`Prometheus::start`], with extra command-line flags (e.g.
    /// `--enable-feature=native-histograms`).
    pub fn start_with_flags(
        binary: &std::path::Path,
        setup: &PrometheusSetup<'_>,
        flags: &[&str],
    ) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let targets: Vec<String> = setup
            .targets
            .iter()
            .map(|target| format!("'{target}'"))
            .collect();
        let rules: Vec<String> = setup
            .rule_files
            .iter()
            .map(|path| format!("'{}'", path.display()))
            .collect();
        let alerting = setup
            .alertmanager
            .map(|address| format!("alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{address}']\n"))
            .unwrap_or_default();
        let config = format!(
            "global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\n{alerting}rule_files: [{rules}]\nscrape_configs:\n  - job_name: sut\n    scrape_interval: {interval}\n{extra}    static_configs:\n      - targets: [{targets}]\n",
            interval = setup.scrape_interval,
            rules = rules.join(", "),
            targets = targets.join(", "),
            extra = setup.extra_job_yaml,
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let data = dir.path().join("data");
        let server = ToolServer::start(
            binary,
            dir,
            &[
                format!("--config.file={}", config_path.display()),
                format!("--storage.tsdb.path={}", data.display()),
            ]
            .into_iter()
            .chain(flags.iter().map(|flag| (*flag).to_owned()))
            .collect::<Vec<_>>(),
        );
        Prometheus {
            address: server.address,
            _server: server,
        }
    }

    /// Runs an instant query and returns the raw JSON text of the response.
    pub fn query(&self, expression: &str) -> String {
        let path = format!("/api/v1/query?query={}", urlencode(expression));
        http(self.address, "GET", &path, &[])
            .map(|response| response.text())
            .unwrap_or_default()
    }

    /// Number of series an instant query returns (0 on errors).
    pub fn series_count(&self, expression: &str) -> usize {
        let json = self.query(expression);
        if !json.contains("\"status\":\"success\"") {
            return 0;
        }
        json.matches("\"metric\":").count()
    }

    /// Polls until `expression` returns at least one series, or the deadline passes.
    pub fn wait_for_series(&self, expression: &str, deadline: Duration) -> bool {
        poll(deadline, || {
            (self.series_count(expression) > 0).then_some(())
        })
        .is_some()
    }
}

/// Percent-encodes a query parameter.
pub fn urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
