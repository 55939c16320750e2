//! Web config tests: parsing (every bad case against its exact message) and real TLS handshakes
//! in memory with certificates generated here (no committed private keys).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::rustls::{self, pki_types::CertificateDer, pki_types::PrivateKeyDer};

use super::*;

/// A throwaway CA that signs server and client certificates.
struct Pki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

/// A certificate and its key, PEM-encoded.
struct Leaf {
    cert: String,
    key: String,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca = params.self_signed(&ca_key).expect("CA cert");
        Pki { ca, ca_key }
    }

    fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    fn leaf(&self, name: &str, usage: rcgen::ExtendedKeyUsagePurpose) -> Leaf {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).expect("leaf params");
        params.extended_key_usages = vec![usage];
        let cert = params
            .signed_by(&key, &self.ca, &self.ca_key)
            .expect("sign leaf");
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    fn server(&self) -> Leaf {
        self.leaf("localhost", rcgen::ExtendedKeyUsagePurpose::ServerAuth)
    }

    fn client(&self) -> Leaf {
        self.leaf("scraper", rcgen::ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// A directory holding `server.crt`, `server.key` and `ca.crt`, and the PKI behind them.
struct Setup {
    dir: tempfile::TempDir,
    pki: Pki,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = Pki::new("test CA");
    let server = pki.server();
    std::fs::write(dir.path().join("server.crt"), &server.cert).expect("write cert");
    std::fs::write(dir.path().join("server.key"), &server.key).expect("write key");
    std::fs::write(dir.path().join("ca.crt"), pki.ca_pem()).expect("write CA");
    Setup { dir, pki }
}

impl Setup {
    fn parse(&self, text: &str) -> Result<WebConfig, WebConfigError> {
        WebConfig::parse(text, "web.yml", self.dir.path())
    }

    fn error(&self, text: &str) -> String {
        match self.parse(text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(error) => error.to_string(),
        }
    }
}

const TLS: &str = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

fn error_of(text: &str) -> String {
    match WebConfig::parse(text, "web.yml", Path::new("/nonexistent")) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(error) => error.to_string(),
    }
}

// ---- good files ----

#[test]
fn empty_file_means_plain_http_without_auth() {
    for text in ["", "# nothing\n", "---\n"] {
        let config = error_free(text);
        assert!(config.tls_acceptor().is_none());
        assert!(!config.requires_auth());
        assert!(config.headers().is_empty());
    }
}

fn error_free(text: &str) -> WebConfig {
    WebConfig::parse(text, "web.yml", Path::new("/nonexistent")).expect("valid file")
}

#[test]
fn empty_sections_are_accepted() {
    let config = error_free("tls_server_config:\nhttp_server_config:\nbasic_auth_users:\n");
    assert!(config.tls_acceptor().is_none());
    assert!(!config.requires_auth());
}

#[test]
fn full_exporter_toolkit_file_loads() {
    let setup = setup();
    let hash = bcrypt::hash("secret", 4).expect("hash");
    let text = format!(
        "{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  \
         min_version: TLS12\n  max_version: TLS13\n  cipher_suites:\n    - \
         TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n    - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n  \
         prefer_server_cipher_suites: true\n  curve_preferences: [X25519, CurveP256]\n\
         http_server_config:\n  headers:\n    X-Frame-Options: deny\n    \
         X-Content-Type-Options: nosniff\n    Content-Security-Policy: \"default-src 'self'\"\n    \
         Strict-Transport-Security: ''\n\
         basic_auth_users:\n  prometheus: {hash}\n"
    );
    let config = setup.parse(&text).expect("valid file");
    assert!(config.tls_acceptor().is_some());
    assert!(config.requires_auth());
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());
    let headers: Vec<(String, String)> = config
        .headers()
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_str().expect("ascii").to_owned()))
        .collect();
    assert_eq!(
        headers,
        vec![
            (
                "content-security-policy".to_owned(),
                "default-src 'self'".to_owned()
            ),
            ("x-frame-options".to_owned(), "deny".to_owned()),
            ("x-content-type-options".to_owned(), "nosniff".to_owned()),
        ]
    );
}

#[test]
fn basic_auth_alone_keeps_plain_http() {
    let hash = bcrypt::hash("secret", 4).expect("hash");
    let config = error_free(&format!("basic_auth_users:\n  alice: {hash}\n"));
    assert!(config.tls_acceptor().is_none());
    assert!(config.requires_auth());
}

#[test]
fn inline_certificate_and_key_load() {
    let setup = setup();
    let server = setup.pki.server();
    let indent = |pem: &str| {
        pem.lines()
            .map(|line| format!("    {line}\n"))
            .collect::<String>()
    };
    let text = format!(
        "tls_server_config:\n  cert: |\n{}  key: |\n{}",
        indent(&server.cert),
        indent(&server.key)
    );
    assert!(setup.parse(&text).expect("valid").tls_acceptor().is_some());
}

#[test]
fn keys_we_cannot_honour_exactly_load_with_warnings() {
    let setup = setup();
    let text = format!(
        "{TLS}  min_version: TLS10\n  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA, \
         TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n  curve_preferences: [CurveP521, X25519]\n\
         http_server_config:\n  http2: true\nrate_limit:\n  interval: 1s\n  burst: 10\n"
    );
    let config = setup.parse(&text).expect("loads");
    assert_eq!(
        config.warnings(),
        [
            "http_server_config.http2: HTTP/2 is not served; clients use HTTP/1.1",
            "tls_server_config.cipher_suites: TLS_RSA_WITH_AES_128_CBC_SHA not offered by rustls \
             (it supports only ECDHE with AES-GCM or CHACHA20-POLY1305 for TLS 1.2); skipped",
            "tls_server_config.curve_preferences: CurveP521 is not offered by rustls; skipped",
            "tls_server_config.min_version: TLS 1.0 and 1.1 are not offered by rustls; TLS 1.2 \
             is the minimum",
        ]
    );
}

#[test]
fn disabled_rate_limit_is_silent() {
    for text in [
        "rate_limit:\n  interval: 0s\n  burst: 0\n",
        "rate_limit:\n  interval: 0\n",
        "rate_limit:\n  burst: 5\n",
        "rate_limit:\n",
    ] {
        let config = error_free(text);
        assert!(config.warnings().is_empty(), "{text}");
        assert_eq!(config.rate_limit(), None, "{text}");
        assert!((0..100).all(|_| config.admit()), "{text}");
    }
}

#[test]
fn rate_limit_admits_the_burst_then_refuses() {
    let config = error_free("rate_limit:\n  interval: 1h\n  burst: 3\n");
    assert_eq!(
        config.rate_limit(),
        Some(RateLimit {
            interval: Duration::from_secs(3600),
            burst: 3
        })
    );
    assert_eq!((0..10).filter(|_| config.admit()).count(), 3);
    // Go's syntax: a decimal interval.
    let config = error_free("rate_limit:\n  interval: 1.5s\n  burst: 1\n");
    assert_eq!(
        config.rate_limit().map(|limit| limit.interval),
        Some(Duration::from_millis(1500))
    );
}

#[test]
fn rate_limit_without_a_burst_refuses_everything_and_says_so() {
    let config = error_free("rate_limit:\n  interval: 1s\n");
    assert_eq!(
        config.warnings(),
        ["rate_limit.burst is 0: every request is refused with 429, as in exporter-toolkit; set \
          a burst of at least 1"]
    );
    assert!(!config.admit());
}

#[test]
fn bad_rate_limit_interval_fails_with_position() {
    assert_eq!(
        error_of("rate_limit:\n  burst: 2\n  interval: 10 seconds\n"),
        "web.yml:3:13: rate_limit.interval: invalid duration \"10 seconds\": unknown unit \" seconds\""
    );
}

#[test]
fn relative_paths_resolve_against_the_file_directory() {
    let setup = setup();
    let path = setup.dir.path().join("web.yml");
    std::fs::write(&path, TLS).expect("write web config");
    // The current directory is the crate root, which has no server.crt: only the file's own
    // directory can make this load.
    let config = WebConfig::load(&path).expect("loads");
    assert!(config.tls_acceptor().is_some());
}

// ---- bad files, each with its exact message ----

#[test]
fn unreadable_file_names_the_path() {
    let error = WebConfig::load(Path::new("/nonexistent/web.yml"))
        .expect_err("missing file")
        .to_string();
    assert_eq!(
        error,
        "/nonexistent/web.yml: cannot read: No such file or directory (os error 2)"
    );
}

#[test]
fn typo_at_top_level_fails_with_position() {
    assert_eq!(
        error_of("basic_auth_user:\n  alice: x\n"),
        "web.yml:1:1: basic_auth_user: unknown field `basic_auth_user`, expected one of \
         `tls_server_config`, `http_server_config`, `basic_auth_users`, `rate_limit`"
    );
}

#[test]
fn typo_in_tls_section_fails_with_position() {
    let message = error_of("tls_server_config:\n  cert_fil: a.crt\n");
    assert!(
        message.starts_with(
            "web.yml:2:3: tls_server_config.cert_fil: unknown field `cert_fil`, expected one of `cert`, \
             `key`, `client_ca`, `cert_file`,"
        ),
        "{message}"
    );
}

#[test]
fn unknown_client_auth_type_fails() {
    assert_eq!(
        error_of("tls_server_config:\n  client_auth_type: RequireClientCertPlease\n"),
        "web.yml:2:3: tls_server_config.client_auth_type: unknown client auth type \
         `RequireClientCertPlease`, expected one of NoClientCert, RequestClientCert, \
         RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
    );
}

#[test]
fn unknown_tls_version_fails() {
    assert_eq!(
        error_of("tls_server_config:\n  min_version: TLS14\n"),
        "web.yml:2:16: tls_server_config.min_version: unknown variant `TLS14`, expected one of \
         `TLS10`, `TLS11`, `TLS12`, `TLS13`"
    );
}

#[test]
fn unknown_cipher_suite_fails() {
    assert_eq!(
        error_of("tls_server_config:\n  cipher_suites:\n    - TLS_RSA_WITH_RC4_128_SHA\n"),
        "web.yml:3:5: tls_server_config.cipher_suites[0]: unknown cipher suite \
         `TLS_RSA_WITH_RC4_128_SHA` (Go's names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)"
    );
}

#[test]
fn unknown_curve_fails() {
    assert_eq!(
        error_of("tls_server_config:\n  curve_preferences: [P256]\n"),
        "web.yml:2:23: tls_server_config.curve_preferences[0]: unknown variant `P256`, expected \
         one of `CurveP256`, `CurveP384`, `CurveP521`, `X25519`"
    );
}

#[test]
fn header_that_cannot_be_configured_fails() {
    assert_eq!(
        error_of("http_server_config:\n  headers:\n    X-Powered-By: xen\n"),
        "web.yml:3:5: http_server_config.headers.X-Powered-By: unknown field `X-Powered-By`, expected one of \
         `Content-Security-Policy`, `X-Frame-Options`, `X-Content-Type-Options`, \
         `X-XSS-Protection`, `Strict-Transport-Security`"
    );
}

#[test]
fn header_with_a_value_outside_its_enumeration_fails() {
    assert_eq!(
        error_of("http_server_config:\n  headers:\n    X-Frame-Options: allow\n"),
        "web.yml:3:22: http_server_config.headers.X-Frame-Options: unknown variant `allow`, \
         expected `deny` or `sameorigin`"
    );
}

#[test]
fn users_as_a_list_fail() {
    assert_eq!(
        error_of("basic_auth_users:\n  - alice\n"),
        "web.yml:2:3: basic_auth_users: invalid type: sequence, expected a mapping"
    );
}

#[test]
fn bad_bcrypt_hash_names_the_user_and_line() {
    assert_eq!(
        error_of("basic_auth_users:\n  alice: plaintext\n"),
        "web.yml:2:3: basic_auth_users.alice: not a bcrypt hash (60 characters, like $2y$10$…); \
         create one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"
    );
}

#[test]
fn certificate_without_key_fails() {
    let setup = setup();
    assert_eq!(
        setup.error("tls_server_config:\n  cert_file: server.crt\n"),
        "web.yml:1:1: tls_server_config.key_file: missing one of key or key_file"
    );
}

#[test]
fn client_auth_type_alone_asks_for_a_certificate() {
    assert_eq!(
        error_of("tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n"),
        "web.yml:1:1: tls_server_config.cert_file: missing one of cert or cert_file"
    );
}

#[test]
fn missing_certificate_file_names_its_path() {
    let setup = setup();
    let message =
        setup.error("tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n");
    let path = setup.dir.path().join("nope.crt");
    assert_eq!(
        message,
        format!(
            "web.yml:2:3: tls_server_config.cert_file: {}: No such file or directory (os error 2)",
            path.display()
        )
    );
}

#[test]
fn certificate_file_without_pem_fails() {
    let setup = setup();
    std::fs::write(setup.dir.path().join("junk.crt"), "not a certificate\n").expect("write");
    let message =
        setup.error("tls_server_config:\n  cert_file: junk.crt\n  key_file: server.key\n");
    assert_eq!(
        message,
        format!(
            "web.yml:2:3: tls_server_config.cert_file: {}: no PEM certificate found",
            setup.dir.path().join("junk.crt").display()
        )
    );
}

#[test]
fn key_of_another_certificate_fails() {
    let setup = setup();
    let other = setup.pki.server();
    std::fs::write(setup.dir.path().join("other.key"), other.key).expect("write");
    let message =
        setup.error("tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n");
    let dir = setup.dir.path().display();
    assert_eq!(
        message,
        format!(
            "web.yml:3:3: tls_server_config.key_file: {dir}/other.key does not fit \
             {dir}/server.crt: private key and certificate do not match"
        )
    );
}

#[test]
fn key_file_holding_a_certificate_fails() {
    let setup = setup();
    let message =
        setup.error("tls_server_config:\n  cert_file: server.crt\n  key_file: server.crt\n");
    assert!(
        message.starts_with(&format!(
            "web.yml:3:3: tls_server_config.key_file: {}/server.crt: no PEM private key found",
            setup.dir.path().display()
        )),
        "{message}"
    );
}

#[test]
fn client_ca_without_policy_fails() {
    let setup = setup();
    assert_eq!(
        setup.error(&format!("{TLS}  client_ca_file: ca.crt\n")),
        "web.yml:4:3: tls_server_config.client_auth_type: a client CA is configured without a \
         client auth policy (set client_auth_type, e.g. RequireAndVerifyClientCert)"
    );
}

#[test]
fn verifying_policy_without_ca_fails() {
    let setup = setup();
    assert_eq!(
        setup.error(&format!(
            "{TLS}  client_auth_type: VerifyClientCertIfGiven\n"
        )),
        "web.yml:4:3: tls_server_config.client_ca_file: client_auth_type verifies client \
         certificates, so client_ca_file (or client_ca) is required"
    );
}

#[test]
fn client_ca_file_without_certificates_fails() {
    let setup = setup();
    std::fs::write(setup.dir.path().join("empty.crt"), "").expect("write");
    assert_eq!(
        setup.error(&format!(
            "{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: empty.crt\n"
        )),
        format!(
            "web.yml:5:3: tls_server_config.client_ca_file: {}/empty.crt: no PEM certificate found",
            setup.dir.path().display()
        )
    );
}

#[test]
fn tls_versions_rustls_cannot_speak_fail() {
    let setup = setup();
    assert_eq!(
        setup.error(&format!("{TLS}  max_version: TLS11\n")),
        "web.yml:4:3: tls_server_config.max_version: rustls speaks TLS 1.2 and 1.3 only; set \
         max_version to TLS12 or TLS13"
    );
    assert_eq!(
        setup.error(&format!(
            "{TLS}  min_version: TLS13\n  max_version: TLS12\n"
        )),
        "web.yml:4:3: tls_server_config.min_version: is above max_version"
    );
}

#[test]
fn tls12_only_with_no_usable_suite_fails() {
    let setup = setup();
    assert_eq!(
        setup.error(&format!(
            "{TLS}  max_version: TLS12\n  cipher_suites: [TLS_RSA_WITH_AES_128_GCM_SHA256]\n"
        )),
        "web.yml:5:3: tls_server_config.cipher_suites: no listed suite is offered by rustls, so \
         TLS 1.2 (max_version) cannot be served"
    );
}

#[test]
fn client_allowed_sans_need_a_policy_that_requires_a_certificate() {
    let setup = setup();
    assert_eq!(
        setup.error(&format!(
            "{TLS}  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n  \
             client_allowed_sans: [scraper]\n"
        )),
        "web.yml:6:3: tls_server_config.client_allowed_sans: requires client_auth_type \
         RequireAnyClientCert or RequireAndVerifyClientCert (other policies let a client connect \
         without a certificate to match)"
    );
}

#[test]
fn client_allowed_sans_refuse_email_entries() {
    let setup = setup();
    assert_eq!(
        setup.error(&format!(
            "{TLS}  client_auth_type: RequireAnyClientCert\n  \
             client_allowed_sans: [scraper, ops@example.org]\n"
        )),
        "web.yml:5:3: tls_server_config.client_allowed_sans: `ops@example.org`: e-mail SANs \
         cannot be matched by xen_exporter (DNS names, IP addresses and URIs can)"
    );
}

#[test]
fn only_curve_rustls_lacks_fails() {
    let setup = setup();
    assert_eq!(
        setup.error(&format!("{TLS}  curve_preferences: [CurveP521]\n")),
        "web.yml:4:3: tls_server_config.curve_preferences: none of these curves is supported \
         (X25519, CurveP256, CurveP384 are)"
    );
}

#[test]
fn header_value_with_control_characters_fails() {
    assert_eq!(
        error_of("http_server_config:\n  headers:\n    Content-Security-Policy: \"a\\nb\"\n"),
        "web.yml:3:5: http_server_config.headers.Content-Security-Policy: not a valid header \
         value (control characters?)"
    );
}

#[test]
fn user_name_with_colon_fails() {
    let hash = bcrypt::hash("x", 4).expect("hash");
    assert_eq!(
        error_of(&format!("basic_auth_users:\n  \"a:b\": {hash}\n")),
        "web.yml:2:4: basic_auth_users.a:b: a user name cannot contain ':' in HTTP basic auth"
    );
}

// ---- TLS behaviour: real handshakes in memory ----

/// How a handshake ended, as the server saw it.
#[derive(Debug, PartialEq, Eq)]
enum Handshake {
    Accepted {
        version: rustls::ProtocolVersion,
        suite: rustls::CipherSuite,
        server_cert: Vec<u8>,
    },
    Refused,
}

fn client_config(pki: &Pki, client: Option<&Leaf>, max_tls12: bool) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(pki.ca.der().to_vec()))
        .expect("add CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if max_tls12 {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(leaf) => {
            use rustls::pki_types::pem::PemObject;
            let chain = vec![CertificateDer::from_pem_slice(leaf.cert.as_bytes()).expect("cert")];
            let key = PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).expect("key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client cert")
        }
    };
    Arc::new(config)
}

/// Runs one handshake over an in-memory pipe and reports what the server saw.
async fn handshake(config: &WebConfig, client: Arc<rustls::ClientConfig>) -> Handshake {
    let acceptor = config.tls_acceptor().expect("TLS configured");
    let connector = tokio_rustls::TlsConnector::from(client);
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let server = async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = acceptor.accept(server_io).await.ok()?;
        // With TLS 1.3 the server judges the client certificate after the client thinks it is
        // done: exchange one byte each way so that a refusal shows on both sides.
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.ok()?;
        stream.write_all(b"!").await.ok()?;
        stream.flush().await.ok()?;
        let (_, connection) = stream.get_ref();
        Some(Handshake::Accepted {
            version: connection.protocol_version()?,
            suite: connection.negotiated_cipher_suite()?.suite(),
            server_cert: Vec::new(),
        })
    };
    let client = async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = connector.connect(name, client_io).await.ok()?;
        stream.write_all(b"?").await.ok()?;
        stream.flush().await.ok()?;
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.ok()?;
        let (_, connection) = stream.get_ref();
        connection
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|cert| cert.to_vec())
    };
    match tokio::join!(server, client) {
        (Some(Handshake::Accepted { version, suite, .. }), Some(server_cert)) => {
            Handshake::Accepted {
                version,
                suite,
                server_cert,
            }
        }
        _ => Handshake::Refused,
    }
}

fn accepted(outcome: &Handshake) -> bool {
    matches!(outcome, Handshake::Accepted { .. })
}

#[tokio::test]
async fn client_auth_policies_behave_like_go() {
    let setup = setup();
    let good = setup.pki.client();
    let stranger_pki = Pki::new("someone else's CA");
    let stranger = stranger_pki.client();
    // (policy, no certificate, our CA's certificate, a stranger's certificate)
    let cases = [
        ("NoClientCert", true, true, true),
        ("RequestClientCert", true, true, true),
        ("RequireAnyClientCert", false, true, true),
        ("VerifyClientCertIfGiven", true, true, false),
        ("RequireAndVerifyClientCert", false, true, false),
    ];
    for (policy, none, ours, theirs) in cases {
        let ca = if policy.contains("Verify") {
            "  client_ca_file: ca.crt\n"
        } else {
            ""
        };
        let config = setup
            .parse(&format!("{TLS}  client_auth_type: {policy}\n{ca}"))
            .expect("valid");
        let results = (
            accepted(&handshake(&config, client_config(&setup.pki, None, false)).await),
            accepted(&handshake(&config, client_config(&setup.pki, Some(&good), false)).await),
            accepted(&handshake(&config, client_config(&setup.pki, Some(&stranger), false)).await),
        );
        assert_eq!(results, (none, ours, theirs), "{policy}");
    }
}

#[tokio::test]
async fn client_allowed_sans_admit_only_listed_names() {
    let setup = setup();
    let scraper = setup.pki.client();
    let other = setup
        .pki
        .leaf("other", rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    let by_ip = setup
        .pki
        .leaf("192.0.2.7", rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    let by_uri = {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = vec![rcgen::SanType::URI(
            "spiffe://example.org/prometheus".try_into().expect("URI"),
        )];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params
            .signed_by(&key, &setup.pki.ca, &setup.pki.ca_key)
            .expect("sign");
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    };
    let config = |sans: &str| {
        setup
            .parse(&format!(
                "{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  \
                 client_allowed_sans: {sans}\n"
            ))
            .expect("valid")
    };
    let listed = config("[scraper, 192.0.2.7, \"spiffe://example.org/prometheus\"]");
    for (leaf, expected) in [
        (&scraper, true),
        (&by_ip, true),
        (&by_uri, true),
        (&other, false),
    ] {
        let outcome = handshake(&listed, client_config(&setup.pki, Some(leaf), false)).await;
        assert_eq!(accepted(&outcome), expected, "{}", leaf.cert);
    }
    // No certificate at all is still refused (the policy requires one).
    assert!(!accepted(
        &handshake(&listed, client_config(&setup.pki, None, false)).await
    ));
    // An empty list admits nobody, as in exporter-toolkit.
    let empty = config("[]");
    assert!(!accepted(
        &handshake(&empty, client_config(&setup.pki, Some(&scraper), false)).await
    ));
}

#[tokio::test]
async fn versions_and_cipher_suites_are_enforced() {
    let setup = setup();
    let config = setup
        .parse(&format!(
            "{TLS}  max_version: TLS12\n  cipher_suites: \
             [TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256]\n"
        ))
        .expect("valid");
    match handshake(&config, client_config(&setup.pki, None, false)).await {
        Handshake::Accepted { version, suite, .. } => {
            assert_eq!(version, rustls::ProtocolVersion::TLSv1_2);
            assert_eq!(
                suite,
                rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            );
        }
        Handshake::Refused => panic!("TLS 1.2 handshake refused"),
    }
    let tls13_only = setup
        .parse(&format!("{TLS}  min_version: TLS13\n"))
        .expect("valid");
    assert_eq!(
        handshake(&tls13_only, client_config(&setup.pki, None, true)).await,
        Handshake::Refused
    );
    match handshake(&tls13_only, client_config(&setup.pki, None, false)).await {
        Handshake::Accepted { version, .. } => {
            assert_eq!(version, rustls::ProtocolVersion::TLSv1_3)
        }
        Handshake::Refused => panic!("TLS 1.3 handshake refused"),
    }
}

#[tokio::test]
async fn renewed_certificate_is_served_without_restart() {
    let setup = setup();
    let config = setup.parse(TLS).expect("valid");
    let first = match handshake(&config, client_config(&setup.pki, None, false)).await {
        Handshake::Accepted { server_cert, .. } => server_cert,
        Handshake::Refused => panic!("refused"),
    };
    // A broken renewal (certificate written, key not yet) keeps the old pair.
    let renewed = setup.pki.server();
    std::fs::write(
        setup.dir.path().join("server.crt"),
        format!("{}\n", renewed.cert),
    )
    .expect("write cert");
    config.refresh_certificate();
    match handshake(&config, client_config(&setup.pki, None, false)).await {
        Handshake::Accepted { server_cert, .. } => assert_eq!(server_cert, first),
        Handshake::Refused => panic!("refused during renewal"),
    }
    std::fs::write(setup.dir.path().join("server.key"), &renewed.key).expect("write key");
    config.refresh_certificate();
    match handshake(&config, client_config(&setup.pki, None, false)).await {
        Handshake::Accepted { server_cert, .. } => assert_ne!(server_cert, first),
        Handshake::Refused => panic!("refused after renewal"),
    }
}

/// A handshake runs on a runtime worker: it presents the pair last read and never reads the
/// files itself; the background refresh does.
#[tokio::test]
async fn a_handshake_reads_no_file() {
    let setup = setup();
    let config = setup.parse(TLS).expect("valid");
    let first = match handshake(&config, client_config(&setup.pki, None, false)).await {
        Handshake::Accepted { server_cert, .. } => server_cert,
        Handshake::Refused => panic!("refused"),
    };
    let renewed = setup.pki.server();
    std::fs::write(setup.dir.path().join("server.crt"), &renewed.cert).expect("write cert");
    std::fs::write(setup.dir.path().join("server.key"), &renewed.key).expect("write key");
    for _ in 0..3 {
        match handshake(&config, client_config(&setup.pki, None, false)).await {
            Handshake::Accepted { server_cert, .. } => {
                assert_eq!(server_cert, first, "a handshake read the renewed files")
            }
            Handshake::Refused => panic!("refused"),
        }
    }
    // A FIFO with no writer in the certificate's place: opening it for reading would wait for
    // a writer. The refresh refuses it without waiting and keeps the renewed pair.
    config.refresh_certificate();
    let renewed_cert = match handshake(&config, client_config(&setup.pki, None, false)).await {
        Handshake::Accepted { server_cert, .. } => server_cert,
        Handshake::Refused => panic!("refused"),
    };
    assert_ne!(renewed_cert, first);
    let cert = setup.dir.path().join("server.crt");
    std::fs::remove_file(&cert).expect("remove cert");
    let status = std::process::Command::new("mkfifo")
        .arg(&cert)
        .status()
        .expect("run mkfifo");
    assert!(status.success());
    let refreshed = {
        let config = Arc::new(config);
        let refresher = config.clone();
        let done = tokio::task::spawn_blocking(move || refresher.refresh_certificate());
        let done = tokio::time::timeout(Duration::from_secs(5), done).await;
        if done.is_err() {
            // Release the blocked reader (the runtime waits for it at shutdown), then fail.
            drop(std::fs::OpenOptions::new().write(true).open(&cert));
            panic!("refresh blocked on a FIFO");
        }
        config
    };
    match handshake(&refreshed, client_config(&setup.pki, None, false)).await {
        Handshake::Accepted { server_cert, .. } => assert_eq!(server_cert, renewed_cert),
        Handshake::Refused => panic!("refused"),
    }
}

/// The web configuration goes through the same limits as the main one, before its parser.
#[test]
fn deeply_nested_web_config_is_refused_before_parsing() {
    let text = format!("http_server_config: {}", "[".repeat(100_000));
    let started = std::time::Instant::now();
    assert_eq!(
        error_of(&text),
        "web.yml:1:83: nested deeper than 64 levels: not a configuration file"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}
