//! Encodes the ring families (collector `rings`) from an owned [`Host`] snapshot.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

use crate::xen::model::Host;

type Labels = Vec<(&'static str, String)>;

/// Owned snapshot; `encode` writes every ring gauge family.
#[derive(Debug, Default)]
pub struct RingMetrics {
    pub host: Host,
}

fn family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, f64)],
) -> Result<(), std::fmt::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut fam =
        encoder.encode_descriptor(name, help, None, ConstGauge::new(0.0).metric_type())?;
    for (labels, value) in rows {
        ConstGauge::new(*value).encode(fam.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for RingMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut vbd: [Vec<(Labels, f64)>; 4] = Default::default();
        let mut vif_queues = Vec::new();
        let mut entries = Vec::new();
        let mut outstanding = Vec::new();
        let mut unpublished = Vec::new();
        let mut pending = Vec::new();
        let mut dealloc = Vec::new();
        let mut rxq_bytes = Vec::new();
        let mut rxq_max = Vec::new();
        let mut stalled = Vec::new();
        for d in &self.host.domains {
            for b in &d.vbds {
                let Some(r) = &b.ring else { continue };
                let l: Labels = vec![
                    ("domain", d.name.clone()),
                    ("device", crate::xen::devno::name(b.devno)),
                ];
                vbd[0].push((l.clone(), f64::from(r.queues)));
                vbd[1].push((l.clone(), f64::from(r.pages)));
                if let Some(m) = r.max_pages {
                    vbd[2].push((l.clone(), f64::from(m)));
                }
                vbd[3].push((l, r.capacity_requests() as f64));
            }
            for v in &d.vifs {
                let dev = v.interface_name(d.domid);
                let l: Labels = vec![("domain", d.name.clone()), ("device", dev.clone())];
                vif_queues.push((l.clone(), v.queues.len() as f64));
                for q in &v.queues {
                    let mut ql = l.clone();
                    ql.push(("queue", q.id.to_string()));
                    for (dir, r) in [("tx", &q.tx), ("rx", &q.rx)] {
                        let mut dl = ql.clone();
                        dl.push(("direction", dir.to_owned()));
                        entries.push((dl.clone(), f64::from(r.entries)));
                        outstanding.push((dl.clone(), f64::from(r.requests_outstanding)));
                        unpublished.push((dl, f64::from(r.responses_unconsumed)));
                    }
                    pending.push((ql.clone(), f64::from(q.tx_pending_requests)));
                    dealloc.push((ql.clone(), f64::from(q.tx_dealloc_queue)));
                    rxq_bytes.push((ql.clone(), f64::from(q.rx_queue_length)));
                    rxq_max.push((ql.clone(), f64::from(q.rx_queue_max)));
                    stalled.push((ql, if q.rx_queue_stopped { 1.0 } else { 0.0 }));
                }
            }
        }
        let e = &mut encoder;
        family(
            e,
            "xen_vbd_ring_queues",
            "Rings the VBD frontend set up.",
            &vbd[0],
        )?;
        family(e, "xen_vbd_ring_pages", "Pages per VBD ring.", &vbd[1])?;
        family(
            e,
            "xen_vbd_ring_max_pages",
            "Backend limit on pages per ring.",
            &vbd[2],
        )?;
        family(
            e,
            "xen_vbd_ring_capacity_requests",
            "Requests in flight before VBD_OO counts (queues x pages x 32).",
            &vbd[3],
        )?;
        family(
            e,
            "xen_vif_queues",
            "Netback queues of the vif.",
            &vif_queues,
        )?;
        family(
            e,
            "xen_vif_ring_entries",
            "Slots in the netback ring.",
            &entries,
        )?;
        family(
            e,
            "xen_vif_ring_requests_outstanding",
            "Requests produced and not yet consumed (req prod - cons).",
            &outstanding,
        )?;
        family(
            e,
            "xen_vif_ring_responses_unpublished",
            "Responses produced but not yet published (rsp_prod_pvt - rsp_prod).",
            &unpublished,
        )?;
        family(
            e,
            "xen_vif_tx_pending_requests",
            "TX requests taken and not yet completed.",
            &pending,
        )?;
        family(
            e,
            "xen_vif_tx_dealloc_queue",
            "TX buffers waiting to be returned to the guest.",
            &dealloc,
        )?;
        family(
            e,
            "xen_vif_rx_queue_bytes",
            "Bytes queued in netback for the guest.",
            &rxq_bytes,
        )?;
        family(
            e,
            "xen_vif_rx_queue_max_bytes",
            "Limit of the RX internal queue.",
            &rxq_max,
        )?;
        family(
            e,
            "xen_vif_rx_queue_stalled",
            "1 when netback stopped the RX queue.",
            &stalled,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;

    use super::*;
    use crate::xen::model::{Domain, Vif};

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
        reg.register_collector(Box::new(RingMetrics { host }));
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
