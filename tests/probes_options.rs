//! Per-target probe options against the real kernel: DSCP seen on the wire by the netsim
//! responder, Don't Fragment over a link of lower MTU, `family: both` on a name with an
//! address of each family, and targets from watched files. The exporter binary runs inside a
//! namespace each test creates; every number is read from its `/metrics` over HTTP.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Exporter;
use netsim::{Netns, Options, Responder};

/// A namespace, its responder and an exporter running inside it (killed by PID on drop).
struct Lab {
    exporter: Exporter,
    responder: Responder,
    netns: Netns,
    dir: tempfile::TempDir,
}

impl Lab {
    /// `prepare` runs on the namespace and the config's directory before the exporter starts;
    /// `{dir}` in `config` is that directory.
    fn start(
        test: &str,
        options: Options,
        config: &str,
        prepare: impl FnOnce(&Netns, &Path),
    ) -> Option<Lab> {
        Self::start_as(test, options, config, false, prepare)
    }

    /// As [`Lab::start`]; `unprivileged` runs the exporter as nobody without capabilities.
    fn start_as(
        test: &str,
        options: Options,
        config: &str,
        unprivileged: bool,
        prepare: impl FnOnce(&Netns, &Path),
    ) -> Option<Lab> {
        if !netsim::require_privileged(test) {
            return None;
        }
        let netns = Netns::for_test(test).expect("create namespace");
        let responder = Responder::spawn(options.netns(netns.name())).expect("start responder");
        let dir = common::temp_dir();
        prepare(&netns, dir.path());
        let config_path = dir.path().join("xen_exporter.yml");
        let config = config.replace("{dir}", &dir.path().display().to_string());
        std::fs::write(&config_path, config).expect("write config");
        let mut wrapper = vec!["ip", "netns", "exec", netns.name()];
        if unprivileged {
            // uid/gid 65534, no capabilities: ICMP over DGRAM (ping) sockets.
            netns.allow_ping_group().expect("ping_group_range");
            wrapper.extend([
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
            ]);
            set_mode(dir.path(), 0o755);
            set_mode(&config_path, 0o644);
        }
        let config = format!("--config.file={}", config_path.display());
        let exporter = Exporter::start_wrapped(&wrapper, &[&config], &[]);
        Some(Lab {
            exporter,
            responder,
            netns,
            dir,
        })
    }

    fn metrics(&self) -> String {
        let address = self.exporter.address;
        self.netns
            .run(move || common::http(address, "GET", "/metrics", &[]))
            .expect("enter namespace")
            .expect("HTTP request to the exporter")
            .text()
    }

    /// Waits until `condition` holds on a scrape; panics with the scrape and logs otherwise.
    fn wait_for(&self, what: &str, condition: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let metrics = self.metrics();
            if condition(&metrics) {
                return metrics;
            }
            if started.elapsed() > Duration::from_secs(30) {
                panic!(
                    "timed out waiting for {what}\n--- metrics ---\n{}\n--- logs ---\n{}",
                    latency_lines(&metrics),
                    self.exporter.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Writes `text` to `name` below the config's directory in one step (a rename), so the
    /// watcher never reads half a file.
    fn write(&self, name: &str, text: &str) {
        let staging = self.dir.path().join("staging.tmp");
        std::fs::write(&staging, text).expect("write target file");
        std::fs::rename(&staging, self.dir.path().join(name)).expect("rename target file");
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// The TOS byte / traffic class of the last request the responder saw for `address`.
    fn traffic_class(&self, address: &str) -> Option<u8> {
        self.responder
            .by_address()
            .get(&address.parse().expect("address"))
            .map(|counts| counts.traffic_class)
    }

    fn requests_seen(&self, address: &str) -> u64 {
        self.responder
            .by_address()
            .get(&address.parse().expect("address"))
            .map_or(0, |counts| counts.requests)
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The value of the sample of `metric` whose labels contain every one of `labels`; 0 if none.
fn value(metrics: &str, metric: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find(|line| {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            &line[..name_end] == metric && labels.iter().all(|label| line.contains(label))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

fn target(name: &str) -> String {
    format!("target=\"{name}\"")
}

fn responses(metrics: &str, name: &str) -> f64 {
    value(metrics, "latency_responses_total", &[&target(name)])
}

fn errors(metrics: &str, name: &str, reason: &str) -> f64 {
    let reason = format!("reason=\"{reason}\"");
    value(metrics, "latency_errors_total", &[&target(name), &reason])
}

/// The latency lines without histogram buckets (for failure messages).
fn latency_lines(metrics: &str) -> String {
    metrics
        .lines()
        .filter(|line| {
            (line.starts_with("latency_") && !line.contains("_bucket"))
                || line.starts_with("xen_exporter_target_files")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every probe leaves with its target's DSCP in the IPv4 TOS byte / IPv6 traffic class, ICMP
/// and TCP; a target without one sends 0 even though another target's socket of the same
/// family carries a DSCP.
#[test]
fn each_targets_dscp_is_on_the_wire() {
    let config = "probes:\n  defaults:\n    interval: 50ms\n    timeout: 50ms\n  targets:\n\
                  \x20   - {host: 198.19.0.2, protocol: icmp, dscp: 46}\n\
                  \x20   - {host: 'fd00:198:19::2', protocol: icmp, dscp: 10}\n\
                  \x20   - {host: 198.19.0.3, protocol: tcp, port: 80, dscp: 34}\n\
                  \x20   - {host: 'fd00:198:19::3', protocol: tcp, port: 80, dscp: 63}\n\
                  \x20   - {host: 198.19.0.4, protocol: icmp}\n\
                  \x20   - {host: 'fd00:198:19::4', protocol: tcp, port: 80}\n";
    let Some(lab) = Lab::start("opt_dscp", Options::default(), config, |_, _| {}) else {
        return;
    };
    let want = [
        ("198.19.0.2", "198.19.0.2", 46),
        ("fd00:198:19::2", "fd00:198:19::2", 10),
        ("198.19.0.3:80", "198.19.0.3", 34),
        ("[fd00:198:19::3]:80", "fd00:198:19::3", 63),
        ("198.19.0.4", "198.19.0.4", 0),
        ("[fd00:198:19::4]:80", "fd00:198:19::4", 0),
    ];
    lab.wait_for("replies from every target", |m| {
        want.iter().all(|(name, _, _)| responses(m, name) >= 5.0)
    });
    for (_, address, dscp) in want {
        assert_eq!(
            lab.traffic_class(address),
            Some(dscp << 2),
            "{address}: TOS / traffic class on the wire"
        );
    }
}

/// Over a link of MTU 1280 (the responder's TUN device), a Don't Fragment probe of 1400
/// bytes payload fails with reason `mtu` (the kernel refuses to send it: EMSGSIZE) and never
/// reaches the responder, while a small one to the next address is answered; IPv4 and IPv6.
#[test]
fn a_dont_fragment_probe_larger_than_the_mtu_fails_as_mtu_and_a_small_one_passes() {
    let config = "probes:\n  defaults:\n    interval: 50ms\n    timeout: 50ms\n    dont_fragment: true\n  targets:\n\
                  \x20   - {host: 198.19.0.2, protocol: icmp, payload_size: 1400}\n\
                  \x20   - {host: 198.19.0.3, protocol: icmp}\n\
                  \x20   - {host: 'fd00:198:19::2', protocol: icmp, payload_size: 1400}\n\
                  \x20   - {host: 'fd00:198:19::3', protocol: icmp}\n\
                  \x20   - {host: 198.19.0.4, protocol: icmp, payload_size: 1200}\n";
    let Some(lab) = Lab::start("opt_df", Options::default(), config, |netns, _| {
        let status = Command::new("ip")
            .args(["-n", netns.name(), "link", "set", "xesim0", "mtu", "1280"])
            .status()
            .expect("run ip");
        assert!(status.success(), "set the TUN device's MTU");
    }) else {
        return;
    };
    let metrics = lab.wait_for("mtu errors and replies", |m| {
        ["198.19.0.2", "fd00:198:19::2"]
            .iter()
            .all(|name| errors(m, name, "mtu") >= 10.0)
            && ["198.19.0.3", "fd00:198:19::3", "198.19.0.4"]
                .iter()
                .all(|name| responses(m, name) >= 10.0)
    });
    for big in ["198.19.0.2", "fd00:198:19::2"] {
        assert_eq!(responses(&metrics, big), 0.0, "{}", latency_lines(&metrics));
        assert_eq!(lab.requests_seen(big), 0, "{big}: a too-big DF probe left");
    }
    for small in ["198.19.0.3", "fd00:198:19::3", "198.19.0.4"] {
        assert_eq!(
            errors(&metrics, small, "mtu"),
            0.0,
            "{}",
            latency_lines(&metrics)
        );
    }
}

/// Through a router whose link toward the target has MTU 1280, a Don't Fragment probe of 1400
/// bytes payload is refused by the router ("fragmentation needed" / "packet too big", then the
/// path MTU the kernel learned from it) and counts as `mtu`, never answered; a small probe to
/// the same address is answered by the far namespace's kernel. IPv4 and IPv6.
#[test]
fn a_router_with_a_lower_mtu_fails_the_large_dont_fragment_probe_as_mtu() {
    router_with_a_lower_mtu("opt_pmtu", false);
}

/// The same over DGRAM (ping) sockets, which get the router's error on their error queue.
#[test]
fn over_dgram_sockets_a_router_with_a_lower_mtu_fails_the_large_probe_as_mtu() {
    router_with_a_lower_mtu("opt_pmtu_dgram", true);
}

fn router_with_a_lower_mtu(test: &str, unprivileged: bool) {
    let config = "probes:\n  defaults:\n    interval: 50ms\n    timeout: 50ms\n    dont_fragment: true\n  targets:\n\
                  \x20   - {host: 203.0.113.1, protocol: icmp, payload_size: 1400, name: big4}\n\
                  \x20   - {host: 203.0.113.1, protocol: icmp, name: small4}\n\
                  \x20   - {host: '2001:db8:113::1', protocol: icmp, payload_size: 1400, name: big6}\n\
                  \x20   - {host: '2001:db8:113::1', protocol: icmp, name: small6}\n";
    let mut namespaces = None;
    let Some(lab) = Lab::start_as(
        test,
        Options::default(),
        config,
        unprivileged,
        |netns, _| {
            namespaces = Some(narrow_router(netns));
        },
    ) else {
        return;
    };
    let metrics = lab.wait_for("mtu errors on the big probes, replies on the small", |m| {
        errors(m, "big4", "mtu") >= 10.0
            && errors(m, "big6", "mtu") >= 10.0
            && responses(m, "small4") >= 10.0
            && responses(m, "small6") >= 10.0
    });
    for big in ["big4", "big6"] {
        assert_eq!(responses(&metrics, big), 0.0, "{}", latency_lines(&metrics));
        // The first probe's failure is the router's ICMP error about it, matched to it: not
        // a timeout, not an unreachable.
        for other in ["timeout", "unreachable"] {
            assert_eq!(
                errors(&metrics, big, other),
                0.0,
                "{}",
                latency_lines(&metrics)
            );
        }
    }
    for small in ["small4", "small6"] {
        assert_eq!(
            errors(&metrics, small, "mtu"),
            0.0,
            "{}",
            latency_lines(&metrics)
        );
    }
    drop(lab);
    drop(namespaces);
}

/// Two namespaces behind the exporter's: a router (veth of MTU 1500 toward the exporter) and a
/// far host holding 203.0.113.1 and 2001:db8:113::1 behind a veth of MTU 1280.
fn narrow_router(netns: &Netns) -> (Netns, Netns) {
    let router = Netns::create(&format!("{}-r", netns.name())).expect("router namespace");
    let far = Netns::create(&format!("{}-f", netns.name())).expect("far namespace");
    let ip = |args: &[&str]| {
        let status = Command::new("ip").args(args).status().expect("run ip");
        assert!(status.success(), "ip {args:?}");
    };
    let (a, r, f) = (netns.name(), router.name(), far.name());
    ip(&[
        "-n", a, "link", "add", "xe-m0", "type", "veth", "peer", "name", "xe-m1", "netns", r,
    ]);
    ip(&[
        "-n", r, "link", "add", "xe-m2", "type", "veth", "peer", "name", "xe-m3", "netns", f,
    ]);
    for (ns, dev, v4, v6) in [
        (a, "xe-m0", "192.0.2.1/30", "fd00:192:2::1/64"),
        (r, "xe-m1", "192.0.2.2/30", "fd00:192:2::2/64"),
        (r, "xe-m2", "192.0.2.5/30", "fd00:192:3::1/64"),
        (f, "xe-m3", "192.0.2.6/30", "fd00:192:3::2/64"),
    ] {
        ip(&["-n", ns, "addr", "add", v4, "dev", dev]);
        ip(&["-n", ns, "addr", "add", v6, "dev", dev, "nodad"]);
        if dev == "xe-m2" || dev == "xe-m3" {
            ip(&["-n", ns, "link", "set", dev, "mtu", "1280"]);
        }
        ip(&["-n", ns, "link", "set", dev, "up"]);
    }
    ip(&["-n", f, "link", "set", "lo", "up"]);
    ip(&["-n", f, "addr", "add", "203.0.113.1/32", "dev", "lo"]);
    ip(&["-n", f, "addr", "add", "2001:db8:113::1/128", "dev", "lo"]);
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
    ip(&[
        "-n",
        r,
        "route",
        "add",
        "203.0.113.0/24",
        "via",
        "192.0.2.6",
    ]);
    ip(&[
        "-n",
        r,
        "-6",
        "route",
        "add",
        "2001:db8:113::/48",
        "via",
        "fd00:192:3::2",
    ]);
    ip(&["-n", f, "route", "add", "default", "via", "192.0.2.5"]);
    ip(&[
        "-n",
        f,
        "-6",
        "route",
        "add",
        "default",
        "via",
        "fd00:192:3::1",
    ]);
    router
        .set_sysctl("net.ipv4.ip_forward", "1")
        .expect("forwarding");
    router
        .set_sysctl("net.ipv6.conf.all.forwarding", "1")
        .expect("IPv6 forwarding");
    (router, far)
}

/// `family: both` on a name with an IPv4 and an IPv6 address (from the namespace's hosts file)
/// probes both, as two series told apart by `family`.
#[test]
fn family_both_probes_each_address_family_as_its_own_series() {
    let config = "probes:\n  defaults:\n    interval: 50ms\n    timeout: 50ms\n  targets:\n\
                  \x20   - {host: dual.probe.test, protocol: icmp, family: both}\n\
                  \x20   - {host: dual.probe.test, protocol: tcp, port: 80, family: both, name: dual}\n";
    let Some(lab) = Lab::start("opt_both", Options::default(), config, |netns, _| {
        netns
            .write_etc(
                "hosts",
                "127.0.0.1 localhost\n198.19.0.7 dual.probe.test\nfd00:198:19::7 dual.probe.test\n",
            )
            .expect("write hosts");
    }) else {
        return;
    };
    let series = |m: &str, name: &str, family: &str| {
        let family = format!("family=\"{family}\"");
        value(m, "latency_responses_total", &[&target(name), &family])
    };
    let metrics = lab.wait_for("replies over both families", |m| {
        ["dual.probe.test", "dual"]
            .iter()
            .all(|name| series(m, name, "ip4") >= 5.0 && series(m, name, "ip6") >= 5.0)
    });
    for address in ["198.19.0.7", "fd00:198:19::7"] {
        assert!(
            metrics.contains(&format!("address=\"{address}\"")),
            "{}",
            latency_lines(&metrics)
        );
    }
    assert!(lab.requests_seen("198.19.0.7") >= 10);
    assert!(lab.requests_seen("fd00:198:19::7") >= 10);
}

/// `probes.target_files`: a file appears (its targets start), another joins in JSON, the first
/// changes (a kept target keeps its series, a removed one's series go), breaks (its last good
/// targets stay, the reload gauge says 0 and the log names file, line and reason), is fixed,
/// and the second is removed (its targets and gauges go).
#[test]
fn target_files_are_added_changed_broken_fixed_and_removed() {
    let config = "probes:\n  defaults:\n    interval: 50ms\n    timeout: 50ms\n  target_files_interval: 100ms\n  target_files:\n\
                  \x20   - '{dir}/targets/*.yml'\n    - '{dir}/targets/*.json'\n  targets:\n\
                  \x20   - {host: 198.19.0.9, protocol: icmp}\n";
    let Some(lab) = Lab::start("opt_files", Options::default(), config, |_, dir| {
        std::fs::create_dir(dir.join("targets")).expect("mkdir");
    }) else {
        return;
    };
    let (a, b) = (lab.file("targets/a.yml"), lab.file("targets/b.json"));
    let reload = |file: &str, value: &str| {
        format!("xen_exporter_target_file_last_reload_successful{{file=\"{file}\"}} {value}")
    };
    lab.wait_for("the config's own target", |m| {
        responses(m, "198.19.0.9") >= 3.0
    });

    lab.write(
        "targets/a.yml",
        "- targets: [198.19.0.2, 'fd00:198:19::2']\n  labels: {org: A}\n",
    );
    lab.wait_for("a.yml's targets", |m| {
        responses(m, "198.19.0.2") >= 3.0
            && responses(m, "fd00:198:19::2") >= 3.0
            && m.contains(&reload(&a, "1"))
            && m.contains("org=\"A\"")
    });

    lab.write(
        "targets/b.json",
        r#"[{"targets": ["198.19.0.3:80"], "labels": {"__protocol": "tcp"}}]"#,
    );
    lab.wait_for("b.json's target", |m| {
        responses(m, "198.19.0.3:80") >= 3.0 && m.contains(&reload(&b, "1"))
    });

    let before = value(
        &lab.metrics(),
        "latency_requests_total",
        &[&target("198.19.0.2")],
    );
    lab.write(
        "targets/a.yml",
        "- targets: [198.19.0.2, 198.19.0.4]\n  labels: {org: A}\n",
    );
    let changed = lab.wait_for("a.yml changed", |m| {
        responses(m, "198.19.0.4") >= 3.0 && !m.contains("target=\"fd00:198:19::2\"")
    });
    assert!(
        value(&changed, "latency_requests_total", &[&target("198.19.0.2")]) > before,
        "the kept target keeps its series\n{}",
        latency_lines(&changed)
    );

    lab.write(
        "targets/a.yml",
        "- targets: [198.19.0.4, 198.19.0.5]\n  labels: {__protcol: tcp}\n",
    );
    let broken = lab.wait_for("a.yml broken", |m| m.contains(&reload(&a, "0")));
    let kept = responses(&broken, "198.19.0.4");
    lab.wait_for("a.yml's last good targets still probed", |m| {
        responses(m, "198.19.0.4") >= kept + 3.0 && responses(m, "198.19.0.2") > 0.0
    });
    assert!(!broken.contains("target=\"198.19.0.5\""));
    let logs = lab.exporter.logs();
    assert!(
        logs.contains("a.yml:1: target") && logs.contains("unknown setting label"),
        "{logs}"
    );

    lab.write("targets/a.yml", "- targets: [198.19.0.5]\n");
    lab.wait_for("a.yml fixed", |m| {
        m.contains(&reload(&a, "1"))
            && responses(m, "198.19.0.5") >= 3.0
            && !m.contains("target=\"198.19.0.4\"")
            && !m.contains("target=\"198.19.0.2\"")
    });

    // A reload gives the config a target of a.yml's name (other settings, same series): the
    // config's wins, a.yml fails and gives it up, and only one task probes it (20 a second at
    // 50 ms, not 40).
    let config_path = lab.dir.path().join("xen_exporter.yml");
    let mut config = std::fs::read_to_string(&config_path).expect("read config");
    config.push_str("    - {host: 198.19.0.5, protocol: icmp, payload_size: 100}\n");
    std::fs::write(&config_path, config).expect("rewrite config");
    lab.exporter.signal("HUP");
    let taken = lab.wait_for("a.yml's name taken by the config", |m| {
        m.contains(&reload(&a, "0"))
    });
    let logs = lab.exporter.logs();
    assert!(
        logs.contains("is already defined in the config file"),
        "{logs}"
    );
    let started = Instant::now();
    let before = value(&taken, "latency_requests_total", &[&target("198.19.0.5")]);
    std::thread::sleep(Duration::from_secs(2));
    let after = value(
        &lab.metrics(),
        "latency_requests_total",
        &[&target("198.19.0.5")],
    );
    let expected = started.elapsed().as_secs_f64() / 0.05;
    assert!(
        after - before <= expected + 5.0,
        "{} requests in {expected} intervals: two tasks probe one name",
        after - before
    );

    std::fs::remove_file(lab.dir.path().join("targets/b.json")).expect("remove b.json");
    let removed = lab.wait_for("b.json removed", |m| {
        !m.contains("target=\"198.19.0.3:80\"") && !m.contains(&format!("file=\"{b}\""))
    });
    // The config's own target ran through all of it.
    assert!(
        responses(&removed, "198.19.0.9") >= 20.0,
        "{}",
        latency_lines(&removed)
    );
}
