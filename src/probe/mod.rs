//! Latency probes: continuous ICMP and TCP probes of the configured targets, following reloads.
//!
//! [`Probes::start`] registers the families and runs a supervisor task that keeps one task per
//! target (plus a resolver task for each target given by host name) in step with the
//! configuration: unchanged targets keep running with their series, removed ones stop and their
//! series disappear, new ones start. [`Probes`] is also the `probes` scrape-time collector, whose outcome
//! (`xen_exporter_collector_success{collector="probes"}`) is 0 while an ICMP socket the targets
//! need cannot be opened; its duration is the time that check takes (the probes themselves run
//! in the background, not at scrape time).

pub(crate) mod icmp;
mod jitter;
mod metrics;
mod packet_options;
mod resolve;
mod scheduler;
mod target_files;
mod tcp;
mod trace;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::probes::{Protocol, Target};
use crate::config::Config;
use crate::lock::RwLockUnpoisoned;
use crate::scrape::collector::{Collected, Outcome, ScrapeCollector};
use icmp::{Binding, IcmpPool};
use metrics::{Labels, ProbeMetrics, TargetSeries};
use resolve::CurrentAddress;
use trace::metrics::{PathMetrics, PathSeries};
use trace::SharedIxes;

/// The probe subsystem, as the scrape path and the landing page see it.
pub struct Probes {
    icmp: Arc<IcmpPool>,
    targets: Arc<AtomicUsize>,
    /// The configuration in force, for the landing page: it shows a reload's targets as soon as
    /// the reload is answered, before the supervisor has started them.
    config: watch::Receiver<Arc<Config>>,
    /// The targets from `probes.target_files` in force.
    file_targets: watch::Receiver<Vec<Target>>,
}

impl Probes {
    /// Registers the probe families in `registry` and starts probing the targets of `config`
    /// (and of every configuration published later) until `shutdown`.
    pub fn start(
        registry: &mut Registry,
        mut config: watch::Receiver<Arc<Config>>,
        shutdown: CancellationToken,
    ) -> Probes {
        let initial = config.borrow_and_update().clone();
        let buckets = initial.probes.rtt_buckets();
        let metrics = ProbeMetrics::register(registry, buckets.clone());
        let path_metrics = PathMetrics::register(registry);
        let file_metrics = target_files::TargetFileMetrics::register(registry);
        let (file_sender, mut file_targets) = watch::channel(Vec::new());
        tokio::spawn(target_files::watch(
            config.clone(),
            file_sender,
            file_metrics,
            shutdown.clone(),
        ));
        let probes = Probes {
            icmp: Arc::new(IcmpPool::default()),
            targets: Arc::new(AtomicUsize::new(0)),
            config: config.clone(),
            file_targets: file_targets.clone(),
        };
        let mut supervisor = Supervisor {
            metrics,
            path_metrics,
            ixes: Arc::new(RwLock::new(Arc::new(initial.ixes.clone()))),
            icmp: probes.icmp.clone(),
            running: HashMap::new(),
            series: HashMap::new(),
            targets: probes.targets.clone(),
        };
        // Opens the sockets of the targets given by address now, so the log and the landing
        // page say which kind they are before the first probe (and a missing permission shows
        // at start).
        supervisor.apply(initial.probes.targets(), &initial.ixes);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    changed = config.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        let config = config.borrow_and_update().clone();
                        if config.probes.rtt_buckets() != buckets {
                            tracing::warn!("probes.rtt_buckets changed: the RTT histograms keep their buckets until a restart");
                        }
                        let mut targets = config.probes.targets();
                        targets.extend(file_targets.borrow().iter().cloned());
                        supervisor.apply(targets, &config.ixes);
                    }
                    changed = file_targets.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        let config = config.borrow().clone();
                        let mut targets = config.probes.targets();
                        targets.extend(file_targets.borrow_and_update().iter().cloned());
                        supervisor.apply(targets, &config.ixes);
                    }
                }
            }
            supervisor.apply(Vec::new(), &Default::default());
        });
        probes
    }
}

impl ScrapeCollector for Probes {
    fn name(&self) -> &'static str {
        "probes"
    }

    fn collect(&self) -> Collected {
        let started = Instant::now();
        let outcomes = if self.targets.load(Ordering::Relaxed) > 0 {
            let success = self.icmp.healthy();
            vec![Outcome {
                collector: "probes",
                success,
                duration: started.elapsed(),
            }]
        } else {
            Vec::new()
        };
        Collected {
            families: Vec::new(),
            outcomes,
        }
    }

    fn describe(&self) -> String {
        let (targets, icmp, traced) = {
            let config = self.config.borrow();
            let mut targets = config.probes.targets();
            targets.extend(self.file_targets.borrow().iter().cloned());
            let icmp = targets
                .iter()
                .filter(|target| target.protocol == Protocol::Icmp)
                .count();
            let traced = targets
                .iter()
                .filter(|target| target.trace.is_some())
                .count();
            (targets.len(), icmp, traced)
        };
        if targets == 0 {
            return "latency probes: no targets configured".to_owned();
        }
        let sockets = if icmp == 0 {
            String::new()
        } else {
            let (kinds, failed) = self.icmp.kinds();
            let kinds: Vec<String> = kinds.iter().map(ToString::to_string).collect();
            match (kinds.is_empty(), failed) {
                (true, 0) => ", ICMP sockets open at the first probe".to_owned(),
                (true, _) => ", ICMP socket cannot be opened (see the log)".to_owned(),
                (false, 0) => format!(", ICMP over {} sockets", kinds.join("+")),
                (false, failed) => format!(
                    ", ICMP over {} sockets, {failed} cannot be opened (see the log)",
                    kinds.join("+")
                ),
            }
        };
        format!(
            "latency probes: {targets} targets ({icmp} icmp, {} tcp){sockets}; {traced} paths traced",
            targets - icmp
        )
    }
}

struct Running {
    cancel: CancellationToken,
    labels: Labels,
}

/// Keeps the running tasks in step with the configured targets.
struct Supervisor {
    metrics: ProbeMetrics,
    path_metrics: PathMetrics,
    /// The exchanges the trace tasks look hops up in, replaced by a reload.
    ixes: SharedIxes,
    icmp: Arc<IcmpPool>,
    running: HashMap<Target, Running>,
    /// By labels, so a target whose settings change but whose labels do not keeps its series
    /// (RTT and path).
    series: HashMap<Labels, (Arc<TargetSeries>, Arc<PathSeries>)>,
    targets: Arc<AtomicUsize>,
}

impl Supervisor {
    fn apply(&mut self, targets: Vec<Target>, ixes: &crate::config::trace::Ixes) {
        {
            let mut current = self.ixes.write_unpoisoned();
            if **current != *ixes {
                *current = Arc::new(ixes.clone());
            }
        }
        let wanted: HashSet<&Target> = targets.iter().collect();
        let stopped: Vec<Target> = self
            .running
            .keys()
            .filter(|target| !wanted.contains(target))
            .cloned()
            .collect();
        for target in &stopped {
            if let Some(running) = self.running.remove(target) {
                running.cancel.cancel();
            }
        }
        // The targets of each interval share its send moments, as many as their number needs.
        let mut per_interval: HashMap<std::time::Duration, usize> = HashMap::new();
        for target in &targets {
            *per_interval.entry(target.interval).or_default() += 1;
        }
        let mut started = 0;
        for target in &targets {
            if self.running.contains_key(target) {
                continue;
            }
            started += 1;
            let labels = metrics::labels(target);
            let (series, path) = self
                .series
                .entry(labels.clone())
                .or_insert_with(|| {
                    (
                        Arc::new(TargetSeries::new(&self.metrics, labels.clone())),
                        Arc::new(PathSeries::new(&self.path_metrics, labels.clone())),
                    )
                })
                .clone();
            let cancel = CancellationToken::new();
            let lease = match (target.protocol, target.literal_address()) {
                (Protocol::Icmp, Some(address)) => Some(self.icmp.lease(Binding {
                    v6: address.is_ipv6(),
                    source: target.source_address,
                    interface: target.interface.clone(),
                    options: packet_options::PacketOptions::of(target),
                })),
                _ => None,
            };
            let address = match target.literal_address() {
                Some(address) => {
                    series.set_address(Some(address));
                    Arc::new(CurrentAddress::fixed(address))
                }
                None => {
                    let address = Arc::new(CurrentAddress::default());
                    tokio::spawn(resolve::follow(
                        target.clone(),
                        series.clone(),
                        address.clone(),
                        cancel.clone(),
                    ));
                    address
                }
            };
            match target.trace {
                Some(settings) => {
                    let owner = path.claim();
                    tokio::spawn(trace::run(
                        target.clone(),
                        settings,
                        path,
                        owner,
                        address.clone(),
                        self.icmp.clone(),
                        self.ixes.clone(),
                        cancel.clone(),
                    ));
                }
                // Turned off by a reload: the last path is not the current one.
                None => path.clear(),
            }
            let moments =
                scheduler::moments(per_interval.get(&target.interval).copied().unwrap_or(1));
            tokio::spawn(scheduler::run(
                target.clone(),
                moments,
                series,
                address,
                self.icmp.clone(),
                lease,
                cancel.clone(),
            ));
            self.running
                .insert(target.clone(), Running { cancel, labels });
        }
        let live: HashSet<&Labels> = self
            .running
            .values()
            .map(|running| &running.labels)
            .collect();
        let gone: Vec<Labels> = self
            .series
            .keys()
            .filter(|labels| !live.contains(labels))
            .cloned()
            .collect();
        for labels in gone {
            if let Some((series, path)) = self.series.remove(&labels) {
                series.remove();
                path.remove();
            }
        }
        self.targets.store(self.running.len(), Ordering::Relaxed);
        if started > 0 || !stopped.is_empty() {
            tracing::info!(
                targets = self.running.len(),
                started,
                stopped = stopped.len(),
                "latency probe targets updated"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The `probes` outcome's duration is the time its scrape-time work took, not a constant.
    #[tokio::test]
    async fn the_probes_outcome_carries_the_time_its_collection_took() {
        // Nothing listens on port 1 of loopback: the probes are refused, on loopback only.
        let config = crate::config::parse(
            "probes:\n  targets:\n    - {host: 127.0.0.1, protocol: tcp, port: 1}\n",
            "test.yml",
        )
        .expect("config");
        let (_sender, receiver) = watch::channel(Arc::new(config));
        let shutdown = CancellationToken::new();
        let probes = Probes::start(&mut Registry::default(), receiver, shutdown.clone());
        let collected = probes.collect();
        shutdown.cancel();
        assert_eq!(collected.outcomes.len(), 1, "{:?}", collected.outcomes);
        let outcome = &collected.outcomes[0];
        assert_eq!(outcome.collector, "probes");
        assert!(outcome.success);
        assert!(outcome.duration > Duration::ZERO, "{outcome:?}");
        assert!(outcome.duration < Duration::from_secs(1), "{outcome:?}");
    }
}
