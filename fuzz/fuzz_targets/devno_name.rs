//! `devno::name`/`decode`: the `device` label of a VBD from its Xen virtual device number.
//!
//! Invariants: never a panic; devno -> name -> devno round-trips through an independent encoder
//! written here from Xen's docs/misc/vbd-interface.txt (exactly, for the number Linux's blkfront
//! itself would use; else to a number with the same name); a number no scheme covers is shown as
//! itself, and such a name can never be mistaken for a decoded one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xen_exporter::testing::{decode_devno as decode, devno_name as name};

const EXTENDED: u32 = 1 << 28;

/// `xvdq` -> (16, 0), `sda2` -> (0, 2): bijective base-26 letters, then an optional partition.
fn split(rest: &str) -> Option<(u32, u32)> {
    let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
    if letters == 0 {
        return None;
    }
    let mut disk: u64 = 0;
    for c in rest[..letters].bytes() {
        disk = disk * 26 + u64::from(c - b'a' + 1);
        if disk > u64::from(u32::MAX) {
            return None;
        }
    }
    let digits = &rest[letters..];
    let partition = if digits.is_empty() {
        0
    } else {
        if digits.starts_with('0') || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().filter(|&p| p != 0)?
    };
    Some(((disk - 1) as u32, partition))
}

/// The device number blkfront uses for `name` (the inverse of the documented schemes).
fn encode(name: &str) -> Option<u32> {
    if let Some(rest) = name.strip_prefix("xvd") {
        let (disk, part) = split(rest)?;
        return if disk < 16 && part < 16 {
            Some((202 << 8) | (disk << 4) | part)
        } else if disk < (1 << 20) && part < 256 {
            Some(EXTENDED | (disk << 8) | part)
        } else {
            None
        };
    }
    if let Some(rest) = name.strip_prefix("hd") {
        let (disk, part) = split(rest)?;
        let major = if disk < 2 { 3 } else { 22 };
        return (disk < 4 && part < 64).then(|| (major << 8) | ((disk % 2) * 64 + part));
    }
    if let Some(rest) = name.strip_prefix("sd") {
        let (disk, part) = split(rest)?;
        return (disk < 16 && part < 16).then(|| (8 << 8) | (disk << 4) | part);
    }
    None
}

/// Whether `devno` is the number Linux itself would pick for its name (the one `encode` returns).
fn canonical(devno: u32) -> bool {
    if devno >> 28 == 1 {
        let disk = (devno & !EXTENDED) >> 8;
        let part = devno & 0xff;
        return disk >= 16 || part >= 16;
    }
    true
}

fuzz_target!(|data: &[u8]| {
    let mut raw = [0u8; 4];
    let n = data.len().min(4);
    raw[..n].copy_from_slice(&data[..n]);
    let devno = u32::from_le_bytes(raw);
    let label = name(devno);
    match decode(devno) {
        Some(decoded) => {
            assert_eq!(label, decoded);
            let back = encode(&decoded)
                .unwrap_or_else(|| panic!("{devno}: {decoded:?} has no device number"));
            assert_eq!(name(back), decoded, "{devno} -> {decoded} -> {back}");
            if canonical(devno) {
                assert_eq!(back, devno, "{devno} -> {decoded} -> {back}");
            }
        }
        None => {
            assert_eq!(
                label,
                devno.to_string(),
                "an unknown number is shown as itself"
            );
            assert_eq!(label.parse::<u32>().ok(), Some(devno));
        }
    }
    assert!(
        label.starts_with(|c: char| c.is_ascii_lowercase()) == decode(devno).is_some(),
        "{label}: decoded names start with letters, numbers with digits"
    );
    // The other way: any short name that encodes must decode to itself.
    if let Ok(text) = std::str::from_utf8(data.get(4..).unwrap_or_default()) {
        if let Some(number) = encode(text) {
            assert_eq!(decode(number).as_deref(), Some(text), "{text} -> {number}");
        }
    }
});
