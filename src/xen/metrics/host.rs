//! Encodes one [`Host`] snapshot as the hypervisor families (what xentop shows) and, through
//! [`ring_metrics`], the ring families: exactly the domains and devices of this snapshot.

use crate::scrape::collector::Families;
use crate::scrape::exposition::{Kind, Labels, Spec, Writer};
use crate::xen::metrics::labelled::LabelledHost;
use crate::xen::metrics::{backing, rings, tapdisk};
use crate::xen::model::{Host, Vbd, Vif, SECTOR_BYTES};

/// The families of one successful snapshot, `xen_up 1` included.
#[derive(Debug)]
pub struct HostMetrics(pub LabelledHost);

/// `xen_up`, alone: what a scrape shows when no snapshot could be taken.
#[derive(Debug)]
pub struct XenUp(pub bool);

const UP: Spec = Spec::new(
    "xen_up",
    "1 when the last snapshot of the hypervisor succeeded, 0 when Xen is absent or failed",
);

impl Families for XenUp {
    fn write(&self, writer: &mut Writer<'_>) {
        writer
            .family(UP, Kind::Gauge)
            .sample(&Labels::new(), self.0);
    }
}

impl Families for HostMetrics {
    fn write(&self, writer: &mut Writer<'_>) {
        XenUp(true).write(writer);
        write_host(writer, &self.0.host);
        write_domains(writer, &self.0);
        write_vifs(writer, &self.0);
        write_vbds(writer, &self.0);
        rings::write(writer, &self.0);
        backing::write(writer, &self.0);
        tapdisk::write(writer, &self.0);
    }
}

fn write_host(w: &mut Writer<'_>, host: &Host) {
    let none = Labels::new();
    let gauges: [(Spec, u64); 4] = [
        (
            Spec::new("xen_host_cpus", "Physical CPUs of the host"),
            u64::from(host.cpus),
        ),
        (
            Spec::new("xen_host_cpu_frequency_hertz", "CPU clock of the host"),
            host.cpu_hz,
        ),
        (
            Spec::bytes("xen_host_memory_total", "Memory of the host"),
            host.memory_total_bytes,
        ),
        (
            Spec::bytes(
                "xen_host_memory_free",
                "Memory of the host not given to any domain",
            ),
            host.memory_free_bytes,
        ),
    ];
    for (spec, value) in gauges {
        w.family(spec, Kind::Gauge).sample(&none, value);
    }
    if let Some(version) = &host.xen_version {
        w.family(
            Spec::new("xen_version", "Version of the Xen hypervisor"),
            Kind::Info,
        )
        .info(&none, &[("version", version)]);
    }
    w.family(
        Spec::new("xen_domains", "Domains that exist now, Domain-0 included"),
        Kind::Gauge,
    )
    .sample(&none, host.domains.len());
}

/// The `state` label values, in xentop's order of its state letters.
const STATES: [&str; 6] = [
    "dying", "shutdown", "blocked", "crashed", "paused", "running",
];

fn write_domains(w: &mut Writer<'_>, labelled: &LabelledHost) {
    let mut info = w.family(
        Spec::new(
            "xen_domain",
            "Facts about a domain that change across its life (domid after a reboot, UUID)",
        ),
        Kind::Info,
    );
    for (domain, labels) in labelled.domains() {
        info.info(
            labels,
            &[
                ("domid", itoa::Buffer::new().format(domain.domid)),
                ("uuid", domain.uuid.as_deref().unwrap_or("")),
                ("ssid", itoa::Buffer::new().format(domain.ssid)),
            ],
        );
    }
    let mut cpu = w.family(
        Spec::seconds(
            "xen_domain_cpu",
            "CPU time consumed by all VCPUs of the domain",
        ),
        Kind::Counter,
    );
    for (domain, labels) in labelled.domains() {
        cpu.sample(labels, domain.cpu_time.as_secs_f64());
    }
    let mut vcpus = w.family(
        Spec::new("xen_domain_vcpus", "VCPUs of the domain, online or not"),
        Kind::Gauge,
    );
    for (domain, labels) in labelled.domains() {
        vcpus.sample(labels, domain.vcpus.len());
    }
    let mut memory = w.family(
        Spec::bytes("xen_domain_memory", "Memory the domain has now"),
        Kind::Gauge,
    );
    for (domain, labels) in labelled.domains() {
        memory.sample(labels, domain.memory_bytes);
    }
    let mut target = w.family(
        Spec::bytes(
            "xen_domain_memory_target",
            "Balloon target the toolstack set for the domain (xenstore memory/target)",
        ),
        Kind::Gauge,
    );
    for (domain, labels) in labelled.domains() {
        if let Some(bytes) = domain.memory_target_bytes {
            target.sample(labels, bytes);
        }
    }
    let mut guest_free = w.family(
        Spec::bytes(
            "xen_domain_guest_memory_free",
            "Free memory the guest's agent reports (xenstore data/meminfo_free): written by the guest, for display only",
        ),
        Kind::Gauge,
    );
    for (domain, labels) in labelled.domains() {
        if let Some(bytes) = domain.guest_memory_free_bytes {
            guest_free.sample(labels, bytes);
        }
    }
    let mut memory_max = w.family(
        Spec::bytes(
            "xen_domain_memory_max",
            "Memory limit of the domain (absent when unlimited)",
        ),
        Kind::Gauge,
    );
    for (domain, labels) in labelled.domains() {
        if let Some(max) = domain.memory_max_bytes {
            memory_max.sample(labels, max);
        }
    }
    let mut state = w.family(
        Spec::new(
            "xen_domain_state",
            "1 for each state flag the hypervisor reports for the domain (several can be set)",
        ),
        Kind::Gauge,
    );
    for (domain, labels) in labelled.domains() {
        let s = domain.state;
        let set = [
            s.dying, s.shutdown, s.blocked, s.crashed, s.paused, s.running,
        ];
        for (name, on) in STATES.iter().zip(set) {
            state.sample_with(labels, &[("state", name)], on);
        }
    }
    let mut vcpu_cpu = w.family(
        Spec::seconds("xen_vcpu_cpu", "CPU time consumed by the VCPU"),
        Kind::Counter,
    );
    for (domain, labels) in labelled.domains() {
        for vcpu in &domain.vcpus {
            let mut id = itoa::Buffer::new();
            let cpu_time = vcpu.cpu_time.as_secs_f64();
            vcpu_cpu.sample_with(labels, &[("vcpu", id.format(vcpu.id))], cpu_time);
        }
    }
    let mut online = w.family(
        Spec::new("xen_vcpu_online", "1 when the VCPU is online"),
        Kind::Gauge,
    );
    for (domain, labels) in labelled.domains() {
        for vcpu in &domain.vcpus {
            let mut id = itoa::Buffer::new();
            online.sample_with(labels, &[("vcpu", id.format(vcpu.id))], vcpu.online);
        }
    }
}

fn write_vifs(w: &mut Writer<'_>, labelled: &LabelledHost) {
    let mut info = w.family(
        Spec::new(
            "xen_vif",
            "A guest NIC: kind vif (netback, PV) or tap (emulated NIC of an HVM guest), its devid",
        ),
        Kind::Info,
    );
    for (vif, labels) in labelled.vifs() {
        info.info(
            labels,
            &[
                ("kind", vif.kind.as_str()),
                ("devid", itoa::Buffer::new().format(vif.devid)),
            ],
        );
    }
    // Dom0's view of the backend interface, as xentop and node_exporter count it: "receive" is
    // what the guest sent.
    type Field = fn(&Vif) -> u64;
    let families: [(Spec, Field); 8] = [
        (
            Spec::bytes(
                "xen_vif_receive",
                "Bytes Dom0 received on the vif (sent by the guest)",
            ),
            |vif| vif.rx_bytes,
        ),
        (
            Spec::new(
                "xen_vif_receive_packets",
                "Packets Dom0 received on the vif (sent by the guest)",
            ),
            |vif| vif.rx_packets,
        ),
        (
            Spec::new("xen_vif_receive_errors", "Receive errors on the vif"),
            |vif| vif.rx_errors,
        ),
        (
            Spec::new(
                "xen_vif_receive_drops",
                "Received packets dropped on the vif",
            ),
            |vif| vif.rx_drops,
        ),
        (
            Spec::bytes(
                "xen_vif_transmit",
                "Bytes Dom0 transmitted on the vif (received by the guest)",
            ),
            |vif| vif.tx_bytes,
        ),
        (
            Spec::new(
                "xen_vif_transmit_packets",
                "Packets Dom0 transmitted on the vif (received by the guest)",
            ),
            |vif| vif.tx_packets,
        ),
        (
            Spec::new("xen_vif_transmit_errors", "Transmit errors on the vif"),
            |vif| vif.tx_errors,
        ),
        (
            Spec::new(
                "xen_vif_transmit_drops",
                "Packets for the guest dropped on the vif",
            ),
            |vif| vif.tx_drops,
        ),
    ];
    for (spec, field) in families {
        let mut family = w.family(spec, Kind::Counter);
        for (vif, labels) in labelled.vifs() {
            family.sample(labels, field(vif));
        }
    }
}

fn write_vbds(w: &mut Writer<'_>, labelled: &LabelledHost) {
    let mut info = w.family(
        Spec::new(
            "xen_vbd",
            "A virtual block device: its Xen device number, backend, Dom0 block device (major:minor, empty when unknown) and on XAPI hosts its SR and VDI",
        ),
        Kind::Info,
    );
    for (vbd, labels) in labelled.vbds() {
        let physical_device = vbd
            .ring
            .as_ref()
            .and_then(|ring| ring.physical_device)
            .map(|(major, minor)| format!("{major}:{minor}"));
        let storage = vbd.storage.as_ref();
        let mut devno = itoa::Buffer::new();
        let mut extra = [
            ("devno", devno.format(vbd.devno)),
            ("backend", vbd.backend.as_str()),
            ("physical_device", physical_device.as_deref().unwrap_or("")),
            (
                "sr_uuid",
                storage.and_then(|s| s.sr_uuid.as_deref()).unwrap_or(""),
            ),
            (
                "vdi_uuid",
                storage.and_then(|s| s.vdi_uuid.as_deref()).unwrap_or(""),
            ),
        ];
        // An unknown fact is left out, not written as an empty label (the same series to
        // Prometheus, but a shorter line on every blkback host without XAPI).
        let mut known = 0;
        for index in 0..extra.len() {
            if !extra[index].1.is_empty() {
                extra.swap(known, index);
                known += 1;
            }
        }
        info.info(labels, &extra[..known]);
    }
    type Field = fn(&Vbd) -> Option<u64>;
    let families: [(Spec, Field); 7] = [
        (
            Spec::new(
                "xen_vbd_read_requests",
                "Read requests the backend completed",
            ),
            |vbd| Some(vbd.read_requests),
        ),
        (
            Spec::new(
                "xen_vbd_write_requests",
                "Write requests the backend completed",
            ),
            |vbd| Some(vbd.write_requests),
        ),
        (
            Spec::bytes("xen_vbd_read", "Bytes read (sectors x 512)"),
            |vbd| Some(vbd.read_sectors.saturating_mul(SECTOR_BYTES)),
        ),
        (
            Spec::bytes("xen_vbd_write", "Bytes written (sectors x 512)"),
            |vbd| Some(vbd.write_sectors.saturating_mul(SECTOR_BYTES)),
        ),
        (
            Spec::new(
                "xen_vbd_out_of_requests",
                "VBD_OO: times the backend found the guest's ring full (out of requests)",
            ),
            |vbd| Some(vbd.out_of_requests),
        ),
        (
            Spec::new(
                "xen_vbd_flush_requests",
                "Flush (barrier) requests, from blkback sysfs",
            ),
            |vbd| vbd.flush_requests,
        ),
        (
            Spec::new(
                "xen_vbd_discard_requests",
                "Discard requests, from blkback sysfs",
            ),
            |vbd| vbd.discard_requests,
        ),
    ];
    for (spec, field) in families {
        let mut family = w.family(spec, Kind::Counter);
        for (vbd, labels) in labelled.vbds() {
            if let Some(value) = field(vbd) {
                family.sample(labels, value);
            }
        }
    }
    let mut error = w.family(
        Spec::new(
            "xen_vbd_error",
            "1 when libxenstat could not read the VBD's statistics (Xen 4.13 and later)",
        ),
        Kind::Gauge,
    );
    for (vbd, labels) in labelled.vbds() {
        if let Some(failed) = vbd.error {
            error.sample(labels, failed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::exposition::Format;
    use crate::xen::model::{Domain, Vbd, Vif};

    fn encode(host: Host) -> String {
        let families: Vec<Box<dyn Families>> = vec![Box::new(HostMetrics(LabelledHost::new(host)))];
        crate::scrape::collector::exposition(&families, Format::OpenMetrics)
    }

    fn domain(domid: u32, name: &str) -> Domain {
        Domain {
            domid,
            name: name.to_owned(),
            ..Domain::default()
        }
    }

    #[test]
    fn duplicates_are_emitted_once() {
        let mut guest = domain(3, "web");
        let vif = Vif {
            devid: 0,
            rx_bytes: 10,
            ..Vif::default()
        };
        // HVM guests show `vif3.0` and `vif3.0-emu`: both parse as devid 0.
        guest.vifs = vec![
            vif.clone(),
            Vif {
                rx_bytes: 99,
                ..vif
            },
        ];
        guest.vbds = vec![
            Vbd {
                devno: 51712,
                ..Vbd::default()
            };
            2
        ];
        let host = Host {
            domains: vec![domain(0, "Domain-0"), guest, domain(4, "web")],
            ..Host::default()
        };
        let text = encode(host);
        let count = |prefix: &str| text.lines().filter(|l| l.starts_with(prefix)).count();
        assert_eq!(count("xen_vif_receive_bytes_total{"), 1, "{text}");
        assert_eq!(count("xen_vbd_read_requests_total{"), 1, "{text}");
        // Two domains named "web": the later is served under its domid, never merged.
        assert_eq!(count("xen_domain_info{"), 3, "{text}");
        assert!(
            text.contains("xen_domain_info{domain=\"web (domid 4)\",domid=\"4\""),
            "{text}"
        );
        assert!(text.contains("xen_vif_receive_bytes_total{domain=\"web\",device=\"vif3.0\"} 10"));
    }

    #[test]
    fn nameless_domain_gets_its_domid_as_label() {
        let text = encode(Host {
            domains: vec![domain(7, "")],
            ..Host::default()
        });
        assert!(text.contains("domain=\"domid-7\""), "{text}");
    }

    #[test]
    fn bytes_are_sectors_times_512_and_units_are_suffixed() {
        let mut guest = domain(1, "db");
        guest.vbds.push(Vbd {
            devno: 51712,
            read_sectors: 65560,
            out_of_requests: 3,
            ..Vbd::default()
        });
        let text = encode(Host {
            domains: vec![guest],
            ..Host::default()
        });
        assert!(text.contains("xen_vbd_read_bytes_total{domain=\"db\",device=\"xvda\"} 33566720"));
        assert!(text.contains("xen_vbd_out_of_requests_total{domain=\"db\",device=\"xvda\"} 3"));
        assert!(text.contains("# UNIT xen_vbd_read_bytes bytes"));
        // No flush counter when the source could not know it.
        assert!(!text.contains("xen_vbd_flush_requests"), "{text}");
    }
}
