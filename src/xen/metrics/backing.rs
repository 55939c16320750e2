//! Writes the backing-device families (collector `backing`): what Dom0's block device behind
//! each blkback VBD counts, with the same `domain` and `device` labels as the VBD's counters.
//!
//! On today's kernels VBD_OO hardly moves (blkback sizes each ring's request pool to the ring),
//! so a full ring shows here: requests in flight, and the rate of the weighted queue time (the
//! average queue depth), at the ring's capacity (`xen_vbd_ring_capacity_requests`).

use crate::scrape::exposition::{Kind, Spec, Writer};
use crate::xen::metrics::labelled::LabelledHost;
use crate::xen::model::BlockStat;

/// Writes every backing family of `labelled` (left out when no VBD's backing device was read).
pub fn write(w: &mut Writer<'_>, labelled: &LabelledHost) {
    let mut in_flight = w.family(
        Spec::new(
            "xen_vbd_backing_in_flight_requests",
            "Requests in flight on the Dom0 block device behind the VBD (stat field 9); at the ring's capacity the ring is full",
        ),
        Kind::Gauge,
    );
    for (vbd, labels) in labelled.vbds() {
        if let Some(stat) = &vbd.backing {
            in_flight.sample(labels, stat.in_flight);
        }
    }
    type Seconds = fn(&BlockStat) -> f64;
    let times: [(Spec, Seconds); 4] = [
        (
            Spec::seconds(
                "xen_vbd_backing_io_time",
                "Time the block device behind the VBD was busy, with at least one request in flight (stat field 10)",
            ),
            |stat| stat.io_time.as_secs_f64(),
        ),
        (
            Spec::seconds(
                "xen_vbd_backing_queue_time",
                "Weighted time requests spent on the block device behind the VBD (stat field 11): its rate is the average queue depth",
            ),
            |stat| stat.queue_time.as_secs_f64(),
        ),
        (
            Spec::seconds(
                "xen_vbd_backing_read_time",
                "Time the completed reads of the block device behind the VBD took, summed over requests (stat field 4)",
            ),
            |stat| stat.read_time.as_secs_f64(),
        ),
        (
            Spec::seconds(
                "xen_vbd_backing_write_time",
                "Time the completed writes of the block device behind the VBD took, summed over requests (stat field 8)",
            ),
            |stat| stat.write_time.as_secs_f64(),
        ),
    ];
    for (spec, field) in times {
        let mut family = w.family(spec, Kind::Counter);
        for (vbd, labels) in labelled.vbds() {
            if let Some(stat) = &vbd.backing {
                family.sample(labels, field(stat));
            }
        }
    }
    type Count = fn(&BlockStat) -> u64;
    let counts: [(Spec, Count); 2] = [
        (
            Spec::new(
                "xen_vbd_backing_reads_completed",
                "Reads the block device behind the VBD completed (stat field 1)",
            ),
            |stat| stat.reads_completed,
        ),
        (
            Spec::new(
                "xen_vbd_backing_writes_completed",
                "Writes the block device behind the VBD completed (stat field 5)",
            ),
            |stat| stat.writes_completed,
        ),
    ];
    for (spec, field) in counts {
        let mut family = w.family(spec, Kind::Counter);
        for (vbd, labels) in labelled.vbds() {
            if let Some(stat) = &vbd.backing {
                family.sample(labels, field(stat));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::scrape::collector::Families;
    use crate::scrape::exposition::Format;
    use crate::xen::metrics::host::HostMetrics;
    use crate::xen::metrics::labelled::LabelledHost;
    use crate::xen::model::{BlockStat, Domain, Host, Vbd, VbdBackend, VbdRing};

    #[test]
    fn encodes_backing_series_and_the_physical_device_label() {
        let stat = BlockStat {
            reads_completed: 3,
            read_time: Duration::from_millis(4),
            writes_completed: 128735,
            write_time: Duration::from_millis(39915),
            in_flight: 61,
            io_time: Duration::from_millis(1172),
            queue_time: Duration::from_millis(39915),
        };
        let host = Host {
            domains: vec![Domain {
                domid: 1,
                name: "labdomu".into(),
                vbds: vec![
                    Vbd {
                        devno: 51712,
                        ring: Some(VbdRing {
                            physical_device: Some((254, 1)),
                            ..VbdRing::default()
                        }),
                        backing: Some(stat),
                        ..Vbd::default()
                    },
                    Vbd {
                        devno: 51728,
                        backend: VbdBackend::Qdisk,
                        ..Vbd::default()
                    },
                ],
                ..Domain::default()
            }],
            ..Host::default()
        };
        let families: Vec<Box<dyn Families>> = vec![Box::new(HostMetrics(LabelledHost::new(host)))];
        let out = crate::scrape::collector::exposition(&families, Format::OpenMetrics);
        let xvda = "{domain=\"labdomu\",device=\"xvda\"}";
        for line in [
            format!("xen_vbd_backing_in_flight_requests{xvda} 61"),
            format!("xen_vbd_backing_io_time_seconds_total{xvda} 1.172"),
            format!("xen_vbd_backing_queue_time_seconds_total{xvda} 39.915"),
            format!("xen_vbd_backing_read_time_seconds_total{xvda} 0.004"),
            format!("xen_vbd_backing_write_time_seconds_total{xvda} 39.915"),
            format!("xen_vbd_backing_reads_completed_total{xvda} 3"),
            format!("xen_vbd_backing_writes_completed_total{xvda} 128735"),
            "xen_vbd_info{domain=\"labdomu\",device=\"xvda\",devno=\"51712\",backend=\"blkback\",physical_device=\"254:1\"} 1".to_owned(),
            "xen_vbd_info{domain=\"labdomu\",device=\"xvdb\",devno=\"51728\",backend=\"qdisk\"} 1".to_owned(),
            "# UNIT xen_vbd_backing_queue_time_seconds seconds".to_owned(),
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in\n{out}");
        }
        assert!(
            !out.contains("xen_vbd_backing_in_flight_requests{domain=\"labdomu\",device=\"xvdb\"}"),
            "no backing series without a backing device: {out}"
        );
    }
}
