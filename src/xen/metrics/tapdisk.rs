//! Writes the tapdisk3 families (collector part `tapdisk`): the counters blkback lacks (service
//! time, submitted requests, I/O errors, low-memory mode) and the ring occupancy tapdisk reports.
//! On tapdisk3 VBD_OO is always 0 (tapdisk never counts it): saturation is read from service time
//! and ring occupancy instead.

use crate::scrape::exposition::{Kind, Spec, Writer};
use crate::xen::metrics::labelled::LabelledHost;
use crate::xen::model::TapdiskStats;

/// Writes every tapdisk family of `labelled` (families without samples are left out).
pub fn write(w: &mut Writer<'_>, labelled: &LabelledHost) {
    type Count = fn(&TapdiskStats) -> u64;
    let counters: [(Spec, Count); 3] = [
        (
            Spec::new(
                "xen_vbd_read_requests_submitted",
                "Read requests tapdisk3 took off the ring (completed ones are xen_vbd_read_requests_total)",
            ),
            |stats| stats.read_requests_submitted,
        ),
        (
            Spec::new(
                "xen_vbd_write_requests_submitted",
                "Write requests tapdisk3 took off the ring, empty barriers included (they never complete)",
            ),
            |stats| stats.write_requests_submitted,
        ),
        (
            Spec::new(
                "xen_vbd_io_errors",
                "Requests tapdisk3's image layer failed",
            ),
            |stats| stats.io_errors,
        ),
    ];
    for (spec, field) in counters {
        let mut family = w.family(spec, Kind::Counter);
        for (vbd, labels) in labelled.vbds() {
            if let Some(stats) = &vbd.tapdisk {
                family.sample(labels, field(stats));
            }
        }
    }
    type Time = fn(&TapdiskStats) -> f64;
    let times: [(Spec, Time); 2] = [
        (
            Spec::seconds(
                "xen_vbd_read_time",
                "Service time of completed reads, summed (tapdisk3): latency = rate of this / rate of xen_vbd_read_requests_total",
            ),
            |stats| stats.read_time.as_secs_f64(),
        ),
        (
            Spec::seconds(
                "xen_vbd_write_time",
                "Service time of completed writes, summed (tapdisk3): latency = rate of this / rate of xen_vbd_write_requests_total",
            ),
            |stats| stats.write_time.as_secs_f64(),
        ),
    ];
    for (spec, field) in times {
        let mut family = w.family(spec, Kind::Counter);
        for (vbd, labels) in labelled.vbds() {
            if let Some(stats) = &vbd.tapdisk {
                family.sample(labels, field(stats));
            }
        }
    }
    let mut low_memory = w.family(
        Spec::new(
            "xen_vbd_low_memory_mode",
            "1 while the tapdisk3 serving the VBD runs in low-memory mode",
        ),
        Kind::Gauge,
    );
    for (vbd, labels) in labelled.vbds() {
        if let Some(stats) = &vbd.tapdisk {
            low_memory.sample(labels, stats.low_memory_mode);
        }
    }
    let mut outstanding = w.family(
        Spec::new(
            "xen_vbd_ring_requests_outstanding",
            "Requests the guest put on the ring that tapdisk3 has not taken yet (req prod - cons, from io_ring)",
        ),
        Kind::Gauge,
    );
    for (vbd, labels) in labelled.vbds() {
        if let Some(ring) = &vbd.io_ring {
            outstanding.sample(labels, ring.indexes.requests_outstanding);
        }
    }
    let mut age = w.family(
        Spec::seconds(
            "xen_vbd_ring_stats_age",
            "Time since tapdisk3 last wrote io_ring (it does at most every 5 s)",
        ),
        Kind::Gauge,
    );
    for (vbd, labels) in labelled.vbds() {
        if let Some(ring) = &vbd.io_ring {
            age.sample(labels, ring.age.as_secs_f64());
        }
    }
}
