//! Per-target IP header options of the probe sockets: DSCP (IPv4 TOS / IPv6 traffic class)
//! and Don't Fragment, set once on the socket (ICMP sockets are shared per binding, and the
//! binding includes these options, so every packet of a socket carries its targets' values).
#![allow(unsafe_code)]

use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::sys::socket::{setsockopt, sockopt};

use crate::config::probes::Target;

/// The IP header options a probe socket sets; the default (DSCP 0, DF as the kernel decides)
/// leaves the socket untouched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PacketOptions {
    /// Differentiated Services code point, 0 to 63 (the upper six bits of the TOS byte; the
    /// lower two are ECN, which a prober leaves to the network).
    pub dscp: u8,
    /// Forbid fragmentation: IPv4 `IP_MTU_DISCOVER` = `IP_PMTUDISC_DO`, IPv6 `IPV6_DONTFRAG`. A
    /// probe larger than the path MTU then fails (locally with EMSGSIZE, or by the router's
    /// "fragmentation needed" / "packet too big") instead of being fragmented.
    pub dont_fragment: bool,
}

impl PacketOptions {
    /// The options `target` asks for.
    pub fn of(target: &Target) -> PacketOptions {
        PacketOptions {
            dscp: target.dscp,
            dont_fragment: target.dont_fragment,
        }
    }

    /// The TOS byte / traffic class: the DSCP shifted over the two ECN bits.
    pub fn traffic_class(self) -> u8 {
        self.dscp << 2
    }

    /// Sets the options on `socket` (of family `v6`); what failed otherwise.
    pub fn apply(self, socket: BorrowedFd<'_>, v6: bool) -> Result<(), (&'static str, nix::Error)> {
        if self.dscp != 0 {
            let class = i32::from(self.traffic_class());
            if v6 {
                setsockopt(&socket, sockopt::Ipv6TClass, &class)
                    .map_err(|error| ("set IPV6_TCLASS", error))?;
            } else {
                setsockopt(&socket, sockopt::Ipv4Tos, &class)
                    .map_err(|error| ("set IP_TOS", error))?;
            }
        }
        if self.dont_fragment {
            if v6 {
                setsockopt(&socket, sockopt::Ipv6DontFrag, &true)
                    .map_err(|error| ("set IPV6_DONTFRAG", error))?;
            } else {
                set_int(
                    socket,
                    libc::IPPROTO_IP,
                    libc::IP_MTU_DISCOVER,
                    libc::IP_PMTUDISC_DO,
                )
                .map_err(|error| ("set IP_MTU_DISCOVER", error))?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for PacketOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dscp != 0 {
            write!(f, " DSCP {}", self.dscp)?;
        }
        if self.dont_fragment {
            f.write_str(" DF")?;
        }
        Ok(())
    }
}

/// An integer socket option neither nix nor socket2 wraps (`IP_MTU_DISCOVER`).
fn set_int(
    socket: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> Result<(), nix::Error> {
    set_raw(socket, level, name, &value)
}

/// A socket option neither nix nor socket2 wraps, passed as the bytes of `value`
/// (`IP_MTU_DISCOVER`, and the ICMP type filters, a `u32` or an array of them).
pub(crate) fn set_raw<T: Copy>(
    socket: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> Result<(), nix::Error> {
    // SAFETY: the pointer and length describe `value`, which outlives the call; the kernel
    // only reads `length` bytes from it.
    let status = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if status == 0 {
        Ok(())
    } else {
        Err(nix::Error::last())
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use nix::sys::socket::getsockopt;
    use socket2::{Domain, Socket, Type};

    use super::*;

    /// On the real kernel: the options read back as set, on UDP sockets (no privilege needed).
    #[test]
    fn the_options_read_back_from_the_kernel() {
        let options = PacketOptions {
            dscp: 46,
            dont_fragment: true,
        };
        let v4 = Socket::new(Domain::IPV4, Type::DGRAM, None).expect("socket");
        options.apply(v4.as_fd(), false).expect("apply v4");
        assert_eq!(getsockopt(&v4, sockopt::Ipv4Tos).expect("tos"), 46 << 2);
        let v6 = Socket::new(Domain::IPV6, Type::DGRAM, None).expect("socket");
        options.apply(v6.as_fd(), true).expect("apply v6");
        assert_eq!(
            getsockopt(&v6, sockopt::Ipv6TClass).expect("tclass"),
            46 << 2
        );
        assert!(getsockopt(&v6, sockopt::Ipv6DontFrag).expect("dontfrag"));
        assert_eq!(
            PacketOptions::default().to_string() + &options.to_string(),
            " DSCP 46 DF"
        );
    }
}
