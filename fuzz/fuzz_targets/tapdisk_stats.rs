//! `tapdisk::parse_stats` (tapdisk3's `/dev/shm/td3-<pid>/vbd-<domid>-<devid>`, blktap's
//! `struct stats`) on arbitrary bytes and on structs written as tapdisk keeps them.
//!
//! Invariants: never a panic; accepted exactly when there are at least 96 bytes and the first
//! `u32` is 1; a version-1 struct reads back field for field; a length is never taken from the
//! bytes (any length beyond 96 gives the same result as its first 96 bytes).
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use xen_exporter::testing::{parse_tapdisk_stats, StatsError, TapdiskStatsFile};

fuzz_target!(|data: &[u8]| {
    let parsed = parse_tapdisk_stats(data);
    match data.first_chunk::<96>() {
        None => assert_eq!(parsed, Err(StatsError::Truncated(data.len()))),
        Some(head) => {
            let version = u32::from_ne_bytes([head[0], head[1], head[2], head[3]]);
            assert_eq!(parsed.is_ok(), version == 1, "{parsed:?}");
            assert_eq!(parse_tapdisk_stats(head), parsed, "only the first 96 bytes count");
        }
    }
    let mut unstructured = Unstructured::new(data);
    let Ok(words) = <[u64; 11]>::arbitrary(&mut unstructured) else {
        return;
    };
    let written = TapdiskStatsFile {
        version: 1,
        oo_reqs: words[0],
        read_reqs_submitted: words[1],
        read_reqs_completed: words[2],
        read_sectors: words[3],
        read_total_ticks: words[4],
        write_reqs_submitted: words[5],
        write_reqs_completed: words[6],
        write_sectors: words[7],
        write_total_ticks: words[8],
        io_errors: words[9],
        flags: words[10],
    };
    assert_eq!(parse_tapdisk_stats(&written.encode()), Ok(written));
});
