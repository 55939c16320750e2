//! Writes the ring families (collector `rings`): VBD ring geometry from xenstore and netback
//! queue state from debugfs, with the same `domain` and `device` labels as the counters.

use crate::scrape::exposition::{Kind, Spec, Writer};
use crate::xen::metrics::labelled::LabelledHost;
use crate::xen::model::{RingIndexes, VbdRing, VifQueue};

/// Writes every ring family of `labelled` (families without samples are left out).
pub fn write(w: &mut Writer<'_>, labelled: &LabelledHost) {
    write_vbd_rings(w, labelled);
    write_vif_rings(w, labelled);
}

fn write_vbd_rings(w: &mut Writer<'_>, labelled: &LabelledHost) {
    type Field = fn(&VbdRing) -> Option<u64>;
    let families: [(Spec, Field); 5] = [
        (
            Spec::new(
                "xen_vbd_ring_queues",
                "Rings (queues) the VBD frontend set up",
            ),
            |ring| Some(u64::from(ring.queues)),
        ),
        (
            Spec::new(
                "xen_vbd_ring_pages",
                "Pages per VBD ring (1 << ring-page-order)",
            ),
            |ring| Some(u64::from(ring.pages)),
        ),
        (
            Spec::new(
                "xen_vbd_ring_max_pages",
                "Backend limit on pages per ring (1 << max-ring-page-order)",
            ),
            |ring| ring.max_pages.map(u64::from),
        ),
        (
            Spec::new(
                "xen_vbd_ring_max_queues",
                "Backend limit on rings (queues) per VBD (multi-queue-max-queues)",
            ),
            |ring| ring.max_queues.map(u64::from),
        ),
        (
            Spec::new(
                "xen_vbd_ring_capacity_requests",
                "Requests the VBD's rings hold before VBD_OO counts (queues x pages x 32)",
            ),
            |ring| Some(ring.capacity_requests()),
        ),
    ];
    for (spec, field) in families {
        let mut family = w.family(spec, Kind::Gauge);
        for (vbd, labels) in labelled.vbds() {
            if let Some(value) = vbd.ring.as_ref().and_then(field) {
                family.sample(labels, value);
            }
        }
    }
}

fn write_vif_rings(w: &mut Writer<'_>, labelled: &LabelledHost) {
    let mut queues = w.family(
        Spec::new("xen_vif_queues", "Netback queues of the vif"),
        Kind::Gauge,
    );
    for (vif, labels) in labelled.vifs() {
        if !vif.queues.is_empty() {
            queues.sample(labels, vif.queues.len());
        }
    }
    let mut rate_limit = w.family(
        Spec::new(
            "xen_vif_rate_limit_bytes_per_second",
            "Transmit rate limit of the vif (credit per period); absent when the vif has none",
        ),
        Kind::Gauge,
    );
    for (vif, labels) in labelled.vifs() {
        if let Some(limit) = vif
            .queues
            .first()
            .and_then(VifQueue::rate_limit_bytes_per_second)
        {
            rate_limit.sample(labels, limit);
        }
    }
    type Direction = fn(&RingIndexes) -> u32;
    let per_direction: [(Spec, Direction); 3] = [
        (
            Spec::new("xen_vif_ring_entries", "Slots in the netback ring"),
            |ring| ring.entries,
        ),
        (
            Spec::new(
                "xen_vif_ring_requests_outstanding",
                "Requests the guest produced that netback has not consumed (req prod - cons)",
            ),
            |ring| ring.requests_outstanding,
        ),
        (
            Spec::new(
                "xen_vif_ring_responses_unpublished",
                "Responses netback produced and has not yet published to the shared ring (rsp_prod_pvt - rsp_prod)",
            ),
            |ring| ring.responses_unpublished,
        ),
    ];
    for (spec, field) in per_direction {
        let mut family = w.family(spec, Kind::Gauge);
        for (vif, labels) in labelled.vifs() {
            for queue in &vif.queues {
                let mut id = itoa::Buffer::new();
                let id = id.format(queue.id);
                for (direction, ring) in [("tx", &queue.tx), ("rx", &queue.rx)] {
                    let extra = [("queue", id), ("direction", direction)];
                    family.sample_with(labels, &extra, field(ring));
                }
            }
        }
    }
    type Field = fn(&VifQueue) -> u64;
    let per_queue: [(Spec, Field); 5] = [
        (
            Spec::new(
                "xen_vif_tx_pending_requests",
                "TX requests netback took from the ring and has not completed",
            ),
            |queue| u64::from(queue.tx_pending_requests),
        ),
        (
            Spec::new(
                "xen_vif_tx_dealloc_queue",
                "TX buffers waiting to be given back to the guest",
            ),
            |queue| u64::from(queue.tx_dealloc_queue),
        ),
        (
            Spec::bytes(
                "xen_vif_rx_queue",
                "Bytes queued inside netback for the guest",
            ),
            |queue| u64::from(queue.rx_queue_length),
        ),
        (
            Spec::bytes(
                "xen_vif_rx_queue_max",
                "Limit of netback's internal RX queue",
            ),
            |queue| u64::from(queue.rx_queue_max),
        ),
        (
            Spec::new(
                "xen_vif_rx_queue_stalled",
                "1 when netback stopped the RX queue: the guest posts receive buffers too slowly",
            ),
            |queue| u64::from(queue.rx_queue_stopped),
        ),
    ];
    for (spec, field) in per_queue {
        let mut family = w.family(spec, Kind::Gauge);
        for (vif, labels) in labelled.vifs() {
            for queue in &vif.queues {
                let mut id = itoa::Buffer::new();
                family.sample_with(labels, &[("queue", id.format(queue.id))], field(queue));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::scrape::collector::Families;
    use crate::scrape::exposition::Format;
    use crate::xen::metrics::host::HostMetrics;
    use crate::xen::metrics::labelled::LabelledHost;
    use crate::xen::model::{Domain, Host, Vif};

    #[test]
    fn encodes_vif_ring_series() {
        let q = crate::xen::dom0::netback::parse_io_ring(include_str!(
            "../../../tests/fixtures/debugfs/xen-netback/vif1.0/io_ring_q0"
        ))
        .expect("parse");
        let mut host = Host::default();
        let mut d = Domain {
            domid: 1,
            name: "guest".into(),
            ..Default::default()
        };
        d.vifs.push(Vif {
            devid: 0,
            queues: vec![q],
            ..Default::default()
        });
        host.domains.push(d);
        let families: Vec<Box<dyn Families>> = vec![Box::new(HostMetrics(LabelledHost::new(host)))];
        let out = crate::scrape::collector::exposition(&families, Format::OpenMetrics);
        assert!(out.contains(
            "xen_vif_ring_requests_outstanding{domain=\"guest\",device=\"vif1.0\",queue=\"0\",direction=\"rx\"} 256"
        ), "{out}");
        assert!(
            out.contains("xen_vif_queues{domain=\"guest\",device=\"vif1.0\"} 1"),
            "{out}"
        );
    }
}
