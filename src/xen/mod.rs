//! The hypervisor side: sources that snapshot a Xen host, and the collector that encodes it.

pub mod devno;
pub mod model;
pub mod source;
pub mod sysfs;
pub mod xenstore;
