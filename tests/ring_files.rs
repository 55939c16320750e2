//! The ring collector through the real binary on debugfs fixture trees, with the fake
//! libxenstat listing the domains (`FAKE_XENSTAT_DOMAINS=2`: `Domain-0` and `guest-0001`, two
//! vifs each) and a stand-in xenstored with no ring keys (every VBD gets the default geometry):
//!
//! - no code path writes to debugfs: a full scrape under inotify shows only opens for reading;
//! - an unreadable vif and a vif that vanished mid-read fail alone, the other vifs are served;
//! - a missing debugfs is told once, at start, with how to mount it, an unreadable one with
//!   that it needs root;
//! - blkback zeroing its counters is a counter reset to a real Prometheus, not a negative rate.

mod common;
#[path = "fake-libxenstat/fake.rs"]
mod fake;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::prometheus::Prometheus;
use common::xenstored::StandIn;
use common::Exporter;
use xen_exporter::testing::MemoryStore;

const Q0: &str = include_str!("fixtures/debugfs/xen-netback/vif1.0/io_ring_q0");

/// The vifs the fake's two synthetic domains have.
const VIFS: [&str; 4] = ["vif0.0", "vif0.1", "vif1.0", "vif1.1"];

/// A debugfs root whose `xen-netback/<vif>/io_ring_q0..q1` are the captured text, mode 0600
/// as netback creates them. Returns the root and every queue file.
fn debugfs_tree(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for vif in VIFS {
        let dir = root.join("xen-netback").join(vif);
        std::fs::create_dir_all(&dir).expect("mkdir");
        for id in 0..2 {
            let file = dir.join(format!("io_ring_q{id}"));
            std::fs::write(&file, Q0.replacen("Queue 0", &format!("Queue {id}"), 1))
                .expect("write queue");
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            files.push(file);
        }
    }
    files
}

/// What the exporter needs besides debugfs: the fake library, a stand-in xenstored, an empty
/// sysfs. `None` (after a skip message) when libxenstore is not installed.
struct Host {
    lib: fake::FakeLib,
    standin: StandIn,
    root: tempfile::TempDir,
}

impl Host {
    fn new(test: &str) -> Option<Host> {
        if let Err(error) = xenstat_sys::Libxenstore::load(None) {
            common::skip(test, &format!("install libxen-dev: {error}"));
            return None;
        }
        let root = common::temp_dir();
        std::fs::create_dir_all(root.path().join("sys")).expect("sysfs");
        Some(Host {
            lib: fake::build(&[]),
            standin: StandIn::start(MemoryStore::new()),
            root,
        })
    }

    fn start(&self, wrapper: &[&str], debugfs: &Path) -> Exporter {
        let socket = self.standin.socket().display().to_string();
        Exporter::start_wrapped(
            wrapper,
            &[
                "--xen.source=libxenstat",
                &format!("--xen.library={}", self.lib.path.display()),
                &format!("--path.sysfs={}", self.root.path().join("sys").display()),
                &format!("--path.debugfs={}", debugfs.display()),
            ],
            &[
                ("XENSTORED_PATH", socket.as_str()),
                ("FAKE_XENSTAT_DOMAINS", "2"),
            ],
        )
    }
}

/// The value of `metric{...device="<device>"...}`, if there is one sample.
fn by_device(text: &str, metric: &str, device: &str) -> Option<f64> {
    let wanted = format!("device=\"{device}\"");
    text.lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")) && line.contains(&wanted))
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
}

fn success(text: &str, collector: &str) -> Option<f64> {
    let prefix = format!("xen_exporter_collector_success{{collector=\"{collector}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix)?.parse().ok())
}

/// `inotifywait -m -r` on a tree: every event, as (event names, path).
struct Watch {
    child: Child,
    events: Arc<Mutex<Vec<(String, String)>>>,
}

impl Watch {
    fn start(inotifywait: &Path, tree: &Path) -> Watch {
        let mut child = Command::new(inotifywait)
            .args(["-m", "-r", "--format", "%e|%w%f"])
            .arg(tree)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start inotifywait");
        let stdout = child.stdout.take().expect("piped");
        let events = Arc::new(Mutex::new(Vec::new()));
        {
            let events = events.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some((kinds, path)) = line.split_once('|') {
                        events
                            .lock()
                            .expect("events")
                            .push((kinds.to_owned(), path.to_owned()));
                    }
                }
            });
        }
        // inotifywait says "Watches established." on stderr once every watch is in place.
        let mut stderr = BufReader::new(child.stderr.take().expect("piped"));
        let mut line = String::new();
        while stderr.read_line(&mut line).expect("inotifywait stderr") > 0 {
            if line.contains("Watches established") {
                break;
            }
        }
        assert!(
            line.contains("Watches established"),
            "inotifywait did not start: {line}"
        );
        Watch { child, events }
    }

    fn events(&self) -> Vec<(String, String)> {
        self.events.lock().expect("events").clone()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// As root: `setpriv` dropping every capability but CAP_NET_RAW, as the shipped systemd unit's
/// CapabilityBoundingSet does, so root is held to mode bits like any user (no CAP_DAC_OVERRIDE,
/// no CAP_DAC_READ_SEARCH). As another user: nothing, mode bits already apply.
fn without_dac_override(test: &str) -> Option<Vec<String>> {
    if !common::is_root() {
        return Some(Vec::new());
    }
    let setpriv = common::tool(test, "setpriv")?;
    Some(vec![
        setpriv.display().to_string(),
        "--bounding-set=-all,+net_raw".to_owned(),
        "--inh-caps=-all".to_owned(),
        "--".to_owned(),
    ])
}

/// A full scrape (start, two `/metrics`, stop) never writes to debugfs: under inotify the tree
/// sees opens, reads and closes of files opened read-only, and nothing else. The opens must be
/// seen on every queue file, so the test fails if the watch saw nothing.
#[test]
fn a_full_scrape_never_writes_to_debugfs() {
    let test = "a_full_scrape_never_writes_to_debugfs";
    let Some(inotifywait) = common::tool(test, "inotifywait") else {
        return;
    };
    let Some(host) = Host::new(test) else {
        return;
    };
    let debugfs = common::temp_dir();
    let files = debugfs_tree(debugfs.path());
    let watch = Watch::start(&inotifywait, debugfs.path());
    {
        let exporter = host.start(&[], debugfs.path());
        for _ in 0..2 {
            let text = exporter.get("/metrics").text();
            assert_eq!(success(&text, "rings"), Some(1.0), "{text}");
            for vif in VIFS {
                assert_eq!(by_device(&text, "xen_vif_queues", vif), Some(2.0), "{vif}");
            }
        }
    }
    let closed_everywhere = || {
        let events = watch.events();
        files
            .iter()
            .all(|file| {
                let file = file.display().to_string();
                let seen = |kind: &str| {
                    events
                        .iter()
                        .any(|(kinds, path)| *path == file && kinds.split(',').any(|k| k == kind))
                };
                seen("OPEN") && seen("CLOSE_NOWRITE")
            })
            .then_some(events)
    };
    let events = common::poll(Duration::from_secs(10), closed_everywhere).unwrap_or_else(|| {
        panic!(
            "inotify did not see every queue file opened and closed: {:?}",
            watch.events()
        )
    });
    let allowed: BTreeSet<&str> = ["OPEN", "ACCESS", "CLOSE_NOWRITE", "CLOSE", "ISDIR"].into();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for (names, path) in &events {
        for name in names.split(',') {
            assert!(
                allowed.contains(name),
                "{name} on {path}: the exporter changed debugfs (all events: {events:?})"
            );
            *kinds.entry(name.to_owned()).or_default() += 1;
        }
    }
    eprintln!("inotify events on debugfs during the scrape: {kinds:?}");
}

/// One vif's queue files are unreadable (mode 0000: with root's CAP_DAC_OVERRIDE and
/// CAP_DAC_READ_SEARCH dropped, as the shipped systemd unit's CapabilityBoundingSet does, root
/// is held to mode bits too), another vif's second queue vanished after listing (a dangling
/// entry). Those two vifs get no queue series and the rings part fails naming the first; the
/// other vifs and every vif's counters are served.
#[test]
fn unreadable_and_vanished_vifs_fail_alone() {
    let test = "unreadable_and_vanished_vifs_fail_alone";
    let Some(wrapper) = without_dac_override(test) else {
        return;
    };
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let Some(host) = Host::new(test) else {
        return;
    };
    let debugfs = common::temp_dir();
    debugfs_tree(debugfs.path());
    let netback = debugfs.path().join("xen-netback");
    for id in 0..2 {
        let file = netback.join(format!("vif0.1/io_ring_q{id}"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    }
    let vanished = netback.join("vif1.0/io_ring_q1");
    std::fs::remove_file(&vanished).expect("remove");
    std::os::unix::fs::symlink(netback.join("vif1.0/gone"), &vanished).expect("symlink");

    let exporter = host.start(&wrapper, debugfs.path());
    let text = exporter.get("/metrics").text();
    assert_eq!(success(&text, "xen"), Some(1.0), "{text}");
    assert_eq!(success(&text, "rings"), Some(0.0), "{text}");
    for vif in ["vif0.0", "vif1.1"] {
        assert_eq!(
            by_device(&text, "xen_vif_queues", vif),
            Some(2.0),
            "{vif}: {text}"
        );
    }
    for vif in ["vif0.1", "vif1.0"] {
        assert_eq!(
            by_device(&text, "xen_vif_queues", vif),
            None,
            "{vif}: {text}"
        );
        assert_eq!(
            by_device(&text, "xen_vif_ring_entries", vif),
            None,
            "no half a vif: {text}"
        );
    }
    for vif in VIFS {
        assert!(
            by_device(&text, "xen_vif_receive_bytes_total", vif).is_some(),
            "{vif}'s counters are served: {text}"
        );
    }
    let logs = exporter.logs();
    assert!(
        logs.contains("vif0.1/io_ring_q") && logs.contains("Permission denied"),
        "the log names the unreadable file:\n{logs}"
    );
}

/// debugfs not mounted: one line, before the exporter listens, says how to mount it; scrapes
/// report the rings part failed without repeating the line.
#[test]
fn missing_debugfs_is_told_once_at_start() {
    let Some(host) = Host::new("missing_debugfs_is_told_once_at_start") else {
        return;
    };
    let empty = common::temp_dir();
    let exporter = host.start(&[], empty.path());
    let hint = |logs: &str| -> Vec<usize> {
        logs.lines()
            .enumerate()
            .filter(|(_, line)| line.contains("mount -t debugfs"))
            .map(|(index, _)| index)
            .collect()
    };
    let logs = exporter.logs();
    let listening = logs
        .lines()
        .position(|line| line.contains("msg=listening"))
        .expect("listening line");
    let before = hint(&logs);
    assert_eq!(before.len(), 1, "one hint at start:\n{logs}");
    assert!(before[0] < listening, "before listening:\n{logs}");
    for _ in 0..3 {
        let text = exporter.get("/metrics").text();
        assert_eq!(success(&text, "rings"), Some(0.0), "{text}");
        assert_eq!(success(&text, "xen"), Some(1.0), "{text}");
    }
    let logs = exporter.logs();
    assert_eq!(
        hint(&logs).len(),
        1,
        "still one line after scrapes:\n{logs}"
    );
}

/// blkback zeroes a VBD's counters when its rings reconnect (and every 10 s with `log_stats`).
/// The exporter passes the kernel's value through as a counter, so a real Prometheus scraping it
/// sees the value go down, counts one reset, and never computes a negative rate.
#[test]
fn blkback_counter_reset_is_a_reset_to_prometheus() {
    let test = "blkback_counter_reset_is_a_reset_to_prometheus";
    let Some(binary) = common::tool(test, "prometheus") else {
        return;
    };
    let lib = fake::build(&[]);
    let root = common::temp_dir();
    // The capture's one blkback VBD: labdomu (domid 1), xvda (51712).
    let stats = root
        .path()
        .join("sys/bus/xen-backend/devices/vbd-1-51712/statistics");
    std::fs::create_dir_all(&stats).expect("mkdir");
    let write = |value: u64| {
        for name in [
            "oo_req", "rd_req", "wr_req", "rd_sect", "wr_sect", "f_req", "ds_req",
        ] {
            std::fs::write(stats.join(name), format!("{value}\n")).expect("write counter");
        }
    };
    write(1000);
    std::fs::create_dir_all(root.path().join("debug")).expect("mkdir");
    let exporter = Exporter::start(&[
        "--xen.source=libxenstat",
        &format!("--xen.library={}", lib.path.display()),
        &format!("--path.sysfs={}", root.path().join("sys").display()),
        &format!("--path.debugfs={}", root.path().join("debug").display()),
    ]);
    let prometheus = Prometheus::scraping(&binary, exporter.address);
    let oo = "xen_vbd_out_of_requests_total{domain=\"labdomu\",device=\"xvda\"}";
    assert!(
        prometheus.wait_for_series(&format!("{oo} == 1000"), Duration::from_secs(30)),
        "Prometheus never scraped the first value: {}",
        prometheus.query(oo)
    );
    // Let a second sample at 1000 land, then the rings reconnect: blkback starts from zero.
    assert!(prometheus.wait_for_series(
        &format!("count_over_time({oo}[1m]) >= 2"),
        Duration::from_secs(10)
    ));
    write(5);
    assert!(
        prometheus.wait_for_series(&format!("{oo} == 5"), Duration::from_secs(10)),
        "the value that went down reached Prometheus: {}",
        prometheus.query(oo)
    );
    assert_eq!(
        prometheus.series_count(&format!("resets({oo}[1m]) == 1")),
        1,
        "one counter reset: {}",
        prometheus.query(&format!("resets({oo}[1m])"))
    );
    assert_eq!(
        prometheus.series_count(&format!("rate({oo}[1m]) > 0")),
        1,
        "the rate after a reset counts the 5 new requests, it is not negative: {}",
        prometheus.query(&format!("rate({oo}[1m])"))
    );
}

/// debugfs mounted but not readable (mode 0700, owned by another user, as `/sys/kernel/debug` is
/// to a non-root exporter): the line at start says it needs root, not how to mount it.
#[test]
fn unreadable_debugfs_says_it_needs_root() {
    let test = "unreadable_debugfs_says_it_needs_root";
    let Some(wrapper) = without_dac_override(test) else {
        return;
    };
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let Some(host) = Host::new(test) else {
        return;
    };
    let root = common::temp_dir();
    let debugfs = root.path().join("debug");
    debugfs_tree(&debugfs);
    if common::is_root() {
        std::os::unix::fs::chown(&debugfs, Some(65534), Some(65534)).expect("chown");
        std::fs::set_permissions(&debugfs, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    } else {
        std::fs::set_permissions(&debugfs, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    }
    let exporter = host.start(&wrapper, &debugfs);
    let text = exporter.get("/metrics").text();
    assert_eq!(success(&text, "rings"), Some(0.0), "{text}");
    let logs = exporter.logs();
    let lines = logs
        .lines()
        .filter(|line| line.contains("readable by root only"))
        .count();
    assert_eq!(lines, 1, "one line says what is wrong:\n{logs}");
    assert!(!logs.contains("mount -t debugfs"), "{logs}");
    // Let the temp dir be removed again.
    std::fs::set_permissions(&debugfs, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// VBD ring geometry under the xenstore watch, through the real libxenstore: once the first
/// scrapes have read it, scrapes send xenstored nothing at all; then guest-0001 reconnects
/// `xvdb` with 8 pages (the backend's state moves, the frontend writes its new order) and the
/// next scrape serves the new geometry, having read that device alone.
#[test]
fn a_reconnected_vbd_is_served_anew_with_no_request_in_the_steady_state() {
    let test = "a_reconnected_vbd_is_served_anew_with_no_request_in_the_steady_state";
    let Some(host) = Host::new(test) else {
        return;
    };
    let standin = &host.standin;
    let disks = [51712u32, 51728, 51744, 51760];
    for domid in [0, 1] {
        standin.write(
            &format!("/local/domain/{domid}/vm"),
            &format!("/vm/00000000-0000-4000-8000-00000000000{domid}"),
        );
    }
    for devno in disks {
        standin.write(&format!("/local/domain/0/backend/vbd/1/{devno}/state"), "4");
        standin.write(
            &format!("/local/domain/1/device/vbd/{devno}/ring-page-order"),
            "1",
        );
    }
    let debugfs = common::temp_dir();
    debugfs_tree(debugfs.path());
    let exporter = host.start(&[], debugfs.path());
    let pages = |text: &str, disk: &str| {
        let device = format!("device=\"{disk}\"");
        text.lines()
            .filter(|line| line.starts_with("xen_vbd_ring_pages{"))
            .filter(|line| line.contains("domain=\"guest-0001\"") && line.contains(&device))
            .find_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
    };
    for _ in 0..2 {
        let text = exporter.get("/metrics").text();
        assert_eq!(pages(&text, "xvdb"), Some(2.0), "{text}");
    }
    let requests = || standin.seen.lock().expect("seen").len();
    let before = requests();
    for _ in 0..5 {
        let text = exporter.get("/metrics").text();
        assert_eq!(success(&text, "rings"), Some(1.0), "{text}");
        assert_eq!(pages(&text, "xvdc"), Some(2.0), "{text}");
    }
    assert_eq!(requests() - before, 0, "requests in 5 steady-state scrapes");
    assert_eq!(standin.watches(), 1, "{}", exporter.logs());

    let backend = "/local/domain/0/backend/vbd/1/51728";
    standin.write(&format!("{backend}/state"), "5");
    standin.write("/local/domain/1/device/vbd/51728/ring-page-order", "3");
    standin.write(&format!("{backend}/state"), "4");
    // The events are on the exporter's socket; its libxenstore thread queues them at once.
    std::thread::sleep(Duration::from_millis(100));
    let before = requests();
    let text = exporter.get("/metrics").text();
    assert_eq!(pages(&text, "xvdb"), Some(8.0), "{text}");
    assert_eq!(pages(&text, "xvda"), Some(2.0), "{text}");
    let reread = requests() - before;
    assert!(
        (1..=5).contains(&reread),
        "xvdb alone read again: {reread} requests"
    );
}
