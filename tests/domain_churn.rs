//! Domain churn: 1,000 destroy/create cycles of simulated guests while two scrapers scrape
//! without pause. Every scrape must show exactly the domains alive at its snapshot (no stale
//! series after a destroy, each family agreeing on the domain set), and nothing may panic.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::sync::watch;
use xen_exporter::testing::Config;
use xen_exporter::testing::ScrapeCollector;
use xen_exporter::testing::XenSource;
use xen_exporter::testing::{Format, Scraper};
use xen_exporter::testing::{HostFiles, XenCollector};
use xen_exporter::testing::{SimulatedHost, SimulatedOptions};

const GUESTS: usize = 4;
const CHURN: Duration = Duration::from_secs(10);
/// Half a churn period per step: each step destroys or re-creates one guest.
const STEPS: u64 = 2_000;

/// Domain names of the samples of `metric`.
fn domains_of(text: &str, metric: &str) -> BTreeSet<String> {
    let prefix = format!("{metric}{{domain=\"");
    text.lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

fn value(text: &str, metric: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{metric} ")))
        .and_then(|value| value.trim().parse().ok())
}

/// Checks one scrape on its own: every per-domain family names the same domains as
/// `xen_domain_info`, and `xen_domains` counts them. Returns the domain set.
fn consistent(text: &str) -> BTreeSet<String> {
    let live = domains_of(text, "xen_domain_info");
    assert_eq!(
        value(text, "xen_domains"),
        Some(live.len() as f64),
        "xen_domains counts the xen_domain_info series"
    );
    for family in [
        "xen_domain_cpu_seconds_total",
        "xen_domain_memory_bytes",
        "xen_domain_vcpus",
        "xen_domain_state",
        "xen_vcpu_cpu_seconds_total",
    ] {
        assert_eq!(domains_of(text, family), live, "{family}");
    }
    let guests: BTreeSet<String> = live
        .iter()
        .filter(|name| *name != "Domain-0")
        .cloned()
        .collect();
    for family in [
        "xen_vif_receive_bytes_total",
        "xen_vbd_out_of_requests_total",
        "xen_vbd_ring_capacity_requests",
        "xen_vif_ring_entries",
    ] {
        assert_eq!(domains_of(text, family), guests, "{family}");
    }
    live
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_churn_cycles_leave_no_stale_series() {
    let nanos = Arc::new(AtomicU64::new(0));
    let clock = {
        let nanos = nanos.clone();
        Arc::new(move || Duration::from_nanos(nanos.load(Ordering::SeqCst)))
    };
    let options = SimulatedOptions {
        guests: GUESTS,
        churn: Some(CHURN),
        ..SimulatedOptions::default()
    };
    let truth = SimulatedHost::with_clock(options.clone(), clock.clone());
    let source: Box<dyn XenSource> = Box::new(SimulatedHost::with_clock(options, clock));
    let (_config, config_updates) = watch::channel(Arc::new(Config::default()));
    let files = HostFiles {
        sysfs: "/nonexistent".into(),
        debugfs: "/nonexistent".into(),
        procfs: "/nonexistent".into(),
        shm: "/nonexistent".into(),
        xenstore: None,
    };
    let collector: Arc<dyn ScrapeCollector> =
        Arc::new(XenCollector::new(Ok(source), files, config_updates));
    let scraper = Arc::new(Scraper::new(
        Registry::default(),
        vec![collector],
        Duration::from_secs(5),
    ));

    let stop = Arc::new(AtomicBool::new(false));
    let background: Vec<_> = (0..2)
        .map(|_| {
            let scraper = scraper.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut scrapes = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let text = scraper.scrape(Format::Text, None).await.expect("encode");
                    consistent(&text);
                    scrapes += 1;
                    tokio::task::yield_now().await;
                }
                scrapes
            })
        })
        .collect();

    let half = CHURN / 2;
    let mut sizes = BTreeSet::new();
    let mut created = 0;
    let mut previous = BTreeSet::new();
    for step in 0..=STEPS {
        nanos.store((half * step as u32).as_nanos() as u64, Ordering::SeqCst);
        let expected: BTreeSet<String> = truth
            .snapshot()
            .expect("simulated")
            .domains
            .into_iter()
            .map(|domain| domain.name)
            .collect();
        // A scrape that arrives after the step sees the host of the step.
        let text = scraper
            .scrape(Format::OpenMetrics, None)
            .await
            .expect("encode");
        let live = consistent(&text);
        assert_eq!(live, expected, "step {step}");
        if step > 0 {
            created += expected.difference(&previous).count();
        }
        sizes.insert(live.len());
        previous = live;
    }
    stop.store(true, Ordering::SeqCst);
    let mut concurrent = 0;
    for task in background {
        concurrent += task.await.expect("a scraper panicked");
    }
    assert_eq!(created, 1_000, "1,000 guests re-created");
    assert_eq!(
        sizes,
        BTreeSet::from([GUESTS, GUESTS + 1]),
        "one guest down at a time"
    );
    assert!(concurrent > 0, "the background scrapers ran");
    eprintln!("churn: {STEPS} steps, {created} re-creations, {concurrent} concurrent scrapes");
}
