//! The real binary with `--web.config.file` (exporter-toolkit format), talked to by curl, an
//! independent TLS client (OpenSSL): HTTPS with basic auth, plain HTTP refused on the TLS port,
//! required client certificates, extra headers, and bad files refused before anything binds.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::Exporter;

/// A throwaway CA with a server certificate for localhost/127.0.0.1 and a client certificate,
/// all written as PEM files into a temp dir (no private key is committed anywhere).
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = common::temp_dir();
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "xen_exporter test CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca = params.self_signed(&ca_key).expect("CA cert");
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text).expect("write PEM file")
        };
        write("ca.crt", &ca.pem());
        for (name, sans, usage) in [
            (
                "server",
                vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
                rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            ),
            (
                "client",
                vec!["scraper".to_owned()],
                rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            ),
        ] {
            let key = rcgen::KeyPair::generate().expect("leaf key");
            let mut params = rcgen::CertificateParams::new(sans).expect("leaf params");
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &ca, &ca_key).expect("sign leaf");
            write(&format!("{name}.crt"), &cert.pem());
            write(&format!("{name}.key"), &key.serialize_pem());
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `web.yml` next to the certificates (relative paths resolve against it).
    fn web_config(&self, text: &str) -> String {
        let path = self.path("web.yml");
        std::fs::write(&path, text).expect("write web config");
        path.display().to_string()
    }
}

/// Low bcrypt cost keeps the test quick; the exporter treats every cost the same way.
fn bcrypt_hash(password: &str) -> String {
    bcrypt::hash(password, 5).expect("bcrypt hash")
}

/// One curl request: (HTTP status, or 0 when no HTTP response came; curl's exit code; headers).
struct Curl {
    status: u16,
    exit: i32,
    headers: String,
    body: String,
}

fn curl(url: &str, pki: &Pki, extra: &[&str]) -> Curl {
    let headers_file = pki.path("headers.txt");
    let _ = std::fs::remove_file(&headers_file);
    let output: Output = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "20"])
        .arg("--cacert")
        .arg(pki.path("ca.crt"))
        .arg("--dump-header")
        .arg(&headers_file)
        .args(["--write-out", "\n%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .expect("run curl");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
    Curl {
        status: status.trim().parse().unwrap_or(0),
        exit: output.status.code().unwrap_or(-1),
        headers: std::fs::read_to_string(&headers_file).unwrap_or_default(),
        body: body.to_owned(),
    }
}

fn have_curl(test: &str) -> bool {
    common::tool(test, "curl").is_some()
}

#[test]
fn https_with_basic_auth_right_wrong_and_no_password() {
    if !have_curl("https_with_basic_auth_right_wrong_and_no_password") {
        return;
    }
    let pki = Pki::new();
    let config = pki.web_config(&format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n\
         http_server_config:\n  headers:\n    X-Frame-Options: deny\n    \
         X-Content-Type-Options: nosniff\n\
         basic_auth_users:\n  prometheus: {}\n",
        bcrypt_hash("s3cret")
    ));
    let exporter = Exporter::start(&[
        "--xen.source=simulated",
        &format!("--web.config.file={config}"),
    ]);
    let port = exporter.address.port();
    let url = format!("https://localhost:{port}/metrics");
    let resolve = format!("localhost:{port}:127.0.0.1");

    let ok = curl(
        &url,
        &pki,
        &["--resolve", &resolve, "--user", "prometheus:s3cret"],
    );
    assert_eq!(ok.status, 200, "exit {} headers {}", ok.exit, ok.headers);
    assert!(ok.body.contains("xen_exporter_build_info"), "{}", ok.body);
    let lower = ok.headers.to_ascii_lowercase();
    assert!(lower.contains("x-frame-options: deny"), "{}", ok.headers);
    assert!(
        lower.contains("x-content-type-options: nosniff"),
        "{}",
        ok.headers
    );

    // The second request with the same password is served from the verification cache.
    let again = curl(
        &url,
        &pki,
        &["--resolve", &resolve, "--user", "prometheus:s3cret"],
    );
    assert_eq!(again.status, 200);

    for (what, extra) in [
        ("wrong password", vec!["--user", "prometheus:S3CRET"]),
        ("unknown user", vec!["--user", "admin:s3cret"]),
        ("no credentials", vec![]),
    ] {
        let mut args = vec!["--resolve", resolve.as_str()];
        args.extend(extra);
        let denied = curl(&url, &pki, &args);
        assert_eq!(denied.status, 401, "{what}");
        assert!(
            denied
                .headers
                .to_ascii_lowercase()
                .contains("www-authenticate: basic"),
            "{what}: {}",
            denied.headers
        );
        assert!(!denied.body.contains("xen_"), "{what}: metrics leaked");
    }

    // Every route is behind the password, not only /metrics.
    let landing = curl(
        &format!("https://localhost:{port}/"),
        &pki,
        &["--resolve", &resolve],
    );
    assert_eq!(landing.status, 401);

    // By IP address too (the certificate carries 127.0.0.1 as an IP SAN).
    let by_ip = curl(
        &format!("https://127.0.0.1:{port}/-/healthy"),
        &pki,
        &["--user", "prometheus:s3cret"],
    );
    assert_eq!(by_ip.status, 200);
}

#[test]
fn plain_http_to_the_tls_port_gets_no_http_answer() {
    if !have_curl("plain_http_to_the_tls_port_gets_no_http_answer") {
        return;
    }
    let pki = Pki::new();
    let config =
        pki.web_config("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
    let exporter = Exporter::start(&[
        "--xen.source=simulated",
        &format!("--web.config.file={config}"),
    ]);
    let plain = curl(&format!("http://{}/metrics", exporter.address), &pki, &[]);
    assert_eq!(
        plain.status, 0,
        "plain HTTP was answered: {}",
        plain.headers
    );
    assert_ne!(plain.exit, 0);
    assert!(!plain.body.contains("xen_"));
    // Our own minimal client sees no HTTP response either.
    assert!(common::http(exporter.address, "GET", "/metrics", &[]).is_err());
    // And the TLS port still serves TLS afterwards.
    let tls = curl(
        &format!("https://127.0.0.1:{}/metrics", exporter.address.port()),
        &pki,
        &[],
    );
    assert_eq!(tls.status, 200);
}

#[test]
fn required_client_certificate_refuses_a_client_without_one() {
    if !have_curl("required_client_certificate_refuses_a_client_without_one") {
        return;
    }
    let pki = Pki::new();
    let config = pki.web_config(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n",
    );
    let exporter = Exporter::start(&[
        "--xen.source=simulated",
        &format!("--web.config.file={config}"),
    ]);
    let url = format!("https://127.0.0.1:{}/metrics", exporter.address.port());

    let without = curl(&url, &pki, &[]);
    assert_eq!(without.status, 0, "served without a client certificate");
    assert_ne!(without.exit, 0);

    let cert = pki.path("client.crt").display().to_string();
    let key = pki.path("client.key").display().to_string();
    let with = curl(&url, &pki, &["--cert", &cert, "--key", &key]);
    assert_eq!(with.status, 200, "curl exit {}", with.exit);
    assert!(with.body.contains("xen_exporter_build_info"));

    // A certificate from our CA but issued for a server (no clientAuth usage) is refused too.
    let server_cert = pki.path("server.crt").display().to_string();
    let server_key = pki.path("server.key").display().to_string();
    let wrong = curl(&url, &pki, &["--cert", &server_cert, "--key", &server_key]);
    assert_eq!(
        wrong.status, 0,
        "served a certificate without clientAuth usage"
    );
}

#[test]
fn tls_version_limits_are_enforced() {
    if !have_curl("tls_version_limits_are_enforced") {
        return;
    }
    let pki = Pki::new();
    let config = pki.web_config(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
         min_version: TLS13\n",
    );
    let exporter = Exporter::start(&[
        "--xen.source=simulated",
        &format!("--web.config.file={config}"),
    ]);
    let url = format!("https://127.0.0.1:{}/-/healthy", exporter.address.port());
    assert_eq!(curl(&url, &pki, &["--tlsv1.3"]).status, 200);
    assert_eq!(curl(&url, &pki, &["--tls-max", "1.2"]).status, 0);
}

#[test]
fn bad_web_config_exits_2_before_binding() {
    let pki = Pki::new();
    let config =
        pki.web_config("tls_server_config:\n  cert_file: server.crt\n  keyfile: server.key\n");
    let port = common::free_port();
    let output = Command::new(common::exporter_binary())
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--web.config.file={config}"))
        .output()
        .expect("run exporter");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error: {config}:3:3: tls_server_config.keyfile: unknown field `keyfile`"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("listening"), "{stderr}");
}

#[test]
fn config_check_validates_the_web_config_and_the_example_loads() {
    let pki = Pki::new();
    // The shipped example, next to certificates of the names it uses.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/web-config.yml");
    let text = std::fs::read_to_string(&example).expect("examples/web-config.yml");
    std::fs::copy(pki.path("server.crt"), pki.path("xen_exporter.crt")).expect("copy cert");
    std::fs::copy(pki.path("server.key"), pki.path("xen_exporter.key")).expect("copy key");
    let config = pki.web_config(&text);
    let output = Command::new(common::exporter_binary())
        .arg(format!("--web.config.file={config}"))
        .arg("--config.check")
        .output()
        .expect("run exporter");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn rate_limit_answers_429_once_the_burst_is_spent() {
    let pki = Pki::new();
    // An hour per token: within the test the bucket never refills, so the count is exact.
    let config = pki.web_config("rate_limit:\n  interval: 1h\n  burst: 3\n");
    let exporter = Exporter::start(&[
        "--xen.source=simulated",
        &format!("--web.config.file={config}"),
    ]);
    assert!(
        exporter
            .logs()
            .contains("msg=\"rate limiter enabled\" burst=3 interval=3600s"),
        "{}",
        exporter.logs()
    );
    // The bucket is shared by every path, as exporter-toolkit's is.
    for path in ["/metrics", "/-/healthy", "/"] {
        assert_eq!(exporter.get(path).status, 200, "{path}");
    }
    for path in ["/metrics", "/-/ready"] {
        let refused = exporter.get(path);
        assert_eq!(refused.status, 429, "{path}");
        assert_eq!(refused.text(), "Too Many Requests\n");
    }
}

#[test]
fn a_changed_web_config_applies_without_a_restart_and_a_broken_one_changes_nothing() {
    use base64::Engine as _;
    let pki = Pki::new();
    let users = |password: &str| {
        format!(
            "basic_auth_users:\n  prometheus: {}\n",
            bcrypt_hash(password)
        )
    };
    let config = pki.web_config(&users("old"));
    let exporter = Exporter::start(&[
        "--xen.source=simulated",
        &format!("--web.config.file={config}"),
    ]);
    let get = |path: &str, password: &str| {
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("prometheus:{password}"));
        let authorization = format!("Basic {credentials}");
        common::http(
            exporter.address,
            "GET",
            path,
            &[("Authorization", &authorization)],
        )
        .expect("HTTP request to the exporter")
    };
    let wait_for_log = |needle: &str| {
        common::poll(Duration::from_secs(10), || {
            exporter.logs().contains(needle).then_some(())
        })
        .unwrap_or_else(|| panic!("no {needle:?} in the logs:\n{}", exporter.logs()))
    };
    let reload_successful = |password: &str| {
        common::sample(
            &get("/metrics", password).text(),
            "xen_exporter_web_config_last_reload_successful",
            "",
        )
    };
    assert_eq!(get("/-/healthy", "old").status, 200);
    assert_eq!(get("/-/healthy", "new").status, 401);
    assert_eq!(reload_successful("old"), Some(1.0));

    // A new password and a new header, picked up by the once-a-second check.
    pki.web_config(&format!(
        "{}http_server_config:\n  headers:\n    X-Frame-Options: deny\n",
        users("new")
    ));
    wait_for_log("msg=\"web configuration reloaded\"");
    let served = get("/-/healthy", "new");
    assert_eq!(served.status, 200);
    assert_eq!(served.header("x-frame-options"), Some("deny"));
    assert_eq!(get("/-/healthy", "old").status, 401);

    // A broken file: the previous configuration keeps serving, and the gauge says so.
    pki.web_config("basic_auth_users:\n  prometheus: not-a-bcrypt-hash\n");
    wait_for_log("msg=\"web configuration reload failed; keeping the previous one\"");
    assert_eq!(get("/-/healthy", "new").status, 200);
    assert_eq!(reload_successful("new"), Some(0.0));

    // TLS cannot be switched on under the scrapers of a plain port.
    pki.web_config(&format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{}",
        users("new")
    ));
    wait_for_log("the file turns TLS on; that needs a restart");
    assert_eq!(get("/-/healthy", "new").status, 200);

    // A fixed file is taken again, and SIGHUP reads it at once.
    pki.web_config(&users("newest"));
    exporter.signal("HUP");
    common::poll(Duration::from_secs(10), || {
        (get("/-/healthy", "newest").status == 200).then_some(())
    })
    .unwrap_or_else(|| panic!("the fixed file was not taken:\n{}", exporter.logs()));
    assert_eq!(reload_successful("newest"), Some(1.0));
}

/// Handshakes never read the certificate files: a FIFO with no writer put in the certificate's
/// place (reading it would wait for a writer) leaves every handshake served with the pair last
/// read, and a renewal is still picked up by the background check, without a restart.
#[test]
fn a_renewal_is_picked_up_and_a_fifo_in_its_place_blocks_no_handshake() {
    if !have_curl("a_renewal_is_picked_up_and_a_fifo_in_its_place_blocks_no_handshake") {
        return;
    }
    let pki = Pki::new();
    let config =
        pki.web_config("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
    let exporter = Exporter::start(&[
        "--xen.source=simulated",
        &format!("--web.config.file={config}"),
    ]);
    let port = exporter.address.port();
    let url = format!("https://localhost:{port}/-/healthy");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let served = |pki: &Pki| curl(&url, pki, &["--resolve", &resolve, "--max-time", "5"]);
    assert_eq!(served(&pki).status, 200);

    let fifo = pki.path("server.crt.fifo");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    std::fs::rename(&fifo, pki.path("server.crt")).expect("FIFO over the certificate");
    // Over three seconds, several background checks meet the FIFO; no handshake waits.
    for attempt in 0..6 {
        let answer = served(&pki);
        assert_eq!(
            answer.status,
            200,
            "handshake {attempt} with a FIFO as certificate: curl exit {}\n{}",
            answer.exit,
            exporter.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    common::poll(Duration::from_secs(10), || {
        let logs = exporter.logs();
        (logs.contains("TLS certificate changed but does not load")
            && logs.contains("not a regular file"))
        .then_some(())
    })
    .unwrap_or_else(|| panic!("the FIFO was not reported:\n{}", exporter.logs()));

    // A renewal from another CA, key first then certificate, each renamed into place.
    let renewed = Pki::new();
    for name in ["server.key", "server.crt"] {
        let staged = pki.path(&format!("{name}.new"));
        std::fs::copy(renewed.path(name), &staged).expect("stage renewal");
        std::fs::rename(&staged, pki.path(name)).expect("renew");
    }
    common::poll(Duration::from_secs(10), || {
        (served(&renewed).status == 200).then_some(())
    })
    .unwrap_or_else(|| panic!("the renewal was not served:\n{}", exporter.logs()));
    assert_ne!(served(&pki).status, 200, "the old CA still verifies");
    assert!(exporter.logs().contains("TLS certificate reloaded"));
}
