//! Request routing: the telemetry path, the landing page, health, readiness and reload.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::Semaphore;

use super::landing::{self, LandingInfo};
use super::negotiate;
use crate::lock::RwLockUnpoisoned;
use crate::scrape::Scraper;
use crate::web_config::{Authorization, LiveWebConfig, WebConfig};

/// Largest request body we accept (none of our endpoints reads one).
pub const MAX_BODY_BYTES: u64 = 64 * 1024;

/// Reloads the configuration; returns the reason on failure (the old configuration stays).
pub type ReloadFn = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Everything a request handler needs; shared by all connections.
pub struct Routes {
    pub scraper: Arc<Scraper>,
    pub telemetry_path: String,
    pub landing: std::sync::RwLock<LandingInfo>,
    /// Bounds concurrent scrapes (`--web.max-requests`); `None` = no limit.
    pub scrape_limit: Option<Arc<Semaphore>>,
    pub reload: ReloadFn,
    /// TLS, users, headers and rate limit; replaced while serving when the file changes.
    pub web: Arc<LiveWebConfig>,
}

impl Routes {
    /// Handles one request. Never fails: every error becomes a status code.
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        // One version of the web configuration for the whole request.
        let web = self.web.current();
        let mut response = self.route(&web, &request).await;
        for (name, value) in web.headers() {
            response.headers_mut().insert(name, value);
        }
        Ok(response)
    }

    async fn route(&self, web: &WebConfig, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        // First, as in exporter-toolkit: a refused request costs no bcrypt check.
        if !web.admit() {
            return plain(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n");
        }
        if web
            .authorize(request.headers().get(header::AUTHORIZATION))
            .await
            == Authorization::Denied
        {
            let mut response = plain(StatusCode::UNAUTHORIZED, "Unauthorized\n");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
            return response;
        }
        let too_large = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|length| length > MAX_BODY_BYTES);
        if too_large {
            return plain(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large\n");
        }
        let path = request.uri().path();
        let method = request.method();
        let read_only = method == Method::GET || method == Method::HEAD;
        match path {
            _ if path == self.telemetry_path => {
                if !read_only {
                    return not_allowed("GET, HEAD");
                }
                self.metrics(request).await
            }
            "/" => {
                if !read_only {
                    return not_allowed("GET, HEAD");
                }
                let page = landing::render(&self.landing.read_unpoisoned());
                let mut response = Response::new(Full::new(Bytes::from(page)));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                response
            }
            "/-/healthy" if read_only => plain(StatusCode::OK, "Healthy\n"),
            "/-/ready" if read_only => plain(StatusCode::OK, "Ready\n"),
            "/-/healthy" | "/-/ready" => not_allowed("GET, HEAD"),
            "/-/reload" => {
                if method != Method::POST && method != Method::PUT {
                    return not_allowed("POST, PUT");
                }
                // Reading the files is blocking I/O; keep it off the runtime's workers.
                let reload = self.reload.clone();
                let outcome = tokio::task::spawn_blocking(move || reload())
                    .await
                    .unwrap_or_else(|error| Err(format!("reload task failed: {error}")));
                match outcome {
                    Ok(()) => plain(StatusCode::OK, "Configuration reloaded\n"),
                    Err(reason) => plain(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &format!("failed to reload config: {reason}\n"),
                    ),
                }
            }
            _ => plain(StatusCode::NOT_FOUND, "Not Found\n"),
        }
    }

    async fn metrics(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        let _permit = match &self.scrape_limit {
            Some(limit) => match limit.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    return plain(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Too many concurrent scrapes (--web.max-requests)\n",
                    )
                }
            },
            None => None,
        };
        let headers = request.headers();
        let text_header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        let format = negotiate::format(text_header("accept"));
        let gzip = negotiate::gzip(text_header("accept-encoding"));
        // Leave half a second of the scraper's own timeout for encoding and transfer.
        let deadline = text_header("x-prometheus-scrape-timeout-seconds")
            .and_then(|value| value.parse::<f64>().ok())
            .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
            .map(|seconds| Duration::from_secs_f64((seconds - 0.5).max(0.1)));
        let (body, response_gzipped) = match self.scraper.exposition(format, gzip, deadline).await {
            Ok(exposition) => (exposition.body, exposition.gzipped),
            Err(_) => {
                return plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "error encoding metrics\n",
                )
            }
        };
        let mut response = Response::new(Full::new(body));
        let response_headers = response.headers_mut();
        response_headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        response_headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        if response_gzipped {
            response_headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::copy_from_slice(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}
