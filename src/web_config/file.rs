//! The file's YAML shape, exactly exporter-toolkit's keys: unknown keys are typos and fail with
//! their position; known keys we cannot honour exactly become warnings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use serde::Deserialize;

use super::rate_limit::RateLimit;

/// What the file says, checked for shape and enumerated values, before any file it names is read.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    /// `None` when no TLS key is set (exporter-toolkit's "TLS is disabled").
    pub tls: Option<TlsSection>,
    pub users: BTreeMap<String, String>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `None` when the file sets no `rate_limit` or an interval of 0.
    pub rate_limit: Option<RateLimit>,
    pub warnings: Vec<String>,
}

/// A file that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParseError {
    Located {
        line: usize,
        column: usize,
        field: String,
        reason: String,
    },
    Unlocated {
        field: String,
        reason: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    tls_server_config: Option<TlsSection>,
    http_server_config: Option<HttpSection>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    rate_limit: Option<RateLimitSection>,
}

/// `tls_server_config`, key for key.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsSection {
    /// Inline PEM certificate (instead of `cert_file`).
    pub cert: Option<String>,
    /// Inline PEM private key (instead of `key_file`).
    pub key: Option<String>,
    /// Inline PEM client CA (instead of `client_ca_file`).
    pub client_ca: Option<String>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub client_auth_type: Option<ClientAuthType>,
    pub client_ca_file: Option<PathBuf>,
    pub client_allowed_sans: Option<Vec<String>>,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
    pub cipher_suites: Option<Vec<CipherSuiteName>>,
    pub prefer_server_cipher_suites: Option<bool>,
    pub curve_preferences: Option<Vec<Curve>>,
}

impl TlsSection {
    /// exporter-toolkit's `IsEnabled`: any certificate, key, client CA or client auth type set.
    fn is_enabled(&self) -> bool {
        set(&self.cert)
            || set(&self.key)
            || set(&self.client_ca)
            || self
                .cert_file
                .as_ref()
                .is_some_and(|p| !p.as_os_str().is_empty())
            || self
                .key_file
                .as_ref()
                .is_some_and(|p| !p.as_os_str().is_empty())
            || self
                .client_ca_file
                .as_ref()
                .is_some_and(|p| !p.as_os_str().is_empty())
            || self.client_auth_type.is_some()
    }
}

fn set(value: &Option<String>) -> bool {
    value.as_ref().is_some_and(|value| !value.is_empty())
}

/// `client_auth_type`: Go's `tls.ClientAuthType` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientAuthType {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl<'de> Deserialize<'de> for ClientAuthType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(match name.as_str() {
            "" | "NoClientCert" => ClientAuthType::NoClientCert,
            "RequestClientCert" => ClientAuthType::RequestClientCert,
            // `RequireClientCert` is exporter-toolkit's older spelling.
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuthType::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuthType::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuthType::RequireAndVerifyClientCert,
            _ => {
                return Err(serde::de::Error::custom(format!(
                    "unknown client auth type `{name}`, expected one of NoClientCert, \
                     RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, \
                     RequireAndVerifyClientCert"
                )))
            }
        })
    }
}

/// `min_version` / `max_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub(crate) enum TlsVersion {
    TLS10,
    TLS11,
    TLS12,
    TLS13,
}

/// A cipher suite name as Go's `tls.CipherSuites()` spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CipherSuiteName(pub String);

/// Every name exporter-toolkit accepts (Go's `tls.CipherSuites()`, plus the older CHACHA20
/// spellings); Go's insecure suites are refused there, and so here.
pub(crate) const KNOWN_CIPHER_SUITES: &[&str] = &[
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
];

impl<'de> Deserialize<'de> for CipherSuiteName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        if KNOWN_CIPHER_SUITES.contains(&name.as_str()) {
            Ok(CipherSuiteName(name))
        } else {
            Err(serde::de::Error::custom(format!(
                "unknown cipher suite `{name}` (Go's names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)"
            )))
        }
    }
}

/// `curve_preferences`: Go's `tls.CurveID` names as exporter-toolkit maps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) enum Curve {
    CurveP256,
    CurveP384,
    CurveP521,
    X25519,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpSection {
    http2: Option<bool>,
    headers: Option<HeadersSection>,
}

/// The headers exporter-toolkit lets an operator set; any other name fails, as there.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadersSection {
    #[serde(rename = "Content-Security-Policy")]
    content_security_policy: Option<String>,
    #[serde(rename = "X-Frame-Options")]
    frame_options: Option<FrameOptions>,
    #[serde(rename = "X-Content-Type-Options")]
    content_type_options: Option<ContentTypeOptions>,
    #[serde(rename = "X-XSS-Protection")]
    xss_protection: Option<String>,
    #[serde(rename = "Strict-Transport-Security")]
    strict_transport_security: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
enum FrameOptions {
    #[serde(rename = "deny")]
    Deny,
    #[serde(rename = "sameorigin")]
    SameOrigin,
}

#[derive(Debug, Clone, Copy, Deserialize)]
enum ContentTypeOptions {
    #[serde(rename = "nosniff")]
    NoSniff,
}

/// `rate_limit`: exporter-toolkit's request rate limiter; an interval of 0 (or none) disables it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitSection {
    #[serde(default, deserialize_with = "super::go_duration::deserialize_option")]
    interval: Option<Duration>,
    burst: Option<u64>,
}

/// Parses the text; an empty file (or only comments) means no TLS and no auth, as in
/// exporter-toolkit.
pub(crate) fn parse(text: &str) -> Result<Parsed, ParseError> {
    if text.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#') || line == "---"
    }) {
        return Ok(Parsed::default());
    }
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    let shape: Option<FileShape> =
        serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let field = match error.path().to_string() {
                path if path == "." || path.is_empty() => "(top level)".to_owned(),
                path => path,
            };
            let inner = error.into_inner();
            let reason = crate::config::clean_message(&inner.to_string());
            match inner.location() {
                Some(location) => ParseError::Located {
                    line: location.line(),
                    column: location.column(),
                    field,
                    reason,
                },
                None => ParseError::Unlocated { field, reason },
            }
        })?;
    let shape = shape.unwrap_or_default();
    let mut parsed = Parsed {
        users: shape.basic_auth_users.unwrap_or_default(),
        ..Parsed::default()
    };
    if let Some(http) = shape.http_server_config {
        if http.http2 == Some(true) {
            parsed.warnings.push(
                "http_server_config.http2: HTTP/2 is not served; clients use HTTP/1.1".to_owned(),
            );
        }
        if let Some(headers) = http.headers {
            parsed.headers = headers_of(headers, text)?;
        }
    }
    if let Some(RateLimitSection {
        interval: Some(interval),
        burst,
    }) = shape.rate_limit
    {
        if !interval.is_zero() {
            // Go's int; anything near u32::MAX is no limit in practice.
            let burst = u32::try_from(burst.unwrap_or(0)).unwrap_or(u32::MAX);
            if burst == 0 {
                parsed.warnings.push(
                    "rate_limit.burst is 0: every request is refused with 429, as in \
                     exporter-toolkit; set a burst of at least 1"
                        .to_owned(),
                );
            }
            parsed.rate_limit = Some(RateLimit { interval, burst });
        }
    }
    parsed.tls = shape.tls_server_config.filter(TlsSection::is_enabled);
    Ok(parsed)
}

/// Turns the headers section into header pairs; a blank value means "unset", as in
/// exporter-toolkit.
fn headers_of(
    section: HeadersSection,
    text: &str,
) -> Result<Vec<(HeaderName, HeaderValue)>, ParseError> {
    let entries: [(&'static str, Option<String>); 5] = [
        ("Content-Security-Policy", section.content_security_policy),
        (
            "X-Frame-Options",
            section.frame_options.map(|value| match value {
                FrameOptions::Deny => "deny".to_owned(),
                FrameOptions::SameOrigin => "sameorigin".to_owned(),
            }),
        ),
        (
            "X-Content-Type-Options",
            section
                .content_type_options
                .map(|ContentTypeOptions::NoSniff| "nosniff".to_owned()),
        ),
        ("X-XSS-Protection", section.xss_protection),
        (
            "Strict-Transport-Security",
            section.strict_transport_security,
        ),
    ];
    let mut headers = Vec::new();
    for (name, value) in entries {
        let Some(value) = value.filter(|value| !value.is_empty()) else {
            continue;
        };
        let header_value = HeaderValue::from_str(&value).map_err(|_| {
            let field = format!("http_server_config.headers.{name}");
            let reason = "not a valid header value (control characters?)".to_owned();
            match super::locate(text, &format!("{name}:")) {
                Some((line, column)) => ParseError::Located {
                    line,
                    column,
                    field,
                    reason,
                },
                None => ParseError::Unlocated { field, reason },
            }
        })?;
        headers.push((HeaderName::from_static(lowercase(name)), header_value));
    }
    Ok(headers)
}

/// `HeaderName::from_static` wants lowercase names.
fn lowercase(name: &'static str) -> &'static str {
    match name {
        "Content-Security-Policy" => "content-security-policy",
        "X-Frame-Options" => "x-frame-options",
        "X-Content-Type-Options" => "x-content-type-options",
        "X-XSS-Protection" => "x-xss-protection",
        _ => "strict-transport-security",
    }
}
