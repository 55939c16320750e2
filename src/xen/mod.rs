//! The hypervisor side: sources that snapshot a Xen host, and the collector that encodes it.

pub mod model;
pub mod netback;
pub mod ring_metrics;
pub mod rings;
pub mod source;
pub mod xenstore;
