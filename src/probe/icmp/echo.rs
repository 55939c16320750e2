//! ICMP and ICMPv6 echo packets: build a request, parse a reply. Pure, no I/O.
//!
//! The payload starts with an 8-byte per-probe token, so a reply is matched by identifier,
//! sequence *and* token: two pingers to one host with colliding identifiers (surge-ping #73)
//! cannot take each other's replies.

/// ICMP (v4) echo request type.
pub const ECHO_REQUEST_V4: u8 = 8;
/// ICMP (v4) echo reply type.
pub const ECHO_REPLY_V4: u8 = 0;
/// ICMPv6 echo request type.
pub const ECHO_REQUEST_V6: u8 = 128;
/// ICMPv6 echo reply type.
pub const ECHO_REPLY_V6: u8 = 129;
/// ICMP (v4) destination unreachable type.
pub const UNREACHABLE_V4: u8 = 3;
/// ICMPv6 destination unreachable type.
pub const UNREACHABLE_V6: u8 = 1;
/// ICMPv6 packet too big type.
pub const TOO_BIG_V6: u8 = 2;
/// ICMP (v4) destination unreachable code "fragmentation needed and DF set".
pub const FRAGMENTATION_NEEDED_V4: u8 = 4;
/// Bytes of the echo header (type, code, checksum, identifier, sequence).
pub const HEADER_LEN: usize = 8;
/// Bytes of the token at the start of the payload.
pub const TOKEN_LEN: usize = 8;

/// An echo request for `token`, with `payload_size` bytes after the header (the token first,
/// as much of it as fits, then a fixed pattern). The ICMPv4 checksum is filled in; ICMPv6's is
/// left 0 because the kernel computes it (it needs the pseudo-header's addresses).
pub fn build_request(v6: bool, id: u16, seq: u16, token: u64, payload_size: usize) -> Vec<u8> {
    let mut packet = vec![0u8; HEADER_LEN + payload_size];
    packet[0] = request_type(v6);
    packet[4..6].copy_from_slice(&id.to_be_bytes());
    packet[6..8].copy_from_slice(&seq.to_be_bytes());
    let token_bytes = token.to_be_bytes();
    let token_len = payload_size.min(TOKEN_LEN);
    packet[HEADER_LEN..HEADER_LEN + token_len].copy_from_slice(&token_bytes[..token_len]);
    for (index, byte) in packet[HEADER_LEN + token_len..].iter_mut().enumerate() {
        // Like ping's pattern: a recognisable ramp, so a capture shows whose packet it is.
        *byte = (index % 256) as u8;
    }
    if !v6 {
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

/// The echo request type of the family.
fn request_type(v6: bool) -> u8 {
    if v6 {
        ECHO_REQUEST_V6
    } else {
        ECHO_REQUEST_V4
    }
}

/// The Internet checksum (RFC 1071) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// What an echo reply carries that matching needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    pub id: u16,
    pub seq: u16,
    /// `None` when the payload is shorter than a token (payload_size < 8).
    pub token: Option<u64>,
    /// TTL from the IPv4 header, when the packet came with one (RAW IPv4 sockets).
    pub ttl: Option<u8>,
    /// Source address from the IPv4 header, when the packet came with one.
    pub source_v4: Option<[u8; 4]>,
}

/// Parses an echo reply; `None` for anything else (other ICMP types, our own requests seen on
/// loopback, truncated packets). `ip_header` says whether the packet starts with an IPv4 header
/// (RAW IPv4 sockets); IPv6 sockets never see the IPv6 header.
pub fn parse_reply(v6: bool, ip_header: bool, packet: &[u8]) -> Option<Reply> {
    let (icmp, ttl, source_v4) = if ip_header && !v6 {
        let (header, icmp) = split_ipv4(packet)?;
        let source = [header[12], header[13], header[14], header[15]];
        (icmp, Some(header[8]), Some(source))
    } else {
        (packet, None, None)
    };
    if icmp.len() < HEADER_LEN {
        return None;
    }
    let reply_type = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
    if icmp[0] != reply_type || icmp[1] != 0 {
        return None;
    }
    let token = icmp
        .get(HEADER_LEN..HEADER_LEN + TOKEN_LEN)
        .and_then(|bytes| <[u8; TOKEN_LEN]>::try_from(bytes).ok())
        .map(u64::from_be_bytes);
    Some(Reply {
        id: u16::from_be_bytes([icmp[4], icmp[5]]),
        seq: u16::from_be_bytes([icmp[6], icmp[7]]),
        token,
        ttl,
        source_v4,
    })
}

/// Bytes of an IPv4 header without options.
const IPV4_HEADER_MIN: usize = 20;
/// Bytes of the IPv6 header (the quoted one: our requests carry no extension headers).
const IPV6_HEADER_LEN: usize = 40;
/// The protocol numbers of ICMP and ICMPv6 (IPv4 protocol, IPv6 next header).
const PROTOCOL_ICMP: u8 = 1;
const PROTOCOL_ICMPV6: u8 = 58;

/// An IPv4 header and what follows it, if `packet` starts with a well-formed one: version 4,
/// a header length of at least 20 bytes, all of it present. Any host can send anything to a
/// RAW socket, and a quoted header is the sender's word: neither is trusted further.
fn split_ipv4(packet: &[u8]) -> Option<(&[u8], &[u8])> {
    let first = *packet.first()?;
    let header_len = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || header_len < IPV4_HEADER_MIN || packet.len() < header_len {
        return None;
    }
    Some(packet.split_at(header_len))
}

/// ICMP (v4) time exceeded type (a router's TTL ran out).
pub const TIME_EXCEEDED_V4: u8 = 11;
/// ICMPv6 time exceeded type (a router's hop limit ran out).
pub const TIME_EXCEEDED_V6: u8 = 3;

/// Which ICMP error quotes one of our requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Destination unreachable (v4 type 3, v6 type 1), except "fragmentation needed".
    Unreachable,
    /// ICMP fragmentation needed and DF set (type 3 code 4), ICMPv6 packet too big (type 2):
    /// a Don't Fragment probe larger than the path MTU.
    TooBig,
    /// Time exceeded (v4 type 11, v6 type 3): what a trace's probes are meant to provoke.
    TimeExceeded,
}

/// An ICMP error about one of our echo requests, as RAW sockets receive it (DGRAM sockets get
/// it on their error queue instead, see [`quoted_sequence`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotedError {
    pub kind: ErrorKind,
    /// Identifier, sequence and destination of the request it quotes.
    pub id: u16,
    pub seq: u16,
    pub to: std::net::IpAddr,
}

/// The ICMP error kind of a message type and code of the family, if it is one we act on.
pub fn error_kind(v6: bool, message_type: u8, code: u8) -> Option<ErrorKind> {
    match (v6, message_type, code) {
        (false, UNREACHABLE_V4, FRAGMENTATION_NEEDED_V4) | (true, TOO_BIG_V6, _) => {
            Some(ErrorKind::TooBig)
        }
        (false, UNREACHABLE_V4, _) | (true, UNREACHABLE_V6, _) => Some(ErrorKind::Unreachable),
        (false, TIME_EXCEEDED_V4, _) | (true, TIME_EXCEEDED_V6, _) => Some(ErrorKind::TimeExceeded),
        _ => None,
    }
}

/// Parses an ICMP destination unreachable, packet too big or time exceeded that quotes one of
/// our echo requests; `None` for anything else.
pub fn parse_error(v6: bool, ip_header: bool, packet: &[u8]) -> Option<QuotedError> {
    let icmp = if ip_header && !v6 {
        split_ipv4(packet)?.1
    } else {
        packet
    };
    let kind = error_kind(v6, *icmp.first()?, *icmp.get(1)?)?;
    // The quoted datagram must be an ICMP one of our family, its header whole: a header that
    // is not would put the "request" and its "destination" at offsets inside each other.
    let inner = icmp.get(HEADER_LEN..)?;
    let (to, quoted) = if v6 {
        let header = inner.get(..IPV6_HEADER_LEN)?;
        if header[0] >> 4 != 6 || header[6] != PROTOCOL_ICMPV6 {
            return None;
        }
        let destination = <[u8; 16]>::try_from(&header[24..40]).ok()?;
        (
            std::net::IpAddr::from(destination),
            &inner[IPV6_HEADER_LEN..],
        )
    } else {
        let (header, quoted) = split_ipv4(inner)?;
        if header[9] != PROTOCOL_ICMP {
            return None;
        }
        let destination = <[u8; 4]>::try_from(&header[16..20]).ok()?;
        (std::net::IpAddr::from(destination), quoted)
    };
    match quoted {
        [request, _, _, _, id_high, id_low, seq_high, seq_low, ..]
            if *request == request_type(v6) =>
        {
            Some(QuotedError {
                kind,
                id: u16::from_be_bytes([*id_high, *id_low]),
                seq: u16::from_be_bytes([*seq_high, *seq_low]),
                to,
            })
        }
        _ => None,
    }
}

/// `(id, seq, to)` of a destination unreachable quoting one of our requests (the unit tests'
/// and the fuzz target's view of [`parse_error`]).
pub fn parse_unreachable(
    v6: bool,
    ip_header: bool,
    packet: &[u8],
) -> Option<(u16, u16, std::net::IpAddr)> {
    parse_error(v6, ip_header, packet)
        .filter(|error| error.kind == ErrorKind::Unreachable)
        .map(|error| (error.id, error.seq, error.to))
}

/// The sequence number of the echo request an ICMP error quotes, as a DGRAM socket's error
/// queue hands it back: from the request's ICMP header on (at least those 8 bytes are quoted).
pub fn quoted_sequence(v6: bool, quoted: &[u8]) -> Option<u16> {
    let request = request_type(v6);
    match quoted {
        [kind, 0, _, _, _, _, high, low, ..] if *kind == request => {
            Some(u16::from_be_bytes([*high, *low]))
        }
        _ => None,
    }
}

/// One of our echo requests as the kernel hands it back with its transmit timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentRequest {
    pub id: u16,
    pub seq: u16,
    pub token: u64,
}

/// The echo requests a looped-back copy of a sent packet may hold. The copy starts at whatever
/// header the device saw first (Ethernet, IP, or none), so every offset where a request with a
/// whole token could start is a candidate: the caller keeps the one whose sequence and token
/// are a request of its own. (An Ethernet header's IPv4 EtherType, 08 00, looks like a request.)
pub fn sent_requests(v6: bool, packet: &[u8]) -> impl Iterator<Item = SentRequest> + '_ {
    let request = request_type(v6);
    packet
        .windows(HEADER_LEN + TOKEN_LEN)
        .filter(move |window| window[0] == request && window[1] == 0)
        .map(|window| SentRequest {
            id: u16::from_be_bytes([window[4], window[5]]),
            seq: u16::from_be_bytes([window[6], window[7]]),
            token: u64::from_be_bytes([
                window[8], window[9], window[10], window[11], window[12], window[13], window[14],
                window[15],
            ]),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply as a peer makes it: the request with its type changed and checksum redone.
    fn reply_for(request: &[u8], v6: bool) -> Vec<u8> {
        let mut reply = request.to_vec();
        reply[0] = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
        reply[2..4].copy_from_slice(&[0, 0]);
        let sum = checksum(&reply);
        reply[2..4].copy_from_slice(&sum.to_be_bytes());
        reply
    }

    #[test]
    fn request_has_header_token_and_valid_checksum() {
        let packet = build_request(false, 0x1234, 7, 0xdead_beef_0102_0304, 56);
        assert_eq!(packet.len(), 64);
        assert_eq!(&packet[..2], &[8, 0]);
        assert_eq!(&packet[4..8], &[0x12, 0x34, 0, 7]);
        assert_eq!(&packet[8..16], &0xdead_beef_0102_0304u64.to_be_bytes());
        // A correct checksum makes the sum over the whole packet come out 0.
        assert_eq!(checksum(&packet), 0);
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 section 3: the sum of 00 01 f2 03 f4 f5 f6 f7 is ddf2, complemented 220d.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
        // Odd length: the last byte is padded with a zero byte.
        assert_eq!(checksum(&[0xff]), !0xff00);
    }

    #[test]
    fn reply_round_trips_with_and_without_ip_header() {
        let request = build_request(false, 9, 300, 42, 20);
        let reply = reply_for(&request, false);
        let parsed = parse_reply(false, false, &reply).expect("reply");
        assert_eq!((parsed.id, parsed.seq, parsed.token), (9, 300, Some(42)));
        let mut with_header = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 57, 1, 0, 0, 10, 0, 0, 9, 10, 0, 0, 1,
        ];
        with_header.extend_from_slice(&reply);
        let parsed = parse_reply(false, true, &with_header).expect("reply");
        assert_eq!(parsed.ttl, Some(57));
        assert_eq!(parsed.source_v4, Some([10, 0, 0, 9]));
        assert_eq!(parsed.token, Some(42));
    }

    #[test]
    fn requests_other_types_and_short_packets_are_not_replies() {
        let request = build_request(false, 1, 1, 1, 56);
        assert_eq!(parse_reply(false, false, &request), None);
        assert_eq!(parse_reply(false, false, &[0, 0, 0]), None);
        assert_eq!(parse_reply(false, true, &[0x45, 0, 0]), None);
        // Destination unreachable (type 3).
        assert_eq!(parse_reply(false, false, &[3, 1, 0, 0, 0, 0, 0, 0]), None);
        let v6 = reply_for(&build_request(true, 5, 6, 7, 8), true);
        assert_eq!(parse_reply(false, false, &v6), None);
        assert_eq!(parse_reply(true, false, &v6).map(|r| r.seq), Some(6));
    }

    #[test]
    fn short_payload_carries_no_token() {
        let request = build_request(true, 1, 2, u64::MAX, 4);
        assert_eq!(request.len(), 12);
        let parsed = parse_reply(true, false, &reply_for(&request, true)).expect("reply");
        assert_eq!(parsed.token, None);
    }

    #[test]
    fn time_exceeded_quotes_our_request() {
        let request = build_request(false, 0x0102, 0x0304, 5, 56);
        let mut packet = vec![11, 0, 0, 0, 0, 0, 0, 0];
        packet.extend_from_slice(&[
            0x45, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 9,
        ]);
        packet.extend_from_slice(&request[..8]);
        let parsed = parse_error(false, false, &packet).expect("time exceeded");
        assert_eq!(parsed.kind, ErrorKind::TimeExceeded);
        assert_eq!((parsed.id, parsed.seq), (0x0102, 0x0304));
        assert_eq!(parsed.to, std::net::IpAddr::from([10, 0, 0, 9]));
        // ICMPv6 time exceeded is type 3; in ICMPv4, type 3 is unreachable.
        let request = build_request(true, 7, 8, 9, 16);
        let mut packet = vec![3, 0, 0, 0, 0, 0, 0, 0];
        let mut quoted_header = [0u8; 40];
        quoted_header[0] = 0x60;
        quoted_header[6] = PROTOCOL_ICMPV6;
        packet.extend_from_slice(&quoted_header);
        packet.extend_from_slice(&request);
        let parsed = parse_error(true, false, &packet).expect("v6 time exceeded");
        assert_eq!(parsed.kind, ErrorKind::TimeExceeded);
        assert_eq!(error_kind(false, 3, 1), Some(ErrorKind::Unreachable));
        assert_eq!(error_kind(true, 1, 0), Some(ErrorKind::Unreachable));
        assert_eq!(error_kind(false, 3, 4), Some(ErrorKind::TooBig));
        assert_eq!(error_kind(true, 2, 0), Some(ErrorKind::TooBig));
        assert_eq!(error_kind(false, 0, 0), None);
    }

    #[test]
    fn unreachable_quotes_our_request() {
        let request = build_request(false, 0x0102, 0x0304, 5, 56);
        // Outer IPv4 header, ICMP type 3 code 1, 4 unused bytes, the quoted IPv4 header and the
        // first bytes of our request.
        let mut packet = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 254, 10, 0, 0, 1,
        ];
        packet.extend_from_slice(&[3, 1, 0, 0, 0, 0, 0, 0]);
        packet.extend_from_slice(&[
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 9,
        ]);
        packet.extend_from_slice(&request[..28]);
        let to = std::net::IpAddr::from([10, 0, 0, 9]);
        assert_eq!(
            parse_unreachable(false, true, &packet),
            Some((0x0102, 0x0304, to))
        );
        // The same without the outer header (as IPv6 sockets see theirs).
        assert_eq!(
            parse_unreachable(false, false, &packet[20..]),
            Some((0x0102, 0x0304, to))
        );
        // An echo reply is not an unreachable.
        assert_eq!(
            parse_unreachable(false, false, &[0, 0, 0, 0, 0, 0, 0, 0]),
            None
        );
        // Truncated quote.
        assert_eq!(parse_unreachable(false, true, &packet[..40]), None);
        // IPv6: type 1, 4 unused bytes, 40-byte quoted header, our request.
        let request = build_request(true, 7, 8, 9, 16);
        let mut packet = vec![1, 0, 0, 0, 0, 0, 0, 0];
        let mut header = [0u8; 40];
        header[0] = 0x60;
        header[6] = 58;
        header[24..40].copy_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
        packet.extend_from_slice(&header);
        packet.extend_from_slice(&request);
        let to = std::net::IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, 9]);
        assert_eq!(parse_unreachable(true, false, &packet), Some((7, 8, to)));
        // A quoted header of another version or next header is not one of our requests'.
        let mut other = packet.clone();
        other[8] = 0x40;
        assert_eq!(parse_unreachable(true, false, &other), None);
        let mut other = packet.clone();
        other[8 + 6] = 17;
        assert_eq!(parse_unreachable(true, false, &other), None);
    }

    /// Fragmentation needed (v4 type 3 code 4) and packet too big (v6 type 2) are told apart
    /// from other unreachables, with the quoted request's fields.
    #[test]
    fn too_big_is_its_own_error() {
        let too_big = |v6, packet: &[u8]| {
            parse_error(v6, false, packet).map(|error| (error.kind, error.id, error.seq, error.to))
        };
        let request = build_request(false, 0x0102, 0x0304, 5, 1400);
        let mut packet = vec![3, 4, 0, 0, 0, 0, 0x05, 0x00];
        packet.extend_from_slice(&[
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 9,
        ]);
        packet.extend_from_slice(&request[..28]);
        let to = std::net::IpAddr::from([10, 0, 0, 9]);
        assert_eq!(
            too_big(false, &packet),
            Some((ErrorKind::TooBig, 0x0102, 0x0304, to))
        );
        packet[1] = 1;
        assert_eq!(
            too_big(false, &packet),
            Some((ErrorKind::Unreachable, 0x0102, 0x0304, to))
        );
        let request = build_request(true, 7, 8, 9, 1400);
        let mut packet = vec![2, 0, 0, 0, 0, 0, 0x05, 0x00];
        let mut header = [0u8; 40];
        header[0] = 0x60;
        header[6] = 58;
        header[24..40].copy_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
        packet.extend_from_slice(&header);
        packet.extend_from_slice(&request[..64]);
        let to = std::net::IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, 9]);
        assert_eq!(too_big(true, &packet), Some((ErrorKind::TooBig, 7, 8, to)));
        assert_eq!(parse_unreachable(true, false, &packet), None);
        packet[0] = 1;
        assert_eq!(
            too_big(true, &packet),
            Some((ErrorKind::Unreachable, 7, 8, to))
        );
    }

    /// Found writing the fuzz target's invariants (fuzz/fuzz_targets/icmp_echo.rs): the IPv4
    /// headers around an unreachable were not checked. An outer header length of 0 read the
    /// IP header as the ICMP message, and a quoted header shorter than 20 bytes (or not ICMP)
    /// put the quoted "request" inside the header whose destination was read.
    #[test]
    fn an_unreachable_needs_well_formed_ipv4_headers() {
        let request = build_request(false, 0x0102, 0x0304, 5, 56);
        let quote = |inner_first: u8, protocol: u8| {
            let mut packet = vec![3, 1, 0, 0, 0, 0, 0, 0];
            packet.extend_from_slice(&[
                inner_first,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                64,
                protocol,
                0,
                0,
                10,
                0,
                0,
                1,
                10,
                0,
                0,
                9,
            ]);
            packet.extend_from_slice(&request[..8]);
            packet
        };
        let to = std::net::IpAddr::from([10, 0, 0, 9]);
        assert_eq!(
            parse_unreachable(false, false, &quote(0x45, 1)),
            Some((0x0102, 0x0304, to))
        );
        assert_eq!(parse_unreachable(false, false, &quote(0x45, 17)), None);
        assert_eq!(parse_unreachable(false, false, &quote(0x65, 1)), None);
        // A quoted header length of 4 bytes, whose "request" would start at its byte 4.
        let mut short = quote(0x41, 1);
        short[8 + 4] = ECHO_REQUEST_V4;
        assert_eq!(parse_unreachable(false, false, &short), None);
        // An outer header of length 0 or another version: not an IPv4 packet.
        let mut outer = vec![
            0x40, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 254, 10, 0, 0, 1,
        ];
        outer.extend_from_slice(&quote(0x45, 1));
        assert_eq!(parse_unreachable(false, true, &outer), None);
        outer[0] = 0x45;
        assert_eq!(
            parse_unreachable(false, true, &outer),
            Some((0x0102, 0x0304, to))
        );
        outer[0] = 0x65;
        assert_eq!(parse_unreachable(false, true, &outer), None);
    }

    #[test]
    fn a_quoted_request_gives_its_sequence() {
        let request = build_request(false, 1, 0x0a0b, 3, 56);
        assert_eq!(quoted_sequence(false, &request), Some(0x0a0b));
        // Only the 8 bytes of the header quoted (RFC 792's minimum) are enough.
        assert_eq!(quoted_sequence(false, &request[..8]), Some(0x0a0b));
        assert_eq!(quoted_sequence(false, &request[..7]), None);
        // A reply, or the other family's request, is not one of our requests.
        assert_eq!(quoted_sequence(false, &reply_for(&request, false)), None);
        assert_eq!(quoted_sequence(true, &request), None);
        let v6 = build_request(true, 1, 9, 3, 0);
        assert_eq!(quoted_sequence(true, &v6), Some(9));
    }

    #[test]
    fn a_sent_request_is_found_behind_any_header() {
        let request = build_request(false, 0x0102, 0x0304, 0x1122_3344_5566_7788, 56);
        let want = SentRequest {
            id: 0x0102,
            seq: 0x0304,
            token: 0x1122_3344_5566_7788,
        };
        // Ethernet (EtherType 08 00 is a decoy request shape) + IPv4 header + the request.
        let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        frame.extend_from_slice(&[
            0x45, 0, 0, 84, 0, 0, 0x40, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 9,
        ]);
        frame.extend_from_slice(&request);
        let found: Vec<SentRequest> = sent_requests(false, &frame).collect();
        assert!(found.contains(&want), "{found:?}");
        // The request alone, as a device without link or IP header would give it.
        assert_eq!(sent_requests(false, &request).next(), Some(want));
        // A request too short to carry a whole token is not found: nothing to match it by.
        let short = build_request(false, 1, 2, 3, 4);
        assert_eq!(sent_requests(false, &short).count(), 0);
        // An ICMPv6 request is not an ICMPv4 one, and the other way round.
        let v6 = build_request(true, 1, 2, 3, 56);
        assert_eq!(sent_requests(false, &v6).count(), 0);
        assert_eq!(sent_requests(true, &v6).map(|r| r.token).next(), Some(3));
    }
}
