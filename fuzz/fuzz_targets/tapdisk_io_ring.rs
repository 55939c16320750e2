//! `io_ring::parse` (tapdisk3's `/dev/shm/vbd3-*/io_ring`) on (a) arbitrary bytes and (b) ring
//! state written exactly as blktap's `tapdisk_xenblkif_ring_stats_update` writes it (zlib CRC in
//! host order, then the text; `%d` for `req_cons` and `rsp_prod_pvt`).
//!
//! Invariants: never a panic; nothing more in flight than the ring has slots; for tapdisk-written
//! bytes, a ring of 1 to 4096 entries parses with in-flight = the wrapping `prod - cons` exactly
//! when that fits, is `ImpossibleIndexes` otherwise; any one byte of the text changed (CRC left)
//! is a CRC error.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use xen_exporter::testing::{encode_io_ring, parse_tapdisk_io_ring, IoRingError};

#[derive(Debug, Arbitrary)]
struct Ring {
    entries: u32,
    req_prod: u32,
    req_cons: u32,
    req_event: u32,
    rsp_prod: u32,
    rsp_pvt: u32,
    rsp_event: u32,
    flip_at: u16,
    flip_with: u8,
}

fuzz_target!(|data: &[u8]| {
    if let Ok(ring) = parse_tapdisk_io_ring(data) {
        assert!(ring.requests_outstanding <= ring.entries, "{ring:?}");
        assert!(ring.responses_unpublished <= ring.entries, "{ring:?}");
    }
    let Ok(ring) = Ring::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let text = format!(
        "nr_ents {}\nreq prod {} cons {} event {}\nrsp prod {} pvt {} event {}\n",
        ring.entries,
        ring.req_prod,
        ring.req_cons as i32,
        ring.req_event,
        ring.rsp_prod,
        ring.rsp_pvt as i32,
        ring.rsp_event
    );
    let bytes = encode_io_ring(&text);
    let parsed = parse_tapdisk_io_ring(&bytes);
    let in_flight = ring.req_prod.wrapping_sub(ring.req_cons);
    if !(1..=4096).contains(&ring.entries) {
        assert_eq!(parsed, Err(IoRingError::BadSize(ring.entries)), "{text}");
    } else if in_flight > ring.entries {
        assert!(
            matches!(parsed, Err(IoRingError::ImpossibleIndexes { .. })),
            "{parsed:?}\n{text}"
        );
    } else {
        let got = parsed.unwrap_or_else(|error| panic!("{error}\n{text}"));
        assert_eq!((got.entries, got.requests_outstanding), (ring.entries, in_flight));
    }
    let mut changed = bytes.clone();
    let at = 8 + usize::from(ring.flip_at) % text.len();
    if ring.flip_with != 0 {
        changed[at] ^= ring.flip_with;
        assert!(
            matches!(parse_tapdisk_io_ring(&changed), Err(IoRingError::Crc { .. })),
            "a changed byte must fail the CRC"
        );
    }
});
