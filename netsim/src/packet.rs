//! Wire formats: parses the IPv4/IPv6 packets a TUN device hands over (ICMP echo, TCP, UDP) and
//! builds the replies (echo reply, SYN-ACK, RST, ICMP time exceeded and port unreachable) with
//! correct checksums. Pure, no I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;
const ICMP_UNREACHABLE: u8 = 3;
const ICMP_PORT_UNREACHABLE: u8 = 3;
const ICMP_TIME_EXCEEDED: u8 = 11;
const ICMPV6_UNREACHABLE: u8 = 1;
const ICMPV6_PORT_UNREACHABLE: u8 = 4;
const ICMPV6_TIME_EXCEEDED: u8 = 3;
/// The most an ICMPv6 error may be (RFC 4443 2.4 (c): the IPv6 minimum MTU).
const ICMPV6_ERROR_MAX: usize = 1280;
const IPV4_HEADER_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;
const TCP_HEADER_LEN: usize = 20;

/// TCP flag bits.
pub mod flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push function.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field significant.
    pub const ACK: u8 = 0x10;
}

/// One parsed IP packet: addresses and what it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Source address (the prober).
    pub src: IpAddr,
    /// Destination address (a simulated target).
    pub dst: IpAddr,
    /// The IPv4 TOS byte or the IPv6 traffic class (DSCP × 4 + ECN), as it came on the wire.
    pub traffic_class: u8,
    /// The IPv4 TTL or the IPv6 hop limit, as it came on the wire (a path trace's probes set
    /// it low so that routers answer).
    pub ttl: u8,
    /// What the packet carries.
    pub kind: Kind<'a>,
}

/// The requests the simulator understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind<'a> {
    /// ICMP echo request (v4) or ICMPv6 echo request; `message` is the whole ICMP message.
    EchoRequest {
        /// Type, code, checksum, identifier, sequence and payload, as received.
        message: &'a [u8],
    },
    /// A TCP segment.
    Tcp(Segment),
    /// A UDP datagram (a traceroute's probe) to `dst_port`.
    Udp {
        /// Destination port.
        dst_port: u16,
    },
    /// Anything else (router solicitations, MLD, fragments): ignored.
    Other,
}

/// The TCP header fields the responder needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful when `flags` has ACK).
    pub ack: u32,
    /// Flag bits, see [`flags`].
    pub flags: u8,
    /// Payload length in bytes.
    pub payload_len: usize,
}

impl Segment {
    /// A connection request: SYN without ACK.
    pub fn is_syn(&self) -> bool {
        self.flags & (flags::SYN | flags::ACK | flags::RST) == flags::SYN
    }

    /// A segment that a closed or fake endpoint answers with RST: FIN or data (never a RST).
    pub fn wants_reset(&self) -> bool {
        self.flags & flags::RST == 0 && (self.flags & flags::FIN != 0 || self.payload_len > 0)
    }
}

/// Parses an IPv4 or IPv6 packet as read from an `IFF_NO_PI` TUN device; `None` if malformed.
pub fn parse_packet(packet: &[u8]) -> Option<Packet<'_>> {
    match packet.first()? >> 4 {
        4 => parse_ipv4(packet),
        6 => parse_ipv6(packet),
        _ => None,
    }
}

fn parse_ipv4(packet: &[u8]) -> Option<Packet<'_>> {
    let header_len = usize::from(packet.first()? & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
    if header_len < IPV4_HEADER_LEN || total_len < header_len || packet.len() < total_len {
        return None;
    }
    let src = IpAddr::V4(Ipv4Addr::new(
        packet[12], packet[13], packet[14], packet[15],
    ));
    let dst = IpAddr::V4(Ipv4Addr::new(
        packet[16], packet[17], packet[18], packet[19],
    ));
    let fragment = u16::from_be_bytes([packet[6], packet[7]]);
    // A fragment (more-fragments bit or an offset) is not worth reassembling for a probe target.
    if fragment & 0x3fff != 0 {
        return Some(Packet {
            src,
            dst,
            traffic_class: packet[1],
            ttl: packet[8],
            kind: Kind::Other,
        });
    }
    let payload = &packet[header_len..total_len];
    let kind = match packet[9] {
        PROTO_ICMP if payload.len() >= 8 && payload[0] == ICMP_ECHO_REQUEST && payload[1] == 0 => {
            Kind::EchoRequest { message: payload }
        }
        PROTO_TCP => parse_tcp(payload).map_or(Kind::Other, Kind::Tcp),
        PROTO_UDP => parse_udp(payload),
        _ => Kind::Other,
    };
    Some(Packet {
        src,
        dst,
        traffic_class: packet[1],
        ttl: packet[8],
        kind,
    })
}

fn parse_ipv6(packet: &[u8]) -> Option<Packet<'_>> {
    if packet.len() < IPV6_HEADER_LEN {
        return None;
    }
    let payload_len = usize::from(u16::from_be_bytes([packet[4], packet[5]]));
    let end = IPV6_HEADER_LEN.checked_add(payload_len)?;
    if packet.len() < end {
        return None;
    }
    let src = IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&packet[8..24]).ok()?));
    let dst = IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&packet[24..40]).ok()?));
    let payload = &packet[IPV6_HEADER_LEN..end];
    // Probes send no extension headers; anything behind one is ignored.
    let kind = match packet[6] {
        PROTO_ICMPV6
            if payload.len() >= 8 && payload[0] == ICMPV6_ECHO_REQUEST && payload[1] == 0 =>
        {
            Kind::EchoRequest { message: payload }
        }
        PROTO_TCP => parse_tcp(payload).map_or(Kind::Other, Kind::Tcp),
        PROTO_UDP => parse_udp(payload),
        _ => Kind::Other,
    };
    // Version (4 bits), traffic class (8 bits), flow label (20 bits).
    let traffic_class = (packet[0] << 4) | (packet[1] >> 4);
    Some(Packet {
        src,
        dst,
        traffic_class,
        ttl: packet[7],
        kind,
    })
}

fn parse_udp(datagram: &[u8]) -> Kind<'static> {
    match datagram {
        [_, _, high, low, _, _, _, _, ..] => Kind::Udp {
            dst_port: u16::from_be_bytes([*high, *low]),
        },
        _ => Kind::Other,
    }
}

fn parse_tcp(segment: &[u8]) -> Option<Segment> {
    if segment.len() < TCP_HEADER_LEN {
        return None;
    }
    let data_offset = usize::from(segment[12] >> 4) * 4;
    if data_offset < TCP_HEADER_LEN || data_offset > segment.len() {
        return None;
    }
    Some(Segment {
        src_port: u16::from_be_bytes([segment[0], segment[1]]),
        dst_port: u16::from_be_bytes([segment[2], segment[3]]),
        seq: u32::from_be_bytes([segment[4], segment[5], segment[6], segment[7]]),
        ack: u32::from_be_bytes([segment[8], segment[9], segment[10], segment[11]]),
        flags: segment[13],
        payload_len: segment.len() - data_offset,
    })
}

/// The echo reply to `request` (an [`Kind::EchoRequest`] with `message`): addresses swapped,
/// type 0 / 129, identifier, sequence and payload unchanged, `ttl` as TTL or hop limit.
pub fn build_echo_reply(request: &Packet<'_>, message: &[u8], ttl: u8) -> Vec<u8> {
    let mut icmp = message.to_vec();
    icmp[2] = 0;
    icmp[3] = 0;
    match (request.dst, request.src) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            icmp[0] = ICMP_ECHO_REPLY;
            // ICMPv4's checksum covers only the ICMP message, no pseudo-header.
            let sum = checksum(&[&icmp]);
            icmp[2..4].copy_from_slice(&sum.to_be_bytes());
            ipv4_packet(src, dst, PROTO_ICMP, &icmp, ttl)
        }
        (src, dst) => {
            icmp[0] = ICMPV6_ECHO_REPLY;
            ip_packet_with_pseudo_header(src, dst, PROTO_ICMPV6, icmp, 2, ttl)
        }
    }
}

/// The ICMP time exceeded (TTL / hop limit exceeded in transit) that router `from` sends
/// about `request` (`bytes`, the whole packet as read), as a router does: ICMPv4 quotes the
/// original IP header and the first 8 bytes after it (RFC 792), ICMPv6 as much of the packet
/// as fits in 1,280 bytes (RFC 4443). `None` if `from` is not of the request's family.
pub fn build_time_exceeded(
    request: &Packet<'_>,
    bytes: &[u8],
    from: IpAddr,
    ttl: u8,
) -> Option<Vec<u8>> {
    build_icmp_error(
        request,
        bytes,
        from,
        (ICMP_TIME_EXCEEDED, 0),
        (ICMPV6_TIME_EXCEEDED, 0),
        ttl,
    )
}

/// The ICMP port unreachable a host without a listener sends about `request` (a UDP datagram,
/// `bytes` as read): what ends a UDP traceroute at its target.
pub fn build_port_unreachable(request: &Packet<'_>, bytes: &[u8], ttl: u8) -> Vec<u8> {
    build_icmp_error(
        request,
        bytes,
        request.dst,
        (ICMP_UNREACHABLE, ICMP_PORT_UNREACHABLE),
        (ICMPV6_UNREACHABLE, ICMPV6_PORT_UNREACHABLE),
        ttl,
    )
    .expect("the request's destination is of its family")
}

/// An ICMP error from `from` to the request's source quoting `bytes`, with (type, code)
/// `v4` or `v6` by family.
fn build_icmp_error(
    request: &Packet<'_>,
    bytes: &[u8],
    from: IpAddr,
    v4: (u8, u8),
    v6: (u8, u8),
    ttl: u8,
) -> Option<Vec<u8>> {
    match (from, request.src) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let header_len = usize::from(bytes.first()? & 0x0f) * 4;
            let quoted = bytes.get(..header_len + 8).unwrap_or(bytes);
            let mut icmp = vec![v4.0, v4.1, 0, 0, 0, 0, 0, 0];
            icmp.extend_from_slice(quoted);
            let sum = checksum(&[&icmp]);
            icmp[2..4].copy_from_slice(&sum.to_be_bytes());
            Some(ipv4_packet(src, dst, PROTO_ICMP, &icmp, ttl))
        }
        (IpAddr::V6(_), IpAddr::V6(_)) => {
            let room = ICMPV6_ERROR_MAX - IPV6_HEADER_LEN - 8;
            let quoted = bytes.get(..room).unwrap_or(bytes);
            let mut icmp = vec![v6.0, v6.1, 0, 0, 0, 0, 0, 0];
            icmp.extend_from_slice(quoted);
            Some(ip_packet_with_pseudo_header(
                from,
                request.src,
                PROTO_ICMPV6,
                icmp,
                2,
                ttl,
            ))
        }
        _ => None,
    }
}

/// A TCP segment from `src`:`src_port` to `dst`:`dst_port` with a correct checksum; a SYN
/// carries the MSS option (`mss`).
#[allow(clippy::too_many_arguments)]
pub fn build_tcp(
    src: IpAddr,
    dst: IpAddr,
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    tcp_flags: u8,
    mss: Option<u16>,
    ttl: u8,
) -> Vec<u8> {
    let header_len = TCP_HEADER_LEN + if mss.is_some() { 4 } else { 0 };
    let mut tcp = vec![0u8; header_len];
    tcp[0..2].copy_from_slice(&src_port.to_be_bytes());
    tcp[2..4].copy_from_slice(&dst_port.to_be_bytes());
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[8..12].copy_from_slice(&ack.to_be_bytes());
    tcp[12] = u8::try_from(header_len / 4).expect("header is at most 24 bytes") << 4;
    tcp[13] = tcp_flags;
    let window: u16 = if tcp_flags & flags::RST != 0 {
        0
    } else {
        65535
    };
    tcp[14..16].copy_from_slice(&window.to_be_bytes());
    if let Some(mss) = mss {
        tcp[20] = 2;
        tcp[21] = 4;
        tcp[22..24].copy_from_slice(&mss.to_be_bytes());
    }
    ip_packet_with_pseudo_header(src, dst, PROTO_TCP, tcp, 16, ttl)
}

/// The answer to a SYN from the target: SYN-ACK with initial sequence `isn`.
pub fn build_syn_ack(request: &Packet<'_>, syn: &Segment, isn: u32, ttl: u8) -> Vec<u8> {
    let mss = if request.src.is_ipv4() { 1460 } else { 1440 };
    build_tcp(
        request.dst,
        request.src,
        syn.dst_port,
        syn.src_port,
        isn,
        syn.seq.wrapping_add(1),
        flags::SYN | flags::ACK,
        Some(mss),
        ttl,
    )
}

/// The RST a closed port or a fake endpoint sends in answer to `segment` (RFC 9293 3.10.7.1).
pub fn build_reset(request: &Packet<'_>, segment: &Segment, ttl: u8) -> Vec<u8> {
    let (seq, ack, tcp_flags) = if segment.flags & flags::ACK != 0 {
        (segment.ack, 0, flags::RST)
    } else {
        let syn_fin =
            u32::from(segment.flags & flags::SYN != 0) + u32::from(segment.flags & flags::FIN != 0);
        let len = u32::try_from(segment.payload_len).unwrap_or(u32::MAX);
        (
            0,
            segment.seq.wrapping_add(len).wrapping_add(syn_fin),
            flags::RST | flags::ACK,
        )
    };
    build_tcp(
        request.dst,
        request.src,
        segment.dst_port,
        segment.src_port,
        seq,
        ack,
        tcp_flags,
        None,
        ttl,
    )
}

/// Wraps `transport` (its checksum field at `checksum_at` zeroed) in an IP header, filling the
/// checksum over the IPv4 or IPv6 pseudo-header.
fn ip_packet_with_pseudo_header(
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    mut transport: Vec<u8>,
    checksum_at: usize,
    ttl: u8,
) -> Vec<u8> {
    let len = u32::try_from(transport.len()).expect("a packet is shorter than 4 GiB");
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let len16 = u16::try_from(len).unwrap_or(u16::MAX);
            let pseudo = [
                &s.octets()[..],
                &d.octets()[..],
                &[0, protocol],
                &len16.to_be_bytes(),
            ]
            .concat();
            let sum = checksum(&[&pseudo, &transport]);
            transport[checksum_at..checksum_at + 2].copy_from_slice(&sum.to_be_bytes());
            ipv4_packet(s, d, protocol, &transport, ttl)
        }
        (s, d) => {
            let s = to_v6(s);
            let d = to_v6(d);
            let pseudo = [
                &s.octets()[..],
                &d.octets()[..],
                &len.to_be_bytes(),
                &[0, 0, 0, protocol],
            ]
            .concat();
            let sum = checksum(&[&pseudo, &transport]);
            transport[checksum_at..checksum_at + 2].copy_from_slice(&sum.to_be_bytes());
            let mut packet = Vec::with_capacity(IPV6_HEADER_LEN + transport.len());
            packet.extend_from_slice(&[0x60, 0, 0, 0]);
            packet.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
            packet.push(protocol);
            packet.push(ttl);
            packet.extend_from_slice(&s.octets());
            packet.extend_from_slice(&d.octets());
            packet.extend_from_slice(&transport);
            packet
        }
    }
}

fn to_v6(address: IpAddr) -> Ipv6Addr {
    match address {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, payload: &[u8], ttl: u8) -> Vec<u8> {
    let total = u16::try_from(IPV4_HEADER_LEN + payload.len()).unwrap_or(u16::MAX);
    let mut packet = Vec::with_capacity(usize::from(total));
    packet.extend_from_slice(&[0x45, 0]);
    packet.extend_from_slice(&total.to_be_bytes());
    // Identification 0 with DF set, as Linux does for packets it will not fragment.
    packet.extend_from_slice(&[0, 0, 0x40, 0, ttl, protocol, 0, 0]);
    packet.extend_from_slice(&src.octets());
    packet.extend_from_slice(&dst.octets());
    let sum = checksum(&[&packet]);
    packet[10..12].copy_from_slice(&sum.to_be_bytes());
    packet.extend_from_slice(payload);
    packet
}

/// The Internet checksum (RFC 1071) over the concatenation of `parts`.
pub fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &byte in *part {
            match odd.take() {
                Some(high) => sum += u64::from(u16::from_be_bytes([high, byte])),
                None => odd = Some(byte),
            }
        }
    }
    if let Some(high) = odd {
        sum += u64::from(u16::from_be_bytes([high, 0]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(u16::try_from(sum).expect("folded to 16 bits"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo request as `ping -c1 198.19.0.2` sends it (identifier 0x1234, sequence 1, 8 bytes).
    fn echo_request_v4() -> Vec<u8> {
        let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8];
        let sum = checksum(&[&icmp]);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        ipv4_packet(
            Ipv4Addr::new(198, 19, 0, 1),
            Ipv4Addr::new(198, 19, 0, 2),
            PROTO_ICMP,
            &icmp,
            64,
        )
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 section 3: the sum of these words is 0xddf2, so the checksum is !0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&[&data]), !0xddf2);
        assert_eq!(checksum(&[&data[..3], &data[3..]]), !0xddf2);
    }

    #[test]
    fn echo_request_v4_is_answered_with_swapped_addresses_and_valid_checksums() {
        let request_bytes = echo_request_v4();
        let request = parse_packet(&request_bytes).expect("valid packet");
        let Kind::EchoRequest { message } = request.kind else {
            panic!("not an echo request: {request:?}");
        };
        let reply = build_echo_reply(&request, message, 57);
        assert_eq!(reply.len(), request_bytes.len());
        assert_eq!(checksum(&[&reply[..20]]), 0, "IPv4 header checksum");
        assert_eq!(checksum(&[&reply[20..]]), 0, "ICMP checksum");
        assert_eq!(reply[8], 57, "TTL");
        assert_eq!(&reply[12..16], &[198, 19, 0, 2]);
        assert_eq!(&reply[16..20], &[198, 19, 0, 1]);
        assert_eq!(reply[20], ICMP_ECHO_REPLY);
        assert_eq!(
            &reply[24..],
            &request_bytes[24..],
            "identifier, sequence, payload"
        );
    }

    /// The TOS byte (IPv4) and the traffic class (IPv6, across its nibble boundary) are read
    /// as they came: the DSCP a prober set is visible at the responder.
    #[test]
    fn the_traffic_class_is_read_from_either_header() {
        let mut v4 = echo_request_v4();
        v4[1] = 46 << 2;
        assert_eq!(parse_packet(&v4).expect("v4").traffic_class, 184);
        let src: Ipv6Addr = "fd00:198:19::1".parse().expect("address");
        let dst: Ipv6Addr = "fd00:198:19::7".parse().expect("address");
        let icmp = vec![ICMPV6_ECHO_REQUEST, 0, 0, 0, 0, 9, 0, 3];
        let mut v6 =
            ip_packet_with_pseudo_header(src.into(), dst.into(), PROTO_ICMPV6, icmp, 2, 64);
        v6[0] = 0x6b;
        v6[1] = 0x8f;
        assert_eq!(parse_packet(&v6).expect("v6").traffic_class, 0xb8);
    }

    #[test]
    fn echo_request_v6_reply_has_valid_pseudo_header_checksum() {
        let src: Ipv6Addr = "fd00:198:19::1".parse().expect("address");
        let dst: Ipv6Addr = "fd00:198:19::7".parse().expect("address");
        let icmp = vec![ICMPV6_ECHO_REQUEST, 0, 0, 0, 0, 9, 0, 3, 0xaa, 0xbb, 0xcc];
        let request_bytes =
            ip_packet_with_pseudo_header(src.into(), dst.into(), PROTO_ICMPV6, icmp, 2, 64);
        let request = parse_packet(&request_bytes).expect("valid packet");
        let Kind::EchoRequest { message } = request.kind else {
            panic!("not an echo request: {request:?}");
        };
        let reply = build_echo_reply(&request, message, 33);
        assert_eq!(reply[7], 33, "hop limit");
        let pseudo = [
            &dst.octets()[..],
            &src.octets()[..],
            &u32::try_from(reply.len() - 40)
                .expect("small")
                .to_be_bytes(),
            &[0, 0, 0, PROTO_ICMPV6],
        ]
        .concat();
        assert_eq!(checksum(&[&pseudo, &reply[40..]]), 0);
        assert_eq!(reply[40], ICMPV6_ECHO_REPLY);
        assert_eq!(&reply[44..], &request_bytes[44..]);
    }

    #[test]
    fn syn_is_answered_with_syn_ack_acknowledging_seq_plus_one() {
        let syn_bytes = build_tcp(
            "198.19.0.1".parse().expect("address"),
            "198.19.0.9".parse().expect("address"),
            40000,
            443,
            1000,
            0,
            flags::SYN,
            Some(1460),
            64,
        );
        let request = parse_packet(&syn_bytes).expect("valid packet");
        let Kind::Tcp(syn) = request.kind else {
            panic!("not tcp: {request:?}");
        };
        assert!(syn.is_syn());
        assert!(!syn.wants_reset());
        let reply = build_syn_ack(&request, &syn, 77, 64);
        let parsed = parse_packet(&reply).expect("valid reply");
        let Kind::Tcp(answer) = parsed.kind else {
            panic!("not tcp: {parsed:?}");
        };
        assert_eq!((answer.src_port, answer.dst_port), (443, 40000));
        assert_eq!((answer.seq, answer.ack), (77, 1001));
        assert_eq!(answer.flags, flags::SYN | flags::ACK);
        let pseudo = [&[198, 19, 0, 9, 198, 19, 0, 1, 0, PROTO_TCP, 0, 24][..]].concat();
        assert_eq!(checksum(&[&pseudo, &reply[20..]]), 0, "TCP checksum");
    }

    #[test]
    fn reset_follows_rfc9293_for_acked_and_unacked_segments() {
        let src: IpAddr = "fd00:198:19::1".parse().expect("address");
        let dst: IpAddr = "fd00:198:19::2".parse().expect("address");
        let fin = build_tcp(
            src,
            dst,
            5000,
            80,
            10,
            500,
            flags::FIN | flags::ACK,
            None,
            64,
        );
        let request = parse_packet(&fin).expect("valid");
        let Kind::Tcp(segment) = request.kind else {
            panic!("not tcp");
        };
        assert!(segment.wants_reset());
        let reset_bytes = build_reset(&request, &segment, 64);
        let reset = parse_packet(&reset_bytes).expect("valid");
        let Kind::Tcp(rst) = reset.kind else {
            panic!("not tcp");
        };
        assert_eq!((rst.seq, rst.flags), (500, flags::RST));

        let syn = build_tcp(src, dst, 5000, 81, 10, 0, flags::SYN, None, 64);
        let request = parse_packet(&syn).expect("valid");
        let Kind::Tcp(segment) = request.kind else {
            panic!("not tcp");
        };
        let reset_bytes = build_reset(&request, &segment, 64);
        let reset = parse_packet(&reset_bytes).expect("valid");
        let Kind::Tcp(rst) = reset.kind else {
            panic!("not tcp");
        };
        assert_eq!(
            (rst.seq, rst.ack, rst.flags),
            (0, 11, flags::RST | flags::ACK)
        );
    }

    #[test]
    fn truncated_and_foreign_packets_are_rejected_or_ignored() {
        assert_eq!(parse_packet(&[]), None);
        assert_eq!(parse_packet(&[0x45, 0, 0]), None);
        let mut short = echo_request_v4();
        short.truncate(30);
        assert_eq!(parse_packet(&short), None, "total length beyond the buffer");
        let mut gre = echo_request_v4();
        gre[9] = 47;
        assert_eq!(parse_packet(&gre).expect("valid").kind, Kind::Other);
    }

    #[test]
    fn time_exceeded_v4_quotes_the_header_and_eight_bytes_from_the_router() {
        let mut request_bytes = echo_request_v4();
        request_bytes[8] = 2;
        let request = parse_packet(&request_bytes).expect("valid packet");
        assert_eq!(request.ttl, 2);
        let router = IpAddr::from([198, 19, 0, 250]);
        let error = build_time_exceeded(&request, &request_bytes, router, 64).expect("v4");
        assert_eq!(checksum(&[&error[..20]]), 0, "IPv4 header checksum");
        assert_eq!(checksum(&[&error[20..]]), 0, "ICMP checksum");
        assert_eq!(error[9], PROTO_ICMP);
        assert_eq!(&error[12..16], &[198, 19, 0, 250], "from the router");
        assert_eq!(&error[16..20], &[198, 19, 0, 1], "to the prober");
        assert_eq!((error[20], error[21]), (ICMP_TIME_EXCEEDED, 0));
        assert_eq!(&error[28..], &request_bytes[..28], "IP header + 8 bytes");
        let v6_router = IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            build_time_exceeded(&request, &request_bytes, v6_router, 64),
            None
        );
    }

    #[test]
    fn time_exceeded_v6_quotes_the_packet() {
        let src: Ipv6Addr = "fd00:198:19::1".parse().expect("address");
        let dst: Ipv6Addr = "fd00:198:19::7".parse().expect("address");
        let router: Ipv6Addr = "fd00:198:19::fe".parse().expect("address");
        let icmp = vec![ICMPV6_ECHO_REQUEST, 0, 0, 0, 0, 9, 0, 3, 0xaa, 0xbb];
        let request_bytes =
            ip_packet_with_pseudo_header(src.into(), dst.into(), PROTO_ICMPV6, icmp, 2, 1);
        let request = parse_packet(&request_bytes).expect("valid packet");
        assert_eq!(request.ttl, 1);
        let error = build_time_exceeded(&request, &request_bytes, router.into(), 64).expect("v6");
        let pseudo = [
            &router.octets()[..],
            &src.octets()[..],
            &u32::try_from(error.len() - 40)
                .expect("small")
                .to_be_bytes(),
            &[0, 0, 0, PROTO_ICMPV6],
        ]
        .concat();
        assert_eq!(checksum(&[&pseudo, &error[40..]]), 0);
        assert_eq!((error[40], error[41]), (ICMPV6_TIME_EXCEEDED, 0));
        assert_eq!(&error[48..], &request_bytes[..]);
    }

    #[test]
    fn udp_to_a_target_gets_port_unreachable_from_it() {
        let mut udp = vec![0x9c, 0x40, 0x82, 0x9a, 0, 12, 0, 0, 1, 2, 3, 4];
        udp[6..8].copy_from_slice(&[0, 0]);
        let request_bytes = ipv4_packet(
            Ipv4Addr::new(198, 19, 0, 1),
            Ipv4Addr::new(198, 19, 0, 9),
            PROTO_UDP,
            &udp,
            7,
        );
        let request = parse_packet(&request_bytes).expect("valid packet");
        assert_eq!(request.kind, Kind::Udp { dst_port: 33434 });
        let error = build_port_unreachable(&request, &request_bytes, 64);
        assert_eq!(checksum(&[&error[20..]]), 0, "ICMP checksum");
        assert_eq!(&error[12..16], &[198, 19, 0, 9], "from the target");
        assert_eq!(
            (error[20], error[21]),
            (ICMP_UNREACHABLE, ICMP_PORT_UNREACHABLE)
        );
        assert_eq!(&error[28..], &request_bytes[..28]);
    }
}
