//! The hypervisor side: sources that snapshot a Xen host, and the collector that encodes it.

pub mod collector;
pub mod devno;
pub mod host_metrics;
pub mod libxenstat;
pub mod libxenstore;
pub mod model;
pub mod netback;
pub mod ring_metrics;
pub mod rings;
pub mod select;
pub mod setup;
pub mod simulated;
pub mod source;
pub mod sysfs;
pub mod xenstore;
