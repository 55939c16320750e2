//! xen_exporter: Prometheus metrics for a Xen Dom0 (what xentop shows, I/O rings) and latency probes.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod collect;
pub mod xen;
