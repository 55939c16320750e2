//! The real dlopen + FFI path against the fake libxenstat (tests/fake-libxenstat): the snapshot
//! must equal the lab capture exactly, NULLs and missing symbols must be handled, and nothing
//! may leak.

#[path = "fake-libxenstat/fake.rs"]
mod fake;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::sync::watch;
use xen_exporter::testing::Config;
use xen_exporter::testing::{open_source, SourceKind};
use xen_exporter::testing::{Domain, DomainState, Host, Vbd, VbdBackend, Vcpu, Vif};
use xen_exporter::testing::{Format, HostFiles, ScrapeCollector, Scraper, XenCollector};
use xen_exporter::testing::{LibXenstat, BUSY_REASON, XENSTORE_BUSY_REASON};
use xen_exporter::testing::{MemoryStore, XenStore, XenStoreError};
use xen_exporter::testing::{SourceError, XenSource};
use xenstat_sys::{Libxenstat, LoadError};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

fn secs(s: u64, ms: u64) -> Duration {
    Duration::from_secs(s) + Duration::from_millis(ms)
}

/// The default-run capture (Xen 4.17.7) as the fake serves it, in model form.
fn captured_host() -> Host {
    Host {
        xen_version: Some("4.17.7".to_owned()),
        cpus: 2,
        cpu_hz: 2_299_999_000,
        memory_total_bytes: 2047 * MIB,
        memory_free_bytes: 1256 * MIB,
        domains: vec![
            Domain {
                domid: 0,
                name: "Domain-0".to_owned(),
                uuid: None,
                ssid: 0,
                cpu_time: secs(36, 300),
                vcpus: vec![
                    Vcpu {
                        id: 0,
                        online: true,
                        cpu_time: secs(23, 700),
                    },
                    Vcpu {
                        id: 1,
                        online: true,
                        cpu_time: secs(12, 600),
                    },
                ],
                memory_bytes: 786_432 * KIB,
                memory_max_bytes: Some(786_432 * KIB),
                state: DomainState {
                    running: true,
                    ..Default::default()
                },
                vifs: vec![],
                vbds: vec![],
                ..Default::default()
            },
            Domain {
                domid: 1,
                name: "labdomu".to_owned(),
                uuid: None,
                ssid: 0,
                cpu_time: secs(7, 100),
                vcpus: vec![
                    Vcpu {
                        id: 0,
                        online: true,
                        cpu_time: secs(4, 600),
                    },
                    Vcpu {
                        id: 1,
                        online: true,
                        cpu_time: secs(2, 500),
                    },
                ],
                memory_bytes: 131_072 * KIB,
                memory_max_bytes: Some(132_096 * KIB),
                state: DomainState {
                    blocked: true,
                    ..Default::default()
                },
                vifs: vec![Vif {
                    devid: 0,
                    rx_bytes: 1216,
                    rx_packets: 17,
                    tx_bytes: 1674,
                    tx_packets: 19,
                    ..Default::default()
                }],
                vbds: vec![Vbd {
                    devno: 51712,
                    backend: VbdBackend::Blkback,
                    read_requests: 515,
                    write_requests: 512,
                    read_sectors: 65560,
                    write_sectors: 65536,
                    out_of_requests: 0,
                    flush_requests: None,
                    discard_requests: None,
                    error: Some(false),
                    ring: None,
                    backing: None,
                    ..Default::default()
                }],
                ..Default::default()
            },
        ],
    }
}

fn open(path: &Path) -> LibXenstat {
    LibXenstat::open(Some(path), None).expect("the fake libxenstat opens")
}

#[test]
fn snapshot_through_dlopen_equals_the_capture() {
    let lib = fake::build(&[]);
    let source = open(&lib.path);
    assert_eq!(source.name(), "libxenstat");
    assert_eq!(source.library_path(), lib.path);
    let host = source.snapshot().expect("snapshot");
    assert_eq!(host, captured_host());
    // A second snapshot takes a fresh node and gives the same answer.
    assert_eq!(source.snapshot().expect("second snapshot"), host);
}

// ---- xentop rendering: the snapshot printed as xentop prints it, compared with the capture ----

/// xentop's state column (`print_state`): d s b c p r, a letter when the flag is set.
fn xentop_state(state: &DomainState) -> String {
    [
        (state.dying, 'd'),
        (state.shutdown, 's'),
        (state.blocked, 'b'),
        (state.crashed, 'c'),
        (state.paused, 'p'),
        (state.running, 'r'),
    ]
    .iter()
    .map(|&(set, letter)| if set { letter } else { '-' })
    .collect()
}

/// The lines xentop -f -n -x -v prints for `host`, as whitespace-separated tokens, without the
/// CPU(%) column (it needs two samples).
fn render_as_xentop(host: &Host) -> Vec<Vec<String>> {
    let mut lines = Vec::new();
    let percent = |bytes: u64| {
        format!(
            "{:.1}",
            bytes as f64 / host.memory_total_bytes as f64 * 100.0
        )
    };
    for d in &host.domains {
        let (max_k, max_pct) = match d.memory_max_bytes {
            Some(max) => ((max / KIB).to_string(), percent(max)),
            None => ("no limit".to_owned(), "n/a".to_owned()),
        };
        let sum = |f: &dyn Fn(&Vbd) -> u64| d.vbds.iter().map(f).sum::<u64>().to_string();
        let row = format!(
            "{} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {}",
            d.name,
            xentop_state(&d.state),
            d.cpu_time.as_secs(),
            d.memory_bytes / KIB,
            percent(d.memory_bytes),
            max_k,
            max_pct,
            d.vcpus.len(),
            d.vifs.len(),
            d.vifs.iter().map(|v| v.tx_bytes).sum::<u64>() / KIB,
            d.vifs.iter().map(|v| v.rx_bytes).sum::<u64>() / KIB,
            d.vbds.len(),
            sum(&|v| v.out_of_requests),
            sum(&|v| v.read_requests),
            sum(&|v| v.write_requests),
            sum(&|v| v.read_sectors),
            sum(&|v| v.write_sectors),
            d.ssid,
        );
        lines.push(row);
        let mut vcpus = "VCPUs(sec):".to_owned();
        for v in d.vcpus.iter().filter(|v| v.online) {
            vcpus.push_str(&format!(" {}: {}s", v.id, v.cpu_time.as_secs()));
        }
        lines.push(vcpus);
        for v in &d.vifs {
            lines.push(format!(
                "Net{} RX: {}bytes {}pkts {}err {}drop TX: {}bytes {}pkts {}err {}drop",
                v.devid,
                v.rx_bytes,
                v.rx_packets,
                v.rx_errors,
                v.rx_drops,
                v.tx_bytes,
                v.tx_packets,
                v.tx_errors,
                v.tx_drops
            ));
        }
        for v in &d.vbds {
            let kind = match v.backend {
                VbdBackend::Blkback => "BlkBack",
                VbdBackend::Tap => "BlkTap",
                VbdBackend::Tapdisk3 => "Tapdisk3",
                VbdBackend::Qdisk | VbdBackend::Unknown => "Unidentified",
            };
            lines.push(format!(
                "VBD {kind} {} [{:2x}:{:2x}] OO: {} RD: {} WR: {} RSECT: {} WSECT: {}",
                v.devno,
                v.devno >> 8,
                v.devno & 0xff,
                v.out_of_requests,
                v.read_requests,
                v.write_requests,
                v.read_sectors,
                v.write_sectors
            ));
        }
    }
    lines.iter().map(|line| tokens(line)).collect()
}

fn tokens(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

/// The capture's body lines as tokens, CPU(%) (the 4th column of a domain row) removed.
fn captured_xentop() -> Vec<Vec<String>> {
    let text = include_str!("fake-libxenstat/xentop-batch-full.txt");
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim_start().starts_with("NAME"))
        .map(|line| {
            let mut t = tokens(line);
            let is_domain_row =
                !matches!(t[0].as_str(), "VCPUs(sec):" | "VBD") && !t[0].starts_with("Net");
            if is_domain_row {
                t.remove(3);
            }
            t
        })
        .collect()
}

#[test]
fn snapshot_prints_exactly_as_xentop_did() {
    let lib = fake::build(&[]);
    let host = open(&lib.path).snapshot().expect("snapshot");
    let expected = captured_xentop();
    assert_eq!(
        expected.len(),
        6,
        "capture: 2 domain rows, 2 VCPU lines, 1 Net, 1 VBD"
    );
    assert_eq!(render_as_xentop(&host), expected);
}

// ---- NULL handling, optional and required symbols ----

#[test]
fn null_pointers_skip_only_what_they_stand_for() {
    let lib = fake::build(&["FAKE_NULLS"]);
    let host = open(&lib.path).snapshot().expect("snapshot");
    let names: Vec<&str> = host.domains.iter().map(|d| d.name.as_str()).collect();
    // The dying domain (NULL name) and the NULL index past the end are skipped; the rest stay.
    assert_eq!(names, ["Domain-0", "labdomu", "nullguest"]);
    assert_eq!(host.domains[..2], captured_host().domains[..]);
    let guest = &host.domains[2];
    assert_eq!(
        *guest,
        Domain {
            domid: 5,
            name: "nullguest".to_owned(),
            uuid: None,
            ssid: 7,
            cpu_time: Duration::from_secs(3),
            // VCPU 1 is NULL: skipped, VCPU 0 kept (offline).
            vcpus: vec![Vcpu {
                id: 0,
                online: false,
                cpu_time: Duration::from_secs(1)
            }],
            memory_bytes: 65_536 * KIB,
            // max_mem = (unsigned long long)-1: unlimited.
            memory_max_bytes: None,
            state: DomainState {
                paused: true,
                ..Default::default()
            },
            // Network 0 is NULL: skipped.
            vifs: vec![Vif {
                devid: 1,
                rx_bytes: 10,
                rx_packets: 1,
                rx_errors: 2,
                rx_drops: 3,
                tx_bytes: 20,
                tx_packets: 4,
                tx_errors: 5,
                tx_drops: 6,
                queues: vec![],
                ..Default::default()
            }],
            // VBD 0 is NULL: skipped; VBD 1 is a qdisk whose statistics failed to read.
            vbds: vec![Vbd {
                devno: 268_439_808,
                backend: VbdBackend::Qdisk,
                read_requests: 1,
                write_requests: 2,
                read_sectors: 3,
                write_sectors: 4,
                out_of_requests: 9,
                error: Some(true),
                ..Default::default()
            }],
            ..Default::default()
        }
    );
}

#[test]
fn garbage_counts_are_capped_not_allocated_or_looped_forever() {
    let lib = fake::build(&["FAKE_HUGE_COUNTS"]);
    let host = open(&lib.path).snapshot().expect("snapshot");
    // Indexes past the real ones return NULL and are skipped; the data itself is intact.
    assert_eq!(host, captured_host());
}

#[test]
fn library_without_vbd_error_gives_none_not_false() {
    let lib = fake::build(&["FAKE_NO_VBD_ERROR"]);
    let raw = Libxenstat::load(Some(&lib.path)).expect("loads without the optional symbol");
    assert_eq!(raw.missing_optional(), ["xenstat_vbd_error"]);
    let host = LibXenstat::with_library(Arc::new(raw), None)
        .expect("opens")
        .snapshot()
        .expect("snapshot");
    let vbd = &host.domains[1].vbds[0];
    assert_eq!(vbd.error, None);
    assert_eq!(vbd.read_sectors, 65560);
}

#[test]
fn missing_required_symbol_is_named() {
    let lib = fake::build(&["FAKE_NO_DOMAIN_SSID"]);
    match Libxenstat::load(Some(&lib.path)) {
        Err(LoadError::MissingSymbol { path, name }) => {
            assert_eq!(name, "xenstat_domain_ssid");
            assert_eq!(path, lib.path);
        }
        other => panic!("expected MissingSymbol, got {other:?}"),
    }
    match LibXenstat::open(Some(&lib.path), None) {
        Err(SourceError::Unavailable { reason }) => {
            assert!(
                reason.contains("required symbol xenstat_domain_ssid is missing"),
                "{reason}"
            );
            assert!(reason.contains(&lib.path.display().to_string()), "{reason}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[test]
fn unresolved_dependency_fails_at_load_not_at_first_call() {
    let lib = fake::build(&["FAKE_UNRESOLVED"]);
    let err = Libxenstat::load(Some(&lib.path)).expect_err("RTLD_NOW refuses the library");
    let message = err.to_string();
    assert!(
        message.contains("undefined symbol: fake_symbol_nobody_defines"),
        "{message}"
    );
    assert!(
        message.contains(&lib.path.display().to_string()),
        "{message}"
    );
}

#[test]
fn init_returning_null_is_unavailable_not_a_crash() {
    let lib = fake::build(&["FAKE_INIT_FAIL"]);
    match LibXenstat::open(Some(&lib.path), None) {
        Err(SourceError::Unavailable { reason }) => {
            assert!(reason.contains("xenstat_init failed"), "{reason}");
            assert!(
                reason.contains("No such file or directory"),
                "errno kept: {reason}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

// ---- loader errors ----

#[test]
fn explicit_path_that_does_not_exist_is_the_only_candidate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("libxenstat.so.4.99");
    let err = Libxenstat::load(Some(&missing)).expect_err("nothing there");
    let tried: Vec<_> = err.tried().iter().map(|f| f.candidate.clone()).collect();
    assert_eq!(
        tried,
        std::slice::from_ref(&missing),
        "no silent fallback to another Xen's library"
    );
    let message = err.to_string();
    assert!(
        message.starts_with("libxenstat could not be loaded; tried "),
        "{message}"
    );
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
    assert!(message.contains("No such file or directory"), "{message}");
}

#[test]
fn not_found_lists_every_candidate() {
    let candidates: Vec<String> = (0..3).map(|i| format!("libxenstat-none.so.{i}")).collect();
    let err = Libxenstat::load_first(&candidates).expect_err("none exist");
    let message = err.to_string();
    for candidate in &candidates {
        assert!(
            message.contains(candidate.as_str()),
            "{candidate} missing from: {message}"
        );
    }
    assert_eq!(err.tried().len(), 3);
}

#[test]
fn default_candidates_cover_every_4x_soname_newest_first() {
    let names = Libxenstat::default_candidates();
    assert_eq!(names.first().map(String::as_str), Some("libxenstat.so"));
    assert_eq!(names.get(1).map(String::as_str), Some("libxenstat.so.4.30"));
    assert!(names.contains(&"libxenstat.so.4.17".to_owned()));
    assert!(names.contains(&"libxenstat.so.4.0".to_owned()));
    assert_eq!(names.last().map(String::as_str), Some("libxenstat.so.0"));
    assert_eq!(names.len(), 1 + 31 + 1);
}

// ---- lifecycle: every node freed, the handle released ----

fn calls(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_node_is_freed_and_the_handle_released_on_drop() {
    let lib = fake::build_with(&[], |dir| {
        vec![format!(
            "FAKE_LOG_PATH=\"{}\"",
            dir.join("calls.log").display()
        )]
    });
    let log = lib.dir().join("calls.log");
    let source = Arc::new(open(&lib.path));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let source = Arc::clone(&source);
            std::thread::spawn(move || {
                let mut taken = 0;
                for _ in 0..25 {
                    // Overlapping callers either get the full snapshot or the fast "busy"
                    // failure; never a torn or partial host.
                    match source.snapshot() {
                        Ok(host) => {
                            assert_eq!(host, captured_host());
                            taken += 1;
                        }
                        Err(SourceError::Failed { reason }) => assert_eq!(reason, BUSY_REASON),
                        Err(other) => panic!("unexpected error: {other}"),
                    }
                }
                taken
            })
        })
        .collect();
    let taken: usize = threads
        .into_iter()
        .map(|thread| thread.join().expect("no snapshot thread panicked"))
        .sum();
    assert!(taken >= 1);
    let during = calls(&log);
    assert_eq!(during.iter().filter(|c| *c == "get_node").count(), taken);
    assert_eq!(during.iter().filter(|c| *c == "free_node").count(), taken);
    // The handle lock serialises libxenstat: every get_node is followed by its free_node.
    for pair in during[1..].chunks(2) {
        assert_eq!(pair, ["get_node", "free_node"]);
    }
    assert_eq!(during.first().map(String::as_str), Some("init"));
    assert!(!during.contains(&"uninit".to_owned()));
    drop(source);
    assert_eq!(calls(&log).last().map(String::as_str), Some("uninit"));
}

/// Polls `condition` until it holds or `limit` passes.
fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    condition()
}

#[test]
fn a_hung_libxenstat_fails_later_snapshots_fast_instead_of_queueing_them() {
    let lib = fake::build_with(&[], |dir| {
        vec![
            format!("FAKE_LOG_PATH=\"{}\"", dir.join("calls.log").display()),
            format!("FAKE_GATE_PATH=\"{}\"", dir.join("gate").display()),
        ]
    });
    let log = lib.dir().join("calls.log");
    let source = Arc::new(open(&lib.path));
    let stuck = std::thread::spawn({
        let source = Arc::clone(&source);
        move || source.snapshot()
    });
    assert!(
        wait_until(Duration::from_secs(30), || calls(&log)
            .contains(&"get_node_wait".to_owned())),
        "the first snapshot never entered xenstat_get_node"
    );
    // The first snapshot is stuck inside libxenstat: the next one must not wait for it.
    match source.snapshot() {
        Err(SourceError::Failed { reason }) => assert_eq!(reason, BUSY_REASON),
        other => panic!("expected the busy failure, got {other:?}"),
    }
    std::fs::write(lib.dir().join("gate"), b"").expect("open the gate");
    let first = stuck
        .join()
        .expect("stuck thread")
        .expect("first snapshot completes");
    assert_eq!(first, captured_host());
    assert_eq!(source.snapshot().expect("later snapshot"), captured_host());
}

// ---- UUIDs from xenstore ----

#[test]
fn uuid_comes_from_xenstore_vm_path() {
    let lib = fake::build(&[]);
    let store = MemoryStore::parse_ls_f(
        "/local/domain/1/name = \"labdomu\"\n\
         /local/domain/1/vm = \"/vm/a7c1cbd9-b1a3-4f54-9c5c-d1c8e3e35ab6\"\n",
    );
    let source = LibXenstat::open(Some(&lib.path), Some(Arc::new(store))).expect("opens");
    let host = source.snapshot().expect("snapshot");
    assert_eq!(host.domains[0].uuid, None, "Domain-0 has no vm key here");
    assert_eq!(
        host.domains[1].uuid.as_deref(),
        Some("a7c1cbd9-b1a3-4f54-9c5c-d1c8e3e35ab6")
    );
}

/// A xenstore that counts reads, over a [`MemoryStore`].
struct CountingStore {
    inner: MemoryStore,
    reads: Arc<AtomicUsize>,
}

impl XenStore for CountingStore {
    fn read(&self, path: &str) -> Result<Option<String>, XenStoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read(path)
    }
}

#[test]
fn uuids_are_read_once_per_domain_life() {
    let lib = fake::build(&[]);
    let reads = Arc::new(AtomicUsize::new(0));
    let store = CountingStore {
        inner: MemoryStore::parse_ls_f(
            "/local/domain/1/vm = \"/vm/a7c1cbd9-b1a3-4f54-9c5c-d1c8e3e35ab6\"\n",
        ),
        reads: Arc::clone(&reads),
    };
    let source = open(&lib.path).with_xenstore(Arc::new(store));
    for _ in 0..5 {
        let host = source.snapshot().expect("snapshot");
        assert_eq!(
            host.domains[1].uuid.as_deref(),
            Some("a7c1cbd9-b1a3-4f54-9c5c-d1c8e3e35ab6")
        );
    }
    // labdomu once; Domain-0 (no vm key, not cached) at every snapshot.
    assert_eq!(reads.load(Ordering::SeqCst), 1 + 5);
}

/// Opens the gate when dropped, also when the test fails: the runtime waits for its blocking
/// threads at shutdown, so a failed assertion must not leave them parked.
struct Gate(Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

impl Drop for Gate {
    fn drop(&mut self) {
        let (lock, opened) = &*self.0;
        *lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        opened.notify_all();
    }
}

/// A xenstore whose reads hang until the test opens the gate, as a stuck xenstored does.
struct HangingStore {
    inner: MemoryStore,
    open: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    /// Threads inside `read` now.
    inside: Arc<AtomicUsize>,
}

impl XenStore for HangingStore {
    fn read(&self, path: &str) -> Result<Option<String>, XenStoreError> {
        self.inside.fetch_add(1, Ordering::SeqCst);
        let (lock, opened) = &*self.open;
        let mut open = lock.lock().expect("gate");
        while !*open {
            open = opened.wait(open).expect("gate");
        }
        drop(open);
        self.inside.fetch_sub(1, Ordering::SeqCst);
        self.inner.read(path)
    }
}

/// A source that counts the threads inside `snapshot` (running, or parked on a lock).
struct InFlight {
    inner: Arc<LibXenstat>,
    in_flight: Arc<AtomicUsize>,
}

impl XenSource for InFlight {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn snapshot(&self) -> Result<Host, SourceError> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let result = self.inner.snapshot();
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

/// xenstored hangs during a UUID lookup: every scrape still ends by its timeout with
/// `collector_success{collector="xen"} 0`, and the blocking threads do not pile up behind the
/// stuck one (they used to wait, one per scrape, on the lock the lookup held).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_xenstore_fails_scrapes_by_the_timeout_without_piling_up_threads() {
    let lib = fake::build(&[]);
    let gate = Gate(Arc::new((
        std::sync::Mutex::new(false),
        std::sync::Condvar::new(),
    )));
    let inside = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let store = HangingStore {
        inner: MemoryStore::parse_ls_f(
            "/local/domain/1/vm = \"/vm/a7c1cbd9-b1a3-4f54-9c5c-d1c8e3e35ab6\"\n",
        ),
        open: Arc::clone(&gate.0),
        inside: Arc::clone(&inside),
    };
    let direct = Arc::new(open(&lib.path).with_xenstore(Arc::new(store)));
    let source: Box<dyn XenSource> = Box::new(InFlight {
        inner: Arc::clone(&direct),
        in_flight: Arc::clone(&in_flight),
    });
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
    let timeout = Duration::from_millis(300);
    let scraper = Scraper::new(Registry::default(), vec![collector], timeout);
    const SCRAPES: usize = 8;
    for scrape in 0..SCRAPES {
        let started = std::time::Instant::now();
        let text = scraper.scrape(Format::Text, None).await.expect("encodes");
        let took = started.elapsed();
        assert!(
            took < timeout + Duration::from_secs(1),
            "scrape {scrape} took {took:?}"
        );
        assert!(
            text.contains("xen_exporter_collector_success{collector=\"xen\"} 0"),
            "scrape {scrape}: {text}"
        );
    }
    // The first snapshot is parked in xenstore; later ones came back instead of queueing.
    assert_eq!(inside.load(Ordering::SeqCst), 1, "threads inside xenstore");
    match direct.snapshot() {
        Err(SourceError::Failed { reason }) => assert_eq!(reason, XENSTORE_BUSY_REASON),
        other => panic!("expected the xenstore busy failure, got {other:?}"),
    }
    let parked = in_flight.load(Ordering::SeqCst);
    assert_eq!(
        parked, 1,
        "{parked} snapshots parked after {SCRAPES} scrapes"
    );
    drop(gate);
    assert!(
        wait_until(Duration::from_secs(10), || in_flight.load(Ordering::SeqCst)
            == 0),
        "snapshots still parked after xenstore answered"
    );
    let text = scraper.scrape(Format::Text, None).await.expect("encodes");
    assert!(
        text.contains("xen_exporter_collector_success{collector=\"xen\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("a7c1cbd9-b1a3-4f54-9c5c-d1c8e3e35ab6"),
        "{text}"
    );
}

// ---- source selection ----

struct Marker;

impl XenSource for Marker {
    fn name(&self) -> &'static str {
        "marker"
    }
    fn snapshot(&self) -> Result<Host, SourceError> {
        Ok(Host::default())
    }
}

#[test]
fn selection_opens_the_requested_source() {
    let lib = fake::build(&[]);
    for kind in [SourceKind::Auto, SourceKind::Libxenstat] {
        let source = open_source(kind, Some(&lib.path), || panic!("simulated not wanted"))
            .expect("libxenstat opens");
        assert_eq!(source.name(), "libxenstat");
        assert_eq!(source.snapshot().expect("snapshot").domains.len(), 2);
    }
    let source = open_source(SourceKind::Simulated, Some(&lib.path), || Box::new(Marker))
        .expect("simulated");
    assert_eq!(source.name(), "marker");
}

#[test]
fn selection_without_a_hypervisor_is_unavailable_with_the_reason() {
    let lib = fake::build(&["FAKE_INIT_FAIL"]);
    for kind in [SourceKind::Auto, SourceKind::Libxenstat] {
        match open_source(kind, Some(&lib.path), || {
            panic!("never falls back to simulated")
        }) {
            Err(SourceError::Unavailable { reason }) => {
                assert!(reason.contains("xenstat_init failed"), "{reason}")
            }
            Err(other) => panic!("expected Unavailable, got {other}"),
            Ok(source) => panic!("expected Unavailable, got {}", source.name()),
        }
    }
}
