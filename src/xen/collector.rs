//! The scrape-time Xen collector: one snapshot from the source (part `xen`), blkback's own
//! counters from sysfs (part `vbd`) and ring state from xenstore and netback debugfs (part
//! `rings`), encoded as exactly the domains that exist at this moment.
//!
//! Each part reports its own success; a part that fails is left out and the others still serve.
//! A failure is logged once when it starts (and again only when its reason changes), and once
//! more when the part recovers, so a host without Xen does not fill the log.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;

use crate::collect::{Collected, Outcome, ScrapeCollector};
use crate::config::{Config, XenConfig};
use crate::xen::host_metrics::{HostMetrics, LabelledHost, XenUp};
use crate::xen::model::{Host, VbdBackend};
use crate::xen::source::XenSource;
use crate::xen::xenstore::XenStore;
use crate::xen::{netback, rings, sysfs};

/// Where the Dom0 files live (`--path.sysfs`, `--path.debugfs`) and the xenstore connection.
#[derive(Clone)]
pub struct HostFiles {
    pub sysfs: PathBuf,
    pub debugfs: PathBuf,
    /// `None` when libxenstore could not be loaded: VBD ring geometry is then unknown.
    pub xenstore: Option<Arc<dyn XenStore>>,
}

/// The source, or why there is none (logged once at start by the caller).
pub type SourceResult = Result<Box<dyn XenSource>, String>;

/// Collects the `xen`, `vbd` and `rings` parts.
pub struct XenCollector {
    source: SourceResult,
    files: HostFiles,
    config: watch::Receiver<Arc<Config>>,
    logged: Mutex<Logged>,
}

/// The failure last logged for each part (`None`: it was working).
#[derive(Default)]
struct Logged {
    xen: Option<String>,
    vbd: Option<String>,
    rings: Option<String>,
}

impl XenCollector {
    pub fn new(
        source: SourceResult,
        files: HostFiles,
        config: watch::Receiver<Arc<Config>>,
    ) -> Self {
        // The reason the source is missing was logged at start; do not repeat it per scrape.
        let logged = Logged {
            xen: source.as_ref().err().cloned(),
            ..Logged::default()
        };
        Self {
            source,
            files,
            config,
            logged: Mutex::new(logged),
        }
    }

    fn settings(&self) -> XenConfig {
        self.config.borrow().xen.clone()
    }

    /// Logs `problem` for `part` when it differs from what was last logged for it.
    fn report(&self, part: &'static str, problem: Option<String>) {
        let mut logged = self
            .logged
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let slot = match part {
            "xen" => &mut logged.xen,
            "vbd" => &mut logged.vbd,
            _ => &mut logged.rings,
        };
        if *slot == problem {
            return;
        }
        match &problem {
            Some(reason) => tracing::warn!(collector = part, %reason, "collection failed"),
            None => tracing::info!(collector = part, "collection works again"),
        }
        *slot = problem;
    }

    /// Overwrites blkback VBD counters with sysfs's; `Err` names the first unreadable VBD.
    fn read_vbd_counters(&self, host: &mut Host) -> Result<(), String> {
        let report = sysfs::read_vbds(host, &self.files.sysfs);
        match report.failures.first() {
            None => Ok(()),
            Some(first) => Err(format!(
                "{} of {} VBDs unreadable, first: {first}",
                report.failures.len(),
                report.failures.len() + report.read
            )),
        }
    }

    /// Fills VBD ring geometry (xenstore) and vif queues (debugfs); `Err` says what is missing.
    fn read_rings(&self, host: &mut Host) -> Result<(), String> {
        let mut problems = Vec::new();
        let has_vifs = host.domains.iter().any(|domain| !domain.vifs.is_empty());
        if has_vifs && !self.files.debugfs.join("xen-netback").is_dir() {
            problems.push(format!(
                "{} does not exist: mount debugfs (mount -t debugfs none /sys/kernel/debug) to \
                 read netback rings",
                self.files.debugfs.join("xen-netback").display()
            ));
        } else {
            for domain in &mut host.domains {
                for vif in &mut domain.vifs {
                    let interface = vif.interface_name(domain.domid);
                    match netback::reader::read_vif(&self.files.debugfs, &interface) {
                        Ok(queues) => vif.queues = queues,
                        Err(error) => problems.push(format!("{interface}: {error}")),
                    }
                }
            }
        }
        let blkback = |backend| matches!(backend, VbdBackend::Blkback | VbdBackend::Tap);
        let has_vbds = host
            .domains
            .iter()
            .any(|domain| domain.vbds.iter().any(|vbd| blkback(vbd.backend)));
        match &self.files.xenstore {
            None if has_vbds => {
                problems.push("xenstore is unavailable: VBD ring sizes are unknown".to_owned())
            }
            None => {}
            Some(store) => {
                for domain in &mut host.domains {
                    for vbd in domain.vbds.iter_mut().filter(|vbd| blkback(vbd.backend)) {
                        match rings::vbd_ring(store.as_ref(), domain.domid, vbd.devno) {
                            Ok(ring) => vbd.ring = Some(ring),
                            Err(error) => problems.push(format!(
                                "{} {}: {error}",
                                domain.name,
                                crate::xen::devno::name(vbd.devno)
                            )),
                        }
                    }
                }
            }
        }
        match problems.first() {
            None => Ok(()),
            Some(first) => Err(format!("{} problems, first: {first}", problems.len())),
        }
    }
}

/// Runs `part` and returns its outcome, logging a change of its failure.
fn timed(
    collector: &XenCollector,
    name: &'static str,
    part: impl FnOnce() -> Result<(), String>,
) -> Outcome {
    let started = Instant::now();
    let result = part();
    let outcome = Outcome {
        collector: name,
        success: result.is_ok(),
        duration: started.elapsed(),
    };
    collector.report(name, result.err());
    outcome
}

impl ScrapeCollector for XenCollector {
    fn name(&self) -> &'static str {
        "xen"
    }

    fn collect(&self) -> Collected {
        let started = Instant::now();
        let snapshot = match &self.source {
            Ok(source) => source.snapshot().map_err(|error| error.to_string()),
            Err(reason) => Err(reason.clone()),
        };
        let mut outcomes = vec![Outcome {
            collector: "xen",
            success: snapshot.is_ok(),
            duration: started.elapsed(),
        }];
        let mut host = match snapshot {
            Ok(host) => {
                self.report("xen", None);
                host
            }
            Err(reason) => {
                self.report("xen", Some(reason));
                return Collected {
                    families: vec![Box::new(XenUp(false))],
                    outcomes,
                };
            }
        };
        let from_files = self
            .source
            .as_ref()
            .is_ok_and(|source| !source.includes_rings());
        if from_files {
            let settings = self.settings();
            if settings.vbd_sysfs {
                outcomes.push(timed(self, "vbd", || self.read_vbd_counters(&mut host)));
            }
            if settings.rings {
                outcomes.push(timed(self, "rings", || self.read_rings(&mut host)));
            }
        }
        Collected {
            families: vec![Box::new(HostMetrics(LabelledHost::new(host)))],
            outcomes,
        }
    }

    fn describe(&self) -> String {
        match &self.source {
            Ok(source) => format!("source {}, collected at scrape time", source.describe()),
            Err(reason) => format!("unavailable ({reason}): xen_up is 0"),
        }
    }

    fn on_timeout(&self) -> Vec<Box<dyn prometheus_client::collector::Collector>> {
        vec![Box::new(XenUp(false))]
    }
}
