//! Benchmark: the real scrape path of a dense Dom0, end to end over HTTP (text 0.0.4) with the
//! release binary. The fake libxenstat (`tests/fake-libxenstat`, through the real dlopen path)
//! serves N domains of 4 VCPUs, 2 vifs and 4 VBDs; fixture trees hold blkback's sysfs
//! statistics, netback's debugfs queue files (2 per vif) and `/proc/net/dev` under the
//! `--path.*` roots; the stand-in xenstored (`tests/common/xenstored.rs`, reached through the
//! real libxenstore with `XENSTORED_PATH`) serves the domains' UUIDs and every VBD's ring keys.
//!
//! Per scrape it reads the exporter's own `xen_exporter_collector_duration_seconds` of the
//! parts (`xen`: the libxenstat call with the sysfs listing; `vbd`: blkback's sysfs; `rings`:
//! debugfs and xenstore), and counts the xenstore requests the stand-in answered. Between
//! scrapes, in the same run, the floor: every file the scrape needs opened and read exactly
//! once, nothing parsed, no xenstore, no encoding. Then a few gzip scrapes for the cost of
//! deflating.
//!
//! Run: `cargo bench --bench scrape_real` (release profile). Ends with one line per N:
//! `real-path N domains: p50 X ms p99 Y ms floor Z ms cpu C ms/scrape rss R MiB`.
//! `SCRAPE_REAL_DOMAINS` (default `100,1000`) and `SCRAPE_REAL_RUNS` (default 100) change the
//! run. Results go in benches/README.md.

#[path = "../tests/fake-libxenstat/fake.rs"]
mod fake;
mod support;
#[path = "../tests/common/xenstored.rs"]
#[allow(dead_code)]
mod xenstored;

use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::percentile;
use xen_exporter::testing::{LibXenStore, MemoryStore, XenStore};

const VIFS: u32 = 2;
const QUEUES: u32 = 2;
/// The fake's devnos: xvda..xvdd.
const DEVNOS: [u32; 4] = [51712, 51728, 51744, 51760];
const COUNTERS: [&str; 7] = [
    "oo_req", "rd_req", "wr_req", "rd_sect", "wr_sect", "f_req", "ds_req",
];
const QUEUE_FILE: &str = include_str!("../tests/fixtures/debugfs/xen-netback/vif1.0/io_ring_q0");

/// The fixture trees of one N, and the files a scrape needs.
struct Fixture {
    _dir: tempfile::TempDir,
    sysfs: PathBuf,
    debugfs: PathBuf,
    procfs: PathBuf,
    /// Every file a scrape must read once: blkback statistics, netback queues, /proc/net/dev.
    files: Vec<PathBuf>,
}

fn fixture(domains: u32) -> Fixture {
    let dir = tempfile::Builder::new()
        .prefix("scrape-real-")
        .tempdir()
        .expect("tempdir");
    let sysfs = dir.path().join("sys");
    let debugfs = dir.path().join("debug");
    let procfs = dir.path().join("proc");
    let mut files = Vec::new();
    let mut net_dev = String::from(
        "Inter-|   Receive                                                |  Transmit\n \
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n",
    );
    for domid in 0..domains {
        for devno in DEVNOS {
            let stats = sysfs.join(format!(
                "bus/xen-backend/devices/vbd-{domid}-{devno}/statistics"
            ));
            std::fs::create_dir_all(&stats).expect("sysfs fixture");
            for (index, name) in COUNTERS.iter().enumerate() {
                let path = stats.join(name);
                let value = u64::from(domid) * 1000 + index as u64;
                std::fs::write(&path, format!("{value}\n")).expect("sysfs fixture");
                files.push(path);
            }
        }
        for vif in 0..VIFS {
            let interface = format!("vif{domid}.{vif}");
            let queues = debugfs.join("xen-netback").join(&interface);
            std::fs::create_dir_all(&queues).expect("debugfs fixture");
            for queue in 0..QUEUES {
                let path = queues.join(format!("io_ring_q{queue}"));
                let text = QUEUE_FILE.replacen("Queue 0", &format!("Queue {queue}"), 1);
                std::fs::write(&path, text).expect("debugfs fixture");
                files.push(path);
            }
            net_dev.push_str(&format!(
                "{interface:>6}: {} {} 0 0 0 0 0 0 {} {} 0 0 0 0 0 0\n",
                domid * 1000 + vif,
                domid * 10,
                domid * 2000,
                domid * 20
            ));
        }
    }
    std::fs::create_dir_all(procfs.join("net")).expect("procfs fixture");
    std::fs::write(procfs.join("net/dev"), net_dev).expect("procfs fixture");
    files.push(procfs.join("net/dev"));
    Fixture {
        _dir: dir,
        sysfs,
        debugfs,
        procfs,
        files,
    }
}

/// Every key the exporter reads: UUIDs, and each VBD's state and geometry (2 rings of 4 pages).
fn xenstore(domains: u32) -> MemoryStore {
    let mut store = MemoryStore::new();
    for domid in 0..domains {
        store.insert(
            format!("/local/domain/{domid}/vm"),
            format!("/vm/00000000-0000-4000-8000-{domid:012}"),
        );
        for devno in DEVNOS {
            let backend = format!("/local/domain/0/backend/vbd/{domid}/{devno}");
            let frontend = format!("/local/domain/{domid}/device/vbd/{devno}");
            store.insert(format!("{backend}/state"), "4");
            store.insert(format!("{backend}/max-ring-page-order"), "4");
            store.insert(format!("{backend}/multi-queue-max-queues"), "4");
            store.insert(format!("{frontend}/ring-page-order"), "2");
            store.insert(format!("{frontend}/multi-queue-num-queues"), "2");
        }
    }
    store
}

/// The floor: each needed file opened and read once, nothing parsed.
fn floor(files: &[PathBuf]) -> Duration {
    let mut buffer = Vec::with_capacity(4096);
    let start = Instant::now();
    for path in files {
        buffer.clear();
        std::fs::File::open(path)
            .and_then(|mut file| file.read_to_end(&mut buffer))
            .expect("read a fixture file");
    }
    start.elapsed()
}

/// `xen_exporter_collector_duration_seconds{collector="<part>"}` of a scrape, in seconds.
fn part_seconds(body: &str, part: &str) -> f64 {
    let series = format!("xen_exporter_collector_duration_seconds{{collector=\"{part}\"}} ");
    body.lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn p(samples: &mut [Duration], q: f64) -> f64 {
    samples.sort();
    ms(percentile(samples, q))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The body of a raw HTTP response (`Connection: close`, no chunking from our server).
fn body(response: &[u8]) -> &[u8] {
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("HTTP header end");
    &response[split + 4..]
}

struct Row {
    domains: u32,
    p50: f64,
    p99: f64,
    floor: f64,
    cpu: f64,
    rss: f64,
}

fn run(lib: &fake::FakeLib, domains: u32, runs: usize) -> Row {
    let started = Instant::now();
    let fixture = fixture(domains);
    let standin = xenstored::StandIn::start(xenstore(domains));
    eprintln!(
        "N={domains}: {} files in the fixture trees, built in {:.1} s",
        fixture.files.len(),
        started.elapsed().as_secs_f64()
    );
    let exporter = support::Exporter::start_with_env(
        &[
            "--xen.source=libxenstat".to_owned(),
            format!("--xen.library={}", lib.path.display()),
            format!("--path.sysfs={}", fixture.sysfs.display()),
            format!("--path.debugfs={}", fixture.debugfs.display()),
            format!("--path.procfs={}", fixture.procfs.display()),
        ],
        &[
            ("FAKE_XENSTAT_DOMAINS", domains.to_string()),
            (
                "XENSTORED_PATH",
                standin.socket().to_string_lossy().into_owned(),
            ),
        ],
    );
    let text = "Accept: text/plain; version=0.0.4\r\n";
    // Warm-up: the first scrape reads every UUID and ring geometry, and asks libxenstat for VBDs.
    let mut first = Duration::ZERO;
    for round in 0..5 {
        let start = Instant::now();
        let response = exporter.scrape(text);
        if round == 0 {
            first = start.elapsed();
            let body = String::from_utf8_lossy(body(&response)).into_owned();
            for part in ["xen", "vbd", "rings"] {
                let success = format!("xen_exporter_collector_success{{collector=\"{part}\"}} 1");
                assert!(
                    body.contains(&success),
                    "part {part} failed:\n{}",
                    &body[..body.len().min(4000)]
                );
            }
            let vbds = body
                .lines()
                .filter(|line| line.starts_with("xen_vbd_ring_pages{"))
                .count();
            assert_eq!(
                vbds,
                domains as usize * DEVNOS.len(),
                "every VBD has its ring"
            );
        }
    }
    let pid = exporter.child.id().to_string();
    let seen_before = standin.seen.lock().expect("seen").len();
    let cpu_before = support::cpu_time(&pid);
    let mut totals = Vec::with_capacity(runs);
    let mut floors = Vec::with_capacity(runs);
    let (mut xen, mut vbd, mut rings) = (Vec::new(), Vec::new(), Vec::new());
    let mut size = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let response = exporter.scrape(text);
        totals.push(start.elapsed());
        let body = String::from_utf8_lossy(body(&response)).into_owned();
        size = body.len();
        xen.push(part_seconds(&body, "xen") * 1e3);
        vbd.push(part_seconds(&body, "vbd") * 1e3);
        rings.push(part_seconds(&body, "rings") * 1e3);
        floors.push(floor(&fixture.files));
    }
    let cpu = ms(support::cpu_time(&pid) - cpu_before) / runs as f64;
    let requests = (standin.seen.lock().expect("seen").len() - seen_before) as f64 / runs as f64;
    let mut gzip = Vec::new();
    let gzip_headers = "Accept: text/plain; version=0.0.4\r\nAccept-Encoding: gzip\r\n";
    let mut gzip_size = 0;
    for _ in 0..runs.min(30) {
        let start = Instant::now();
        gzip_size = body(&exporter.scrape(gzip_headers)).len();
        gzip.push(start.elapsed());
    }
    // What the steady state's xenstore requests cost alone: the same reads (one backend
    // `state` per domain) from this process through libxenstore to the same stand-in.
    let xenstore_ms = {
        std::env::set_var("XENSTORED_PATH", standin.socket());
        let store = LibXenStore::open(None).expect("libxenstore on the stand-in");
        let mut samples: Vec<Duration> = (0..runs.min(30))
            .map(|_| {
                let start = Instant::now();
                for domid in 0..domains {
                    let path = format!("/local/domain/0/backend/vbd/{domid}/{}/state", DEVNOS[0]);
                    store.read(&path).expect("read").expect("present");
                }
                start.elapsed()
            })
            .collect();
        p(&mut samples, 0.5)
    };
    let rss = exporter.peak_rss_mib();
    let descriptors = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count());
    let (p50, p99, floor_p50) = (
        p(&mut totals, 0.5),
        p(&mut totals, 0.99),
        p(&mut floors, 0.5),
    );
    let (xen, vbd, rings) = (median(&mut xen), median(&mut vbd), median(&mut rings));
    println!(
        "| {domains} | {runs} | {p50:.2} ms | {p99:.2} ms | {:.2} ms | {floor_p50:.2} ms ({:.2}x) | {xen:.2} / {vbd:.2} / {rings:.2} ms | {requests:.1} | {:.2} ms | {:.2} ms ({:.2} MiB) | {cpu:.2} ms | {rss:.1} MiB | {:.2} MiB, first scrape {:.0} ms, {descriptors} descriptors open, the xenstore requests alone {xenstore_ms:.2} ms |",
        totals.last().map_or(f64::NAN, |max| ms(*max)),
        p50 / floor_p50,
        (p50 - xen - vbd - rings).max(0.0),
        p(&mut gzip, 0.5),
        gzip_size as f64 / 1048576.0,
        size as f64 / 1048576.0,
        ms(first),
    );
    Row {
        domains,
        p50,
        p99,
        floor: floor_p50,
        cpu,
        rss,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing here takes arguments.
    let domains: Vec<u32> = std::env::var("SCRAPE_REAL_DOMAINS")
        .unwrap_or_else(|_| "100,1000".to_owned())
        .split(',')
        .map(|n| n.trim().parse().expect("SCRAPE_REAL_DOMAINS: numbers"))
        .collect();
    let runs: usize = std::env::var("SCRAPE_REAL_RUNS")
        .ok()
        .map_or(100, |n| n.parse().expect("SCRAPE_REAL_RUNS: a number"));
    if xenstat_sys::Libxenstore::load(None).is_err() {
        eprintln!("SKIP scrape_real: libxenstore not found (install libxen-dev)");
        return;
    }
    // systemd starts services with a hard RLIMIT_NOFILE of 524,288 (soft 1,024), which the
    // exporter raises its soft limit to: give the exporter the same room (as root).
    let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(_, hard)| hard.max(524_288))
        .unwrap_or(524_288);
    if let Err(error) =
        nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, 1024, hard)
    {
        eprintln!("RLIMIT_NOFILE not raised to {hard} ({error}): fewer files are kept open");
    }
    let lib = fake::build(&[]);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average before: {}", load.trim());
    println!(
        "| domains | scrapes | p50 | p99 | max | floor p50 | parts xen / vbd / rings (median) | xenstore requests per scrape | encode + HTTP (p50 − parts) | gzip p50 | exporter CPU per scrape | exporter peak RSS | notes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let rows: Vec<Row> = domains.iter().map(|&n| run(&lib, n, runs)).collect();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average after: {}", load.trim());
    for row in rows {
        println!(
            "real-path {} domains: p50 {:.2} ms p99 {:.2} ms floor {:.2} ms cpu {:.2} ms/scrape rss {:.1} MiB",
            row.domains, row.p50, row.p99, row.floor, row.cpu, row.rss
        );
    }
}
