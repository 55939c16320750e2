//! ICMP / ICMPv6 echo on shared sockets: one socket per (family, source address, interface),
//! RAW when permitted, else DGRAM ("ping sockets"), each with one receive thread.
//!
//! Timing: both clocks are read *before* `sendto`, and the device's transmit stamp
//! (`SO_TIMESTAMPING`, handed back with the packet on the socket's error queue) replaces them
//! when it comes; the reply's time is the kernel's receive stamp (`SO_TIMESTAMPNS`). Kernel
//! stamps are used when the clocks did not step, else the threads' monotonic stamps (see
//! [`rtt`](super::pending::rtt)); either way an RTT is never below the path's true delay. The
//! receive thread is a plain OS thread blocked in `poll`, so a busy async runtime cannot delay
//! replies, and it drains every queued reply per wake-up. While few requests are in flight it
//! does not even watch the socket: the transmit stamps and replies wait in the queues and are
//! read together every `LAZY_SLEEP` (or at a deadline), a couple of wake-ups a second instead of
//! two per probe, since the kernel's stamps time them. A reply counts if it *arrived* within
//! the timeout, however late the thread read it; one that arrived later is a timeout. An ICMP
//! destination unreachable about a request fails it at once: RAW sockets see it as a packet,
//! DGRAM sockets on their error queue (`IP_RECVERR`).
//!
//! A socket lives while a target uses it: each probe task holds a [`Lease`] on its binding, and
//! when the last lease of a binding goes (its targets left the configuration, or moved to
//! another address family) the slot is evicted: an open socket's receive thread ends once its
//! requests in flight are answered or expired, and the socket closes with it; a binding that
//! failed to open is forgotten, so it no longer holds `collector="probes"` at 0.
//!
//! Path traces send their echo requests through the same sockets with a TTL / hop limit of
//! their own (a per-packet `IP_TTL` / `IPV6_HOPLIMIT` control message, so the RTT probes'
//! packets keep the default). Their sequence numbers come from the same counter, but they wait
//! in a table of their own, and the receive thread hands what answers them (time exceeded,
//! unreachable, echo reply) to the tracer over a channel that never blocks it.

pub(crate) mod echo;
mod filter;
pub(crate) mod pending;

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
    SockaddrStorage, TimestampingFlag, Timestamps,
};
use nix::sys::time::{TimeSpec, TimeValLike};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use self::echo::ErrorKind;
use self::pending::{Entry, Match, Pending, SendStamp};
use super::metrics::{Reason, TargetSeries};
use super::packet_options::PacketOptions;
use super::trace::hop::{Answer, AnswerKind, Answers};
use crate::lock::MutexUnpoisoned;

/// How often the receive thread expires unanswered requests (the timeout's resolution).
const SWEEP_INTERVAL: Duration = Duration::from_millis(10);
/// Longest the receive thread sleeps when nothing is in flight: a socket with no work costs
/// one wake-up a second, not the hundred a fixed sweep tick would.
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// After a socket failed to open, how long before the next probe tries again.
const REOPEN_DELAY: Duration = Duration::from_secs(30);
/// Sends tried on a socket with `IP_RECVERR` before a failure counts: each ICMP error about an
/// earlier request leaves its errno pending on the socket, and reading the error queue sets it
/// again from the next queued error, so a trace's burst of time exceeded can fail a few sends
/// in a row that would go out fine.
const SEND_ATTEMPTS: u32 = 4;
/// Most requests in a socket's table (answered ones included, until their deadline) while its
/// receive thread reads lazily: their replies and transmit stamps wait in the socket's queues,
/// which must not overflow (`SO_RCVBUF`, a few hundred packets). Above it the thread wakes for
/// every packet, as many then come that a wake-up reads several anyway.
const LAZY_LIMIT: usize = 64;
/// How long a thread reading lazily sleeps at most: how late a reply may reach its histogram
/// (its RTT is the kernel's stamps, whenever it is read; a scrape every 15 s does not see the
/// difference), and how long the queues must hold what comes (our replies, and on a RAW socket
/// the other replies and errors the host receives: the type filter drops the rest). 1 s
/// instead of 0.5 s cut the probes' CPU at rest by ~15 % (benches/README.md).
const LAZY_SLEEP: Duration = Duration::from_millis(1000);
/// How long a socket's thread reads promptly after one wake-up read more than `LAZY_LIMIT`
/// packets (a host receiving much ICMP besides ours, which a RAW socket sees): its queue must
/// not overflow while the thread sleeps.
const BUSY_HOLD: Duration = Duration::from_secs(60);
/// Replies to requests that never got a transmit stamp, with none stamped at all, after which
/// the device is taken not to give them.
const UNSTAMPED_BEFORE_NO_STAMPS: u64 = 100;

/// What a matched reply tells its target's series.
enum Told {
    Answered(Duration),
    /// Arrived after the request's deadline: a timeout.
    Late,
    Duplicate,
}

/// Which kind of ICMP socket the kernel gave us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// `SOCK_RAW`: needs CAP_NET_RAW; sees every ICMP packet, we filter by identifier.
    Raw,
    /// `SOCK_DGRAM` + `IPPROTO_ICMP`: unprivileged where `net.ipv4.ping_group_range` allows;
    /// the kernel owns the identifier and delivers only our replies.
    Dgram,
}

impl fmt::Display for SocketKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SocketKind::Raw => "RAW",
            SocketKind::Dgram => "DGRAM",
        })
    }
}

/// What one shared socket is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Binding {
    pub v6: bool,
    pub source: Option<IpAddr>,
    pub interface: Option<String>,
    /// DSCP and Don't Fragment: socket options, so targets that differ in them need their
    /// own socket (a handful per host, not one per target).
    pub options: PacketOptions,
}

impl fmt::Display for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.v6 { "ICMPv6" } else { "ICMP" })?;
        if let Some(source) = self.source {
            write!(f, " from {source}")?;
        }
        if let Some(interface) = &self.interface {
            write!(f, " on {interface}")?;
        }
        write!(f, "{}", self.options)
    }
}

/// Neither socket kind could be opened.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "cannot open an {binding} socket: RAW: {raw}; DGRAM: {dgram}. Either give the exporter \
     CAP_NET_RAW (`setcap cap_net_raw+ep <path to xen_exporter>`, or \
     `AmbientCapabilities=CAP_NET_RAW` in its systemd unit), or allow unprivileged ping sockets \
     for its group (`sysctl net.ipv4.ping_group_range=\"0 2147483647\"`)"
)]
pub struct OpenError {
    pub binding: Binding,
    pub raw: String,
    pub dgram: String,
}

type Owner = Arc<TargetSeries>;

/// A trace's echo request in flight.
struct TraceProbe {
    address: IpAddr,
    token: u64,
    ttl: u8,
    deadline: Instant,
    answers: Answers,
}

/// One shared ICMP socket and its requests in flight, open while a target leases its binding.
pub struct IcmpSocket {
    socket: Socket,
    kind: SocketKind,
    binding: Binding,
    v6: bool,
    /// Our echo identifier (RAW only; the kernel replaces it on DGRAM sockets).
    id: u16,
    next_seq: AtomicU16,
    pending: Mutex<Pending<Owner>>,
    /// Trace probes in flight, by sequence number, apart from the RTT probes' table.
    traces: Mutex<HashMap<u16, TraceProbe>>,
    /// How many trace probes are in flight: replies skip the trace table while it is 0.
    tracing: AtomicUsize,
    /// Whether the kernel took `SO_TIMESTAMPING` (transmit stamps) for this socket.
    transmit_stamps: bool,
    /// Whether replies carry the kernel's receive stamp (`SO_TIMESTAMPNS`): only then may the
    /// receive thread read them late.
    receive_stamps: bool,
    /// Whether ICMP errors about our requests come on the error queue (DGRAM sockets, which
    /// do not see them as packets the way RAW ones do).
    icmp_errors: bool,
    /// Replies whose request had a token to match but no transmit stamp came for it.
    unstamped: AtomicU64,
    /// Requests whose transmit stamp came back and matched.
    stamped: AtomicU64,
    /// Whether the log said that no transmit stamps come (once per socket).
    missing_stamps_reported: AtomicBool,
    /// Set when no target uses the binding any more: the receive thread ends once nothing is
    /// in flight, and the socket closes with the thread's reference.
    closing: AtomicBool,
    /// Wakes the receive thread before its planned time: a request due earlier than that was
    /// sent, or the socket is closing.
    wake: EventFd,
    /// When the sleeping receive thread plans to wake, as nanoseconds since `epoch`; 0 while it
    /// is awake. Written and compared under the `pending` lock, so no request slips between.
    asleep_until: AtomicU64,
    /// Whether the sleeping receive thread waits for its planned time only, not for packets
    /// (few requests in flight: it reads what came at once, every `LAZY_SLEEP`).
    lazy: AtomicBool,
    epoch: Instant,
}

impl IcmpSocket {
    pub fn kind(&self) -> SocketKind {
        self.kind
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn wake_receiver(&self) {
        if let Err(error) = self.wake.write(1) {
            tracing::debug!(%error, "ICMP receive thread could not be woken");
        }
    }

    /// How many requests got their departure from the kernel's transmit stamp.
    #[cfg(test)]
    pub fn transmit_stamped(&self) -> u64 {
        self.stamped.load(Ordering::Relaxed)
    }

    /// Sends one echo request to `address`; its reply (or timeout) reaches `owner` from the
    /// receive thread. A send that fails is reported at once.
    pub fn send(
        &self,
        address: IpAddr,
        payload_size: u16,
        timeout: Duration,
        owner: &Owner,
    ) -> Result<(), Reason> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let token = next_token();
        let packet = echo::build_request(self.v6, self.id, seq, token, usize::from(payload_size));
        let destination = SockAddr::from(SocketAddr::new(address, 0));
        // The stamp is taken before the send: the RTT can only come out longer than the path.
        let sent = SendStamp::now();
        let deadline = sent.monotonic + timeout;
        let (displaced, wake) = {
            let mut pending = self.lock();
            let displaced = pending.insert(
                seq,
                Entry {
                    token,
                    address,
                    sent,
                    transmitted: None,
                    deadline,
                    answered: false,
                    owner: owner.clone(),
                },
            );
            let asleep_until = self.asleep_until.load(Ordering::Relaxed);
            // A lazy thread must start reading promptly once too many are in flight for its
            // queues to hold.
            let due = if self.lazy.load(Ordering::Relaxed) && pending.len() > LAZY_LIMIT {
                sent.monotonic
            } else {
                deadline
            };
            (
                displaced,
                asleep_until != 0 && self.nanos(due) < asleep_until,
            )
        };
        if wake {
            self.wake_receiver();
        }
        if let Some(displaced) = displaced.filter(|entry| !entry.answered) {
            displaced.owner.failed(Reason::Timeout);
        }
        let mut sent = self.socket.send_to(&packet, &destination);
        let mut attempts = 1;
        while sent.is_err() && self.icmp_errors && attempts < SEND_ATTEMPTS {
            // With IP_RECVERR an ICMP error about any earlier request is also left pending on
            // the socket, and the next send (to any target) returns it instead of sending:
            // that send is tried again, and only its own failure counts.
            sent = self.socket.send_to(&packet, &destination);
            attempts += 1;
        }
        match sent {
            Ok(_) => Ok(()),
            Err(error) => {
                self.lock().remove(seq);
                tracing::debug!(%address, %error, "ICMP send failed");
                Err(classify(&error))
            }
        }
    }

    /// Sends one trace probe: an echo request to `address` that lives `ttl` hops. What answers
    /// it within `timeout` reaches `answers` from the receive thread.
    pub fn send_trace(
        &self,
        address: IpAddr,
        ttl: u8,
        payload_size: u16,
        timeout: Duration,
        answers: &Answers,
    ) -> Result<(), Reason> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let token = next_token();
        let packet = echo::build_request(self.v6, self.id, seq, token, usize::from(payload_size));
        {
            let mut traces = self.lock_traces();
            traces.insert(
                seq,
                TraceProbe {
                    address,
                    token,
                    ttl,
                    deadline: Instant::now() + timeout,
                    answers: answers.clone(),
                },
            );
            self.tracing.store(traces.len(), Ordering::Relaxed);
        }
        // A thread reading lazily would hand the trace its answers late: it reads promptly
        // while a trace probe is in flight.
        if self.lazy.load(Ordering::Relaxed) && self.asleep_until.load(Ordering::Relaxed) != 0 {
            self.wake_receiver();
        }
        let destination = SockaddrStorage::from(SocketAddr::new(address, 0));
        let hops = libc::c_int::from(ttl);
        let send = || {
            let iov = [IoSlice::new(&packet)];
            let lifetime = if self.v6 {
                ControlMessage::Ipv6HopLimit(&hops)
            } else {
                ControlMessage::Ipv4Ttl(&hops)
            };
            sendmsg(
                self.socket.as_raw_fd(),
                &iov,
                &[lifetime],
                MsgFlags::empty(),
                Some(&destination),
            )
        };
        let mut sent = send();
        let mut attempts = 1;
        while sent.is_err() && self.icmp_errors && attempts < SEND_ATTEMPTS {
            // An ICMP error left pending on the socket (IP_RECVERR): see `send`.
            sent = send();
            attempts += 1;
        }
        match sent {
            Ok(_) => Ok(()),
            Err(errno) => {
                let mut traces = self.lock_traces();
                traces.remove(&seq);
                self.tracing.store(traces.len(), Ordering::Relaxed);
                tracing::debug!(%address, ttl, error = %errno, "ICMP trace send failed");
                Err(classify(&std::io::Error::from(errno)))
            }
        }
    }

    /// Hands an answer to the trace probe `seq` to `to`, if one waits; whether it did.
    /// `token` is checked when the answer carries it (echo replies).
    fn trace_answer(
        &self,
        seq: u16,
        to: IpAddr,
        token: Option<u64>,
        from: IpAddr,
        kind: AnswerKind,
    ) -> bool {
        if self.tracing.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let probe = {
            let mut traces = self.lock_traces();
            match traces.get(&seq) {
                Some(probe)
                    if probe.address == to && token.is_none_or(|token| token == probe.token) => {}
                _ => return false,
            }
            let probe = traces.remove(&seq);
            self.tracing.store(traces.len(), Ordering::Relaxed);
            probe
        };
        if let Some(probe) = probe {
            // The tracer may have given up on the hop already: then nobody listens.
            let _ = probe.answers.send(Answer {
                ttl: probe.ttl,
                from,
                kind,
            });
        }
        true
    }

    /// An ICMP error `kind` from `from` about request `seq` to `to`: a trace probe's answer, or
    /// an RTT probe's unreachable.
    fn icmp_error(&self, kind: ErrorKind, seq: u16, to: IpAddr, from: Option<IpAddr>) {
        let answer = match kind {
            ErrorKind::TimeExceeded => AnswerKind::TimeExceeded,
            // From the target itself (an administratively closed host): the trace reached it.
            ErrorKind::Unreachable if from == Some(to) => AnswerKind::Reached,
            ErrorKind::Unreachable | ErrorKind::TooBig => AnswerKind::Unreachable,
        };
        if from.is_some_and(|from| self.trace_answer(seq, to, None, from, answer)) {
            return;
        }
        match kind {
            ErrorKind::Unreachable => self.unreachable(seq, to, Reason::Unreachable),
            ErrorKind::TooBig => self.unreachable(seq, to, Reason::Mtu),
            ErrorKind::TimeExceeded => {}
        }
    }

    /// Forgets trace probes past their deadline (the tracer counted them as silent already).
    fn expire_traces(&self, now: Instant) {
        if self.tracing.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut traces = self.lock_traces();
        traces.retain(|_, probe| probe.deadline > now);
        self.tracing.store(traces.len(), Ordering::Relaxed);
    }

    fn lock_traces(&self) -> std::sync::MutexGuard<'_, HashMap<u16, TraceProbe>> {
        self.traces.lock_unpoisoned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending<Owner>> {
        self.pending.lock_unpoisoned()
    }

    /// The receive loop: wait for replies (or the next sweep), drain them, expire the lost.
    fn receive(&self) {
        let mut buffer = vec![0u8; 65_536 + 64];
        // Room for every message either queue carries: receive stamps in both forms, TTL or
        // hop limit; transmit stamps with their extended error and its address.
        let mut control = nix::cmsg_space!(
            TimeSpec,
            Timestamps,
            libc::c_int,
            libc::c_int,
            libc::sock_extended_err,
            libc::sockaddr_in6
        );
        let mut last_sweep = Instant::now();
        // Until when the thread reads promptly: one wake-up found more packets queued than a
        // lazy sleep may leave there.
        let mut busy_until: Option<Instant> = None;
        loop {
            // Requests still in flight keep their chance of an answer; then the thread ends.
            if self.closing.load(Ordering::Relaxed) && self.lock().is_empty() {
                tracing::debug!(binding = %self.binding, "ICMP receive thread ends: no target uses the socket");
                return;
            }
            // Sleep until the next request may expire (sweeps at most every SWEEP_INTERVAL),
            // a packet comes, or a sender wakes us for an earlier deadline. With few requests
            // in flight (at rest) packets do not wake us: their kernel stamps time them, so
            // the replies and transmit stamps that came are read at once every LAZY_SLEEP (or
            // at a deadline), instead of a wake-up for each.
            let (timeout, lazy) = {
                let pending = self.lock();
                let now = Instant::now();
                let deadline = pending
                    .next_deadline()
                    .map(|deadline| deadline.max(last_sweep + SWEEP_INTERVAL));
                let lazy = self.receive_stamps
                    && pending.len() <= LAZY_LIMIT
                    && self.tracing.load(Ordering::Relaxed) == 0
                    && !self.closing.load(Ordering::Relaxed)
                    && busy_until.is_none_or(|until| until <= now);
                let idle = if lazy { LAZY_SLEEP } else { IDLE_WAIT };
                let wake_at = deadline.map_or(now + idle, |deadline| deadline.min(now + idle));
                self.lazy.store(lazy, Ordering::Relaxed);
                self.asleep_until
                    .store(self.nanos(wake_at).max(1), Ordering::Relaxed);
                // Whole milliseconds, rounded up: waking early would only find nothing due.
                let millis = wake_at
                    .saturating_duration_since(now)
                    .as_micros()
                    .div_ceil(1000);
                (
                    nix::poll::PollTimeout::from(u16::try_from(millis).unwrap_or(u16::MAX)),
                    lazy,
                )
            };
            // A queued transmit stamp wakes `poll` too (POLLERR), so it is read at once
            // unless the thread reads lazily.
            let mut fds = [
                PollFd::new(self.socket.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.wake.as_fd(), PollFlags::POLLIN),
            ];
            let watched = if lazy { &mut fds[1..] } else { &mut fds[..] };
            let polled = nix::poll::poll(watched, timeout);
            self.asleep_until.store(0, Ordering::Relaxed);
            if let Err(error) = polled {
                if error != Errno::EINTR {
                    tracing::warn!(%error, "ICMP receive: poll failed");
                    std::thread::sleep(SWEEP_INTERVAL);
                }
            }
            if fds[1]
                .revents()
                .is_some_and(|events| events.contains(PollFlags::POLLIN))
            {
                // Non-blocking: an empty counter (another wake already read) is fine.
                let _ = self.wake.read();
            }
            // Taken before the drain: every reply that arrived by then is read below, so a
            // request expired at this instant really had no reply by its deadline.
            let drained_at = Instant::now();
            // (A stamp that comes after this is read with its reply, in `receive_one`.) A lazy
            // thread did not watch for it: the error queue is drained on each of its wake-ups,
            // so the stamps never fill it.
            if lazy
                || fds[0]
                    .revents()
                    .is_some_and(|events| events.contains(PollFlags::POLLERR))
            {
                self.read_error_queue(&mut buffer, &mut control);
            }
            // A read can fail once with the error an ICMP message left pending on the socket
            // (IP_RECVERR), which that read clears: the drain goes on after one failure, so
            // the sweep below does not expire requests whose replies are still queued.
            let mut failed_reads = 0;
            let mut read = 0;
            while failed_reads < 2 {
                match self.receive_one(&mut buffer, &mut control) {
                    Ok(true) => {
                        failed_reads = 0;
                        read += 1;
                    }
                    Ok(false) => break,
                    Err(error) => {
                        tracing::debug!(%error, "ICMP receive failed");
                        failed_reads += 1;
                    }
                }
            }
            if lazy && read > LAZY_LIMIT {
                tracing::debug!(binding = %self.binding, read, "ICMP receive: many packets queued; reading promptly for a while");
                busy_until = Some(drained_at + BUSY_HOLD);
            }
            if drained_at.duration_since(last_sweep) >= SWEEP_INTERVAL {
                last_sweep = drained_at;
                let lost = self.lock().expire(drained_at);
                for entry in lost {
                    entry.owner.failed(Reason::Timeout);
                }
                self.expire_traces(drained_at);
                self.report_missing_transmit_stamps();
            }
        }
    }

    /// A router said one of our requests cannot be delivered: it fails now, as unreachable,
    /// instead of timing out. (A quote need not carry the token: the sequence and destination
    /// decide, after the identifier did; on DGRAM sockets the kernel matched that.)
    /// `reason` is `Mtu` for "fragmentation needed" / "packet too big" about a DF probe.
    fn unreachable(&self, seq: u16, to: IpAddr, reason: Reason) {
        let removed = {
            let mut pending = self.lock();
            pending.remove_unanswered(seq, to)
        };
        if let Some(entry) = removed {
            entry.owner.failed(reason);
        }
    }

    /// Reads one packet if one is queued; `Ok(false)` when none is.
    fn receive_one(&self, buffer: &mut [u8], control: &mut [u8]) -> Result<bool, Errno> {
        let (length, source, kernel, ttl) = {
            let mut iov = [IoSliceMut::new(buffer)];
            let message = match recvmsg::<SockaddrStorage>(
                self.socket.as_raw_fd(),
                &mut iov,
                Some(control),
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(message) => message,
                Err(Errno::EAGAIN) => return Ok(false),
                Err(Errno::EINTR) => return Ok(true),
                Err(error) => return Err(error),
            };
            let mut kernel = None;
            let mut ttl = None;
            if let Ok(messages) = message.cmsgs() {
                for cmsg in messages {
                    match cmsg {
                        ControlMessageOwned::ScmTimestampns(stamp) => kernel = wall_time(&stamp),
                        ControlMessageOwned::Ipv4Ttl(value)
                        | ControlMessageOwned::Ipv6HopLimit(value) => {
                            ttl = u8::try_from(value).ok();
                        }
                        _ => {}
                    }
                }
            }
            let source = message.address.as_ref().and_then(source_ip);
            (message.bytes, source, kernel, ttl)
        };
        let received = SendStamp::now();
        let raw_v4 = self.kind == SocketKind::Raw && !self.v6;
        let packet = buffer.get(..length).unwrap_or_default();
        let Some(reply) = echo::parse_reply(self.v6, raw_v4, packet) else {
            if let Some(error) = echo::parse_error(self.v6, raw_v4, packet) {
                if self.kind == SocketKind::Raw && error.id == self.id {
                    self.icmp_error(error.kind, error.seq, error.to, source);
                }
            }
            return Ok(true);
        };
        if self.kind == SocketKind::Raw && reply.id != self.id {
            return Ok(true);
        }
        let source = reply.source_v4.map(IpAddr::from).or(source);
        if let Some(from) = source {
            if self.trace_answer(reply.seq, from, reply.token, from, AnswerKind::Reached) {
                return Ok(true);
            }
        }
        let ttl = reply.ttl.or(ttl);
        // The request's transmit stamp was queued before its reply could arrive; read it now
        // if the last drain came before it.
        if self.transmit_stamps
            && reply
                .token
                .is_some_and(|token| self.lock().awaits_transmit_stamp(reply.seq, token))
        {
            self.read_error_queue(buffer, control);
        }
        let told = {
            let mut pending = self.lock();
            let unstamped = reply
                .token
                .is_some_and(|token| pending.awaits_transmit_stamp(reply.seq, token));
            match pending.reply(reply.seq, reply.token, source, received, kernel) {
                Match::Answered(owner, rtt) => {
                    if unstamped {
                        self.unstamped.fetch_add(1, Ordering::Relaxed);
                    }
                    Some((owner.clone(), Told::Answered(rtt)))
                }
                Match::Late(owner) => Some((owner.clone(), Told::Late)),
                Match::Duplicate(owner) => Some((owner.clone(), Told::Duplicate)),
                Match::Unknown => None,
            }
        };
        // The series are told outside the lock, which the sending tasks share.
        match told {
            Some((owner, Told::Answered(rtt))) => owner.answered(rtt, ttl),
            Some((owner, Told::Late)) => owner.failed(Reason::Timeout),
            Some((owner, Told::Duplicate)) => owner.duplicate(),
            None => {}
        }
        Ok(true)
    }

    /// Reads the error queue. The kernel hands back each request it sent with the device's
    /// transmit stamp; the request is found in the copy by its sequence and token. On DGRAM
    /// sockets the queue also carries the ICMP errors about our requests (`IP_RECVERR`).
    fn read_error_queue(&self, buffer: &mut [u8], control: &mut [u8]) {
        if !self.transmit_stamps && !self.icmp_errors {
            return;
        }
        loop {
            let (length, stamp, icmp_error, destination) = {
                let mut iov = [IoSliceMut::new(buffer)];
                let message = match recvmsg::<SockaddrStorage>(
                    self.socket.as_raw_fd(),
                    &mut iov,
                    Some(control),
                    MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
                ) {
                    Ok(message) => message,
                    Err(Errno::EINTR) => continue,
                    // EAGAIN: the queue is empty.
                    Err(_) => return,
                };
                let mut stamp = None;
                let mut icmp_error = None;
                for cmsg in message.cmsgs().into_iter().flatten() {
                    match cmsg {
                        ControlMessageOwned::ScmTimestampsns(stamps) => {
                            stamp = wall_time(&stamps.system);
                        }
                        ControlMessageOwned::Ipv4RecvErr(error, offender) => {
                            let offender = offender.map(|address| {
                                IpAddr::from(u32::from_be(address.sin_addr.s_addr).to_be_bytes())
                            });
                            icmp_error = icmp_error_kind(&error).map(|kind| (kind, offender));
                        }
                        ControlMessageOwned::Ipv6RecvErr(error, offender) => {
                            let offender =
                                offender.map(|address| IpAddr::from(address.sin6_addr.s6_addr));
                            icmp_error = icmp_error_kind(&error).map(|kind| (kind, offender));
                        }
                        _ => {}
                    }
                }
                // For an ICMP error the kernel names the request's destination here.
                let destination = message.address.as_ref().and_then(source_ip);
                (message.bytes, stamp, icmp_error, destination)
            };
            let packet = buffer.get(..length).unwrap_or_default();
            if let Some((kind, offender)) = icmp_error {
                // The kernel delivered it to this socket by the request's identifier, and
                // hands back the quoted request from its ICMP header on; the router that
                // sent it is the offender.
                if let (Some(seq), Some(to)) = (echo::quoted_sequence(self.v6, packet), destination)
                {
                    self.icmp_error(kind, seq, to, offender);
                }
                continue;
            }
            let Some(stamp) = stamp else {
                continue;
            };
            let matched = {
                let mut pending = self.lock();
                echo::sent_requests(self.v6, packet)
                    // DGRAM sockets' identifier is the kernel's; the token is ours either way.
                    .filter(|request| self.kind == SocketKind::Dgram || request.id == self.id)
                    .any(|request| pending.transmitted(request.seq, request.token, stamp))
            };
            if matched && self.stamped.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::info!(binding = %self.binding, "ICMP send times are the kernel's transmit stamps");
            }
        }
    }

    /// Says once if the device never stamps what it sends: RTTs then include the time from
    /// our stamp before `sendto` to the device.
    fn report_missing_transmit_stamps(&self) {
        if !self.transmit_stamps
            || self.stamped.load(Ordering::Relaxed) > 0
            || self.unstamped.load(Ordering::Relaxed) < UNSTAMPED_BEFORE_NO_STAMPS
            || self.missing_stamps_reported.swap(true, Ordering::Relaxed)
        {
            return;
        }
        tracing::info!(
            binding = %self.binding,
            "no transmit stamps from the kernel: ICMP RTTs are timed from just before sendto"
        );
    }
}

/// Which ICMP error an `IP_RECVERR` / `IPV6_RECVERR` message is, if one we act on.
pub fn icmp_error_kind(error: &libc::sock_extended_err) -> Option<ErrorKind> {
    match error.ee_origin {
        libc::SO_EE_ORIGIN_ICMP => echo::error_kind(false, error.ee_type, error.ee_code),
        libc::SO_EE_ORIGIN_ICMP6 => echo::error_kind(true, error.ee_type, error.ee_code),
        _ => None,
    }
}

/// A kernel stamp (wall clock) as a `SystemTime`; `None` for the zero a missing stamp reads as.
fn wall_time(stamp: &TimeSpec) -> Option<SystemTime> {
    if stamp.num_nanoseconds() == 0 {
        return None;
    }
    let seconds = u64::try_from(stamp.tv_sec()).ok()?;
    let nanoseconds = u32::try_from(stamp.tv_nsec()).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(seconds, nanoseconds))
}

fn source_ip(address: &SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    address.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
}

/// `latency_errors_total` reason of a failed send or connect.
pub fn classify(error: &std::io::Error) -> Reason {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::ConnectionRefused => Reason::Refused,
        ErrorKind::TimedOut => Reason::Timeout,
        ErrorKind::NetworkUnreachable | ErrorKind::HostUnreachable => Reason::Unreachable,
        _ => match error.raw_os_error() {
            Some(libc::ENETUNREACH | libc::EHOSTUNREACH) => Reason::Unreachable,
            // A Don't Fragment probe larger than the MTU the kernel knows for the path.
            Some(libc::EMSGSIZE) => Reason::Mtu,
            _ => Reason::Other,
        },
    }
}

/// A token no other probe of this process has, unpredictable to other processes.
fn next_token() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static KEYS: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    KEYS.get_or_init(Default::default)
        .hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Opens one shared socket (RAW, else DGRAM) and starts its receive thread.
fn open(binding: &Binding, index: u16) -> Result<Arc<IcmpSocket>, OpenError> {
    let (domain, protocol) = if binding.v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    let (socket, kind) = match Socket::new(domain, Type::RAW, Some(protocol)) {
        Ok(socket) => (socket, SocketKind::Raw),
        Err(raw) => match Socket::new(domain, Type::DGRAM, Some(protocol)) {
            Ok(socket) => (socket, SocketKind::Dgram),
            Err(dgram) => {
                return Err(OpenError {
                    binding: binding.clone(),
                    raw: raw.to_string(),
                    dgram: dgram.to_string(),
                })
            }
        },
    };
    let failed = |what: &str, error: &dyn fmt::Display| OpenError {
        binding: binding.clone(),
        raw: format!("{what}: {error}"),
        dgram: format!("{what}: {error}"),
    };
    socket
        .set_nonblocking(true)
        .map_err(|error| failed("set non-blocking", &error))?;
    if let Some(source) = binding.source {
        socket
            .bind(&SockAddr::from(SocketAddr::new(source, 0)))
            .map_err(|error| failed(&format!("bind to {source}"), &error))?;
    }
    if let Some(interface) = &binding.interface {
        socket
            .bind_device(Some(interface.as_bytes()))
            .map_err(|error| failed(&format!("bind to device {interface}"), &error))?;
    }
    binding
        .options
        .apply(socket.as_fd(), binding.v6)
        .map_err(|(what, error)| failed(what, &error))?;
    if kind == SocketKind::Raw {
        if let Err(error) = filter::apply(socket.as_fd(), binding.v6) {
            tracing::info!(%error, "ICMP type filter unavailable: the receive thread reads every ICMP packet");
        }
    }
    // Best effort: a burst of replies (1,000 targets) must not overflow the queue.
    let _ = socket.set_recv_buffer_size(1 << 20);
    let receive_stamps = match setsockopt(&socket, sockopt::ReceiveTimestampns, &true) {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(%error, "SO_TIMESTAMPNS unavailable: RTTs use the receive thread's clock");
            false
        }
    };
    let transmit_flags = TimestampingFlag::SOF_TIMESTAMPING_TX_SOFTWARE
        | TimestampingFlag::SOF_TIMESTAMPING_SOFTWARE;
    let transmit_stamps = match setsockopt(&socket, sockopt::Timestamping, &transmit_flags) {
        Ok(()) => true,
        Err(error) => {
            tracing::info!(%error, "SO_TIMESTAMPING unavailable: ICMP RTTs are timed from just before sendto");
            false
        }
    };
    let icmp_errors = kind == SocketKind::Dgram && receive_icmp_errors(&socket, binding.v6);
    // RAW IPv4 sockets see the IP header and read the TTL there.
    let ttl_option = if binding.v6 {
        setsockopt(&socket, sockopt::Ipv6RecvHopLimit, &true)
    } else {
        setsockopt(&socket, sockopt::Ipv4RecvTtl, &true)
    };
    if let Err(error) = ttl_option {
        tracing::debug!(%error, "reply TTL unavailable");
    }
    let id = (std::process::id() as u16).wrapping_add(index.wrapping_mul(0x9e37));
    let wake =
        EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC).map_err(|error| {
            failed(
                "create the receive thread's wake-up",
                &std::io::Error::from(error),
            )
        })?;
    let socket = Arc::new(IcmpSocket {
        socket,
        kind,
        binding: binding.clone(),
        v6: binding.v6,
        id,
        next_seq: AtomicU16::new(0),
        pending: Mutex::new(Pending::default()),
        traces: Mutex::new(HashMap::new()),
        tracing: AtomicUsize::new(0),
        transmit_stamps,
        receive_stamps,
        icmp_errors,
        unstamped: AtomicU64::new(0),
        stamped: AtomicU64::new(0),
        missing_stamps_reported: AtomicBool::new(false),
        closing: AtomicBool::new(false),
        wake,
        asleep_until: AtomicU64::new(0),
        lazy: AtomicBool::new(false),
        epoch: Instant::now(),
    });
    let receiver = socket.clone();
    std::thread::Builder::new()
        .name(format!(
            "icmp-recv-{}",
            if binding.v6 { "v6" } else { "v4" }
        ))
        .spawn(move || receiver.receive())
        .map_err(|error| failed("start the receive thread", &error))?;
    tracing::info!(binding = %binding, kind = %kind, "ICMP socket open");
    Ok(socket)
}

/// Asks for the ICMP errors about our requests on the error queue (`IP_RECVERR`): a DGRAM
/// socket learns of an ICMP unreachable only this way. Whether the kernel agreed.
fn receive_icmp_errors(socket: &Socket, v6: bool) -> bool {
    let recverr = if v6 {
        setsockopt(socket, sockopt::Ipv6RecvErr, &true)
    } else {
        setsockopt(socket, sockopt::Ipv4RecvErr, &true)
    };
    if let Err(error) = &recverr {
        tracing::debug!(%error, "ICMP errors unavailable on the DGRAM socket: such probes time out");
    }
    recverr.is_ok()
}

enum SlotState {
    Open(Arc<IcmpSocket>),
    Failed { error: OpenError, retry: Instant },
}

/// One binding's socket (or why it could not be opened) and how many leases use it.
struct Slot {
    users: usize,
    state: SlotState,
}

/// The shared sockets, opened by the first lease of a binding and evicted with its last.
#[derive(Default)]
pub struct IcmpPool {
    slots: Mutex<HashMap<Binding, Slot>>,
    /// Numbers every socket ever opened, so two open RAW sockets never share an identifier.
    opened: AtomicU16,
}

/// A probe task's use of one binding; the binding's slot is evicted when its last lease drops.
pub struct Lease {
    pool: Arc<IcmpPool>,
    binding: Binding,
}

impl Lease {
    pub fn binding(&self) -> &Binding {
        &self.binding
    }

    /// The binding's socket. A failure is logged once (with both fixes) and retried after
    /// `REOPEN_DELAY` (30 s).
    pub fn socket(&self) -> Result<Arc<IcmpSocket>, OpenError> {
        let mut slots = self.pool.lock();
        let now = Instant::now();
        let slot = match slots.get_mut(&self.binding) {
            Some(slot) => slot,
            // Not reached: the slot lives as long as its leases. Should it be gone, this
            // lease takes it up again.
            None => slots.entry(self.binding.clone()).or_insert(Slot {
                users: 1,
                state: self.pool.open(&self.binding, true),
            }),
        };
        match &slot.state {
            SlotState::Open(socket) => return Ok(socket.clone()),
            SlotState::Failed { error, retry } if *retry > now => return Err(error.clone()),
            SlotState::Failed { .. } => {}
        }
        slot.state = self.pool.open(&self.binding, false);
        match &slot.state {
            SlotState::Open(socket) => Ok(socket.clone()),
            SlotState::Failed { error, .. } => Err(error.clone()),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.release(&self.binding);
    }
}

impl IcmpPool {
    /// A lease on `binding`'s socket, opening it if it is the first (so a missing permission
    /// shows in the log as soon as a target needs the socket, not at its first probe).
    pub fn lease(self: &Arc<Self>, binding: Binding) -> Lease {
        let mut slots = self.lock();
        match slots.get_mut(&binding) {
            Some(slot) => slot.users += 1,
            None => {
                let state = self.open(&binding, true);
                slots.insert(binding.clone(), Slot { users: 1, state });
            }
        }
        Lease {
            pool: self.clone(),
            binding,
        }
    }

    /// Opens `binding`'s socket; a failure is logged when it is the binding's `first` attempt.
    fn open(&self, binding: &Binding, first: bool) -> SlotState {
        let index = self.opened.fetch_add(1, Ordering::Relaxed);
        match open(binding, index) {
            Ok(socket) => SlotState::Open(socket),
            Err(error) => {
                if first {
                    tracing::error!(%error, "ICMP probes cannot run");
                }
                SlotState::Failed {
                    error,
                    retry: Instant::now() + REOPEN_DELAY,
                }
            }
        }
    }

    /// One lease of `binding` ended; the last one evicts the slot.
    fn release(&self, binding: &Binding) {
        let mut slots = self.lock();
        let Some(slot) = slots.get_mut(binding) else {
            return;
        };
        slot.users = slot.users.saturating_sub(1);
        if slot.users > 0 {
            return;
        }
        if let Some(Slot {
            state: SlotState::Open(socket),
            ..
        }) = slots.remove(binding)
        {
            socket.closing.store(true, Ordering::Relaxed);
            socket.wake_receiver();
            tracing::info!(%binding, "ICMP socket closes: no target uses it");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Binding, Slot>> {
        self.slots.lock_unpoisoned()
    }

    /// Whether every socket the targets use is open.
    pub fn healthy(&self) -> bool {
        self.lock()
            .values()
            .all(|slot| matches!(slot.state, SlotState::Open(_)))
    }

    /// The kinds of the open sockets, e.g. "RAW", and how many bindings cannot be opened
    /// (for the landing page).
    pub fn kinds(&self) -> (Vec<SocketKind>, usize) {
        let slots = self.lock();
        let mut kinds: Vec<SocketKind> = slots
            .values()
            .filter_map(|slot| match &slot.state {
                SlotState::Open(socket) => Some(socket.kind()),
                SlotState::Failed { .. } => None,
            })
            .collect();
        kinds.sort_by_key(|kind| *kind == SocketKind::Dgram);
        kinds.dedup();
        let failed = slots.len()
            - slots
                .values()
                .filter(|slot| matches!(slot.state, SlotState::Open(_)))
                .count();
        (kinds, failed)
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;

    use super::*;
    use crate::probe::metrics::{ProbeMetrics, TargetSeries};

    /// On the real kernel: every request to loopback comes back on the error queue with the
    /// device's transmit stamp, is found there, and its reply is timed from it.
    #[test]
    fn loopback_requests_are_timed_from_the_kernels_transmit_stamps() {
        for (v6, address) in [(false, "127.0.0.1"), (true, "::1")] {
            let pool = Arc::new(IcmpPool::default());
            let lease = pool.lease(Binding {
                v6,
                source: None,
                interface: None,
                options: PacketOptions::default(),
            });
            let socket = match lease.socket() {
                Ok(socket) => socket,
                Err(error) => {
                    skip(
                        "loopback_requests_are_timed_from_the_kernels_transmit_stamps",
                        &format!("needs an ICMP socket (root, or ping_group_range): {error}"),
                    );
                    return;
                }
            };
            let mut registry = Registry::default();
            let metrics = ProbeMetrics::register(&mut registry, vec![0.001]);
            let labels = vec![("target".to_owned(), address.to_owned())];
            let series = Arc::new(TargetSeries::new(&metrics, labels));
            let address: IpAddr = address.parse().expect("address");
            for _ in 0..5 {
                series.sent();
                socket
                    .send(address, 56, Duration::from_secs(2), &series)
                    .expect("send to loopback");
                std::thread::sleep(Duration::from_millis(10));
            }
            let want = format!("latency_responses_total{{target=\"{address}\"}} 5\n");
            let started = Instant::now();
            let mut text = String::new();
            while started.elapsed() < Duration::from_secs(3) {
                text.clear();
                prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
                if text.contains(&want) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            assert!(text.contains(&want), "{address}: no 5 replies:\n{text}");
            assert_eq!(
                socket.transmit_stamped(),
                5,
                "{address} over {}: requests with a kernel transmit stamp",
                socket.kind()
            );
        }
    }

    /// A binding whose socket cannot be opened holds `collector="probes"` at 0 while a target
    /// leases it, and is forgotten with its last lease.
    #[test]
    fn a_failed_binding_is_forgotten_with_its_last_lease() {
        let pool = Arc::new(IcmpPool::default());
        // 192.0.2.77 is no address of this host (TEST-NET-1): the bind fails, as does the
        // socket itself without privilege.
        let binding = Binding {
            v6: false,
            source: Some("192.0.2.77".parse().expect("address")),
            interface: None,
            options: PacketOptions::default(),
        };
        let first = pool.lease(binding.clone());
        let second = pool.lease(binding);
        assert!(first.socket().is_err());
        assert!(!pool.healthy());
        drop(first);
        assert!(!pool.healthy(), "one target still uses the binding");
        drop(second);
        assert!(pool.healthy());
        assert_eq!(pool.kinds(), (Vec::new(), 0));
    }

    /// The project's rule for a test that cannot run here: `SKIP <test>: <why>` on stderr, or a
    /// failure when CI requires every test to run (`XE_REQUIRE_PRIVILEGED=1`).
    pub(super) fn skip(test: &str, reason: &str) {
        if netsim::privileged_required() {
            panic!("{test}: cannot run: {reason} (XE_REQUIRE_PRIVILEGED=1 forbids skipping)");
        }
        eprintln!("SKIP {test}: {reason}");
    }
}
