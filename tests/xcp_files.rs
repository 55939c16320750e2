//! End to end through the binary on an XCP-ng-shaped Dom0: the fake libxenstat (which, like the
//! stock library on an Open vSwitch host, is not where the vif numbers come from), a stand-in
//! xenstored with XAPI's keys, and fixture trees under `--path.procfs`, `--path.sysfs` and
//! `--path.shm` built from the formats of docs/research (blktap 3.55's `struct stats` version 1,
//! `io_ring` with its CRC, `/proc/net/dev`). Good and bad tapdisk3 files side by side: every bad
//! one is refused with its reason in the log, the `tapdisk` part reports 0, and the rest of the
//! host is served.

mod common;
#[path = "fake-libxenstat/fake.rs"]
mod fake;

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use common::xenstored::StandIn;
use common::Exporter;
use xen_exporter::testing::{encode_io_ring, MemoryStore, TapdiskStatsFile};

const SR: &str = "ac70e429-0dec-3ccd-1d24-2713c6104b65";
const VDI: &str = "903c4b1f-e16d-444d-a147-d75ee548d219";

fn stats(seed: u64) -> TapdiskStatsFile {
    TapdiskStatsFile {
        version: 1,
        read_reqs_submitted: seed * 100 + 2,
        read_reqs_completed: seed * 100,
        read_sectors: seed * 800,
        read_total_ticks: seed * 1_500_000,
        write_reqs_submitted: seed * 50 + 9,
        write_reqs_completed: seed * 50,
        write_sectors: seed * 400,
        write_total_ticks: seed * 250_000,
        io_errors: seed,
        flags: 1,
        ..TapdiskStatsFile::default()
    }
}

/// Writes `bytes` as tapdisk does: 0600 in a 0700 directory.
fn private_file(path: &Path, bytes: &[u8]) {
    let dir = path.parent().expect("a parent");
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::fs::write(path, bytes).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// The Dom0 tree: labdomu (domid 1) has its blkback `xvda` (from the capture), a vif and the
/// emulated NIC's tap, and four vbd3 disks: `hda` good (found through the scan), `hdb` of a
/// version this exporter does not know (found through kthread-pid), `hdc` a symlink planted
/// where its stats file should be, `hdd` only in a dead tapdisk's stale directory.
fn tree(root: &Path) {
    let devices = root.join("sys/bus/xen-backend/devices");
    let blkback = devices.join("vbd-1-51712/statistics");
    std::fs::create_dir_all(&blkback).expect("mkdir");
    for (file, value) in [
        ("ds_req", 0),
        ("f_req", 0),
        ("oo_req", 0),
        ("rd_req", 515),
        ("rd_sect", 65560),
        ("wr_req", 512),
        ("wr_sect", 65536),
    ] {
        std::fs::write(blkback.join(file), format!("{value}\n")).expect("write");
    }
    for device in ["vbd3-1-768", "vbd3-1-832", "vbd3-1-5632", "vbd3-1-5696"] {
        std::fs::create_dir_all(devices.join(device)).expect("mkdir");
    }
    let proc = root.join("proc");
    std::fs::create_dir_all(proc.join("1/net")).expect("mkdir");
    std::fs::create_dir_all(proc.join("100")).expect("mkdir");
    std::fs::write(
        proc.join("1/net/dev"),
        "Inter-|   Receive                                                |  Transmit\n \
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n\
         \x20   lo:  100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n\
         xenbr0: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n\
         vif1.0: 5000 50 0 1 0 0 0 0 7000 70 0 2 0 0 0 0\n\
         tap1.0: 300 3 0 0 0 0 0 0 400 4 0 0 0 0 0 0\n",
    )
    .expect("write net/dev");
    let shm = root.join("shm");
    private_file(&shm.join("td3-100/vbd-1-768"), &stats(1).encode());
    let mut unknown = stats(2);
    unknown.version = 2;
    private_file(&shm.join("td3-100/vbd-1-832"), &unknown.encode());
    // A dead tapdisk (no /proc/300) left its directory behind.
    private_file(&shm.join("td3-300/vbd-1-5696"), &stats(9).encode());
    symlink(
        shm.join("td3-100/vbd-1-768"),
        shm.join("td3-100/vbd-1-5632"),
    )
    .expect("symlink");
    private_file(
        &shm.join("vbd3-1-768/io_ring"),
        &encode_io_ring(
            "nr_ents 32\nreq prod 1005 cons 1000 event 1006\nrsp prod 1000 pvt 1000 event 1001\n",
        ),
    );
}

fn store() -> MemoryStore {
    let mut store = MemoryStore::new();
    let backend = "/local/domain/0/backend/vbd3/1";
    store.insert(format!("{backend}/832/kthread-pid"), "100");
    store.insert(format!("{backend}/768/max-ring-page-order"), "3");
    store.insert(
        format!("{backend}/768/params"),
        format!("/dev/sm/backend/{SR}/{VDI}"),
    );
    store.insert(format!("{backend}/768/sm-data/vdi-uuid"), VDI);
    store.insert("/local/domain/1/device/vbd/768/ring-page-order", "2");
    store.insert("/local/domain/1/memory/target", "131072");
    store.insert("/local/domain/1/data/meminfo_free", "65536");
    store.insert(
        "/local/domain/1/vm",
        "/vm/eb662a76-9bab-ea20-a456-cbd6e192d9b4",
    );
    store
}

/// The exporter on the fake libxenstat, a stand-in xenstored and the tree (changed by
/// `adjust` before the start), run through `wrapper`.
fn start(
    wrapper: &[&str],
    adjust: impl FnOnce(&Path),
) -> (StandIn, fake::FakeLib, tempfile::TempDir, Exporter) {
    let standin = StandIn::start(store());
    let socket = standin.socket().display().to_string();
    let lib = fake::build(&[]);
    let root = common::temp_dir();
    tree(root.path());
    adjust(root.path());
    let path = |name: &str| root.path().join(name).display().to_string();
    let exporter = Exporter::start_wrapped(
        wrapper,
        &[
            "--xen.source=libxenstat",
            &format!("--xen.library={}", lib.path.display()),
            &format!("--path.sysfs={}", path("sys")),
            &format!("--path.procfs={}", path("proc")),
            &format!("--path.shm={}", path("shm")),
            &format!("--path.debugfs={}", path("debug")),
        ],
        &[("XENSTORED_PATH", socket.as_str())],
    );
    (standin, lib, root, exporter)
}

/// What tapdisk really makes: `vbd3-<d>-<n>` is mode 0600, no search bit. Root held to mode
/// bits (the shipped unit's capabilities: CAP_NET_RAW only) cannot reach `io_ring`; the log says
/// which capability is missing, and the counters are still served.
#[test]
fn io_ring_behind_a_0600_directory_names_the_capability() {
    let test = "io_ring_behind_a_0600_directory_names_the_capability";
    if !common::is_root() {
        common::skip(test, "tapdisk's files must be root's: run as root");
        return;
    }
    if xenstat_sys::Libxenstore::load(None).is_err() {
        common::skip(test, "install libxen-dev");
        return;
    }
    let Some(setpriv) = common::tool(test, "setpriv") else {
        return;
    };
    let setpriv = setpriv.display().to_string();
    let wrapper = [
        setpriv.as_str(),
        "--bounding-set=-all,+net_raw",
        "--inh-caps=-all",
        "--",
    ];
    let (_standin, _lib, _root, exporter) = start(&wrapper, |root| {
        let dir = root.join("shm/vbd3-1-768");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    });
    let text = exporter.get("/metrics").text();
    let hda = "domain=\"labdomu\",device=\"hda\"";
    assert_eq!(
        common::sample(&text, "xen_vbd_read_time_seconds_total", hda),
        Some(1.5),
        "{text}"
    );
    assert_eq!(
        common::sample(&text, "xen_vbd_ring_requests_outstanding", hda),
        None
    );
    let logs = common::poll(std::time::Duration::from_secs(5), || {
        let logs = exporter.logs();
        logs.contains("CAP_DAC_READ_SEARCH").then_some(logs)
    });
    assert!(logs.is_some(), "{}", exporter.logs());
}

#[test]
fn an_xcp_ng_dom0_is_served_and_every_bad_file_fails_alone() {
    let test = "an_xcp_ng_dom0_is_served_and_every_bad_file_fails_alone";
    if !common::is_root() {
        common::skip(test, "tapdisk's files must be root's: run as root");
        return;
    }
    if let Err(error) = xenstat_sys::Libxenstore::load(None) {
        common::skip(test, &format!("install libxen-dev: {error}"));
        return;
    }
    let (_standin, _lib, _root, exporter) = start(&[], |_| {});
    let text = exporter.get("/metrics").text();
    let m = |metric: &str, labels: &str| {
        common::sample(&text, metric, labels)
            .unwrap_or_else(|| panic!("no {metric}{{{labels}}} in\n{text}"))
    };
    let part = |name: &str| {
        m(
            "xen_exporter_collector_success",
            &format!("collector=\"{name}\""),
        )
    };
    assert_eq!(part("xen"), 1.0);
    assert_eq!(part("vif"), 1.0);
    assert_eq!(part("memory"), 1.0);
    assert_eq!(part("vbd"), 1.0);
    assert_eq!(part("tapdisk"), 0.0, "hdb and hdc are refused");

    // vif counters from /proc/net/dev (the fake library says 1216), Dom0's view.
    let vif = "domain=\"labdomu\",device=\"vif1.0\"";
    assert_eq!(m("xen_vif_receive_bytes_total", vif), 5000.0);
    assert_eq!(m("xen_vif_transmit_bytes_total", vif), 7000.0);
    assert_eq!(m("xen_vif_transmit_drops_total", vif), 2.0);
    let tap = "domain=\"labdomu\",device=\"tap1.0\"";
    assert_eq!(m("xen_vif_receive_bytes_total", tap), 300.0);
    assert_eq!(m("xen_vif_info", &format!("{tap},kind=\"tap\"")), 1.0);

    // hda: tapdisk3's counters, ring and identity.
    let hda = "domain=\"labdomu\",device=\"hda\"";
    assert_eq!(
        m(
            "xen_vbd_info",
            &format!(
                "{hda},devno=\"768\",backend=\"tapdisk3\",sr_uuid=\"{SR}\",vdi_uuid=\"{VDI}\""
            )
        ),
        1.0
    );
    assert_eq!(m("xen_vbd_read_requests_total", hda), 100.0);
    assert_eq!(m("xen_vbd_read_requests_submitted_total", hda), 102.0);
    assert_eq!(m("xen_vbd_write_bytes_total", hda), 400.0 * 512.0);
    assert_eq!(m("xen_vbd_read_time_seconds_total", hda), 1.5);
    assert_eq!(m("xen_vbd_write_time_seconds_total", hda), 0.25);
    assert_eq!(m("xen_vbd_io_errors_total", hda), 1.0);
    assert_eq!(m("xen_vbd_low_memory_mode", hda), 1.0);
    assert_eq!(m("xen_vbd_ring_requests_outstanding", hda), 5.0);
    assert!(m("xen_vbd_ring_stats_age_seconds", hda) < 60.0);
    assert_eq!(m("xen_vbd_ring_capacity_requests", hda), 128.0, "4 pages");
    assert_eq!(m("xen_vbd_out_of_requests_total", hda), 0.0);

    // The refused and stale ones are listed, without tapdisk counters.
    for device in ["hdb", "hdc", "hdd"] {
        let labels = format!("domain=\"labdomu\",device=\"{device}\"");
        assert_eq!(
            m("xen_vbd_info", &format!("{labels},")),
            1.0,
            "{device} listed"
        );
        assert_eq!(
            common::sample(&text, "xen_vbd_read_time_seconds_total", &labels),
            None,
            "{device} has no tapdisk counters"
        );
    }

    // The rest of the host.
    let xvda = "domain=\"labdomu\",device=\"xvda\"";
    assert_eq!(m("xen_vbd_read_requests_total", xvda), 515.0);
    assert_eq!(
        m("xen_domain_memory_target_bytes", "domain=\"labdomu\""),
        128.0 * 1024.0 * 1024.0
    );
    assert_eq!(
        m("xen_domain_guest_memory_free_bytes", "domain=\"labdomu\""),
        64.0 * 1024.0 * 1024.0
    );
    assert_eq!(
        m(
            "xen_domain_info",
            "domain=\"labdomu\",domid=\"1\",uuid=\"eb662a76-9bab-ea20-a456-cbd6e192d9b4\""
        ),
        1.0
    );

    // The reason is logged (the first failing device), naming the file.
    let logs = common::poll(std::time::Duration::from_secs(5), || {
        let logs = exporter.logs();
        logs.contains("collector=tapdisk").then_some(logs)
    })
    .unwrap_or_else(|| exporter.logs());
    assert!(
        logs.contains("td3-100/vbd-1-832: struct stats version 2")
            || logs.contains("td3-100/vbd-1-5632: a symbolic link"),
        "{logs}"
    );
    assert!(logs.contains("2 of 4 vbd3 devices failed"), "{logs}");
}
