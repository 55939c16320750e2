//! Timing: each target sends at a fixed moment of its interval, chosen by a hash of its name so
//! that restarts and reloads keep it. The moments are shared: the targets of one interval are
//! spread over `ceil(targets / BURST)` evenly spaced moments, all counted from one process-wide
//! epoch, so up to about `BURST` targets send at the same instant. Their timers then fire in
//! one turn of the runtime's timer wheel: a worker wakes once per moment, not once per target
//! (at rest, 10 targets at 1 s cost one wake-up a second instead of ten), while 1,000 targets
//! still spread over ~63 moments instead of bursting together. A target's task only sends
//! (ICMP) or awaits its own connect (TCP, bounded by its timeout ≤ interval), so a slow or dead
//! target never delays another.

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::icmp::{Binding, IcmpPool, Lease};
use super::metrics::{Reason, TargetSeries};
use super::packet_options::PacketOptions;
use super::resolve::CurrentAddress;
use super::tcp;
use crate::config::probes::{Protocol, Target};

/// About how many targets of one interval send at the same moment: a burst this size is a few
/// hundred microseconds of sends, and the receive thread reads its replies in one wake-up.
pub const BURST: usize = 16;

/// How many send moments the targets of one interval share, `count` of them.
pub fn moments(count: usize) -> u32 {
    u32::try_from(count.div_ceil(BURST).max(1)).unwrap_or(u32::MAX)
}

/// A stable hash of the target's name and protocol: the same on every run.
fn name_hash(target: &Target) -> u64 {
    // SipHash with fixed keys: the same on every run (unlike RandomState).
    #[allow(deprecated)]
    let mut hasher = std::hash::SipHasher::new();
    target.name.hash(&mut hasher);
    target.protocol.hash(&mut hasher);
    hasher.finish()
}

/// Where in its interval a target sends: one of `moments` evenly spaced moments, picked by a
/// stable hash of its name and protocol, so restarts and reloads keep the spread.
pub fn phase(target: &Target, moments: u32) -> Duration {
    let moments = u128::from(moments.max(1));
    let slot = u128::from(name_hash(target)) % moments;
    let offset = target.interval.as_nanos() * slot / moments;
    Duration::from_nanos(u64::try_from(offset).unwrap_or(0))
}

/// A spread over the whole of `interval`, not in shared moments (a target's traces, which are
/// long and few).
pub fn phase_in(target: &Target, interval: Duration) -> Duration {
    let interval = interval.as_nanos().max(1);
    let offset = u128::from(name_hash(target)) % interval;
    Duration::from_nanos(u64::try_from(offset).unwrap_or(0))
}

/// The first instant after now at `phase` into an `interval` counted from the process-wide
/// epoch: targets with the same interval and phase get the very same instants, so their timers
/// share a tick of the timer wheel.
fn first_send(interval: Duration, phase: Duration) -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let now = Instant::now();
    let interval_nanos = interval.as_nanos().max(1);
    let since = now.saturating_duration_since(epoch + phase).as_nanos();
    let periods = since.div_ceil(interval_nanos);
    let offset = u64::try_from(periods * interval_nanos).unwrap_or(u64::MAX);
    epoch + phase + Duration::from_nanos(offset)
}

/// Probes `target` every interval until `cancel`. An ICMP target holds a lease on the socket of
/// its binding while it runs (`lease`: taken already when the address was known at start), so
/// the socket closes when no target uses it. `moments`: how many send moments its interval's
/// targets share ([`moments`]).
pub async fn run(
    target: Target,
    moments: u32,
    series: Arc<TargetSeries>,
    address: Arc<CurrentAddress>,
    icmp: Arc<IcmpPool>,
    mut lease: Option<Lease>,
    cancel: CancellationToken,
) {
    let mut tcp_setup = tcp::SetupLog::new(&target.name);
    let mut ticker = tokio::time::interval_at(
        first_send(target.interval, phase(&target, moments)),
        target.interval,
    );
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
    use std::collections::HashMap;

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
        let moments = moments(1000);
        assert_eq!(moments, 63);
        let phases: Vec<Duration> = (0..1000)
            .map(|i| {
                phase(
                    &target(&format!("198.19.{}.{}", i / 250, i % 250 + 2), interval),
                    moments,
                )
            })
            .collect();
        assert!(phases.iter().all(|phase| *phase < interval));
        assert_eq!(
            phase(&target("a", interval), moments),
            phase(&target("a", interval), moments)
        );
        // Spread: every tenth of the interval holds 100 ± 40 of the 1,000 targets.
        let mut tenths = [0u32; 10];
        for phase in &phases {
            tenths[(phase.as_millis() / 100) as usize] += 1;
        }
        assert!(
            tenths.iter().all(|count| (60..=140).contains(count)),
            "{tenths:?}"
        );
        // Shared moments: 1,000 targets send at no more than 63 instants, none with more than
        // a few times BURST of them.
        let mut per_moment: HashMap<Duration, usize> = HashMap::new();
        for phase in &phases {
            *per_moment.entry(*phase).or_default() += 1;
        }
        assert!(per_moment.len() <= 63, "{}", per_moment.len());
        assert!(
            per_moment.values().all(|count| *count <= 3 * BURST),
            "{per_moment:?}"
        );
    }

    /// The embedded default's shape (10 targets at 1 s) sends at one moment a second, so the
    /// runtime wakes once for all of them.
    #[test]
    fn a_few_targets_share_one_moment() {
        let interval = Duration::from_secs(1);
        let moments = moments(10);
        assert_eq!(moments, 1);
        for i in 0..10 {
            assert_eq!(
                phase(&target(&format!("127.0.0.{i}"), interval), moments),
                Duration::ZERO
            );
        }
    }

    /// Two targets with the same interval and phase started at different times get the very
    /// same send instants (one timer wheel tick), a whole number of intervals apart.
    #[tokio::test]
    async fn targets_with_one_phase_share_their_send_instants() {
        let interval = Duration::from_millis(200);
        let phase = Duration::from_millis(30);
        let first = first_send(interval, phase);
        tokio::time::sleep(Duration::from_millis(7)).await;
        let second = first_send(interval, phase);
        assert!(first > Instant::now() - Duration::from_millis(7));
        let apart = second.max(first) - second.min(first);
        assert_eq!(apart.as_nanos() % interval.as_nanos(), 0, "{apart:?}");
        assert!(second >= Instant::now() - Duration::from_millis(1));
    }
}
