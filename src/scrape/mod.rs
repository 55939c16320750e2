//! One scrape: run the scrape-time collectors (shared by concurrent scrapes, under a timeout) and
//! encode them after the long-lived registry, in the format the scraper asked for.

pub(crate) mod collector;
mod encode_thread;
pub(crate) mod exposition;
mod gzip;
pub(crate) mod process;
pub(crate) mod protobuf;
pub(crate) mod self_metrics;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus_client::registry::Registry;
use tokio::sync::Mutex;

use crate::scrape::collector::{Families, Outcome, ScrapeCollector};
use crate::scrape::encode_thread::EncodeThread;
pub use crate::scrape::exposition::Format;
use crate::scrape::exposition::{Kind, Labels, Spec, Writer};

/// The result of running every scrape-time collector once, and its encodings.
struct Collection {
    /// When its sources were read: a scrape never gets a snapshot older than its request.
    started: Instant,
    /// Each collector's families, with its name: an encoding that fails names the collector.
    families: Vec<(&'static str, Arc<dyn Families>)>,
    outcomes: Vec<Outcome>,
    /// Expositions made from this collection, shared by the scrapes that share it: forty
    /// concurrent scrapes of a large host encode it once per format, not forty times.
    /// Keyed by format and whether gzip was asked for (`Exposition::gzipped` says if it was done).
    encoded: Mutex<Vec<(Format, bool, Exposition)>>,
}

/// One encoded exposition.
#[derive(Debug, Clone)]
pub struct Exposition {
    pub body: Bytes,
    /// Whether `body` is gzip-compressed.
    pub gzipped: bool,
}

/// Why a scrape produced no exposition.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// Writing one collector's families panicked: a bug in that collector's encoding.
    #[error("encoding the metrics of collector {collector:?} panicked: {reason}")]
    CollectorPanicked {
        collector: &'static str,
        reason: String,
    },
    /// prometheus-client could not encode the long-lived families (build info, probes,
    /// process).
    #[error("encoding the long-lived metrics failed: {0}")]
    Registry(#[source] std::fmt::Error),
    /// The same, in the protobuf format.
    #[error("encoding the long-lived metrics as protobuf failed: {0}")]
    RegistryProtobuf(#[source] prometheus_client::encoding::prometheus_protobuf::EncodeError),
    /// The encoding job died outside any collector's families (in gzip, say).
    #[error("the encoding job panicked")]
    EncodeJob,
    #[error("the exposition is not UTF-8")]
    NotUtf8,
}

impl ScrapeError {
    /// The collector whose families could not be encoded, if one is to blame.
    pub fn collector(&self) -> Option<&'static str> {
        match self {
            ScrapeError::CollectorPanicked { collector, .. } => Some(collector),
            _ => None,
        }
    }
}

/// Turns scrape requests into expositions.
pub struct Scraper {
    registry: Arc<Registry>,
    collectors: Vec<Arc<dyn ScrapeCollector>>,
    timeout: Duration,
    /// The last collection, while a scrape still uses it; dropped (with its encodings) after.
    latest: Mutex<Weak<Collection>>,
    encoder: EncodeThread,
    /// Length of the last exposition: the next buffer is allocated at about that size once,
    /// instead of doubling its way up (which briefly holds 1.5x to 3x the text at 1,000 domains).
    last_length: Arc<AtomicUsize>,
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
            registry: Arc::new(registry),
            collectors,
            timeout,
            latest: Mutex::new(Weak::new()),
            encoder: EncodeThread::spawn(),
            last_length: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Collects and encodes one scrape, uncompressed, as text (for tests and tools; a protobuf
    /// exposition is not text: [`ScrapeError::NotUtf8`]).
    pub async fn scrape(
        &self,
        format: Format,
        deadline: Option<Duration>,
    ) -> Result<String, ScrapeError> {
        let exposition = self.exposition(format, false, deadline).await?;
        String::from_utf8(exposition.body.to_vec()).map_err(|_| ScrapeError::NotUtf8)
    }

    /// Collects and encodes one scrape. `deadline` is the scraper's own timeout (from
    /// `X-Prometheus-Scrape-Timeout-Seconds`), which shortens ours when it is tighter. With
    /// `gzip` the body is compressed (unless compression failed: see `gzipped`).
    pub async fn exposition(
        &self,
        format: Format,
        gzip: bool,
        deadline: Option<Duration>,
    ) -> Result<Exposition, ScrapeError> {
        let timeout = deadline.map_or(self.timeout, |deadline| deadline.min(self.timeout));
        let collection = self.collect_shared(timeout).await;
        // Held while encoding, so that identical concurrent requests wait and share the result.
        let mut encoded = collection.encoded.lock().await;
        if let Some((_, _, exposition)) = encoded
            .iter()
            .find(|(f, asked_gzip, _)| *f == format && *asked_gzip == gzip)
        {
            return Ok(exposition.clone());
        }
        let registry = self.registry.clone();
        let families = collection.families.clone();
        let outcomes = collection.outcomes.clone();
        let last_length = self.last_length.clone();
        let exposition = self
            .encoder
            .run(move || {
                let body = encode(&registry, families, outcomes, format, &last_length)?;
                Ok::<_, ScrapeError>(if gzip {
                    match crate::scrape::gzip::compress(&body) {
                        Some(body) => Exposition {
                            body: Bytes::from(body),
                            gzipped: true,
                        },
                        None => Exposition {
                            body: Bytes::from(body),
                            gzipped: false,
                        },
                    }
                } else {
                    Exposition {
                        body: Bytes::from(body),
                        gzipped: false,
                    }
                })
            })
            .await
            .ok_or(ScrapeError::EncodeJob)??;
        encoded.push((format, gzip, exposition.clone()));
        Ok(exposition)
    }

    /// Runs the collectors, or waits for the run in progress and shares its result: a
    /// collection that started after this request arrived is fresh enough for it. Requests
    /// arriving during a collection share the next one, so each shows the host as it was at or
    /// after its arrival (a destroyed domain never reappears) and collections never pile up.
    async fn collect_shared(&self, timeout: Duration) -> Arc<Collection> {
        let requested = Instant::now();
        let mut latest = self.latest.lock().await;
        if let Some(collection) = latest
            .upgrade()
            .filter(|collection| collection.started >= requested)
        {
            return collection;
        }
        let collection = Arc::new(self.collect_all(timeout).await);
        *latest = Arc::downgrade(&collection);
        collection
    }

    async fn collect_all(&self, timeout: Duration) -> Collection {
        let started = Instant::now();
        let runs = self.collectors.iter().map(|collector| {
            let collector = collector.clone();
            let name = collector.name();
            let run = async move {
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
            };
            async move {
                let (families, outcomes) = run.await;
                (name, families, outcomes)
            }
        });
        let mut families: Vec<(&'static str, Arc<dyn Families>)> = Vec::new();
        let mut outcomes = Vec::new();
        for (name, collected, run_outcomes) in futures_join_all(runs).await {
            families.extend(
                collected
                    .into_iter()
                    .map(|family| (name, Arc::from(family))),
            );
            outcomes.extend(run_outcomes);
        }
        Collection {
            started,
            families,
            outcomes,
            encoded: Mutex::new(Vec::new()),
        }
    }
}

/// The whole exposition: the long-lived registry (prometheus-client), then the collection's
/// families and outcomes (our writer).
fn encode(
    registry: &Registry,
    families: Vec<(&'static str, Arc<dyn Families>)>,
    outcomes: Vec<Outcome>,
    format: Format,
    last_length: &AtomicUsize,
) -> Result<Vec<u8>, ScrapeError> {
    let last = last_length.load(Ordering::Relaxed);
    let capacity = (last + last / 8).max(64 * 1024);
    let body = match format {
        Format::Protobuf => {
            // prometheus-client writes the registry's families, native histograms included;
            // a delimited stream is a concatenation, so ours follow.
            let mut out = prometheus_client::encoding::prometheus_protobuf::encode_to_vec(registry)
                .map_err(ScrapeError::RegistryProtobuf)?;
            out.reserve(capacity.saturating_sub(out.len()));
            write_families(Writer::protobuf(&mut out), families, &outcomes)?;
            out
        }
        Format::OpenMetrics | Format::Text => {
            let mut out = String::with_capacity(capacity);
            match format {
                Format::OpenMetrics => {
                    prometheus_client::encoding::text::encode_registry(&mut out, registry)
                }
                _ => prometheus_client::encoding::prometheus_text::encode(&mut out, registry),
            }
            .map_err(ScrapeError::Registry)?;
            write_families(Writer::new(&mut out, format), families, &outcomes)?;
            out.into_bytes()
        }
    };
    last_length.store(body.len(), Ordering::Relaxed);
    Ok(body)
}

/// The collection's families and the collectors' outcomes, then the end of the exposition.
fn write_families(
    mut writer: Writer<'_>,
    families: Vec<(&'static str, Arc<dyn Families>)>,
    outcomes: &[Outcome],
) -> Result<(), ScrapeError> {
    for (collector, family) in families {
        // Caught here, not only on the encoding thread, to name the collector to blame. The
        // half-written exposition is dropped, so no torn state is seen afterwards.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| family.write(&mut writer)))
            .map_err(|panic| ScrapeError::CollectorPanicked {
                collector,
                reason: panic_message(panic.as_ref()),
            })?;
    }
    write_outcomes(&mut writer, outcomes);
    writer.finish();
    Ok(())
}

/// `xen_exporter_collector_duration_seconds` and `xen_exporter_collector_success`.
fn write_outcomes(writer: &mut Writer<'_>, outcomes: &[Outcome]) {
    let labels: Vec<Labels> = outcomes
        .iter()
        .map(|outcome| Labels::new().with("collector", outcome.collector))
        .collect();
    let mut family = writer.family(
        Spec::seconds(
            "xen_exporter_collector_duration",
            "How long the collector took at the last scrape",
        ),
        Kind::Gauge,
    );
    for (outcome, labels) in outcomes.iter().zip(&labels) {
        family.sample(labels, outcome.duration.as_secs_f64());
    }
    let mut family = writer.family(
        Spec::new(
            "xen_exporter_collector_success",
            "Whether the collector succeeded at the last scrape (1) or failed (0)",
        ),
        Kind::Gauge,
    );
    for (outcome, labels) in outcomes.iter().zip(&labels) {
        family.sample(labels, outcome.success);
    }
}

/// The text of a panic's payload (`panic!("...")` gives a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
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
