//! A deterministic synthetic Xen host for the demo mode, the tests and the benchmarks.
//!
//! Every number is a pure function of the time since start and the domain's index, so two runs
//! with the same options and clock show the same host. Counters are integrals of rates that swing
//! slowly around a per-domain level (never decreasing, like a real host's); each guest's VBDs see
//! rare, tiny VBD_OO bursts (busy but healthy); a configured "storm" drives the `xvda` of one or
//! more guests into sustained ring saturation (its backing device's queue just under the ring's
//! capacity, so the host-wide storage alert can be driven too); a
//! configured "stall" stops one guest's `xvda` completing anything with requests in flight; with
//! churn on, guests are destroyed and created again under a new domid, with counters starting
//! from zero as on a real host.
//!
//! The simulated host carries its own ring geometry and netback queues: there are no sysfs,
//! debugfs or xenstore trees to read them from.

use std::f64::consts::TAU;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::xen::model::{
    BlockStat, Domain, DomainState, Host, RingIndexes, TapdiskRing, TapdiskStats, Vbd, VbdBackend,
    VbdRing, VbdStorage, Vcpu, Vif, VifKind, VifQueue,
};
use crate::xen::source::{SourceError, XenSource};

/// Seconds since the simulated host started; injectable so tests can step time.
pub type Clock = Arc<dyn Fn() -> Duration + Send + Sync>;

/// The shape of the simulated host.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedOptions {
    /// Guests (Domain-0 comes in addition).
    pub guests: usize,
    /// Guests whose `xvda` saturates its ring, each from its `after` on (several at once make
    /// the host's storage look saturated).
    pub storms: Vec<Storm>,
    /// A guest whose `xvda` stops completing requests from `after` on, with requests in flight
    /// (the backing device hangs).
    pub stall: Option<Storm>,
    /// Every `churn` one guest (in turn) is destroyed for half of that time, then created again
    /// under a new domid. `None`: the set of domains never changes.
    pub churn: Option<Duration>,
}

impl Default for SimulatedOptions {
    fn default() -> Self {
        Self {
            guests: 8,
            storms: Vec::new(),
            stall: None,
            churn: None,
        }
    }
}

/// A sustained VBD_OO storm (or, as `stall`, a hang) on one guest's first disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Storm {
    /// Guest name, e.g. `guest-0002`.
    pub domain: String,
    /// Time after start when the storm begins.
    pub after: Duration,
}

/// Extra requests per second on the storming disk, and the share of them that find the ring full.
const STORM_REQUESTS_PER_SECOND: f64 = 2_000.0;
const STORM_OUT_OF_REQUESTS_SHARE: f64 = 0.2;
/// The storming disk's backing queue depth as a share of its ring's capacity: a full ring keeps
/// the backing device's queue just under the capacity (the lab measured 61 of 64).
const STORM_DEPTH_SHARE: f64 = 0.97;
/// Requests stuck on a stalled disk's backing device.
const STALL_IN_FLIGHT: u64 = 32;
/// Major number of device-mapper in Dom0: the simulated guests' disks are logical volumes.
const DM_MAJOR: u32 = 253;

const VCPUS: u32 = 4;
const VIFS: u32 = 2;
/// `xvda`..`xvdd`.
const VBD_DEVNOS: [u32; 4] = [51712, 51728, 51744, 51760];
const VIF_QUEUES: u32 = 2;
const MIB: u64 = 1024 * 1024;

/// The simulated host.
pub struct SimulatedHost {
    options: SimulatedOptions,
    clock: Clock,
}

impl SimulatedHost {
    /// A host whose time runs with the wall clock from now.
    pub fn new(options: SimulatedOptions) -> Self {
        let started = Instant::now();
        Self::with_clock(options, Arc::new(move || started.elapsed()))
    }

    /// A host whose time is whatever `clock` returns (tests step it by hand).
    pub fn with_clock(options: SimulatedOptions, clock: Clock) -> Self {
        Self { options, clock }
    }

    /// The host at `elapsed` after start.
    pub fn host_at(&self, elapsed: Duration) -> Host {
        let t = elapsed.as_secs_f64();
        let guests = self.options.guests;
        let mut domains = Vec::with_capacity(guests + 1);
        domains.push(dom0(t));
        for index in 1..=guests {
            if let Some(life) = self.life(index, elapsed) {
                let name = guest_name(index);
                let since = |incidents: &[Storm]| {
                    incidents
                        .iter()
                        .filter(|incident| incident.domain == name)
                        .map(|incident| (t - incident.after.as_secs_f64()).max(0.0))
                        .fold(0.0, f64::max)
                };
                let incidents = Incidents {
                    storm: since(&self.options.storms),
                    stall: since(self.options.stall.as_slice()),
                };
                domains.push(guest(index, life, incidents));
            }
        }
        domains.sort_by_key(|domain| domain.domid);
        Host {
            xen_version: Some("4.17.5-sim".to_owned()),
            cpus: 16,
            cpu_hz: 2_400_000_000,
            memory_total_bytes: 64 * 1024 * MIB,
            memory_free_bytes: (64 * 1024 - 2048 - 1024 * guests.min(60) as u64) * MIB,
            domains,
        }
    }

    /// Where guest `index` is in its life at `elapsed`: `None` while destroyed.
    fn life(&self, index: usize, elapsed: Duration) -> Option<Life> {
        let Some(period) = self.options.churn.filter(|period| !period.is_zero()) else {
            return Some(Life {
                domid: index as u32,
                age: elapsed.as_secs_f64(),
            });
        };
        let guests = self.options.guests as u128;
        let epoch = elapsed.as_nanos() / period.as_nanos();
        let into_epoch = elapsed.as_nanos() % period.as_nanos();
        let slot = (index - 1) as u128;
        // Times this guest has been destroyed (its turn comes every `guests` epochs).
        let turns = if epoch >= slot {
            (epoch - slot) / guests + 1
        } else {
            0
        };
        let my_turn_now = epoch % guests == slot;
        if my_turn_now && into_epoch < period.as_nanos() / 2 {
            return None;
        }
        let created = if turns == 0 {
            0.0
        } else {
            let last_turn = slot + (turns - 1) * guests;
            (last_turn as f64 + 0.5) * period.as_secs_f64()
        };
        Some(Life {
            domid: (index as u128 + guests * turns).min(u128::from(u32::MAX)) as u32,
            age: elapsed.as_secs_f64() - created,
        })
    }
}

impl XenSource for SimulatedHost {
    fn name(&self) -> &'static str {
        "simulated"
    }

    fn describe(&self) -> String {
        format!("simulated host, {} guests", self.options.guests)
    }

    fn snapshot(&self) -> Result<Host, SourceError> {
        Ok(self.host_at((self.clock)()))
    }

    fn includes_rings(&self) -> bool {
        true
    }
}

/// Name of guest `index` (1-based): `guest-0001`.
pub fn guest_name(index: usize) -> String {
    format!("guest-{index:04}")
}

/// One incarnation of a guest: its domid and seconds since it was created.
#[derive(Debug, Clone, Copy)]
struct Life {
    domid: u32,
    age: f64,
}

/// Seconds since the storm and the stall began on a guest's first disk (0: none, or not yet).
#[derive(Debug, Clone, Copy, Default)]
struct Incidents {
    storm: f64,
    stall: f64,
}

/// Stable per-domain pseudo-random numbers in [0, 1) (splitmix64).
fn unit(seed: u64, salt: u64) -> f64 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(salt.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The integral over `[0, t]` of `level * (1 + swing * sin(2πs/period + phase))`: a counter that
/// grows at a rate swinging slowly around `level`, never backwards (`swing` < 1).
fn integral(level: f64, swing: f64, period: f64, phase: f64, t: f64) -> f64 {
    let omega = TAU / period;
    level * (t - swing / omega * ((omega * t + phase).cos() - phase.cos()))
}

fn dom0(t: f64) -> Domain {
    let vcpus = (0..VCPUS)
        .map(|id| Vcpu {
            id,
            online: true,
            cpu_time: Duration::from_secs_f64(integral(0.05, 0.5, 300.0, f64::from(id), t)),
        })
        .collect::<Vec<_>>();
    Domain {
        domid: 0,
        name: "Domain-0".to_owned(),
        uuid: Some("00000000-0000-0000-0000-000000000000".to_owned()),
        ssid: 0,
        cpu_time: vcpus.iter().map(|vcpu| vcpu.cpu_time).sum(),
        vcpus,
        memory_bytes: 2048 * MIB,
        memory_max_bytes: None,
        state: DomainState {
            running: true,
            ..DomainState::default()
        },
        vifs: Vec::new(),
        vbds: Vec::new(),
        memory_target_bytes: Some(2048 * MIB),
        guest_memory_free_bytes: None,
    }
}

/// Guest `index` `life.age` seconds after its creation, with the incidents of its first disk.
fn guest(index: usize, life: Life, incidents: Incidents) -> Domain {
    let seed = index as u64;
    let t = life.age;
    let busy = unit(seed, 1);
    let vcpus = (0..VCPUS)
        .map(|id| {
            let level = 0.02 + 0.6 * busy * unit(seed, 10 + u64::from(id));
            Vcpu {
                id,
                // The last VCPU of every third guest is offline, as after `xl vcpu-set`.
                online: !(index % 3 == 0 && id == VCPUS - 1),
                cpu_time: Duration::from_secs_f64(integral(level, 0.6, 180.0, f64::from(id), t)),
            }
        })
        .collect::<Vec<_>>();
    let mut vifs: Vec<Vif> = (0..VIFS).map(|devid| vif(seed, devid, t)).collect();
    // Every fourth guest is HVM and still has its emulated NIC (`tap<domid>.0`): a trickle of
    // boot-time traffic, no netback queues.
    if index % 4 == 0 {
        let packets = (t.min(30.0) * 10.0) as u64;
        vifs.push(Vif {
            devid: 0,
            kind: VifKind::Tap,
            rx_bytes: packets * 300,
            rx_packets: packets,
            tx_bytes: packets * 200,
            tx_packets: packets,
            ..Vif::default()
        });
    }
    let vbds = VBD_DEVNOS
        .iter()
        .enumerate()
        .map(|(slot, &devno)| {
            vbd(
                seed,
                slot as u64,
                devno,
                t,
                if slot == 0 {
                    incidents
                } else {
                    Incidents::default()
                },
            )
        })
        .collect();
    let memory = (512 + 512 * (index as u64 % 4)) * MIB;
    Domain {
        domid: life.domid,
        name: guest_name(index),
        uuid: Some(format!(
            "5e1a7ed0-0000-4000-8000-{:012x}",
            (index as u64) << 16 | u64::from(life.domid & 0xffff)
        )),
        ssid: 0,
        cpu_time: vcpus.iter().map(|vcpu| vcpu.cpu_time).sum(),
        vcpus,
        memory_bytes: memory,
        memory_max_bytes: (index % 5 != 0).then_some(memory + 256 * MIB),
        state: DomainState {
            // A guest alternates between running and blocked (waiting for I/O) every few seconds.
            running: (t as u64 / 7 + seed) % 2 == 0,
            blocked: (t as u64 / 7 + seed) % 2 == 1,
            ..DomainState::default()
        },
        vifs,
        vbds,
        memory_target_bytes: Some(memory),
        // Only guests with an agent (every other one) report their free memory.
        guest_memory_free_bytes: (index % 2 == 1)
            .then(|| (memory as f64 * (0.2 + 0.5 * unit(seed, 3))) as u64 / 4096 * 4096),
    }
}

fn vif(seed: u64, devid: u32, t: f64) -> Vif {
    let salt = 100 + u64::from(devid) * 10;
    let packets_per_second = 20.0 + 2_000.0 * unit(seed, salt);
    let bytes_per_packet = 200.0 + 1_200.0 * unit(seed, salt + 1);
    let rx_packets = integral(packets_per_second, 0.5, 240.0, 0.3, t) as u64;
    let tx_packets = integral(packets_per_second * 1.5, 0.5, 240.0, 1.1, t) as u64;
    let queues = (0..VIF_QUEUES)
        .map(|id| {
            let wobble = (t as u64).wrapping_add(seed + u64::from(id)) % 8;
            VifQueue {
                id,
                tx: RingIndexes {
                    entries: 256,
                    requests_outstanding: wobble as u32,
                    responses_unpublished: 0,
                },
                rx: RingIndexes {
                    entries: 256,
                    requests_outstanding: 128 + wobble as u32 * 8,
                    responses_unpublished: (wobble % 2) as u32,
                },
                tx_pending_requests: (wobble / 2) as u32,
                tx_dealloc_queue: 0,
                rx_queue_length: (wobble * 1_500) as u32,
                rx_queue_max: 131_072,
                rx_queue_stopped: false,
                // The second vif is limited to 100 Mbit/s (xl's `rate=12500000B/s@20ms`).
                credit_bytes: if devid == 1 { 250_000 } else { u64::MAX },
                credit_period: if devid == 1 {
                    Duration::from_millis(20)
                } else {
                    Duration::ZERO
                },
            }
        })
        .collect();
    Vif {
        devid,
        rx_bytes: (rx_packets as f64 * bytes_per_packet) as u64,
        rx_packets,
        rx_errors: 0,
        rx_drops: rx_packets / 50_000,
        tx_bytes: (tx_packets as f64 * bytes_per_packet * 1.3) as u64,
        tx_packets,
        tx_errors: 0,
        tx_drops: tx_packets / 80_000,
        kind: VifKind::Netback,
        queues,
    }
}

fn vbd(seed: u64, slot: u64, devno: u32, t: f64, incidents: Incidents) -> Vbd {
    let salt = 200 + slot * 10;
    let blkback = slot != 3;
    let ring = VbdRing {
        queues: if slot == 0 { 2 } else { 1 },
        pages: if slot == 0 { 4 } else { 1 },
        max_pages: Some(16),
        max_queues: Some(4),
        physical_device: Some((DM_MAJOR, (seed.saturating_sub(1) * 3 + slot) as u32)),
    };
    // A stalled disk completes nothing from the stall on: its counters stay where they were.
    let stall = incidents.stall.min(t);
    let done = t - stall;
    let storm = (incidents.storm.min(t) - stall).max(0.0);
    let iops = 2.0 + 150.0 * unit(seed, salt) / (slot + 1) as f64;
    let read_share = 0.3 + 0.5 * unit(seed, salt + 1);
    let sectors_per_request = 8.0 + 120.0 * unit(seed, salt + 2);
    let requests = integral(iops, 0.7, 600.0, unit(seed, salt + 3) * TAU, done);
    let storm_requests = STORM_REQUESTS_PER_SECOND * storm;
    let reads = requests * read_share + storm_requests / 2.0;
    let writes = requests * (1.0 - read_share) + storm_requests / 2.0;
    // Busy but healthy: a burst of 1–4 VBD_OO every 5–15 minutes.
    let burst_every = 300.0 + 600.0 * unit(seed, salt + 4);
    let burst_size = 1.0 + (4.0 * unit(seed, salt + 5)).floor();
    let out_of_requests =
        (done / burst_every).floor() * burst_size + storm_requests * STORM_OUT_OF_REQUESTS_SHARE;
    let bytes_to_sectors = |requests: f64| (requests * sectors_per_request) as u64;
    // `xvdc` is a tapdisk3 disk, as on XCP-ng: its own counters, no VBD_OO (tapdisk never
    // counts it), one ring whose occupancy tapdisk reports.
    if slot == TAPDISK3_SLOT {
        return tapdisk3_vbd(seed, devno, t, reads, writes, bytes_to_sectors);
    }
    // The backing device: each request takes its latency; in a storm the ring keeps the queue
    // just under its capacity, so by Little's law a storm request takes depth / rate.
    let read_latency = 0.0005 + 0.004 * unit(seed, salt + 6);
    let write_latency = 0.001 + 0.006 * unit(seed, salt + 7);
    let storm_depth = ring.capacity_requests() as f64 * STORM_DEPTH_SHARE;
    let storm_latency = storm_depth / STORM_REQUESTS_PER_SECOND;
    let base_reads = requests * read_share;
    let base_writes = requests * (1.0 - read_share);
    let read_time = base_reads * read_latency + storm_requests / 2.0 * storm_latency;
    let write_time = base_writes * write_latency + storm_requests / 2.0 * storm_latency;
    let busy_share =
        (iops * (read_share * read_latency + (1.0 - read_share) * write_latency)).min(0.95);
    let wobble = (t as u64).wrapping_add(seed + slot);
    let in_flight = if stall > 0.0 {
        STALL_IN_FLIGHT
    } else if storm > 0.0 {
        ring.capacity_requests() - wobble % 5
    } else {
        wobble % 3
    };
    let ms = |seconds: f64| Duration::from_millis((seconds * 1000.0) as u64);
    let backing = BlockStat {
        reads_completed: reads as u64,
        read_time: ms(read_time),
        writes_completed: writes as u64,
        write_time: ms(write_time),
        in_flight,
        // Busy all the time in a storm, and while requests hang in a stall.
        io_time: ms(busy_share * (done - storm) + storm + stall),
        // Linux 5.0 and later sum the completed requests' times (reads, writes, discards, flushes).
        queue_time: ms(read_time + write_time),
    };
    Vbd {
        devno,
        backend: if blkback {
            VbdBackend::Blkback
        } else {
            VbdBackend::Qdisk
        },
        read_requests: reads as u64,
        write_requests: writes as u64,
        read_sectors: bytes_to_sectors(reads),
        write_sectors: bytes_to_sectors(writes),
        out_of_requests: out_of_requests as u64,
        flush_requests: blkback.then_some((writes / 20.0) as u64),
        discard_requests: blkback.then_some((done / 3_600.0) as u64),
        error: Some(false),
        ring: blkback.then_some(ring),
        backing: blkback.then_some(backing),
        ..Vbd::default()
    }
}

/// The slot (`xvdc`) of every guest whose disk tapdisk3 serves.
const TAPDISK3_SLOT: u64 = 2;

fn tapdisk3_vbd(
    seed: u64,
    devno: u32,
    t: f64,
    reads: f64,
    writes: f64,
    sectors: impl Fn(f64) -> u64,
) -> Vbd {
    // Service time: 0.2-2 ms a read, writes half that (a cache in front).
    let read_latency = 0.000_2 + 0.001_8 * unit(seed, 300);
    let wobble = (t as u64 / 5).wrapping_add(seed) % 6;
    Vbd {
        devno,
        backend: VbdBackend::Tapdisk3,
        read_requests: reads as u64,
        write_requests: writes as u64,
        read_sectors: sectors(reads),
        write_sectors: sectors(writes),
        out_of_requests: 0,
        error: Some(false),
        ring: Some(VbdRing {
            queues: 1,
            pages: 1,
            max_pages: Some(8),
            max_queues: None,
            physical_device: None,
        }),
        tapdisk: Some(TapdiskStats {
            // Two reads always in flight.
            read_requests_submitted: reads as u64 + 2,
            // Empty barriers are submitted, never completed.
            write_requests_submitted: writes as u64 + (writes / 50.0) as u64,
            read_time: Duration::from_secs_f64(reads * read_latency),
            write_time: Duration::from_secs_f64(writes * read_latency / 2.0),
            io_errors: 0,
            low_memory_mode: false,
        }),
        io_ring: Some(TapdiskRing {
            indexes: RingIndexes {
                entries: 32,
                requests_outstanding: wobble as u32,
                responses_unpublished: 0,
            },
            age: Duration::from_secs_f64(t % 5.0),
        }),
        storage: Some(VbdStorage {
            sr_uuid: Some("5e1a7ed0-5500-4000-8000-000000000001".to_owned()),
            vdi_uuid: Some(format!("5e1a7ed0-d100-4000-8000-{seed:012x}")),
        }),
        ..Vbd::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(options: SimulatedOptions, at: f64) -> Host {
        SimulatedHost::new(options).host_at(Duration::from_secs_f64(at))
    }

    #[test]
    fn same_time_same_host() {
        let options = SimulatedOptions::default();
        assert_eq!(host(options.clone(), 123.4), host(options, 123.4));
    }

    #[test]
    fn shape_is_as_documented() {
        let host = host(SimulatedOptions::default(), 60.0);
        assert_eq!(host.domains.len(), 9);
        assert_eq!(host.domains[0].name, "Domain-0");
        let guest = &host.domains[1];
        assert_eq!(guest.name, "guest-0001");
        assert_eq!(
            (guest.vcpus.len(), guest.vifs.len(), guest.vbds.len()),
            (4, 2, 4)
        );
        assert!(guest.vifs.iter().all(|vif| vif.queues.len() == 2));
    }

    #[test]
    fn counters_never_go_backwards() {
        let options = SimulatedOptions::default();
        let mut previous = host(options.clone(), 0.0);
        for step in 1..400 {
            let next = host(options.clone(), f64::from(step) * 3.7);
            for (a, b) in previous.domains.iter().zip(&next.domains) {
                assert!(b.cpu_time >= a.cpu_time, "cpu of {}", b.name);
                for (x, y) in a.vbds.iter().zip(&b.vbds) {
                    assert!(y.read_requests >= x.read_requests);
                    assert!(y.write_sectors >= x.write_sectors);
                    assert!(y.out_of_requests >= x.out_of_requests);
                    if let (Some(x), Some(y)) = (x.backing, y.backing) {
                        assert!(y.queue_time >= x.queue_time && y.io_time >= x.io_time);
                        assert!(y.writes_completed >= x.writes_completed);
                        assert!(y.read_time >= x.read_time && y.write_time >= x.write_time);
                    }
                }
                for (x, y) in a.vifs.iter().zip(&b.vifs) {
                    assert!(y.rx_bytes >= x.rx_bytes && y.tx_packets >= x.tx_packets);
                }
            }
            previous = next;
        }
    }

    #[test]
    fn healthy_guests_rarely_run_out_of_requests() {
        let host = host(SimulatedOptions::default(), 3_600.0);
        for vbd in host.domains.iter().flat_map(|domain| &domain.vbds) {
            let requests = vbd.read_requests + vbd.write_requests;
            assert!(
                (vbd.out_of_requests as f64) < requests as f64 * 0.01,
                "{} OO of {requests} requests",
                vbd.out_of_requests
            );
        }
    }

    #[test]
    fn storm_saturates_one_disk_from_its_start() {
        let options = SimulatedOptions {
            storms: vec![Storm {
                domain: "guest-0002".to_owned(),
                after: Duration::from_secs(100),
            }],
            ..SimulatedOptions::default()
        };
        let oo = |at: f64| {
            let host = host(options.clone(), at);
            let guest = host
                .domains
                .iter()
                .find(|domain| domain.name == "guest-0002")
                .cloned()
                .expect("guest-0002 exists");
            guest.vbds[0].out_of_requests
        };
        assert!(oo(99.0) < 10, "before the storm");
        let in_one_minute = oo(220.0) - oo(160.0);
        let expected = STORM_REQUESTS_PER_SECOND * STORM_OUT_OF_REQUESTS_SHARE * 60.0;
        assert!(
            (in_one_minute as f64 - expected).abs() < expected * 0.05,
            "{in_one_minute} VBD_OO in a minute of storm"
        );
    }

    /// Several storms: each named guest's first disk saturates from its own start, the others
    /// stay healthy.
    #[test]
    fn storms_on_two_guests_saturate_both_first_disks_only() {
        let storm = |domain: &str, after: u64| Storm {
            domain: domain.to_owned(),
            after: Duration::from_secs(after),
        };
        let options = SimulatedOptions {
            storms: vec![storm("guest-0001", 100), storm("guest-0003", 200)],
            ..SimulatedOptions::default()
        };
        let in_flight = |name: &str, slot: usize, at: f64| {
            host(options.clone(), at)
                .domains
                .into_iter()
                .find(|domain| domain.name == name)
                .and_then(|domain| domain.vbds[slot].backing)
                .expect("a blkback disk")
                .in_flight
        };
        assert!(in_flight("guest-0001", 0, 150.0) > 60);
        assert!(in_flight("guest-0003", 0, 150.0) < 3, "before its storm");
        assert!(in_flight("guest-0003", 0, 250.0) > 60);
        for (name, slot) in [("guest-0002", 0), ("guest-0001", 1), ("guest-0003", 1)] {
            assert!(in_flight(name, slot, 250.0) < 3, "{name} slot {slot}");
        }
    }

    fn first_disk(options: &SimulatedOptions, name: &str, at: f64) -> Vbd {
        host(options.clone(), at)
            .domains
            .into_iter()
            .find(|domain| domain.name == name)
            .map(|domain| domain.vbds[0].clone())
            .expect("the guest exists")
    }

    /// Every blkback VBD has a backing device; a healthy one has a shallow queue. In a storm
    /// the backing device's queue sits just under the ring's capacity: in flight, and the rate
    /// of the weighted queue time (the average depth).
    #[test]
    fn storm_keeps_the_backing_queue_at_the_ring_capacity() {
        let options = SimulatedOptions {
            storms: vec![Storm {
                domain: "guest-0002".to_owned(),
                after: Duration::from_secs(100),
            }],
            ..SimulatedOptions::default()
        };
        let healthy = host(options.clone(), 3_600.0);
        for vbd in healthy.domains.iter().flat_map(|domain| &domain.vbds) {
            let blkback = vbd.backend == VbdBackend::Blkback;
            assert_eq!(vbd.backing.is_some(), blkback, "{vbd:?}");
            assert_eq!(
                vbd.ring
                    .as_ref()
                    .and_then(|ring| ring.physical_device)
                    .is_some(),
                blkback
            );
        }
        let before = first_disk(&options, "guest-0002", 99.0);
        let capacity = before.ring.as_ref().expect("ring").capacity_requests();
        let backing = |vbd: &Vbd| vbd.backing.expect("backing");
        assert!(backing(&before).in_flight < 3, "{before:?}");
        let (a, b) = (
            first_disk(&options, "guest-0002", 160.0),
            first_disk(&options, "guest-0002", 220.0),
        );
        let depth = (backing(&b).queue_time - backing(&a).queue_time).as_secs_f64() / 60.0;
        let capacity = capacity as f64;
        assert!(
            depth > capacity * 0.95 && depth < capacity,
            "average depth {depth} against capacity {capacity}"
        );
        let in_flight = backing(&b).in_flight as f64;
        assert!(in_flight > capacity * 0.95 && in_flight <= capacity);
        let busy = (backing(&b).io_time - backing(&a).io_time).as_secs_f64();
        assert!((busy - 60.0).abs() < 0.01, "busy {busy} s of 60");
    }

    /// A stalled disk keeps requests in flight and completes nothing; its device stays busy.
    #[test]
    fn stall_keeps_requests_in_flight_and_completes_nothing() {
        let options = SimulatedOptions {
            stall: Some(Storm {
                domain: "guest-0003".to_owned(),
                after: Duration::from_secs(100),
            }),
            ..SimulatedOptions::default()
        };
        let (a, b) = (
            first_disk(&options, "guest-0003", 160.0),
            first_disk(&options, "guest-0003", 220.0),
        );
        let (x, y) = (a.backing.expect("backing"), b.backing.expect("backing"));
        assert_eq!(
            (x.in_flight, y.in_flight),
            (STALL_IN_FLIGHT, STALL_IN_FLIGHT)
        );
        assert_eq!(
            (x.reads_completed, x.writes_completed, x.queue_time),
            (y.reads_completed, y.writes_completed, y.queue_time)
        );
        assert_eq!(a.read_requests, b.read_requests);
        assert_eq!((y.io_time - x.io_time).as_secs(), 60);
        let other = first_disk(&options, "guest-0004", 220.0)
            .backing
            .expect("backing");
        assert!(
            other.writes_completed
                > first_disk(&options, "guest-0004", 160.0)
                    .backing
                    .expect("backing")
                    .writes_completed
        );
    }

    #[test]
    fn churn_destroys_and_recreates_under_a_new_domid() {
        let options = SimulatedOptions {
            guests: 4,
            churn: Some(Duration::from_secs(10)),
            ..SimulatedOptions::default()
        };
        let names = |at: f64| -> Vec<(String, u32)> {
            host(options.clone(), at)
                .domains
                .into_iter()
                .map(|domain| (domain.name, domain.domid))
                .collect()
        };
        // Epoch 0, first half: guest 1 is down.
        assert!(!names(1.0).iter().any(|(name, _)| name == "guest-0001"));
        // Second half: back under domid 1 + 4.
        assert!(names(6.0).contains(&("guest-0001".to_owned(), 5)));
        // Its counters restarted: younger than the others.
        let later = host(options.clone(), 6.0);
        let cpu = |name: &str| {
            later
                .domains
                .iter()
                .find(|domain| domain.name == name)
                .map(|domain| domain.cpu_time)
                .expect("exists")
        };
        assert!(cpu("guest-0001") < cpu("guest-0002") || cpu("guest-0002").is_zero());
        // Epoch 5 = guest 2's second turn: domid 2 + 2*4 afterwards.
        assert!(names(56.0).contains(&("guest-0002".to_owned(), 10)));
        let domids: Vec<u32> = names(56.0).into_iter().map(|(_, domid)| domid).collect();
        let mut unique = domids.clone();
        unique.dedup();
        assert_eq!(domids, unique);
    }
}
