//! xen_exporter: Prometheus metrics for a Xen Dom0 (what xentop shows, I/O rings) and latency probes.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod app;
pub mod build;
pub mod cli;
pub mod collect;
pub mod config;
pub mod encode_thread;
pub mod exposition;
pub mod gzip;
pub mod http;
pub mod logfmt;
pub mod logging;
pub mod probe;
pub mod process;
pub mod reload;
pub mod scrape;
pub mod self_metrics;
pub mod web_config;
pub mod xen;
