//! Encodes the ring families (collector `rings`): VBD ring geometry from xenstore and netback
//! queue state from debugfs, with the same `domain` and `device` labels as the counters.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use crate::xen::encode::{flag, gauges, Spec};
use crate::xen::host_metrics::LabelledHost;
use crate::xen::model::{RingIndexes, VifQueue};

/// Writes every ring family of `labelled` (families without samples are left out).
pub fn encode(e: &mut DescriptorEncoder, labelled: &LabelledHost) -> fmt::Result {
    encode_vbd_rings(e, labelled)?;
    encode_vif_rings(e, labelled)
}

fn encode_vbd_rings(e: &mut DescriptorEncoder, labelled: &LabelledHost) -> fmt::Result {
    let rings = || {
        labelled
            .vbds()
            .filter_map(|(vbd, labels)| vbd.ring.as_ref().map(|ring| (ring, labels)))
    };
    gauges(
        e,
        Spec::new(
            "xen_vbd_ring_queues",
            "Rings (queues) the VBD frontend set up",
        ),
        rings().map(|(ring, labels)| (labels, f64::from(ring.queues))),
    )?;
    gauges(
        e,
        Spec::new(
            "xen_vbd_ring_pages",
            "Pages per VBD ring (1 << ring-page-order)",
        ),
        rings().map(|(ring, labels)| (labels, f64::from(ring.pages))),
    )?;
    gauges(
        e,
        Spec::new(
            "xen_vbd_ring_max_pages",
            "Backend limit on pages per ring (1 << max-ring-page-order)",
        ),
        rings().filter_map(|(ring, labels)| ring.max_pages.map(|max| (labels, f64::from(max)))),
    )?;
    gauges(
        e,
        Spec::new(
            "xen_vbd_ring_capacity_requests",
            "Requests the VBD's rings hold before VBD_OO counts (queues x pages x 32)",
        ),
        rings().map(|(ring, labels)| (labels, ring.capacity_requests() as f64)),
    )
}

fn encode_vif_rings(e: &mut DescriptorEncoder, labelled: &LabelledHost) -> fmt::Result {
    let read = || labelled.vifs().filter(|(vif, _)| !vif.queues.is_empty());
    gauges(
        e,
        Spec::new("xen_vif_queues", "Netback queues of the vif"),
        read().map(|(vif, labels)| (labels, vif.queues.len() as f64)),
    )?;
    let queue_ids: Vec<Vec<String>> = labelled
        .vifs()
        .map(|(vif, _)| {
            vif.queues
                .iter()
                .map(|queue| queue.id.to_string())
                .collect()
        })
        .collect();
    let queues = || {
        labelled
            .vifs()
            .zip(&queue_ids)
            .flat_map(|((vif, [domain, device]), ids)| {
                vif.queues
                    .iter()
                    .zip(ids)
                    .map(move |(queue, id)| (queue, [domain, device, ("queue", id.as_str())]))
            })
    };
    type Direction = fn(&RingIndexes) -> u32;
    let directions = || {
        queues().flat_map(|(queue, [domain, device, id])| {
            [("tx", &queue.tx), ("rx", &queue.rx)]
                .into_iter()
                .map(move |(direction, ring)| {
                    (ring, [domain, device, id, ("direction", direction)])
                })
        })
    };
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
                "Responses netback produced and has not yet published to the guest",
            ),
            |ring| ring.responses_unconsumed,
        ),
    ];
    for (spec, field) in per_direction {
        gauges(
            e,
            spec,
            directions().map(|(ring, labels)| (labels, f64::from(field(ring)))),
        )?;
    }
    type Field = fn(&VifQueue) -> f64;
    let per_queue: [(Spec, Field); 5] = [
        (
            Spec::new(
                "xen_vif_tx_pending_requests",
                "TX requests netback took from the ring and has not completed",
            ),
            |queue| f64::from(queue.tx_pending_requests),
        ),
        (
            Spec::new(
                "xen_vif_tx_dealloc_queue",
                "TX buffers waiting to be given back to the guest",
            ),
            |queue| f64::from(queue.tx_dealloc_queue),
        ),
        (
            Spec::bytes(
                "xen_vif_rx_queue",
                "Bytes queued inside netback for the guest",
            ),
            |queue| f64::from(queue.rx_queue_length),
        ),
        (
            Spec::bytes(
                "xen_vif_rx_queue_max",
                "Limit of netback's internal RX queue",
            ),
            |queue| f64::from(queue.rx_queue_max),
        ),
        (
            Spec::new(
                "xen_vif_rx_queue_stalled",
                "1 when netback stopped the RX queue: the guest posts receive buffers too slowly",
            ),
            |queue| flag(queue.rx_queue_stopped),
        ),
    ];
    for (spec, field) in per_queue {
        gauges(
            e,
            spec,
            queues().map(|(queue, labels)| (labels, field(queue))),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;

    use crate::xen::host_metrics::{HostMetrics, LabelledHost};
    use crate::xen::model::{Domain, Host, Vif};

    #[test]
    fn encodes_vif_ring_series() {
        let q = crate::xen::netback::parse_io_ring(include_str!(
            "../../tests/fixtures/debugfs/xen-netback/vif1.0/io_ring_q0"
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
        let mut reg = Registry::default();
        reg.register_collector(Box::new(HostMetrics(LabelledHost::new(host))));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).expect("encode");
        assert!(out.contains(
            "xen_vif_ring_requests_outstanding{domain=\"guest\",device=\"vif1.0\",queue=\"0\",direction=\"rx\"} 256"
        ), "{out}");
        assert!(
            out.contains("xen_vif_queues{domain=\"guest\",device=\"vif1.0\"} 1"),
            "{out}"
        );
    }
}
