//! The web configuration file (`--web.config.file`) in Prometheus exporter-toolkit's format: TLS,
//! basic auth and extra response headers, loaded and checked before anything listens.
//!
//! Every key exporter-toolkit knows is accepted, so an operator's existing file works unchanged;
//! the few we cannot honour exactly log a warning (or fail, where ignoring them would weaken
//! security). A key exporter-toolkit does not know is a typo and fails with its position.

mod auth;
mod file;
mod go_duration;
mod live;
mod rate_limit;
mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use hyper::header::{HeaderName, HeaderValue};

pub use auth::{Authorization, BasicAuth};
pub use live::{LiveWebConfig, WebReloadError};
pub use rate_limit::{RateLimit, RateLimiter};

/// A loaded web configuration. The default serves plain HTTP with no authentication.
#[derive(Debug, Default)]
pub struct WebConfig {
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    /// The certificate inside `tls`, re-read by [`WebConfig::refresh_certificate`].
    certificate: Option<Arc<tls::ReloadingCertificate>>,
    auth: BasicAuth,
    headers: Vec<(HeaderName, HeaderValue)>,
    rate_limiter: Option<RateLimiter>,
    warnings: Vec<String>,
}

/// A web configuration file that could not be loaded: the same shapes as the main configuration's
/// errors (`file:line:column: field: reason`), printed once before exiting with status 2.
pub type WebConfigError = crate::config::ConfigError;

/// A problem found after parsing (a certificate that does not load, a bad bcrypt hash): the field
/// it belongs to, and text on the offending line so that the error can still carry a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub field: String,
    pub reason: String,
    /// Text that occurs on the offending line, e.g. `cert_file:`; the first that is found wins,
    /// so later entries are fallbacks (the section's own line).
    pub near: Vec<String>,
}

impl WebConfig {
    /// Reads and checks `path`: parses it, loads certificates and keys (relative paths resolve
    /// against the file's directory, as in exporter-toolkit) and checks every bcrypt hash.
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let file = path.display().to_string();
        let text = crate::config::read_file(path, &file)?;
        let directory = path.parent().unwrap_or_else(|| Path::new("."));
        let config = Self::parse(&text, &file, directory)?;
        for warning in &config.warnings {
            tracing::warn!(file = %file, "{warning}");
        }
        Ok(config)
    }

    /// Parses configuration text; `file` names it in errors and `directory` anchors relative paths.
    pub fn parse(text: &str, file: &str, directory: &Path) -> Result<Self, WebConfigError> {
        crate::config::check_limits(text, file)?;
        let parsed = file::parse(text).map_err(|error| match error {
            file::ParseError::Located {
                line,
                column,
                field,
                reason,
            } => WebConfigError::Invalid {
                file: file.to_owned(),
                line,
                column,
                field,
                reason,
            },
            file::ParseError::Unlocated { field, reason } => WebConfigError::InvalidUnlocated {
                file: file.to_owned(),
                field,
                reason,
            },
        })?;
        let at =
            |problem: Problem| match problem.near.iter().find_map(|needle| locate(text, needle)) {
                Some((line, column)) => WebConfigError::Invalid {
                    file: file.to_owned(),
                    line,
                    column,
                    field: problem.field,
                    reason: problem.reason,
                },
                None => WebConfigError::InvalidUnlocated {
                    file: file.to_owned(),
                    field: problem.field,
                    reason: problem.reason,
                },
            };
        let mut warnings = parsed.warnings;
        let (tls, certificate) = match parsed.tls {
            Some(section) => {
                let (tls, certificate) =
                    tls::server_config(section, directory, &mut warnings).map_err(at)?;
                (Some(tls), Some(certificate))
            }
            None => (None, None),
        };
        let auth = BasicAuth::new(parsed.users).map_err(at)?;
        Ok(WebConfig {
            tls,
            certificate,
            auth,
            headers: parsed.headers,
            rate_limiter: parsed
                .rate_limit
                .map(|limit| RateLimiter::new(limit, Instant::now())),
            warnings,
        })
    }

    /// The TLS acceptor, or `None` when the file configures no TLS (plain HTTP).
    pub fn tls_acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.tls.clone().map(tokio_rustls::TlsAcceptor::from)
    }

    /// Re-reads the certificate and key files and serves the pair they hold if they changed.
    /// Blocking file I/O, called by the background check, never by a handshake.
    pub fn refresh_certificate(&self) {
        if let Some(certificate) = &self.certificate {
            certificate.refresh();
        }
    }

    /// Whether a request with this `Authorization` header may proceed. Without configured users
    /// every request may; otherwise the header must carry a user's password (bcrypt-checked on a
    /// blocking thread, then remembered so that a scraper pays the cost once).
    pub async fn authorize(&self, authorization: Option<&HeaderValue>) -> Authorization {
        self.auth.authorize(authorization).await
    }

    /// Whether the rate limiter (`rate_limit`) lets a request in now; always without one.
    pub fn admit(&self) -> bool {
        self.rate_limiter
            .as_ref()
            .is_none_or(|limiter| limiter.admit(Instant::now()))
    }

    /// The rate limiter's settings, when the file enables it.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.rate_limiter.as_ref().map(RateLimiter::limit)
    }

    /// Extra headers added to every response (`http_server_config.headers`).
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        self.headers.clone()
    }

    /// What the file asked for that we cannot honour exactly; each was logged once at load.
    #[cfg(test)]
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Whether basic auth is required.
    #[cfg(test)]
    pub fn requires_auth(&self) -> bool {
        self.auth.enabled()
    }
}

/// Joins a path from the file with the file's directory, unless it is absolute.
pub(crate) fn resolve(directory: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        directory.join(path)
    }
}

/// Finds the first line containing `needle` and the column where it starts, both 1-based.
fn locate(text: &str, needle: &str) -> Option<(usize, usize)> {
    if needle.is_empty() {
        return None;
    }
    text.lines()
        .enumerate()
        .find_map(|(index, line)| line.find(needle).map(|column| (index + 1, column + 1)))
}

#[cfg(test)]
mod tests;
