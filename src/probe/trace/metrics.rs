//! The path families (prefix `latency_path_`), and each target's handle on its own path series.
//!
//! A path is one `latency_path_info` series whose `path_hash` and `hops` labels say which it
//! is; when the path changes, the old series is removed and the new one created, so a target
//! has exactly one at any time (bounded cardinality) and `latency_path_changes_total` counts the
//! changes. `latency_path_via_ix` has one series per configured exchange.

use std::collections::BTreeSet;
use std::sync::Mutex;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::path::Path;
use crate::config::trace::Ixes;
use crate::lock::MutexUnpoisoned;
use crate::probe::metrics::Labels;

/// Why a trace gave no path, or not the whole one: `latency_path_trace_errors_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceError {
    /// The host name has no address (yet).
    Resolve,
    /// The trace's socket could not be opened or set up.
    Socket,
    /// A probe could not be sent (no route from this host, say).
    Send,
    /// The trace ended before the target: a router said it is unreachable, or no hop answered
    /// up to `max_hops` or five hops in a row. The path up to there is still exported.
    Unreached,
}

impl TraceError {
    pub fn as_str(self) -> &'static str {
        match self {
            TraceError::Resolve => "resolve",
            TraceError::Socket => "socket",
            TraceError::Send => "send",
            TraceError::Unreached => "unreached",
        }
    }
}

/// Every path family.
#[derive(Debug, Clone, Default)]
pub struct PathMetrics {
    hops: Family<Labels, Gauge>,
    info: Family<Labels, Gauge>,
    changes: Family<Labels, Counter>,
    via_ix: Family<Labels, Gauge>,
    traces: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
}

impl PathMetrics {
    pub fn register(registry: &mut Registry) -> PathMetrics {
        let metrics = PathMetrics::default();
        let prefix = registry.sub_registry_with_prefix("latency_path");
        prefix.register(
            "hops",
            "Hops of the last traced path: to the target, or to the last hop that answered",
            metrics.hops.clone(),
        );
        prefix.register(
            "info",
            "The target's current path: hop addresses in order (* for a hop that did not answer) and their stable hash; replaced when the path changes",
            metrics.info.clone(),
        );
        prefix.register(
            "changes",
            "Traces whose path differed from the one before (a hop that merely did not answer this time is no change)",
            metrics.changes.clone(),
        );
        prefix.register(
            "via_ix",
            "1 if a hop of the last traced path lies in a peering-LAN prefix of the exchange `ix` (config `ixes`), else 0",
            metrics.via_ix.clone(),
        );
        prefix.register(
            "traces",
            "Path traces run (whether or not they reached the target)",
            metrics.traces.clone(),
        );
        prefix.register(
            "trace_errors",
            "Traces without a path (resolve, socket, send) or that ended before the target (unreached)",
            metrics.errors.clone(),
        );
        metrics
    }
}

fn with(labels: &Labels, name: &str, value: &str) -> Labels {
    let mut labels = labels.clone();
    labels.push((name.to_owned(), value.to_owned()));
    labels
}

#[derive(Debug, Default)]
struct State {
    /// The exported path, to compare the next trace with.
    previous: Option<Path>,
    /// The labels of the one `latency_path_info` series.
    info: Option<Labels>,
    /// The exchanges that have a `latency_path_via_ix` series.
    exchanges: BTreeSet<String>,
    /// Reasons that have an error series.
    errors: BTreeSet<&'static str>,
    /// Set once the target left the configuration: nothing may bring its series back.
    removed: bool,
    /// The trace task that may write: a target restarted by a reload gets a new task, and the
    /// old one, cancelled while it finished a trace, must not write after the new one began.
    owner: u64,
}

/// One target's path series, written by its trace task.
#[derive(Debug)]
pub struct PathSeries {
    labels: Labels,
    /// The labels of `latency_path_via_ix`: the target's without a user label `ix`, which
    /// the family sets itself.
    ix_labels: Labels,
    metrics: PathMetrics,
    state: Mutex<State>,
}

impl PathSeries {
    pub fn new(metrics: &PathMetrics, labels: Labels) -> PathSeries {
        let ix_labels = labels
            .iter()
            .filter(|(name, _)| name != "ix")
            .cloned()
            .collect();
        PathSeries {
            labels,
            ix_labels,
            metrics: metrics.clone(),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock_unpoisoned()
    }

    /// Makes the caller the one trace task that writes these series; its token.
    pub fn claim(&self) -> u64 {
        let mut state = self.lock();
        state.owner += 1;
        state.owner
    }

    /// A trace of task `owner` finished with `path`; `ixes` are the exchanges configured now.
    pub fn traced(&self, owner: u64, path: Path, ixes: &Ixes) {
        let mut state = self.lock();
        if state.removed || state.owner != owner {
            return;
        }
        let path = path.settle(state.previous.as_ref());
        self.metrics.traces.get_or_create(&self.labels).inc();
        self.metrics
            .hops
            .get_or_create(&self.labels)
            .set(i64::try_from(path.len()).unwrap_or(i64::MAX));
        let hash = path.hash();
        let info = with(
            &with(&self.labels, "path_hash", &hash),
            "hops",
            &path.label(),
        );
        if state.info.as_ref() != Some(&info) {
            if let Some(old) = state.info.take() {
                self.metrics.info.remove(&old);
            }
            self.metrics.info.get_or_create(&info).set(1);
            state.info = Some(info);
        }
        let changed = state
            .previous
            .as_ref()
            .is_some_and(|previous| previous.hash() != hash);
        // Created at 0 by the first trace, so `increase()` sees the first change.
        let changes = self.metrics.changes.get_or_create(&self.labels);
        if changed {
            changes.inc();
        }
        drop(changes);
        let configured: BTreeSet<String> = ixes.keys().map(|name| name.0.clone()).collect();
        for gone in state.exchanges.difference(&configured) {
            self.metrics
                .via_ix
                .remove(&with(&self.ix_labels, "ix", gone));
        }
        for exchange in &configured {
            self.metrics
                .via_ix
                .get_or_create(&with(&self.ix_labels, "ix", exchange))
                .set(i64::from(path.via(ixes, exchange)));
        }
        state.exchanges = configured;
        if !path.reached {
            self.count_error(&mut state, TraceError::Unreached);
        }
        state.previous = Some(path);
    }

    /// A trace of task `owner` gave no path.
    pub fn failed(&self, owner: u64, error: TraceError) {
        let mut state = self.lock();
        if state.removed || state.owner != owner {
            return;
        }
        self.metrics.traces.get_or_create(&self.labels).inc();
        self.count_error(&mut state, error);
    }

    fn count_error(&self, state: &mut State, error: TraceError) {
        self.metrics
            .errors
            .get_or_create(&with(&self.labels, "reason", error.as_str()))
            .inc();
        state.errors.insert(error.as_str());
    }

    /// Removes every series of the path (tracing was turned off; the target stays); no task
    /// writes them any more.
    pub fn clear(&self) {
        let mut state = self.lock();
        state.owner += 1;
        self.clear_locked(&mut state);
    }

    /// Removes every series for good (the target left the configuration).
    pub fn remove(&self) {
        let mut state = self.lock();
        self.clear_locked(&mut state);
        state.removed = true;
    }

    fn clear_locked(&self, state: &mut State) {
        let metrics = &self.metrics;
        metrics.hops.remove(&self.labels);
        metrics.changes.remove(&self.labels);
        metrics.traces.remove(&self.labels);
        if let Some(info) = state.info.take() {
            metrics.info.remove(&info);
        }
        for exchange in std::mem::take(&mut state.exchanges) {
            metrics
                .via_ix
                .remove(&with(&self.ix_labels, "ix", &exchange));
        }
        for reason in std::mem::take(&mut state.errors) {
            metrics.errors.remove(&with(&self.labels, "reason", reason));
        }
        state.previous = None;
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::config::trace::{Cidr, ExchangeName, Prefixes};
    use prometheus_client::encoding::text::encode;

    fn exposition(registry: &Registry) -> String {
        let mut text = String::new();
        encode(&mut text, registry).expect("encode");
        text
    }

    fn path(hops: &[&str]) -> Path {
        let hops = hops.iter().map(|hop| hop.parse::<IpAddr>().ok()).collect();
        Path::new(hops, true)
    }

    #[test]
    fn a_changed_path_replaces_its_series_and_counts_once() {
        let mut registry = Registry::default();
        let metrics = PathMetrics::register(&mut registry);
        let labels = vec![
            ("target".to_owned(), "t".to_owned()),
            ("protocol".to_owned(), "icmp".to_owned()),
            ("ix".to_owned(), "NIX".to_owned()),
        ];
        let series = PathSeries::new(&metrics, labels);
        let owner = series.claim();
        let mut ixes = Ixes::new();
        ixes.insert(
            ExchangeName("NIX".into()),
            Prefixes(vec![Cidr::parse("10.200.0.0/24").expect("prefix")]),
        );
        let via = path(&["10.201.1.1", "10.200.0.2", "10.204.0.2"]);
        series.traced(owner, via.clone(), &ixes);
        series.traced(owner, via.clone(), &ixes);
        let text = exposition(&registry);
        let want = "target=\"t\",protocol=\"icmp\",ix=\"NIX\"";
        for line in [
            format!("latency_path_hops{{{want}}} 3"),
            format!("latency_path_changes_total{{{want}}} 0"),
            format!("latency_path_traces_total{{{want}}} 2"),
            "latency_path_via_ix{target=\"t\",protocol=\"icmp\",ix=\"NIX\"} 1".to_owned(),
            format!(
                "latency_path_info{{{want},path_hash=\"{}\",hops=\"10.201.1.1,10.200.0.2,10.204.0.2\"}} 1",
                via.hash()
            ),
        ] {
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
        let transit = path(&["10.201.1.1", "*", "10.203.0.2", "10.204.0.2"]);
        series.traced(owner, transit, &ixes);
        let text = exposition(&registry);
        assert!(
            text.contains(&format!("latency_path_changes_total{{{want}}} 1")),
            "{text}"
        );
        assert!(
            text.contains("latency_path_via_ix{target=\"t\",protocol=\"icmp\",ix=\"NIX\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("hops=\"10.201.1.1,*,10.203.0.2,10.204.0.2\"} 1"),
            "{text}"
        );
        assert_eq!(text.matches("latency_path_info{").count(), 1, "{text}");
        // An exchange no longer configured loses its series.
        series.traced(owner, path(&["10.201.1.1"]), &Ixes::new());
        let text = exposition(&registry);
        assert!(!text.contains("latency_path_via_ix{"), "{text}");
        series.failed(owner, TraceError::Resolve);
        // A task that lost its claim (the target was restarted) writes nothing.
        let newer = series.claim();
        series.traced(owner, path(&["10.0.0.9"]), &ixes);
        assert!(!exposition(&registry).contains("10.0.0.9"));
        series.traced(newer, path(&["10.201.1.1"]), &ixes);
        series.remove();
        series.traced(owner, via, &ixes);
        let text = exposition(&registry);
        assert!(!text.contains("target=\"t\""), "{text}");
    }
}
