//! End to end through the binary: `--xen.source=libxenstat --xen.library=<fake libxenstat>`,
//! and `/metrics` must carry exactly what xentop showed in the lab capture (default-run,
//! Xen 4.17.7; tests/fake-libxenstat/xentop-batch-full.txt). Metric names are those of
//! metrics-plan (the collector's final list is the arbiter).

mod common;
#[path = "fake-libxenstat/fake.rs"]
mod fake;

use std::collections::BTreeSet;
use std::path::Path;

use common::xenstored::StandIn;
use common::Exporter;
use xen_exporter::testing::parse_io_ring;
use xen_exporter::testing::MemoryStore;

/// The value of the one sample of `metric` whose labels include every pair of `labels`.
fn value(text: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let matches: Vec<f64> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            &line[..name_end] == metric
                && labels
                    .iter()
                    .all(|(key, value)| line.contains(&format!("{key}=\"{value}\"")))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect();
    assert_eq!(
        matches.len(),
        1,
        "exactly one sample of {metric}{labels:?} expected, found {matches:?} in:\n{text}"
    );
    matches[0]
}

/// blkback's sysfs statistics of the capture (14-backend-statistics.txt), so a collector that
/// reads blkback counters from sysfs sees the same numbers as libxenstat.
fn sysfs_tree(root: &Path) {
    let stats = root.join("bus/xen-backend/devices/vbd-1-51712/statistics");
    std::fs::create_dir_all(&stats).expect("sysfs fixture");
    for (file, value) in [
        ("ds_req", "0"),
        ("f_req", "0"),
        ("oo_req", "0"),
        ("rd_req", "515"),
        ("rd_sect", "65560"),
        ("wr_req", "512"),
        ("wr_sect", "65536"),
    ] {
        std::fs::write(stats.join(file), format!("{value}\n")).expect("sysfs fixture file");
    }
}

/// The exporter on the fake libxenstat, blkback's sysfs counters of the capture, and an empty
/// debugfs (as when debugfs is not mounted).
fn start(library: &Path, root: &Path) -> Exporter {
    let debugfs = root.join("debug");
    std::fs::create_dir_all(&debugfs).expect("debugfs fixture");
    start_with(library, root, &debugfs, &[])
}

fn start_with(library: &Path, root: &Path, debugfs: &Path, env: &[(&str, &str)]) -> Exporter {
    let sysfs = root.join("sys");
    sysfs_tree(&sysfs);
    Exporter::start_with_env(
        &[
            "--xen.source=libxenstat",
            &format!("--xen.library={}", library.display()),
            &format!("--path.sysfs={}", sysfs.display()),
            &format!("--path.debugfs={}", debugfs.display()),
        ],
        env,
    )
}

/// The label sets (`domain`, `device`) of every sample of `metric`.
fn devices(text: &str, metric: &str) -> BTreeSet<(String, String)> {
    let label = |line: &str, key: &str| {
        let start = line.find(&format!("{key}=\""))? + key.len() + 2;
        let end = line[start..].find('"')? + start;
        Some(line[start..end].to_owned())
    };
    text.lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")))
        .filter_map(|line| Some((label(line, "domain")?, label(line, "device")?)))
        .collect()
}

#[test]
fn metrics_equal_the_captured_xentop_values() {
    let lib = fake::build(&[]);
    let root = common::temp_dir();
    let exporter = start(&lib.path, root.path());
    let response = exporter.get("/metrics");
    assert_eq!(response.status, 200);
    let text = response.text();
    let m = |metric: &str, labels: &[(&str, &str)]| value(&text, metric, labels);
    let dom0 = [("domain", "Domain-0")];
    let domu = [("domain", "labdomu")];
    let vif = [("domain", "labdomu"), ("device", "vif1.0")];
    let vbd = [("domain", "labdomu"), ("device", "xvda")];

    assert_eq!(m("xen_up", &[]), 1.0);
    assert_eq!(
        m("xen_exporter_collector_success", &[("collector", "xen")]),
        1.0
    );
    // xl info: nr_cpus 2, cpu_mhz 2299.999, total_memory 2047, free_memory 1256 (MiB).
    assert_eq!(m("xen_host_cpus", &[]), 2.0);
    assert_eq!(m("xen_host_cpu_frequency_hertz", &[]), 2_299_999_000.0);
    assert_eq!(m("xen_host_memory_total_bytes", &[]), 2047.0 * 1048576.0);
    assert_eq!(m("xen_host_memory_free_bytes", &[]), 1256.0 * 1048576.0);
    assert_eq!(m("xen_version_info", &[("version", "4.17.7")]), 1.0);
    assert_eq!(m("xen_domains", &[]), 2.0);

    // CPU(sec) 36 and 7 (xentop truncates; the fake holds 36.3 s and 7.1 s).
    assert_eq!(m("xen_domain_cpu_seconds_total", &dom0).trunc(), 36.0);
    assert_eq!(m("xen_domain_cpu_seconds_total", &domu).trunc(), 7.0);
    // VCPUS 2; VCPUs(sec) 0: 23s 1: 12s and 0: 4s 1: 2s.
    assert_eq!(m("xen_domain_vcpus", &dom0), 2.0);
    assert_eq!(m("xen_domain_vcpus", &domu), 2.0);
    for (labels, vcpu, secs) in [
        (&dom0, "0", 23.0),
        (&dom0, "1", 12.0),
        (&domu, "0", 4.0),
        (&domu, "1", 2.0),
    ] {
        let labels = [labels[0], ("vcpu", vcpu)];
        assert_eq!(m("xen_vcpu_cpu_seconds_total", &labels).trunc(), secs);
        assert_eq!(m("xen_vcpu_online", &labels), 1.0);
    }
    // MEM(k) 786432 / 131072, MAXMEM(k) 786432 / 132096.
    assert_eq!(m("xen_domain_memory_bytes", &dom0), 786_432.0 * 1024.0);
    assert_eq!(m("xen_domain_memory_max_bytes", &dom0), 786_432.0 * 1024.0);
    assert_eq!(m("xen_domain_memory_bytes", &domu), 131_072.0 * 1024.0);
    assert_eq!(m("xen_domain_memory_max_bytes", &domu), 132_096.0 * 1024.0);
    // STATE -----r and --b---.
    assert_eq!(m("xen_domain_state", &[dom0[0], ("state", "running")]), 1.0);
    assert_eq!(m("xen_domain_state", &[dom0[0], ("state", "blocked")]), 0.0);
    assert_eq!(m("xen_domain_state", &[domu[0], ("state", "blocked")]), 1.0);
    assert_eq!(m("xen_domain_state", &[domu[0], ("state", "running")]), 0.0);
    // Net0 RX: 1216 bytes 17 pkts 0 err 0 drop; TX: 1674 bytes 19 pkts 0 err 0 drop.
    assert_eq!(m("xen_vif_receive_bytes_total", &vif), 1216.0);
    assert_eq!(m("xen_vif_receive_packets_total", &vif), 17.0);
    assert_eq!(m("xen_vif_receive_errors_total", &vif), 0.0);
    assert_eq!(m("xen_vif_receive_drops_total", &vif), 0.0);
    assert_eq!(m("xen_vif_transmit_bytes_total", &vif), 1674.0);
    assert_eq!(m("xen_vif_transmit_packets_total", &vif), 19.0);
    assert_eq!(m("xen_vif_transmit_errors_total", &vif), 0.0);
    assert_eq!(m("xen_vif_transmit_drops_total", &vif), 0.0);
    // VBD BlkBack 51712 OO: 0 RD: 515 WR: 512 RSECT: 65560 WSECT: 65536.
    assert_eq!(
        m(
            "xen_vbd_info",
            &[vbd[0], vbd[1], ("devno", "51712"), ("backend", "blkback")]
        ),
        1.0
    );
    assert_eq!(m("xen_vbd_out_of_requests_total", &vbd), 0.0);
    assert_eq!(m("xen_vbd_read_requests_total", &vbd), 515.0);
    assert_eq!(m("xen_vbd_write_requests_total", &vbd), 512.0);
    assert_eq!(m("xen_vbd_read_bytes_total", &vbd), 65560.0 * 512.0);
    assert_eq!(m("xen_vbd_write_bytes_total", &vbd), 65536.0 * 512.0);
}

#[test]
fn no_hypervisor_serves_xen_up_0_and_everything_else() {
    let lib = fake::build(&["FAKE_INIT_FAIL"]);
    let root = common::temp_dir();
    let exporter = start(&lib.path, root.path());
    let response = exporter.get("/metrics");
    assert_eq!(response.status, 200);
    let text = response.text();
    assert_eq!(value(&text, "xen_up", &[]), 0.0);
    assert_eq!(
        value(
            &text,
            "xen_exporter_collector_success",
            &[("collector", "xen")]
        ),
        0.0
    );
    assert!(
        text.contains("xen_exporter_build_info"),
        "the rest keeps serving"
    );
    assert!(
        exporter.logs().contains("xenstat_init failed"),
        "one log line names the reason:\n{}",
        exporter.logs()
    );
}

#[test]
fn missing_debugfs_and_xenstore_fail_the_rings_part_only() {
    let lib = fake::build(&[]);
    let root = common::temp_dir();
    let exporter = start(&lib.path, root.path());
    let text = exporter.get("/metrics").text();
    let success = |collector| {
        value(
            &text,
            "xen_exporter_collector_success",
            &[("collector", collector)],
        )
    };
    assert_eq!(
        (success("xen"), success("vbd"), success("rings")),
        (1.0, 1.0, 0.0)
    );
    assert!(
        !text.contains("xen_vif_ring_entries"),
        "no ring series without debugfs"
    );
    assert_eq!(
        value(&text, "xen_vbd_read_requests_total", &[("device", "xvda")]),
        515.0
    );
    let logs = exporter.logs();
    assert!(
        logs.contains("mount -t debugfs"),
        "the log says how to fix it:\n{logs}"
    );
}

/// The whole ring path on real code: libxenstat (the fake, through dlopen) lists the domains,
/// the real libxenstore reads the captured ring geometry from a stand-in xenstored, and the
/// captured netback debugfs files give the queues. Every vif and VBD gets ring series with the
/// labels of its counters, with the values the parser reads from the same files.
#[test]
fn ring_series_join_the_hypervisor_series() {
    if let Err(error) = xenstat_sys::Libxenstore::load(None) {
        common::skip(
            "ring_series_join_the_hypervisor_series",
            &format!("install libxen-dev: {error}"),
        );
        return;
    }
    let captured = [
        include_str!("fixtures/xenstore/ringorder2/20-xenstore-backend-vbd.txt"),
        include_str!("fixtures/xenstore/ringorder2/22-xenstore-frontend-device.txt"),
    ]
    .join("\n");
    let standin = StandIn::start(MemoryStore::parse_ls_f(&captured));
    let socket = standin.socket().display().to_string();
    let lib = fake::build(&[]);
    let root = common::temp_dir();
    let debugfs = common::fixture("debugfs");
    let exporter = start_with(
        &lib.path,
        root.path(),
        &debugfs,
        &[("XENSTORED_PATH", socket.as_str())],
    );
    let text = exporter.get("/metrics").text();
    for collector in ["xen", "vbd", "rings"] {
        assert_eq!(
            value(
                &text,
                "xen_exporter_collector_success",
                &[("collector", collector)]
            ),
            1.0,
            "{collector}"
        );
    }
    assert_eq!(
        devices(&text, "xen_vif_queues"),
        devices(&text, "xen_vif_receive_bytes_total"),
        "a ring series for every vif, same labels"
    );
    assert_eq!(
        devices(&text, "xen_vbd_ring_capacity_requests"),
        devices(&text, "xen_vbd_read_requests_total"),
        "a ring series for every blkback VBD, same labels"
    );
    let vbd = [("domain", "labdomu"), ("device", "xvda")];
    // ring-page-order 2, multi-queue-num-queues 2, max-ring-page-order 4.
    assert_eq!(value(&text, "xen_vbd_ring_queues", &vbd), 2.0);
    assert_eq!(value(&text, "xen_vbd_ring_pages", &vbd), 4.0);
    assert_eq!(value(&text, "xen_vbd_ring_max_pages", &vbd), 16.0);
    assert_eq!(value(&text, "xen_vbd_ring_capacity_requests", &vbd), 256.0);
    assert_eq!(value(&text, "xen_vif_queues", &[("device", "vif1.0")]), 2.0);
    for queue in ["0", "1"] {
        let file = debugfs.join(format!("xen-netback/vif1.0/io_ring_q{queue}"));
        let parsed = parse_io_ring(&std::fs::read_to_string(&file).expect("fixture"))
            .expect("the capture parses");
        let labels = |direction| {
            [
                ("device", "vif1.0"),
                ("queue", queue),
                ("direction", direction),
            ]
        };
        for (direction, ring) in [("tx", &parsed.tx), ("rx", &parsed.rx)] {
            let m = |metric| value(&text, metric, &labels(direction));
            assert_eq!(m("xen_vif_ring_entries"), f64::from(ring.entries));
            assert_eq!(
                m("xen_vif_ring_requests_outstanding"),
                f64::from(ring.requests_outstanding)
            );
            assert_eq!(
                m("xen_vif_ring_responses_unpublished"),
                f64::from(ring.responses_unpublished)
            );
        }
        let q = [("device", "vif1.0"), ("queue", queue)];
        assert_eq!(
            value(&text, "xen_vif_tx_pending_requests", &q),
            f64::from(parsed.tx_pending_requests)
        );
        assert_eq!(
            value(&text, "xen_vif_rx_queue_bytes", &q),
            f64::from(parsed.rx_queue_length)
        );
        assert_eq!(
            value(&text, "xen_vif_rx_queue_stalled", &q),
            if parsed.rx_queue_stopped { 1.0 } else { 0.0 }
        );
    }
    let seen = standin.seen.lock().expect("seen");
    assert!(
        seen.iter()
            .all(|kind| common::xenstored::writes_nothing(*kind)),
        "only reads and watches reach xenstore: {seen:?}"
    );
}

/// The backing device through the binary: the fake libxenstat lists labdomu's `xvda`, the real
/// libxenstore reads its captured backend keys (`physical-device = "7:0"`) from a stand-in
/// xenstored, and `<sysfs>/dev/block/7:0/stat` is a loop device's real `stat` under load. Every
/// backing series equals what the parser reads from that file and `xen_vbd_info` names the
/// device; then the file vanishes and only `backing` fails (logged once with the path), and
/// when it is back the part recovers.
#[test]
fn backing_series_equal_the_device_stat() {
    if let Err(error) = xenstat_sys::Libxenstore::load(None) {
        common::skip(
            "backing_series_equal_the_device_stat",
            &format!("install libxen-dev: {error}"),
        );
        return;
    }
    let captured = [
        include_str!("fixtures/xenstore/ringorder2/20-xenstore-backend-vbd.txt"),
        include_str!("fixtures/xenstore/ringorder2/22-xenstore-frontend-device.txt"),
    ]
    .join("\n");
    let standin = StandIn::start(MemoryStore::parse_ls_f(&captured));
    let socket = standin.socket().display().to_string();
    let lib = fake::build(&[]);
    let root = common::temp_dir();
    let fixture = common::fixture("sysfs/backing-loop/dev/block/7:0/stat");
    let text = std::fs::read_to_string(&fixture).expect("fixture stat");
    let stat_dir = root.path().join("sys/dev/block/7:0");
    std::fs::create_dir_all(&stat_dir).expect("mkdir");
    std::fs::write(stat_dir.join("stat"), &text).expect("stat");
    let exporter = start_with(
        &lib.path,
        root.path(),
        &common::fixture("debugfs"),
        &[("XENSTORED_PATH", socket.as_str())],
    );
    let success = |text: &str, collector| {
        value(
            text,
            "xen_exporter_collector_success",
            &[("collector", collector)],
        )
    };
    let scraped = exporter.get("/metrics").text();
    for collector in ["xen", "vbd", "rings", "backing"] {
        assert_eq!(success(&scraped, collector), 1.0, "{collector}");
    }
    // The fixture's fields: 128735 writes, 39915 ms writing, 61 in flight, 1172 ms busy,
    // 39915 ms weighted queue time.
    let fields: Vec<f64> = text
        .split_whitespace()
        .map(|field| field.parse().expect("a number"))
        .collect();
    let vbd = [("domain", "labdomu"), ("device", "xvda")];
    let m = |metric| value(&scraped, metric, &vbd);
    assert_eq!(m("xen_vbd_backing_reads_completed_total"), fields[0]);
    assert_eq!(
        m("xen_vbd_backing_read_time_seconds_total"),
        fields[3] / 1e3
    );
    assert_eq!(m("xen_vbd_backing_writes_completed_total"), fields[4]);
    assert_eq!(
        m("xen_vbd_backing_write_time_seconds_total"),
        fields[7] / 1e3
    );
    assert_eq!(m("xen_vbd_backing_in_flight_requests"), fields[8]);
    assert_eq!(m("xen_vbd_backing_io_time_seconds_total"), fields[9] / 1e3);
    assert_eq!(
        m("xen_vbd_backing_queue_time_seconds_total"),
        fields[10] / 1e3
    );
    assert_eq!(fields[8], 61.0, "the fixture has requests in flight");
    assert_eq!(
        value(
            &scraped,
            "xen_vbd_info",
            &[vbd[1], ("physical_device", "7:0")]
        ),
        1.0
    );

    std::fs::remove_file(stat_dir.join("stat")).expect("remove stat");
    for _ in 0..2 {
        let scraped = exporter.get("/metrics").text();
        assert_eq!(success(&scraped, "backing"), 0.0);
        for collector in ["xen", "vbd", "rings"] {
            assert_eq!(success(&scraped, collector), 1.0, "{collector}");
        }
        assert!(!scraped.contains("xen_vbd_backing_"), "{scraped}");
        assert_eq!(value(&scraped, "xen_vbd_read_requests_total", &vbd), 515.0);
    }
    std::fs::write(stat_dir.join("stat"), &text).expect("stat back");
    let scraped = exporter.get("/metrics").text();
    assert_eq!(success(&scraped, "backing"), 1.0);
    let logs = exporter.logs();
    let failed: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("collector=backing") && line.contains("collection failed"))
        .collect();
    assert_eq!(
        failed.len(),
        1,
        "logged once for two failing scrapes:\n{logs}"
    );
    assert!(failed[0].contains("dev/block/7:0/stat"), "{}", failed[0]);
    assert!(
        logs.lines()
            .any(|line| line.contains("collector=backing") && line.contains("works again")),
        "{logs}"
    );
}
