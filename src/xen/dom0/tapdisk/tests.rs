//! Tests of the tapdisk3 reader on fixture trees built from blktap's formats: a `vbd3` host with
//! good, wrong-version, truncated, stale, symlinked and dead-tapdisk cases.

use std::os::unix::fs::{symlink, PermissionsExt};

use super::*;
use crate::xen::dom0::xenstore::MemoryStore;
use crate::xen::model::Domain;

fn stats(seed: u64) -> RawStats {
    RawStats {
        version: STATS_VERSION,
        oo_reqs: 0,
        read_reqs_submitted: seed * 100 + 2,
        read_reqs_completed: seed * 100,
        read_sectors: seed * 800,
        read_total_ticks: seed * 1_500_000,
        write_reqs_submitted: seed * 50 + 7,
        write_reqs_completed: seed * 50,
        write_sectors: seed * 400,
        write_total_ticks: seed * 250_000,
        io_errors: seed,
        flags: 0,
    }
}

const RING: &str =
    "nr_ents 32\nreq prod 1000 cons 995 event 1001\nrsp prod 990 pvt 995 event 991\n";

/// A Dom0 tree under `root`: `sys/`, `proc/`, `shm/`, owned by whoever runs the test.
struct Tree {
    root: tempfile::TempDir,
    sys: PathBuf,
    shm: PathBuf,
    proc: PathBuf,
}

impl Tree {
    fn new() -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        // proc/1: this procfs shows other processes, so a dead tapdisk can be told.
        for dir in ["sys/bus/xen-backend/devices", "proc/1", "shm"] {
            std::fs::create_dir_all(root.path().join(dir)).expect("mkdir");
        }
        Self {
            sys: root.path().join("sys"),
            shm: root.path().join("shm"),
            proc: root.path().join("proc"),
            root,
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    fn device(&self, name: &str) -> &Self {
        std::fs::create_dir_all(self.path(&format!("sys/bus/xen-backend/devices/{name}")))
            .expect("mkdir");
        self
    }

    fn live(&self, pid: u32) -> &Self {
        std::fs::create_dir_all(self.path(&format!("proc/{pid}"))).expect("mkdir");
        self
    }

    /// Writes `bytes` as tapdisk would: 0600 in a 0700 directory.
    fn file(&self, relative: &str, bytes: &[u8]) -> &Self {
        let path = self.path(&format!("shm/{relative}"));
        let dir = path.parent().expect("has a parent");
        std::fs::create_dir_all(dir).expect("mkdir");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        std::fs::write(&path, bytes).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        self
    }

    fn owner(&self) -> u32 {
        std::fs::metadata(self.root.path()).expect("stat").uid()
    }

    fn reader<'a>(&'a self, store: Option<&'a dyn XenStore>) -> Tapdisk<'a> {
        Tapdisk {
            sysfs: &self.sys,
            shm: &self.shm,
            procfs: &self.proc,
            store,
            owner: self.owner(),
        }
    }
}

fn host(domids: &[u32]) -> Host {
    Host {
        domains: domids
            .iter()
            .map(|&domid| Domain {
                domid,
                name: format!("vm{domid}"),
                ..Domain::default()
            })
            .collect(),
        ..Host::default()
    }
}

fn vbd(host: &Host, domid: u32, devid: u32) -> &Vbd {
    host.domains
        .iter()
        .find(|domain| domain.domid == domid)
        .and_then(|domain| domain.vbds.iter().find(|vbd| vbd.devno == devid))
        .unwrap_or_else(|| panic!("no vbd {domid}/{devid}"))
}

/// The whole `vbd3` host of the issue: every bad case fails alone with its reason, and every
/// good device is served in full.
fn vbd3_host() -> (Tree, MemoryStore) {
    let tree = Tree::new();
    for device in [
        "vbd3-1-768",
        "vbd3-1-832",
        "vbd3-1-5696",
        "vbd3-2-768",
        "vbd3-2-832",
        "vbd3-3-768",
        "vbd3-4-768",
        "vbd3-9-768",
        "vbd-1-51712",
        "vif-1-0",
    ] {
        tree.device(device);
    }
    tree.live(100).live(200);
    let mut wrong_version = stats(5);
    wrong_version.version = 2;
    tree.file("td3-100/vbd-1-768", &stats(1).encode())
        .file("td3-100/vbd-1-832", &stats(2).encode())
        .file("td3-100/vbd-2-768", &wrong_version.encode())
        .file("td3-200/vbd-2-832", &stats(3).encode()[..40])
        // A tapdisk that died (no /proc/300) left its directory: frozen numbers, not used.
        .file("td3-300/vbd-1-768", &stats(99).encode())
        .file("vbd3-1-768/io_ring", &io_ring::encode(RING));
    let mut bad_crc = io_ring::encode(RING);
    bad_crc[12] ^= 1;
    tree.file("vbd3-1-832/io_ring", &bad_crc);
    symlink(
        tree.path("shm/td3-100/vbd-1-768"),
        tree.path("shm/td3-200/vbd-3-768"),
    )
    .expect("symlink");
    let mut store = MemoryStore::new();
    let backend = "/local/domain/0/backend/vbd3";
    store.insert(format!("{backend}/1/832/kthread-pid"), "100");
    store.insert(format!("{backend}/4/768/kthread-pid"), "4242");
    store.insert(format!("{backend}/1/768/max-ring-page-order"), "3");
    store.insert("/local/domain/1/device/vbd/768/ring-page-order", "2");
    store.insert(
        format!("{backend}/1/768/params"),
        "/dev/sm/backend/ac70e429-0dec-3ccd-1d24-2713c6104b65/903c4b1f-e16d-444d-a147-d75ee548d219",
    );
    store.insert(
        format!("{backend}/1/768/sm-data/vdi-uuid"),
        "903c4b1f-e16d-444d-a147-d75ee548d219",
    );
    (tree, store)
}

#[test]
fn parses_version_1_and_refuses_others() {
    let raw = stats(3);
    assert_eq!(parse_stats(&raw.encode()), Ok(raw));
    assert_eq!(parse_stats(&raw.encode()[..STATS_BYTES]), Ok(raw));
    assert_eq!(
        parse_stats(&raw.encode()[..95]),
        Err(StatsError::Truncated(95))
    );
    let mut other = raw;
    other.version = 0;
    assert_eq!(parse_stats(&other.encode()), Err(StatsError::Version(0)));
}

/// Offsets from blktap's `struct stats`: version at 0, oo_reqs at 8, ... flags at 88.
#[test]
fn field_offsets_are_blktaps() {
    let mut bytes = vec![0u8; 4096];
    bytes[0] = 1;
    for (index, offset) in (8..96).step_by(8).enumerate() {
        bytes[offset] = index as u8 + 10;
    }
    let raw = parse_stats(&bytes).expect("version 1");
    assert_eq!(
        [
            raw.oo_reqs,
            raw.read_reqs_submitted,
            raw.read_reqs_completed,
            raw.read_sectors,
            raw.read_total_ticks,
            raw.write_reqs_submitted,
            raw.write_reqs_completed,
            raw.write_sectors,
            raw.write_total_ticks,
            raw.io_errors,
            raw.flags
        ],
        [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
    );
}

#[test]
fn a_vbd3_host_every_bad_case_fails_alone() {
    let (tree, store) = vbd3_host();
    let reader = tree.reader(Some(&store));
    let mut host = host(&[0, 1, 2, 3, 4]);
    let mut cache = TapdiskCache::default();
    let report = reader.read_host(&mut host, &mut cache);
    let failures: Vec<String> = report.failures.iter().map(ToString::to_string).collect();
    // xvdb is read but counts as a failure: its io_ring is bad.
    assert_eq!((report.read, report.without_stats), (1, 1), "{failures:#?}");

    // Found by scan (no kthread-pid), the dead tapdisk's directory skipped.
    let xvda = vbd(&host, 1, 768);
    assert_eq!(xvda.backend, VbdBackend::Tapdisk3);
    assert_eq!((xvda.read_requests, xvda.write_requests), (100, 50));
    assert_eq!((xvda.read_sectors, xvda.write_sectors), (800, 400));
    let tapdisk = xvda.tapdisk.as_ref().expect("tapdisk stats");
    assert_eq!(tapdisk.read_time, Duration::from_millis(1_500));
    assert_eq!(tapdisk.write_time, Duration::from_millis(250));
    assert_eq!(
        (tapdisk.read_requests_submitted, tapdisk.io_errors),
        (102, 1)
    );
    let ring = xvda.io_ring.as_ref().expect("io_ring");
    assert_eq!(ring.indexes.requests_outstanding, 5);
    assert!(ring.age < Duration::from_secs(60), "{:?}", ring.age);
    let geometry = xvda.ring.as_ref().expect("geometry");
    assert_eq!(
        (geometry.queues, geometry.pages, geometry.max_pages),
        (1, 4, Some(8))
    );
    let storage = xvda.storage.as_ref().expect("storage");
    assert_eq!(
        storage.sr_uuid.as_deref(),
        Some("ac70e429-0dec-3ccd-1d24-2713c6104b65")
    );
    assert_eq!(
        storage.vdi_uuid.as_deref(),
        Some("903c4b1f-e16d-444d-a147-d75ee548d219")
    );

    // Found through kthread-pid; its io_ring has a bad CRC: counters served, occupancy not.
    let xvdb = vbd(&host, 1, 832);
    assert_eq!(xvdb.read_requests, 200);
    assert!(xvdb.io_ring.is_none());
    // The empty CD drive: a backend, no tapdisk.
    let cd = vbd(&host, 1, 5696);
    assert_eq!(cd.backend, VbdBackend::Tapdisk3);
    assert!(cd.tapdisk.is_none());

    let expect = |needle: &str| {
        assert!(
            failures.iter().any(|failure| failure.contains(needle)),
            "{needle} in {failures:#?}"
        )
    };
    expect("io_ring: CRC mismatch");
    expect("td3-100/vbd-2-768: struct stats version 2");
    expect("td3-200/vbd-2-832: 40 bytes, expected 96 to 65536 (truncated");
    expect("td3-200/vbd-3-768: a symbolic link, not followed");
    expect("vbd3-4-768: its tapdisk 4242 (xenstore kthread-pid) is not running");
    assert_eq!(failures.len(), 5, "{failures:#?}");
    for (domid, devid) in [(2, 768), (2, 832), (3, 768)] {
        assert!(vbd(&host, domid, devid).tapdisk.is_none());
    }
    assert!(!host.domains.iter().any(|domain| domain.domid == 9));
    assert_eq!(
        host.domains[1].vbds.len(),
        3,
        "blkback's vbd-1-51712 is not ours"
    );
}

/// Keys are read once per device life; the tapdisk's pid is kept while it lives.
#[test]
fn keys_are_read_once_and_a_vanished_device_is_forgotten() {
    let (tree, mut store) = vbd3_host();
    let mut cache = TapdiskCache::default();
    tree.reader(Some(&store))
        .read_host(&mut host(&[1]), &mut cache);
    store.insert("/local/domain/1/device/vbd/768/ring-page-order", "0");
    let mut second = host(&[1]);
    tree.reader(Some(&store)).read_host(&mut second, &mut cache);
    assert_eq!(vbd(&second, 1, 768).ring.as_ref().map(|r| r.pages), Some(4));
    assert!(cache.known.contains_key(&(1, 768)));
    std::fs::remove_dir(tree.path("sys/bus/xen-backend/devices/vbd3-1-768")).expect("rm");
    tree.reader(Some(&store))
        .read_host(&mut host(&[1]), &mut cache);
    assert!(!cache.known.contains_key(&(1, 768)));
}

#[test]
fn files_of_another_owner_or_writable_by_others_are_refused() {
    let (tree, store) = vbd3_host();
    let mut reader = tree.reader(Some(&store));
    reader.owner = tree.owner() + 1;
    let report = reader.read_host(&mut host(&[1]), &mut TapdiskCache::default());
    assert_eq!(report.read, 0);
    assert!(
        report.failures[0].to_string().contains("expected uid"),
        "{}",
        report.failures[0]
    );
    let reader = tree.reader(Some(&store));
    let file = tree.path("shm/td3-100/vbd-1-768");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o622)).expect("chmod");
    let mut host = host(&[1]);
    let report = reader.read_host(&mut host, &mut TapdiskCache::default());
    let failures: Vec<String> = report.failures.iter().map(ToString::to_string).collect();
    assert!(
        failures.iter().any(|f| f.contains("mode 622")),
        "{failures:#?}"
    );
    assert_eq!(vbd(&host, 1, 832).read_requests, 200, "the others serve");
}

/// Where procfs hides other processes (no PID 1 either), liveness is unknown: kthread-pid is
/// trusted rather than every disk failing as "not running".
#[test]
fn a_procfs_hiding_processes_does_not_fail_every_disk() {
    let (tree, store) = vbd3_host();
    std::fs::remove_dir(tree.path("proc/1")).expect("rm");
    std::fs::remove_dir(tree.path("proc/100")).expect("rm");
    let mut host = host(&[1]);
    let report = tree
        .reader(Some(&store))
        .read_host(&mut host, &mut TapdiskCache::default());
    assert_eq!(vbd(&host, 1, 832).read_requests, 200);
    assert!(
        !report
            .failures
            .iter()
            .any(|failure| failure.to_string().contains("not running")),
        "{:?}",
        report.failures
    );
}

#[test]
fn no_backend_bus_is_no_device() {
    let tree = Tree::new();
    std::fs::remove_dir_all(tree.path("sys/bus")).expect("rm");
    let report = tree
        .reader(None)
        .read_host(&mut host(&[0]), &mut TapdiskCache::default());
    assert!(report.failures.is_empty() && report.read == 0);
}

#[test]
fn names_and_params() {
    assert_eq!(vbd3_device("vbd3-10-5696"), Some((10, 5696)));
    for other in ["vbd-1-768", "vbd3-1", "vbd3-+1-2", "vbd3-1-2-3", "vbd3--1"] {
        assert_eq!(vbd3_device(other), None, "{other}");
    }
    assert_eq!(
        sm_params("/dev/sm/backend/ac70e429/903c4b1f-e16d"),
        Some(("ac70e429", "903c4b1f-e16d"))
    );
    assert_eq!(sm_params(""), None);
    assert_eq!(sm_params("/dev/sm/backend/a b/c"), None);
}
