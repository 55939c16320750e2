//! The responder: reads requests from the TUN device, decides each one's fate (answer, delay,
//! loss) and hands the answer to the timer thread.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::impair::{Impairment, Impairments, JitterDist, Rng, TargetSpec};
use crate::packet::{self, Kind, Packet, Segment};
use crate::stats::{AddressCounts, Counters};
use crate::timer::{Scheduler, Timer, Tuning, REALTIME_PRIORITY};
use crate::tun::create_tun;
use crate::{Error, Prefix, Stats};

/// How often the reader thread checks whether it should stop.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Everything a responder is configured with. `Options::default()` answers at once for
/// 198.19.0.0/24 and fd00:198:19::/64 on device `xesim0`.
#[derive(Debug, Clone)]
pub struct Options {
    /// TUN device name (at most 15 bytes; `%d` lets the kernel pick a number).
    pub dev: String,
    /// IPv4 address and prefix of the device; every other address in it is a target.
    pub prefix4: Option<Prefix>,
    /// IPv6 address and prefix of the device.
    pub prefix6: Option<Prefix>,
    /// Delay, jitter and loss, default and per address.
    pub impairments: Impairments,
    /// Ports that answer a SYN with RST-ACK (connection refused).
    pub closed_ports: HashSet<u16>,
    /// Ports that never answer a SYN (connect timeout).
    pub silent_ports: HashSet<u16>,
    /// Simulated routers in front of every target, nearest first: a request to a target whose
    /// TTL / hop limit is `i` ≤ the routers of its family is answered with ICMP time exceeded
    /// from the `i`-th of them, after `i / (routers + 1)` of the target's delay (loss applies).
    /// A path tracer then sees these hops and the target behind them. Empty: no routers.
    pub routers: Vec<IpAddr>,
    /// Whether a UDP datagram to a target is answered with ICMP port unreachable (after the
    /// target's delay), as a host without a listener does: what ends a UDP traceroute.
    /// Off: UDP is ignored.
    pub udp_unreachable: bool,
    /// Seed of the generator behind loss, jitter and TCP initial sequence numbers.
    pub seed: u64,
    /// TTL (IPv4) or hop limit (IPv6) of answers.
    pub ttl: u8,
    /// Namespace (from `ip netns add`) to create the device in; `None` for the current one.
    pub netns: Option<String>,
    /// Real-time scheduling and busy-wait margin of the timer.
    pub tuning: Tuning,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            dev: "xesim0".into(),
            prefix4: Prefix::new(IpAddr::from([198, 19, 0, 1]), 24),
            prefix6: Prefix::new(IpAddr::from([0xfd00, 0x198, 0x19, 0, 0, 0, 0, 1]), 64),
            impairments: Impairments::default(),
            closed_ports: HashSet::new(),
            silent_ports: HashSet::new(),
            routers: Vec::new(),
            udp_unreachable: false,
            seed: 1,
            ttl: 64,
            netns: None,
            tuning: Tuning::default(),
        }
    }
}

impl Options {
    /// Sets the default delay (no jitter, no loss change).
    pub fn delay(mut self, delay: Duration) -> Options {
        self.impairments.default.delay = delay;
        self
    }

    /// Sets the default jitter and its distribution.
    pub fn jitter(mut self, jitter: Duration, dist: JitterDist) -> Options {
        self.impairments.default.jitter = jitter;
        self.impairments.dist = dist;
        self
    }

    /// Sets the default loss probability.
    pub fn loss(mut self, loss: f64) -> Options {
        self.impairments.default.loss = loss;
        self
    }

    /// Overrides the impairment for one address.
    pub fn target(mut self, address: IpAddr, impairment: Impairment) -> Options {
        self.impairments.targets.insert(address, impairment);
        self
    }

    /// Adds a parsed `--target` override.
    pub fn target_spec(self, spec: TargetSpec) -> Options {
        self.target(spec.address, spec.impairment)
    }

    /// Creates the device inside namespace `name`.
    pub fn netns(mut self, name: &str) -> Options {
        self.netns = Some(name.to_owned());
        self
    }

    /// Uses device name `dev`.
    pub fn dev(mut self, dev: &str) -> Options {
        self.dev = dev.to_owned();
        self
    }

    /// Sets or removes the IPv4 prefix.
    pub fn prefix4(mut self, prefix: Option<Prefix>) -> Options {
        self.prefix4 = prefix;
        self
    }

    /// Sets or removes the IPv6 prefix.
    pub fn prefix6(mut self, prefix: Option<Prefix>) -> Options {
        self.prefix6 = prefix;
        self
    }

    /// Makes `port` refuse connections.
    pub fn closed_port(mut self, port: u16) -> Options {
        self.closed_ports.insert(port);
        self
    }

    /// Makes `port` swallow SYNs.
    pub fn silent_port(mut self, port: u16) -> Options {
        self.silent_ports.insert(port);
        self
    }

    /// Puts `routers` (nearest first) in front of every target, see [`Options::routers`].
    pub fn routers(mut self, routers: Vec<IpAddr>) -> Options {
        self.routers = routers;
        self
    }

    /// Answers UDP with ICMP port unreachable (or not, the default).
    pub fn udp_unreachable(mut self, on: bool) -> Options {
        self.udp_unreachable = on;
        self
    }

    /// Host placement: a device name and IPv4/IPv6 prefixes from 198.18.0.0/15 and
    /// fd00:198:18::/48 that no other device or route on this host uses yet; the responder
    /// then runs in the current namespace with routes to its own prefixes only.
    pub fn on_host(mut self) -> Options {
        let slot = crate::host::free_host_slot();
        self.dev = slot.dev;
        self.prefix4 = Some(slot.prefix4);
        self.prefix6 = Some(slot.prefix6);
        self.netns = None;
        self
    }

    /// Sets the RNG seed.
    pub fn seed(mut self, seed: u64) -> Options {
        self.seed = seed;
        self
    }

    /// Sets the TTL / hop limit of answers.
    pub fn ttl(mut self, ttl: u8) -> Options {
        self.ttl = ttl;
        self
    }
}

/// A running responder. Dropping it stops both threads and closes the device, which removes it.
pub struct Responder {
    dev: String,
    stop: Arc<AtomicBool>,
    changes: Arc<Changes>,
    counters: Arc<Counters>,
    reader: Option<JoinHandle<()>>,
    timer: Option<Timer>,
}

impl Responder {
    /// Creates the device, gives it its addresses and starts answering. When this returns the
    /// prefixes are routed and usable.
    pub fn spawn(options: Options) -> Result<Responder, Error> {
        let prefixes: Vec<Prefix> = options
            .prefix4
            .iter()
            .chain(&options.prefix6)
            .copied()
            .collect();
        let (device, dev) = create_tun(&options.dev, options.netns.as_deref(), &prefixes)?;
        let device = Arc::new(device);
        let counters = Arc::new(Counters::default());
        let timer = Timer::spawn(Arc::clone(&device), Arc::clone(&counters), options.tuning)
            .map_err(|source| Error::Thread {
                name: "netsim-timer",
                source,
            })?;
        let stop = Arc::new(AtomicBool::new(false));
        let changes = Arc::new(Changes::default());
        let mut reader = Reader {
            rng: Rng::seeded(options.seed),
            options,
            changes: Arc::clone(&changes),
            scheduler: timer.scheduler(),
            counters: Arc::clone(&counters),
        };
        let reader_stop = Arc::clone(&stop);
        let reader = std::thread::Builder::new()
            .name("netsim-reader".into())
            .spawn(move || reader.run(&device, &reader_stop))
            .map_err(|source| Error::Thread {
                name: "netsim-reader",
                source,
            })?;
        Ok(Responder {
            dev,
            stop,
            changes,
            counters,
            reader: Some(reader),
            timer: Some(timer),
        })
    }

    /// The device name the kernel gave.
    pub fn dev(&self) -> &str {
        &self.dev
    }

    /// From now on, requests for `address` get `impairment` (an outage or a degradation that
    /// starts while the probes run). The reader picks the change up with its next request.
    pub fn impair(&self, address: IpAddr, impairment: Impairment) {
        self.changes
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(address, impairment);
        self.changes.any.store(true, Ordering::Release);
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    /// Answers so far that left more than `bound` after they were due: the machine's own
    /// scheduling delay, which a test can tell apart from the prober's.
    pub fn answers_later_than(&self, bound: Duration) -> u64 {
        self.counters.answers_later_than(bound)
    }

    /// Requests seen so far per target address (only addresses that were asked at least once):
    /// lets a test check that every target was probed.
    pub fn by_address(&self) -> HashMap<IpAddr, AddressCounts> {
        self.counters.by_address()
    }

    /// Stops answering, removes the device and returns the final counters.
    pub fn stop(mut self) -> Stats {
        self.shutdown();
        self.counters.snapshot()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.timer.take();
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Per-address impairments set while running, for the reader to take over; `any` spares the
/// reader the lock on every request.
#[derive(Default)]
struct Changes {
    any: AtomicBool,
    pending: Mutex<HashMap<IpAddr, Impairment>>,
}

struct Reader {
    options: Options,
    changes: Arc<Changes>,
    rng: Rng,
    scheduler: Scheduler,
    counters: Arc<Counters>,
}

impl Reader {
    fn run(&mut self, device: &File, stop: &AtomicBool) {
        if self.options.tuning.realtime {
            // The arrival timestamp is taken here; a preempted reader would stretch every delay.
            let _ = crate::sys::set_realtime(REALTIME_PRIORITY);
        }
        let mut buffer = vec![0u8; 65_536];
        while !stop.load(Ordering::Relaxed) {
            match crate::sys::poll_readable(device, STOP_POLL) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(error) => {
                    eprintln!("netsim: poll {}: {error}", self.options.dev);
                    return;
                }
            }
            let len = match (&*device).read(&mut buffer) {
                Ok(len) => len,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    eprintln!("netsim: read {}: {error}", self.options.dev);
                    return;
                }
            };
            // The request's arrival time: every delay counts from here.
            let now = Instant::now();
            Counters::add(&self.counters.received);
            self.handle(&buffer[..len], now);
        }
    }

    fn handle(&mut self, bytes: &[u8], now: Instant) {
        let Some(request) = packet::parse_packet(bytes).filter(|p| self.is_target(p.dst)) else {
            Counters::add(&self.counters.ignored);
            return;
        };
        if !matches!(request.kind, Kind::Other) && self.before_routers(&request, bytes, now) {
            return;
        }
        match request.kind {
            Kind::EchoRequest { message } => {
                Counters::add(&self.counters.echo_requests);
                let fate = self.fate(request.dst);
                self.counters
                    .add_request(request.dst, request.traffic_class, fate.is_none());
                if let Some(delay) = fate {
                    let reply = packet::build_echo_reply(&request, message, self.options.ttl);
                    self.scheduler.schedule(now + delay, reply);
                }
            }
            Kind::Tcp(segment) if segment.is_syn() => self.handle_syn(&request, &segment, now),
            Kind::Tcp(segment) if segment.wants_reset() => {
                // FIN or data after a simulated handshake: end the connection at once.
                Counters::add(&self.counters.resets);
                let reset = packet::build_reset(&request, &segment, self.options.ttl);
                self.scheduler.schedule(now, reset);
            }
            Kind::Udp { .. } if self.options.udp_unreachable => {
                let Some(delay) = self.fate(request.dst) else {
                    return;
                };
                Counters::add(&self.counters.port_unreachable);
                let answer = packet::build_port_unreachable(&request, bytes, self.options.ttl);
                self.scheduler.schedule(now + delay, answer);
            }
            Kind::Tcp(_) | Kind::Udp { .. } | Kind::Other => {
                Counters::add(&self.counters.ignored);
            }
        }
    }

    /// Answers `request` with ICMP time exceeded if its TTL / hop limit runs out at one of the
    /// simulated routers; whether it did (or the loss took it there).
    fn before_routers(&mut self, request: &Packet<'_>, bytes: &[u8], now: Instant) -> bool {
        let family = |address: &&IpAddr| address.is_ipv4() == request.dst.is_ipv4();
        let routers = self.options.routers.iter().filter(family).count();
        let Some(&router) = usize::from(request.ttl)
            .checked_sub(1)
            .and_then(|hop| self.options.routers.iter().filter(family).nth(hop))
        else {
            return false;
        };
        let Some(delay) = self.fate(request.dst) else {
            return true;
        };
        let Some(answer) = packet::build_time_exceeded(request, bytes, router, self.options.ttl)
        else {
            return false;
        };
        Counters::add(&self.counters.time_exceeded);
        // The i-th router is i / (routers + 1) of the way to the target.
        let share = f64::from(request.ttl) / (routers as f64 + 1.0);
        self.scheduler.schedule(now + delay.mul_f64(share), answer);
        true
    }

    fn handle_syn(&mut self, request: &Packet<'_>, syn: &Segment, now: Instant) {
        Counters::add(&self.counters.syns);
        if self.options.silent_ports.contains(&syn.dst_port) {
            Counters::add(&self.counters.silent);
            self.counters
                .add_request(request.dst, request.traffic_class, false);
            return;
        }
        let fate = self.fate(request.dst);
        self.counters
            .add_request(request.dst, request.traffic_class, fate.is_none());
        let Some(delay) = fate else {
            return;
        };
        let answer = if self.options.closed_ports.contains(&syn.dst_port) {
            Counters::add(&self.counters.resets);
            packet::build_reset(request, syn, self.options.ttl)
        } else {
            let isn = (self.rng.next_u64() >> 32) as u32;
            packet::build_syn_ack(request, syn, isn, self.options.ttl)
        };
        self.scheduler.schedule(now + delay, answer);
    }

    /// `None` (and counted) if the request is lost, else its delay.
    fn fate(&mut self, address: IpAddr) -> Option<Duration> {
        if self.changes.any.swap(false, Ordering::Acquire) {
            let pending = std::mem::take(
                &mut *self
                    .changes
                    .pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            self.options.impairments.targets.extend(pending);
        }
        let impairments = &self.options.impairments;
        let fate = impairments
            .for_address(address)
            .sample(impairments.dist, &mut self.rng);
        if fate.is_none() {
            Counters::add(&self.counters.dropped);
        }
        fate
    }

    fn is_target(&self, address: IpAddr) -> bool {
        [self.options.prefix4, self.options.prefix6]
            .iter()
            .flatten()
            .any(|prefix| prefix.contains(address) && prefix.address != address)
    }
}
