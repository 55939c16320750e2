//! The probers as child processes inside the benchmark's namespace: started through
//! `ip netns exec` (which execs, so the child's PID is the prober's), measured from /proc, and
//! killed by PID when the guard drops, also on panic.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on every Linux port).
const USER_HZ: f64 = 100.0;
/// How long a prober may take to serve its first page (smokeping_prober with 1,000 targets
/// on a loaded 2-core machine takes seconds).
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// A running prober; SIGKILLed by PID and reaped on drop.
pub struct Prober {
    pub name: &'static str,
    pub port: u16,
    child: Child,
    log: PathBuf,
}

impl Prober {
    /// Starts `command` with stdout and stderr going to `<dir>/<name>.log`.
    pub fn start(name: &'static str, port: u16, mut command: Command, dir: &Path) -> Prober {
        let log = dir.join(format!("{name}.log"));
        let file = File::create(&log).expect("create log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {name}: {error}"));
        Prober {
            name,
            port,
            child,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `path` answers 200 on the prober's port (from inside the namespace); returns
    /// how long that took.
    pub fn wait_ready(&mut self, path: &str) -> Duration {
        let started = Instant::now();
        let deadline = started + READY_TIMEOUT;
        loop {
            self.assert_running();
            if http_get(self.port, path).is_ok() {
                return started.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "{} did not answer {path} within {READY_TIMEOUT:?}; log:\n{}",
                self.name,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Panics with the prober's log when it has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}); log:\n{}", self.name, self.log_tail());
        }
    }

    /// `GET /metrics`, body only. A prober that is far behind (smokeping_prober at 1,000
    /// targets here) can take tens of seconds to answer.
    pub fn metrics(&self) -> Result<String, String> {
        http_get(self.port, "/metrics").map_err(|error| format!("scrape {}: {error}", self.name))
    }

    /// utime + stime so far, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.pid()).unwrap_or(f64::NAN)
    }

    /// Peak resident set size (VmHWM) in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        peak_rss_kib(self.pid()).map_or(f64::NAN, |kib| kib as f64 / 1024.0)
    }

    /// Packets dropped on the prober's raw sockets so far (their receive buffers were full).
    pub fn raw_socket_drops(&self) -> u64 {
        raw_socket_drops(self.pid())
    }

    pub fn threads(&self) -> u64 {
        status_field(self.pid(), "Threads:").unwrap_or(0)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        // Child::kill signals this child's PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// utime + stime of `pid` in seconds (fields 14 and 15 of /proc/PID/stat).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in field 2 may hold spaces; count fields after its closing parenthesis.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// Packets the kernel dropped on `pid`'s raw sockets (receive buffer full): the `drops`
/// column of /proc/PID/net/raw{,6} (every socket of the process's namespace) for the inodes
/// of its own descriptors.
pub fn raw_socket_drops(pid: u32) -> u64 {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|link| {
            let link = link.to_string_lossy().into_owned();
            Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    ["raw", "raw6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let inode = fields.get(9)?;
                    inodes
                        .contains(*inode)
                        .then(|| fields.last()?.parse::<u64>().ok())?
                })
                .collect::<Vec<u64>>()
        })
        .sum()
}

pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmHWM:")
}

fn status_field(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// One HTTP/1.0 GET on 127.0.0.1:`port` (no chunking, no compression); the body of a 200.
pub fn http_get(port: u16, path: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(READY_TIMEOUT))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: probebench\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or("response without a header end")?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        return Err(format!("{path}: {status}"));
    }
    Ok(body.to_owned())
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "?".into())
}
