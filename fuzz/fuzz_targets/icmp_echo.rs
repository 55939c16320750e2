//! `echo::parse_reply`, `parse_unreachable`, `quoted_sequence`, `sent_requests` and `checksum`
//! on (a) any bytes, as a RAW socket hands over whatever any host sends, and (b) packets built
//! as a peer or a router builds them around a request from `build_request`.
//!
//! Invariants: never a panic; on any bytes each parser accepts exactly what an independent
//! reading of RFC 792 / RFC 4443 here accepts, with the fields at their offsets (a reply is
//! never an unreachable, our own request is never a reply, an unreachable's headers are
//! well-formed IPv4/IPv6 headers of an ICMP datagram); for built packets every field comes back
//! exactly, behind any IPv4 options and any link header; a request's checksum verifies.
#![no_main]

use std::net::IpAddr;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use xen_exporter::testing::icmp::{
    build_request, checksum, parse_reply, parse_unreachable, quoted_sequence, sent_requests, Reply,
    SentRequest, ECHO_REPLY_V4, ECHO_REPLY_V6, ECHO_REQUEST_V4, ECHO_REQUEST_V6, HEADER_LEN,
    TOKEN_LEN, UNREACHABLE_V4, UNREACHABLE_V6,
};

/// The ICMP message after a well-formed IPv4 header, and that header (RFC 791: version 4,
/// IHL ≥ 5 words, all present).
fn after_ipv4(packet: &[u8]) -> Option<(&[u8], &[u8])> {
    let ihl = usize::from(*packet.first()? & 0x0f);
    if packet[0] >> 4 != 4 || ihl < 5 || packet.len() < ihl * 4 {
        return None;
    }
    Some((&packet[..ihl * 4], &packet[ihl * 4..]))
}

fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

/// What `parse_reply` must return for `packet`.
fn expected_reply(v6: bool, ip_header: bool, packet: &[u8]) -> Option<Reply> {
    let (icmp, ttl, source_v4) = if ip_header && !v6 {
        let (header, icmp) = after_ipv4(packet)?;
        (
            icmp,
            Some(header[8]),
            Some([header[12], header[13], header[14], header[15]]),
        )
    } else {
        (packet, None, None)
    };
    let reply = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
    if icmp.len() < HEADER_LEN || icmp[0] != reply || icmp[1] != 0 {
        return None;
    }
    let token = (icmp.len() >= HEADER_LEN + TOKEN_LEN).then(|| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&icmp[HEADER_LEN..HEADER_LEN + TOKEN_LEN]);
        u64::from_be_bytes(bytes)
    });
    Some(Reply {
        id: be16(icmp, 4),
        seq: be16(icmp, 6),
        token,
        ttl,
        source_v4,
    })
}

/// What `parse_unreachable` must return for `packet`.
fn expected_unreachable(v6: bool, ip_header: bool, packet: &[u8]) -> Option<(u16, u16, IpAddr)> {
    let icmp = if ip_header && !v6 {
        after_ipv4(packet)?.1
    } else {
        packet
    };
    let (unreachable, request) = if v6 {
        (UNREACHABLE_V6, ECHO_REQUEST_V6)
    } else {
        (UNREACHABLE_V4, ECHO_REQUEST_V4)
    };
    if icmp.len() < HEADER_LEN || icmp[0] != unreachable {
        return None;
    }
    let inner = &icmp[HEADER_LEN..];
    let (destination, quoted) = if v6 {
        // RFC 8200: version 6, next header at byte 6 (58 is ICMPv6), destination at 24..40.
        if inner.len() < 40 || inner[0] >> 4 != 6 || inner[6] != 58 {
            return None;
        }
        let mut address = [0u8; 16];
        address.copy_from_slice(&inner[24..40]);
        (IpAddr::from(address), &inner[40..])
    } else {
        let (header, quoted) = after_ipv4(inner)?;
        if header[9] != 1 {
            return None;
        }
        (
            IpAddr::from([header[16], header[17], header[18], header[19]]),
            quoted,
        )
    };
    if quoted.len() < 8 || quoted[0] != request {
        return None;
    }
    Some((be16(quoted, 4), be16(quoted, 6), destination))
}

/// Any bytes, read as every kind of socket would.
fn any_bytes(packet: &[u8]) {
    for (v6, ip_header) in [(false, false), (false, true), (true, false), (true, true)] {
        let reply = parse_reply(v6, ip_header, packet);
        assert_eq!(
            reply,
            expected_reply(v6, ip_header, packet),
            "reply v6={v6} ip={ip_header}"
        );
        let unreachable = parse_unreachable(v6, ip_header, packet);
        assert_eq!(
            unreachable,
            expected_unreachable(v6, ip_header, packet),
            "unreachable v6={v6} ip={ip_header}"
        );
        assert!(
            reply.is_none() || unreachable.is_none(),
            "a reply is never an unreachable"
        );
        if let Some(reply) = reply {
            assert_eq!(reply.ttl.is_some(), ip_header && !v6);
        }
    }
    for v6 in [false, true] {
        let request = if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 };
        let quoted = match packet {
            [kind, 0, _, _, _, _, high, low, ..] if *kind == request => {
                Some(u16::from_be_bytes([*high, *low]))
            }
            _ => None,
        };
        assert_eq!(quoted_sequence(v6, packet), quoted);
        // Every offset where a request with a whole token could start, and only those.
        let found: Vec<SentRequest> = sent_requests(v6, packet).collect();
        let expected: Vec<SentRequest> =
            (0..packet.len().saturating_sub(HEADER_LEN + TOKEN_LEN - 1))
                .filter(|&at| packet[at] == request && packet[at + 1] == 0)
                .map(|at| SentRequest {
                    id: be16(packet, at + 4),
                    seq: be16(packet, at + 6),
                    token: u64::from_be_bytes(packet[at + 8..at + 16].try_into().expect("8 bytes")),
                })
                .collect();
        assert_eq!(found, expected);
    }
    // RFC 1071: data followed by its checksum (at an even offset) sums to zero.
    let even = &packet[..packet.len() & !1];
    let mut with_sum = even.to_vec();
    with_sum.extend_from_slice(&checksum(even).to_be_bytes());
    assert_eq!(checksum(&with_sum), 0, "checksum of data + its checksum");
}

/// A request of ours, and the packets the network builds around it.
#[derive(Debug, Arbitrary)]
struct Echo {
    v6: bool,
    id: u16,
    seq: u16,
    token: u64,
    payload: u16,
    ttl: u8,
    source: [u8; 4],
    destination: [u8; 16],
    /// IPv4 option words of the reply's and the quoting router's header (taken mod 11).
    options: u8,
    inner_options: u8,
    code: u8,
    /// How much of the request a router quotes (at least the 8 bytes RFC 792 asks).
    quote: u16,
    /// A link header (or anything) before a looped-back copy of the request.
    prefix: Vec<u8>,
}

fn ipv4_header(
    words: usize,
    protocol: u8,
    ttl: u8,
    source: [u8; 4],
    destination: [u8; 4],
    filler: u8,
) -> Vec<u8> {
    let mut header = vec![filler; words * 4];
    header[0] = 0x40 | words as u8;
    header[8] = ttl;
    header[9] = protocol;
    header[12..16].copy_from_slice(&source);
    header[16..20].copy_from_slice(&destination);
    header
}

fn built(echo: &Echo) {
    let v6 = echo.v6;
    let payload = usize::from(echo.payload % 1500);
    let request = build_request(v6, echo.id, echo.seq, echo.token, payload);
    assert_eq!(request.len(), HEADER_LEN + payload);
    if !v6 {
        assert_eq!(checksum(&request), 0, "a request's checksum verifies");
    }
    let token = (payload >= TOKEN_LEN).then_some(echo.token);
    assert_eq!(
        parse_reply(v6, false, &request),
        None,
        "our request is no reply"
    );
    // Looped back behind any header: found, exactly when it carries a whole token.
    let mut copy = echo.prefix.clone();
    copy.extend_from_slice(&request);
    let want = SentRequest {
        id: echo.id,
        seq: echo.seq,
        token: echo.token,
    };
    assert_eq!(
        sent_requests(v6, &copy).any(|found| found == want),
        token.is_some()
    );
    for length in HEADER_LEN..=request.len() {
        assert_eq!(quoted_sequence(v6, &request[..length]), Some(echo.seq));
    }
    // The peer's reply: the request with its type changed.
    let mut reply = request.clone();
    reply[0] = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
    let words = 5 + usize::from(echo.options % 11);
    let to4 = [
        echo.destination[0],
        echo.destination[1],
        echo.destination[2],
        echo.destination[3],
    ];
    let parsed = if v6 {
        parse_reply(true, false, &reply)
    } else {
        let mut packet = ipv4_header(words, 1, echo.ttl, echo.source, to4, echo.code);
        packet.extend_from_slice(&reply);
        parse_reply(false, true, &packet)
    };
    let (ttl, source_v4) = if v6 {
        (None, None)
    } else {
        (Some(echo.ttl), Some(echo.source))
    };
    assert_eq!(
        parsed,
        Some(Reply {
            id: echo.id,
            seq: echo.seq,
            token,
            ttl,
            source_v4
        })
    );
    // A router's destination unreachable quoting it.
    let quote = (HEADER_LEN + usize::from(echo.quote) % 1500).min(request.len());
    let mut message = vec![
        if v6 { UNREACHABLE_V6 } else { UNREACHABLE_V4 },
        echo.code,
        0,
        0,
        0,
        0,
        0,
        0,
    ];
    let destination = if v6 {
        let mut header = [echo.code; 40];
        header[0] = 0x60;
        header[6] = 58;
        header[24..40].copy_from_slice(&echo.destination);
        message.extend_from_slice(&header);
        IpAddr::from(echo.destination)
    } else {
        let inner_words = 5 + usize::from(echo.inner_options % 11);
        message.extend_from_slice(&ipv4_header(
            inner_words,
            1,
            echo.ttl,
            echo.source,
            to4,
            echo.code,
        ));
        IpAddr::from(to4)
    };
    message.extend_from_slice(&request[..quote]);
    let want = Some((echo.id, echo.seq, destination));
    if v6 {
        assert_eq!(parse_unreachable(true, false, &message), want);
    } else {
        assert_eq!(parse_unreachable(false, false, &message), want);
        let mut packet = ipv4_header(words, 1, echo.ttl, [10, 0, 0, 254], echo.source, 0);
        packet.extend_from_slice(&message);
        assert_eq!(parse_unreachable(false, true, &packet), want);
        assert_eq!(parse_reply(false, true, &packet), None);
    }
    // Quoting less than the request's 8-byte header says nothing.
    let cut = message.len() - quote + HEADER_LEN - 1;
    assert_eq!(parse_unreachable(v6, false, &message[..cut]), None);
}

fuzz_target!(|data: &[u8]| {
    any_bytes(data);
    if let Ok(echo) = Echo::arbitrary(&mut Unstructured::new(data)) {
        built(&echo);
    }
});
