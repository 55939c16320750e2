//! TCP connect probes: the time from the SYN to the SYN-ACK that establishes the connection.
//!
//! The kernel's own sample of that round trip is used ([`tcp_info`](super::tcp_info)); when it has
//! none (the SYN was retransmitted), the time from `connect` to the established connection. The
//! connection is closed with `SO_LINGER` 0 (an RST), so a thousand targets probed every second
//! leave no TIME_WAIT sockets behind.

mod tcp_info;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::net::TcpSocket;

use self::tcp_info::handshake_rtt;
use super::icmp::classify;
use super::metrics::Reason;

/// Connects once to `address` within `timeout`; the handshake's RTT, or why it failed.
pub async fn probe_once(
    address: SocketAddr,
    source: Option<IpAddr>,
    interface: Option<&str>,
    timeout: Duration,
) -> Result<Duration, Reason> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|error| other(address, "create socket", &error))?;
    socket2::SockRef::from(&socket)
        .set_linger(Some(Duration::ZERO))
        .map_err(|error| other(address, "set SO_LINGER", &error))?;
    if let Some(source) = source {
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(|error| other(address, "bind", &error))?;
    }
    if let Some(interface) = interface {
        socket
            .bind_device(Some(interface.as_bytes()))
            .map_err(|error| other(address, "bind to device", &error))?;
    }
    let started = Instant::now();
    match tokio::time::timeout(timeout, socket.connect(address)).await {
        Ok(Ok(stream)) => {
            let elapsed = started.elapsed();
            let rtt = handshake_rtt(&stream).map_or(elapsed, |kernel| kernel.min(elapsed));
            drop(stream);
            // As for ICMP, the timeout is judged on the handshake, not on when this task ran.
            if rtt > timeout {
                return Err(Reason::Timeout);
            }
            Ok(rtt)
        }
        Ok(Err(error)) => {
            let reason = classify(&error);
            if reason == Reason::Other {
                tracing::debug!(%address, %error, "TCP probe failed");
            }
            Err(reason)
        }
        Err(_) => Err(Reason::Timeout),
    }
}

fn other(address: SocketAddr, what: &str, error: &std::io::Error) -> Reason {
    tracing::warn!(%address, %error, "TCP probe: {what} failed");
    Reason::Other
}
