//! Path tracing against the real kernel: a chain of network namespaces this test creates, with
//! real routers forwarding, decrementing the TTL / hop limit and answering with ICMP time
//! exceeded. The exporter runs in the prober namespace; every number is read from `/metrics`.
//!
//! ```text
//!                 exchange LAN 10.200.0.0/24, fd00:200::/64 (declared as NIX)
//!  prober ── A ───────────────────────────────────────────── B ── target 10.204.0.2
//!   (P)      │                                                     │    fd00:204::2
//!            └── T (drops its time exceeded) ── U ─────────────────┘
//!                       the transit path
//! ```
//!
//! The target answers ICMP echo, UDP (port unreachable) and TCP (a listener on 8080). A starts
//! by routing the target over the exchange; the test moves that one route to the transit path.
//! The target's replies always return over B; only the forward path (and so the hop addresses)
//! changes, in one step per address family.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Exporter;
use netsim::Netns;

/// Trace interval of every target.
const TRACE_INTERVAL: Duration = Duration::from_secs(2);

/// The six targets: three trace protocols, two address families.
const TARGETS: [(&str, bool); 6] = [
    ("icmp4", false),
    ("udp4", false),
    ("tcp4", false),
    ("icmp6", true),
    ("udp6", true),
    ("tcp6", true),
];

const CONFIG: &str = "probes:\n  defaults:\n    interval: 1s\n    timeout: 500ms\n    \
    labels: {ix: NIX}\n    trace: {interval: 2s, max_hops: 8, probes_per_hop: 2}\n  targets:\n\
    \x20   - {name: icmp4, host: 10.204.0.2, protocol: icmp}\n\
    \x20   - {name: udp4, host: 10.204.0.2, protocol: icmp, trace: {protocol: udp}}\n\
    \x20   - {name: tcp4, host: 10.204.0.2, protocol: tcp, port: 8080}\n\
    \x20   - {name: icmp6, host: 'fd00:204::2', protocol: icmp}\n\
    \x20   - {name: udp6, host: 'fd00:204::2', protocol: icmp, trace: {protocol: udp}}\n\
    \x20   - {name: tcp6, host: 'fd00:204::2', protocol: tcp, port: 8080}\n\
    \x20   - {name: nowhere4, host: 10.206.0.2, protocol: icmp}\n\
    \x20   - {name: nowhere6, host: 'fd00:206::2', protocol: icmp}\n\
    ixes:\n  NIX: [10.200.0.0/24, 'fd00:200::/64']\n";

const VIA_IX_V4: &str = "10.201.0.1,10.200.0.2,10.204.0.2";
const VIA_IX_V6: &str = "fd00:201::1,fd00:200::2,fd00:204::2";
const TRANSIT_V4: &str = "10.201.0.1,*,10.203.0.2,10.204.0.2";
const TRANSIT_V6: &str = "fd00:201::1,*,fd00:203::2,fd00:204::2";

fn run_ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {args:?}");
}

/// A veth pair between `a` and `b` on 10.`net`.0.0/24 and fd00:`net`::/64: `a` is .1 / ::1,
/// `b` is .2 / ::2.
fn link(a: &Netns, a_name: &str, b: &Netns, b_name: &str, net: u8) {
    run_ip(&[
        "-n",
        a.name(),
        "link",
        "add",
        a_name,
        "type",
        "veth",
        "peer",
        "name",
        b_name,
        "netns",
        b.name(),
    ]);
    for (netns, name, host) in [(a, a_name, 1), (b, b_name, 2)] {
        let v4 = format!("10.{net}.0.{host}/24");
        let v6 = format!("fd00:{net}::{host}/64");
        run_ip(&["-n", netns.name(), "addr", "add", &v4, "dev", name]);
        run_ip(&["-n", netns.name(), "addr", "add", &v6, "dev", name, "nodad"]);
        run_ip(&["-n", netns.name(), "link", "set", name, "up"]);
    }
}

fn route(netns: &Netns, prefix: &str, via: &str) {
    let family = if prefix.contains(':') || via.contains(':') {
        "-6"
    } else {
        "-4"
    };
    run_ip(&[
        "-n",
        netns.name(),
        family,
        "route",
        "replace",
        prefix,
        "via",
        via,
    ]);
}

/// Sets `key`, ignoring a kernel that lacks it (its default then applies).
fn sysctl(netns: &Netns, key: &str, value: &str) {
    if let Err(error) = netns.set_sysctl(key, value) {
        eprintln!("{}: {key}: {error}", netns.name());
    }
}

/// A router, or the target: forwarding on, no ICMP rate limit (the test sends bursts of
/// probes the routers must all answer), and no reverse-path filter (the target's replies leave
/// by another way than the probes came on the transit path).
fn forwarding_node(netns: &Netns) {
    for (key, value) in [
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv6.conf.all.forwarding", "1"),
        ("net.ipv4.icmp_ratelimit", "0"),
        ("net.ipv6.icmp.ratelimit", "0"),
        ("net.ipv4.icmp_msgs_per_sec", "100000"),
        ("net.ipv4.icmp_msgs_burst", "100000"),
        ("net.ipv4.conf.all.rp_filter", "0"),
        ("net.ipv4.conf.default.rp_filter", "0"),
    ] {
        sysctl(netns, key, value);
    }
}

/// The namespaces of the drawing, the target's TCP listener and the exporter (killed by PID).
struct Lab {
    exporter: Option<Exporter>,
    stop_listener: Arc<AtomicBool>,
    listener: Option<std::thread::JoinHandle<()>>,
    a: Netns,
    /// B, T, U and the target. Held until the end: dropping deletes the namespace.
    routers: Vec<Netns>,
    prober: Netns,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Lab {
    /// Builds the drawing and starts the exporter in the prober namespace, as root or, when
    /// `unprivileged`, as uid/gid 65534 without capabilities (ICMP over ping sockets, whose
    /// time exceeded comes on the error queue).
    fn start(test: &str, unprivileged: bool) -> Option<Lab> {
        if !netsim::require_privileged(test) {
            return None;
        }
        let prober = Netns::for_test(test).expect("prober namespace");
        let node = |suffix: &str| {
            Netns::create(&format!("{}-{suffix}", prober.name())).expect("router namespace")
        };
        let (a, b, t, u, target) = (node("a"), node("b"), node("t"), node("u"), node("d"));
        link(&a, "a-p", &prober, "p-a", 201);
        link(&a, "a-ix", &b, "b-ix", 200);
        link(&a, "a-t", &t, "t-a", 202);
        link(&t, "t-u", &u, "u-t", 203);
        link(&b, "b-d", &target, "d-b", 204);
        link(&u, "u-d", &target, "d-u", 205);
        for netns in [&a, &b, &t, &u, &target] {
            forwarding_node(netns);
        }
        route(&prober, "default", "10.201.0.1");
        route(&prober, "default", "fd00:201::1");
        // Over the exchange, until the test moves it.
        route(&a, "10.204.0.0/24", "10.200.0.2");
        route(&a, "fd00:204::/64", "fd00:200::2");
        route(&b, "10.201.0.0/24", "10.200.0.1");
        route(&b, "fd00:201::/64", "fd00:200::1");
        // Beyond B, nothing: B answers with ICMP destination unreachable.
        route(&a, "10.206.0.0/24", "10.200.0.2");
        route(&a, "fd00:206::/64", "fd00:200::2");
        run_ip(&[
            "-n",
            b.name(),
            "-4",
            "route",
            "add",
            "unreachable",
            "10.206.0.0/24",
        ]);
        run_ip(&[
            "-n",
            b.name(),
            "-6",
            "route",
            "add",
            "unreachable",
            "fd00:206::/64",
        ]);
        route(&target, "default", "10.204.0.1");
        route(&target, "default", "fd00:204::1");
        for (netns, back, on) in [
            (&t, "10.202.0.1", "10.203.0.2"),
            (&u, "10.203.0.1", "10.205.0.2"),
        ] {
            route(netns, "10.201.0.0/24", back);
            route(netns, "10.204.0.0/24", on);
        }
        for (netns, back, on) in [
            (&t, "fd00:202::1", "fd00:203::2"),
            (&u, "fd00:203::1", "fd00:205::2"),
        ] {
            route(netns, "fd00:201::/64", back);
            route(netns, "fd00:204::/64", on);
        }
        // T forwards, but its time exceeded never leaves: a missing hop.
        for (program, protocol, kind) in [
            ("iptables", "icmp", "--icmp-type"),
            ("ip6tables", "ipv6-icmp", "--icmpv6-type"),
        ] {
            let status = t
                .command(program)
                .args([
                    "-A",
                    "OUTPUT",
                    "-p",
                    protocol,
                    kind,
                    "time-exceeded",
                    "-j",
                    "DROP",
                ])
                .status()
                .expect("run iptables");
            assert!(status.success(), "{program} in {}", t.name());
        }
        let listener = target
            .run(|| TcpListener::bind("[::]:8080"))
            .expect("enter the target namespace")
            .expect("listen on 8080 in the target namespace");
        listener.set_nonblocking(true).expect("non-blocking");
        let stop_listener = Arc::new(AtomicBool::new(false));
        let stop = stop_listener.clone();
        // Accepts and drops, so the backlog never fills.
        let listener = std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if listener.accept().is_err() {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        let dir = common::temp_dir();
        let config: PathBuf = dir.path().join("xen_exporter.yml");
        std::fs::write(&config, CONFIG).expect("write config");
        let mut wrapper = vec!["ip", "netns", "exec", prober.name()];
        if unprivileged {
            prober.allow_ping_group().expect("ping_group_range");
            // The unprivileged exporter must be able to read its config.
            set_mode(dir.path(), 0o755);
            set_mode(&config, 0o644);
            wrapper.extend([
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
            ]);
        }
        let exporter = Exporter::start_wrapped(
            &wrapper,
            &[&format!("--config.file={}", config.display())],
            &[],
        );
        Some(Lab {
            exporter: Some(exporter),
            stop_listener,
            listener: Some(listener),
            a,
            routers: vec![b, t, u, target],
            prober,
            config,
            _dir: dir,
        })
    }

    /// Rewrites the config file and reloads it (SIGHUP).
    fn reload(&self, config: &str) {
        std::fs::write(&self.config, config).expect("rewrite config");
        self.exporter().signal("HUP");
    }

    fn exporter(&self) -> &Exporter {
        self.exporter.as_ref().expect("exporter runs")
    }

    fn metrics(&self) -> Metrics {
        let address = self.exporter().address;
        Metrics(
            self.prober
                .run(move || common::http(address, "GET", "/metrics", &[]))
                .expect("enter the prober namespace")
                .expect("GET /metrics")
                .text(),
        )
    }

    fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        condition: impl Fn(&Metrics) -> bool,
    ) -> Metrics {
        let started = Instant::now();
        loop {
            let metrics = self.metrics();
            if condition(&metrics) {
                return metrics;
            }
            if started.elapsed() > timeout {
                panic!(
                    "timed out waiting for {what}\n--- metrics ---\n{}\n--- logs ---\n{}",
                    metrics.paths(),
                    self.exporter().logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The exporter first (by PID), then the listener; the namespaces go with the fields.
        self.exporter.take();
        self.stop_listener.store(true, Ordering::Relaxed);
        if let Some(listener) = self.listener.take() {
            let _ = listener.join();
        }
    }
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

struct Metrics(String);

impl Metrics {
    /// The value of the first sample of `metric` for `target` whose line contains `extra`.
    fn value(&self, metric: &str, target: &str, extra: &str) -> Option<f64> {
        common::sample(&self.0, metric, &format!("target=\"{target}\""))
            .filter(|_| extra.is_empty())
            .or_else(|| {
                self.0
                    .lines()
                    .find(|line| {
                        line.starts_with(&format!("{metric}{{"))
                            && line.contains(&format!("target=\"{target}\""))
                            && line.contains(extra)
                    })
                    .and_then(|line| line.rsplit(' ').next())
                    .and_then(|value| value.parse().ok())
            })
    }

    /// The `hops` label of the target's one `latency_path_info` series; `None` before a trace,
    /// and a panic if it has several.
    fn hops(&self, target: &str) -> Option<String> {
        let lines: Vec<&str> = self
            .0
            .lines()
            .filter(|line| {
                line.starts_with("latency_path_info{")
                    && line.contains(&format!("target=\"{target}\""))
            })
            .collect();
        assert!(
            lines.len() <= 1,
            "{target} has several paths:\n{}",
            self.paths()
        );
        let line = lines.first()?;
        let start = line.find("hops=\"")? + "hops=\"".len();
        let end = line[start..].find('"')? + start;
        Some(line[start..end].to_owned())
    }

    fn via_ix(&self, target: &str) -> Option<f64> {
        self.value("latency_path_via_ix", target, "ix=\"NIX\"")
    }

    fn changes(&self, target: &str) -> f64 {
        self.value("latency_path_changes_total", target, "")
            .unwrap_or(f64::NAN)
    }

    fn traces(&self, target: &str) -> f64 {
        self.value("latency_path_traces_total", target, "")
            .unwrap_or(0.0)
    }

    fn paths(&self) -> String {
        self.0
            .lines()
            .filter(|line| {
                line.starts_with("latency_path_") || line.starts_with("latency_responses")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn expected(v6: bool, via_ix: bool) -> &'static str {
    match (v6, via_ix) {
        (false, true) => VIA_IX_V4,
        (true, true) => VIA_IX_V6,
        (false, false) => TRANSIT_V4,
        (true, false) => TRANSIT_V6,
    }
}

/// Moves A's route to the target at an instant when no trace is running: the traces run at
/// fixed phases of their interval, learnt here from when their counters move; the switch goes
/// in the middle of the longest quiet stretch, so no trace sees half of each path.
fn switch_to_transit_between_traces(lab: &Lab) {
    // The transit links' neighbours resolved first, so the first trace over them is not a hop
    // short while a router waits for a neighbour's answer.
    let (t, u) = (&lab.routers[1], &lab.routers[2]);
    for (netns, address) in [
        (&lab.a, "10.202.0.2"),
        (&lab.a, "fd00:202::2"),
        (t, "10.203.0.2"),
        (t, "fd00:203::2"),
        (u, "10.205.0.2"),
        (u, "fd00:205::2"),
    ] {
        let status = netns
            .command("ping")
            .args(["-c", "1", "-W", "2", address])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run ping");
        assert!(status.success(), "ping {address} from {}", netns.name());
    }
    let mut last: Vec<f64> = TARGETS
        .iter()
        .map(|(target, _)| lab.metrics().traces(target))
        .collect();
    let started = Instant::now();
    let mut finished = Vec::new();
    while started.elapsed() < TRACE_INTERVAL + Duration::from_millis(300) {
        let metrics = lab.metrics();
        for (index, (target, _)) in TARGETS.iter().enumerate() {
            let traces = metrics.traces(target);
            if traces > last[index] {
                finished.push(started.elapsed());
                last[index] = traces;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let interval = TRACE_INTERVAL.as_secs_f64();
    let mut phases: Vec<f64> = finished
        .iter()
        .map(|at| at.as_secs_f64() % interval)
        .collect();
    phases.sort_by(f64::total_cmp);
    assert!(!phases.is_empty(), "no trace finished in {interval} s");
    // The largest gap between two consecutive phases (around the circle) and its middle.
    let mut best = (0.0, 0.0);
    for (index, phase) in phases.iter().enumerate() {
        let next = phases
            .get(index + 1)
            .copied()
            .unwrap_or(phases[0] + interval);
        if next - phase > best.0 {
            best = (next - phase, (phase + (next - phase) / 2.0) % interval);
        }
    }
    let now = started.elapsed().as_secs_f64() % interval;
    let wait = (best.1 - now).rem_euclid(interval);
    std::thread::sleep(Duration::from_secs_f64(wait));
    route(&lab.a, "10.204.0.0/24", "10.202.0.2");
    route(&lab.a, "fd00:204::/64", "fd00:202::2");
}

#[test]
fn a_path_leaving_the_exchange_is_seen_by_icmp_udp_and_tcp_traces_over_both_families() {
    if let Some(lab) = Lab::start("probes_trace_ix", false) {
        the_path_leaves_the_exchange(&lab);
        assert!(
            lab.exporter().logs().contains("kind=RAW"),
            "ICMP over RAW sockets as root:\n{}",
            lab.exporter().logs()
        );
    }
}

/// A reload that renames the exchanges and turns one target's tracing off: the old exchange's
/// series go at each target's next trace, the new one's come, and the untraced target's path
/// series disappear while its probes go on.
#[test]
fn a_reload_replaces_the_exchanges_and_turns_tracing_off() {
    let Some(lab) = Lab::start("probes_trace_reload", false) else {
        return;
    };
    lab.wait_for("paths over the exchange", Duration::from_secs(30), |m| {
        TARGETS
            .iter()
            .all(|(target, _)| m.via_ix(target) == Some(1.0))
    });
    let config = CONFIG
        .replace(
            "NIX: [10.200.0.0/24, 'fd00:200::/64']",
            "B: [10.200.0.2/32, 'fd00:200::2/128']\n  TRANSIT: [10.203.0.0/24]",
        )
        .replace(
            "{name: nowhere4, host: 10.206.0.2, protocol: icmp}",
            "{name: nowhere4, host: 10.206.0.2, protocol: icmp, trace: {enabled: false}}",
        );
    assert_ne!(config, CONFIG);
    lab.reload(&config);
    let metrics = lab.wait_for("the new exchanges", Duration::from_secs(30), |m| {
        TARGETS.iter().all(|(target, _)| {
            m.value("latency_path_via_ix", target, "ix=\"B\"") == Some(1.0)
                && m.value("latency_path_via_ix", target, "ix=\"TRANSIT\"") == Some(0.0)
                && m.via_ix(target).is_none()
        }) && m.hops("nowhere4").is_none()
    });
    assert!(
        metrics
            .value("latency_requests_total", "nowhere4", "")
            .is_some(),
        "{}",
        metrics.paths()
    );
    assert_eq!(
        metrics.value("latency_path_via_ix", "nowhere6", "ix=\"B\""),
        Some(1.0),
        "{}",
        metrics.paths()
    );
}

#[test]
fn without_privilege_traces_go_through_ping_sockets_and_error_queues() {
    if let Some(lab) = Lab::start("probes_trace_dgram", true) {
        the_path_leaves_the_exchange(&lab);
        assert!(
            lab.exporter().logs().contains("kind=DGRAM"),
            "ICMP over ping sockets without privilege:\n{}",
            lab.exporter().logs()
        );
    }
}

/// Every target's path crosses the exchange; after the route moves, the transit path with its
/// missing hop, one change, via_ix 0, and the target still answering. A target beyond a router
/// that says it is unreachable has the path up to that router, counted as unreached.
fn the_path_leaves_the_exchange(lab: &Lab) {
    let unreached = lab.wait_for(
        "the paths that end at B's unreachable",
        Duration::from_secs(30),
        |m| {
            [
                ("nowhere4", "10.201.0.1,10.200.0.2"),
                ("nowhere6", "fd00:201::1,fd00:200::2"),
            ]
            .iter()
            .all(|(target, hops)| {
                m.hops(target).as_deref() == Some(hops)
                    && m.value(
                        "latency_path_trace_errors_total",
                        target,
                        "reason=\"unreached\"",
                    )
                    .is_some_and(|errors| errors >= 1.0)
            })
        },
    );
    for target in ["nowhere4", "nowhere6"] {
        assert_eq!(unreached.via_ix(target), Some(1.0), "{}", unreached.paths());
        assert_eq!(
            unreached.value("latency_path_hops", target, ""),
            Some(2.0),
            "{}",
            unreached.paths()
        );
    }
    let metrics = lab.wait_for(
        "every target's path over the exchange",
        Duration::from_secs(30),
        |m| {
            TARGETS.iter().all(|(target, v6)| {
                m.hops(target).as_deref() == Some(expected(*v6, true))
                    && m.via_ix(target) == Some(1.0)
            })
        },
    );
    // The first trace of a family may come while the routers still resolve their neighbours
    // (a hop late or missing): a change before the exchange path settled is not counted here.
    let settled: Vec<f64> = TARGETS
        .iter()
        .map(|(target, _)| metrics.changes(target))
        .collect();
    for (target, _) in TARGETS {
        assert_eq!(
            metrics.value("latency_path_hops", target, ""),
            Some(3.0),
            "{target}\n{}",
            metrics.paths()
        );
        // The exporter's own `ix` label: the target's label `ix` gives way to the family's.
        assert_eq!(
            metrics
                .0
                .lines()
                .filter(|line| line.starts_with("latency_path_via_ix{")
                    && line.contains(&format!("target=\"{target}\"")))
                .count(),
            1,
            "{}",
            metrics.paths()
        );
    }

    switch_to_transit_between_traces(lab);
    let metrics = lab.wait_for(
        "every target's transit path",
        Duration::from_secs(30),
        |m| {
            TARGETS.iter().all(|(target, v6)| {
                m.hops(target).as_deref() == Some(expected(*v6, false))
                    && m.via_ix(target) == Some(0.0)
            })
        },
    );
    let responses: Vec<f64> = TARGETS
        .iter()
        .map(|(target, _)| {
            metrics
                .value("latency_responses_total", target, "")
                .unwrap_or(0.0)
        })
        .collect();
    // Two more traces each on the new path: still one change, T still a missing hop, and the
    // target still answers: a silent router is no failed target.
    let traces: Vec<f64> = TARGETS
        .iter()
        .map(|(target, _)| metrics.traces(target))
        .collect();
    let metrics = lab.wait_for(
        "two more traces of every target",
        Duration::from_secs(20),
        |m| {
            TARGETS
                .iter()
                .zip(&traces)
                .all(|((target, _), before)| m.traces(target) >= before + 2.0)
        },
    );
    for (index, (target, v6)) in TARGETS.iter().enumerate() {
        let context = format!("{target}\n{}", metrics.paths());
        assert_eq!(
            metrics.hops(target).as_deref(),
            Some(expected(*v6, false)),
            "{context}"
        );
        assert_eq!(metrics.changes(target), settled[index] + 1.0, "{context}");
        assert_eq!(metrics.via_ix(target), Some(0.0), "{context}");
        assert_eq!(
            metrics.value("latency_path_hops", target, ""),
            Some(4.0),
            "{context}"
        );
        assert_eq!(
            metrics.value("latency_path_trace_errors_total", target, "reason="),
            None,
            "{context}"
        );
        // The routers' answers to the traces never fail an RTT probe (on a ping socket they
        // leave errors pending that a send could mistake for its own).
        assert_eq!(
            metrics.value("latency_errors_total", target, "reason=\"unreachable\""),
            None,
            "{context}"
        );
        assert!(
            metrics
                .value("latency_responses_total", target, "")
                .unwrap_or(0.0)
                > responses[index],
            "{context}"
        );
    }
}
