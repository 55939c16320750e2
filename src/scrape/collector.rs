//! The contract between the HTTP scrape path and everything that produces metrics at scrape time.
//!
//! A [`ScrapeCollector`] is called once per scrape (shared by concurrent scrapes) in
//! `spawn_blocking`, under a timeout. It reads its sources and returns owned metric families plus
//! one [`Outcome`] per part it collected; the scrape path turns outcomes into
//! `xen_exporter_collector_success{collector}` and `xen_exporter_collector_duration_seconds{collector}`.
//! Background subsystems (the latency probes) instead register long-lived families once, in
//! the long-lived registry built in [`crate::app`].

use std::time::Duration;

use crate::scrape::exposition::Writer;

/// How one part of a collection went.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The `collector` label, e.g. `xen`, `vbd`, `rings`.
    pub collector: &'static str,
    pub success: bool,
    pub duration: Duration,
}

/// What one call of [`ScrapeCollector::collect`] produced.
#[derive(Debug, Default)]
pub struct Collected {
    /// Families to encode for this scrape only (they are dropped afterwards: no stale series).
    pub families: Vec<Box<dyn Families>>,
    pub outcomes: Vec<Outcome>,
}

/// Something that reads its sources at scrape time.
pub trait ScrapeCollector: Send + Sync + 'static {
    /// The main `collector` label; used for the outcome when the collection times out.
    fn name(&self) -> &'static str;

    /// Reads the sources and returns families. Blocking: runs in `spawn_blocking`. Must not panic
    /// on bad input; a failed part logs one `warn!`, reports `success: false` and is left out.
    fn collect(&self) -> Collected;

    /// One line for the landing page: where the numbers come from, or why there are none.
    fn describe(&self) -> String {
        "collected at scrape time".to_owned()
    }

    /// Families to emit when [`collect`](Self::collect) did not finish in time (e.g. `xen_up 0`).
    fn on_timeout(&self) -> Vec<Box<dyn Families>> {
        Vec::new()
    }
}

/// Families of one collection, owned values that write themselves into an exposition.
pub trait Families: Send + Sync + std::fmt::Debug {
    fn write(&self, writer: &mut Writer<'_>);
}

/// The exposition of `families` alone (for tests).
#[cfg(test)]
pub fn exposition(
    families: &[Box<dyn Families>],
    format: crate::scrape::exposition::Format,
) -> String {
    let mut out = String::new();
    let mut writer = Writer::new(&mut out, format);
    for family in families {
        family.write(&mut writer);
    }
    writer.finish();
    out
}
