//! Listeners and connections: bind every address before serving, serve HTTP/1.1 (optionally over
//! TLS) with bounded header time and size, and shut down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::routes::Routes;

/// How long a client may take to send its request headers (slowloris protection).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a TLS handshake may take.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head we buffer.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most connections served at once; more wait in the kernel's accept queue.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long shutdown waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A listener that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("listen on {address}: {source}")]
pub struct BindError {
    pub address: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds every address, or fails on the first that cannot be bound (before anything serves).
pub async fn bind(addresses: &[SocketAddr]) -> Result<Vec<TcpListener>, BindError> {
    let mut listeners = Vec::with_capacity(addresses.len());
    for &address in addresses {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| BindError { address, source })?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Serves `listeners` until `shutdown` is cancelled, then waits up to [`SHUTDOWN_GRACE`] for
/// requests in flight.
pub async fn serve(listeners: Vec<TcpListener>, routes: Arc<Routes>, shutdown: CancellationToken) {
    // Accept loops hold clones only while they run; connections hold `Watcher`s.
    let graceful = Arc::new(GracefulShutdown::new());
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut accept_loops = tokio::task::JoinSet::new();
    for listener in listeners {
        let routes = routes.clone();
        let shutdown = shutdown.clone();
        let connections = connections.clone();
        let graceful = graceful.clone();
        accept_loops.spawn(async move {
            loop {
                let permit = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    permit = connections.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => return,
                    },
                };
                let (stream, peer) = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            // EMFILE and friends: back off instead of spinning.
                            tracing::warn!(%error, "accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                let _ = stream.set_nodelay(true);
                let routes = routes.clone();
                let watcher = graceful.watcher();
                // Per connection: a reloaded web configuration brings its own TLS settings.
                let tls = routes.web.current().tls_acceptor();
                tokio::spawn(async move {
                    let _permit = permit;
                    match tls {
                        None => serve_connection(stream, routes, watcher).await,
                        Some(acceptor) => {
                            match tokio::time::timeout(
                                TLS_HANDSHAKE_TIMEOUT,
                                acceptor.accept(stream),
                            )
                            .await
                            {
                                Ok(Ok(stream)) => serve_connection(stream, routes, watcher).await,
                                Ok(Err(error)) => {
                                    tracing::debug!(%peer, %error, "TLS handshake failed")
                                }
                                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                            }
                        }
                    }
                });
            }
        });
    }
    while accept_loops.join_next().await.is_some() {}
    let Ok(graceful) = Arc::try_unwrap(graceful) else {
        return;
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period; closing them");
    }
}

async fn serve_connection<S>(stream: S, routes: Arc<Routes>, watcher: Watcher)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| routes.clone().handle(request));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    if let Err(error) = watcher.watch(connection).await {
        tracing::debug!(%error, "connection ended with an error");
    }
}
