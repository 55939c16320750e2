//! The handshake RTT as the kernel timed it: `TCP_INFO`'s `tcpi_rtt` right after `connect`.
//!
//! The kernel stamps the SYN when it leaves and takes its first RTT sample when the SYN-ACK is
//! processed, in softirq, to the microsecond. Reading the clock in the probe task instead adds
//! the wait for the runtime to wake that task, a few hundred microseconds on a busy 2-core Dom0;
//! ICMP avoids the same error with `SO_TIMESTAMPNS`.
#![allow(unsafe_code)]

use std::os::fd::AsRawFd;
use std::time::Duration;

/// The SYN's round trip, when the kernel has a sample of it: none when the SYN was retransmitted
/// (Karn's rule: the reply cannot be matched to one transmission), or when `TCP_INFO` fails.
pub fn handshake_rtt(socket: &impl AsRawFd) -> Option<Duration> {
    let info = tcp_info(socket)?;
    if info.tcpi_total_retrans > 0 || info.tcpi_rtt == 0 {
        return None;
    }
    Some(Duration::from_micros(u64::from(info.tcpi_rtt)))
}

fn tcp_info(socket: &impl AsRawFd) -> Option<libc::tcp_info> {
    // SAFETY: tcp_info is plain old data (integers only), so all-zero is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut length = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the pointer and length describe `info`, which outlives the call; the kernel
    // writes at most `length` bytes and returns the length it wrote.
    let status = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut length,
        )
    };
    // An older kernel writes a shorter struct; tcpi_rtt and tcpi_total_retrans are old fields.
    let needed =
        std::mem::offset_of!(libc::tcp_info, tcpi_total_retrans) + std::mem::size_of::<u32>();
    (status == 0 && length as usize >= needed).then_some(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn a_loopback_handshake_has_a_kernel_sample_below_the_wall_clock() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let started = std::time::Instant::now();
        let stream = TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
        let elapsed = started.elapsed();
        let rtt = handshake_rtt(&stream).expect("the kernel timed the SYN");
        assert!(
            rtt > Duration::ZERO && rtt <= elapsed,
            "{rtt:?} vs {elapsed:?}"
        );
    }

    #[test]
    fn a_socket_that_is_not_tcp_has_none() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
        assert_eq!(handshake_rtt(&socket), None);
    }
}
