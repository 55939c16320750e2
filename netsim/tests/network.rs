//! The simulator against real kernel tools: iputils `ping` and std TCP sockets, each test in its
//! own namespace (or on the host with a route only to its own TUN prefix).

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use netsim::{Impairment, JitterDist, Netns, Options, Responder, ResponderProcess};

/// What iputils `ping` reports.
struct PingSummary {
    transmitted: u32,
    received: u32,
    min_ms: f64,
    avg_ms: f64,
    /// Each reply's RTT as ping printed it (0.01 ms resolution below 10 ms, 0.1 ms below 100).
    times_ms: Vec<f64>,
}

impl std::fmt::Debug for PingSummary {
    /// The counts and the RTT distribution's shape; the replies themselves would drown a
    /// failure message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut sorted = self.times_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| {
            sorted
                .get(((sorted.len().max(1) - 1) as f64 * q).round() as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        write!(
            f,
            "ping: {} sent, {} received; RTT ms min {} p25 {} median {} p75 {} p99 {} max {}, mean {}",
            self.transmitted,
            self.received,
            self.min_ms,
            at(0.25),
            at(0.5),
            at(0.75),
            at(0.99),
            at(1.0),
            self.avg_ms
        )
    }
}

impl PingSummary {
    fn loss(&self) -> f64 {
        1.0 - f64::from(self.received) / f64::from(self.transmitted)
    }

    fn quantile(&self, q: f64) -> f64 {
        let mut sorted = self.times_ms.clone();
        sorted.sort_by(f64::total_cmp);
        assert!(!sorted.is_empty(), "no replies: {self:?}");
        sorted[((sorted.len() - 1) as f64 * q).round() as usize]
    }

    /// The median RTT: unlike the mean, one reply that a loaded machine delayed cannot move it.
    fn median(&self) -> f64 {
        self.quantile(0.5)
    }

    /// The interquartile range, the spread measure that outliers do not move: J for uniform
    /// +-J, 1.349 sigma for a normal distribution.
    fn iqr(&self) -> f64 {
        self.quantile(0.75) - self.quantile(0.25)
    }
}

fn parse_ping(output: &str) -> Option<PingSummary> {
    let counts = output
        .lines()
        .find(|line| line.contains("packets transmitted"))?;
    let mut words = counts.split_whitespace();
    let transmitted = words.next()?.parse().ok()?;
    let received = words.nth(2)?.parse().ok()?;
    let Some(rtt) = output
        .lines()
        .find(|line| line.starts_with("rtt ") || line.starts_with("round-trip"))
    else {
        // Every request lost: ping prints no rtt line.
        return Some(PingSummary {
            transmitted,
            received,
            min_ms: f64::NAN,
            avg_ms: f64::NAN,
            times_ms: Vec::new(),
        });
    };
    let values: Vec<f64> = rtt
        .split('=')
        .nth(1)?
        .split_whitespace()
        .next()?
        .split('/')
        .filter_map(|value| value.parse().ok())
        .collect();
    Some(PingSummary {
        transmitted,
        received,
        min_ms: *values.first()?,
        avg_ms: *values.get(1)?,
        times_ms: output
            .lines()
            .filter_map(|line| {
                line.split_once("time=")?
                    .1
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .collect(),
    })
}

/// Runs `ping` (2 ms apart, every reply listed) inside `netns` until `count` replies arrived (or 10 s
/// passed). With `-w`, ping keeps sending until it has `count` replies, so loss is
/// `received / transmitted`; without it ping gives up two RTTs after the last send and would
/// count a reply that the loaded machine delayed as lost.
fn ping(netns: &Netns, target: &str, count: u32) -> PingSummary {
    let output = netns
        .command("ping")
        .args([
            "-n",
            "-i",
            "0.002",
            "-w",
            "10",
            "-c",
            &count.to_string(),
            target,
        ])
        .output()
        .expect("run ping (install iputils-ping)");
    let text = String::from_utf8_lossy(&output.stdout);
    parse_ping(&text).unwrap_or_else(|| {
        panic!(
            "no ping summary: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn setup(test: &str, options: Options) -> Option<(Netns, Responder)> {
    if !netsim::require_privileged(test) {
        return None;
    }
    let netns = Netns::for_test(test).expect("create namespace");
    let responder = Responder::spawn(options.netns(netns.name())).expect("start responder");
    Some((netns, responder))
}

#[test]
fn injected_delay_is_a_floor_and_the_mean_stays_close() {
    let Some((netns, responder)) = setup(
        "netsim_delay",
        Options::default().delay(Duration::from_millis(25)),
    ) else {
        return;
    };
    let summary = ping(&netns, "198.19.0.2", 300);
    let stats = responder.stop();
    eprintln!("{summary:?}\n{stats}");
    // With -w, ping stops once `count` replies are in; one more may land before it exits.
    assert!(summary.received >= 300, "{summary:?}");
    assert!(
        summary.min_ms >= 25.0,
        "min below the injected delay: {summary:?}"
    );
    assert!(
        summary.median() <= 25.5,
        "median more than 0.5 ms late: {summary:?}"
    );
    // The mean may carry a few replies the loaded machine delayed, but not many.
    assert!(
        summary.avg_ms <= 26.0,
        "mean more than 1 ms late: {summary:?}"
    );
    assert_eq!(
        u64::from(summary.transmitted),
        stats.echo_requests,
        "{stats}"
    );
    assert_eq!(stats.answered, stats.echo_requests, "{stats}");
}

#[test]
fn injected_loss_is_reproduced_within_four_points() {
    let Some((netns, responder)) = setup("netsim_loss", Options::default().loss(0.2).seed(11))
    else {
        return;
    };
    let summary = ping(&netns, "198.19.0.9", 500);
    let stats = responder.stop();
    eprintln!("{summary:?}\n{stats}");
    assert!(summary.transmitted >= 500, "{summary:?}");
    assert!((summary.loss() - 0.2).abs() <= 0.04, "{summary:?}");
    assert_eq!(
        u64::from(summary.transmitted),
        stats.echo_requests,
        "{stats}"
    );
    assert_eq!(
        stats.dropped + stats.answered,
        stats.echo_requests,
        "{stats}"
    );
}

#[test]
fn uniform_jitter_has_the_distributions_spread() {
    let Some((netns, responder)) = setup(
        "netsim_jitter",
        Options::default()
            .delay(Duration::from_millis(10))
            .jitter(Duration::from_millis(5), JitterDist::Uniform),
    ) else {
        return;
    };
    let summary = ping(&netns, "198.19.0.4", 500);
    drop(responder);
    // Uniform +-5 ms: the interquartile range is 5 ms (and the standard deviation 2.887 ms).
    assert!((summary.iqr() - 5.0).abs() < 0.25 * 5.0, "{summary:?}");
    assert!(summary.min_ms >= 5.0, "{summary:?}");
    assert!((summary.median() - 10.0).abs() < 0.6, "{summary:?}");
}

#[test]
fn per_target_overrides_apply_only_to_their_address() {
    let Some((netns, responder)) = setup(
        "netsim_targets",
        Options::default().delay(Duration::from_millis(2)).target(
            "198.19.0.3".parse().expect("ip"),
            Impairment::delay(Duration::from_millis(40)),
        ),
    ) else {
        return;
    };
    let slow = ping(&netns, "198.19.0.3", 50);
    let fast = ping(&netns, "198.19.0.5", 50);
    assert!(slow.min_ms >= 40.0 && slow.median() < 40.5, "{slow:?}");
    assert!(fast.min_ms >= 2.0 && fast.median() < 2.5, "{fast:?}");
    let by_address = responder.by_address();
    let requests = |address: &str| {
        by_address
            .get(&address.parse().expect("ip"))
            .map(|counts| counts.requests)
    };
    assert_eq!(requests("198.19.0.3"), Some(u64::from(slow.transmitted)));
    assert_eq!(requests("198.19.0.5"), Some(u64::from(fast.transmitted)));
    assert_eq!(by_address.len(), 2, "{by_address:?}");
}

/// An impairment set while the responder runs applies from then on, to its address only.
#[test]
fn an_impairment_set_while_running_applies_from_then_on() {
    let Some((netns, responder)) = setup("netsim_impair", Options::default()) else {
        return;
    };
    let before = ping(&netns, "198.19.0.3", 20);
    assert!(before.median() < 5.0, "{before:?}");
    responder.impair(
        "198.19.0.3".parse().expect("ip"),
        Impairment::delay(Duration::from_millis(40)),
    );
    let slow = ping(&netns, "198.19.0.3", 20);
    let other = ping(&netns, "198.19.0.5", 20);
    assert!(slow.min_ms >= 40.0, "{slow:?}");
    assert!(other.median() < 5.0, "{other:?}");
}

#[test]
fn ipv6_echo_is_answered_with_the_configured_hop_limit() {
    let Some((netns, responder)) = setup(
        "netsim_ipv6",
        Options::default().delay(Duration::from_millis(5)).ttl(42),
    ) else {
        return;
    };
    let summary = ping(&netns, "fd00:198:19::7", 100);
    assert!(summary.received >= 100, "{summary:?}");
    assert!(
        summary.min_ms >= 5.0 && summary.median() < 5.5,
        "{summary:?}"
    );
    // One verbose ping shows the hop limit the reply carried.
    let output = netns
        .command("ping")
        .args(["-n", "-c", "1", "-W", "1", "fd00:198:19::7"])
        .output()
        .expect("run ping");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("ttl=42"), "{text}");
    assert_eq!(
        responder.stats().echo_requests,
        u64::from(summary.transmitted) + 1
    );
}

#[test]
fn tcp_open_closed_and_silent_ports_behave_like_real_hosts() {
    let Some((netns, responder)) = setup(
        "netsim_tcp",
        Options::default()
            .delay(Duration::from_millis(20))
            .closed_port(81)
            .silent_port(82),
    ) else {
        return;
    };
    let connect = |address: &str| {
        let address: SocketAddr = address.parse().expect("socket address");
        netns
            .run(move || {
                let started = std::time::Instant::now();
                let result = TcpStream::connect_timeout(&address, Duration::from_millis(300));
                (result.map(drop), started.elapsed())
            })
            .expect("enter namespace")
    };
    let (open, open_time) = connect("198.19.0.2:80");
    assert!(open.is_ok(), "open port: {open:?}");
    assert!(open_time >= Duration::from_millis(20), "{open_time:?}");
    let (closed, closed_time) = connect("198.19.0.2:81");
    assert_eq!(
        closed.expect_err("closed port").kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    assert!(closed_time >= Duration::from_millis(20), "{closed_time:?}");
    let (silent, _) = connect("198.19.0.2:82");
    assert_eq!(
        silent.expect_err("silent port").kind(),
        std::io::ErrorKind::TimedOut
    );
    let (open6, _) = connect("[fd00:198:19::2]:443");
    assert!(open6.is_ok(), "open port over IPv6: {open6:?}");
    // Data after the handshake is answered with RST: the next read fails with a reset.
    let address: SocketAddr = "198.19.0.2:8080".parse().expect("socket address");
    let reset = netns
        .run(move || -> std::io::Result<usize> {
            use std::io::{Read, Write};
            let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
            stream.set_read_timeout(Some(Duration::from_secs(2)))?;
            stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            stream.read(&mut [0u8; 64])
        })
        .expect("enter namespace");
    assert_eq!(
        reset.expect_err("reset after data").kind(),
        std::io::ErrorKind::ConnectionReset
    );
    let stats = responder.stats();
    // One SYN for each of open, closed, IPv6 and data; the silent port's SYN is retransmitted.
    assert_eq!(stats.silent, stats.syns - 4, "{stats}");
    assert!(stats.resets >= 2, "{stats}");
}

#[test]
fn routers_answer_time_exceeded_and_udp_gets_port_unreachable() {
    let routers: Vec<IpAddr> = ["198.19.0.250", "198.19.0.251", "fd00:198:19::fa"]
        .iter()
        .map(|text| text.parse().expect("address"))
        .collect();
    let Some((netns, responder)) = setup(
        "netsim_routers",
        Options::default()
            .delay(Duration::from_millis(10))
            .routers(routers)
            .udp_unreachable(true),
    ) else {
        return;
    };
    let ping = |args: &[&str]| {
        let output = netns
            .command("ping")
            .args(["-n", "-c", "1", "-W", "2"])
            .args(args)
            .output()
            .expect("run ping");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    // TTL 2 runs out at the second IPv4 router, TTL 3 reaches the target behind both.
    let text = ping(&["-t", "2", "198.19.0.2"]);
    assert!(
        text.contains("From 198.19.0.251") && text.contains("Time to live exceeded"),
        "{text}"
    );
    let text = ping(&["-t", "3", "198.19.0.2"]);
    assert!(text.contains("1 received"), "{text}");
    // IPv6 has one router: hop limit 1 ends there.
    let text = ping(&["-t", "1", "fd00:198:19::7"]);
    assert!(text.contains("From fd00:198:19::fa"), "{text}");
    assert!(ping(&["-t", "2", "fd00:198:19::7"]).contains("1 received"));
    // A datagram to a target comes back as port unreachable: the next receive is refused.
    let refused = netns
        .run(|| -> std::io::Result<usize> {
            let socket = std::net::UdpSocket::bind("0.0.0.0:0")?;
            socket.connect("198.19.0.2:33434")?;
            socket.set_read_timeout(Some(Duration::from_secs(2)))?;
            socket.send(b"trace")?;
            socket.recv(&mut [0u8; 16])
        })
        .expect("enter namespace");
    assert_eq!(
        refused.expect_err("port unreachable").kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    let stats = responder.stats();
    assert_eq!(
        (stats.time_exceeded, stats.port_unreachable),
        (2, 1),
        "{stats}"
    );
    assert_eq!(
        stats.echo_requests, 2,
        "only the echoes that reached a target: {stats}"
    );
}

#[test]
fn host_placement_routes_only_the_tun_prefix() {
    if !netsim::require_privileged("netsim_host") {
        return;
    }
    // A /24 of 198.18.0.0/15 and a device name no one else on this host uses.
    let options = Options::default().on_host().delay(Duration::from_millis(3));
    let prefix4 = options.prefix4.expect("IPv4 prefix");
    let prefix6 = options.prefix6.expect("IPv6 prefix");
    let responder = Responder::spawn(options).expect("start responder on the host");
    let dev = responder.dev().to_owned();
    let routes = Command::new("ip")
        .args(["-4", "route", "show", "dev", &dev])
        .output()
        .expect("ip route");
    let routes = String::from_utf8_lossy(&routes.stdout);
    assert_eq!(routes.lines().count(), 1, "{routes}");
    let network = prefix4.nth(0).expect("network address");
    assert!(routes.starts_with(&format!("{network}/24 ")), "{routes}");
    for target in [prefix4.nth(77), prefix6.nth(77)] {
        let target = target.expect("address in prefix").to_string();
        let output = Command::new("ping")
            .args(["-q", "-n", "-i", "0.002", "-w", "10", "-c", "20", &target])
            .output()
            .expect("ping");
        let summary = parse_ping(&String::from_utf8_lossy(&output.stdout)).expect("summary");
        assert!(summary.received >= 20, "{target}: {summary:?}");
        assert!(summary.min_ms >= 3.0, "{target}: {summary:?}");
    }
    drop(responder);
    let link = Command::new("ip")
        .args(["link", "show", "dev", &dev])
        .output()
        .expect("ip link");
    assert!(!link.status.success(), "device {dev} survived the guard");
}

#[test]
fn normal_jitter_has_the_configured_standard_deviation() {
    let Some((netns, _responder)) = setup(
        "netsim_normal",
        Options::default()
            .delay(Duration::from_millis(20))
            .jitter(Duration::from_millis(3), JitterDist::Normal)
            .seed(3),
    ) else {
        return;
    };
    let summary = ping(&netns, "198.19.0.6", 500);
    // Normal sigma 3 ms: the interquartile range is 1.349 sigma.
    let sigma = summary.iqr() / 1.349;
    assert!(
        (sigma - 3.0).abs() < 0.25 * 3.0,
        "sigma {sigma}: {summary:?}"
    );
    assert!((summary.median() - 20.0).abs() < 0.6, "{summary:?}");
}

#[test]
fn binary_documents_its_flags() {
    let output = Command::new(env!("CARGO_BIN_EXE_xe-netsim"))
        .arg("--help")
        .output()
        .expect("run xe-netsim");
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--dev",
        "--prefix4",
        "--prefix6",
        "--delay-ms",
        "--jitter-ms",
        "--jitter-dist",
        "--loss",
        "--target",
        "--closed-ports",
        "--silent-ports",
        "--seed",
        "--netns",
        "--ttl",
        "--routers",
        "--udp-unreachable",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_xe-netsim"))
        .args(["--target", "198.19.0.3:50:0:2"])
        .output()
        .expect("run xe-netsim");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("loss: \"2\" must be between 0 and 1"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn a_child_that_cannot_start_reports_its_stderr() {
    let error = ResponderProcess::spawn(
        std::path::Path::new(env!("CARGO_BIN_EXE_xe-netsim")),
        None,
        &["--jitter-dist", "pareto"],
    )
    .err()
    .expect("bad flag");
    let text = error.to_string();
    assert!(text.contains("no ready line"), "{text}");
    assert!(text.contains("pareto"), "{text}");
}

#[test]
fn binary_in_a_namespace_answers_and_reports_counters_on_sigterm() {
    if !netsim::require_privileged("netsim_binary") {
        return;
    }
    let netns = Netns::for_test("netsim_binary").expect("create namespace");
    let child = ResponderProcess::spawn(
        std::path::Path::new(env!("CARGO_BIN_EXE_xe-netsim")),
        Some(&netns),
        &[
            "--delay-ms",
            "4",
            "--target",
            "198.19.0.8:0:0:1",
            "--seed",
            "5",
        ],
    )
    .expect("start xe-netsim");
    let summary = ping(&netns, "198.19.0.2", 30);
    assert!(summary.min_ms >= 4.0, "{summary:?}");
    // Every request to .8 is lost; -W bounds the wait for the missing replies.
    let lost = netns
        .command("ping")
        .args([
            "-q",
            "-n",
            "-i",
            "0.002",
            "-W",
            "0.3",
            "-c",
            "5",
            "198.19.0.8",
        ])
        .output()
        .expect("run ping");
    let lost = parse_ping(&String::from_utf8_lossy(&lost.stdout)).expect("ping summary");
    assert_eq!((lost.transmitted, lost.received), (5, 0));
    let stats = child.stop().expect("stats line");
    assert!(
        stats.contains(&format!("echo_requests={} ", summary.transmitted + 5))
            && stats.contains(&format!("answered={} ", summary.transmitted))
            && stats.contains("dropped=5 "),
        "{stats}"
    );
}

#[test]
fn ping_group_range_can_be_opened_per_namespace() {
    if !netsim::require_privileged("netsim_sysctl") {
        return;
    }
    let netns = Netns::for_test("netsim_sysctl").expect("create namespace");
    netns.allow_ping_group().expect("set sysctl");
    let value = netns
        .run(|| std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range"))
        .expect("enter namespace")
        .expect("read sysctl");
    let fields: Vec<&str> = value.split_whitespace().collect();
    assert_eq!(fields, ["0", "2147483647"]);
}

#[test]
fn a_device_name_the_kernel_cannot_take_is_refused_with_the_name() {
    let error = Responder::spawn(Options::default().dev("xe-name-too-long-for-linux"))
        .err()
        .expect("name longer than 15 bytes");
    assert_eq!(
        error.to_string(),
        "cannot create TUN device \"xe-name-too-long-for-linux\": device name \"xe-name-too-long-for-linux\" must have 1 to 15 bytes"
    );
}

#[test]
fn per_namespace_hosts_file_is_seen_by_commands_and_follows_rewrites() {
    if !netsim::require_privileged("netsim_hosts") {
        return;
    }
    let netns = Netns::for_test("netsim_hosts").expect("create namespace");
    let resolve = || {
        let output = netns
            .command("getent")
            .args(["hosts", "target.netsim.test"])
            .output()
            .expect("run getent");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    netns
        .write_etc("hosts", "198.19.0.9 target.netsim.test\n")
        .expect("write hosts");
    assert!(resolve().starts_with("198.19.0.9 "), "{}", resolve());
    netns
        .write_etc("hosts", "198.19.0.10 target.netsim.test\n")
        .expect("rewrite hosts");
    assert!(resolve().starts_with("198.19.0.10 "), "{}", resolve());
    let etc = std::path::PathBuf::from("/etc/netns").join(netns.name());
    drop(netns);
    assert!(!etc.exists(), "{} survived the guard", etc.display());
}
