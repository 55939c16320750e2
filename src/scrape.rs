//! One scrape: run the scrape-time collectors (shared by concurrent scrapes, under a timeout) and
//! encode them after the long-lived registry, in the format the scraper asked for.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use tokio::sync::Mutex;

use crate::collect::{Outcome, ScrapeCollector};

/// The exposition formats we serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
    /// Prometheus text format 0.0.4 (what promtool and older scrapers parse).
    Text,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// The result of running every scrape-time collector once.
struct Collection {
    /// When its sources were read: a scrape never gets a snapshot older than its request.
    started: Instant,
    families: Vec<Arc<dyn Collector>>,
    outcomes: Vec<Outcome>,
}

/// Turns scrape requests into exposition text.
pub struct Scraper {
    registry: Registry,
    collectors: Vec<Arc<dyn ScrapeCollector>>,
    timeout: Duration,
    latest: Mutex<Option<Arc<Collection>>>,
}

impl Scraper {
    /// `registry` holds the long-lived families (build info, probes, process); `collectors` run
    /// at every scrape; `timeout` bounds each collector.
    pub fn new(
        registry: Registry,
        collectors: Vec<Arc<dyn ScrapeCollector>>,
        timeout: Duration,
    ) -> Self {
        Self {
            registry,
            collectors,
            timeout,
            latest: Mutex::new(None),
        }
    }

    /// Names of the scrape-time collectors, for the landing page.
    pub fn collector_names(&self) -> Vec<&'static str> {
        self.collectors
            .iter()
            .map(|collector| collector.name())
            .collect()
    }

    /// Collects and encodes one scrape. `deadline` is the scraper's own timeout (from
    /// `X-Prometheus-Scrape-Timeout-Seconds`), which shortens ours when it is tighter.
    pub async fn scrape(
        &self,
        format: Format,
        deadline: Option<Duration>,
    ) -> Result<String, std::fmt::Error> {
        let timeout = deadline.map_or(self.timeout, |deadline| deadline.min(self.timeout));
        let collection = self.collect_shared(timeout).await;
        let mut per_scrape = Registry::default();
        for family in &collection.families {
            per_scrape.register_collector(Box::new(Shared(family.clone())));
        }
        per_scrape.register_collector(Box::new(OutcomeFamilies(collection.outcomes.clone())));
        let mut out = String::with_capacity(64 * 1024);
        match format {
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode_registry(&mut out, &self.registry)?;
                prometheus_client::encoding::text::encode_registry(&mut out, &per_scrape)?;
                prometheus_client::encoding::text::encode_eof(&mut out)?;
            }
            Format::Text => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
                prometheus_client::encoding::prometheus_text::encode(&mut out, &per_scrape)?;
            }
        }
        Ok(out)
    }

    /// Runs the collectors, or waits for the run in progress and shares its result: a
    /// collection that started after this request arrived is fresh enough for it. Requests
    /// arriving during a collection share the next one, so each shows the host as it was at or
    /// after its arrival (a destroyed domain never reappears) and collections never pile up.
    async fn collect_shared(&self, timeout: Duration) -> Arc<Collection> {
        let requested = Instant::now();
        let mut latest = self.latest.lock().await;
        if let Some(collection) = latest
            .as_ref()
            .filter(|collection| collection.started >= requested)
        {
            return collection.clone();
        }
        let collection = Arc::new(self.collect_all(timeout).await);
        *latest = Some(collection.clone());
        collection
    }

    async fn collect_all(&self, timeout: Duration) -> Collection {
        let started = Instant::now();
        let runs = self.collectors.iter().map(|collector| {
            let collector = collector.clone();
            async move {
                let started = Instant::now();
                let task = tokio::task::spawn_blocking({
                    let collector = collector.clone();
                    move || collector.collect()
                });
                match tokio::time::timeout(timeout, task).await {
                    Ok(Ok(collected)) => (collected.families, collected.outcomes),
                    Ok(Err(join_error)) => {
                        tracing::error!(collector = collector.name(), error = %join_error, "collector panicked");
                        (collector.on_timeout(), vec![failed(collector.name(), started)])
                    }
                    Err(_) => {
                        // The blocking task keeps running to its end; its result is dropped.
                        tracing::warn!(collector = collector.name(), timeout = ?timeout, "collector timed out");
                        (collector.on_timeout(), vec![failed(collector.name(), started)])
                    }
                }
            }
        });
        let mut families: Vec<Arc<dyn Collector>> = Vec::new();
        let mut outcomes = Vec::new();
        for (collected, run_outcomes) in futures_join_all(runs).await {
            families.extend(collected.into_iter().map(Arc::from));
            outcomes.extend(run_outcomes);
        }
        Collection {
            started,
            families,
            outcomes,
        }
    }
}

fn failed(collector: &'static str, started: Instant) -> Outcome {
    Outcome {
        collector,
        success: false,
        duration: started.elapsed(),
    }
}

/// Awaits every future concurrently, keeping their order (a small `join_all` without the
/// futures crate).
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        match handle.await {
            Ok(output) => outputs.push(output),
            Err(error) => tracing::error!(%error, "collector task failed"),
        }
    }
    outputs
}

/// A family shared by concurrent scrapes of one collection.
#[derive(Debug)]
struct Shared(Arc<dyn Collector>);

impl Collector for Shared {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CollectorLabel {
    collector: &'static str,
}

/// `xen_exporter_collector_success` and `xen_exporter_collector_duration_seconds`.
#[derive(Debug)]
struct OutcomeFamilies(Vec<Outcome>);

impl Collector for OutcomeFamilies {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if self.0.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(
            "xen_exporter_collector_duration",
            "How long the collector took at the last scrape.",
            Some(&Unit::Seconds),
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for outcome in &self.0 {
            let gauge = ConstGauge::new(outcome.duration.as_secs_f64());
            gauge.encode(family.encode_family(&CollectorLabel {
                collector: outcome.collector,
            })?)?;
        }
        let mut family = encoder.encode_descriptor(
            "xen_exporter_collector_success",
            "Whether the collector succeeded at the last scrape (1) or failed (0).",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for outcome in &self.0 {
            let gauge = ConstGauge::new(i64::from(outcome.success));
            gauge.encode(family.encode_family(&CollectorLabel {
                collector: outcome.collector,
            })?)?;
        }
        Ok(())
    }
}
