//! The latency probes against the real kernel: the exporter binary runs inside a namespace this
//! test creates, with a netsim TUN responder answering for 198.19.0.0/24 and fd00:198:19::/64
//! after an injected delay, jitter and loss. Every number is read from `/metrics` over HTTP.
//! Each test has its own namespace, so nextest runs them concurrently.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Exporter;
use netsim::{Impairment, JitterDist, Netns, Options, Prefix, Responder};

/// A namespace, its responder and an exporter running inside it (killed by PID on drop).
struct Lab {
    exporter: Exporter,
    config: PathBuf,
    responder: Responder,
    netns: Netns,
    _dir: tempfile::TempDir,
}

/// How the exporter is started.
#[derive(Clone, Copy, PartialEq)]
enum User {
    Root,
    /// uid/gid 65534 through `setpriv`, no capabilities: RAW sockets are refused.
    Nobody,
}

impl Lab {
    fn start(test: &str, options: Options, config: &str, user: User) -> Option<Lab> {
        Self::start_with(test, options, config, user, |_| {})
    }

    /// `prepare` runs on the namespace before the exporter starts (hosts file, sysctls).
    fn start_with(
        test: &str,
        options: Options,
        config: &str,
        user: User,
        prepare: impl FnOnce(&Netns),
    ) -> Option<Lab> {
        if !netsim::require_privileged(test) {
            return None;
        }
        let netns = Netns::for_test(test).expect("create namespace");
        let responder = Responder::spawn(options.netns(netns.name())).expect("start responder");
        prepare(&netns);
        let dir = common::temp_dir();
        // The unprivileged exporter must be able to read its config.
        set_mode(dir.path(), 0o755);
        let config_path = dir.path().join("xen_exporter.yml");
        std::fs::write(&config_path, config).expect("write config");
        set_mode(&config_path, 0o644);
        let exporter = spawn_exporter(&netns, &config_path, user);
        Some(Lab {
            exporter,
            config: config_path,
            responder,
            netns,
            _dir: dir,
        })
    }

    fn get(&self, path: &str) -> String {
        let address = self.exporter.address;
        let path = path.to_owned();
        self.netns
            .run(move || common::http(address, "GET", &path, &[]))
            .expect("enter namespace")
            .expect("HTTP request to the exporter")
            .text()
    }

    fn metrics(&self) -> Metrics {
        Metrics(self.get("/metrics"))
    }

    fn logs(&self) -> String {
        self.exporter.logs()
    }

    /// Rewrites the config file and reloads it (SIGHUP).
    fn reload(&self, config: &str) {
        std::fs::write(&self.config, config).expect("rewrite config");
        self.exporter.signal("HUP");
    }

    /// Waits until `condition` holds on a scrape; panics with the scrape and logs otherwise.
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
                    metrics.latency(),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Answers the responder itself sent so late that they missed a `timeout` after a `delay`:
    /// timeouts the machine caused (a stalled VM), not the exporter.
    fn answered_too_late(&self, delay: Duration, timeout: Duration) -> f64 {
        self.responder
            .answers_later_than(timeout.saturating_sub(delay)) as f64
    }

    /// The exporter's ICMP receive threads (`icmp-recv-*`), from /proc.
    fn receive_threads(&self) -> usize {
        let pid = self.exporter.child.id();
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .expect("read the exporter's tasks")
            .filter_map(Result::ok)
            .filter(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|comm| comm.starts_with("icmp-recv"))
            })
            .count()
    }

    /// Voluntary context switches of the exporter's ICMP receive threads so far: how often
    /// they went to sleep, i.e. woke up.
    fn receive_thread_wakeups(&self) -> u64 {
        let pid = self.exporter.child.id();
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .expect("read the exporter's tasks")
            .filter_map(Result::ok)
            .filter(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|comm| comm.starts_with("icmp-recv"))
            })
            .filter_map(|task| std::fs::read_to_string(task.path().join("status")).ok())
            .filter_map(|status| {
                let line = status
                    .lines()
                    .find(|line| line.starts_with("voluntary_ctxt_switches:"))?;
                line.split_whitespace().nth(1)?.parse::<u64>().ok()
            })
            .sum()
    }

    /// The exporter's open sockets, from /proc.
    fn sockets(&self) -> usize {
        let pid = self.exporter.child.id();
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("read the exporter's descriptors")
            .filter_map(Result::ok)
            .filter(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|link| link.to_string_lossy().starts_with("socket:"))
            })
            .count()
    }

    /// The exporter's CPU time so far (user + system), from /proc.
    fn cpu_seconds(&self) -> f64 {
        let pid = self.exporter.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .expect("comm")
            .1
            .split_whitespace()
            .collect();
        let ticks: f64 =
            fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
        ticks / 100.0
    }
}

/// Starts the exporter inside `netns` with `config` (`ip netns exec`, and `setpriv` for an
/// unprivileged user), through the shared launcher that waits for its `listening` line.
fn spawn_exporter(netns: &Netns, config_path: &Path, user: User) -> Exporter {
    let mut wrapper = vec!["ip", "netns", "exec", netns.name()];
    if user == User::Nobody {
        wrapper.extend([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ]);
    }
    let config = format!("--config.file={}", config_path.display());
    Exporter::start_wrapped(&wrapper, &[&config], &[])
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// One scrape, with lookups by metric and target.
struct Metrics(String);

impl Metrics {
    fn value(&self, metric: &str, target: &str, extra: &str) -> Option<f64> {
        self.0
            .lines()
            .filter(|line| !line.starts_with('#'))
            .find(|line| {
                let name_end = line.find(['{', ' ']).unwrap_or(line.len());
                &line[..name_end] == metric
                    && line.contains(&format!("target=\"{target}\""))
                    && line.contains(extra)
            })
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
    }

    /// Every sample of `metric` by its `target` label (one pass: 1,000 targets are many lines).
    fn by_target(&self, metric: &str) -> HashMap<String, f64> {
        self.0
            .lines()
            .filter_map(|line| {
                let rest = line.strip_prefix(metric)?.strip_prefix("{target=\"")?;
                let (target, rest) = rest.split_once('"')?;
                let value = rest.rsplit(' ').next()?.parse().ok()?;
                Some((target.to_owned(), value))
            })
            .collect()
    }

    fn get(&self, metric: &str, target: &str) -> f64 {
        self.value(metric, target, "").unwrap_or(0.0)
    }

    fn requests(&self, target: &str) -> f64 {
        self.get("latency_requests_total", target)
    }

    fn responses(&self, target: &str) -> f64 {
        self.get("latency_responses_total", target)
    }

    fn errors(&self, target: &str, reason: &str) -> f64 {
        self.value(
            "latency_errors_total",
            target,
            &format!("reason=\"{reason}\""),
        )
        .unwrap_or(0.0)
    }

    /// The RTT histogram's cumulative count at bucket `le`.
    fn bucket(&self, target: &str, le: &str) -> f64 {
        self.value(
            "latency_rtt_seconds_bucket",
            target,
            &format!("le=\"{le}\""),
        )
        .unwrap_or(f64::NAN)
    }

    fn count(&self, target: &str) -> f64 {
        self.get("latency_rtt_seconds_count", target)
    }

    fn has(&self, needle: &str) -> bool {
        self.0.contains(needle)
    }

    /// The latency lines without histogram buckets (for failure messages).
    fn latency(&self) -> String {
        self.0
            .lines()
            .filter(|line| {
                (line.starts_with("latency_") && !line.contains("_bucket"))
                    || line.contains("collector=\"probes\"")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Fine buckets around 25 ms: `0.02499` must stay empty (min ≥ 25 ms) and `0.0255` must hold
/// half the replies (median ≤ 25.5 ms).
const FINE_BUCKETS: &str =
    "[0.02499, 0.0251, 0.0252, 0.0253, 0.0254, 0.0255, 0.026, 0.027, 0.03, 0.05]";

#[test]
fn injected_delay_is_a_floor_and_the_median_stays_within_half_a_millisecond() {
    let config = format!(
        "probes:\n  defaults:\n    interval: 50ms\n    timeout: 50ms\n  rtt_buckets: {FINE_BUCKETS}\n  targets:\n\
         \x20   - {{host: 198.19.0.2, protocol: icmp}}\n\
         \x20   - {{host: fd00:198:19::2, protocol: icmp}}\n\
         \x20   - {{host: 198.19.0.3, protocol: tcp, port: 80}}\n\
         \x20   - {{host: 198.19.0.7, protocol: icmp, payload_size: 1200, labels: {{ix: NIX}}}}\n"
    );
    let Some(lab) = Lab::start(
        "probes_delay",
        Options::default().delay(Duration::from_millis(25)).ttl(57),
        &config,
        User::Root,
    ) else {
        return;
    };
    let targets = [
        "198.19.0.2",
        "fd00:198:19::2",
        "198.19.0.3:80",
        "198.19.0.7",
    ];
    let metrics = lab.wait_for("200 replies per target", Duration::from_secs(30), |m| {
        targets.iter().all(|target| m.count(target) >= 200.0)
    });
    let late_answers = lab.answered_too_late(Duration::from_millis(25), Duration::from_millis(50));
    for target in targets {
        let count = metrics.count(target);
        assert_eq!(
            metrics.bucket(target, "0.02499"),
            0.0,
            "{target}: an RTT below the injected 25 ms\n{}",
            metrics.latency()
        );
        assert!(
            metrics.bucket(target, "0.0255") >= count / 2.0,
            "{target}: median above 25.5 ms\n{}\nresponder: {}",
            metrics.0,
            lab.responder.stats()
        );
        // Nothing is lost on this link: every request but the ones in flight was answered,
        // except where the responder itself was held up past the 25 ms of timeout headroom.
        assert!(
            metrics.requests(target) - metrics.responses(target)
                <= 2.0 + 0.02 * count + late_answers,
            "{target}\n{}\nresponder: {}",
            metrics.latency(),
            lab.responder.stats()
        );
    }
    // The reply's TTL / hop limit (RAW v4: IP header; v6: IPV6_RECVHOPLIMIT).
    for target in ["198.19.0.2", "fd00:198:19::2"] {
        assert_eq!(
            metrics.value("latency_reply_ttl", target, ""),
            Some(57.0),
            "{target}"
        );
    }
    // The payload size is honoured: the responder echoes what it got, and the token in it
    // still matches; the user label is on the series.
    assert!(
        metrics.has("latency_requests_total{target=\"198.19.0.7\",protocol=\"icmp\",ix=\"NIX\"}")
    );
    assert!(
        lab.get("/").contains("ICMP over RAW sockets"),
        "{}",
        lab.get("/")
    );
    let stats = lab.responder.stats();
    assert!(stats.echo_requests >= 600, "{stats}");
    assert_transmit_stamps_on_both_sockets(&lab);
}

/// Both ICMP sockets (v4 and v6) found the TUN device's transmit stamps of their requests.
fn assert_transmit_stamps_on_both_sockets(lab: &Lab) {
    let logs = lab.logs();
    assert_eq!(
        logs.matches("ICMP send times are the kernel's transmit stamps")
            .count(),
        2,
        "{logs}"
    );
}

#[test]
fn injected_loss_of_20_percent_is_exported_within_4_points() {
    let config = "probes:\n  defaults:\n    interval: 20ms\n    timeout: 20ms\n  targets:\n\
                  \x20   - {host: 198.19.0.9, protocol: icmp}\n";
    let Some(lab) = Lab::start(
        "probes_loss",
        Options::default().loss(0.2).seed(7),
        config,
        User::Root,
    ) else {
        return;
    };
    let target = "198.19.0.9";
    let metrics = lab.wait_for("600 probes", Duration::from_secs(30), |m| {
        m.requests(target) >= 600.0
    });
    let requests = metrics.requests(target);
    let responses = metrics.responses(target);
    let timeouts = metrics.errors(target, "timeout");
    // The ratio the alert and dashboard compute: 1 - responses / requests.
    let loss = 1.0 - responses / requests;
    assert!(
        (loss - 0.2).abs() <= 0.04,
        "loss {loss}\n{}",
        metrics.latency()
    );
    // Every probe is accounted for: answered, timed out, or (at most two) still in flight.
    assert!(
        requests - responses - timeouts <= 2.0 && requests >= responses + timeouts,
        "{}",
        metrics.latency()
    );
    // The responder's own count of what it dropped agrees with ours. (A reply the loaded
    // machine delayed past the 20 ms timeout counts as lost too.)
    let dropped = lab.responder.stats().dropped as f64;
    let late_answers = lab.answered_too_late(Duration::ZERO, Duration::from_millis(20));
    assert!(
        (dropped - timeouts).abs() <= 3.0 + 0.01 * requests + late_answers,
        "dropped {dropped}, timeouts {timeouts}\nresponder: {}",
        lab.responder.stats()
    );
}

#[test]
fn uniform_jitter_is_exported_as_the_rfc3550_value() {
    let config = "probes:\n  defaults:\n    interval: 20ms\n    timeout: 20ms\n  targets:\n\
                  \x20   - {host: 198.19.0.4, protocol: icmp}\n";
    let Some(lab) = Lab::start(
        "probes_jitter",
        Options::default()
            .delay(Duration::from_millis(10))
            .jitter(Duration::from_millis(5), JitterDist::Uniform)
            .seed(3),
        config,
        User::Root,
    ) else {
        return;
    };
    let target = "198.19.0.4";
    // Warm up: the estimator starts at 0 and needs ~16 differences to forget that.
    lab.wait_for("100 replies", Duration::from_secs(20), |m| {
        m.count(target) >= 100.0
    });
    // The theoretical value. RTT = 10 ms + X, X uniform on [-a, a] with a = 5 ms, independent
    // per packet. RFC 3550's J is an exponential average of |D|, D = X(n) - X(n-1), so its mean
    // is E|D|. The difference of two independent U(-a, a) is triangular on [-2a, 2a] and
    // |D| has density (2a - d) / (2a^2) on [0, 2a]: E|D| = 2a/3 = 3.333 ms.
    let expected = 2.0 * 0.005 / 3.0;
    // J itself fluctuates (gain 1/16: about ±13 % one sigma), so average the gauge over 6 s
    // of scrapes (about 18 estimator time constants) before comparing.
    let mut samples = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        if let Some(jitter) = lab.metrics().value("latency_jitter_seconds", target, "") {
            samples.push(jitter);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    assert!(
        (mean - expected).abs() <= 0.25 * expected,
        "mean jitter {mean} s over {} scrapes, expected {expected} s ± 25 %",
        samples.len()
    );
}

#[test]
fn tcp_open_refused_silent_and_unreachable_are_counted_by_reason() {
    let config = "probes:\n  defaults:\n    interval: 100ms\n    timeout: 100ms\n  targets:\n\
                  \x20   - {host: 198.19.0.2, protocol: tcp, port: 80}\n\
                  \x20   - {host: 198.19.0.2, protocol: tcp, port: 81}\n\
                  \x20   - {host: 198.19.0.2, protocol: tcp, port: 82}\n\
                  \x20   - {host: 203.0.113.1, protocol: tcp, port: 80}\n\
                  \x20   - {host: 203.0.113.1, protocol: icmp}\n";
    let Some(lab) = Lab::start(
        "probes_tcp",
        Options::default()
            .delay(Duration::from_millis(5))
            .closed_port(81)
            .silent_port(82),
        config,
        User::Root,
    ) else {
        return;
    };
    let all = [
        "198.19.0.2:80",
        "198.19.0.2:81",
        "198.19.0.2:82",
        "203.0.113.1:80",
        "203.0.113.1",
    ];
    let metrics = lab.wait_for("10 probes per target", Duration::from_secs(20), |m| {
        all.iter().all(|target| m.requests(target) >= 10.0)
    });
    let close = |target: &str, counted: f64| {
        let requests = metrics.requests(target);
        assert!(
            requests - counted <= 1.0 && counted <= requests,
            "{target}: {counted} of {requests}\n{}",
            metrics.latency()
        );
    };
    close("198.19.0.2:80", metrics.responses("198.19.0.2:80"));
    close("198.19.0.2:81", metrics.errors("198.19.0.2:81", "refused"));
    close("198.19.0.2:82", metrics.errors("198.19.0.2:82", "timeout"));
    // No route in the namespace: the kernel refuses at once.
    close(
        "203.0.113.1:80",
        metrics.errors("203.0.113.1:80", "unreachable"),
    );
    close("203.0.113.1", metrics.errors("203.0.113.1", "unreachable"));
    for target in ["198.19.0.2:81", "198.19.0.2:82", "203.0.113.1:80"] {
        assert_eq!(metrics.responses(target), 0.0, "{target}");
    }
    // No TIME_WAIT pile-up: connections are closed with an RST (SO_LINGER 0).
    let sockets = lab
        .netns
        .command("ss")
        .args(["-tan", "state", "time-wait", "dst", "198.19.0.0/24"])
        .output()
        .expect("run ss");
    let time_wait = String::from_utf8_lossy(&sockets.stdout)
        .lines()
        .count()
        .saturating_sub(1);
    assert_eq!(time_wait, 0, "{}", String::from_utf8_lossy(&sockets.stdout));
}

#[test]
fn a_host_name_is_followed_when_its_address_changes() {
    let config = "probes:\n  defaults:\n    interval: 50ms\n    timeout: 50ms\n    resolve_interval: 200ms\n  targets:\n\
                  \x20   - {host: moving.probe.test, protocol: icmp}\n\
                  \x20   - {host: missing.probe.test, protocol: icmp}\n";
    let Some(lab) = Lab::start_with(
        "probes_dns",
        Options::default().delay(Duration::from_millis(2)),
        config,
        User::Root,
        |netns| {
            netns
                .write_etc(
                    "hosts",
                    "127.0.0.1 localhost\n198.19.0.5 moving.probe.test\n",
                )
                .expect("write hosts");
            // No resolver in the namespace: a name not in the hosts file fails at once.
            netns
                .write_etc(
                    "resolv.conf",
                    "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
                )
                .expect("write resolv.conf");
        },
    ) else {
        return;
    };
    let moving = "moving.probe.test";
    lab.wait_for(
        "replies from the first address",
        Duration::from_secs(20),
        |m| m.has("address=\"198.19.0.5\"") && m.responses(moving) >= 5.0,
    );
    lab.netns
        .write_etc(
            "hosts",
            "127.0.0.1 localhost\n198.19.0.6 moving.probe.test\n",
        )
        .expect("rewrite hosts");
    let switched = lab.wait_for("the new address", Duration::from_secs(20), |m| {
        m.has("address=\"198.19.0.6\"") && !m.has("address=\"198.19.0.5\"")
    });
    let before = switched.responses(moving);
    lab.wait_for(
        "replies from the new address",
        Duration::from_secs(20),
        |m| m.responses(moving) >= before + 5.0,
    );
    let by_address = lab.responder.by_address();
    let requests = |address: &str| {
        by_address
            .get(&address.parse().expect("ip"))
            .map_or(0, |counts| counts.requests)
    };
    assert!(
        requests("198.19.0.5") >= 5 && requests("198.19.0.6") >= 5,
        "{by_address:?}"
    );
    // The name that does not resolve: every due probe counts as sent and failed (resolve),
    // the lookups are counted and failed, and the exporter carries on.
    let metrics = lab.metrics();
    let missing = "missing.probe.test";
    assert!(metrics.requests(missing) >= 5.0, "{}", metrics.latency());
    assert!(
        metrics.requests(missing) - metrics.errors(missing, "resolve") <= 1.0,
        "{}",
        metrics.latency()
    );
    assert!(metrics.get("latency_dns_failures_total", missing) >= 1.0);
    assert!(metrics.get("latency_dns_lookups_total", moving) >= 2.0);
    assert_eq!(metrics.get("latency_dns_failures_total", moving), 0.0);
    assert!(metrics.get("latency_dns_lookup_duration_seconds_count", moving) >= 2.0);
}

#[test]
fn a_reload_keeps_unchanged_targets_and_drops_removed_ones() {
    let base = "probes:\n  defaults:\n    interval: 50ms\n    timeout: 50ms\n  targets:\n\
                \x20   - {host: 198.19.0.2, protocol: icmp, labels: {ix: NIX}}\n";
    let Some(lab) = Lab::start(
        "probes_reload",
        Options::default().delay(Duration::from_millis(1)),
        &format!("{base}    - {{host: 198.19.0.3, protocol: icmp}}\n"),
        User::Root,
    ) else {
        return;
    };
    let before = lab.wait_for("probes of both targets", Duration::from_secs(20), |m| {
        m.responses("198.19.0.2") >= 20.0 && m.responses("198.19.0.3") >= 1.0
    });
    lab.reload(&format!(
        "{base}    - {{host: 198.19.0.4, protocol: tcp, port: 80}}\n"
    ));
    // The first scrape that shows the new target is right after the new configuration took
    // effect: a restarted target would have counted from 0 again (fewer than `before`'s 20).
    let applied = lab.wait_for("the reload to apply", Duration::from_secs(20), |m| {
        m.has("target=\"198.19.0.4:80\"")
    });
    assert!(
        applied.requests("198.19.0.2") >= before.requests("198.19.0.2"),
        "the unchanged target's counter went back: {}",
        applied.latency()
    );
    let after = lab.wait_for("the new target", Duration::from_secs(20), |m| {
        m.responses("198.19.0.4:80") >= 5.0
    });
    assert!(!after.has("target=\"198.19.0.3\""), "{}", after.latency());
    // The unchanged target goes on being probed, its histogram with it.
    assert!(after.requests("198.19.0.2") > applied.requests("198.19.0.2"));
    assert!(after.count("198.19.0.2") >= before.count("198.19.0.2"));
    assert!(
        lab.logs().contains("configuration reloaded"),
        "{}",
        lab.logs()
    );
}

#[test]
fn a_thousand_targets_at_one_second_are_each_probed_every_interval() {
    let prefix = Prefix::new("198.19.0.1".parse().expect("ip"), 22).expect("prefix");
    let mut config =
        String::from("probes:\n  defaults:\n    interval: 1s\n    timeout: 1s\n  targets:\n");
    let targets: Vec<String> = (2..=1001)
        .map(|index| prefix.nth(index).expect("address in prefix").to_string())
        .collect();
    for target in &targets {
        config.push_str(&format!("    - {{host: {target}, protocol: icmp}}\n"));
    }
    let Some(lab) = Lab::start(
        "probes_scale",
        Options::default()
            .prefix4(Some(prefix))
            .delay(Duration::from_millis(5)),
        &config,
        User::Root,
    ) else {
        return;
    };
    let first = lab.wait_for(
        "one reply from every target",
        Duration::from_secs(20),
        |m| {
            let responses = m.by_target("latency_responses_total");
            targets
                .iter()
                .all(|target| responses.get(target).is_some_and(|count| *count >= 1.0))
        },
    );
    let cpu_before = lab.cpu_seconds();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let last = lab.metrics();
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = lab.cpu_seconds() - cpu_before;
    let maps = |metric: &str| (last.by_target(metric), first.by_target(metric));
    let (requests, responses) = (
        maps("latency_requests_total"),
        maps("latency_responses_total"),
    );
    let delta = |(now, then): &(HashMap<String, f64>, HashMap<String, f64>), target: &String| {
        now.get(target).copied().unwrap_or(0.0) - then.get(target).copied().unwrap_or(0.0)
    };
    let mut late = Vec::new();
    for target in &targets {
        let sent = delta(&requests, target);
        let answered = delta(&responses, target);
        // 3 s at 1 s: 3 sends (2 to 4, by where the scrapes fall within the interval), every
        // one answered but those in flight.
        if !(2.0..=4.0).contains(&sent) || answered < sent - 1.0 {
            late.push(format!("{target}: sent {sent}, answered {answered}"));
        }
    }
    assert!(
        late.is_empty(),
        "{} targets off schedule: {:?}",
        late.len(),
        &late[..late.len().min(10)]
    );
    // Information, not an assertion (benches/ measures performance): the exporter's CPU.
    eprintln!(
        "1,000 targets at 1 s: exporter used {cpu:.2} CPU s in {elapsed:.1} s ({:.1} % of a core, debug build)",
        100.0 * cpu / elapsed
    );
}

#[test]
fn unprivileged_dgram_sockets_probe_icmp_and_icmpv6() {
    let config = "probes:\n  defaults:\n    interval: 30ms\n    timeout: 30ms\n  rtt_buckets: [0.00999, 0.0105, 0.05]\n  targets:\n\
                  \x20   - {host: 198.19.0.2, protocol: icmp}\n\
                  \x20   - {host: fd00:198:19::2, protocol: icmp}\n";
    let Some(lab) = Lab::start_with(
        "probes_dgram",
        Options::default().delay(Duration::from_millis(10)).ttl(61),
        config,
        User::Nobody,
        |netns| netns.allow_ping_group().expect("ping_group_range"),
    ) else {
        return;
    };
    let metrics = lab.wait_for("replies over DGRAM sockets", Duration::from_secs(20), |m| {
        m.responses("198.19.0.2") >= 50.0 && m.responses("fd00:198:19::2") >= 50.0
    });
    for target in ["198.19.0.2", "fd00:198:19::2"] {
        assert_eq!(
            metrics.bucket(target, "0.00999"),
            0.0,
            "{target}: below the delay"
        );
        assert!(
            metrics.bucket(target, "0.0105") >= metrics.count(target) / 2.0,
            "{target}"
        );
        // DGRAM sockets see no IP header: the TTL comes from IP_RECVTTL / IPV6_RECVHOPLIMIT.
        assert_eq!(
            metrics.value("latency_reply_ttl", target, ""),
            Some(61.0),
            "{target}"
        );
    }
    assert!(lab.logs().contains("kind=DGRAM"), "{}", lab.logs());
    assert!(!lab.logs().contains("kind=RAW"), "{}", lab.logs());
    assert!(lab.get("/").contains("ICMP over DGRAM sockets"));
    assert_transmit_stamps_on_both_sockets(&lab);
    assert!(metrics.has("xen_exporter_collector_success{collector=\"probes\"} 1"));
}

#[test]
fn without_permission_the_error_names_both_fixes_and_the_exporter_keeps_serving() {
    let config = "probes:\n  defaults:\n    interval: 50ms\n    timeout: 50ms\n  targets:\n\
                  \x20   - {host: 198.19.0.2, protocol: icmp}\n\
                  \x20   - {host: 198.19.0.2, protocol: tcp, port: 80}\n";
    // A fresh namespace keeps the kernel's default ping_group_range ("1 0": nobody).
    let Some(lab) = Lab::start("probes_noperm", Options::default(), config, User::Nobody) else {
        return;
    };
    let metrics = lab.wait_for("socket errors", Duration::from_secs(20), |m| {
        m.errors("198.19.0.2", "socket") >= 5.0 && m.responses("198.19.0.2:80") >= 5.0
    });
    assert!(
        metrics.has("xen_exporter_collector_success{collector=\"probes\"} 0"),
        "{}",
        metrics.latency()
    );
    assert_eq!(metrics.responses("198.19.0.2"), 0.0);
    let logs = lab.logs();
    for needle in [
        "cannot open an ICMP socket",
        "CAP_NET_RAW",
        "setcap cap_net_raw+ep",
        "net.ipv4.ping_group_range",
    ] {
        assert!(
            logs.contains(needle),
            "{needle} missing from the logs:\n{logs}"
        );
    }
    // Logged once, not once per probe.
    assert_eq!(
        logs.matches("cannot open an ICMP socket").count(),
        1,
        "{logs}"
    );
    assert!(lab.get("/").contains("ICMP socket cannot be opened"));
}

#[test]
fn a_reply_after_the_timeout_is_a_timeout_and_one_before_it_an_answer() {
    // Timeout 25 ms; the answers come after 30 ms and after 10 ms. The receive thread sweeps
    // every 10 ms, so the 30 ms replies are often read before their request is swept: they
    // must still count as timeouts, judged on when they arrived.
    let config = "probes:\n  defaults:\n    interval: 50ms\n    timeout: 25ms\n  targets:\n\
                  \x20   - {host: 198.19.0.2, protocol: icmp}\n\
                  \x20   - {host: 198.19.0.3, protocol: icmp}\n\
                  \x20   - {host: 198.19.0.2, protocol: tcp, port: 80}\n";
    let (slow, fast) = (Duration::from_millis(30), Duration::from_millis(10));
    let Some(lab) = Lab::start(
        "probes_late",
        Options::default()
            .target("198.19.0.2".parse().expect("ip"), Impairment::delay(slow))
            .target("198.19.0.3".parse().expect("ip"), Impairment::delay(fast)),
        config,
        User::Root,
    ) else {
        return;
    };
    let metrics = lab.wait_for("60 probes per target", Duration::from_secs(20), |m| {
        ["198.19.0.2", "198.19.0.3", "198.19.0.2:80"]
            .iter()
            .all(|target| m.requests(target) >= 60.0)
    });
    let late_answers = lab.answered_too_late(fast, Duration::from_millis(25));
    let report = || {
        format!(
            "{}\nresponder: {}",
            metrics.latency(),
            lab.responder.stats()
        )
    };
    for slow_target in ["198.19.0.2", "198.19.0.2:80"] {
        assert_eq!(metrics.responses(slow_target), 0.0, "{}", report());
        assert!(
            metrics.errors(slow_target, "timeout") >= metrics.requests(slow_target) - 1.0,
            "{slow_target}: every request but the one in flight timed out\n{}",
            report()
        );
    }
    let fast_target = "198.19.0.3";
    assert!(
        metrics.requests(fast_target) - metrics.responses(fast_target) <= 1.0 + late_answers,
        "{}",
        report()
    );
}

#[test]
fn two_exporters_pinging_one_host_never_take_each_others_replies() {
    // Both run as root, so both use RAW sockets, and each RAW socket sees every echo reply in
    // the namespace: the other exporter's replies must be told apart (identifier, sequence
    // and the per-probe token), never counted as ours or as duplicates (surge-ping #73).
    let config = "probes:\n  defaults:\n    interval: 20ms\n    timeout: 20ms\n  targets:\n\
                  \x20   - {host: 198.19.0.2, protocol: icmp}\n";
    let Some(lab) = Lab::start(
        "probes_two",
        Options::default().delay(Duration::from_millis(1)),
        config,
        User::Root,
    ) else {
        return;
    };
    let second = spawn_exporter(&lab.netns, &lab.config, User::Root);
    let second_address = second.address;
    let target = "198.19.0.2";
    let first = lab.wait_for("300 probes", Duration::from_secs(20), |m| {
        m.requests(target) >= 300.0
    });
    let other = Metrics(
        lab.netns
            .run(move || common::http(second_address, "GET", "/metrics", &[]))
            .expect("enter namespace")
            .expect("scrape the second exporter")
            .text(),
    );
    drop(second);
    let late_answers = lab.answered_too_late(Duration::from_millis(1), Duration::from_millis(20));
    for (name, metrics) in [("first", &first), ("second", &other)] {
        let requests = metrics.requests(target);
        let responses = metrics.responses(target);
        assert!(requests >= 100.0, "{name}: {}", metrics.latency());
        // As in the delay test: none lost, but for answers the responder sent too late.
        assert!(
            responses <= requests && requests - responses <= 2.0 + 0.02 * requests + late_answers,
            "{name}: {}\nresponder: {}",
            metrics.latency(),
            lab.responder.stats()
        );
        assert_eq!(
            metrics.get("latency_duplicates_total", target),
            0.0,
            "{name}: {}",
            metrics.latency()
        );
    }
    // Both really were pinging at once: the responder saw both streams.
    let answered = lab.responder.stats().answered as f64;
    assert!(
        answered >= first.requests(target) + other.requests(target) - 4.0,
        "{answered}"
    );
}

#[test]
fn an_icmp_unreachable_from_a_router_fails_the_probe_as_unreachable() {
    unreachable_from_a_router_fails_the_probe(User::Root, "probes_unreach");
}

#[test]
fn over_dgram_sockets_an_icmp_unreachable_fails_the_probe_as_unreachable() {
    // DGRAM sockets never see the ICMP error as a packet: it comes on their error queue
    // (IP_RECVERR), which also leaves it pending on the socket for the next send.
    unreachable_from_a_router_fails_the_probe(User::Nobody, "probes_unreach_dgram");
}

/// The exporter's namespace reaches 203.0.113.0/24 and 2001:db8:113::/48 through a router
/// namespace (veth pair) whose routes for them are `unreachable`: the router answers echo
/// requests with ICMP / ICMPv6 destination unreachable quoting them. The kernel rate-limits
/// these hard (`ip_error` and the ICMPv6 rate limit, host-wide settings left alone here): only a
/// few arrive and the other probes time out. Each one that arrives must fail its probe as
/// `unreachable`; a reachable target probed over the same socket at the same time is never hit
/// by another target's error.
fn unreachable_from_a_router_fails_the_probe(user: User, name: &str) {
    let config = "probes:\n  defaults:\n    interval: 50ms\n    timeout: 50ms\n  targets:\n\
                  \x20   - {host: 203.0.113.1, protocol: icmp}\n\
                  \x20   - {host: '2001:db8:113::1', protocol: icmp}\n\
                  \x20   - {host: 198.19.0.2, protocol: icmp, interval: 10ms, timeout: 10ms}\n\
                  \x20   - {host: 'fd00:198:19::2', protocol: icmp, interval: 10ms, timeout: 10ms}\n";
    let mut router = None;
    let Some(lab) = Lab::start_with(name, Options::default(), config, user, |netns| {
        if user == User::Nobody {
            netns.allow_ping_group().expect("ping_group_range");
        }
        router = Some(unreachable_router(netns));
    }) else {
        return;
    };
    let (unreachable, reachable) = (
        ["203.0.113.1", "2001:db8:113::1"],
        ["198.19.0.2", "fd00:198:19::2"],
    );
    let metrics = lab.wait_for(
        "unreachable errors and replies",
        Duration::from_secs(20),
        |m| {
            unreachable
                .iter()
                .all(|target| m.errors(target, "unreachable") >= 1.0)
                && reachable.iter().all(|target| m.responses(target) >= 100.0)
        },
    );
    // Every probe is either unreachable or timed out (at most one in flight), never answered.
    for target in unreachable {
        let failed = metrics.errors(target, "unreachable") + metrics.errors(target, "timeout");
        assert!(
            metrics.requests(target) - failed <= 1.0 && metrics.responses(target) == 0.0,
            "{target}\n{}",
            metrics.latency()
        );
    }
    for target in reachable {
        assert!(metrics.responses(target) >= 100.0, "{}", metrics.latency());
        assert_eq!(
            metrics.errors(target, "unreachable"),
            0.0,
            "{}",
            metrics.latency()
        );
    }
    drop(lab);
    drop(router);
}

/// A router namespace behind a veth pair whose routes for 203.0.113.0/24 and 2001:db8:113::/48
/// are `unreachable`.
fn unreachable_router(netns: &Netns) -> Netns {
    let router = Netns::create(&format!("{}-r", netns.name())).expect("router namespace");
    let ip = |args: &[&str]| {
        let status = Command::new("ip").args(args).status().expect("run ip");
        assert!(status.success(), "ip {args:?}");
    };
    let (a, b) = (netns.name(), router.name());
    ip(&[
        "-n", a, "link", "add", "xe-u0", "type", "veth", "peer", "name", "xe-u1", "netns", b,
    ]);
    ip(&["-n", a, "addr", "add", "192.0.2.1/30", "dev", "xe-u0"]);
    ip(&[
        "-n",
        a,
        "addr",
        "add",
        "fd00:192:2::1/64",
        "dev",
        "xe-u0",
        "nodad",
    ]);
    ip(&["-n", a, "link", "set", "xe-u0", "up"]);
    ip(&["-n", b, "addr", "add", "192.0.2.2/30", "dev", "xe-u1"]);
    ip(&[
        "-n",
        b,
        "addr",
        "add",
        "fd00:192:2::2/64",
        "dev",
        "xe-u1",
        "nodad",
    ]);
    ip(&["-n", b, "link", "set", "xe-u1", "up"]);
    ip(&[
        "-n",
        a,
        "route",
        "add",
        "203.0.113.0/24",
        "via",
        "192.0.2.2",
    ]);
    ip(&[
        "-n",
        a,
        "-6",
        "route",
        "add",
        "2001:db8:113::/48",
        "via",
        "fd00:192:2::2",
    ]);
    ip(&["-n", b, "route", "add", "unreachable", "203.0.113.0/24"]);
    ip(&[
        "-n",
        b,
        "-6",
        "route",
        "add",
        "unreachable",
        "2001:db8:113::/48",
    ]);
    router
        .set_sysctl("net.ipv4.ip_forward", "1")
        .expect("forwarding");
    router
        .set_sysctl("net.ipv6.conf.all.forwarding", "1")
        .expect("IPv6 forwarding");
    router
}

const PROBES_OK: &str = "xen_exporter_collector_success{collector=\"probes\"} 1";
const PROBES_FAILING: &str = "xen_exporter_collector_success{collector=\"probes\"} 0";

#[test]
fn a_binding_no_target_uses_any_more_is_closed_and_its_failure_forgotten() {
    let head = "probes:\n  defaults:\n    interval: 50ms\n    timeout: 50ms\n  targets:\n\
                \x20   - {host: 198.19.0.2, protocol: icmp}\n";
    // 192.0.2.77 is no address of the namespace: a socket cannot be bound to it.
    let failing = "    - {host: 198.19.0.3, protocol: icmp, source_address: 192.0.2.77}\n";
    let Some(lab) = Lab::start(
        "probes_evict",
        Options::default().delay(Duration::from_millis(1)),
        &format!("{head}{failing}"),
        User::Root,
    ) else {
        return;
    };
    lab.wait_for("the failing binding", Duration::from_secs(20), |m| {
        m.errors("198.19.0.3", "socket") >= 1.0
            && m.responses("198.19.0.2") >= 1.0
            && m.has(PROBES_FAILING)
    });
    lab.reload(head);
    lab.wait_for(
        "success once the failing target is gone",
        Duration::from_secs(20),
        |m| m.has(PROBES_OK) && !m.has("target=\"198.19.0.3\""),
    );
    // Each reload probes loopback from another address of `lo`: a binding of its own, and
    // the previous round's binding is used by no target any more.
    let rounds = 8;
    let mut sockets = Vec::new();
    for round in 0..rounds {
        lab.reload(&format!(
            "{head}    - {{host: 127.0.0.1, name: lo{round}, protocol: icmp, source_address: 127.0.0.{}}}\n",
            round + 2
        ));
        let name = format!("lo{round}");
        lab.wait_for(&format!("round {round}"), Duration::from_secs(20), |m| {
            m.responses(&name) >= 2.0 && m.has(PROBES_OK)
        });
        // The default binding's thread and this round's; the last round's ends once its
        // requests in flight are answered or expired (one timeout).
        let threads = common::poll(Duration::from_secs(3), || {
            (lab.receive_threads() == 2).then_some(())
        });
        assert!(
            threads.is_some(),
            "round {round}: {} ICMP receive threads, want 2\n{}",
            lab.receive_threads(),
            lab.logs()
        );
        sockets.push(lab.sockets());
    }
    // Sockets do not pile up either (the first round is the baseline; HTTP connections of
    // the scrapes come and go, so the fewest seen after the others).
    let settled = common::poll(Duration::from_secs(3), || {
        (lab.sockets() <= sockets[0]).then_some(())
    });
    assert!(
        settled.is_some(),
        "sockets per round {sockets:?}, now {}",
        lab.sockets()
    );
}

#[test]
fn a_tcp_source_address_that_cannot_be_bound_is_logged_when_it_fails_and_when_it_works() {
    let config = "probes:\n  defaults:\n    interval: 20ms\n    timeout: 20ms\n  targets:\n\
                  \x20   - {host: 198.19.0.2, protocol: tcp, port: 80, source_address: 192.0.2.77}\n";
    let Some(lab) = Lab::start("probes_tcp_bind", Options::default(), config, User::Root) else {
        return;
    };
    let target = "198.19.0.2:80";
    lab.wait_for("50 failed probes", Duration::from_secs(20), |m| {
        m.errors(target, "other") >= 50.0
    });
    let lines = |level: &str| {
        lab.logs()
            .lines()
            .filter(|line| line.contains(&format!("level={level}")) && line.contains("TCP probe"))
            .count()
    };
    assert_eq!(
        lines("warn"),
        1,
        "one warning for 50 failures:\n{}",
        lab.logs()
    );
    // The address appears: the next probe binds, and the log says so once.
    let status = lab
        .netns
        .command("ip")
        .args(["addr", "add", "192.0.2.77/32", "dev", "lo"])
        .status()
        .expect("run ip");
    assert!(status.success());
    lab.wait_for(
        "answers from the new address",
        Duration::from_secs(20),
        |m| m.responses(target) >= 10.0,
    );
    assert_eq!(lines("warn"), 1, "{}", lab.logs());
    assert_eq!(
        lines("info"),
        1,
        "one line when it works again:\n{}",
        lab.logs()
    );
}

/// A socket's receive thread sleeps until something is due (a reply, a transmit stamp, a
/// request's deadline), not on a fixed tick: at one probe a second it wakes a few times a
/// second, where a 10 ms sweep tick woke it a hundred times (the Dom0's CPU at rest).
#[test]
fn the_receive_thread_wakes_for_work_not_on_a_tick() {
    let config = "probes:\n  defaults:\n    interval: 1s\n    timeout: 500ms\n  targets:\n\
                  \x20   - {host: 198.19.0.2, protocol: icmp}\n";
    let Some(lab) = Lab::start(
        "probes_wakeups",
        Options::default().delay(Duration::from_millis(1)),
        config,
        User::Root,
    ) else {
        return;
    };
    lab.wait_for("the first replies", Duration::from_secs(20), |m| {
        m.responses("198.19.0.2") >= 2.0
    });
    let before = lab.receive_thread_wakeups();
    let started = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let wakeups = lab.receive_thread_wakeups() - before;
    let seconds = started.elapsed().as_secs_f64();
    // Per probe: its transmit stamp, its reply, its deadline (to forget it); the IPv6
    // socket's thread idles at one wake-up a second; a few more for scrapes and slack.
    let most = (seconds * 8.0) as u64;
    assert!(
        wakeups <= most,
        "{wakeups} receive thread wake-ups in {seconds:.1} s at one probe a second (at most {most})"
    );
}
