//! The scrape-time Xen collector: one snapshot from the source (part `xen`), blkback's own
//! counters from sysfs (part `vbd`), ring state from xenstore and netback debugfs (part
//! `rings`) and the statistics of the block devices behind VBDs (part `backing`), encoded as
//! exactly the domains that exist at this moment; with `xen.xapi.names`, XAPI's VM names (part
//! `xapi`).
//!
//! Each part reports its own success; a part that fails is left out and the others still serve.
//! A failure is logged once when it starts (and again only when its reason changes), and once
//! more when the part recovers, so a host without Xen does not fill the log.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::config::{Config, XenConfig};
use crate::lock::MutexUnpoisoned;
use crate::scrape::collector::{Collected, Outcome, ScrapeCollector};
use crate::xen::dom0::backend_devices::Instances;
use crate::xen::dom0::kept_files::{self, KeptFiles};
use crate::xen::dom0::kept_vifs::KeptVifs;
use crate::xen::dom0::memory::{self, MemoryCache};
use crate::xen::dom0::ring_cache::RingCache;
use crate::xen::dom0::tapdisk::{Tapdisk, TapdiskCache};
use crate::xen::dom0::xenstore::XenStore;
use crate::xen::dom0::{backend_devices, blockdev, netdev, sysfs};
use crate::xen::metrics::host::{HostMetrics, XenUp};
use crate::xen::metrics::labelled::LabelledHost;
use crate::xen::model::{Host, VbdBackend, Vif, VifKind, VifQueue};
use crate::xen::source::{SourceError, XenSource};
use crate::xen::vbd_plan::VbdPlan;
use crate::xen::xapi::XapiNames;

/// Where the Dom0 files live (`--path.sysfs`, `--path.debugfs`, `--path.procfs`,
/// `--path.shm`) and the xenstore connection.
#[derive(Clone)]
pub struct HostFiles {
    pub sysfs: PathBuf,
    pub debugfs: PathBuf,
    /// Guest NIC counters (`<procfs>/1/net/dev`), live tapdisks (`<procfs>/<pid>`).
    pub procfs: PathBuf,
    /// tapdisk3's statistics (`<shm>/td3-<pid>/`, `<shm>/vbd3-<domid>-<devid>/`).
    pub shm: PathBuf,
    /// `None` when libxenstore could not be loaded: VBD ring geometry is then unknown.
    pub xenstore: Option<Arc<dyn XenStore>>,
}

/// The source, or why there is none (logged once at start by the caller).
pub type SourceResult = Result<Box<dyn XenSource>, SourceError>;

/// Collects the `xen`, `vbd`, `rings` and `backing` parts.
pub struct XenCollector {
    source: SourceResult,
    files: HostFiles,
    config: watch::Receiver<Arc<Config>>,
    logged: Mutex<Logged>,
    /// VBD ring geometry by device, read from xenstore again only when it may have changed.
    ring_cache: Mutex<RingCache>,
    /// Whether the next snapshot asks libxenstat for VBDs.
    vbd_plan: Mutex<VbdPlan>,
    /// blkback's statistics files kept open between scrapes.
    kept_files: Mutex<KeptFiles>,
    /// netback's debugfs queue files kept open between scrapes.
    kept_vifs: Mutex<KeptVifs>,
    /// What xenstore said of each vbd3 device, kept for its life.
    tapdisk_cache: Mutex<TapdiskCache>,
    /// The owner tapdisk's files must have: root; tests use their own uid.
    shm_owner: u32,
    /// Each domain's memory keys, re-read every `memory::REFRESH`.
    memory_cache: Mutex<MemoryCache>,
    /// XAPI's VM names, kept by a background task (`None`: nobody reads them).
    xapi_names: Option<XapiNames>,
}

/// The failure last logged for each part (`None`: it was working).
#[derive(Default)]
struct Logged {
    xen: Option<String>,
    vbd: Option<String>,
    rings: Option<String>,
    backing: Option<String>,
    vif: Option<String>,
    tapdisk: Option<String>,
    memory: Option<String>,
    xapi: Option<String>,
    /// The `rings` problem already told at start (debugfs missing): scrapes failing for it
    /// stay quiet, and a scrape that has nothing to read (no vifs yet) does not claim recovery.
    rings_at_start: Option<String>,
}

impl XenCollector {
    pub fn new(
        source: SourceResult,
        files: HostFiles,
        config: watch::Receiver<Arc<Config>>,
    ) -> Self {
        let budgets = kept_files::budgets();
        // The reason the source is missing was logged at start; do not repeat it per scrape.
        let logged = Logged {
            xen: source.as_ref().err().map(ToString::to_string),
            ..Logged::default()
        };
        Self {
            source,
            files,
            config,
            logged: Mutex::new(logged),
            ring_cache: Mutex::new(RingCache::new()),
            vbd_plan: Mutex::new(VbdPlan::new()),
            kept_files: Mutex::new(KeptFiles::with_budget(budgets.0)),
            kept_vifs: Mutex::new(KeptVifs::with_budget(budgets.1)),
            tapdisk_cache: Mutex::new(TapdiskCache::default()),
            shm_owner: 0,
            memory_cache: Mutex::new(MemoryCache::default()),
            xapi_names: None,
        }
    }

    /// Names domains from `names` while `xen.xapi.names` is on.
    pub fn with_xapi_names(mut self, names: XapiNames) -> Self {
        self.xapi_names = Some(names);
        self
    }

    /// Accepts tapdisk files owned by `uid` instead of root: for tests that cannot chown.
    pub fn with_shm_owner(mut self, uid: u32) -> Self {
        self.shm_owner = uid;
        self
    }

    fn settings(&self) -> XenConfig {
        self.config.borrow().xen.clone()
    }

    /// Logs `problem` for `part` when its first problem differs from what was last logged for
    /// it (a changing count of failing devices alone does not repeat the line).
    fn report(&self, part: &'static str, problem: Option<Failure>) {
        let mut logged = self.logged.lock_unpoisoned();
        let told_at_start = part == "rings"
            && problem.as_ref().is_some_and(|failure| {
                logged.rings_at_start.as_deref() == Some(failure.first.as_str())
            });
        let slot = match part {
            "xen" => &mut logged.xen,
            "vbd" => &mut logged.vbd,
            "backing" => &mut logged.backing,
            "vif" => &mut logged.vif,
            "tapdisk" => &mut logged.tapdisk,
            "memory" => &mut logged.memory,
            "xapi" => &mut logged.xapi,
            _ => &mut logged.rings,
        };
        if slot.as_deref() == problem.as_ref().map(|failure| failure.first.as_str()) {
            return;
        }
        if told_at_start {
            *slot = problem.map(|failure| failure.first);
            return;
        }
        match &problem {
            Some(failure) => {
                tracing::warn!(collector = part, reason = %failure, "collection failed")
            }
            None => tracing::info!(collector = part, "collection works again"),
        }
        *slot = problem.map(|failure| failure.first);
    }

    /// Says once, at start, what keeps a part from ever working on this host as configured
    /// (today: debugfs not mounted), so the operator reads the fix before the first scrape. The
    /// scrapes that then fail for the same reason do not repeat it.
    pub fn log_start_problems(&self) {
        let reads_files = self
            .source
            .as_ref()
            .is_ok_and(|source| !source.includes_rings());
        if !reads_files {
            return;
        }
        if crate::xen::dom0::rings::blkback_log_stats(&self.files.sysfs) == Some(true) {
            // blkback then logs and zeroes every VBD's counters each 10 s: rates still work
            // (Prometheus sees resets), but a counter's value is only the last 10 s.
            tracing::warn!(
                parameter = "xen_blkback.log_stats",
                "blkback resets its VBD counters every 10 s: increase() and rate() are right, raw values are not"
            );
        }
        if !self.settings().rings {
            return;
        }
        if let Some(hint) = self.debugfs_problem() {
            tracing::warn!(collector = "rings", reason = %hint, "netback ring statistics unavailable");
            let mut logged = self.logged.lock_unpoisoned();
            logged.rings_at_start = Some(hint);
        }
    }

    /// Why netback's debugfs files cannot be read at all, with how to fix it; `None` when the
    /// `xen-netback` directory is there.
    fn debugfs_problem(&self) -> Option<String> {
        let netback = self.files.debugfs.join("xen-netback");
        match std::fs::metadata(&netback) {
            Ok(metadata) if metadata.is_dir() => None,
            Ok(_) => Some(format!("{} is not a directory", netback.display())),
            // debugfs is mode 0700 root: mounted, but this user may not look inside.
            Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => Some(format!(
                "{}: {error}: debugfs is readable by root only; run the exporter as root (the \
                 systemd unit does) to read netback rings",
                netback.display()
            )),
            Err(error) => Some(format!(
                "{}: {error}: mount debugfs (mount -t debugfs none /sys/kernel/debug, or point \
                 --path.debugfs at it) and load xen-netback to read netback rings",
                netback.display()
            )),
        }
    }

    /// Overwrites blkback VBD counters with sysfs's; `Err` names the first unreadable VBD.
    fn read_vbd_counters(
        &self,
        host: &mut Host,
        listing: Option<&Instances>,
    ) -> Result<(), Failure> {
        let mut kept = self.kept_files.lock_unpoisoned();
        let report = sysfs::read_vbds_kept(host, &self.files.sysfs, &mut kept, listing);
        Failure::first_of(&report.failures, |failed| {
            format!("{failed} of {} VBDs unreadable", failed + report.read)
        })
    }

    /// Reads the block device behind every VBD whose `physical-device` the `rings` part read;
    /// `Err` names the first VBD whose device statistics could not be read. Without xenstore
    /// no backing device is known, which fails the part while blkback VBDs exist.
    fn read_backing(&self, host: &mut Host) -> Result<(), Failure> {
        let report = blockdev::read_backing(host, &self.files.sysfs);
        if self.files.xenstore.is_none() {
            let blkback = host
                .domains
                .iter()
                .flat_map(|domain| &domain.vbds)
                .any(|vbd| matches!(vbd.backend, VbdBackend::Blkback | VbdBackend::Tap));
            if blkback {
                return Err(Failure::single(
                    "xenstore is unavailable: the block devices behind VBDs are unknown".to_owned(),
                ));
            }
        }
        Failure::first_of(&report.failures, |failed| {
            format!(
                "{failed} of {} backing devices unreadable",
                failed + report.read
            )
        })
    }

    /// Puts Dom0's own counters of every guest NIC (`/proc/net/dev`) into `host`; `Err` when
    /// the file cannot be read or a guest's line parsed (the snapshot's numbers are kept).
    fn read_vif_counters(&self, host: &mut Host) -> Result<(), Failure> {
        let interfaces =
            netdev::read(&self.files.procfs).map_err(|error| Failure::single(error.to_string()))?;
        netdev::apply(host, interfaces);
        Ok(())
    }

    /// Reads every vbd3 (tapdisk3) device's counters, ring and keys; `Err` names the first
    /// device that failed, the others are filled.
    fn read_tapdisks(&self, host: &mut Host) -> Result<(), Failure> {
        let reader = Tapdisk {
            sysfs: &self.files.sysfs,
            shm: &self.files.shm,
            procfs: &self.files.procfs,
            store: self.files.xenstore.as_deref(),
            owner: self.shm_owner,
        };
        let mut cache = self.tapdisk_cache.lock_unpoisoned();
        let report = reader.read_host(host, &mut cache);
        Failure::first_of(&report.failures, |failed| {
            format!(
                "{failed} of {} vbd3 devices failed",
                failed + report.read + report.without_stats
            )
        })
    }

    /// Fills each domain's balloon target and agent-reported free memory from xenstore;
    /// `Err` names the first read that failed.
    fn read_memory(&self, store: &dyn XenStore, host: &mut Host) -> Result<(), Failure> {
        let mut cache = self.memory_cache.lock_unpoisoned();
        let failures = memory::fill(store, host, &mut cache, Instant::now());
        Failure::first_of(&failures, |failed| {
            format!("{failed} xenstore reads failed")
        })
    }

    /// Reads the queues of every netback vif in `interfaces` (debugfs), through the kept
    /// descriptors, in order; `Err`: debugfs cannot be read at all (why, and how to fix it).
    /// Reads `host` not at all, so it can run next to the `vbd` part.
    fn read_netback(&self, interfaces: &[String]) -> NetbackRead {
        let started = Instant::now();
        let queues = if interfaces.is_empty() {
            Ok(Vec::new())
        } else if let Some(problem) = self.debugfs_problem() {
            Err(problem)
        } else {
            let mut kept = self.kept_vifs.lock_unpoisoned();
            kept.begin();
            let queues = interfaces
                .iter()
                .map(|interface| {
                    kept.read_vif(&self.files.debugfs, interface)
                        .map_err(|error| format!("{interface}: {error}"))
                })
                .collect();
            kept.end();
            Ok(queues)
        };
        NetbackRead {
            queues,
            duration: started.elapsed(),
        }
    }

    /// Fills VBD ring geometry (xenstore) and vif queues (`netback`, read by [`read_netback`]
    /// for [`netback_interfaces`] of this host); `Err` says what is missing. A vif whose
    /// queues cannot be read gets none (never some of them); the others are filled.
    fn read_rings(
        &self,
        host: &mut Host,
        listing: Option<&Instances>,
        netback: NetbackRead,
    ) -> Result<(), Failure> {
        let mut problems = Vec::new();
        match netback.queues {
            Err(problem) => problems.push(problem),
            Ok(read) => {
                let vifs = host
                    .domains
                    .iter_mut()
                    .flat_map(|domain| domain.vifs.iter_mut())
                    .filter(|vif| is_netback(vif));
                for (vif, queues) in vifs.zip(read) {
                    match queues {
                        Ok(queues) => vif.queues = queues,
                        Err(problem) => problems.push(problem),
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
                // Geometry is cached per device (ring_cache.rs); the sysfs listing tells a
                // device re-created under the same name from the one cached. Called without
                // VBDs too, so the cache forgets devices that went away.
                let listed;
                let instances = match listing {
                    Some(listing) => Some(listing),
                    None if has_vbds => {
                        listed = backend_devices::list(&self.files.sysfs).ok();
                        listed.as_ref()
                    }
                    None => None,
                };
                let mut cache = self.ring_cache.lock_unpoisoned();
                problems.extend(cache.fill(store.as_ref(), host, instances));
            }
        }
        match problems.first() {
            None => Ok(()),
            Some(first) => Err(Failure {
                summary: format!("{} problems", problems.len()),
                first: first.clone(),
            }),
        }
    }
}

/// Why a part failed: how much failed, and the first problem, which names a path or device.
#[derive(Debug)]
struct Failure {
    summary: String,
    first: String,
}

impl Failure {
    fn single(reason: String) -> Self {
        Self {
            summary: String::new(),
            first: reason,
        }
    }

    /// `Ok` when nothing failed, else the count (worded by `summary`) and the first failure.
    fn first_of<E: std::fmt::Display>(
        failures: &[E],
        summary: impl FnOnce(usize) -> String,
    ) -> Result<(), Failure> {
        match failures.first() {
            None => Ok(()),
            Some(first) => Err(Failure {
                summary: summary(failures.len()),
                first: first.to_string(),
            }),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.summary.is_empty() {
            f.write_str(&self.first)
        } else {
            write!(f, "{}, first: {}", self.summary, self.first)
        }
    }
}

/// An emulated NIC's tap has no netback queues.
fn is_netback(vif: &Vif) -> bool {
    vif.kind == VifKind::Netback
}

/// The interface names of `host`'s netback vifs, in the order [`XenCollector::read_rings`]
/// fills them.
fn netback_interfaces(host: &Host) -> Vec<String> {
    host.domains
        .iter()
        .flat_map(|domain| {
            domain
                .vifs
                .iter()
                .filter(|vif| is_netback(vif))
                .map(|vif| vif.interface_name(domain.domid))
        })
        .collect()
}

/// What [`XenCollector::read_netback`] read, and how long it took.
struct NetbackRead {
    queues: Result<Vec<Result<Vec<VifQueue>, String>>, String>,
    duration: Duration,
}

/// From this many netback vifs on, their debugfs files are read on a second thread while the
/// `vbd` part reads blkback's files: the parts are independent, and below it the thread's
/// start (~50 µs) is not won back.
const PARALLEL_VIFS: usize = 64;

/// Runs `part` and returns its outcome, logging a change of its failure.
fn timed(
    collector: &XenCollector,
    name: &'static str,
    part: impl FnOnce() -> Result<(), Failure>,
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
        let from_files = self
            .source
            .as_ref()
            .is_ok_and(|source| !source.includes_rings());
        let settings = self.settings();
        // blkback's devices, listed once for both the snapshot (vbd_plan.rs) and the ring cache.
        let listing = (from_files && settings.vbd_sysfs)
            .then(|| backend_devices::list(&self.files.sysfs).ok())
            .flatten();
        let snapshot = match &self.source {
            Ok(source) => self
                .vbd_plan
                .lock_unpoisoned()
                .snapshot(source.as_ref(), listing.as_ref(), started)
                .map_err(|error| error.to_string()),
            Err(error) => Err(error.to_string()),
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
                self.report("xen", Some(Failure::single(reason)));
                return Collected {
                    families: vec![Box::new(XenUp(false))],
                    outcomes,
                };
            }
        };
        if let Some(names) = self.xapi_names.as_ref().filter(|_| settings.xapi.names) {
            outcomes.push(timed(self, "xapi", || {
                names.apply(&mut host).map_err(Failure::single)
            }));
        }
        if from_files {
            // Before `rings`, which reads netback's queues of the vifs found here.
            outcomes.push(timed(self, "vif", || self.read_vif_counters(&mut host)));
            outcomes.push(timed(self, "tapdisk", || self.read_tapdisks(&mut host)));
            // Without xenstore (said once at start) there is nothing to read.
            if let Some(store) = &self.files.xenstore {
                let store = Arc::clone(store);
                outcomes.push(timed(self, "memory", || {
                    self.read_memory(store.as_ref(), &mut host)
                }));
            }
            let interfaces = if settings.rings {
                netback_interfaces(&host)
            } else {
                Vec::new()
            };
            // On a big host netback's files are read on a second core meanwhile (`vbd` and
            // the netback half of `rings` touch different files and fields).
            let parallel = settings.vbd_sysfs && interfaces.len() >= PARALLEL_VIFS;
            let mut netback = None;
            if settings.vbd_sysfs {
                let vbd = || self.read_vbd_counters(&mut host, listing.as_ref());
                if parallel {
                    std::thread::scope(|scope| {
                        let reader = scope.spawn(|| self.read_netback(&interfaces));
                        outcomes.push(timed(self, "vbd", vbd));
                        netback = Some(reader.join().unwrap_or_else(|_| NetbackRead {
                            queues: Err("netback's reader thread panicked".to_owned()),
                            duration: Duration::ZERO,
                        }));
                    });
                } else {
                    outcomes.push(timed(self, "vbd", vbd));
                }
            }
            if settings.rings {
                let netback = netback.unwrap_or_else(|| self.read_netback(&interfaces));
                let read = netback.duration;
                let mut outcome = timed(self, "rings", || {
                    self.read_rings(&mut host, listing.as_ref(), netback)
                });
                // The part's own time, wherever its netback half ran.
                outcome.duration += read;
                outcomes.push(outcome);
                // The backing devices are named by `physical-device`, read with the rings.
                outcomes.push(timed(self, "backing", || self.read_backing(&mut host)));
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

    fn on_timeout(&self) -> Vec<Box<dyn crate::scrape::collector::Families>> {
        vec![Box::new(XenUp(false))]
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use tokio::sync::watch;

    use super::*;
    use crate::config::Config;
    use crate::scrape::exposition::Format;
    use crate::xen::model::{Domain, Vbd, Vif};
    use crate::xen::source::SourceError;

    const Q0: &str = include_str!("../../tests/fixtures/debugfs/xen-netback/vif1.0/io_ring_q0");
    const NET_DEV_HEADER: &str = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes\n";

    /// A source that returns a fixed host, as libxenstat would: rings come from the files.
    struct Fixed(Host);

    impl XenSource for Fixed {
        fn name(&self) -> &'static str {
            "fixed"
        }
        fn snapshot(&self) -> Result<Host, SourceError> {
            Ok(self.0.clone())
        }
    }

    fn domain(domid: u32, vifs: &[u32], vbds: &[u32]) -> Domain {
        Domain {
            domid,
            name: format!("guest{domid}"),
            vifs: vifs
                .iter()
                .map(|&devid| Vif {
                    devid,
                    ..Vif::default()
                })
                .collect(),
            vbds: vbds
                .iter()
                .map(|&devno| Vbd {
                    devno,
                    ..Vbd::default()
                })
                .collect(),
            ..Domain::default()
        }
    }

    fn collector(domains: Vec<Domain>, root: &Path) -> XenCollector {
        std::fs::create_dir_all(root.join("proc/net")).expect("mkdir proc");
        std::fs::write(root.join("proc/net/dev"), NET_DEV_HEADER).expect("write net/dev");
        let host = Host {
            domains,
            ..Host::default()
        };
        let (_, config) = watch::channel(Arc::new(Config::default()));
        XenCollector::new(
            Ok(Box::new(Fixed(host))),
            HostFiles {
                sysfs: root.join("sys"),
                debugfs: root.join("debug"),
                procfs: root.join("proc"),
                shm: root.join("shm"),
                xenstore: None,
            },
            config,
        )
    }

    /// One scrape: whether each part succeeded, and the exposition of its families.
    fn scrape(collector: &XenCollector) -> (Vec<(&'static str, bool)>, String) {
        let collected = collector.collect();
        let text = crate::scrape::collector::exposition(&collected.families, Format::OpenMetrics);
        let outcomes = collected
            .outcomes
            .iter()
            .map(|outcome| (outcome.collector, outcome.success))
            .collect();
        (outcomes, text)
    }

    fn write_vif(root: &Path, interface: &str, queues: u32) -> PathBuf {
        let dir = root.join("debug/xen-netback").join(interface);
        std::fs::create_dir_all(&dir).expect("mkdir");
        for id in 0..queues {
            let text = Q0.replacen("Queue 0", &format!("Queue {id}"), 1);
            std::fs::write(dir.join(format!("io_ring_q{id}")), text).expect("write queue");
        }
        dir
    }

    /// vif1.1's queue vanished between listing and reading (a dangling entry, as in the race):
    /// the rings part fails and names it, vif1.1 gets no queue series, and every other vif
    /// (with several queues) is served in full.
    #[test]
    fn a_failing_vif_leaves_the_others_served() {
        let root = tempfile::tempdir().expect("tempdir");
        write_vif(root.path(), "vif1.0", 2);
        let broken = write_vif(root.path(), "vif1.1", 1);
        std::os::unix::fs::symlink(broken.join("gone"), broken.join("io_ring_q1"))
            .expect("symlink");
        write_vif(root.path(), "vif2.0", 4);
        let collector = collector(
            vec![domain(1, &[0, 1], &[]), domain(2, &[0], &[])],
            root.path(),
        );
        let (outcomes, text) = scrape(&collector);
        assert_eq!(
            outcomes,
            [
                ("xen", true),
                ("vif", true),
                ("tapdisk", true),
                ("vbd", true),
                ("rings", false),
                ("backing", true)
            ],
            "{text}"
        );
        assert!(
            text.contains("xen_vif_queues{domain=\"guest1\",device=\"vif1.0\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("xen_vif_queues{domain=\"guest2\",device=\"vif2.0\"} 4"),
            "{text}"
        );
        assert!(!text.contains("device=\"vif1.1\",queue"), "{text}");
        assert!(
            text.contains("xen_vif_receive_bytes_total{domain=\"guest1\",device=\"vif1.1\"}"),
            "the vif's counters still serve: {text}"
        );
        let logged = collector
            .logged
            .lock()
            .expect("lock")
            .rings
            .clone()
            .expect("logged");
        assert!(logged.contains("vif1.1/io_ring_q1"), "{logged}");
    }

    /// On an Open vSwitch host the snapshot has no vifs: `/proc/net/dev` gives them all, the
    /// emulated NIC's tap included, in Dom0's view. Without the file the `vif` part fails alone
    /// and the snapshot's numbers are served.
    #[test]
    fn vif_counters_come_from_proc_net_dev() {
        let root = tempfile::tempdir().expect("tempdir");
        let collector = collector(vec![domain(1, &[], &[]), domain(2, &[0], &[])], root.path());
        std::fs::create_dir_all(root.path().join("proc/1/net")).expect("mkdir");
        std::fs::write(
            root.path().join("proc/1/net/dev"),
            format!(
                "{NET_DEV_HEADER}vif1.0: 1216 17 0 0 0 0 0 0 1674 19 0 0 0 0 0 0\n\
                 tap1.0: 10 1 0 0 0 0 0 0 20 2 0 0 0 0 0 0\n"
            ),
        )
        .expect("write");
        let (outcomes, text) = scrape(&collector);
        assert!(outcomes.contains(&("vif", true)), "{outcomes:?}");
        for line in [
            "xen_vif_receive_bytes_total{domain=\"guest1\",device=\"vif1.0\"} 1216",
            "xen_vif_transmit_bytes_total{domain=\"guest1\",device=\"vif1.0\"} 1674",
            "xen_vif_receive_bytes_total{domain=\"guest1\",device=\"tap1.0\"} 10",
            "xen_vif_info{domain=\"guest1\",device=\"tap1.0\",kind=\"tap\",devid=\"0\"} 1",
            "xen_vif_info{domain=\"guest1\",device=\"vif1.0\",kind=\"vif\",devid=\"0\"} 1",
            "xen_vif_receive_bytes_total{domain=\"guest2\",device=\"vif2.0\"} 0",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        std::fs::remove_dir_all(root.path().join("proc")).expect("rm");
        let (outcomes, text) = scrape(&collector);
        assert_eq!(
            outcomes,
            [
                ("xen", true),
                ("vif", false),
                ("tapdisk", true),
                ("vbd", true),
                ("rings", false),
                ("backing", true)
            ]
        );
        assert!(
            text.contains("device=\"vif2.0\""),
            "the rest is served: {text}"
        );
        let logged = collector.logged.lock().expect("lock").vif.clone();
        assert!(logged.expect("logged").contains("net/dev"));
    }

    /// blkback zeroes a VBD's counters when its rings reconnect (and every 10 s with
    /// `log_stats`). The collector passes the kernel's value straight through as a counter, so
    /// Prometheus sees the value go down, which it treats as a counter reset (rate stays >= 0);
    /// nothing keeps a running maximum or turns the drop into a negative step.
    #[test]
    fn blkback_counter_reset_is_a_counter_going_down() {
        let root = tempfile::tempdir().expect("tempdir");
        let stats = sysfs::statistics_dir(&root.path().join("sys"), "vbd", 3, 51712);
        std::fs::create_dir_all(&stats).expect("mkdir");
        let write = |value: u64| {
            for name in [
                "oo_req", "rd_req", "wr_req", "rd_sect", "wr_sect", "f_req", "ds_req",
            ] {
                std::fs::write(stats.join(name), format!("{value}\n")).expect("write counter");
            }
        };
        std::fs::create_dir_all(root.path().join("debug/xen-netback")).expect("mkdir");
        let collector = collector(vec![domain(3, &[], &[51712])], root.path());
        let oo = |text: &str| -> u64 {
            let prefix = "xen_vbd_out_of_requests_total{domain=\"guest3\",device=\"xvda\"} ";
            text.lines()
                .find_map(|line| line.strip_prefix(prefix))
                .and_then(|value| value.parse().ok())
                .unwrap_or_else(|| panic!("no VBD_OO sample in {text}"))
        };
        write(1234);
        let (_, before) = scrape(&collector);
        assert!(
            before.contains("# TYPE xen_vbd_out_of_requests counter"),
            "{before}"
        );
        assert_eq!(oo(&before), 1234);
        write(0);
        let (outcomes, after) = scrape(&collector);
        assert!(outcomes.contains(&("vbd", true)), "{outcomes:?}");
        assert_eq!(oo(&after), 0, "the reset is visible: the counter went down");
        write(7);
        assert_eq!(oo(&scrape(&collector).1), 7, "and counts up again from 0");
    }

    /// The backing part on a MemoryStore xenstore and a fixture sysfs: every VBD with a
    /// `physical-device` gets the backing families of its device's `stat`, a qdisk without one
    /// is no failure; a missing `stat` fails `backing` alone (logged once, naming the VBD and
    /// the path) while every other part and VBD is served, and its return is logged as recovery.
    #[test]
    fn a_missing_backing_stat_fails_the_backing_part_alone() {
        let root = tempfile::tempdir().expect("tempdir");
        let stat = include_str!("../../tests/fixtures/sysfs/backing-loop/dev/block/7:0/stat");
        let write_stat = |device: &str| {
            let dir = root.path().join("sys/dev/block").join(device);
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(dir.join("stat"), stat).expect("write stat");
        };
        write_stat("7:0");
        let mut store = crate::xen::dom0::xenstore::MemoryStore::new();
        for (domid, devno, device) in [(1, 51712, "7:0"), (2, 51712, "fe:1")] {
            store.insert(
                format!("/local/domain/0/backend/vbd/{domid}/{devno}/physical-device"),
                device,
            );
        }
        let mut guest2 = domain(2, &[], &[51712, 51728]);
        guest2.vbds[1].backend = VbdBackend::Qdisk;
        let mut collector = collector(vec![domain(1, &[], &[51712]), guest2], root.path());
        collector.files.xenstore = Some(Arc::new(store));
        let backing = |text: &str, domain: &str| {
            let prefix = format!(
                "xen_vbd_backing_in_flight_requests{{domain=\"{domain}\",device=\"xvda\"}} "
            );
            text.lines()
                .find_map(|line| line.strip_prefix(&prefix))
                .map(str::to_owned)
        };

        let (outcomes, text) = scrape(&collector);
        assert_eq!(
            outcomes,
            [
                ("xen", true),
                ("vif", true),
                ("tapdisk", true),
                ("memory", true),
                ("vbd", false),
                ("rings", true),
                ("backing", false)
            ],
            "{text}"
        );
        assert_eq!(backing(&text, "guest1").as_deref(), Some("61"), "{text}");
        assert_eq!(backing(&text, "guest2"), None, "{text}");
        assert!(
            text.contains("xen_vbd_backing_queue_time_seconds_total{domain=\"guest1\",device=\"xvda\"} 39.915"),
            "{text}"
        );
        assert!(
            text.contains("xen_vbd_ring_capacity_requests{domain=\"guest2\",device=\"xvda\"} 32"),
            "the rings part still serves the failing VBD: {text}"
        );
        assert!(
            text.contains(
                "device=\"xvda\",devno=\"51712\",backend=\"blkback\",physical_device=\"254:1\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("device=\"xvdb\",devno=\"51728\",backend=\"qdisk\"} 1"),
            "{text}"
        );
        let logged = collector.logged.lock().expect("lock").backing.clone();
        let logged = logged.expect("the failure is logged");
        assert!(
            logged.starts_with("guest2 xvda: reading ") && logged.contains("dev/block/254:1/stat"),
            "{logged}"
        );

        write_stat("254:1");
        let (outcomes, text) = scrape(&collector);
        assert!(outcomes.contains(&("backing", true)), "{outcomes:?}");
        assert_eq!(backing(&text, "guest2").as_deref(), Some("61"), "{text}");
        assert_eq!(
            collector.logged.lock().expect("lock").backing,
            None,
            "recovered"
        );
    }

    /// Without xenstore no backing device is known: with blkback VBDs that fails the part.
    #[test]
    fn backing_without_xenstore_fails() {
        let root = tempfile::tempdir().expect("tempdir");
        let collector = collector(vec![domain(1, &[], &[51712])], root.path());
        let (outcomes, text) = scrape(&collector);
        assert!(outcomes.contains(&("backing", false)), "{outcomes:?}");
        assert!(!text.contains("xen_vbd_backing_"), "{text}");
        let collector = collector_for_qdisk(root.path());
        assert!(scrape(&collector).0.contains(&("backing", true)));
    }

    fn collector_for_qdisk(root: &Path) -> XenCollector {
        let mut guest = domain(1, &[], &[51712]);
        guest.vbds[0].backend = VbdBackend::Qdisk;
        collector(vec![guest], root)
    }

    /// Without debugfs the reason and the fix are logged once at start; the scrapes that fail
    /// for that reason do not log it again.
    #[test]
    fn missing_debugfs_is_told_once_at_start() {
        let root = tempfile::tempdir().expect("tempdir");
        let collector = collector(vec![domain(1, &[0], &[])], root.path());
        collector.log_start_problems();
        let seeded = collector
            .logged
            .lock()
            .expect("lock")
            .rings_at_start
            .clone();
        let hint = seeded.expect("logged at start");
        assert!(hint.contains("mount -t debugfs"), "{hint}");
        for _ in 0..2 {
            let (outcomes, _) = scrape(&collector);
            assert!(outcomes.contains(&("rings", false)), "{outcomes:?}");
            assert_eq!(
                collector.logged.lock().expect("lock").rings.as_deref(),
                Some(hint.as_str()),
                "the failure is recorded (tests/ring_files.rs counts the log lines)"
            );
        }
    }
}
