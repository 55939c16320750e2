//! The block device behind a blkback VBD: its `physical-device` number from xenstore and its
//! own statistics from `<sysfs>/dev/block/<major>:<minor>/stat`.
//!
//! Why: since Linux 3.x blkback gives every ring a request pool of exactly the ring's size, so a
//! full ring no longer runs the pool dry and VBD_OO hardly moves. What shows a guest saturating
//! its disk is the backing device itself: its requests in flight (and the rate of its weighted
//! queue time, the average queue depth) at the ring's capacity, and its time per request.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::xen::model::{BlockStat, Host};

/// The fields `stat` has on every kernel (Linux 2.6 to 4.17); 4.18 added 4 discard fields, 5.5
/// two flush fields.
const REQUIRED_FIELDS: usize = 11;

/// Why one `stat` text is not what the kernel writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatParseError {
    #[error("expected at least {REQUIRED_FIELDS} fields, found {found}")]
    TooFewFields { found: usize },
    #[error("field {field}: expected an unsigned number, found {value:?}")]
    NotANumber { field: usize, value: String },
}

/// A failed read of one backing device's statistics.
#[derive(Debug, thiserror::Error)]
pub enum BlockDevError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: StatParseError,
    },
}

/// Parses xenstore's `physical-device` (`"%x:%x"`, as the hotplug script and libxl write it and
/// blkback reads it): `"fe:1"` is `(254, 1)`. `None` for anything else.
pub fn parse_physical_device(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.trim().split_once(':')?;
    let hex = |part: &str| {
        // from_str_radix accepts a leading '+', which the kernel never writes.
        (!part.is_empty() && part.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u32::from_str_radix(part, 16).ok())
            .flatten()
    };
    Some((hex(major)?, hex(minor)?))
}

/// Parses one block device `stat` line (`Documentation/block/stat.rst`): 11, 15 or 17
/// whitespace-separated counters depending on the kernel. Fields past the 11th are ignored.
pub fn parse_stat(text: &str) -> Result<BlockStat, StatParseError> {
    let mut fields = [0u64; REQUIRED_FIELDS];
    let mut found = 0;
    for (index, word) in text.split_ascii_whitespace().enumerate() {
        if index < REQUIRED_FIELDS {
            // Digits only: `u64::from_str` would also take a '+' the kernel never writes.
            let digits = word.bytes().all(|b| b.is_ascii_digit());
            fields[index] = digits.then(|| word.parse().ok()).flatten().ok_or_else(|| {
                StatParseError::NotANumber {
                    field: index + 1,
                    value: word.to_owned(),
                }
            })?;
        }
        found = index + 1;
    }
    if found < REQUIRED_FIELDS {
        return Err(StatParseError::TooFewFields { found });
    }
    let ms = Duration::from_millis;
    Ok(BlockStat {
        reads_completed: fields[0],
        read_time: ms(fields[3]),
        writes_completed: fields[4],
        write_time: ms(fields[7]),
        in_flight: fields[8],
        io_time: ms(fields[9]),
        queue_time: ms(fields[10]),
    })
}

/// `<sysfs>/dev/block/<major>:<minor>/stat` (the numbers in decimal, as sysfs names them).
pub fn stat_path(sysfs: &Path, (major, minor): (u32, u32)) -> PathBuf {
    sysfs
        .join("dev/block")
        .join(format!("{major}:{minor}"))
        .join("stat")
}

/// Reads and parses the `stat` of block device `device` under `sysfs`.
pub fn read_stat(sysfs: &Path, device: (u32, u32)) -> Result<BlockStat, BlockDevError> {
    let path = stat_path(sysfs, device);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_stat(&text).map_err(|source| BlockDevError::Parse { path, source }),
        Err(source) => Err(BlockDevError::Io { path, source }),
    }
}

/// One VBD whose backing device could not be read.
#[derive(Debug)]
pub struct BackingFailure {
    pub domain: String,
    /// The VBD's device name (`xvda`).
    pub device: String,
    pub error: BlockDevError,
}

impl std::fmt::Display for BackingFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.domain, self.device, self.error)
    }
}

/// What one pass over a host's backing devices did.
#[derive(Debug, Default)]
pub struct BackingReport {
    /// VBDs whose backing device was read.
    pub read: usize,
    /// VBDs whose backing device could not be read: they get no backing series.
    pub failures: Vec<BackingFailure>,
}

/// Reads the backing device of every VBD whose `physical-device` is known (read with its ring
/// geometry) into `vbd.backing`. A VBD without one (qdisk, not yet connected) is skipped: that
/// is not a failure.
pub fn read_backing(host: &mut Host, sysfs: &Path) -> BackingReport {
    let mut report = BackingReport::default();
    for domain in &mut host.domains {
        for vbd in &mut domain.vbds {
            let Some(device) = vbd.ring.as_ref().and_then(|ring| ring.physical_device) else {
                continue;
            };
            match read_stat(sysfs, device) {
                Ok(stat) => {
                    vbd.backing = Some(stat);
                    report.read += 1;
                }
                Err(error) => report.failures.push(BackingFailure {
                    domain: domain.name.clone(),
                    device: crate::xen::dom0::devno::name(vbd.devno),
                    error,
                }),
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xen::model::{Domain, Vbd, VbdRing};

    /// Real: `/sys/block/loop0/stat` of the build host (Linux 6.18, 17 fields) with 64
    /// `dd oflag=direct` writers running on the loop device.
    const STAT_17: &str = "       0        0        0        0   128735        0  1029880    39915       61     1172    39915        0        0        0        0        0        0\n";
    /// The same line cut to the 15 fields Linux 4.18 to 5.4 print (discards, no flushes).
    const STAT_15: &str = "       0        0        0        0   128735        0  1029880    39915       61     1172    39915        0        0        0        0\n";
    /// Real: `/sys/block/vda/stat` of the build host cut to the 11 fields Linux up to 4.17 prints.
    const STAT_11: &str = "  107739     9364 11772490   333328   142363   189404 117153816   915947        0    48496  1275170\n";

    #[test]
    fn parses_11_15_and_17_fields() {
        let loaded = BlockStat {
            reads_completed: 0,
            read_time: Duration::ZERO,
            writes_completed: 128735,
            write_time: Duration::from_millis(39915),
            in_flight: 61,
            io_time: Duration::from_millis(1172),
            queue_time: Duration::from_millis(39915),
        };
        assert_eq!(parse_stat(STAT_17), Ok(loaded));
        assert_eq!(parse_stat(STAT_15), Ok(loaded));
        assert_eq!(
            parse_stat(STAT_11),
            Ok(BlockStat {
                reads_completed: 107739,
                read_time: Duration::from_millis(333328),
                writes_completed: 142363,
                write_time: Duration::from_millis(915947),
                in_flight: 0,
                io_time: Duration::from_millis(48496),
                queue_time: Duration::from_millis(1275170),
            })
        );
    }

    #[test]
    fn rejects_what_the_kernel_never_writes() {
        assert_eq!(
            parse_stat(""),
            Err(StatParseError::TooFewFields { found: 0 })
        );
        assert_eq!(
            parse_stat("1 2 3 4 5 6 7 8 9 10\n"),
            Err(StatParseError::TooFewFields { found: 10 })
        );
        assert_eq!(
            parse_stat("1 2 3 4 5 6 7 8 -1 10 11"),
            Err(StatParseError::NotANumber {
                field: 9,
                value: "-1".to_owned()
            })
        );
        let error = parse_stat("1 2 3 x 5 6 7 8 9 10 11").expect_err("not a number");
        assert_eq!(
            error.to_string(),
            "field 4: expected an unsigned number, found \"x\""
        );
        assert!(parse_stat("1 2 3 4 5 6 7 8 +9 10 11").is_err());
        assert!(parse_stat("1 2 3 4 5 6 7 8 18446744073709551616 10 11").is_err());
        // Fields past the 11th are not read, so a future kernel's additions do not break us.
        assert!(parse_stat("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 new").is_ok());
    }

    #[test]
    fn physical_device_is_hex_major_minor() {
        assert_eq!(parse_physical_device("7:0"), Some((7, 0)));
        assert_eq!(parse_physical_device("fe:1\n"), Some((254, 1)));
        assert_eq!(parse_physical_device("103:1f"), Some((259, 31)));
        for bad in [
            "",
            "7",
            ":0",
            "7:",
            "7:0:1",
            "+7:0",
            "g:0",
            "7:-1",
            "fffffffff:0",
        ] {
            assert_eq!(parse_physical_device(bad), None, "{bad:?}");
        }
    }

    fn host_with(physical_devices: &[Option<(u32, u32)>]) -> Host {
        let vbds = physical_devices
            .iter()
            .enumerate()
            .map(|(index, device)| Vbd {
                devno: 51712 + 16 * index as u32,
                ring: Some(VbdRing {
                    physical_device: *device,
                    ..VbdRing::default()
                }),
                ..Vbd::default()
            })
            .collect();
        Host {
            domains: vec![Domain {
                domid: 1,
                name: "labdomu".to_owned(),
                vbds,
                ..Domain::default()
            }],
            ..Host::default()
        }
    }

    /// The fixture tree `tests/fixtures/sysfs/backing-loop` holds a loop device's `stat` at
    /// `dev/block/7:0`: a VBD on 7:0 reads it, one without a physical device is skipped, one
    /// whose device has no `stat` fails alone with the path in its message.
    #[test]
    fn reads_backing_devices_from_a_fixture_tree() {
        let sysfs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sysfs/backing-loop");
        let stat = read_stat(&sysfs, (7, 0)).expect("fixture stat");
        assert_eq!((stat.writes_completed, stat.in_flight), (128735, 61));
        let mut host = host_with(&[Some((7, 0)), None, Some((7, 9))]);
        let report = read_backing(&mut host, &sysfs);
        assert_eq!(report.read, 1);
        let vbds = &host.domains[0].vbds;
        assert_eq!(vbds[0].backing, Some(stat));
        assert_eq!((vbds[1].backing, vbds[2].backing), (None, None));
        assert_eq!(report.failures.len(), 1);
        let message = report.failures[0].to_string();
        assert!(
            message.starts_with("labdomu xvdc: reading ") && message.contains("dev/block/7:9/stat"),
            "{message}"
        );
    }

    #[test]
    fn a_garbled_stat_names_its_path() {
        let root = tempfile::tempdir().expect("tempdir");
        let path = stat_path(root.path(), (253, 4));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, "1 2 3\n").expect("write");
        let error = read_stat(root.path(), (253, 4)).expect_err("too short");
        assert_eq!(
            error.to_string(),
            format!("{}: expected at least 11 fields, found 3", path.display())
        );
    }
}
