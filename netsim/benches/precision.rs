//! Measures the simulator: RTT error against the injected delay (ICMP echo from a DGRAM ICMP
//! socket, one request outstanding, user-space timestamps) and sustained load (many targets at
//! a high packet rate) with the responder as an `xe-netsim` child whose CPU time is read from
//! /proc. Needs root. `cargo bench -p netsim --bench precision` prints Markdown tables.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netsim::{Netns, Prefix, ResponderProcess};
use socket2::{Domain, Protocol, Socket, Type};

/// Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on every Linux port).
const USER_HZ: f64 = 100.0;

fn main() {
    if !netsim::require_privileged("netsim_precision_bench") {
        return;
    }
    let binary = Path::new(env!("CARGO_BIN_EXE_xe-netsim"));
    // NETSIM_BENCH=load runs only the load part; NETSIM_ARGS adds xe-netsim flags to it.
    let only_load = std::env::var("NETSIM_BENCH").is_ok_and(|v| v == "load");
    let extra = std::env::var("NETSIM_ARGS").unwrap_or_default();
    let extra: Vec<&str> = extra.split_whitespace().collect();
    if !only_load {
        precision(binary);
    }
    println!();
    println!("| load | sent | answered | responder CPU | responder timer lateness (µs): median / p99 / max |");
    println!("|---|---|---|---|---|");
    load(binary, 1000, 1000, Duration::from_secs(5), &extra);
    load(binary, 1000, 10_000, Duration::from_secs(5), &extra);
}

fn precision(binary: &Path) {
    println!("| case | samples | RTT − injected: min / median / p99 / max (µs) | responder timer lateness (µs): median / p99 / max |");
    println!("|---|---|---|---|");
    for (delay_ms, extra, label) in [
        (25.0, &[][..], "25 ms, defaults (SCHED_FIFO, 50 µs spin)"),
        (1.0, &[][..], "1 ms, defaults"),
        (25.0, &["--spin-us", "0"][..], "25 ms, SCHED_FIFO, no spin"),
        (
            25.0,
            &["--no-realtime", "--spin-us", "0"][..],
            "25 ms, no SCHED_FIFO, no spin",
        ),
    ] {
        let netns = Netns::for_test("precision").expect("namespace");
        netns.allow_ping_group().expect("ping_group_range");
        let delay = delay_ms.to_string();
        let mut args = vec!["--delay-ms", delay.as_str()];
        args.extend_from_slice(extra);
        let child = ResponderProcess::spawn(binary, Some(&netns), &args).expect("xe-netsim");
        let errors = echo_errors(&netns, Duration::from_secs_f64(delay_ms / 1000.0), 500);
        let stats = child.stop().expect("stats");
        println!(
            "| {label} | {} | {} | {} |",
            errors.len(),
            summary(&errors),
            lateness(&stats)
        );
    }
}

/// An ICMP DGRAM socket in `netns` as a `UdpSocket` (any datagram fd works through it).
fn icmp_socket(netns: &Netns) -> UdpSocket {
    let socket = netns
        .run(|| Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::ICMPV4)))
        .expect("enter namespace")
        .expect("ICMP DGRAM socket");
    // Room for a burst of answers (capped by net.core.rmem_max), so the measuring side does
    // not drop what the responder sent.
    let _ = socket.set_recv_buffer_size(4 << 20);
    UdpSocket::from(socket)
}

fn echo_request(seq: u16) -> [u8; 16] {
    // Type 8, code 0; the kernel fills in the identifier and the checksum.
    let mut request = [8u8, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
    request[6..8].copy_from_slice(&seq.to_be_bytes());
    request
}

/// Sends `count` echo requests to 198.19.0.2, one at a time 2 ms apart, and returns RTT minus
/// `injected` in microseconds.
fn echo_errors(netns: &Netns, injected: Duration, count: u16) -> Vec<f64> {
    let socket = icmp_socket(netns);
    // The measuring thread must not be the noise it measures: run it real-time as well
    // (below the responder's priority), on a scoped thread so main stays ordinary.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                netsim::set_realtime(MEASURE_PRIORITY).expect("SCHED_FIFO");
                measure(&socket, injected, count)
            })
            .join()
            .expect("measuring thread")
    })
}

/// Below the responder's threads, above everything ordinary.
const MEASURE_PRIORITY: i32 = 5;

fn measure(socket: &UdpSocket, injected: Duration, count: u16) -> Vec<f64> {
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let target: SocketAddr = SocketAddrV4::new(Ipv4Addr::new(198, 19, 0, 2), 0).into();
    let mut errors = Vec::new();
    let mut buffer = [0u8; 1500];
    for seq in 0..count {
        let sent = Instant::now();
        socket.send_to(&echo_request(seq), target).expect("send");
        while let Ok(len) = socket.recv(&mut buffer) {
            let elapsed = sent.elapsed();
            if len >= 8 && buffer[6..8] == seq.to_be_bytes() {
                errors.push((elapsed.as_secs_f64() - injected.as_secs_f64()) * 1e6);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    errors
}

fn summary(errors: &[f64]) -> String {
    let mut sorted = errors.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return "no replies".into();
    }
    let at = |q: f64| sorted[((sorted.len() as f64 - 1.0) * q).round() as usize];
    format!(
        "{:.0} / {:.0} / {:.0} / {:.0}",
        at(0.0),
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

fn field(stats: &str, name: &str) -> String {
    stats
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or("?")
        .to_owned()
}

fn lateness(stats: &str) -> String {
    format!(
        "{} / {} / {}",
        field(stats, "timer_late_median_us"),
        field(stats, "timer_late_p99_us"),
        field(stats, "timer_late_max_us")
    )
}

/// CPU seconds (user + system) process `pid` has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / USER_HZ
}

/// `targets` addresses of 198.18.0.0/22 probed round-robin at `rate` requests per second for
/// `duration`, with 10 ms injected delay.
fn load(binary: &Path, targets: u32, rate: u32, duration: Duration, extra: &[&str]) {
    let netns = Netns::for_test("load").expect("namespace");
    netns.allow_ping_group().expect("ping_group_range");
    let mut args = vec![
        "--prefix4",
        "198.18.0.1/22",
        "--prefix6",
        "none",
        "--delay-ms",
        "10",
    ];
    args.extend_from_slice(extra);
    let child = ResponderProcess::spawn(binary, Some(&netns), &args).expect("xe-netsim");
    let prefix: Prefix = "198.18.0.1/22".parse().expect("prefix");
    let addresses: Vec<SocketAddr> = (2..2 + u128::from(targets))
        .filter_map(|index| prefix.nth(index))
        .map(|address| SocketAddr::new(address, 0))
        .collect();
    let socket = Arc::new(icmp_socket(&netns));
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let done = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let receiver = {
        let (socket, done, received) = (
            Arc::clone(&socket),
            Arc::clone(&done),
            Arc::clone(&received),
        );
        std::thread::spawn(move || {
            let mut buffer = [0u8; 1500];
            while !done.load(Ordering::Relaxed) {
                if socket.recv(&mut buffer).is_ok() {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let cpu_before = cpu_seconds(child.pid());
    let started = Instant::now();
    let mut sent: u64 = 0;
    // Pace in 1 ms batches: rate / 1000 requests per batch.
    let per_batch = u64::from(rate / 1000).max(1);
    let mut next = started;
    while started.elapsed() < duration {
        for _ in 0..per_batch {
            let target = addresses[(sent % addresses.len() as u64) as usize];
            let seq = (sent / addresses.len() as u64) as u16;
            if socket.send_to(&echo_request(seq), target).is_ok() {
                sent += 1;
            }
        }
        next += Duration::from_millis(1)
            * u32::try_from(per_batch * 1000 / u64::from(rate))
                .unwrap_or(1)
                .max(1);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let elapsed = started.elapsed();
    // Let the last delayed answers arrive.
    let drain_deadline = Instant::now() + Duration::from_secs(1);
    while received.load(Ordering::Relaxed) < sent && Instant::now() < drain_deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let cpu = cpu_seconds(child.pid()) - cpu_before;
    done.store(true, Ordering::Relaxed);
    let _ = receiver.join();
    let stats = child.stop().expect("stats");
    println!(
        "| {targets} targets, {rate}/s, {:.1} s | {sent} | {} ({:.2} %); responder: received {}, answered {} | {:.1} % of a core | {} |",
        elapsed.as_secs_f64(),
        received.load(Ordering::Relaxed),
        100.0 * received.load(Ordering::Relaxed) as f64 / sent.max(1) as f64,
        field(&stats, "echo_requests"),
        field(&stats, "answered"),
        100.0 * cpu / elapsed.as_secs_f64(),
        lateness(&stats)
    );
}
