//! Plain snapshot of one Xen host at one moment: owned data, no pointers, no metric types.
//!
//! Every source (libxenstat, the simulated host, fixture trees) produces a [`Host`]; the collector
//! turns it into metric families. A value that a source cannot know is an `Option`, never a default.

use std::time::Duration;

/// One Xen host (the hypervisor seen from Dom0) and its domains.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Host {
    /// Hypervisor version, e.g. `4.17.7`.
    pub xen_version: Option<String>,
    /// Physical CPUs.
    pub cpus: u32,
    /// CPU clock in hertz.
    pub cpu_hz: u64,
    pub memory_total_bytes: u64,
    pub memory_free_bytes: u64,
    /// Domains that exist now, in domid order.
    pub domains: Vec<Domain>,
}

/// Run state flags of a domain as the hypervisor reports them (several can be set at once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DomainState {
    pub running: bool,
    pub blocked: bool,
    pub paused: bool,
    pub shutdown: bool,
    pub crashed: bool,
    pub dying: bool,
}

/// One domain (Dom0 or a guest).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Domain {
    pub domid: u32,
    pub name: String,
    /// From xenstore `/local/domain/<id>/vm` (`/vm/<uuid>`); libxenstat has no accessor.
    pub uuid: Option<String>,
    pub ssid: u32,
    /// Total CPU time consumed by all VCPUs.
    pub cpu_time: Duration,
    pub vcpus: Vec<Vcpu>,
    pub memory_bytes: u64,
    /// `None` when the domain's maximum is unlimited.
    pub memory_max_bytes: Option<u64>,
    pub state: DomainState,
    pub vifs: Vec<Vif>,
    pub vbds: Vec<Vbd>,
    /// Balloon target the toolstack set (xenstore `memory/target`); `None` when not read.
    pub memory_target_bytes: Option<u64>,
    /// Free memory the guest agent reports (xenstore `data/meminfo_free`): written by the
    /// guest, so for display only, never trusted for a decision.
    pub guest_memory_free_bytes: Option<u64>,
}

/// One virtual CPU of a domain.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vcpu {
    pub id: u32,
    pub online: bool,
    pub cpu_time: Duration,
}

/// One virtual network interface, as Dom0's backend interface `vif<domid>.<devid>` counts it:
/// `rx_*` is what Dom0 received on the vif (what the guest sent; xentop NETRX), `tx_*` what Dom0
/// transmitted (what the guest received; xentop NETTX). libxenstat does not swap the view, nor
/// does `/proc/net/dev`, from which the counters are read when it can be.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vif {
    pub devid: u32,
    /// Which of Dom0's interfaces serves it: netback's `vif`, or the tap of an emulated NIC.
    pub kind: VifKind,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_drops: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_drops: u64,
    /// Netback ring state per queue (from debugfs); empty when not read.
    pub queues: Vec<VifQueue>,
}

impl Vif {
    /// Backend interface name, the `device` label: `vif3.0`, `tap3.0`, `vif3.0-emu`.
    pub fn interface_name(&self, domid: u32) -> String {
        match self.kind {
            VifKind::Netback => format!("vif{domid}.{}", self.devid),
            VifKind::Tap => format!("tap{domid}.{}", self.devid),
            VifKind::Emu => format!("vif{domid}.{}-emu", self.devid),
        }
    }
}

/// The Dom0 interface behind a guest's NIC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum VifKind {
    /// `vif<domid>.<devid>`: netback, the PV NIC.
    #[default]
    Netback,
    /// `tap<domid>.<devid>`: the tap of an HVM guest's emulated NIC (XAPI's name).
    Tap,
    /// `vif<domid>.<devid>-emu`: the same tap as xl names it.
    Emu,
}

impl VifKind {
    /// The `kind` label: `vif` (netback) or `tap` (emulated NIC, whatever its name).
    pub fn as_str(self) -> &'static str {
        match self {
            VifKind::Netback => "vif",
            VifKind::Tap | VifKind::Emu => "tap",
        }
    }
}

/// The kind of backend that serves a virtual block device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum VbdBackend {
    #[default]
    Blkback,
    Qdisk,
    Tap,
    /// XAPI's `vbd3`: tapback + tapdisk3 in user space (XCP-ng, XenServer).
    Tapdisk3,
    Unknown,
}

impl VbdBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            VbdBackend::Blkback => "blkback",
            VbdBackend::Qdisk => "qdisk",
            VbdBackend::Tap => "tap",
            VbdBackend::Tapdisk3 => "tapdisk3",
            VbdBackend::Unknown => "unknown",
        }
    }
}

/// One virtual block device. Counters are requests and 512-byte sectors, as blkback counts them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vbd {
    /// Xen virtual device number (e.g. 51712 for `xvda`).
    pub devno: u32,
    pub backend: VbdBackend,
    pub read_requests: u64,
    pub write_requests: u64,
    pub read_sectors: u64,
    pub write_sectors: u64,
    /// VBD_OO: passes in which blkback found its request pool exhausted (the ring was full).
    pub out_of_requests: u64,
    /// From blkback sysfs only (libxenstat does not expose them).
    pub flush_requests: Option<u64>,
    pub discard_requests: Option<u64>,
    /// libxenstat's error flag (Xen 4.13+): the statistics could not be read. `None` before 4.13.
    pub error: Option<bool>,
    /// Ring geometry (from xenstore); `None` when not read.
    pub ring: Option<VbdRing>,
    /// The statistics of the block device that backs this VBD in Dom0 (`ring.physical_device`);
    /// `None` when not read or unknown (qdisk, not yet connected).
    pub backing: Option<BlockStat>,
    /// tapdisk3's own counters (`/dev/shm/td3-<pid>/vbd-<domid>-<devid>`); `None` otherwise.
    pub tapdisk: Option<TapdiskStats>,
    /// tapdisk3's snapshot of the ring (`/dev/shm/vbd3-<domid>-<devid>/io_ring`).
    pub io_ring: Option<TapdiskRing>,
    /// XAPI's storage identity of the disk (`sm-data/` and `params` of the vbd3 backend).
    pub storage: Option<VbdStorage>,
}

/// What Linux counts for one block device (`/sys/dev/block/<major>:<minor>/stat`), the fields
/// the exporter serves. Times are as the kernel sums them: over requests, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockStat {
    /// Reads completed (field 1).
    pub reads_completed: u64,
    /// Time the completed reads took, summed over requests (field 4).
    pub read_time: Duration,
    /// Writes completed (field 5).
    pub writes_completed: u64,
    /// Time the completed writes took, summed over requests (field 8).
    pub write_time: Duration,
    /// Requests issued to the driver and not yet completed (field 9).
    pub in_flight: u64,
    /// Time the device had at least one request in flight (field 10, `io_ticks`).
    pub io_time: Duration,
    /// Weighted time in queue (field 11, `time_in_queue`): its rate is the average queue depth.
    pub queue_time: Duration,
}

/// The counters tapdisk3 keeps per VBD (its `struct stats`, version 1) beyond blkback's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TapdiskStats {
    /// Requests taken off the ring. Writes include empty barriers, which are never
    /// "completed": submitted minus completed is not an in-flight count for writes.
    pub read_requests_submitted: u64,
    pub write_requests_submitted: u64,
    /// Summed service time of completed requests (taken off the ring until answered).
    pub read_time: Duration,
    pub write_time: Duration,
    /// Requests the image layer failed.
    pub io_errors: u64,
    /// tapdisk runs in low-memory mode (flag bit 0, blktap 3.55).
    pub low_memory_mode: bool,
}

/// The ring indexes tapdisk3 last wrote to `io_ring` (at most every 5 s).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TapdiskRing {
    pub indexes: RingIndexes,
    /// Time since tapdisk wrote the file.
    pub age: Duration,
}

/// Which storage repository and disk image (XAPI UUIDs) serve a VBD.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VbdStorage {
    pub sr_uuid: Option<String>,
    pub vdi_uuid: Option<String>,
}

/// Geometry of a VBD's shared rings, negotiated through xenstore.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VbdRing {
    /// Rings (hardware queues) the frontend set up (`multi-queue-num-queues`, 1 when absent).
    pub queues: u32,
    /// Pages per ring (`1 << ring-page-order`, 1 when absent).
    pub pages: u32,
    /// The backend's limit, `1 << max-ring-page-order`.
    pub max_pages: Option<u32>,
    /// The backend's limit on queues (`multi-queue-max-queues`).
    pub max_queues: Option<u32>,
    /// Dom0's block device behind the VBD (`physical-device`, written in hex by the hotplug
    /// script): `(major, minor)`; `None` for qdisk or before the hotplug script ran.
    pub physical_device: Option<(u32, u32)>,
}

/// Requests one blkif ring page holds (`__CONST_RING_SIZE(blkif, 4096)` = 32).
pub const BLKIF_REQUESTS_PER_PAGE: u64 = 32;

impl VbdRing {
    /// Requests the backend can have in flight for this device before `oo_req` counts.
    pub fn capacity_requests(&self) -> u64 {
        u64::from(self.queues) * u64::from(self.pages) * BLKIF_REQUESTS_PER_PAGE
    }
}

/// Bytes in one sector as blkback and libxenstat count them; the one place sectors become bytes.
pub const SECTOR_BYTES: u64 = 512;

/// State of one netback queue, parsed from debugfs `io_ring_q<N>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VifQueue {
    pub id: u32,
    pub tx: RingIndexes,
    pub rx: RingIndexes,
    /// TX requests the backend has taken from the ring and not yet completed (`nr_pending_reqs`).
    pub tx_pending_requests: u32,
    /// TX buffers waiting to be given back to the guest (`dealloc_queue`).
    pub tx_dealloc_queue: u32,
    /// Bytes queued inside netback for the guest (`Rx internal queue: len`, the kernel's
    /// `rx_queue_len`, which sums `skb->len`; `pkts` is the packet count).
    pub rx_queue_length: u32,
    pub rx_queue_max: u32,
    /// The RX internal queue is stopped: the guest is not posting receive buffers fast enough.
    pub rx_queue_stopped: bool,
    /// Credit per period (`credit: %lu`), bytes: the vif's rate limit (`rate=` in xl), or
    /// `u64::MAX` with a zero period when it has none.
    pub credit_bytes: u64,
    /// Credit period (`usec: %lu`).
    pub credit_period: Duration,
}

impl VifQueue {
    /// The transmit rate limit in bytes per second, `None` when the vif has none.
    pub fn rate_limit_bytes_per_second(&self) -> Option<f64> {
        let period = self.credit_period.as_secs_f64();
        (self.credit_bytes != u64::MAX && period > 0.0).then(|| self.credit_bytes as f64 / period)
    }
}

/// Producer/consumer view of one direction of a netback ring.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RingIndexes {
    /// Slots in the ring (`nr_ents`).
    pub entries: u32,
    /// Requests the guest produced that the backend has not consumed (`req prod - cons`).
    pub requests_outstanding: u32,
    /// Responses the backend produced but has not yet published to the shared ring
    /// (`rsp_prod_pvt - rsp_prod`): work netback finished that the guest cannot see yet.
    pub responses_unpublished: u32,
}
