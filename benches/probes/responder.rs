//! The simulated link, out of the measured processes: the benchmark binary re-executes itself
//! with [`RESPONDER_ARG`] inside the namespace and becomes an `xe-netsim`-style responder (same
//! `ready` / `stats` lines, so [`netsim::ResponderProcess`] drives it). This spares the bench a
//! build of the `xe-netsim` binary, which a `cargo bench` of this package does not make.
//! Simulated routers before the targets answer path traces' probes with time exceeded, and UDP
//! is answered with port unreachable, so a trace of any protocol reaches its target.

use std::net::IpAddr;
use std::time::Duration;

use netsim::{Options, Prefix, Responder};

/// First argument that turns the bench binary into the responder.
pub const RESPONDER_ARG: &str = "--probebench-responder";
/// The most simulated routers: 198.18.3.241 to .253, above the 1,000 targets (up to .233).
pub const MAX_ROUTERS: u8 = 13;

/// The simulated targets' prefix: the device takes `.1`, every other address answers.
pub fn prefix() -> Prefix {
    Prefix::new(IpAddr::from([198, 18, 0, 1]), 22).expect("a /22 is a valid IPv4 prefix")
}

/// The `count` target addresses, `198.18.0.2` onwards.
pub fn targets(count: usize) -> Vec<IpAddr> {
    let prefix = prefix();
    (2..2 + count as u128)
        .map(|index| prefix.nth(index).expect("target count fits the /22"))
        .collect()
}

/// The simulated routers in front of every target, nearest first: 198.18.3.241 onwards.
pub fn routers(count: u8) -> Vec<IpAddr> {
    (1..=count.min(MAX_ROUTERS))
        .map(|hop| IpAddr::from([198, 18, 3, 240 + hop]))
        .collect()
}

/// Runs the responder (args: delay in ms, number of routers) until SIGTERM, then prints its
/// counters.
pub fn run(args: &[String]) -> std::process::ExitCode {
    let delay_ms: f64 = args
        .first()
        .and_then(|text| text.parse().ok())
        .unwrap_or(25.0);
    let routers_count: u8 = args.get(1).and_then(|text| text.parse().ok()).unwrap_or(0);
    // Before any thread starts, so only the sigwait below receives them.
    if let Err(error) = netsim::block_termination_signals() {
        eprintln!("responder: cannot block signals: {error}");
        return std::process::ExitCode::FAILURE;
    }
    let options = Options::default()
        .dev("xeprobe0")
        .prefix4(Some(prefix()))
        .prefix6(None)
        .delay(Duration::from_secs_f64(delay_ms / 1e3))
        .routers(routers(routers_count))
        .udp_unreachable(true);
    let responder = match Responder::spawn(options) {
        Ok(responder) => responder,
        Err(error) => {
            eprintln!("responder: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!(
        "ready dev={} prefixes={} pid={}",
        responder.dev(),
        prefix(),
        std::process::id()
    );
    let _ = netsim::wait_termination();
    println!("stats {}", responder.stop());
    std::process::ExitCode::SUCCESS
}
