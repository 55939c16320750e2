//! The kernel's type filter on RAW ICMP sockets: only the messages a probe acts on are queued.
//!
//! A RAW socket is handed a copy of every ICMP packet the host receives: pings of the Dom0 by
//! monitoring and neighbours, router advertisements and, for targets on the host itself, our
//! own echo requests. Each copy costs a clone in softirq, a place in the queue and a read by the
//! receive thread, and a busy host's flood can make the lazy reader read promptly. The filter
//! (`ICMP_FILTER`, `ICMP6_FILTER`) drops them before they are cloned. Transmit stamps come on
//! the error queue, which the filter does not touch.

use std::os::fd::BorrowedFd;

use crate::probe::packet_options::set_raw;

use super::echo::{
    ECHO_REPLY_V4, ECHO_REPLY_V6, TIME_EXCEEDED_V4, TIME_EXCEEDED_V6, TOO_BIG_V6, UNREACHABLE_V4,
    UNREACHABLE_V6,
};

/// `SOL_RAW` and `ICMP_FILTER` (linux/icmp.h), which the libc crate does not define.
const SOL_RAW: libc::c_int = 255;
const ICMP_FILTER: libc::c_int = 1;
/// `ICMP6_FILTER` (linux/icmpv6.h), at level `IPPROTO_ICMPV6`.
const ICMP6_FILTER: libc::c_int = 1;

/// The IPv4 types a probe reads: its replies, and the errors that quote its requests.
const WANTED_V4: [u8; 3] = [ECHO_REPLY_V4, UNREACHABLE_V4, TIME_EXCEEDED_V4];
/// The same for ICMPv6 (packet too big is its own type there).
const WANTED_V6: [u8; 4] = [ECHO_REPLY_V6, UNREACHABLE_V6, TOO_BIG_V6, TIME_EXCEEDED_V6];

/// The IPv4 filter: a set bit drops that type (types 0 to 31; higher ones always pass).
pub fn v4_mask() -> u32 {
    !WANTED_V4.iter().fold(0u32, |mask, &kind| mask | 1 << kind)
}

/// The ICMPv6 filter: 256 bits, a set bit drops that type.
pub fn v6_mask() -> [u32; 8] {
    let mut mask = [u32::MAX; 8];
    for kind in WANTED_V6 {
        mask[usize::from(kind >> 5)] &= !(1u32 << (kind & 31));
    }
    mask
}

/// Sets the filter on a RAW ICMP socket of family `v6`.
pub fn apply(socket: BorrowedFd<'_>, v6: bool) -> std::io::Result<()> {
    let set = if v6 {
        set_raw(socket, libc::IPPROTO_ICMPV6, ICMP6_FILTER, &v6_mask())
    } else {
        set_raw(socket, SOL_RAW, ICMP_FILTER, &v4_mask())
    };
    set.map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::{IpAddr, SocketAddr};
    use std::os::fd::AsFd;
    use std::time::{Duration, Instant};

    use socket2::{Domain, Protocol, SockAddr, Socket, Type};

    use super::*;
    use crate::probe::icmp::echo::{build_request, ECHO_REQUEST_V4, ECHO_REQUEST_V6};

    #[test]
    fn the_masks_pass_exactly_the_types_a_probe_reads() {
        let v4 = v4_mask();
        let passing_v4: Vec<u8> = (0..32).filter(|kind| v4 & 1 << kind == 0).collect();
        assert_eq!(passing_v4, [0, 3, 11]);
        let v6 = v6_mask();
        let passing_v6: Vec<u8> = (0..=255u8)
            .filter(|&kind| v6[usize::from(kind >> 5)] & 1 << (kind & 31) == 0)
            .collect();
        assert_eq!(passing_v6, [1, 2, 3, 129]);
    }

    /// The ICMP types one RAW socket reads within `wait` after pinging `to` through itself.
    fn types_seen(socket: &Socket, v6: bool, to: IpAddr, wait: Duration) -> Vec<u8> {
        let id = 0x4a11;
        let request = build_request(v6, id, 1, 0x5eed, 56);
        socket
            .send_to(&request, &SockAddr::from(SocketAddr::new(to, 0)))
            .expect("send the echo request");
        let mut seen = Vec::new();
        let started = Instant::now();
        let mut packet = [0u8; 2048];
        while started.elapsed() < wait {
            match (&*socket).read(&mut packet) {
                Ok(length) => {
                    let packet = &packet[..length];
                    // IPv4 RAW sockets get the IP header; ICMPv6 ones start at the ICMP header.
                    let icmp = if v6 {
                        packet
                    } else {
                        &packet[usize::from(packet[0] & 0x0f) * 4..]
                    };
                    if icmp.len() >= 8 && u16::from_be_bytes([icmp[4], icmp[5]]) == id {
                        seen.push(icmp[0]);
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(error) => panic!("recv: {error}"),
            }
        }
        seen.sort_unstable();
        seen
    }

    /// On the real kernel, over loopback: an unfiltered RAW socket reads its own echo request
    /// and the reply; the filtered one only the reply.
    #[test]
    fn a_filtered_socket_reads_the_reply_but_not_its_own_request() {
        for (v6, to, request, reply) in [
            (false, "127.0.0.1", ECHO_REQUEST_V4, ECHO_REPLY_V4),
            (true, "::1", ECHO_REQUEST_V6, ECHO_REPLY_V6),
        ] {
            let to: IpAddr = to.parse().expect("address");
            let (domain, protocol) = if v6 {
                (Domain::IPV6, Protocol::ICMPV6)
            } else {
                (Domain::IPV4, Protocol::ICMPV4)
            };
            let open = || -> Option<Socket> {
                let socket = Socket::new(domain, Type::RAW, Some(protocol)).ok()?;
                socket.set_nonblocking(true).expect("non-blocking");
                Some(socket)
            };
            let Some(plain) = open() else {
                super::super::tests::skip(
                    "a_filtered_socket_reads_the_reply_but_not_its_own_request",
                    "needs a RAW ICMP socket (CAP_NET_RAW)",
                );
                return;
            };
            let wait = Duration::from_millis(300);
            assert_eq!(
                types_seen(&plain, v6, to, wait),
                [request.min(reply), request.max(reply)],
                "{to}: without the filter both the request and the reply are queued"
            );
            let filtered = open().expect("a second RAW socket");
            apply(filtered.as_fd(), v6).expect("set the filter");
            assert_eq!(types_seen(&filtered, v6, to, wait), [reply], "{to}");
        }
    }
}
