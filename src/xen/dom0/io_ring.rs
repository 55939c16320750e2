//! Parser of tapdisk3's `io_ring` file (`/dev/shm/vbd3-<domid>-<devid>/io_ring`): a VBD's ring
//! indexes, prefixed by a CRC.
//!
//! blktap 3.55 `tapdisk_xenblkif_ring_stats_update` writes `sizeof(uLong)` (8 on x86-64) bytes of
//! zlib `crc32(0, text, len)` in host order, then `len` bytes of text:
//!
//! ```text
//! nr_ents %u
//! req prod %u cons %d event %u
//! rsp prod %u pvt %d event %u
//! ```
//!
//! into `io_ring~`, renamed over `io_ring`, at most every 5 s. The indexes come from the shared
//! ring, which the guest writes, so a producer further from the consumer than the ring is large
//! is refused rather than exported.

use crate::xen::model::RingIndexes;

/// Bytes of the CRC in front of the text (`sizeof(uLong)` on x86-64).
pub const CRC_BYTES: usize = 8;

/// Why an `io_ring` file's bytes were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IoRingError {
    #[error("io_ring: {0} bytes, shorter than its {CRC_BYTES}-byte CRC")]
    Truncated(usize),
    #[error("io_ring: CRC mismatch: the file says {stored:#x}, its text sums to {computed:#x}")]
    Crc { stored: u64, computed: u32 },
    #[error("io_ring: the text is not UTF-8")]
    NotText,
    #[error("io_ring: missing line starting with {0:?}")]
    MissingLine(&'static str),
    #[error("io_ring: field {field:?} of line {line:?} is not a number")]
    BadField { field: &'static str, line: String },
    #[error("io_ring: nr_ents {0} is not a ring size (1 to 4096)")]
    BadSize(u32),
    #[error("io_ring: req prod {producer} - cons {consumer} = {in_flight} exceeds the ring's {entries} slots")]
    ImpossibleIndexes {
        producer: u32,
        consumer: u32,
        in_flight: u32,
        entries: u32,
    },
}

/// The number after the word `key` in `line`. tapdisk prints some indexes with `%d`, so a
/// free-running index past 2^31 reads negative: it is taken back to its `u32` bits.
fn value_after(line: &str, key: &'static str) -> Result<u32, IoRingError> {
    let mut words = line.split_whitespace();
    while let Some(word) = words.next() {
        if word == key {
            let value = words.next().and_then(|v| v.parse::<i64>().ok());
            if let Some(value) = value.filter(|v| (-(1i64 << 31)..1i64 << 32).contains(v)) {
                return Ok(value as u32);
            }
            break;
        }
    }
    Err(IoRingError::BadField {
        field: key,
        line: line.chars().take(80).collect(),
    })
}

/// Checks the CRC and parses the indexes of one `io_ring` file's bytes.
pub fn parse(bytes: &[u8]) -> Result<RingIndexes, IoRingError> {
    let Some((crc, text)) = bytes.split_first_chunk::<CRC_BYTES>() else {
        return Err(IoRingError::Truncated(bytes.len()));
    };
    let stored = u64::from_ne_bytes(*crc);
    let mut sum = flate2::Crc::new();
    sum.update(text);
    if u64::from(sum.sum()) != stored {
        return Err(IoRingError::Crc {
            stored,
            computed: sum.sum(),
        });
    }
    let text = std::str::from_utf8(text).map_err(|_| IoRingError::NotText)?;
    let line = |prefix: &'static str| {
        text.lines()
            .find(|line| line.trim_start().starts_with(prefix))
            .ok_or(IoRingError::MissingLine(prefix))
    };
    let entries = value_after(line("nr_ents")?, "nr_ents")?;
    if !(1..=4096).contains(&entries) {
        return Err(IoRingError::BadSize(entries));
    }
    let requests = line("req prod")?;
    let producer = value_after(requests, "prod")?;
    let consumer = value_after(requests, "cons")?;
    let responses = line("rsp prod")?;
    let published = value_after(responses, "prod")?;
    let private = value_after(responses, "pvt")?;
    let in_flight = producer.wrapping_sub(consumer);
    if in_flight > entries {
        return Err(IoRingError::ImpossibleIndexes {
            producer,
            consumer,
            in_flight,
            entries,
        });
    }
    Ok(RingIndexes {
        entries,
        requests_outstanding: in_flight,
        // Responses tapdisk made and has not pushed yet; out-of-range means the snapshot caught
        // the two indexes apart, and 0 is the honest reading then.
        responses_unpublished: Some(private.wrapping_sub(published))
            .filter(|pending| *pending <= entries)
            .unwrap_or(0),
    })
}

/// The bytes tapdisk writes for `text` (CRC, then the text): for tests and the simulated files.
pub fn encode(text: &str) -> Vec<u8> {
    let mut sum = flate2::Crc::new();
    sum.update(text.as_bytes());
    let mut bytes = u64::from(sum.sum()).to_ne_bytes().to_vec();
    bytes.extend_from_slice(text.as_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str =
        "nr_ents 32\nreq prod 1000 cons 997 event 1001\nrsp prod 995 pvt 997 event 996\n";

    #[test]
    fn good_crc_gives_the_indexes() {
        let ring = parse(&encode(TEXT)).expect("parses");
        assert_eq!(
            (
                ring.entries,
                ring.requests_outstanding,
                ring.responses_unpublished
            ),
            (32, 3, 2)
        );
    }

    /// zlib's CRC-32 of "123456789" is the check value 0xCBF43926: the CRC is zlib's.
    #[test]
    fn crc_is_zlibs() {
        let bytes = encode("123456789");
        assert_eq!(&bytes[..8], &0xCBF4_3926u64.to_ne_bytes());
    }

    #[test]
    fn a_bad_crc_is_refused() {
        let mut bytes = encode(TEXT);
        bytes[8 + 9] = b'9';
        let error = parse(&bytes).expect_err("bad crc");
        assert!(matches!(error, IoRingError::Crc { .. }), "{error}");
        assert!(error.to_string().contains("CRC mismatch"), "{error}");
        assert_eq!(parse(&bytes[..5]), Err(IoRingError::Truncated(5)));
    }

    #[test]
    fn indexes_past_2_31_print_negative_and_wrap() {
        let text =
            "nr_ents 32\nreq prod 2147483650 cons -2147483647 event 0\nrsp prod 1 pvt 1 event 0\n";
        let ring = parse(&encode(text)).expect("parses");
        assert_eq!(ring.requests_outstanding, 1);
    }

    #[test]
    fn impossible_or_broken_text_is_refused() {
        let far = TEXT.replace("cons 997", "cons 900");
        assert!(matches!(
            parse(&encode(&far)),
            Err(IoRingError::ImpossibleIndexes { in_flight: 100, .. })
        ));
        assert_eq!(
            parse(&encode("req prod 1 cons 1 event 1\n")),
            Err(IoRingError::MissingLine("nr_ents"))
        );
        assert!(matches!(
            parse(&encode(&TEXT.replace("cons 997", "cons x"))),
            Err(IoRingError::BadField { field: "cons", .. })
        ));
        assert_eq!(
            parse(&encode(&TEXT.replace("nr_ents 32", "nr_ents 0"))),
            Err(IoRingError::BadSize(0))
        );
        let mut binary = encode("nr_ents 32\n");
        binary.push(0xff);
        let crc = {
            let mut sum = flate2::Crc::new();
            sum.update(&binary[8..]);
            u64::from(sum.sum())
        };
        binary[..8].copy_from_slice(&crc.to_ne_bytes());
        assert_eq!(parse(&binary), Err(IoRingError::NotText));
    }
}
