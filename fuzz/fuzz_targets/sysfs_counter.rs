//! `sysfs::parse_counter`: blkback's statistics files (`"%llu\n"`, e.g. `oo_req`).
//!
//! Invariants: never a panic; a value is accepted exactly when the text (less surrounding
//! whitespace) is a decimal number that fits 64 bits, and what the kernel prints for a value
//! parses back to that value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xen_exporter::testing::parse_counter;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = parse_counter(&text);
    let digits = text.trim();
    let digits = digits.strip_prefix('+').unwrap_or(digits);
    let decimal = !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit());
    match parsed {
        Some(value) => {
            assert!(decimal, "{text:?} accepted as {value}");
            let significant = digits.trim_start_matches('0');
            let expected = if significant.is_empty() {
                "0"
            } else {
                significant
            };
            assert_eq!(value.to_string(), expected, "{text:?}");
        }
        None => {
            let significant = digits.trim_start_matches('0');
            let too_big = significant.len() > 20
                || (significant.len() == 20 && significant > "18446744073709551615");
            assert!(
                !decimal || too_big,
                "{text:?} is a decimal that fits u64 but was refused"
            );
        }
    }
    // The kernel's own rendering of the first 8 bytes as a counter always parses back.
    let mut raw = [0u8; 8];
    let n = data.len().min(8);
    raw[..n].copy_from_slice(&data[..n]);
    let value = u64::from_le_bytes(raw);
    assert_eq!(parse_counter(&format!("{value}\n")), Some(value));
});
