//! 100 concurrent scrapers for 10 s: nothing but 200 and the documented 503, bounded memory.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{http, Exporter};

#[test]
fn hundred_concurrent_scrapers() {
    let exporter = Exporter::start(&["--web.max-requests=40"]);
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let busy = Arc::new(AtomicU64::new(0));
    let other = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let started = Instant::now();
    let workers: Vec<_> = (0..100)
        .map(|_| {
            let (stop, ok, busy, other) = (stop.clone(), ok.clone(), busy.clone(), other.clone());
            let address = exporter.address;
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match http(address, "GET", "/metrics", &[("Accept-Encoding", "gzip")]) {
                        Ok(response) if response.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        Ok(response) if response.status == 503 => busy.fetch_add(1, Ordering::Relaxed),
                        Ok(response) => {
                            other.lock().expect("lock").push(format!("status {}", response.status));
                            0
                        }
                        Err(error) => {
                            other.lock().expect("lock").push(error.to_string());
                            0
                        }
                    };
                }
            })
        })
        .collect();
    let mut peak_rss = 0;
    while started.elapsed() < Duration::from_secs(10) {
        peak_rss = peak_rss.max(exporter.rss_bytes());
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().expect("worker thread");
    }
    let other = other.lock().expect("lock");
    eprintln!(
        "200: {}, 503: {}, other: {}, peak RSS {:.1} MiB",
        ok.load(Ordering::Relaxed),
        busy.load(Ordering::Relaxed),
        other.len(),
        peak_rss as f64 / 1048576.0
    );
    assert!(other.is_empty(), "unexpected results: {:?}", &other[..other.len().min(10)]);
    assert!(ok.load(Ordering::Relaxed) > 100);
    assert!(peak_rss < 64 * 1024 * 1024, "peak RSS {peak_rss} bytes");
    assert_eq!(exporter.get("/-/healthy").status, 200);
}
