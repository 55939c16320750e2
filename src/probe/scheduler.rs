//! Timing: each target runs on its own ticker, phase-shifted by a hash of its name so that sends
//! spread over the interval instead of bursting. A target's task only sends (ICMP) or awaits its
//! own connect (TCP, bounded by its timeout ≤ interval), so a slow or dead target never delays
//! another.

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::icmp::{Binding, IcmpPool, Lease};
use super::metrics::{Reason, TargetSeries};
use super::packet_options::PacketOptions;
use super::resolve::CurrentAddress;
use super::tcp;
use crate::config::probes::{Protocol, Target};

/// Where in its interval a target sends: a stable hash of its name and protocol, so restarts
/// and reloads keep the spread.
pub fn phase(target: &Target) -> Duration {
    phase_in(target, target.interval)
}

/// The same spread within another `interval` (a target's traces).
pub fn phase_in(target: &Target, interval: Duration) -> Duration {
    // SipHash with fixed keys: the same on every run (unlike RandomState).
    #[allow(deprecated)]
    let mut hasher = std::hash::SipHasher::new();
    target.name.hash(&mut hasher);
    target.protocol.hash(&mut hasher);
    let interval = interval.as_nanos().max(1);
    let offset = u128::from(hasher.finish()) % interval;
    Duration::from_nanos(u64::try_from(offset).unwrap_or(0))
}

/// Probes `target` every interval until `cancel`. An ICMP target holds a lease on the socket of
/// its binding while it runs (`lease`: taken already when the address was known at start), so
/// the socket closes when no target uses it.
pub async fn run(
    target: Target,
    series: Arc<TargetSeries>,
    address: Arc<CurrentAddress>,
    icmp: Arc<IcmpPool>,
    mut lease: Option<Lease>,
    cancel: CancellationToken,
) {
    let mut tcp_setup = tcp::SetupLog::new(&target.name);
    let mut ticker = tokio::time::interval_at(Instant::now() + phase(&target), target.interval);
    // A late tick (busy machine) still fires; only whole missed intervals are skipped.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        series.sent();
        let Some(ip) = address.get() else {
            series.failed(Reason::Resolve);
            continue;
        };
        match target.protocol {
            Protocol::Icmp => {
                let binding = Binding {
                    v6: ip.is_ipv6(),
                    source: target.source_address,
                    interface: target.interface.clone(),
                    options: PacketOptions::of(&target),
                };
                // A new address family (the host name moved) is a new binding: the old lease
                // ends after the new one is taken, so a socket both share stays open.
                let lease = match lease.take() {
                    Some(current) if *current.binding() == binding => lease.insert(current),
                    _ => lease.insert(icmp.lease(binding)),
                };
                let result = lease
                    .socket()
                    .map_err(|_| Reason::Socket)
                    .and_then(|socket| {
                        socket.send(ip, target.payload_size, target.timeout, &series)
                    });
                if let Err(reason) = result {
                    series.failed(reason);
                }
            }
            Protocol::Tcp => {
                let port = target.port.unwrap_or(0);
                let probe = tcp::probe_once(
                    SocketAddr::new(ip, port),
                    target.source_address,
                    target.interface.as_deref(),
                    PacketOptions::of(&target),
                    target.timeout,
                    &mut tcp_setup,
                );
                let result = tokio::select! {
                    () = cancel.cancelled() => return,
                    result = probe => result,
                };
                match result {
                    Ok(rtt) => series.answered(rtt, None),
                    Err(reason) => series.failed(reason),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::probes::{Family, Protocol};

    fn target(name: &str, interval: Duration) -> Target {
        Target {
            name: name.to_owned(),
            host: name.to_owned(),
            protocol: Protocol::Icmp,
            port: None,
            interval,
            timeout: interval,
            family: Family::Ip4,
            payload_size: 56,
            dscp: 0,
            dont_fragment: false,
            source_address: None,
            interface: None,
            resolve_interval: Duration::from_secs(300),
            labels: Default::default(),
            trace: None,
        }
    }

    #[test]
    fn phases_are_stable_within_the_interval_and_spread() {
        let interval = Duration::from_secs(1);
        let phases: Vec<Duration> = (0..1000)
            .map(|i| {
                phase(&target(
                    &format!("198.19.{}.{}", i / 250, i % 250 + 2),
                    interval,
                ))
            })
            .collect();
        assert!(phases.iter().all(|phase| *phase < interval));
        assert_eq!(phase(&target("a", interval)), phase(&target("a", interval)));
        // Spread: every tenth of the interval holds 100 ± 40 of the 1,000 targets.
        let mut tenths = [0u32; 10];
        for phase in &phases {
            tenths[(phase.as_millis() / 100) as usize] += 1;
        }
        assert!(
            tenths.iter().all(|count| (60..=140).contains(count)),
            "{tenths:?}"
        );
    }
}
