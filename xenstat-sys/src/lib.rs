//! Raw FFI to libxenstat and libxenstore, loaded at run time with `dlopen` (no link-time dependency).
//!
//! The signatures are copied exactly from `xenstat.h` and `xenstore.h` of **Xen 4.17**
//! (Debian bookworm `libxen-dev` 4.17.7, identical to `RELEASE-4.17.0`). Every symbol is resolved
//! on its own: a symbol an older Xen lacks (`xenstat_vbd_error`, added in 4.13) is `None`, a
//! missing required symbol is [`LoadError::MissingSymbol`]. Safe wrappers live in the
//! `xen_exporter` crate (`src/xen/libxenstat.rs`, `src/xen/libxenstore.rs`); this crate holds the
//! C surface and the loader, nothing else.

mod load;
pub mod xenstat;
pub mod xenstore;

pub use load::{LoadError, LoadFailure};
pub use xenstat::Libxenstat;
pub use xenstore::Libxenstore;
