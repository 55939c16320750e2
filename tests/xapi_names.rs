//! VM names from XAPI, end to end: the exporter binary (simulated host, whose domains carry VM
//! UUIDs as on XCP-ng) with `xen.xapi.names` reads a stand-in XAPI over a real Unix socket
//! speaking XAPI's JSON-RPC over HTTP/1.1. The domains take XAPI's names (two VMs of one name
//! stay two series), a rename shows at the next refresh, and an XAPI that fails, hangs or is
//! not root's keeps the last good names while part `xapi` reports failure and the scrape is
//! served at once.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{poll, sample, Exporter};
use serde_json::{json, Value};

const TEST: &str = "xapi_names";

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Answer,
    /// Every call answers a JSON-RPC error, as XAPI does for a bad session.
    Fail,
    /// Connections are accepted and never answered.
    Hang,
}

#[derive(Default)]
struct Calls {
    logins: usize,
    logouts: usize,
    /// The `where` expression of each `VM.get_all_records_where`.
    queries: Vec<String>,
}

struct StandIn {
    names: Mutex<HashMap<String, String>>,
    mode: Mutex<Mode>,
    calls: Mutex<Calls>,
    /// Connections held open by `Mode::Hang`.
    held: Mutex<Vec<UnixStream>>,
}

impl StandIn {
    fn start(path: &Path) -> Arc<StandIn> {
        let listener = UnixListener::bind(path).expect("bind the stand-in XAPI socket");
        let stand_in = Arc::new(StandIn {
            names: Mutex::new(HashMap::new()),
            mode: Mutex::new(Mode::Answer),
            calls: Mutex::new(Calls::default()),
            held: Mutex::new(Vec::new()),
        });
        let serving = Arc::clone(&stand_in);
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                serving.serve(stream);
            }
        });
        stand_in
    }

    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().expect("mode") = mode;
    }

    fn serve(&self, stream: UnixStream) {
        let mode = *self.mode.lock().expect("mode");
        if mode == Mode::Hang {
            self.held.lock().expect("held").push(stream);
            return;
        }
        let Some(request) = read_request(&stream) else {
            return;
        };
        let method = request["method"].as_str().unwrap_or_default().to_owned();
        let answer = if mode == Mode::Fail {
            json!({"jsonrpc": "2.0", "id": request["id"],
                   "error": {"code": 1, "message": "HOST_STILL_BOOTING", "data": []}})
        } else {
            json!({"jsonrpc": "2.0", "id": request["id"], "result": self.result(&method, &request)})
        };
        let body = answer.to_string();
        let mut stream = stream;
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }

    fn result(&self, method: &str, request: &Value) -> Value {
        let mut calls = self.calls.lock().expect("calls");
        match method {
            "session.login_with_password" => {
                calls.logins += 1;
                json!("OpaqueRef:session-1")
            }
            "session.logout" => {
                calls.logouts += 1;
                Value::Null
            }
            "VM.get_all_records_where" => {
                calls
                    .queries
                    .push(request["params"][1].as_str().unwrap_or_default().to_owned());
                let mut records = serde_json::Map::new();
                for (index, (uuid, name)) in self.names.lock().expect("names").iter().enumerate() {
                    records.insert(
                        format!("OpaqueRef:vm-{index}"),
                        json!({"uuid": uuid.to_uppercase(), "name_label": name,
                               "is_control_domain": false, "is_a_template": false,
                               "is_a_snapshot": false, "power_state": "Running"}),
                    );
                }
                // XAPI lists the control domain among the VMs; it must keep its own name.
                records.insert(
                    "OpaqueRef:dom0".to_owned(),
                    json!({"uuid": "00000000-0000-0000-0000-000000000000",
                           "name_label": "Control domain on host: xcp1",
                           "is_control_domain": true, "is_a_template": false}),
                );
                Value::Object(records)
            }
            _ => Value::Null,
        }
    }
}

/// The JSON body of one HTTP/1.1 POST.
fn read_request(stream: &UnixStream) -> Option<Value> {
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

fn scrape(exporter: &Exporter) -> String {
    exporter.get("/metrics").text()
}

/// `(domain, uuid)` of every `xen_domain_info` series.
fn domains(metrics: &str) -> Vec<(String, String)> {
    // The value as written, escapes kept: up to the first quote no backslash escapes.
    let label = |line: &str, name: &str| {
        let start = line.find(&format!("{name}=\""))? + name.len() + 2;
        let mut escaped = false;
        let length = line[start..].find(|c: char| {
            let end = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            end
        })?;
        Some(line[start..start + length].to_owned())
    };
    metrics
        .lines()
        .filter(|line| line.starts_with("xen_domain_info{"))
        .filter_map(|line| Some((label(line, "domain")?, label(line, "uuid")?)))
        .collect()
}

fn xapi_success(metrics: &str) -> Option<f64> {
    sample(
        metrics,
        "xen_exporter_collector_success",
        "collector=\"xapi\"",
    )
}

#[test]
fn domains_take_xapi_names_and_keep_them_while_xapi_fails() {
    let dir = common::temp_dir();
    let socket = dir.path().join("xapi");
    let xapi = StandIn::start(&socket);
    let config = dir.path().join("xen_exporter.yml");
    std::fs::write(
        &config,
        format!(
            "xen:\n  xapi:\n    names: true\n    socket: {}\n    refresh_interval: 1s\nprobes:\n  targets: []\n",
            socket.display()
        ),
    )
    .expect("write the config");
    let exporter = Exporter::start(&[
        "--xen.source=simulated",
        "--xen.simulated.domains=3",
        &format!("--config.file={}", config.display()),
    ]);

    // XAPI answers with no guest known: xenstore's names, part `xapi` working from the first
    // scrape (the start waits for the first answer, briefly).
    let first = scrape(&exporter);
    assert_eq!(
        xapi_success(&first),
        Some(1.0),
        "part xapi at the first scrape:\n{}",
        exporter.logs()
    );
    assert!(
        !exporter.logs().contains("has not answered"),
        "the first scrape came before XAPI was asked:\n{}",
        exporter.logs()
    );
    let before = domains(&first);
    let uuid_of = |name: &str| {
        before
            .iter()
            .find(|(domain, _)| domain == name)
            .map(|(_, uuid)| uuid.clone())
            .unwrap_or_else(|| panic!("no {name} in {before:?}"))
    };
    assert!(before.iter().any(|(domain, _)| domain == "Domain-0"));

    // Two VMs of one name (XAPI allows it) and a third renamed.
    {
        let mut names = xapi.names.lock().expect("names");
        names.insert(uuid_of("guest-0001"), "web".to_owned());
        names.insert(uuid_of("guest-0002"), "web".to_owned());
        names.insert(uuid_of("guest-0003"), "db \"primary\"".to_owned());
    }
    let named = poll(Duration::from_secs(10), || {
        let metrics = scrape(&exporter);
        metrics
            .contains("domain=\"db \\\"primary\\\"\"")
            .then_some(metrics)
    })
    .unwrap_or_else(|| panic!("XAPI's names never showed:\n{}", scrape(&exporter)));
    let mut served: Vec<String> = domains(&named).into_iter().map(|(name, _)| name).collect();
    served.sort();
    let dom_id = |uuid: String| {
        named
            .lines()
            .find(|line| line.starts_with("xen_domain_info{") && line.contains(&uuid))
            .and_then(|line| line.split("domid=\"").nth(1))
            .and_then(|rest| rest.split('"').next())
            .map(str::to_owned)
            .expect("domid of guest-0002")
    };
    let second = format!("web (domid {})", dom_id(uuid_of("guest-0002")));
    assert_eq!(
        served,
        ["Domain-0", "db \\\"primary\\\"", "web", second.as_str()],
        "the control domain keeps its name; a shared name is told apart by domid"
    );
    {
        let calls = xapi.calls.lock().expect("calls");
        assert!(calls.logins >= 1 && calls.logouts >= 1);
        assert_eq!(calls.queries[0], r#"field "is_a_template"="false""#);
    }

    // XAPI fails: the names stay, part `xapi` says so.
    xapi.set_mode(Mode::Fail);
    let failing = poll(Duration::from_secs(10), || {
        let metrics = scrape(&exporter);
        (xapi_success(&metrics) == Some(0.0)).then_some(metrics)
    })
    .expect("part xapi reports the failing XAPI");
    assert!(failing.contains("domain=\"web\""), "last good names kept");
    assert!(
        exporter.logs().contains("HOST_STILL_BOOTING"),
        "the reason is logged:\n{}",
        exporter.logs()
    );

    // XAPI recovers, then hangs: a scrape never waits for it.
    xapi.set_mode(Mode::Answer);
    poll(Duration::from_secs(10), || {
        (xapi_success(&scrape(&exporter)) == Some(1.0)).then_some(())
    })
    .expect("part xapi recovers");
    xapi.set_mode(Mode::Hang);
    std::thread::sleep(Duration::from_secs(2));
    for _ in 0..5 {
        let started = Instant::now();
        let metrics = scrape(&exporter);
        assert!(metrics.contains("domain=\"web\""));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a scrape waited {:?} while XAPI hangs",
            started.elapsed()
        );
    }
    poll(Duration::from_secs(20), || {
        (xapi_success(&scrape(&exporter)) == Some(0.0)).then_some(())
    })
    .expect("a hanging XAPI is a failure after the call's time limit");
    assert!(exporter.logs().contains("no answer within"));

    // A socket that is not root's (nor ours) is refused, whatever it answers.
    if common::is_root() {
        xapi.set_mode(Mode::Answer);
        chown(&socket, 65534);
        poll(Duration::from_secs(25), || {
            let metrics = scrape(&exporter);
            let refused = exporter
                .logs()
                .contains("owned by uid 65534, not root: refused");
            (refused && xapi_success(&metrics) == Some(0.0)).then_some(())
        })
        .unwrap_or_else(|| panic!("a foreign socket was not refused:\n{}", exporter.logs()));
    } else {
        common::skip(
            TEST,
            "not root: cannot give the socket to another user; the owner check is not exercised",
        );
    }
}

fn chown(path: &Path, uid: u32) {
    let status = std::process::Command::new("chown")
        .arg(uid.to_string())
        .arg(path)
        .status()
        .expect("run chown");
    assert!(status.success(), "chown {uid} {}", path.display());
}
