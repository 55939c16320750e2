//! Placeholder for exporter-toolkit's web configuration (TLS, basic auth, headers); replaced by the
//! real implementation.

use std::path::Path;

/// Whether a request may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorization {
    Allowed,
    Denied,
}

/// A loaded web configuration.
#[derive(Debug, Clone, Default)]
pub struct WebConfig;

/// A web configuration file that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WebConfigError(String);

impl WebConfig {
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        Err(WebConfigError(format!(
            "{}: web configuration files are not supported yet",
            path.display()
        )))
    }

    pub fn tls_acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        None
    }

    pub fn authorize(&self, _authorization: Option<&hyper::header::HeaderValue>) -> Authorization {
        Authorization::Allowed
    }

    pub fn headers(&self) -> Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)> {
        Vec::new()
    }
}
