//! Where a [`Host`] snapshot comes from, and the choice between sources.

pub(crate) mod libxenstat;
pub(crate) mod libxenstore;
pub(crate) mod select;
pub(crate) mod simulated;

use crate::xen::model::Host;

/// Why a snapshot could not be taken. The message is shown to operators once per change.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Absent by design on this machine: no library, no hypervisor.
    #[error("Xen is not available: {reason}")]
    Unavailable { reason: String },
    /// The source exists but this snapshot failed.
    #[error("taking a Xen snapshot failed: {reason}")]
    Failed { reason: String },
}

/// A source of host snapshots. Implementations: libxenstat (real), simulated (demo, tests,
/// benchmarks). Blocking; called from `spawn_blocking`.
pub trait XenSource: Send + Sync {
    /// Short name for logs and the landing page: `libxenstat`, `simulated`.
    fn name(&self) -> &'static str;
    /// The source for people: the library loaded, or the simulated host's size.
    fn describe(&self) -> String {
        self.name().to_owned()
    }
    /// A fresh snapshot of the host and every domain that exists now.
    fn snapshot(&self) -> Result<Host, SourceError>;
    /// A snapshot whose domains carry no VBDs, when this source can leave them out cheaper
    /// (libxenstat then reads no blkback file and asks no qdisk): the caller lists and reads
    /// them itself (`xen/vbd_plan.rs`). `None`: it cannot, take [`XenSource::snapshot`].
    fn snapshot_without_vbds(&self) -> Option<Result<Host, SourceError>> {
        None
    }
    /// Whether snapshots already carry VBD ring geometry, netback queues and blkback's own
    /// counters, so Dom0's sysfs, debugfs and xenstore are not read (the simulated host).
    fn includes_rings(&self) -> bool {
        false
    }
}
