//! xen_exporter: Prometheus metrics for a Xen Dom0 (what xentop shows, I/O rings) and latency
//! probes.
//!
//! # Layout
//!
//! Data flows one way, and the folders read as that flow: `xen|probe → scrape → http`.
//!
//! - `app/`: wiring only: flags, logging, the reload of the configuration, build information,
//!   opening the Xen side at start.
//! - `config/`: the typed configuration file, validated before anything serves.
//! - `xen/`: the hypervisor side: `source/` takes a snapshot (libxenstat, simulated), `dom0/`
//!   reads Dom0's own files (sysfs, debugfs, xenstore), `xapi/` keeps XAPI's VM names, `model`
//!   is the plain snapshot, the collector runs them at scrape time and `metrics/` turns a
//!   snapshot into families.
//! - `probe/`: continuous latency probes: scheduler, resolver, `icmp/` and `tcp/` engines, the
//!   `latency_*` families; `trace/` traces each target's path and whether it crosses an exchange.
//! - `scrape/`: one scrape: the collector contract, our exposition writer, gzip, the encode
//!   thread, the exporter's own and `process_*` metrics.
//! - `http/`: listeners, routes, content negotiation, the landing page.
//! - `web_config/`: exporter-toolkit's web configuration (TLS, basic auth, rate limit).
//! - `lock`: what a poisoned lock means, decided once (every stage uses it).
//!
//! Modules are private: the binary uses [`app`], tests and benchmarks reach the internals
//! they need through [`testing`], so the compiler reports code nothing uses.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod app;
mod config;
mod http;
mod lock;
mod probe;
mod scrape;
mod web_config;
mod xen;

/// What integration tests, benchmarks and fuzz targets use of the internals. Not an API.
#[doc(hidden)]
pub mod testing {
    pub use crate::config::Config;
    /// The ICMP packet parsers and the requests-in-flight table, for their fuzz targets.
    pub mod icmp {
        pub use crate::probe::icmp::echo::{
            build_request, checksum, parse_error, parse_reply, parse_unreachable, quoted_sequence,
            sent_requests, ErrorKind, QuotedError, Reply, SentRequest, ECHO_REPLY_V4,
            ECHO_REPLY_V6, ECHO_REQUEST_V4, ECHO_REQUEST_V6, HEADER_LEN, TOKEN_LEN, UNREACHABLE_V4,
            UNREACHABLE_V6,
        };
        pub use crate::probe::icmp::pending::{
            rtt, Entry, Match, Pending, SendStamp, CLOCK_STEP_TOLERANCE,
        };
    }
    pub use crate::scrape::collector::ScrapeCollector;
    pub use crate::scrape::process::ProcessCollector;
    pub use crate::scrape::self_metrics::register as register_self_metrics;
    pub use crate::scrape::{Format, Scraper};
    pub use crate::xen::collector::{HostFiles, XenCollector};
    pub use crate::xen::dom0::blockdev::{parse_physical_device, parse_stat};
    pub use crate::xen::dom0::devno::{decode as decode_devno, name as devno_name};
    /// tapdisk3's files, as tapdisk writes them (fixture trees), and their parsers (fuzzing).
    pub use crate::xen::dom0::io_ring::{
        encode as encode_io_ring, parse as parse_tapdisk_io_ring, IoRingError,
    };
    pub use crate::xen::dom0::netback::{parse_io_ring, ParseError};
    pub use crate::xen::dom0::netdev::{
        guest_interface, parse as parse_net_dev, GuestInterface, NetDevError,
    };
    pub use crate::xen::dom0::sysfs::parse_counter;
    pub use crate::xen::dom0::tapdisk::{
        parse_stats as parse_tapdisk_stats, RawStats as TapdiskStatsFile, StatsError,
    };
    /// The blkback reader, for the benchmark against raw reads.
    pub mod sysfs {
        pub use crate::xen::dom0::sysfs::{read_vbds, statistics_dir};
    }
    pub use crate::xen::dom0::xenstore::{MemoryStore, XenStore, XenStoreError};
    pub use crate::xen::model::{Domain, DomainState, Host, Vbd, VbdBackend, Vcpu, Vif, VifKind};
    pub use crate::xen::source::libxenstat::{LibXenstat, BUSY_REASON, XENSTORE_BUSY_REASON};
    pub use crate::xen::source::libxenstore::LibXenStore;
    pub use crate::xen::source::select::{open_source, SourceKind};
    pub use crate::xen::source::simulated::{SimulatedHost, SimulatedOptions};
    pub use crate::xen::source::{SourceError, XenSource};
}
