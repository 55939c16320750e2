//! Test support: run the real binary on a free loopback port, talk plain HTTP/1.1 to it, find
//! the real tools (promtool, prometheus) and decide what a missing privilege or tool means.
#![allow(dead_code)]

pub mod prometheus;
pub mod xenstored;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The one `SKIP <test>: <why>` of the workspace (a failure under `XE_REQUIRE_PRIVILEGED=1`),
/// shared with netsim and every test binary.
pub use netsim::skip;

/// The path of an installed tool, or `None` after a [`skip`] message.
pub fn tool(test: &str, name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        skip(
            test,
            &format!("{name} is not installed (bash .ci/install-deps.sh installs it)"),
        );
    }
    found
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("Uid:"))
                .map(|line| line.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// The exporter binary under test: the one cargo built, or `XE_EXPORTER_BIN` (the portable
/// release binary scripts/dist.sh makes), so what ships is what the tests ran.
pub fn exporter_binary() -> &'static str {
    static BINARY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BINARY.get_or_init(|| {
        std::env::var("XE_EXPORTER_BIN")
            .ok()
            .filter(|path| !path.is_empty())
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_xen_exporter").to_owned())
    })
}

/// A running exporter; killed (by PID) when dropped.
pub struct Exporter {
    pub child: Child,
    pub address: SocketAddr,
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl Exporter {
    /// Starts the exporter on `127.0.0.1:0` with `args` and waits for its `listening` line.
    pub fn start(args: &[&str]) -> Exporter {
        Self::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Exporter {
        Self::start_wrapped(&[], args, env)
    }

    /// Like [`Exporter::start_with_env`], run through `wrapper` (a program and its arguments that
    /// end with the command to run, e.g. `setpriv --bounding-set=... --`).
    pub fn start_wrapped(wrapper: &[&str], args: &[&str], env: &[(&str, &str)]) -> Exporter {
        let mut command = match wrapper.split_first() {
            None => Command::new(exporter_binary()),
            Some((program, wrapper_args)) => {
                let mut command = Command::new(program);
                command.args(wrapper_args).arg(exporter_binary());
                command
            }
        };
        command.arg("--web.listen-address=127.0.0.1:0").args(args);
        // The embedded default config probes hosts on the internet; tests never do.
        if !args.iter().any(|arg| arg.starts_with("--config.file")) {
            command.arg(format!(
                "--config.file={}",
                fixture("no-probes.yml").display()
            ));
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start the exporter binary");
        let stderr = child.stderr.take().expect("stderr is piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (sender, receiver) = std::sync::mpsc::channel();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let address = listening_address(&line);
                    // Stored before the start is announced: a test that reads the logs as
                    // soon as the exporter listens must find the `listening` line in them.
                    logs.lock().expect("log lock").push(line);
                    if let Some(address) = address {
                        let _ = sender.send(address);
                    }
                }
            });
        }
        let address = match receiver.recv_timeout(Duration::from_secs(20)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "exporter did not start listening; logs:\n{}",
                    logs.lock().expect("log lock").join("\n")
                );
            }
        };
        Exporter {
            child,
            address,
            logs,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub fn get(&self, path: &str) -> HttpResponse {
        http(self.address, "GET", path, &[]).expect("HTTP request to the exporter")
    }

    /// GETs `path` asking for gzip, checks the response is gzip-encoded and decodes it with a
    /// reader that stops after the first gzip member.
    pub fn get_gzipped(&self, path: &str) -> String {
        let response = http(self.address, "GET", path, &[("Accept-Encoding", "gzip")])
            .expect("HTTP request to the exporter");
        assert_eq!(response.header("content-encoding"), Some("gzip"));
        let mut decoded = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(&response.body[..]),
            &mut decoded,
        )
        .expect("valid gzip");
        decoded
    }

    pub fn logs(&self) -> String {
        self.logs.lock().expect("log lock").join("\n")
    }

    /// Sends a signal to the exporter.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Resident set size of the exporter process, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read status");
        let line = status
            .lines()
            .find(|line| line.starts_with("VmRSS:"))
            .expect("VmRSS line");
        let kib: u64 = line["VmRSS:".len()..]
            .split_whitespace()
            .next()
            .and_then(|value| value.parse().ok())
            .expect("VmRSS value");
        kib * 1024
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Extracts `address=…` from the exporter's `msg=listening` log line.
fn listening_address(line: &str) -> Option<SocketAddr> {
    if !line.contains("msg=listening") {
        return None;
    }
    line.split_whitespace()
        .find_map(|pair| pair.strip_prefix("address="))
        .and_then(|address| address.parse().ok())
}

/// One HTTP response, as read off the wire.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A minimal HTTP/1.1 client (one request per connection), so tests see exactly what the server
/// sends, without a client library's normalisation.
pub fn http(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw, method == "HEAD")
}

fn parse_response(raw: &[u8], head: bool) -> std::io::Result<HttpResponse> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| invalid("no end of headers"))?;
    let head_text = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().ok_or_else(|| invalid("no status line"))?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(key, value)| {
        key.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked")
    });
    if chunked && !head {
        body = dechunk(&body).ok_or_else(|| invalid("bad chunked body"))?;
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|window| window == b"\r\n")?;
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).ok()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// Polls `condition` until it returns `Some` or `deadline` passes.
pub fn poll<T>(deadline: Duration, mut condition: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(value) = condition() {
            return Some(value);
        }
        if start.elapsed() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A free TCP port on loopback (bound and released; fine for tests that start one server).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("bind a free port")
}

/// The value of the first sample of `metric` (exact name, optional label filter) in text output.
pub fn sample(text: &str, metric: &str, label_filter: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find(|line| {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            &line[..name_end] == metric && line.contains(label_filter)
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// A temporary directory removed at drop.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("create a temp dir")
}

/// Path of a fixture below `tests/fixtures`.
pub fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative)
}

/// A server of the Prometheus ecosystem (Debian's `prometheus`, `prometheus-alertmanager`) on a
/// free loopback port, started with `args` plus `--web.listen-address` and `--log.level=warn`,
/// and ready (`/-/ready` answers 200) before `start` returns. Stopped by PID and its directory
/// removed on drop.
pub struct ToolServer {
    child: Child,
    pub address: SocketAddr,
    _dir: tempfile::TempDir,
}

impl ToolServer {
    pub fn start(binary: &Path, dir: tempfile::TempDir, args: &[String]) -> ToolServer {
        let address: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("address");
        let child = Command::new(binary)
            .args(args)
            .arg(format!("--web.listen-address={address}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| panic!("start {}: {error}", binary.display()));
        let server = ToolServer {
            child,
            address,
            _dir: dir,
        };
        poll(Duration::from_secs(20), || {
            http(address, "GET", "/-/ready", &[])
                .ok()
                .filter(|response| response.status == 200)
        })
        .unwrap_or_else(|| panic!("{} becomes ready", binary.display()));
        server
    }
}

impl Drop for ToolServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
