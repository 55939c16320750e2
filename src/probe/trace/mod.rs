//! Path tracing: which way the packets to a target go, and whether that crosses an exchange.
//!
//! Each target with tracing on has one task (not a thread) that wakes every trace interval, at
//! a phase spread like the probes', and sends a bounded number of probes per hop with
//! increasing TTL / hop limit: ICMP echo through the shared ICMP sockets ([`crate::probe::icmp`]),
//! UDP to the traceroute ports from one socket per trace ([`udp`]), or TCP SYNs to the target's
//! port ([`tcp`]). Routers answer with ICMP time exceeded, the target with its reply; all
//! answers come over one channel, so the task only waits. A hop's probes go out together and
//! the next hop starts when all of them are answered or the target's timeout passes; at most
//! `probes_per_hop` probes of a target are in flight. A hop that never answers (a router
//! dropping or rate-limiting its ICMP) is a missing hop, `*`; the trace ends at the target, at
//! a router saying it is unreachable, at `max_hops`, or after [`GAP_LIMIT`] silent hops in a
//! row. The result ([`path::Path`]) is exported by [`metrics::PathSeries`].

pub mod errqueue;
pub mod hop;
pub mod metrics;
pub mod path;
pub mod tcp;
pub mod udp;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use self::hop::{Answer, AnswerKind};
use self::metrics::{PathSeries, TraceError};
use self::path::Path;
use self::udp::UdpTracer;
use super::icmp::{Binding, IcmpPool, IcmpSocket, Lease};
use super::resolve::CurrentAddress;
use super::scheduler::phase_in;
use crate::config::probes::Target;
use crate::config::trace::{Ixes, Trace, TraceProtocol};
use crate::lock::RwLockUnpoisoned;

/// Silent hops in a row after which a trace gives up (as scamper's default gap limit): a target
/// behind a firewall that drops everything costs five timeouts, not `max_hops`.
pub const GAP_LIMIT: u8 = 5;
/// ICMP payload bytes of a trace's echo requests (the token fits).
const ICMP_PAYLOAD: u16 = 32;

/// The exchanges configured now; the supervisor replaces them on reload.
pub type SharedIxes = Arc<RwLock<Arc<Ixes>>>;

/// Traces `target`'s path every `trace.interval` until `cancel`, writing `series` while it holds
/// their claim `owner`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    target: Target,
    trace: Trace,
    series: Arc<PathSeries>,
    owner: u64,
    address: Arc<CurrentAddress>,
    icmp: Arc<IcmpPool>,
    ixes: SharedIxes,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval_at(
        Instant::now() + phase_in(&target, trace.interval),
        trace.interval,
    );
    // A trace longer than the interval (many silent hops) skips the ticks it ran over.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut lease = None;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let Some(ip) = address.get() else {
            series.failed(owner, TraceError::Resolve);
            continue;
        };
        let traced = tokio::select! {
            () = cancel.cancelled() => return,
            traced = trace_once(&target, trace, ip, &icmp, &mut lease) => traced,
        };
        match traced {
            Ok(path) => {
                tracing::debug!(target = %target.name, hops = %path.label(), reached = path.reached, "path traced");
                let ixes = ixes.read_unpoisoned().clone();
                series.traced(owner, path, &ixes);
            }
            Err(error) => series.failed(owner, error),
        }
    }
}

/// How one trace sends its probes.
enum Prober {
    Icmp(Arc<IcmpSocket>),
    Udp(UdpTracer),
    Tcp(u16),
}

/// One trace of `target` at `ip`.
async fn trace_once(
    target: &Target,
    trace: Trace,
    ip: IpAddr,
    icmp: &Arc<IcmpPool>,
    lease: &mut Option<Lease>,
) -> Result<Path, TraceError> {
    let (sender, mut answers) = mpsc::unbounded_channel::<Answer>();
    let prober = match trace.protocol {
        TraceProtocol::Icmp => {
            let binding = Binding {
                v6: ip.is_ipv6(),
                source: target.source_address,
                interface: target.interface.clone(),
                // The target's own socket: a trace's probes carry its DSCP, like its RTT probes.
                options: crate::probe::packet_options::PacketOptions::of(target),
            };
            // As the scheduler does: a new family is a new binding, the old lease goes after.
            let lease = match lease.take() {
                Some(current) if *current.binding() == binding => lease.insert(current),
                _ => lease.insert(icmp.lease(binding)),
            };
            Prober::Icmp(lease.socket().map_err(|_| TraceError::Socket)?)
        }
        TraceProtocol::Udp => Prober::Udp(
            UdpTracer::open(
                ip,
                target.source_address,
                target.interface.as_deref(),
                trace.probes_per_hop,
                sender.clone(),
            )
            .map_err(|error| {
                tracing::debug!(target = %target.name, %error, "UDP trace socket");
                TraceError::Socket
            })?,
        ),
        TraceProtocol::Tcp => Prober::Tcp(target.port.unwrap_or(0)),
    };
    let mut hops: Vec<BTreeSet<IpAddr>> = vec![BTreeSet::new(); usize::from(trace.max_hops)];
    // The TTL at which the trace ended, and whether the target answered there.
    let mut end: Option<(u8, bool)> = None;
    let mut silent = 0;
    for ttl in 1..=trace.max_hops {
        for n in 0..trace.probes_per_hop {
            let sent = match &prober {
                Prober::Icmp(socket) => socket
                    .send_trace(ip, ttl, ICMP_PAYLOAD, target.timeout, &sender)
                    .map_err(|_| TraceError::Send),
                Prober::Udp(udp) => udp.send(ip, ttl, n).map_err(|error| {
                    tracing::debug!(target = %target.name, %error, "UDP trace send");
                    TraceError::Send
                }),
                Prober::Tcp(port) => tcp::send(
                    SocketAddr::new(ip, *port),
                    ttl,
                    target.source_address,
                    target.interface.as_deref(),
                    target.timeout,
                    &sender,
                )
                .map_err(|error| {
                    tracing::debug!(target = %target.name, %error, "TCP trace probe");
                    TraceError::Send
                }),
            };
            sent?;
        }
        let deadline = Instant::now() + target.timeout;
        let mut answered = 0;
        while answered < trace.probes_per_hop {
            let answer = tokio::select! {
                answer = answers.recv() => answer,
                () = tokio::time::sleep_until(deadline) => None,
            };
            let Some(answer) = answer else {
                break;
            };
            // A late answer to an earlier hop still counts for that hop.
            let Some(hop) = hops.get_mut(usize::from(answer.ttl).saturating_sub(1)) else {
                continue;
            };
            hop.insert(answer.from);
            if answer.kind != AnswerKind::TimeExceeded {
                let reached = answer.kind == AnswerKind::Reached;
                end = Some(match end {
                    Some((at, was)) if at < answer.ttl => (at, was),
                    Some((at, was)) if at == answer.ttl => (at, was || reached),
                    _ => (answer.ttl, reached),
                });
            }
            if answer.ttl == ttl {
                answered += 1;
            }
            // The trace ends here: the hop's other probes need not be waited for.
            if end.is_some_and(|(at, _)| at <= ttl) {
                break;
            }
        }
        if end.is_some() {
            break;
        }
        silent = if hops[usize::from(ttl) - 1].is_empty() {
            silent + 1
        } else {
            0
        };
        if silent >= GAP_LIMIT {
            break;
        }
    }
    let (length, reached) = end.map_or((hops.len(), false), |(ttl, reached)| {
        (usize::from(ttl), reached)
    });
    let hops = hops
        .into_iter()
        .take(length)
        .enumerate()
        .map(|(index, answered)| {
            // The target's own address where it answered; else the lowest, so several
            // routers answering one hop (ECMP) give a stable path.
            if reached && index + 1 == length && answered.contains(&ip) {
                Some(ip)
            } else {
                answered.first().copied()
            }
        })
        .collect();
    Ok(Path::new(hops, reached))
}
