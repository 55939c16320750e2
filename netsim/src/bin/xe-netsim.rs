//! xe-netsim: runs the impaired-link simulator until SIGTERM/SIGINT, then prints its counters.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use netsim::impair::{parse_millis, parse_probability};
use netsim::timer::Tuning;
use netsim::{JitterDist, Options, Prefix, Responder, TargetSpec};

/// Impaired-link simulator: a TUN device whose userspace side answers ICMP echo (v4 and v6)
/// and TCP SYN for every other address of its prefixes, after a delay with jitter and loss.
///
/// SYN gets SYN-ACK (RST-ACK on --closed-ports, nothing on --silent-ports); FIN or data gets
/// an immediate RST. With --routers, a request whose TTL / hop limit runs out before the target
/// gets ICMP time exceeded from the router at that hop (what a traceroute sees); with
/// --udp-unreachable, UDP gets port unreachable from the target. Prints "ready dev=..." on stdout once the prefixes are routed, and the
/// counters on SIGTERM or SIGINT. The device disappears when the process exits.
///
/// Example: ip netns exec NS xe-netsim --delay-ms 25 --jitter-ms 5 --loss 0.1 --seed 3
#[derive(Debug, Parser)]
#[command(name = "xe-netsim", version)]
struct Cli {
    /// TUN device name (at most 15 bytes)
    #[arg(long, default_value = "xesim0")]
    dev: String,
    /// IPv4 address/length of the device; every other address in it answers ("none" disables)
    #[arg(long, default_value = "198.19.0.1/24", value_parser = parse_prefix)]
    prefix4: PrefixArg,
    /// IPv6 address/length of the device ("none" disables)
    #[arg(long, default_value = "fd00:198:19::1/64", value_parser = parse_prefix)]
    prefix6: PrefixArg,
    /// Delay added before each answer, in milliseconds (fractions allowed)
    #[arg(long, default_value = "0", value_parser = parse_millis)]
    delay_ms: Duration,
    /// Jitter in milliseconds: half-width (uniform) or standard deviation (normal)
    #[arg(long, default_value = "0", value_parser = parse_millis)]
    jitter_ms: Duration,
    /// Jitter distribution
    #[arg(long, value_enum, default_value_t = JitterDist::Uniform)]
    jitter_dist: JitterDist,
    /// Probability (0 to 1) that a request is dropped unanswered
    #[arg(long, default_value = "0", value_parser = parse_probability)]
    loss: f64,
    /// Per-address override ADDR:DELAY_MS:JITTER_MS:LOSS (repeatable), e.g. 198.19.0.3:50:0:0.1
    #[arg(long = "target", value_name = "ADDR:DELAY:JITTER:LOSS")]
    targets: Vec<TargetSpec>,
    /// TCP ports that refuse connections (RST-ACK after the delay), comma separated
    #[arg(long, value_delimiter = ',')]
    closed_ports: Vec<u16>,
    /// TCP ports that never answer a SYN (the connect times out), comma separated
    #[arg(long, value_delimiter = ',')]
    silent_ports: Vec<u16>,
    /// Simulated routers before every target, nearest first, comma separated: a request with
    /// TTL / hop limit i gets ICMP time exceeded from the i-th router of its family
    #[arg(long, value_delimiter = ',')]
    routers: Vec<std::net::IpAddr>,
    /// Answer UDP datagrams with ICMP port unreachable (a UDP traceroute's end)
    #[arg(long)]
    udp_unreachable: bool,
    /// Seed for loss, jitter and TCP sequence numbers (same seed, same run)
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// TTL / hop limit of answers
    #[arg(long, default_value_t = 64)]
    ttl: u8,
    /// Create the device inside this existing network namespace (from `ip netns add`)
    #[arg(long)]
    netns: Option<String>,
    /// Do not move the reader and timer threads to SCHED_FIFO (they are by default, if allowed)
    #[arg(long)]
    no_realtime: bool,
    /// Busy-wait this many microseconds before each deadline instead of sleeping (0 disables)
    #[arg(long, default_value_t = 50)]
    spin_us: u64,
}

/// A prefix flag that can also be "none".
#[derive(Debug, Clone, Copy)]
struct PrefixArg(Option<Prefix>);

fn parse_prefix(text: &str) -> Result<PrefixArg, String> {
    if text == "none" {
        return Ok(PrefixArg(None));
    }
    text.parse()
        .map(|prefix| PrefixArg(Some(prefix)))
        .map_err(|error: netsim::prefix::PrefixError| error.to_string())
}

impl Cli {
    fn options(self) -> Options {
        let mut options = Options::default()
            .dev(&self.dev)
            .prefix4(self.prefix4.0)
            .prefix6(self.prefix6.0)
            .delay(self.delay_ms)
            .jitter(self.jitter_ms, self.jitter_dist)
            .loss(self.loss)
            .seed(self.seed)
            .ttl(self.ttl)
            .routers(self.routers)
            .udp_unreachable(self.udp_unreachable);
        for spec in self.targets {
            options = options.target_spec(spec);
        }
        for port in self.closed_ports {
            options = options.closed_port(port);
        }
        for port in self.silent_ports {
            options = options.silent_port(port);
        }
        options.netns = self.netns;
        options.tuning = Tuning {
            realtime: !self.no_realtime,
            spin: Duration::from_micros(self.spin_us),
        };
        options
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Blocked before any thread starts, so only the sigwait below ever receives them.
    if let Err(error) = netsim::block_termination_signals() {
        eprintln!("xe-netsim: cannot block signals: {error}");
        return ExitCode::FAILURE;
    }
    let options = cli.options();
    let prefixes: Vec<String> = [options.prefix4, options.prefix6]
        .iter()
        .flatten()
        .map(Prefix::to_string)
        .collect();
    let responder = match Responder::spawn(options) {
        Ok(responder) => responder,
        Err(error) => {
            eprintln!("xe-netsim: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "ready dev={} prefixes={} pid={}",
        responder.dev(),
        prefixes.join(","),
        std::process::id()
    );
    let signal = netsim::wait_termination();
    let stats = responder.stop();
    println!("stats {stats}");
    match signal {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xe-netsim: sigwait: {error}");
            ExitCode::FAILURE
        }
    }
}
