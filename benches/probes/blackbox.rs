//! blackbox_exporter as a reference: one `/probe` request per target and module each second,
//! as a Prometheus with `scrape_interval: 1s` would send, and the RTT each reports.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::exposition;
use crate::process::http_get;

pub const CONFIG: &str = "modules:
  icmp:
    prober: icmp
    timeout: 5s
    icmp:
      preferred_ip_protocol: ip4
  tcp_connect:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
";

/// A blackbox module and how its RTT is read from the probe's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Module {
    /// `probe_icmp_duration_seconds{phase="rtt"}`: request sent to reply received.
    Icmp,
    /// `probe_duration_seconds`: the whole probe (resolve of an IP literal + connect); the
    /// tcp prober exports no connect phase of its own.
    TcpConnect,
}

impl Module {
    pub fn name(self) -> &'static str {
        match self {
            Module::Icmp => "icmp",
            Module::TcpConnect => "tcp_connect",
        }
    }

    fn target(self, address: IpAddr, port: u16) -> String {
        match self {
            Module::Icmp => address.to_string(),
            Module::TcpConnect => format!("{address}:{port}"),
        }
    }

    fn rtt(self, samples: &[exposition::Sample]) -> Option<f64> {
        let sample = match self {
            Module::Icmp => samples.iter().find(|s| {
                s.name == "probe_icmp_duration_seconds" && s.label("phase") == Some("rtt")
            }),
            Module::TcpConnect => samples.iter().find(|s| s.name == "probe_duration_seconds"),
        };
        sample.map(|s| s.value)
    }
}

/// What one module saw over the run.
#[derive(Debug, Default)]
pub struct Outcome {
    pub requests: u64,
    pub successes: u64,
    /// RTTs of the successful probes, seconds.
    pub rtts: Vec<f64>,
}

/// Probes every target with `module` once a second (targets in parallel) until `until`.
pub fn drive(
    port: u16,
    module: Module,
    targets: &[IpAddr],
    tcp_port: u16,
    until: Instant,
) -> Outcome {
    let results: Vec<Outcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = targets
            .iter()
            .map(|&address| {
                scope.spawn(move || {
                    let path = format!(
                        "/probe?module={}&target={}",
                        module.name(),
                        module.target(address, tcp_port)
                    );
                    let mut outcome = Outcome::default();
                    let mut next = Instant::now();
                    while next < until {
                        outcome.requests += 1;
                        if let Ok(body) = http_get(port, &path) {
                            let samples = exposition::parse(&body);
                            let success = exposition::sum(&samples, "probe_success", &|_| true);
                            if success == 1.0 {
                                outcome.successes += 1;
                                outcome.rtts.extend(module.rtt(&samples));
                            }
                        }
                        next += Duration::from_secs(1);
                        if let Some(wait) = next.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                    outcome
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("blackbox driver thread"))
            .collect()
    });
    results
        .into_iter()
        .fold(Outcome::default(), |mut all, outcome| {
            all.requests += outcome.requests;
            all.successes += outcome.successes;
            all.rtts.extend(outcome.rtts);
            all
        })
}
