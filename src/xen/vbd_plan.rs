//! Whether a scrape asks libxenstat for VBDs (`XENSTAT_VBD`), or lists blkback's devices in
//! sysfs itself, so each blkback statistics file is read once per scrape, by the `vbd` part.
//!
//! With `XENSTAT_VBD` libxenstat reads five statistics files per blkback VBD (20,000 at 1,000
//! guests × 4 disks) whose numbers the `vbd` part then replaces with its own read of the same
//! files. Without it libxenstat lists no VBD at all: blkback and blktap devices are then listed
//! from `<sysfs>/bus/xen-backend/devices` (the directory libxenstat lists), but qdisk devices
//! (qemu, read over QMP) and vbd3 (tapdisk3) only libxenstat knows. So a snapshot with VBDs is
//! still taken:
//! - while the last one showed any device that is not blkback or blktap (every scrape, then);
//! - when a domain appears that the last one did not have (at the next scrape);
//! - every [`REFRESH`], for disks of another backend attached to a running domain.
//!
//! A qdisk disk hot-plugged into a running domain of a blkback-only host therefore shows up
//! within [`REFRESH`] (plus one scrape), not at once.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::xen::dom0::backend_devices::{self, Instances};
use crate::xen::model::{Host, VbdBackend};
use crate::xen::source::{SourceError, XenSource};

/// Longest time between two snapshots with VBDs on a host whose disks are all blkback.
pub const REFRESH: Duration = Duration::from_secs(300);

/// What the last snapshot with VBDs showed.
#[derive(Debug, Default)]
pub struct VbdPlan {
    /// When the last snapshot with VBDs was taken; `None` before the first.
    full_at: Option<Instant>,
    /// It showed a device only libxenstat lists (qdisk, vbd3, unknown).
    others: bool,
    /// The domains it had; a domain not among them triggers the next one.
    known: HashSet<u32>,
    /// A snapshot without VBDs saw a new domain: the next one asks for VBDs.
    due: bool,
}

fn only_listed(backend: VbdBackend) -> bool {
    matches!(backend, VbdBackend::Blkback | VbdBackend::Tap)
}

impl VbdPlan {
    pub fn new() -> Self {
        Self::default()
    }

    fn wants_vbds(&self, now: Instant) -> bool {
        self.others
            || self.due
            || self
                .full_at
                .is_none_or(|at| now.saturating_duration_since(at) >= REFRESH)
    }

    /// A snapshot from `source`: without VBDs (then listed from `listing`) when the plan
    /// allows it, else with libxenstat's. `listing` is `None` when blkback's devices could not
    /// be listed (or its counters are not read from sysfs): always with VBDs, then.
    pub fn snapshot(
        &mut self,
        source: &dyn XenSource,
        listing: Option<&Instances>,
        now: Instant,
    ) -> Result<Host, SourceError> {
        if let Some(listing) = listing {
            if !self.wants_vbds(now) {
                if let Some(snapshot) = source.snapshot_without_vbds() {
                    let mut host = snapshot?;
                    backend_devices::add_vbds(&mut host, listing);
                    self.due = host
                        .domains
                        .iter()
                        .any(|domain| !self.known.contains(&domain.domid));
                    return Ok(host);
                }
            }
        }
        let host = source.snapshot()?;
        self.full_at = Some(now);
        self.due = false;
        self.others = host
            .domains
            .iter()
            .flat_map(|domain| &domain.vbds)
            .any(|vbd| !only_listed(vbd.backend));
        self.known = host.domains.iter().map(|domain| domain.domid).collect();
        Ok(host)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::xen::model::{Domain, Vbd};

    /// Records which kind of snapshot was taken; serves `host` (VBDs left out on request).
    struct Recording {
        host: Mutex<Host>,
        with_vbds: Mutex<Vec<bool>>,
    }

    impl XenSource for Recording {
        fn name(&self) -> &'static str {
            "recording"
        }
        fn snapshot(&self) -> Result<Host, SourceError> {
            self.with_vbds.lock().expect("log").push(true);
            Ok(self.host.lock().expect("host").clone())
        }
        fn snapshot_without_vbds(&self) -> Option<Result<Host, SourceError>> {
            self.with_vbds.lock().expect("log").push(false);
            let mut host = self.host.lock().expect("host").clone();
            for domain in &mut host.domains {
                domain.vbds.clear();
            }
            Some(Ok(host))
        }
    }

    fn domain(domid: u32, backend: VbdBackend) -> Domain {
        Domain {
            domid,
            name: format!("guest{domid}"),
            vbds: vec![Vbd {
                devno: 51712,
                backend,
                ..Vbd::default()
            }],
            ..Domain::default()
        }
    }

    fn listing(domids: &[u32]) -> (tempfile::TempDir, Instances) {
        let root = tempfile::tempdir().expect("tempdir");
        for domid in domids {
            let dir = root
                .path()
                .join(format!("bus/xen-backend/devices/vbd-{domid}-51712"));
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        let listed = backend_devices::list(root.path()).expect("list");
        (root, listed)
    }

    #[test]
    fn blkback_only_host_asks_for_vbds_only_when_needed() {
        let source = Recording {
            host: Mutex::new(Host {
                domains: vec![domain(1, VbdBackend::Blkback)],
                ..Host::default()
            }),
            with_vbds: Mutex::new(Vec::new()),
        };
        let (_root, listed) = listing(&[1, 2]);
        let mut plan = VbdPlan::new();
        let start = Instant::now();
        for second in 0..3 {
            let host = plan
                .snapshot(&source, Some(&listed), start + Duration::from_secs(second))
                .expect("snapshot");
            assert_eq!(host.domains[0].vbds.len(), 1, "listed from sysfs");
        }
        // Domain 2 appears: one more snapshot with VBDs, at the scrape after.
        source
            .host
            .lock()
            .expect("host")
            .domains
            .push(domain(2, VbdBackend::Blkback));
        for second in 3..6 {
            let host = plan
                .snapshot(&source, Some(&listed), start + Duration::from_secs(second))
                .expect("snapshot");
            assert_eq!(host.domains[1].vbds.len(), 1);
        }
        plan.snapshot(
            &source,
            Some(&listed),
            start + REFRESH + Duration::from_secs(4),
        )
        .expect("snapshot");
        // No listing (sysfs unreadable): with VBDs.
        plan.snapshot(&source, None, start + REFRESH + Duration::from_secs(5))
            .expect("snapshot");
        assert_eq!(
            *source.with_vbds.lock().expect("log"),
            [true, false, false, false, true, false, true, true]
        );
    }

    #[test]
    fn a_qdisk_disk_keeps_libxenstat_vbds() {
        let source = Recording {
            host: Mutex::new(Host {
                domains: vec![domain(1, VbdBackend::Blkback), domain(2, VbdBackend::Qdisk)],
                ..Host::default()
            }),
            with_vbds: Mutex::new(Vec::new()),
        };
        let (_root, listed) = listing(&[1]);
        let mut plan = VbdPlan::new();
        for _ in 0..3 {
            let host = plan
                .snapshot(&source, Some(&listed), Instant::now())
                .expect("snapshot");
            assert_eq!(host.domains[1].vbds[0].backend, VbdBackend::Qdisk);
        }
        assert_eq!(*source.with_vbds.lock().expect("log"), [true, true, true]);
    }
}
