//! Benchmark (issue 5): our probe engine against smokeping_prober 0.6.1 (and blackbox_exporter
//! for reference), at the same time, on the same simulated targets.
//!
//! One network namespace; in it a netsim responder, out of process (this binary re-executed,
//! see `responder.rs`), answers ICMP echo and TCP SYN for 1,000 addresses of 198.18.0.0/22
//! after 25 ms. Then, together for 60 s:
//! - `prometheus-smokeping-prober --privileged` on the 1,000 targets at 1 s;
//! - `xen_exporter` (this package's release binary, Xen side idle: simulated source with no
//!   guests) with the same 1,000 ICMP targets at 1 s, plus TCP connect to 5 of them;
//! - `prometheus-blackbox-exporter`, its `icmp` and `tcp_connect` modules on 5 of the targets,
//!   each asked once a second.
//!
//! smokeping_prober and ours share the same fine RTT buckets around 25 ms, so the error
//! quantiles (measured − injected) are read off the buckets: they are intervals, at bucket
//! resolution. blackbox reports each RTT, so its quantiles are exact. CPU seconds are
//! utime + stime from /proc/PID/stat over the measuring window, peak RSS is VmHWM.
//!
//! Path tracing (issue 17): the responder puts simulated routers in front of every target (a
//! request whose TTL runs out before the target gets ICMP time exceeded from 198.18.3.241,
//! .242, …; the second lies in the exchange `BENCHIX` of ours' `ixes:`), answers UDP with port
//! unreachable, so every trace protocol finds the hops and the target. Ours can run twice in
//! one window, as separate processes on the same targets: `ours-untraced` (traces off) and
//! `ours-traced` (every target traced at `PROBEBENCH_TRACE_INTERVAL`); the bench prints the
//! CPU ratio of the two, whether their RTT median error bucket is the same, and the traced
//! one's path metrics. (`ours` alone keeps the configuration defaults, traces on at 5 min.)
//!
//! Run as root: `cargo bench --bench probes`. Settings (environment):
//! `PROBEBENCH_TARGETS` (1000), `PROBEBENCH_SECONDS` (60), `PROBEBENCH_PEERS`
//! (`smokeping,ours,blackbox`: which probers run; also `ours-untraced`, `ours-traced`),
//! `PROBEBENCH_TRACE_INTERVAL` (300: seconds between two traces of a target in
//! `ours-traced`), `PROBEBENCH_HOPS` (4: the hop at which the target answers; 1 to 14),
//! `PROBEBENCH_TRACED_FIRST` (0; 1 starts `ours-traced` before `ours-untraced`).
//! Prints Markdown for benches/README.md.

mod blackbox;
mod exposition;
mod process;
mod responder;

use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use exposition::{Buckets, Sample};
use netsim::Netns;
use process::{cpu_seconds, load_average, Prober};

/// The delay the responder adds to every answer, seconds.
const INJECTED: f64 = 0.025;
/// RTT bucket bounds (seconds) for both smokeping_prober and ours: fine just above 25 ms, so
/// the error quantiles can be read, and coarse up to 1 s for a prober that falls behind.
const BUCKETS: [f64; 16] = [
    0.025, 0.025025, 0.02505, 0.0251, 0.02515, 0.0252, 0.0253, 0.0255, 0.026, 0.027, 0.03, 0.05,
    0.1, 0.25, 0.5, 1.0,
];
const SMOKEPING_PORT: u16 = 19374;
const OURS_PORT: u16 = 19603;
const OURS_UNTRACED_PORT: u16 = 19604;
const OURS_TRACED_PORT: u16 = 19605;
const BLACKBOX_PORT: u16 = 19115;
/// The exchange ours is told of: its prefix holds one simulated router.
const IX: &str = "BENCHIX";
/// The highest `PROBEBENCH_HOPS`: the routers' addresses must stay above the targets'.
const MAX_HOPS: u8 = responder::MAX_ROUTERS + 1;
/// Port of the TCP connect probes (any port the responder does not close answers).
const TCP_PORT: u16 = 80;
/// Targets of the blackbox modules and of our TCP probes: the first few of the ICMP targets.
const FEW_TARGETS: usize = 5;
/// Time from every prober answering until the window starts (schedules settle).
const WARMUP: Duration = Duration::from_secs(5);
/// How often smokeping_prober and ours are scraped during the window (a Prometheus would).
const SCRAPE_EVERY: Duration = Duration::from_secs(15);

struct Settings {
    targets: usize,
    window: Duration,
    smokeping: bool,
    ours: bool,
    untraced: bool,
    traced: bool,
    blackbox: bool,
    /// Time between two traces of a target in `ours-traced`.
    trace_interval: Duration,
    /// The TTL at which the target answers: the routers before it are `hops − 1`.
    hops: u8,
    /// Start `ours-traced` before `ours-untraced` (to see whether the order matters).
    traced_first: bool,
}

/// Which of our exporters: the configuration defaults, or the A/B pair of issue 17.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ours {
    Defaults,
    Untraced,
    Traced,
}

impl Ours {
    fn name(self) -> &'static str {
        match self {
            Ours::Defaults => "xen_exporter",
            Ours::Untraced => "xen_exporter_untraced",
            Ours::Traced => "xen_exporter_traced",
        }
    }

    fn port(self) -> u16 {
        match self {
            Ours::Defaults => OURS_PORT,
            Ours::Untraced => OURS_UNTRACED_PORT,
            Ours::Traced => OURS_TRACED_PORT,
        }
    }

    fn of(name: &str) -> Option<Ours> {
        [Ours::Defaults, Ours::Untraced, Ours::Traced]
            .into_iter()
            .find(|ours| ours.name() == name)
    }
}

impl Settings {
    fn from_env() -> Settings {
        let number = |name: &str, default: u64| -> u64 {
            std::env::var(name).map_or(default, |text| {
                text.parse()
                    .unwrap_or_else(|_| panic!("{name}={text:?}: expected a whole number"))
            })
        };
        let peers =
            std::env::var("PROBEBENCH_PEERS").unwrap_or_else(|_| "smokeping,ours,blackbox".into());
        let peers: Vec<&str> = peers.split(',').map(str::trim).collect();
        const PEERS: [&str; 5] = [
            "smokeping",
            "ours",
            "ours-untraced",
            "ours-traced",
            "blackbox",
        ];
        for peer in &peers {
            assert!(
                PEERS.contains(peer),
                "PROBEBENCH_PEERS: unknown prober {peer:?} ({})",
                PEERS.join(", ")
            );
        }
        let hops = number("PROBEBENCH_HOPS", 4);
        assert!(
            (1..=u64::from(MAX_HOPS)).contains(&hops),
            "PROBEBENCH_HOPS={hops}: 1 to {MAX_HOPS}"
        );
        let targets = number("PROBEBENCH_TARGETS", 1000) as usize;
        assert!(
            (FEW_TARGETS..=1000).contains(&targets),
            "PROBEBENCH_TARGETS={targets}: between {FEW_TARGETS} and 1000 (the /22)"
        );
        Settings {
            targets,
            window: Duration::from_secs(number("PROBEBENCH_SECONDS", 60)),
            smokeping: peers.contains(&"smokeping"),
            ours: peers.contains(&"ours"),
            untraced: peers.contains(&"ours-untraced"),
            traced: peers.contains(&"ours-traced"),
            blackbox: peers.contains(&"blackbox"),
            trace_interval: Duration::from_secs(number("PROBEBENCH_TRACE_INTERVAL", 300).max(1)),
            hops: u8::try_from(hops).expect("checked above"),
            traced_first: number("PROBEBENCH_TRACED_FIRST", 0) != 0,
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(responder::RESPONDER_ARG) {
        return responder::run(&args[1..]);
    }
    if let Some(reason) = netsim::privilege::missing_privilege() {
        eprintln!(
            "probes bench: cannot run: {reason}. It needs root: a network namespace, a TUN \
             device, raw ICMP sockets (smokeping_prober --privileged). Run it as root: \
             `cargo bench --bench probes`."
        );
        return if netsim::privileged_required() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    }
    let settings = Settings::from_env();
    for (wanted, tool) in [
        (settings.smokeping, "prometheus-smokeping-prober"),
        (settings.blackbox, "prometheus-blackbox-exporter"),
    ] {
        if wanted && !on_path(tool) {
            eprintln!("probes bench: {tool} not found; install it with scripts/install-deps.sh");
            return ExitCode::FAILURE;
        }
    }

    let load_before = load_average();
    let started_at = utc_now();
    let netns = Netns::for_test("probebench").expect("create the namespace");
    netns.allow_ping_group().expect("set ping_group_range");
    let exe = std::env::current_exe().expect("path of this binary");
    let delay_ms = (INJECTED * 1e3).to_string();
    let routers = (settings.hops - 1).to_string();
    let responder = netsim::ResponderProcess::spawn(
        &exe,
        Some(&netns),
        &[responder::RESPONDER_ARG, &delay_ms, &routers],
    )
    .expect("start the responder");
    let dir = tempfile::tempdir().expect("temporary directory");
    let responder_pid = responder.pid();
    let report = netns
        .run(|| measure(&netns, &settings, dir.path(), responder_pid))
        .expect("enter the namespace");
    let responder_stats = responder.stop().unwrap_or_else(|error| error.to_string());
    let load_after = load_average();

    println!(
        "\n{started_at}; load average before {load_before}, after {load_after}; {} targets, \
         {} s window after {} s warm-up; injected {} ms, no loss; targets answer at hop {} \
         (routers before them answer time exceeded).\n",
        settings.targets,
        report.window.as_secs_f64().round(),
        WARMUP.as_secs(),
        INJECTED * 1e3,
        settings.hops
    );
    println!("{}", report.markdown);
    println!(
        "Responder (out of process): {:.2} CPU s in the window; {responder_stats}",
        report.responder_cpu
    );
    ExitCode::SUCCESS
}

struct Report {
    window: Duration,
    responder_cpu: f64,
    markdown: String,
}

/// Starts the probers (inside the namespace: this runs on a thread that entered it), measures
/// the window, and renders the tables. Every prober is killed by PID when this returns or
/// panics.
fn measure(netns: &Netns, settings: &Settings, dir: &Path, responder_pid: u32) -> Report {
    let targets = responder::targets(settings.targets);
    let few = &targets[..FEW_TARGETS];
    // One after another, each serving before the next starts: smokeping_prober with 1,000
    // targets needs tens of seconds before its first page, longer while another prober runs.
    let mut probers = Vec::new();
    if settings.smokeping {
        probers.push(start_smokeping(netns, &targets, dir));
        ready(probers.last_mut().expect("just pushed"), "/metrics");
    }
    let mut pair = [
        (settings.untraced, Ours::Untraced),
        (settings.traced, Ours::Traced),
    ];
    if settings.traced_first {
        pair.reverse();
    }
    for (wanted, ours) in std::iter::once((settings.ours, Ours::Defaults)).chain(pair) {
        if wanted {
            probers.push(start_ours(netns, settings, ours, &targets, few, dir));
            ready(probers.last_mut().expect("just pushed"), "/metrics");
        }
    }
    if settings.blackbox {
        probers.push(start_blackbox(netns, dir));
        ready(probers.last_mut().expect("just pushed"), "/-/healthy");
    }
    std::thread::sleep(WARMUP);

    let before: Vec<Snapshot> = probers.iter().map(Snapshot::take).collect();
    let responder_before = cpu_seconds(responder_pid).unwrap_or(f64::NAN);
    let start = Instant::now();
    let until = start + settings.window;
    let (icmp, tcp) = std::thread::scope(|scope| {
        let drivers = settings.blackbox.then(|| {
            (
                scope.spawn(|| {
                    blackbox::drive(BLACKBOX_PORT, blackbox::Module::Icmp, few, TCP_PORT, until)
                }),
                scope.spawn(|| {
                    blackbox::drive(
                        BLACKBOX_PORT,
                        blackbox::Module::TcpConnect,
                        few,
                        TCP_PORT,
                        until,
                    )
                }),
            )
        });
        let mut next_scrape = start + SCRAPE_EVERY;
        while Instant::now() < until {
            std::thread::sleep(
                Duration::from_millis(100).min(until.saturating_duration_since(Instant::now())),
            );
            for prober in &mut probers {
                prober.assert_running();
            }
            if Instant::now() >= next_scrape && Instant::now() < until {
                for prober in probers.iter().filter(|p| p.name != "blackbox_exporter") {
                    // As a Prometheus would; a slow or failed scrape is not the measurement.
                    let _ = prober.metrics();
                }
                next_scrape += SCRAPE_EVERY;
            }
        }
        drivers.map(|(icmp, tcp)| {
            (
                icmp.join().expect("blackbox icmp driver"),
                tcp.join().expect("blackbox tcp driver"),
            )
        })
    })
    .unzip();
    let after: Vec<Snapshot> = probers.iter().map(Snapshot::take).collect();
    let window = start.elapsed();
    let responder_cpu = cpu_seconds(responder_pid).unwrap_or(f64::NAN) - responder_before;

    let mut rows = Vec::new();
    let mut blackbox_process = None;
    let mut traces = String::new();
    for ((prober, before), after) in probers.iter().zip(&before).zip(&after) {
        let usage = Usage {
            cpu: after.cpu - before.cpu,
            window,
            peak_rss_mib: after.peak_rss_mib,
            threads: after.threads,
        };
        match prober.name {
            "smokeping_prober" => rows.push(Row::histogram(
                "smokeping_prober 0.6.1".to_owned(),
                "icmp",
                settings.targets,
                Counts::of(before, after, &SMOKEPING_METRICS, &|_| true),
                Some(usage),
            )),
            name if Ours::of(name).is_some() => {
                let ours = Ours::of(name).expect("matched");
                let label = match ours {
                    Ours::Defaults => "xen_exporter (ours)".to_owned(),
                    Ours::Untraced => "xen_exporter (ours), traces off".to_owned(),
                    Ours::Traced => format!(
                        "xen_exporter (ours), traces every {}",
                        seconds(settings.trace_interval)
                    ),
                };
                let icmp = |s: &Sample| s.label("protocol") == Some("icmp");
                let tcp = |s: &Sample| s.label("protocol") == Some("tcp");
                rows.push(Row::histogram(
                    label.clone(),
                    "icmp",
                    settings.targets,
                    Counts::of(before, after, &OUR_METRICS, &icmp),
                    Some(usage),
                ));
                rows.push(Row::histogram(
                    label.clone(),
                    "tcp",
                    FEW_TARGETS,
                    Counts::of(before, after, &OUR_METRICS, &tcp),
                    None,
                ));
                traces.push_str(&probe_errors(&label, before, after));
                if ours != Ours::Untraced {
                    traces.push_str(&trace_summary(&label, before, after));
                }
            }
            _ => blackbox_process = Some(usage),
        }
    }
    if let (Some(icmp), Some(tcp)) = (icmp, tcp) {
        rows.push(Row::exact("blackbox_exporter 0.23.0", "icmp", icmp));
        rows.push(Row::exact("blackbox_exporter 0.23.0", "tcp_connect", tcp));
    }
    let mut markdown = render(&rows, blackbox_process);
    markdown.push_str(&traces);
    Report {
        window,
        responder_cpu,
        markdown,
    }
}

fn ready(prober: &mut Prober, path: &str) {
    let took = prober.wait_ready(path);
    eprintln!("probes bench: {} serving after {took:.1?}", prober.name);
}

/// The metric names a histogram prober exports.
struct Metrics {
    requests: &'static str,
    /// A counter of replies, or `None` to use the histogram's count.
    responses: Option<&'static str>,
    rtt: &'static str,
}

const SMOKEPING_METRICS: Metrics = Metrics {
    requests: "smokeping_requests_total",
    responses: None,
    rtt: "smokeping_response_duration_seconds",
};

const OUR_METRICS: Metrics = Metrics {
    requests: "latency_requests_total",
    responses: Some("latency_responses_total"),
    rtt: "latency_rtt_seconds",
};

/// A prober's state at one instant.
struct Snapshot {
    cpu: f64,
    /// Packets dropped on the prober's raw sockets so far (receive buffer full).
    raw_drops: u64,
    peak_rss_mib: f64,
    threads: u64,
    samples: Vec<Sample>,
}

impl Snapshot {
    fn take(prober: &Prober) -> Snapshot {
        let samples = if prober.name == "blackbox_exporter" {
            Vec::new()
        } else {
            exposition::parse(&prober.metrics().unwrap_or_else(|error| panic!("{error}")))
        };
        Snapshot {
            cpu: prober.cpu_seconds(),
            raw_drops: prober.raw_socket_drops(),
            peak_rss_mib: prober.peak_rss_mib(),
            threads: prober.threads(),
            samples,
        }
    }
}

/// Requests, replies and RTT buckets counted in the window.
struct Counts {
    requests: f64,
    responses: f64,
    rtt: Buckets,
    /// Whether the prober exported these series at all.
    present: bool,
}

impl Counts {
    fn of(
        before: &Snapshot,
        after: &Snapshot,
        metrics: &Metrics,
        keep: &dyn Fn(&Sample) -> bool,
    ) -> Counts {
        let delta = |name: &str| {
            exposition::sum(&after.samples, name, keep)
                - exposition::sum(&before.samples, name, keep)
        };
        let rtt = Buckets::of(&after.samples, metrics.rtt, keep).since(&Buckets::of(
            &before.samples,
            metrics.rtt,
            keep,
        ));
        let present = after
            .samples
            .iter()
            .any(|sample| sample.name == metrics.requests && keep(sample));
        Counts {
            requests: delta(metrics.requests),
            responses: metrics.responses.map_or_else(|| rtt.total(), delta),
            rtt,
            present,
        }
    }
}

/// CPU and memory of a prober process over the window.
#[derive(Clone, Copy)]
struct Usage {
    cpu: f64,
    window: Duration,
    peak_rss_mib: f64,
    threads: u64,
}

/// One line of the results table.
struct Row {
    prober: String,
    protocol: &'static str,
    targets: usize,
    requests: String,
    responses: String,
    median: String,
    p99: String,
    at_or_below: String,
    usage: Option<Usage>,
    /// Whether the prober exported probe series (false: a build without the engine).
    probed: bool,
}

impl Row {
    fn histogram(
        prober: String,
        protocol: &'static str,
        targets: usize,
        counts: Counts,
        usage: Option<Usage>,
    ) -> Row {
        if !counts.present {
            return Row {
                prober,
                protocol,
                targets,
                requests: "no series: probe engine not in this build".into(),
                responses: "–".into(),
                median: "–".into(),
                p99: "–".into(),
                at_or_below: "–".into(),
                usage,
                probed: false,
            };
        }
        Row {
            prober,
            protocol,
            targets,
            requests: format!("{:.0}", counts.requests),
            responses: format!(
                "{:.0} ({:.1} %)",
                counts.responses,
                100.0 * counts.responses / counts.requests.max(1.0)
            ),
            median: exposition::error_interval(counts.rtt.quantile_bucket(0.5), INJECTED),
            p99: exposition::error_interval(counts.rtt.quantile_bucket(0.99), INJECTED),
            at_or_below: format!("{:.0}", counts.rtt.at_or_below(INJECTED)),
            usage,
            probed: true,
        }
    }

    fn exact(prober: &str, protocol: &'static str, outcome: blackbox::Outcome) -> Row {
        let mut errors: Vec<f64> = outcome
            .rtts
            .iter()
            .map(|rtt| (rtt - INJECTED) * 1e3)
            .collect();
        errors.sort_by(f64::total_cmp);
        let quantile = |q: f64| {
            if errors.is_empty() {
                "–".to_owned()
            } else {
                let index = ((errors.len() - 1) as f64 * q).round() as usize;
                format!("{:+.3} ms", errors[index])
            }
        };
        Row {
            prober: prober.to_owned(),
            protocol,
            targets: FEW_TARGETS,
            requests: outcome.requests.to_string(),
            responses: format!(
                "{} ({:.1} %)",
                outcome.successes,
                100.0 * outcome.successes as f64 / outcome.requests.max(1) as f64
            ),
            median: quantile(0.5),
            p99: quantile(0.99),
            at_or_below: errors
                .iter()
                .filter(|error| **error <= 0.0)
                .count()
                .to_string(),
            usage: None,
            probed: true,
        }
    }
}

fn render(rows: &[Row], blackbox: Option<Usage>) -> String {
    let mut out = String::new();
    out.push_str(
        "| prober | protocol | targets | requests | replies | CPU s | CPU % of a core | peak RSS | threads | RTT error median | RTT error p99 | replies ≤ 25 ms |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let usage = row.usage.map_or_else(
            || " | | | ".to_owned(),
            |usage| {
                format!(
                    "{:.2} | {:.1} % | {:.1} MiB | {}",
                    usage.cpu,
                    100.0 * usage.cpu / usage.window.as_secs_f64(),
                    usage.peak_rss_mib,
                    usage.threads
                )
            },
        );
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {usage} | {} | {} | {} |\n",
            row.prober,
            row.protocol,
            row.targets,
            row.requests,
            row.responses,
            row.median,
            row.p99,
            row.at_or_below
        ));
    }
    // Only rows that probed: a build without the probe engine gives no ratio.
    let usage_of = |prefix: &str| {
        rows.iter()
            .find(|row| row.prober.starts_with(prefix) && row.usage.is_some() && row.probed)
            .and_then(|row| row.usage)
    };
    if let (Some(ours), Some(theirs)) = (usage_of("xen_exporter"), usage_of("smokeping")) {
        out.push_str(&format!(
            "\nours / smokeping_prober: CPU {:.2}×, peak RSS {:.2}× (target ≤ 0.5× each).\n",
            ours.cpu / theirs.cpu,
            ours.peak_rss_mib / theirs.peak_rss_mib
        ));
    }
    let icmp_row = |part: &str| {
        rows.iter()
            .find(|row| row.prober.contains(part) && row.protocol == "icmp" && row.probed)
    };
    if let (Some(off), Some(on)) = (icmp_row("traces off"), icmp_row("traces every")) {
        if let (Some(a), Some(b)) = (off.usage, on.usage) {
            let ratio = b.cpu / a.cpu;
            out.push_str(&format!(
                "\ntraced / untraced (issue 17): CPU {ratio:.2}× ({} the target ≤ 1.20×); RTT \
                 error median {} traced against {} untraced: {}.\n",
                if ratio <= 1.20 { "meets" } else { "misses" },
                on.median,
                off.median,
                if on.median == off.median {
                    "the same bucket"
                } else {
                    "a different bucket"
                }
            ));
        }
    }
    if let Some(usage) = blackbox {
        out.push_str(&format!(
            "\nblackbox_exporter process (both modules, {} probes/s): {:.2} CPU s, {:.1} MiB peak RSS, {} threads.\n",
            2 * FEW_TARGETS,
            usage.cpu,
            usage.peak_rss_mib,
            usage.threads
        ));
    }
    out.push_str(
        "\nErrors are measured − injected. smokeping_prober and ours: the histogram bucket that \
         holds the quantile (bucket resolution; bounds 25.000, 25.025, 25.05, 25.1, 25.15, 25.2, \
         25.3, 25.5, 26, 27, 30, 50, 100, 250, 500, 1000 ms). blackbox: exact, from each \
         probe's reported duration (tcp_connect: the whole probe, no connect phase exported).\n",
    );
    out
}

fn start_smokeping(netns: &Netns, targets: &[IpAddr], dir: &Path) -> Prober {
    let hosts: String = targets
        .iter()
        .map(|address| format!("  - {address}\n"))
        .collect();
    let config =
        format!("targets:\n- hosts:\n{hosts}  interval: 1s\n  network: ip4\n  protocol: icmp\n");
    let path = dir.join("smokeping_prober.yml");
    std::fs::write(&path, config).expect("write smokeping_prober.yml");
    let buckets: Vec<String> = BUCKETS.iter().map(f64::to_string).collect();
    let mut command = netns.command("prometheus-smokeping-prober");
    command.args([
        "--privileged".to_owned(),
        format!("--web.listen-address=127.0.0.1:{SMOKEPING_PORT}"),
        format!("--config.file={}", path.display()),
        format!("--buckets={}", buckets.join(",")),
        "--log.level=warn".to_owned(),
    ]);
    Prober::start("smokeping_prober", SMOKEPING_PORT, command, dir)
}

/// Why ours' probes failed in the window (`latency_errors_total{reason}`), and what its raw
/// sockets dropped: a reply short of the requests is explained here or is a counter boundary.
fn probe_errors(label: &str, before: &Snapshot, after: &Snapshot) -> String {
    let mut reasons = std::collections::BTreeMap::<String, f64>::new();
    for (snapshot, sign) in [(after, 1.0), (before, -1.0)] {
        for sample in snapshot
            .samples
            .iter()
            .filter(|s| s.name == "latency_errors_total")
        {
            *reasons
                .entry(format!(
                    "{} {}",
                    sample.label("protocol").unwrap_or("?"),
                    sample.label("reason").unwrap_or("?")
                ))
                .or_default() += sign * sample.value;
        }
    }
    let reasons: Vec<String> = reasons
        .iter()
        .filter(|(_, count)| **count != 0.0)
        .map(|(reason, count)| format!("{reason} {count:.0}"))
        .collect();
    format!(
        "\n{label}: probe errors in the window: {}; packets dropped on its raw sockets (receive \
         buffer full): {}.\n",
        if reasons.is_empty() {
            "none".to_owned()
        } else {
            reasons.join(", ")
        },
        after.raw_drops - before.raw_drops
    )
}

/// What the traced exporter's path metrics say: traces and errors in the window, and over its
/// whole run how many targets have a path, of how many hops, and how many cross `BENCHIX`.
fn trace_summary(label: &str, before: &Snapshot, after: &Snapshot) -> String {
    let all = |_: &Sample| true;
    let delta = |name: &str| {
        exposition::sum(&after.samples, name, &all) - exposition::sum(&before.samples, name, &all)
    };
    let samples = &after.samples;
    let of = |name: &'static str| samples.iter().filter(move |s| s.name == name);
    let mut hops = std::collections::BTreeMap::<String, usize>::new();
    for sample in of("latency_path_hops") {
        *hops.entry(sample.value.to_string()).or_default() += 1;
    }
    let hops: Vec<String> = hops
        .iter()
        .map(|(hops, targets)| format!("{hops} hops: {targets}"))
        .collect();
    let mut errors = std::collections::BTreeMap::<String, f64>::new();
    for sample in of("latency_path_trace_errors_total") {
        *errors
            .entry(sample.label("reason").unwrap_or("?").to_owned())
            .or_default() += sample.value;
    }
    let errors: Vec<String> = errors
        .iter()
        .map(|(reason, count)| format!("{reason} {count:.0}"))
        .collect();
    format!(
        "\n{label}: {:.0} traces completed in the window ({:.0} errors); since its start \
         {:.0} traces, errors by reason: {}; {} targets have a path ({}), {} of them via_ix 1 \
         (`{IX}`), {} via_ix 0; {:.0} path changes.\n",
        delta("latency_path_traces_total"),
        delta("latency_path_trace_errors_total"),
        exposition::sum(&after.samples, "latency_path_traces_total", &all),
        if errors.is_empty() {
            "none".to_owned()
        } else {
            errors.join(", ")
        },
        of("latency_path_info").count(),
        hops.join(", "),
        of("latency_path_via_ix").filter(|s| s.value == 1.0).count(),
        of("latency_path_via_ix").filter(|s| s.value == 0.0).count(),
        exposition::sum(&after.samples, "latency_path_changes_total", &all),
    )
}

/// `300 s` as `5m`, `30 s` as `30s`.
fn seconds(interval: Duration) -> String {
    let secs = interval.as_secs();
    if secs % 60 == 0 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

fn start_ours(
    netns: &Netns,
    settings: &Settings,
    ours: Ours,
    targets: &[IpAddr],
    few: &[IpAddr],
    dir: &Path,
) -> Prober {
    let mut config = String::from("xen:\n  rings: false\n  vbd_sysfs: false\n");
    // The exchange the second simulated router lies in (the first if there is one only).
    let ix_hop = responder::routers(settings.hops - 1)
        .get(1)
        .or(responder::routers(settings.hops - 1).first())
        .copied();
    if let Some(hop) = ix_hop {
        config.push_str(&format!("ixes: {{{IX}: [{hop}/32]}}\n"));
    }
    config.push_str("probes:\n");
    let buckets: Vec<String> = BUCKETS.iter().map(f64::to_string).collect();
    config.push_str(&format!("  rtt_buckets: [{}]\n", buckets.join(", ")));
    let trace = match ours {
        Ours::Defaults => String::new(),
        Ours::Untraced => ", trace: {enabled: false}".to_owned(),
        Ours::Traced => format!(
            ", trace: {{enabled: true, interval: {}}}",
            seconds(settings.trace_interval)
        ),
    };
    config.push_str(&format!(
        "  defaults: {{interval: 1s, timeout: 1s{trace}}}\n  targets:\n"
    ));
    for address in targets {
        config.push_str(&format!("    - {{host: {address}, protocol: icmp}}\n"));
    }
    for address in few {
        config.push_str(&format!(
            "    - {{host: {address}, protocol: tcp, port: {TCP_PORT}}}\n"
        ));
    }
    let path = dir.join(format!("{}.yml", ours.name()));
    std::fs::write(&path, config).expect("write the exporter's configuration");
    let binary = env!("CARGO_BIN_EXE_xen_exporter");
    let check = std::process::Command::new(binary)
        .arg(format!("--config.file={}", path.display()))
        .arg("--config.check")
        .output()
        .expect("run xen_exporter --config.check");
    assert!(
        check.status.success(),
        "xen_exporter rejects the bench's configuration: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let mut command = netns.command(binary);
    command.args([
        format!("--web.listen-address=127.0.0.1:{}", ours.port()),
        format!("--config.file={}", path.display()),
        "--xen.source=simulated".to_owned(),
        "--xen.simulated.domains=0".to_owned(),
        "--log.level=warn".to_owned(),
    ]);
    Prober::start(ours.name(), ours.port(), command, dir)
}

fn start_blackbox(netns: &Netns, dir: &Path) -> Prober {
    let path = dir.join("blackbox.yml");
    std::fs::write(&path, blackbox::CONFIG).expect("write blackbox.yml");
    let mut command = netns.command("prometheus-blackbox-exporter");
    command.args([
        format!("--web.listen-address=127.0.0.1:{BLACKBOX_PORT}"),
        format!("--config.file={}", path.display()),
        "--log.level=warn".to_owned(),
    ]);
    Prober::start("blackbox_exporter", BLACKBOX_PORT, command, dir)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default()
}
