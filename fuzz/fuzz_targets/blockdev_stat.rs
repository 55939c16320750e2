//! `blockdev::parse_stat` (`/sys/dev/block/<major>:<minor>/stat`) and
//! `blockdev::parse_physical_device` (xenstore `physical-device`, `"%x:%x"`).
//!
//! Invariants: never a panic; a stat text is accepted exactly when it has at least 11
//! whitespace-separated words and the first 11 are decimal numbers that fit 64 bits, and then
//! each served field is that word; what the kernel prints for any 17 values parses back to
//! them; `physical-device` is accepted exactly as two non-empty hex numbers that fit 32 bits
//! around one colon, and the hotplug script's rendering of any pair parses back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xen_exporter::testing::{parse_physical_device, parse_stat};

fn decimal_u64(word: &str) -> Option<u64> {
    (!word.is_empty() && word.bytes().all(|b| b.is_ascii_digit()))
        .then(|| word.parse().ok())
        .flatten()
}

fn hex_u32(word: &str) -> Option<u32> {
    (!word.is_empty() && word.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(word, 16).ok())
        .flatten()
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let words: Vec<&str> = text.split_ascii_whitespace().collect();
    let expected: Option<Vec<u64>> = (words.len() >= 11)
        .then(|| words[..11].iter().map(|w| decimal_u64(w)).collect())
        .flatten();
    match (parse_stat(&text), expected) {
        (Ok(stat), Some(fields)) => {
            assert_eq!(stat.reads_completed, fields[0]);
            assert_eq!(stat.read_time.as_millis(), u128::from(fields[3]));
            assert_eq!(stat.writes_completed, fields[4]);
            assert_eq!(stat.write_time.as_millis(), u128::from(fields[7]));
            assert_eq!(stat.in_flight, fields[8]);
            assert_eq!(stat.io_time.as_millis(), u128::from(fields[9]));
            assert_eq!(stat.queue_time.as_millis(), u128::from(fields[10]));
        }
        (Err(_), None) => {}
        (got, want) => panic!("{text:?}: parsed {got:?}, expected fields {want:?}"),
    }
    // The kernel's rendering ("%8lu ..." and newline) of 17 values taken from the input.
    let mut values = [0u64; 17];
    for (index, chunk) in data.chunks(8).take(17).enumerate() {
        let mut raw = [0u8; 8];
        raw[..chunk.len()].copy_from_slice(chunk);
        values[index] = u64::from_le_bytes(raw);
    }
    let rendered: String = values.iter().map(|v| format!("{v:8} ")).collect();
    let stat = parse_stat(&format!("{}\n", rendered.trim_end())).expect("the kernel's rendering");
    assert_eq!((stat.reads_completed, stat.in_flight), (values[0], values[8]));
    assert_eq!(stat.queue_time.as_millis(), u128::from(values[10]));

    let expected = text
        .trim()
        .split_once(':')
        .and_then(|(major, minor)| Some((hex_u32(major)?, hex_u32(minor)?)));
    assert_eq!(parse_physical_device(&text), expected, "{text:?}");
    let (major, minor) = (values[0] as u32, values[1] as u32);
    assert_eq!(
        parse_physical_device(&format!("{major:x}:{minor:x}")),
        Some((major, minor))
    );
});
