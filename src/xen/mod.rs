//! The hypervisor side: sources that snapshot a Xen host, and the collector that encodes it.

pub mod libxenstat;
pub mod libxenstore;
pub mod model;
pub mod select;
pub mod source;
pub mod xenstore;
