//! UDP trace probes, as classic traceroute sends them: a small datagram per probe to a port of
//! its own from 33434 on, so the ICMP error about it says which TTL it had. One socket per
//! trace, with `IP_RECVERR`: the kernel queues the routers' time exceeded and the target's port
//! unreachable on it, with the sender's address; a task waiting on the socket's error readiness
//! hands them to the tracer. No privilege needed.

use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use super::errqueue;
use super::hop::{Answer, AnswerKind, Answers};
use crate::probe::icmp::echo::ErrorKind;

/// The first destination port, as traceroute's: 33434 + (TTL − 1) × probes per hop + n.
pub const BASE_PORT: u16 = 33434;
/// Sends tried before a failure counts (see the ICMP sockets' `SEND_ATTEMPTS`).
const SEND_ATTEMPTS: u32 = 4;
/// Bytes of each datagram (zeros).
const PAYLOAD: [u8; 32] = [0; 32];

/// One trace's UDP socket and the task reading its error queue (stopped on drop).
pub struct UdpTracer {
    socket: std::sync::Arc<UdpSocket>,
    v6: bool,
    probes_per_hop: u8,
    reader: JoinHandle<()>,
}

impl UdpTracer {
    /// Opens the socket (bound as the target says) and starts reading its errors into
    /// `answers`. Must run inside the runtime.
    pub fn open(
        target: IpAddr,
        source: Option<IpAddr>,
        interface: Option<&str>,
        probes_per_hop: u8,
        answers: Answers,
    ) -> io::Result<UdpTracer> {
        let v6 = target.is_ipv6();
        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_nonblocking(true)?;
        if let Some(source) = source {
            socket.bind(&SockAddr::from(SocketAddr::new(source, 0)))?;
        }
        if let Some(interface) = interface {
            socket.bind_device(Some(interface.as_bytes()))?;
        }
        errqueue::enable(&socket, v6).map_err(io::Error::from)?;
        let socket = std::sync::Arc::new(UdpSocket::from_std(socket.into())?);
        let reader = tokio::spawn(read_errors(socket.clone(), probes_per_hop, answers));
        Ok(UdpTracer {
            socket,
            v6,
            probes_per_hop,
            reader,
        })
    }

    /// Sends probe `n` of hop `ttl` to `target`.
    pub fn send(&self, target: IpAddr, ttl: u8, n: u8) -> io::Result<()> {
        let socket = socket2::SockRef::from(&*self.socket);
        if self.v6 {
            socket.set_unicast_hops_v6(u32::from(ttl))?;
        } else {
            socket.set_ttl_v4(u32::from(ttl))?;
        }
        let port = port(ttl, n, self.probes_per_hop);
        let destination = SockAddr::from(SocketAddr::new(target, port));
        // An ICMP error about an earlier probe left pending on the socket (IP_RECVERR) is
        // returned by a send instead (and set again from the next queued error as the queue
        // is read): tried a few times, like the ICMP sockets' sends.
        let mut sent = socket.send_to(&PAYLOAD, &destination);
        for _ in 1..SEND_ATTEMPTS {
            if sent.is_ok() {
                break;
            }
            sent = socket.send_to(&PAYLOAD, &destination);
        }
        sent.map(|_| ())
    }
}

impl Drop for UdpTracer {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The destination port of probe `n` of hop `ttl`.
pub fn port(ttl: u8, n: u8, probes_per_hop: u8) -> u16 {
    BASE_PORT + (u16::from(ttl).saturating_sub(1)) * u16::from(probes_per_hop) + u16::from(n)
}

/// The TTL a probe to `port` had.
fn ttl_of(port: u16, probes_per_hop: u8) -> Option<u8> {
    let offset = port.checked_sub(BASE_PORT)?;
    u8::try_from(offset / u16::from(probes_per_hop.max(1)) + 1).ok()
}

/// Waits for the socket's errors and hands each to the tracer until aborted.
async fn read_errors(socket: std::sync::Arc<UdpSocket>, probes_per_hop: u8, answers: Answers) {
    loop {
        if socket
            .ready(Interest::READABLE | Interest::ERROR)
            .await
            .is_err()
        {
            return;
        }
        // A datagram the target sent back is not an answer we can place: dropped.
        let mut sink = [0u8; 64];
        while socket.try_recv(&mut sink).is_ok() {}
        let mut errors = Vec::new();
        // Reading the queue inside `try_io` clears the socket's error readiness, so the next
        // `ready` waits for a new error.
        let _ = socket.try_io(Interest::ERROR, || {
            errors = errqueue::drain(&*socket);
            Err::<(), _>(io::ErrorKind::WouldBlock.into())
        });
        for error in errors {
            let (Some(from), Some(destination)) = (error.offender, error.destination) else {
                continue;
            };
            let Some(ttl) = ttl_of(destination.port(), probes_per_hop) else {
                continue;
            };
            let kind = match error.kind {
                ErrorKind::TimeExceeded => AnswerKind::TimeExceeded,
                ErrorKind::Unreachable if error.port_unreachable && from == destination.ip() => {
                    AnswerKind::Reached
                }
                ErrorKind::Unreachable | ErrorKind::TooBig => AnswerKind::Unreachable,
            };
            if answers.send(Answer { ttl, from, kind }).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_say_their_ttl() {
        assert_eq!(port(1, 0, 3), 33434);
        assert_eq!(port(30, 2, 3), 33434 + 89);
        for ttl in 1..=64 {
            for n in 0..5 {
                assert_eq!(ttl_of(port(ttl, n, 5), 5), Some(ttl));
            }
        }
        assert_eq!(ttl_of(53, 3), None);
    }
}
