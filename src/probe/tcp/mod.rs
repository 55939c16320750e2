//! TCP connect probes: the time from the SYN to the SYN-ACK that establishes the connection.
//!
//! The kernel's own sample of that round trip is used ([`tcp_info`](self::tcp_info)); when it has
//! none (the SYN was retransmitted), the time from `connect` to the established connection. The
//! connection is closed with `SO_LINGER` 0 (an RST), so a thousand targets probed every second
//! leave no TIME_WAIT sockets behind.
//!
//! A socket that cannot be set up (a source address that is not, or no longer, this host's) is
//! logged when it starts failing and when it works again ([`SetupLog`]), not once per probe:
//! `latency_errors_total{reason="other"}` counts every one.

mod tcp_info;

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use tokio::net::TcpSocket;

use self::tcp_info::handshake_rtt;
use super::icmp::classify;
use super::metrics::Reason;
use super::packet_options::PacketOptions;

/// Whether one target's socket set-up fails, so that the log says when it starts and stops.
pub struct SetupLog {
    target: String,
    failing: bool,
}

impl SetupLog {
    pub fn new(target: &str) -> SetupLog {
        SetupLog {
            target: target.to_owned(),
            failing: false,
        }
    }

    fn failed(&mut self, address: SocketAddr, what: &str, error: &std::io::Error) -> Reason {
        if !self.failing {
            self.failing = true;
            tracing::warn!(target = %self.target, %address, %error,
                "TCP probe: {what} failed; said again when it works (errors count every probe)");
        }
        Reason::Other
    }

    fn worked(&mut self, address: SocketAddr) {
        if self.failing {
            self.failing = false;
            tracing::info!(target = %self.target, %address, "TCP probe: the socket can be set up again");
        }
    }
}

/// Connects once to `address` within `timeout`; the handshake's RTT, or why it failed.
pub async fn probe_once(
    address: SocketAddr,
    source: Option<IpAddr>,
    interface: Option<&str>,
    options: PacketOptions,
    timeout: Duration,
    log: &mut SetupLog,
) -> Result<Duration, Reason> {
    let socket = setup(address, source, interface, options)
        .map_err(|(what, error)| log.failed(address, what, &error))?;
    log.worked(address);
    connect(socket, address, timeout).await
}

/// A socket for `address`, bound as configured; what failed otherwise.
fn setup(
    address: SocketAddr,
    source: Option<IpAddr>,
    interface: Option<&str>,
    options: PacketOptions,
) -> Result<TcpSocket, (&'static str, std::io::Error)> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|error| ("create socket", error))?;
    socket2::SockRef::from(&socket)
        .set_linger(Some(Duration::ZERO))
        .map_err(|error| ("set SO_LINGER", error))?;
    options
        .apply(socket.as_fd(), address.is_ipv6())
        .map_err(|(what, error)| (what, std::io::Error::from(error)))?;
    if let Some(source) = source {
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(|error| ("bind", error))?;
    }
    if let Some(interface) = interface {
        socket
            .bind_device(Some(interface.as_bytes()))
            .map_err(|error| ("bind to device", error))?;
    }
    Ok(socket)
}

/// The handshake, timed.
async fn connect(
    socket: TcpSocket,
    address: SocketAddr,
    timeout: Duration,
) -> Result<Duration, Reason> {
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
