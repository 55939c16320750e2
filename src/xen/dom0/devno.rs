//! Xen virtual device numbers (the `devno` of a VBD) decoded to the Linux-style names an operator
//! knows from inside the guest: `51712` -> `xvda`.
//!
//! The schemes come from Xen's `docs/misc/vbd-interface.txt`:
//! - xvd: major 202, minor = disk * 16 + partition (disks 0..15, partitions 0..15);
//! - extended: `1 << 28 | disk << 8 | partition` (disks up to 2^20 - 1, partitions 0..255), used
//!   for disk 16 (`xvdq`) and beyond;
//! - emulated IDE: major 3 (`hda`, `hdb`) and 22 (`hdc`, `hdd`), minor = disk * 64 + partition;
//! - emulated SCSI: major 8, minor = disk * 16 + partition (`sda`..`sdp`).
//!
//! A number in none of these schemes is shown as the decimal number, so the label is still unique.

/// Linux block major of Xen virtual disks (`xvd*`).
const XVD_MAJOR: u32 = 202;
/// IDE majors: the first controller (`hda`, `hdb`) and the second (`hdc`, `hdd`).
const IDE0_MAJOR: u32 = 3;
const IDE1_MAJOR: u32 = 22;
/// The first SCSI disk major (`sda`..`sdp`).
const SCSI_MAJOR: u32 = 8;
/// Bit that marks the extended scheme; bits 29..31 must be clear.
const EXTENDED_FLAG: u32 = 1 << 28;

/// The `device` label of a VBD: `xvda`, `xvdb1`, `xvdaa`, `hdc`, `sda2`, or the number itself.
pub fn name(devno: u32) -> String {
    decode(devno).unwrap_or_else(|| devno.to_string())
}

/// The Linux-style name, or `None` when `devno` follows none of Xen's schemes.
pub fn decode(devno: u32) -> Option<String> {
    if devno >> 28 == 1 {
        let disk = (devno & !EXTENDED_FLAG) >> 8;
        let partition = devno & 0xff;
        return Some(disk_name("xvd", disk, partition));
    }
    if devno >> 16 != 0 {
        return None;
    }
    let major = devno >> 8;
    let minor = devno & 0xff;
    match major {
        XVD_MAJOR => Some(disk_name("xvd", minor / 16, minor % 16)),
        SCSI_MAJOR => Some(disk_name("sd", minor / 16, minor % 16)),
        // Each IDE controller has two disks; a minor of 128 or more names no disk.
        IDE0_MAJOR if minor < 128 => Some(disk_name("hd", minor / 64, minor % 64)),
        IDE1_MAJOR if minor < 128 => Some(disk_name("hd", 2 + minor / 64, minor % 64)),
        _ => None,
    }
}

/// `prefix` + the disk's letters + the partition number when it is not the whole disk.
fn disk_name(prefix: &str, disk: u32, partition: u32) -> String {
    let mut name = String::with_capacity(prefix.len() + 6);
    name.push_str(prefix);
    name.push_str(&disk_letters(disk));
    if partition != 0 {
        name.push_str(&partition.to_string());
    }
    name
}

/// Linux's disk letters: bijective base 26, `0` -> `a`, `25` -> `z`, `26` -> `aa`, `701` -> `zz`.
fn disk_letters(disk: u32) -> String {
    let mut letters = Vec::new();
    let mut n = u64::from(disk) + 1;
    while n > 0 {
        n -= 1;
        letters.push(b'a' + (n % 26) as u8);
        n /= 26;
    }
    letters.reverse();
    String::from_utf8(letters).expect("only ASCII letters were pushed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_scheme() {
        let cases: &[(u32, &str)] = &[
            // xvd, major 202
            (51712, "xvda"),
            (51713, "xvda1"),
            (51727, "xvda15"),
            (51728, "xvdb"),
            (51744, "xvdc"),
            (51952, "xvdp"),
            (51953, "xvdp1"),
            // extended scheme
            (EXTENDED_FLAG | (16 << 8), "xvdq"),
            (EXTENDED_FLAG | (16 << 8) | 3, "xvdq3"),
            (EXTENDED_FLAG | (25 << 8), "xvdz"),
            (EXTENDED_FLAG | (26 << 8), "xvdaa"),
            (EXTENDED_FLAG | (27 << 8) | 255, "xvdab255"),
            (EXTENDED_FLAG | (701 << 8), "xvdzz"),
            (EXTENDED_FLAG | (702 << 8), "xvdaaa"),
            (EXTENDED_FLAG, "xvda"),
            // emulated IDE
            (3 << 8, "hda"),
            ((3 << 8) | 1, "hda1"),
            ((3 << 8) | 64, "hdb"),
            ((3 << 8) | 65, "hdb1"),
            (22 << 8, "hdc"),
            ((22 << 8) | 64, "hdd"),
            ((22 << 8) | 66, "hdd2"),
            // emulated SCSI
            (8 << 8, "sda"),
            ((8 << 8) | 2, "sda2"),
            ((8 << 8) | 16, "sdb"),
            ((8 << 8) | 255, "sdp15"),
            // unknown: the number itself
            (0, "0"),
            (7 << 8, "1792"),
            ((3 << 8) | 128, "896"),
            (65536, "65536"),
            (1 << 29, "536870912"),
            (u32::MAX, "4294967295"),
        ];
        for &(devno, expected) in cases {
            assert_eq!(name(devno), expected, "devno {devno}");
        }
    }

    #[test]
    fn unknown_schemes_are_none() {
        assert_eq!(decode(7 << 8), None);
        assert_eq!(decode((1 << 29) | (1 << 28)), None);
    }

    #[test]
    fn letters_are_bijective_base_26() {
        assert_eq!(disk_letters(0), "a");
        assert_eq!(disk_letters(25), "z");
        assert_eq!(disk_letters(26), "aa");
        assert_eq!(disk_letters(51), "az");
        assert_eq!(disk_letters(52), "ba");
        assert_eq!(disk_letters((1 << 20) - 1), "bgqcv");
    }
}
