//! `tls_server_config` to a rustls server (ring provider): certificate and key (re-read when their
//! files change, checked once a second off the runtime; exporter-toolkit re-reads them per
//! connection), versions, cipher suites, curves and client-certificate policy.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::HandshakeSignatureValid;
use tokio_rustls::rustls::crypto::{ring as provider, CryptoProvider, SupportedKxGroup};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
    SupportedCipherSuite,
};

use super::file::{ClientAuthType, Curve, TlsSection, TlsVersion};
use super::{resolve, Problem};
use crate::lock::{MutexUnpoisoned, RwLockUnpoisoned};

const SECTION: &str = "tls_server_config";

/// Where PEM text comes from: a file (re-read when it changes) or the web config itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CertificateSource {
    File(PathBuf),
    Inline(String),
}

/// Reads a regular file. Opened without blocking and refused if it is anything else: a FIFO
/// put in a certificate's place would otherwise park the reading thread until a writer comes.
fn read_regular_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

impl CertificateSource {
    fn read(&self) -> Result<Vec<u8>, String> {
        match self {
            CertificateSource::File(path) => {
                read_regular_file(path).map_err(|error| format!("{}: {error}", path.display()))
            }
            CertificateSource::Inline(text) => Ok(text.as_bytes().to_vec()),
        }
    }

    fn describe(&self) -> String {
        match self {
            CertificateSource::File(path) => path.display().to_string(),
            CertificateSource::Inline(_) => "inline PEM".to_owned(),
        }
    }

    /// The file's bytes, to notice a renewal; `None` for inline text (never changes). Content,
    /// not mtime: two writes within one coarse kernel tick share an mtime, and a few kilobytes
    /// once a second cost nothing.
    fn stamp(&self) -> Option<Vec<u8>> {
        match self {
            CertificateSource::File(path) => read_regular_file(path).ok(),
            CertificateSource::Inline(_) => None,
        }
    }
}

/// Builds the server configuration, or names the field that stops it. The certificate is
/// returned beside it: [`ReloadingCertificate::refresh`] is called from the background.
pub(crate) fn server_config(
    section: TlsSection,
    directory: &Path,
    warnings: &mut Vec<String>,
) -> Result<(Arc<ServerConfig>, Arc<ReloadingCertificate>), Problem> {
    let cert = source(
        "cert",
        section.cert.as_deref(),
        section.cert_file.as_deref(),
        directory,
        warnings,
    )?;
    let key = source(
        "key",
        section.key.as_deref(),
        section.key_file.as_deref(),
        directory,
        warnings,
    )?;
    let provider = Arc::new(crypto_provider(&section, warnings)?);
    let versions = versions(&section, &provider, warnings)?;
    let resolver = Arc::new(ReloadingCertificate::new(cert, key, provider.clone())?);
    let verifier = client_verifier(&section, directory, &provider)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|error| problem("min_version", &error.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(resolver.clone());
    // Go's default, and exporter-toolkit's: the server's order in cipher_suites wins.
    config.ignore_client_order = section.prefer_server_cipher_suites.unwrap_or(true);
    // We serve HTTP/1.1 only; saying so lets HTTP/2-capable clients settle at once.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), resolver))
}

fn problem(key: &str, reason: &str) -> Problem {
    Problem {
        field: format!("{SECTION}.{key}"),
        reason: reason.to_owned(),
        near: vec![format!("{key}:"), format!("{SECTION}:")],
    }
}

/// Picks the file or the inline text for `cert`/`key`; the file wins, as in exporter-toolkit.
fn source(
    key: &str,
    inline: Option<&str>,
    file: Option<&Path>,
    directory: &Path,
    warnings: &mut Vec<String>,
) -> Result<CertificateSource, Problem> {
    let inline = inline.filter(|text| !text.is_empty());
    let file = file.filter(|path| !path.as_os_str().is_empty());
    match (file, inline) {
        (Some(path), inline) => {
            if inline.is_some() {
                warnings.push(format!(
                    "{SECTION}: both {key} and {key}_file are set; {key}_file is used"
                ));
            }
            Ok(CertificateSource::File(resolve(directory, path)))
        }
        (None, Some(text)) => Ok(CertificateSource::Inline(text.to_owned())),
        (None, None) => Err(Problem {
            field: format!("{SECTION}.{key}_file"),
            reason: format!("missing one of {key} or {key}_file"),
            near: vec![format!("{SECTION}:")],
        }),
    }
}

/// The ring provider narrowed to the configured cipher suites and curves.
fn crypto_provider(
    section: &TlsSection,
    warnings: &mut Vec<String>,
) -> Result<CryptoProvider, Problem> {
    let mut crypto = provider::default_provider();
    if let Some(names) = section
        .cipher_suites
        .as_ref()
        .filter(|names| !names.is_empty())
    {
        // As in Go, cipher_suites governs TLS 1.2 only; TLS 1.3 suites stay as they are.
        let mut suites: Vec<SupportedCipherSuite> = crypto
            .cipher_suites
            .iter()
            .copied()
            .filter(|suite| suite.tls13().is_some())
            .collect();
        let mut unsupported = Vec::new();
        for name in names {
            match tls12_suite(&name.0) {
                Some(suite) if !suites.contains(&suite) => suites.push(suite),
                Some(_) => {}
                None if name.0.starts_with("TLS_AES_") || name.0.starts_with("TLS_CHACHA20") => {}
                None => unsupported.push(name.0.clone()),
            }
        }
        if !unsupported.is_empty() {
            warnings.push(format!(
                "{SECTION}.cipher_suites: {} not offered by rustls (it supports only ECDHE with \
                 AES-GCM or CHACHA20-POLY1305 for TLS 1.2); skipped",
                unsupported.join(", ")
            ));
        }
        crypto.cipher_suites = suites;
    }
    if let Some(curves) = section
        .curve_preferences
        .as_ref()
        .filter(|curves| !curves.is_empty())
    {
        let mut groups: Vec<&'static dyn SupportedKxGroup> = Vec::new();
        for curve in curves {
            match curve {
                Curve::CurveP256 => groups.push(provider::kx_group::SECP256R1),
                Curve::CurveP384 => groups.push(provider::kx_group::SECP384R1),
                Curve::X25519 => groups.push(provider::kx_group::X25519),
                Curve::CurveP521 => warnings.push(format!(
                    "{SECTION}.curve_preferences: CurveP521 is not offered by rustls; skipped"
                )),
            }
        }
        if groups.is_empty() {
            return Err(problem(
                "curve_preferences",
                "none of these curves is supported (X25519, CurveP256, CurveP384 are)",
            ));
        }
        crypto.kx_groups = groups;
    }
    Ok(crypto)
}

/// The rustls TLS 1.2 suite for Go's name; `None` for suites rustls does not implement.
fn tls12_suite(name: &str) -> Option<SupportedCipherSuite> {
    use provider::cipher_suite as cs;
    Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        _ => return None,
    })
}

/// The protocol versions between `min_version` (default TLS12) and `max_version` (default
/// TLS13) that rustls speaks and the chosen suites allow.
fn versions(
    section: &TlsSection,
    crypto: &CryptoProvider,
    warnings: &mut Vec<String>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, Problem> {
    let min = section.min_version.unwrap_or(TlsVersion::TLS12);
    let max = section.max_version.unwrap_or(TlsVersion::TLS13);
    if max < TlsVersion::TLS12 {
        return Err(problem(
            "max_version",
            "rustls speaks TLS 1.2 and 1.3 only; set max_version to TLS12 or TLS13",
        ));
    }
    if min > max {
        return Err(problem("min_version", "is above max_version"));
    }
    if min < TlsVersion::TLS12 {
        warnings.push(format!(
            "{SECTION}.min_version: TLS 1.0 and 1.1 are not offered by rustls; TLS 1.2 is the minimum"
        ));
    }
    let tls12_suites = crypto
        .cipher_suites
        .iter()
        .any(|suite| suite.tls13().is_none());
    let mut versions = Vec::new();
    if max == TlsVersion::TLS13 {
        versions.push(&rustls::version::TLS13);
    }
    if min <= TlsVersion::TLS12 {
        if tls12_suites {
            versions.push(&rustls::version::TLS12);
        } else if max == TlsVersion::TLS12 {
            return Err(problem(
                "cipher_suites",
                "no listed suite is offered by rustls, so TLS 1.2 (max_version) cannot be served",
            ));
        } else {
            warnings.push(format!(
                "{SECTION}.cipher_suites: no listed TLS 1.2 suite is offered by rustls; only TLS 1.3 is served"
            ));
        }
    }
    Ok(versions)
}

/// Go's client-auth policies mapped onto rustls verifiers.
fn client_verifier(
    section: &TlsSection,
    directory: &Path,
    crypto: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, Problem> {
    let policy = section
        .client_auth_type
        .unwrap_or(ClientAuthType::NoClientCert);
    let ca_file = section
        .client_ca_file
        .as_deref()
        .filter(|path| !path.as_os_str().is_empty());
    let ca_inline = section.client_ca.as_deref().filter(|text| !text.is_empty());
    let ca = match (ca_file, ca_inline) {
        (Some(path), _) => Some((
            "client_ca_file",
            CertificateSource::File(resolve(directory, path)),
        )),
        (None, Some(text)) => Some(("client_ca", CertificateSource::Inline(text.to_owned()))),
        (None, None) => None,
    };
    if let Some((key, _)) = &ca {
        if policy == ClientAuthType::NoClientCert {
            let mut problem = problem(
                "client_auth_type",
                "a client CA is configured without a client auth policy (set client_auth_type, \
                 e.g. RequireAndVerifyClientCert)",
            );
            problem.near.insert(0, format!("{key}:"));
            return Err(problem);
        }
    }
    let roots = |key: &str, source: &CertificateSource| -> Result<Arc<RootCertStore>, Problem> {
        let pem = source.read().map_err(|reason| problem(key, &reason))?;
        let mut store = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert =
                cert.map_err(|error| problem(key, &format!("{}: {error}", source.describe())))?;
            store
                .add(cert)
                .map_err(|error| problem(key, &format!("{}: {error}", source.describe())))?;
        }
        if store.is_empty() {
            return Err(problem(
                key,
                &format!("{}: no PEM certificate found", source.describe()),
            ));
        }
        Ok(Arc::new(store))
    };
    let verified = |allow_unauthenticated: bool| -> Result<Arc<dyn ClientCertVerifier>, Problem> {
        let Some((key, source)) = &ca else {
            let mut problem = problem(
                "client_ca_file",
                "client_auth_type verifies client certificates, so client_ca_file (or client_ca) \
                 is required",
            );
            problem.near.insert(0, "client_auth_type:".to_owned());
            return Err(problem);
        };
        let mut builder =
            WebPkiClientVerifier::builder_with_provider(roots(key, source)?, crypto.clone());
        if allow_unauthenticated {
            builder = builder.allow_unauthenticated();
        }
        builder
            .build()
            .map_err(|error| problem(key, &error.to_string()))
    };
    let verifier = match policy {
        ClientAuthType::NoClientCert => WebPkiClientVerifier::no_client_auth(),
        ClientAuthType::RequestClientCert => Arc::new(AnyClientCert {
            mandatory: false,
            crypto: crypto.clone(),
        }),
        ClientAuthType::RequireAnyClientCert => Arc::new(AnyClientCert {
            mandatory: true,
            crypto: crypto.clone(),
        }),
        ClientAuthType::VerifyClientCertIfGiven => verified(true)?,
        ClientAuthType::RequireAndVerifyClientCert => verified(false)?,
    };
    // As in exporter-toolkit, a list (even an empty one) restricts clients to those SANs.
    let Some(allowed) = section.client_allowed_sans.clone() else {
        return Ok(verifier);
    };
    if !matches!(
        policy,
        ClientAuthType::RequireAnyClientCert | ClientAuthType::RequireAndVerifyClientCert
    ) {
        return Err(problem(
            "client_allowed_sans",
            "requires client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert \
             (other policies let a client connect without a certificate to match)",
        ));
    }
    if let Some(email) = allowed
        .iter()
        .find(|san| san.contains('@') && !san.contains("://"))
    {
        // rustls-webpki exposes DNS, IP and URI names only; refusing beats never matching.
        return Err(problem(
            "client_allowed_sans",
            &format!("`{email}`: e-mail SANs cannot be matched by xen_exporter (DNS names, IP addresses and URIs can)"),
        ));
    }
    Ok(Arc::new(AllowedSans {
        inner: verifier,
        allowed,
    }))
}

/// exporter-toolkit's `client_allowed_sans`: after the policy's own checks, the client
/// certificate must carry one of these SANs, compared as exact strings (DNS names, URIs) or as
/// addresses (IP).
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

impl fmt::Debug for AllowedSans {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AllowedSans")
            .field("allowed", &self.allowed)
            .finish()
    }
}

impl AllowedSans {
    fn matches(&self, end_entity: &CertificateDer<'_>) -> bool {
        let Ok(cert) = webpki::EndEntityCert::try_from(end_entity) else {
            return false;
        };
        let names: Vec<&str> = cert
            .valid_dns_names()
            .chain(cert.valid_uri_names())
            .collect();
        self.allowed.iter().any(|allowed| {
            if let Ok(address) = allowed.parse::<std::net::IpAddr>() {
                let name = ServerName::IpAddress(address.into());
                return cert.verify_is_valid_for_subject_name(&name).is_ok();
            }
            names.iter().any(|name| name == allowed)
        })
    }
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if self.matches(end_entity) {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Go's RequestClientCert / RequireAnyClientCert: ask for a certificate and check that the client
/// holds its key, without checking who issued it.
struct AnyClientCert {
    mandatory: bool,
    crypto: Arc<CryptoProvider>,
}

impl fmt::Debug for AnyClientCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyClientCert")
            .field("mandatory", &self.mandatory)
            .finish()
    }
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.crypto.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.crypto.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.crypto
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The server certificate, re-read when its file or its key's file changes (certificate
/// renewal without a restart). A renewal that does not load keeps the previous pair and logs once.
///
/// A handshake only clones the current pair: it runs on a runtime worker, and reading files
/// there (under a lock every other handshake waits on) would stall the server on a slow or
/// blocking file. The files are read by [`refresh`](Self::refresh), on a blocking thread.
pub(crate) struct ReloadingCertificate {
    cert: CertificateSource,
    key: CertificateSource,
    crypto: Arc<CryptoProvider>,
    /// What the files held when last read; only `refresh` takes it.
    stamp: Mutex<Stamp>,
    current: RwLock<Arc<CertifiedKey>>,
}

type Stamp = (Option<Vec<u8>>, Option<Vec<u8>>);

impl fmt::Debug for ReloadingCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCertificate")
            .field("cert", &self.cert.describe())
            .field("key", &self.key.describe())
            .finish()
    }
}

impl ReloadingCertificate {
    fn new(
        cert: CertificateSource,
        key: CertificateSource,
        crypto: Arc<CryptoProvider>,
    ) -> Result<Self, Problem> {
        let stamp = (cert.stamp(), key.stamp());
        let current = load_pair(&cert, &key, &crypto)?;
        Ok(ReloadingCertificate {
            cert,
            key,
            crypto,
            stamp: Mutex::new(stamp),
            current: RwLock::new(Arc::new(current)),
        })
    }

    /// The pair a handshake presents: no I/O, no waiting beyond a pointer copy.
    fn current(&self) -> Arc<CertifiedKey> {
        self.current.read_unpoisoned().clone()
    }

    /// Reads the files and swaps in the pair they hold if they changed. Blocking file I/O: call
    /// it off the runtime's workers.
    pub(crate) fn refresh(&self) {
        // A poisoned stamp is still a complete value: it is only ever replaced whole.
        let mut state = self.stamp.lock_unpoisoned();
        let stamp = (self.cert.stamp(), self.key.stamp());
        if stamp == *state {
            return;
        }
        // Remember the stamp either way: a broken renewal is reported once, not per check.
        *state = stamp;
        match load_pair(&self.cert, &self.key, &self.crypto) {
            Ok(loaded) => {
                tracing::info!(cert = %self.cert.describe(), "TLS certificate reloaded");
                *self.current.write_unpoisoned() = Arc::new(loaded);
            }
            Err(problem) => tracing::warn!(
                field = %problem.field,
                reason = %problem.reason,
                "TLS certificate changed but does not load; still serving the previous one"
            ),
        }
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Reads the certificate chain and its private key and checks that they belong together.
fn load_pair(
    cert: &CertificateSource,
    key: &CertificateSource,
    crypto: &CryptoProvider,
) -> Result<CertifiedKey, Problem> {
    let cert_key = match cert {
        CertificateSource::File(_) => "cert_file",
        CertificateSource::Inline(_) => "cert",
    };
    let key_key = match key {
        CertificateSource::File(_) => "key_file",
        CertificateSource::Inline(_) => "key",
    };
    let cert_pem = cert.read().map_err(|reason| problem(cert_key, &reason))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| problem(cert_key, &format!("{}: {error}", cert.describe())))?;
    if chain.is_empty() {
        return Err(problem(
            cert_key,
            &format!("{}: no PEM certificate found", cert.describe()),
        ));
    }
    let key_pem = key.read().map_err(|reason| problem(key_key, &reason))?;
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| {
        problem(
            key_key,
            &format!("{}: no PEM private key found ({error})", key.describe()),
        )
    })?;
    CertifiedKey::from_der(chain, private_key, crypto).map_err(|error| {
        let reason = match error {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                "private key and certificate do not match".to_owned()
            }
            other => other.to_string(),
        };
        problem(
            key_key,
            &format!(
                "{} does not fit {}: {reason}",
                key.describe(),
                cert.describe()
            ),
        )
    })
}
