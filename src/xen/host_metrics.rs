//! Encodes one [`Host`] snapshot as the hypervisor families (what xentop shows) and, through
//! [`ring_metrics`], the ring families: exactly the domains and devices of this snapshot.

use std::collections::HashSet;
use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::xen::devno;
use crate::xen::encode::{counters, flag, gauges, infos, Spec};
use crate::xen::model::{Domain, Host, SECTOR_BYTES};
use crate::xen::ring_metrics;

/// The label set of host-wide samples.
const NO_LABELS: [(&str, &str); 0] = [];

/// A snapshot with its label values worked out once and duplicates removed.
#[derive(Debug, Default)]
pub struct LabelledHost {
    pub host: Host,
    /// The `domain` label of each domain, in `host.domains` order.
    pub domain_names: Vec<String>,
    /// The `device` label of each VBD (`xvda`), per domain.
    pub vbd_devices: Vec<Vec<String>>,
    /// The `device` label of each vif (`vif3.0`), per domain.
    pub vif_devices: Vec<Vec<String>>,
}

impl LabelledHost {
    /// Labels every domain and device. A domain whose name another domain already has (a
    /// rename or migration in progress), a second vif with the same backend name (HVM
    /// `vifX.Y-emu` next to `vifX.Y`) and a repeated VBD are dropped: one series per label set.
    pub fn new(mut host: Host) -> Self {
        let mut names = HashSet::new();
        host.domains.retain_mut(|domain| {
            if domain.name.is_empty() {
                // A domain being built or torn down can be nameless for a moment.
                domain.name = format!("domid-{}", domain.domid);
            }
            let unique = names.insert(domain.name.clone());
            if !unique {
                tracing::debug!(domain = %domain.name, domid = domain.domid, "duplicate domain name skipped");
            }
            unique
        });
        let mut labelled = Self {
            domain_names: Vec::with_capacity(host.domains.len()),
            vbd_devices: Vec::with_capacity(host.domains.len()),
            vif_devices: Vec::with_capacity(host.domains.len()),
            host: Host::default(),
        };
        for domain in &mut host.domains {
            dedup_by_key(&mut domain.vcpus, |vcpu| vcpu.id);
            dedup_by_key(&mut domain.vifs, |vif| vif.devid);
            dedup_by_key(&mut domain.vbds, |vbd| vbd.devno);
            labelled.domain_names.push(domain.name.clone());
            labelled.vbd_devices.push(
                domain
                    .vbds
                    .iter()
                    .map(|vbd| devno::name(vbd.devno))
                    .collect(),
            );
            labelled.vif_devices.push(
                domain
                    .vifs
                    .iter()
                    .map(|vif| vif.interface_name(domain.domid))
                    .collect(),
            );
        }
        labelled.host = host;
        labelled
    }

    /// Each domain with its `domain` label.
    pub fn domains(&self) -> impl Iterator<Item = (&Domain, &str)> + Clone {
        self.host
            .domains
            .iter()
            .zip(self.domain_names.iter().map(String::as_str))
    }

    /// Every VBD with its domain and device labels.
    pub fn vbds(&self) -> impl Iterator<Item = (&crate::xen::model::Vbd, [(&str, &str); 2])> {
        self.domains()
            .zip(&self.vbd_devices)
            .flat_map(|((domain, name), devices)| {
                domain.vbds.iter().zip(devices).map(move |(vbd, device)| {
                    (vbd, [("domain", name), ("device", device.as_str())])
                })
            })
    }

    /// Every vif with its domain and device labels.
    pub fn vifs(&self) -> impl Iterator<Item = (&crate::xen::model::Vif, [(&str, &str); 2])> {
        self.domains()
            .zip(&self.vif_devices)
            .flat_map(|((domain, name), devices)| {
                domain.vifs.iter().zip(devices).map(move |(vif, device)| {
                    (vif, [("domain", name), ("device", device.as_str())])
                })
            })
    }
}

/// Keeps the first of each key, in order.
fn dedup_by_key<T, K: std::hash::Hash + Eq>(items: &mut Vec<T>, key: impl Fn(&T) -> K) {
    let mut seen = HashSet::new();
    items.retain(|item| seen.insert(key(item)));
}

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

impl Collector for XenUp {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        gauges(&mut encoder, UP, [(NO_LABELS, flag(self.0))])
    }
}

impl Collector for HostMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let e = &mut encoder;
        gauges(e, UP, [(NO_LABELS, 1.0)])?;
        encode_host(e, &self.0.host)?;
        encode_domains(e, &self.0)?;
        encode_vifs(e, &self.0)?;
        encode_vbds(e, &self.0)?;
        ring_metrics::encode(e, &self.0)
    }
}

fn encode_host(e: &mut DescriptorEncoder, host: &Host) -> fmt::Result {
    let none = |value: f64| [(NO_LABELS, value)];
    gauges(
        e,
        Spec::new("xen_host_cpus", "Physical CPUs of the host"),
        none(f64::from(host.cpus)),
    )?;
    gauges(
        e,
        Spec::new("xen_host_cpu_frequency_hertz", "CPU clock of the host"),
        none(host.cpu_hz as f64),
    )?;
    gauges(
        e,
        Spec::bytes("xen_host_memory_total", "Memory of the host"),
        none(host.memory_total_bytes as f64),
    )?;
    gauges(
        e,
        Spec::bytes(
            "xen_host_memory_free",
            "Memory of the host not given to any domain",
        ),
        none(host.memory_free_bytes as f64),
    )?;
    infos(
        e,
        Spec::new("xen_version", "Version of the Xen hypervisor"),
        host.xen_version
            .iter()
            .map(|version| [("version", version.as_str())]),
    )?;
    gauges(
        e,
        Spec::new("xen_domains", "Domains that exist now, Domain-0 included"),
        none(host.domains.len() as f64),
    )
}

/// The `state` label values, in xentop's order of its state letters.
const STATES: [&str; 6] = [
    "dying", "shutdown", "blocked", "crashed", "paused", "running",
];

fn encode_domains(e: &mut DescriptorEncoder, labelled: &LabelledHost) -> fmt::Result {
    let domains = labelled.domains();
    let by_domain = |name| [("domain", name)];
    let domid_strings: Vec<(String, String)> = labelled
        .host
        .domains
        .iter()
        .map(|domain| (domain.domid.to_string(), domain.ssid.to_string()))
        .collect();
    infos(
        e,
        Spec::new(
            "xen_domain",
            "Facts about a domain that change across its life (domid after a reboot, UUID)",
        ),
        domains
            .clone()
            .zip(&domid_strings)
            .map(|((domain, name), (domid, ssid))| {
                [
                    ("domain", name),
                    ("domid", domid.as_str()),
                    ("uuid", domain.uuid.as_deref().unwrap_or("")),
                    ("ssid", ssid.as_str()),
                ]
            }),
    )?;
    counters(
        e,
        Spec::seconds(
            "xen_domain_cpu",
            "CPU time consumed by all VCPUs of the domain",
        ),
        domains
            .clone()
            .map(|(domain, name)| (by_domain(name), domain.cpu_time.as_secs_f64())),
    )?;
    gauges(
        e,
        Spec::new("xen_domain_vcpus", "VCPUs of the domain, online or not"),
        domains
            .clone()
            .map(|(domain, name)| (by_domain(name), domain.vcpus.len() as f64)),
    )?;
    gauges(
        e,
        Spec::bytes("xen_domain_memory", "Memory the domain has now"),
        domains
            .clone()
            .map(|(domain, name)| (by_domain(name), domain.memory_bytes as f64)),
    )?;
    gauges(
        e,
        Spec::bytes(
            "xen_domain_memory_max",
            "Memory limit of the domain (absent when unlimited)",
        ),
        domains.clone().filter_map(|(domain, name)| {
            domain
                .memory_max_bytes
                .map(|max| (by_domain(name), max as f64))
        }),
    )?;
    gauges(
        e,
        Spec::new(
            "xen_domain_state",
            "1 for each state flag the hypervisor reports for the domain (several can be set)",
        ),
        domains.clone().flat_map(|(domain, name)| {
            let s = domain.state;
            let set = [
                s.dying, s.shutdown, s.blocked, s.crashed, s.paused, s.running,
            ];
            STATES
                .iter()
                .zip(set)
                .map(move |(state, on)| ([("domain", name), ("state", *state)], flag(on)))
        }),
    )?;
    let vcpus = || {
        domains.clone().flat_map(|(domain, name)| {
            domain
                .vcpus
                .iter()
                .map(move |vcpu| (vcpu, ([("domain", name)], [("vcpu", vcpu.id)])))
        })
    };
    counters(
        e,
        Spec::seconds("xen_vcpu_cpu", "CPU time consumed by the VCPU"),
        vcpus().map(|(vcpu, labels)| (labels, vcpu.cpu_time.as_secs_f64())),
    )?;
    gauges(
        e,
        Spec::new("xen_vcpu_online", "1 when the VCPU is online"),
        vcpus().map(|(vcpu, labels)| (labels, flag(vcpu.online))),
    )
}

fn encode_vifs(e: &mut DescriptorEncoder, labelled: &LabelledHost) -> fmt::Result {
    // Dom0's view of the backend interface, as xentop and node_exporter count it: "receive" is
    // what the guest sent.
    type Field = fn(&crate::xen::model::Vif) -> u64;
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
        counters(
            e,
            spec,
            labelled.vifs().map(|(vif, labels)| (labels, field(vif))),
        )?;
    }
    Ok(())
}

fn encode_vbds(e: &mut DescriptorEncoder, labelled: &LabelledHost) -> fmt::Result {
    let devnos: Vec<String> = labelled
        .host
        .domains
        .iter()
        .flat_map(|domain| domain.vbds.iter().map(|vbd| vbd.devno.to_string()))
        .collect();
    infos(
        e,
        Spec::new(
            "xen_vbd",
            "A virtual block device: its Xen device number and backend",
        ),
        labelled
            .vbds()
            .zip(&devnos)
            .map(|((vbd, [domain, device]), devno)| {
                [
                    domain,
                    device,
                    ("devno", devno.as_str()),
                    ("backend", vbd.backend.as_str()),
                ]
            }),
    )?;
    type Field = fn(&crate::xen::model::Vbd) -> Option<u64>;
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
        counters(
            e,
            spec,
            labelled
                .vbds()
                .filter_map(|(vbd, labels)| field(vbd).map(|value| (labels, value))),
        )?;
    }
    gauges(
        e,
        Spec::new(
            "xen_vbd_error",
            "1 when libxenstat could not read the VBD's statistics (Xen 4.13 and later)",
        ),
        labelled
            .vbds()
            .filter_map(|(vbd, labels)| vbd.error.map(|error| (labels, flag(error)))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xen::model::{Vbd, Vif};
    use prometheus_client::registry::Registry;

    fn encode(host: Host) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(HostMetrics(LabelledHost::new(host))));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode");
        out
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
        assert_eq!(count("xen_domain_info{"), 2, "{text}");
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
