//! A snapshot with every domain's and device's label set worked out once per scrape, and the
//! duplicates that would make two series of one label set dropped.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::lock::MutexUnpoisoned;
use crate::scrape::exposition::Labels;
use crate::xen::dom0::devno;
use crate::xen::model::{Domain, Host, Vbd, Vif};

/// A snapshot with its label sets worked out once and duplicates removed.
#[derive(Debug, Default)]
pub struct LabelledHost {
    pub host: Host,
    /// `domain="<name>"` of each domain, in `host.domains` order.
    pub domain_labels: Vec<Labels>,
    /// `domain=…,device="xvda"` of each VBD, per domain.
    pub vbd_labels: Vec<Vec<Labels>>,
    /// `domain=…,device="vif3.0"` of each vif, per domain.
    pub vif_labels: Vec<Vec<Labels>>,
}

impl LabelledHost {
    /// Labels every domain and device. A domain whose name an earlier one (lower domid)
    /// already has (XAPI allows two VMs of one name; a local migration shows both ends) is
    /// served as `<name> (domid <id>)`, said once in the log; a second vif with the same
    /// interface name and a repeated VBD are dropped: one series per label set.
    pub fn new(mut host: Host) -> Self {
        let mut names = HashSet::new();
        host.domains.retain_mut(|domain| {
            if domain.name.is_empty() {
                // A domain being built or torn down can be nameless for a moment.
                domain.name = format!("domid-{}", domain.domid);
            }
            if names.insert(domain.name.clone()) {
                return true;
            }
            let shared = std::mem::take(&mut domain.name);
            domain.name = format!("{shared} (domid {})", domain.domid);
            log_once(&shared, domain.domid);
            // Only a domain literally named "x (domid 7)" next to x with domid 7 can collide.
            names.insert(domain.name.clone())
        });
        let mut labelled = Self {
            domain_labels: Vec::with_capacity(host.domains.len()),
            vbd_labels: Vec::with_capacity(host.domains.len()),
            vif_labels: Vec::with_capacity(host.domains.len()),
            host: Host::default(),
        };
        for domain in &mut host.domains {
            dedup_by_key(&mut domain.vcpus, |vcpu| vcpu.id);
            dedup_by_key(&mut domain.vifs, |vif| (vif.kind, vif.devid));
            dedup_by_key(&mut domain.vbds, |vbd| vbd.devno);
            let by_domain = Labels::new().with("domain", &domain.name);
            let device = |name: &str| by_domain.with("device", name);
            labelled.vbd_labels.push(
                domain
                    .vbds
                    .iter()
                    .map(|vbd| device(&devno::name(vbd.devno)))
                    .collect(),
            );
            labelled.vif_labels.push(
                domain
                    .vifs
                    .iter()
                    .map(|vif| device(&vif.interface_name(domain.domid)))
                    .collect(),
            );
            labelled.domain_labels.push(by_domain);
        }
        labelled.host = host;
        labelled
    }

    /// Each domain with its `domain` label.
    pub fn domains(&self) -> impl Iterator<Item = (&Domain, &Labels)> + Clone {
        self.host.domains.iter().zip(&self.domain_labels)
    }

    /// Every VBD with its domain and device labels.
    pub fn vbds(&self) -> impl Iterator<Item = (&Vbd, &Labels)> + Clone {
        self.host
            .domains
            .iter()
            .zip(&self.vbd_labels)
            .flat_map(|(domain, labels)| domain.vbds.iter().zip(labels))
    }

    /// Every vif with its domain and device labels.
    pub fn vifs(&self) -> impl Iterator<Item = (&Vif, &Labels)> + Clone {
        self.host
            .domains
            .iter()
            .zip(&self.vif_labels)
            .flat_map(|(domain, labels)| domain.vifs.iter().zip(labels))
    }
}

/// Says once per (domid, name) that a domain is served under a disambiguated name. The set is
/// only a memory of what was said; it is emptied when it grows large (a host churning through
/// thousands of same-named domains then repeats a line now and then).
fn log_once(name: &str, domid: u32) {
    static SAID: Mutex<Option<HashSet<(u32, String)>>> = Mutex::new(None);
    let mut said = SAID.lock_unpoisoned();
    let said = said.get_or_insert_with(HashSet::new);
    if said.len() > 4096 {
        said.clear();
    }
    if said.insert((domid, name.to_owned())) {
        tracing::warn!(
            domain = %name,
            domid,
            label = %format!("{name} (domid {domid})"),
            "two domains share a name: the later one is labelled with its domid"
        );
    }
}

/// Keeps the first of each key, in order.
fn dedup_by_key<T, K: std::hash::Hash + Eq>(items: &mut Vec<T>, key: impl Fn(&T) -> K) {
    // A domain's few devices are nearly always distinct: checking that is cheaper than a
    // hash set, and this runs for every domain at every scrape.
    let distinct = |items: &[T]| {
        items.len() <= 16
            && items.iter().enumerate().all(|(index, item)| {
                items[..index]
                    .iter()
                    .all(|earlier| key(earlier) != key(item))
            })
    };
    if distinct(items) {
        return;
    }
    let mut seen = HashSet::new();
    items.retain(|item| seen.insert(key(item)));
}
