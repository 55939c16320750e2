//! The error queue of a UDP or TCP trace socket (`IP_RECVERR` / `IPV6_RECVERR`): the ICMP
//! errors the kernel matched to the socket's packets, with the router that sent them (the
//! "offender") and the destination the quoted packet went to.

use std::io::IoSliceMut;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage,
};

use super::super::icmp::echo::ErrorKind;
use super::super::icmp::icmp_error_kind;

/// ICMP port unreachable: the code a host answers a datagram to a closed port with.
const PORT_UNREACHABLE_V4: u8 = 3;
const PORT_UNREACHABLE_V6: u8 = 4;

/// One ICMP error about a packet of the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedError {
    pub kind: ErrorKind,
    /// Port unreachable: the datagram reached a host, which has nothing on that port.
    pub port_unreachable: bool,
    /// The router or host that sent the ICMP error.
    pub offender: Option<IpAddr>,
    /// Where the quoted packet was going (address and port).
    pub destination: Option<SocketAddr>,
}

/// Asks the kernel to queue the socket's ICMP errors with their sender.
pub fn enable(socket: &impl AsFd, v6: bool) -> nix::Result<()> {
    if v6 {
        setsockopt(socket, sockopt::Ipv6RecvErr, &true)
    } else {
        setsockopt(socket, sockopt::Ipv4RecvErr, &true)
    }
}

/// Reads every queued error (non-blocking); errors of other kinds (transmit stamps, local
/// errors) are skipped.
pub fn drain(socket: &impl AsRawFd) -> Vec<QueuedError> {
    let mut errors = Vec::new();
    // The quoted packet itself is not needed: the destination and offender say it all.
    let mut buffer = [0u8; 256];
    let mut control = nix::cmsg_space!(libc::sock_extended_err, libc::sockaddr_in6);
    loop {
        let mut iov = [IoSliceMut::new(&mut buffer)];
        let message = match recvmsg::<SockaddrStorage>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut control),
            MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(message) => message,
            Err(Errno::EINTR) => continue,
            // EAGAIN: the queue is empty.
            Err(_) => return errors,
        };
        let destination = message.address.as_ref().and_then(socket_address);
        for cmsg in message.cmsgs().into_iter().flatten() {
            let (error, offender) = match cmsg {
                ControlMessageOwned::Ipv4RecvErr(error, offender) => (
                    error,
                    offender.map(|address| {
                        IpAddr::from(u32::from_be(address.sin_addr.s_addr).to_be_bytes())
                    }),
                ),
                ControlMessageOwned::Ipv6RecvErr(error, offender) => (
                    error,
                    offender.map(|address| IpAddr::from(address.sin6_addr.s6_addr)),
                ),
                _ => continue,
            };
            let Some(kind) = icmp_error_kind(&error) else {
                continue;
            };
            let port_unreachable = kind == ErrorKind::Unreachable
                && match error.ee_origin {
                    libc::SO_EE_ORIGIN_ICMP => error.ee_code == PORT_UNREACHABLE_V4,
                    _ => error.ee_code == PORT_UNREACHABLE_V6,
                };
            errors.push(QueuedError {
                kind,
                port_unreachable,
                offender,
                destination,
            });
        }
    }
}

fn socket_address(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::new(IpAddr::V4(v4.ip()), v4.port()));
    }
    address
        .as_sockaddr_in6()
        .map(|v6| SocketAddr::new(IpAddr::V6(v6.ip()), v6.port()))
}
