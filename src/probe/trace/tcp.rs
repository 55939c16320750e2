//! TCP trace probes: a SYN to the target's port with a TTL / hop limit, from a socket of its own
//! with `IP_RECVERR`. A router where the TTL runs out answers with time exceeded, which the
//! kernel queues on the socket with the router's address (and aborts the connection attempt);
//! the target answers with SYN-ACK (connected) or reset (refused): reached either way. TCP
//! traces pass firewalls that drop ICMP and UDP. Connections are closed with a reset
//! (`SO_LINGER` 0).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::errqueue;
use super::hop::{Answer, AnswerKind, Answers};
use crate::probe::icmp::echo::ErrorKind;

/// Sets up one probe's socket and starts its SYN with TTL `ttl`; its answer (if any within
/// `timeout`) reaches `answers` from a task. A socket that cannot be set up fails at once.
pub fn send(
    target: SocketAddr,
    ttl: u8,
    source: Option<IpAddr>,
    interface: Option<&str>,
    timeout: Duration,
    answers: &Answers,
) -> io::Result<()> {
    let v6 = target.is_ipv6();
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.set_linger(Some(Duration::ZERO))?;
    if let Some(source) = source {
        socket.bind(&SockAddr::from(SocketAddr::new(source, 0)))?;
    }
    if let Some(interface) = interface {
        socket.bind_device(Some(interface.as_bytes()))?;
    }
    if v6 {
        socket.set_unicast_hops_v6(u32::from(ttl))?;
    } else {
        socket.set_ttl_v4(u32::from(ttl))?;
    }
    errqueue::enable(&socket, v6).map_err(io::Error::from)?;
    match socket.connect(&SockAddr::from(target)) {
        Ok(()) => {
            let _ = answers.send(Answer {
                ttl,
                from: target.ip(),
                kind: AnswerKind::Reached,
            });
            return Ok(());
        }
        Err(error) if error.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(error) => return Err(error),
    }
    // The connection in progress, watched by the runtime: it turns writable when it is
    // established, and reports an error when it fails.
    let socket = TcpStream::from_std(std::net::TcpStream::from(socket))?;
    let answers = answers.clone();
    tokio::spawn(async move {
        if let Ok(Some(answer)) = tokio::time::timeout(timeout, answer(&socket, target, ttl)).await
        {
            let _ = answers.send(answer);
        }
    });
    Ok(())
}

/// Waits for the SYN's fate: connected, refused, or an ICMP error from a router.
async fn answer(socket: &TcpStream, target: SocketAddr, ttl: u8) -> Option<Answer> {
    loop {
        let ready = socket
            .ready(Interest::WRITABLE | Interest::ERROR)
            .await
            .ok()?;
        // The queued ICMP error names the router; SO_ERROR only says that one came.
        if let Some(error) = errqueue::drain(socket)
            .into_iter()
            .find(|error| error.offender.is_some())
        {
            let from = error.offender?;
            let kind = match error.kind {
                ErrorKind::TimeExceeded => AnswerKind::TimeExceeded,
                ErrorKind::Unreachable if from == target.ip() => AnswerKind::Reached,
                ErrorKind::Unreachable | ErrorKind::TooBig => AnswerKind::Unreachable,
            };
            return Some(Answer { ttl, from, kind });
        }
        match socket.take_error() {
            // Connected (SYN-ACK) or refused (reset): the target answered.
            Ok(None) if ready.is_writable() => {
                return Some(Answer {
                    ttl,
                    from: target.ip(),
                    kind: AnswerKind::Reached,
                });
            }
            Ok(Some(error)) if error.raw_os_error() == Some(libc::ECONNREFUSED) => {
                return Some(Answer {
                    ttl,
                    from: target.ip(),
                    kind: AnswerKind::Reached,
                });
            }
            // Another error without a queued ICMP message (a local failure): no answer.
            Ok(Some(_)) | Err(_) => return None,
            // Not yet: clear the readiness seen and wait for the next.
            Ok(None) => {
                let _ = socket.try_io(Interest::WRITABLE | Interest::ERROR, || {
                    Err::<(), _>(io::ErrorKind::WouldBlock.into())
                });
            }
        }
    }
}
