//! Shared by the benchmarks: percentiles, peak RSS, and the real binary on a loopback port.
#![allow(dead_code)] // each bench uses a different part

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `p` quantile (0..=1) of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// `VmHWM` (peak RSS) of process `pid` (`self` for this one), in KiB.
pub fn peak_rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The exporter binary on a free loopback port; killed by PID on drop.
pub struct Exporter {
    pub child: Child,
    pub address: String,
    _config_dir: tempfile::TempDir,
}

impl Exporter {
    /// Starts the binary with `args` and waits until it accepts connections. Its configuration
    /// has no probe targets: the embedded default would probe hosts on the internet, which a
    /// benchmark must neither depend on nor pay for.
    pub fn start(args: &[String]) -> Exporter {
        Self::start_with_env(args, &[])
    }

    /// [`Exporter::start`] with extra environment variables (the fake libxenstat's switches,
    /// `XENSTORED_PATH`).
    pub fn start_with_env(args: &[String], env: &[(&str, String)]) -> Exporter {
        let config_dir = tempfile::tempdir().expect("config dir");
        let config = config_dir.path().join("xen_exporter.yml");
        std::fs::write(&config, "probes:\n  targets: []\n").expect("write config");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_xen_exporter"))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--config.file={}", config.display()))
            .args(args)
            .envs(env.iter().map(|(name, value)| (name, value)))
            .stderr(Stdio::null())
            .spawn()
            .expect("start exporter");
        let address = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < deadline, "exporter did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Exporter {
            child,
            address,
            _config_dir: config_dir,
        }
    }

    /// One `GET /metrics` on a new connection with extra request header lines; the raw response.
    pub fn scrape(&self, headers: &str) -> Vec<u8> {
        let mut stream = TcpStream::connect(&self.address).expect("connect");
        let request =
            format!("GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n{headers}\r\n");
        stream.write_all(request.as_bytes()).expect("write");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).expect("read");
        response
    }

    pub fn peak_rss_mib(&self) -> f64 {
        peak_rss_kib(&self.child.id().to_string()).map_or(f64::NAN, |kib| kib as f64 / 1024.0)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time used so far by process `pid` (`self` for this one), threads that already exited
/// included (the exporter deflates a large gzip body on short-lived threads): utime + stime of
/// `/proc/PID/stat`. Unlike wall time it hardly moves when other jobs load the machine.
pub fn cpu_time(pid: &str) -> Duration {
    // /proc counts in USER_HZ, which is 100 on Linux whatever the kernel's HZ.
    const TICKS_PER_SECOND: u64 = 100;
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // The command name may hold spaces and parentheses: fields are counted after its last ')'.
    let Some((_, fields)) = stat.rsplit_once(')') else {
        return Duration::ZERO;
    };
    let mut fields = fields.split_whitespace().skip(11);
    let mut tick = || -> u64 {
        fields
            .next()
            .and_then(|field| field.parse().ok())
            .unwrap_or(0)
    };
    let ticks = tick() + tick();
    Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
}
