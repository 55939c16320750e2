//! Request routing: the telemetry path, the landing page, health, readiness and reload.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::Semaphore;

use super::landing::Landing;
use super::negotiate;
use crate::config::ConfigError;
use crate::scrape::{panic_message, Scraper};
use crate::web_config::{Authorization, LiveWebConfig, WebConfig, WebReloadError};

/// Largest request body we accept (none of our endpoints reads one).
pub const MAX_BODY_BYTES: u64 = 64 * 1024;

/// Reloads the configuration; returns the reason on failure (the old configuration stays).
pub type ReloadFn = Arc<dyn Fn() -> Result<(), ReloadError> + Send + Sync>;

/// Why a reload (SIGHUP, `POST /-/reload`) kept a previous configuration.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Web(#[from] WebReloadError),
    #[error("{config}; {web}")]
    Both {
        config: Box<ConfigError>,
        web: Box<WebReloadError>,
    },
    #[error("reload task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Everything a request handler needs; shared by all connections.
pub struct Routes {
    pub scraper: Arc<Scraper>,
    pub telemetry_path: String,
    pub landing: Landing,
    /// Bounds concurrent scrapes (`--web.max-requests`); `None` = no limit.
    pub scrape_limit: Option<Arc<Semaphore>>,
    pub reload: ReloadFn,
    /// TLS, users, headers and rate limit; replaced while serving when the file changes.
    pub web: Arc<LiveWebConfig>,
}

impl Routes {
    /// Handles one request. Never fails: every error becomes a status code, and a 500 is
    /// logged with its reason (a panic in a handler included: it would otherwise drop the
    /// connection with nothing in the log).
    pub async fn handle<B>(
        self: Arc<Self>,
        request: Request<B>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        // One version of the web configuration for the whole request.
        let web = self.web.current();
        let mut response = match catch_panic(self.route(&web, &request)).await {
            Ok(response) => response,
            Err(reason) => {
                tracing::error!(path = request.uri().path(), %reason, "request handler panicked");
                plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n")
            }
        };
        for (name, value) in web.headers() {
            response.headers_mut().insert(name, value);
        }
        Ok(response)
    }

    async fn route<B>(&self, web: &WebConfig, request: &Request<B>) -> Response<Full<Bytes>> {
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
                let mut response = Response::new(Full::new(Bytes::from(self.landing.page())));
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
                    .unwrap_or_else(|error| Err(ReloadError::Task(error)));
                match outcome {
                    Ok(()) => plain(StatusCode::OK, "Configuration reloaded\n"),
                    Err(reason) => {
                        // Each file's own failure was logged where it was read; a panic was not.
                        if let ReloadError::Task(_) = reason {
                            tracing::error!(error = %reason, "reload failed");
                        }
                        plain(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            &format!("failed to reload config: {reason}\n"),
                        )
                    }
                }
            }
            _ => plain(StatusCode::NOT_FOUND, "Not Found\n"),
        }
    }

    async fn metrics<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
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
            Err(error) => {
                tracing::error!(
                    collector = error.collector().unwrap_or("(none)"),
                    %error,
                    "scrape failed"
                );
                // As promhttp does: the reason goes to the scraper too.
                return plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("An error has occurred while serving metrics:\n\n{error}\n"),
                );
            }
        };
        let mut response = Response::new(Full::new(body));
        let response_headers = response.headers_mut();
        response_headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        // The format follows `Accept` (text, OpenMetrics or protobuf), the coding
        // `Accept-Encoding`: a cache must key on both.
        response_headers.insert(
            header::VARY,
            HeaderValue::from_static("Accept, Accept-Encoding"),
        );
        if response_gzipped {
            response_headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    }
}

/// Runs `future`, turning a panic in it into `Err` with the panic's message.
async fn catch_panic<F: Future>(future: F) -> Result<F::Output, String> {
    let mut future = Box::pin(future);
    std::future::poll_fn(|context| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(context))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            // Ready: the panicked future is never polled again.
            Err(panic) => Poll::Ready(Err(panic_message(panic.as_ref()))),
        }
    })
    .await
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::collector::{Collected, Families, ScrapeCollector};
    use crate::scrape::exposition::Writer;
    use crate::scrape::self_metrics::ReloadMetrics;
    use prometheus_client::registry::Registry;

    /// A collector whose families panic while being written.
    struct Broken;

    #[derive(Debug)]
    struct PanicsWhenWritten;

    impl Families for PanicsWhenWritten {
        fn write(&self, _writer: &mut Writer<'_>) {
            panic!("label set out of bounds");
        }
    }

    impl ScrapeCollector for Broken {
        fn name(&self) -> &'static str {
            "broken"
        }
        fn collect(&self) -> Collected {
            Collected {
                families: vec![Box::new(PanicsWhenWritten)],
                outcomes: Vec::new(),
            }
        }
    }

    fn routes(reload: ReloadFn) -> Arc<Routes> {
        let scraper = Scraper::new(
            Registry::default(),
            vec![Arc::new(Broken)],
            Duration::from_secs(5),
        );
        Arc::new(Routes {
            scraper: Arc::new(scraper),
            telemetry_path: "/metrics".to_owned(),
            landing: crate::http::landing::Landing {
                telemetry_path: "/metrics".to_owned(),
                collectors: Vec::new(),
            },
            scrape_limit: None,
            reload,
            web: Arc::new(LiveWebConfig::new(
                None,
                WebConfig::default(),
                ReloadMetrics::default(),
            )),
        })
    }

    /// The log lines written while `work` runs on this thread.
    #[derive(Clone, Default)]
    struct Log(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Log {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Log {
        fn install(&self) -> tracing::subscriber::DefaultGuard {
            let log = self.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || log.clone())
                .with_ansi(false)
                .finish();
            tracing::subscriber::set_default(subscriber)
        }

        fn errors(&self) -> Vec<String> {
            String::from_utf8_lossy(&self.0.lock().expect("log"))
                .lines()
                .filter(|line| line.contains("ERROR"))
                .map(str::to_owned)
                .collect()
        }
    }

    async fn body(response: Response<Full<Bytes>>) -> String {
        use http_body_util::BodyExt;
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn request(method: Method, path: &str) -> Request<()> {
        Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .expect("request")
    }

    /// A collector whose encoding panics: the scrape is a 500 that names it, in the body and in
    /// exactly one logged error line.
    #[tokio::test(flavor = "current_thread")]
    async fn a_failing_encode_is_a_logged_500_naming_the_collector() {
        let log = Log::default();
        let _guard = log.install();
        let routes = routes(Arc::new(|| Ok(())));
        let response = routes
            .handle(request(Method::GET, "/metrics"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let text = body(response).await;
        assert!(
            text.contains("collector \"broken\" panicked: label set out of bounds"),
            "{text}"
        );
        let errors = log.errors();
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(errors[0].contains("scrape failed"), "{errors:#?}");
        assert!(errors[0].contains("collector=\"broken\""), "{errors:#?}");
        assert!(errors[0].contains("label set out of bounds"), "{errors:#?}");
    }

    /// A reload that panics is a 500 with its reason logged once.
    #[tokio::test(flavor = "current_thread")]
    async fn a_panicking_reload_is_a_logged_500() {
        let log = Log::default();
        let _guard = log.install();
        let routes = routes(Arc::new(|| panic!("reload bug")));
        let response = routes
            .handle(request(Method::POST, "/-/reload"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body(response).await.contains("reload task failed"));
        let errors = log.errors();
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(errors[0].contains("reload failed"), "{errors:#?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_panic_in_a_handler_is_caught_with_its_message() {
        let outcome = catch_panic(async {
            tokio::task::yield_now().await;
            if true {
                panic!("handler bug");
            }
        })
        .await;
        assert_eq!(outcome, Err("handler bug".to_owned()));
        assert_eq!(catch_panic(async { 7 }).await, Ok(7));
    }
}
