//! Each blkback statistics file read once per scrape: through the real dlopen path (the fake
//! libxenstat records the flags of every `xenstat_get_node`), the collector asks libxenstat for
//! VBDs only when it must (first scrape, new domain, a qdisk disk) and otherwise lists blkback's
//! devices in sysfs itself. And a VBD removed and created again under the same name between two
//! scrapes is served from its new files and its new ring geometry, never from what was cached.

#[path = "fake-libxenstat/fake.rs"]
mod fake;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::sync::watch;
use xen_exporter::testing::Config;
use xen_exporter::testing::LibXenstat;
use xen_exporter::testing::ScrapeCollector;
use xen_exporter::testing::{Format, Scraper};
use xen_exporter::testing::{HostFiles, XenCollector};
use xen_exporter::testing::{MemoryStore, XenStore, XenStoreError};

/// `xenstat.h`: everything, and everything but `XENSTAT_VBD`.
const XENSTAT_ALL: u32 = 0xf;
const WITHOUT_VBD: u32 = 0x7;

/// A xenstore whose keys a test changes between scrapes; counts the requests.
#[derive(Default)]
struct Store {
    keys: Mutex<MemoryStore>,
    reads: AtomicUsize,
}

impl XenStore for Store {
    fn read(&self, path: &str) -> Result<Option<String>, XenStoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.keys.lock().expect("keys").read(path)
    }
}

impl Store {
    /// VBD `devno` of `domid` connected with `1 << order` pages per ring.
    fn connect(&self, domid: u32, devno: u32, order: u32) {
        let mut keys = self.keys.lock().expect("keys");
        keys.insert(
            format!("/local/domain/0/backend/vbd/{domid}/{devno}/state"),
            "4",
        );
        keys.insert(
            format!("/local/domain/{domid}/device/vbd/{devno}/ring-page-order"),
            order.to_string(),
        );
    }
}

/// blkback's statistics of `vbd-<domid>-<devno>`, every counter `value`. The directory is
/// built beside and renamed into place, so a re-created device is a new inode, as in sysfs.
fn write_device(sysfs: &Path, domid: u32, devno: u32, value: u64) {
    let devices = sysfs.join("bus/xen-backend/devices");
    let device = devices.join(format!("vbd-{domid}-{devno}"));
    let new = devices.join(format!(".new-vbd-{domid}-{devno}"));
    std::fs::create_dir_all(new.join("statistics")).expect("mkdir");
    for name in [
        "oo_req", "rd_req", "wr_req", "rd_sect", "wr_sect", "f_req", "ds_req",
    ] {
        std::fs::write(new.join("statistics").join(name), format!("{value}\n")).expect("write");
    }
    if device.exists() {
        std::fs::remove_dir_all(&device).expect("remove the device");
    }
    std::fs::rename(&new, &device).expect("create the device");
}

struct Bench {
    _lib: fake::FakeLib,
    flags: PathBuf,
    root: tempfile::TempDir,
    store: Arc<Store>,
    scraper: Scraper,
    runtime: tokio::runtime::Runtime,
}

impl Bench {
    /// The fake libxenstat (`defines` added) behind the real collector, sysfs under a
    /// temporary root, the capture's labdomu (domid 1) with its one disk, xvda (51712).
    fn new(defines: &[&str]) -> Bench {
        let lib = fake::build_with(defines, |dir| {
            vec![format!(
                "FAKE_FLAGS_LOG_PATH=\"{}\"",
                dir.join("flags.log").display()
            )]
        });
        let flags = lib.dir().join("flags.log");
        let root = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::default());
        store.connect(1, 51712, 0);
        write_device(root.path(), 1, 51712, 1000);
        std::fs::create_dir_all(root.path().join("debug/xen-netback")).expect("debugfs");
        let source = LibXenstat::open(Some(&lib.path), None).expect("the fake opens");
        let (_, config) = watch::channel(Arc::new(Config::default()));
        let collector = XenCollector::new(
            Ok(Box::new(source)),
            HostFiles {
                sysfs: root.path().to_owned(),
                debugfs: root.path().join("debug"),
                procfs: root.path().join("proc"),
                shm: root.path().join("shm"),
                xenstore: Some(Arc::clone(&store) as Arc<dyn XenStore>),
            },
            config,
        );
        let collector: Arc<dyn ScrapeCollector> = Arc::new(collector);
        let scraper = Scraper::new(Registry::default(), vec![collector], Duration::from_secs(5));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Bench {
            _lib: lib,
            flags,
            root,
            store,
            scraper,
            runtime,
        }
    }

    fn scrape(&self) -> String {
        let exposition = self
            .runtime
            .block_on(self.scraper.exposition(Format::Text, false, None))
            .expect("scrape");
        String::from_utf8(exposition.body.to_vec()).expect("utf-8")
    }

    /// The flags of every `xenstat_get_node` so far.
    fn flags(&self) -> Vec<u32> {
        std::fs::read_to_string(&self.flags)
            .unwrap_or_default()
            .lines()
            .map(|line| line.parse().expect("flags"))
            .collect()
    }
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

const XVDA: &str = "{domain=\"labdomu\",device=\"xvda\"}";

#[test]
fn blkback_files_are_read_once_per_scrape() {
    let bench = Bench::new(&[]);
    for _ in 0..4 {
        let text = bench.scrape();
        // sysfs's 1000, never libxenstat's 515 (the capture's), and never a missing disk.
        assert_eq!(
            sample(&text, &format!("xen_vbd_read_requests_total{XVDA}")),
            Some(1000.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, &format!("xen_vbd_error{XVDA}")),
            Some(0.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, &format!("xen_vbd_ring_pages{XVDA}")),
            Some(1.0),
            "{text}"
        );
    }
    assert_eq!(
        bench.flags(),
        [XENSTAT_ALL, WITHOUT_VBD, WITHOUT_VBD, WITHOUT_VBD],
        "libxenstat asked for VBDs at the first scrape only"
    );
}

/// A qdisk disk only libxenstat knows (over QMP): its VBDs are asked for at every scrape.
#[test]
fn a_qdisk_disk_keeps_libxenstat_vbds() {
    let bench = Bench::new(&["FAKE_NULLS"]);
    for _ in 0..3 {
        let text = bench.scrape();
        assert!(
            text.contains("xen_vbd_read_requests_total{domain=\"nullguest\""),
            "{text}"
        );
    }
    assert_eq!(bench.flags(), [XENSTAT_ALL; 3]);
}

/// The check: xvda removed and created again between two scrapes, with counters that
/// start over and another ring geometry. Both come from the new device.
#[test]
fn a_recreated_vbd_is_never_served_from_the_old_one() {
    let bench = Bench::new(&[]);
    for _ in 0..3 {
        bench.scrape();
    }
    let before = bench.store.reads.swap(0, Ordering::SeqCst);
    assert!(before > 0);
    write_device(bench.root.path(), 1, 51712, 3);
    bench.store.connect(1, 51712, 2);
    let text = bench.scrape();
    assert_eq!(
        sample(&text, &format!("xen_vbd_read_requests_total{XVDA}")),
        Some(3.0),
        "the counter restarts from the new file's value: {text}"
    );
    assert_eq!(
        sample(&text, &format!("xen_vbd_ring_pages{XVDA}")),
        Some(4.0),
        "the new geometry: {text}"
    );
    // And steady again: one xenstore read per domain with disks (labdomu).
    bench.store.reads.swap(0, Ordering::SeqCst);
    bench.scrape();
    assert_eq!(bench.store.reads.load(Ordering::SeqCst), 1);
}
