//! Choosing the Xen source at start: `--xen.source=auto|libxenstat|simulated`.

use std::path::Path;
use std::sync::Arc;

use crate::xen::dom0::xenstore::XenStore;
use crate::xen::source::libxenstat::LibXenstat;
use crate::xen::source::libxenstore::LibXenStore;
use crate::xen::source::{SourceError, XenSource};

/// Which source serves the Xen metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceKind {
    /// libxenstat when it loads and `xenstat_init` succeeds; otherwise Xen is reported absent.
    #[default]
    Auto,
    /// libxenstat, loaded at run time (`--xen.library` or the default sonames).
    Libxenstat,
    /// A deterministic synthetic host (demo mode, tests, benchmarks).
    Simulated,
}

/// Opens the source `kind` names.
///
/// `library` overrides the libxenstat path; `simulated` builds the simulated source (kept
/// abstract here: another module owns it). For `auto` and `libxenstat` an unusable libxenstat
/// is [`SourceError::Unavailable`] naming the reason: the caller logs it once and serves
/// `xen_up 0`. The simulated host is never chosen implicitly: numbers that look real but are
/// not would be worse than none.
pub fn open_source(
    kind: SourceKind,
    library: Option<&Path>,
    simulated: impl FnOnce() -> Box<dyn XenSource>,
) -> Result<Box<dyn XenSource>, SourceError> {
    open(kind, library, simulated).map(|opened| opened.source)
}

/// A source and, for libxenstat, the xenstore connection it shares with the ring readers.
pub struct Opened {
    pub source: Box<dyn XenSource>,
    pub xenstore: Option<Arc<dyn XenStore>>,
}

/// [`open_source`], also handing out the xenstore connection.
pub fn open(
    kind: SourceKind,
    library: Option<&Path>,
    simulated: impl FnOnce() -> Box<dyn XenSource>,
) -> Result<Opened, SourceError> {
    match kind {
        SourceKind::Simulated => Ok(Opened {
            source: simulated(),
            xenstore: None,
        }),
        SourceKind::Auto | SourceKind::Libxenstat => {
            // xenstore only once libxenstat works: on a machine without Xen, one log line
            // (the caller's, with this error's reason) is enough.
            let mut source = LibXenstat::open(library, None)?;
            let xenstore = open_xenstore();
            if let Some(store) = &xenstore {
                source = source.with_xenstore(store.clone());
            }
            tracing::info!(library = %source.library_path().display(), "Xen source: libxenstat");
            Ok(Opened {
                source: Box::new(source),
                xenstore,
            })
        }
    }
}

/// xenstore through libxenstore (read-only), shareable with other readers (ring geometry).
/// `None` after one `warn!` with the reason: without it the UUIDs, guest memory, VBD ring
/// geometry and tapdisk3's xenstore facts are left out, nothing else.
pub fn open_xenstore() -> Option<Arc<dyn XenStore>> {
    match LibXenStore::open(None) {
        Ok(store) => Some(Arc::new(store)),
        Err(err) => {
            tracing::warn!(error = %err, "xenstore unavailable: domain UUIDs, guest memory and ring sizes are left out");
            None
        }
    }
}
