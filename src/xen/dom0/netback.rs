//! Parser for netback's debugfs `io_ring_q<N>` text (kernel `xenvif_read_io_ring`).
//!
//! Pure `&str` -> [`VifQueue`]; the reader (read-only opening, never touching `kick`) is separate.

use std::time::Duration;

use crate::xen::model::{RingIndexes, VifQueue};

/// Why an `io_ring_q<N>` text could not be parsed; names the line/field an operator can look up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("netback io_ring: missing line starting with {0:?}")]
    MissingLine(&'static str),
    #[error("netback io_ring: field {field:?} in line {line:?} is not a number")]
    BadField { field: &'static str, line: String },
    /// `producer - consumer` (wrapping, as the ring indexes are free-running `u32`s) exceeds the
    /// ring's slots. The indexes live in memory the guest can write, and netback itself calls
    /// this "Impossible number of requests"; a number larger than the ring is never exported.
    #[error(
        "netback io_ring: {ring} {indexes} producer {producer} - consumer {consumer} = {in_flight} \
         exceeds the ring's {entries} slots"
    )]
    ImpossibleIndexes {
        ring: &'static str,
        indexes: &'static str,
        producer: u32,
        consumer: u32,
        in_flight: u32,
        entries: u32,
    },
}

/// The value that follows the word `key` in `line`, e.g. `value_after("req prod 6 (0)", "prod")`.
fn value_after<T: std::str::FromStr>(line: &str, key: &'static str) -> Result<T, ParseError> {
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w.trim_end_matches(':') == key {
            if let Some(v) = words.next() {
                if let Ok(n) = v.trim_end_matches(',').parse() {
                    return Ok(n);
                }
            }
            break;
        }
    }
    Err(ParseError::BadField {
        field: key,
        line: line.to_owned(),
    })
}

fn line<'a>(
    lines: &[&'a str],
    from: usize,
    prefix: &'static str,
) -> Result<(usize, &'a str), ParseError> {
    lines
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, l)| l.trim_start().starts_with(prefix))
        .map(|(i, l)| (i, *l))
        .ok_or(ParseError::MissingLine(prefix))
}

/// One direction: `<DIR>: nr_ents N`, then `req prod P (..) cons C (..) ...`, `rsp prod R (base) pvt V ...`.
fn ring(lines: &[&str], header: &'static str) -> Result<(usize, RingIndexes), ParseError> {
    let (h, hl) = line(lines, 0, header)?;
    let entries = value_after(hl, "nr_ents")?;
    let (r, req) = line(lines, h + 1, "req prod")?;
    let req_prod: u32 = value_after(req, "prod")?;
    let req_cons: u32 = value_after(req, "cons")?;
    let (s, rsp) = line(lines, r + 1, "rsp prod")?;
    let rsp_prod: u32 = value_after(rsp, "prod")?;
    let rsp_pvt: u32 = value_after(rsp, "pvt")?;
    let ring = header.trim_end_matches(':');
    Ok((
        s,
        RingIndexes {
            entries,
            requests_outstanding: in_flight(ring, "req", req_prod, req_cons, entries)?,
            responses_unpublished: in_flight(ring, "rsp", rsp_pvt, rsp_prod, entries)?,
        },
    ))
}

/// `producer - consumer` of one ring. The indexes are free-running 32-bit counters that wrap, so
/// the difference wraps too (`5 - 4294967291` is 10); a difference larger than the ring cannot
/// come from a healthy ring and is an error rather than a huge gauge.
fn in_flight(
    ring: &'static str,
    indexes: &'static str,
    producer: u32,
    consumer: u32,
    entries: u32,
) -> Result<u32, ParseError> {
    let in_flight = producer.wrapping_sub(consumer);
    if in_flight > entries {
        return Err(ParseError::ImpossibleIndexes {
            ring,
            indexes,
            producer,
            consumer,
            in_flight,
            entries,
        });
    }
    Ok(in_flight)
}

/// Parses one queue's `io_ring_q<N>` text.
pub fn parse_io_ring(text: &str) -> Result<VifQueue, ParseError> {
    let lines: Vec<&str> = text.lines().collect();
    let (_, q) = line(&lines, 0, "Queue")?;
    let id = value_after(q, "Queue")?;
    let (_, tx) = ring(&lines, "TX:")?;
    let (_, rx) = ring(&lines, "RX:")?;
    let (_, pend) = line(&lines, 0, "pending prod")?;
    let (_, dealloc) = line(&lines, 0, "dealloc prod")?;
    let (_, credit) = line(&lines, 0, "Credit timer_pending")?;
    let (_, rxq) = line(&lines, 0, "Rx internal queue")?;
    let usec: u64 = value_after(credit, "usec")?;
    Ok(VifQueue {
        id,
        tx,
        rx,
        tx_pending_requests: value_after(pend, "nr_pending_reqs")?,
        tx_dealloc_queue: value_after(dealloc, "dealloc_queue")?,
        rx_queue_length: value_after(rxq, "len")?,
        rx_queue_max: value_after(rxq, "max")?,
        rx_queue_stopped: rxq.split_whitespace().last() == Some("stopped"),
        credit_bytes: value_after(credit, "credit")?,
        credit_period: Duration::from_micros(usec),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q0: &str = include_str!("../../../tests/fixtures/debugfs/xen-netback/vif1.0/io_ring_q0");

    #[test]
    fn parses_captured_queue() {
        let q = parse_io_ring(Q0).expect("captured text parses");
        assert_eq!(q.id, 0);
        assert_eq!(q.tx.entries, 256);
        assert_eq!(q.tx.requests_outstanding, 0);
        assert_eq!(q.rx.requests_outstanding, 256);
        assert_eq!(q.rx_queue_max, 524_288);
        assert!(!q.rx_queue_stopped);
        assert_eq!(q.credit_bytes, u64::MAX);
    }

    #[test]
    fn wrapped_indexes_and_stopped_queue() {
        let t = Q0
            .replace(
                "req prod 277 (256) cons 21",
                "req prod 5 (256) cons 4294967291",
            )
            .replace("running", "stopped");
        let q = parse_io_ring(&t).expect("parses");
        assert_eq!(q.rx.requests_outstanding, 10);
        assert!(q.rx_queue_stopped);
    }

    /// Each direction wraps on its own: both rings' producers have wrapped past `u32::MAX` while
    /// their consumers have not, and the result is the wrapping difference, up to a full ring.
    #[test]
    fn wrapped_indexes_in_both_rings() {
        let t = Q0
            .replace("req prod 6 (0) cons 6", "req prod 200 (0) cons 4294967240")
            .replace(
                "rsp prod 6 (base) pvt 6",
                "rsp prod 4294967295 (base) pvt 255",
            )
            .replace(
                "req prod 277 (256) cons 21",
                "req prod 0 (256) cons 4294967040",
            )
            .replace(
                "rsp prod 21 (base) pvt 21",
                "rsp prod 4294967290 (base) pvt 4294967290",
            );
        let q = parse_io_ring(&t).expect("parses");
        assert_eq!(q.tx.requests_outstanding, 256);
        assert_eq!(q.tx.responses_unpublished, 256);
        assert_eq!(
            q.rx.requests_outstanding, 256,
            "a full ring across the wrap"
        );
        assert_eq!(q.rx.responses_unpublished, 0);
    }

    /// A consumer ahead of its producer (or a producer far ahead) means more in flight than the
    /// ring holds: the guest wrote nonsense into the shared page. Never a 4-billion gauge.
    #[test]
    fn more_in_flight_than_slots_is_an_error() {
        let behind = Q0.replace("req prod 6 (0) cons 6", "req prod 6 (0) cons 7");
        assert_eq!(
            parse_io_ring(&behind),
            Err(ParseError::ImpossibleIndexes {
                ring: "TX",
                indexes: "req",
                producer: 6,
                consumer: 7,
                in_flight: u32::MAX,
                entries: 256,
            })
        );
        let ahead = Q0.replace("rsp prod 21 (base) pvt 21", "rsp prod 21 (base) pvt 278");
        let error = parse_io_ring(&ahead).expect_err("257 > 256");
        assert_eq!(
            error.to_string(),
            "netback io_ring: RX rsp producer 278 - consumer 21 = 257 exceeds the ring's 256 slots"
        );
    }

    /// The RX queue stopped because the guest does not post receive buffers: the capture's text
    /// with the queue full of bytes and the kernel's `stopped` word.
    #[test]
    fn stopped_rx_queue() {
        let t = Q0.replace(
            "Rx internal queue: len 0 max 524288 pkts 0 running",
            "Rx internal queue: len 524288 max 524288 pkts 348 stopped",
        );
        let q = parse_io_ring(&t).expect("parses");
        assert!(q.rx_queue_stopped);
        assert_eq!((q.rx_queue_length, q.rx_queue_max), (524_288, 524_288));
        let running = parse_io_ring(Q0).expect("parses");
        assert!(!running.rx_queue_stopped);
    }

    /// While a queue connects or disconnects the kernel prints no `Queue`/`TX:` part
    /// (`tx_ring->sring` is NULL): an error, not a queue of zeros.
    #[test]
    fn disconnected_queue_is_an_error() {
        let rx_only = &Q0[Q0.find("RX:").expect("RX part")..];
        assert_eq!(
            parse_io_ring(rx_only),
            Err(ParseError::MissingLine("Queue"))
        );
    }

    #[test]
    fn truncated_text_is_an_error() {
        assert_eq!(
            parse_io_ring("Queue 0\n"),
            Err(ParseError::MissingLine("TX:"))
        );
        assert!(parse_io_ring("").is_err());
    }
}

/// Reading side: every `io_ring_q<N>` under `<debugfs>/xen-netback/<vif>/`.
pub mod reader {
    use std::fs::{File, OpenOptions};
    use std::io::{self, Read};
    use std::path::{Path, PathBuf};

    use super::{parse_io_ring, ParseError};
    use crate::xen::model::VifQueue;

    /// Why one vif's queues could not be read; the vif gets no queue series this scrape.
    #[derive(Debug, thiserror::Error)]
    pub enum ReadError {
        /// Listing the directory or reading a queue file failed: no permission, or the vif
        /// vanished between listing its queues and reading them (a guest being destroyed).
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
            source: ParseError,
        },
    }

    /// The only way this module opens a file. Read-only on purpose: each vif directory also holds
    /// `kick`, and writing to it raises an interrupt in the guest's queue.
    pub(crate) fn open_read_only(path: &Path) -> io::Result<File> {
        OpenOptions::new().read(true).open(path)
    }

    fn read_file(path: &Path, text: &mut String) -> io::Result<()> {
        text.clear();
        open_read_only(path)?.read_to_string(text).map(drop)
    }

    /// Queues of one vif (`vif3.0`), sorted by queue id. A vif whose directory does not exist
    /// (the domain is gone) has no queues. Every queue must read and parse, or the vif fails as
    /// a whole: a vif is never shown with some of its queues missing.
    pub fn read_vif(debugfs: &Path, interface: &str) -> Result<Vec<VifQueue>, ReadError> {
        read_vif_with(debugfs, interface, &mut read_file)
    }

    /// The `io_ring_q<N>` files of one vif, in listing order; `None` when the vif's directory
    /// does not exist (the domain is gone).
    fn queue_files(debugfs: &Path, interface: &str) -> Result<Option<Vec<PathBuf>>, ReadError> {
        let dir = debugfs.join("xen-netback").join(interface);
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ReadError::Io { path, source }
        };
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io_error(&dir)(error)),
        };
        let mut paths = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error(&dir))?;
            if entry.file_name().to_string_lossy().starts_with("io_ring_q") {
                paths.push(entry.path());
            }
        }
        Ok(Some(paths))
    }

    /// Every queue file of one vif opened read-only (none when the vif is gone), for
    /// `kept_vifs.rs` to keep.
    pub(crate) fn open_vif(
        debugfs: &Path,
        interface: &str,
    ) -> Result<Vec<(PathBuf, File)>, ReadError> {
        let paths = queue_files(debugfs, interface)?.unwrap_or_default();
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            match open_read_only(&path) {
                Ok(file) => files.push((path, file)),
                Err(source) => return Err(ReadError::Io { path, source }),
            }
        }
        Ok(files)
    }

    /// [`read_vif`] with the file reader given, so tests can change the tree between two reads.
    pub(crate) fn read_vif_with(
        debugfs: &Path,
        interface: &str,
        read: &mut dyn FnMut(&Path, &mut String) -> io::Result<()>,
    ) -> Result<Vec<VifQueue>, ReadError> {
        let Some(paths) = queue_files(debugfs, interface)? else {
            return Ok(Vec::new());
        };
        let mut queues = Vec::with_capacity(paths.len());
        let mut text = String::new();
        for path in paths {
            read(&path, &mut text).map_err(|source| ReadError::Io {
                path: path.clone(),
                source,
            })?;
            let queue = parse_io_ring(&text).map_err(|source| ReadError::Parse {
                path: path.clone(),
                source,
            })?;
            queues.push(queue);
        }
        queues.sort_by_key(|q| q.id);
        Ok(queues)
    }
}

#[cfg(test)]
mod capture_tests {
    use std::path::Path;

    use super::reader::read_vif;

    #[test]
    fn reads_every_capture_tree() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/debugfs");
        for tree in [root.clone(), root.join("heavyio"), root.join("trixie")] {
            let qs = read_vif(&tree, "vif1.0").expect("fixture tree readable");
            assert_eq!(
                qs.iter().map(|q| q.id).collect::<Vec<_>>(),
                [0, 1],
                "{}",
                tree.display()
            );
            assert!(qs
                .iter()
                .all(|q| q.tx.entries == 256 && q.rx.entries == 256));
        }
        assert!(read_vif(&root, "vif9.0")
            .expect("missing vif is not an error")
            .is_empty());
    }
}

#[cfg(test)]
mod reader_tests {
    use std::io;
    use std::path::{Path, PathBuf};

    use super::reader::{read_vif, read_vif_with, ReadError};

    const Q0: &str = include_str!("../../../tests/fixtures/debugfs/xen-netback/vif1.0/io_ring_q0");

    /// A debugfs root with `vif<domid>.0` holding `queues` copies of the captured queue 0 text
    /// (each renumbered), as netback makes one file per queue.
    fn tree(interface: &str, queues: u32) -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("xen-netback").join(interface);
        std::fs::create_dir_all(&dir).expect("mkdir");
        for id in 0..queues {
            let text = Q0.replacen("Queue 0", &format!("Queue {id}"), 1);
            std::fs::write(dir.join(format!("io_ring_q{id}")), text).expect("write queue");
        }
        (root, dir)
    }

    fn read_file(path: &Path, text: &mut String) -> io::Result<()> {
        *text = std::fs::read_to_string(path)?;
        Ok(())
    }

    #[test]
    fn several_queues_sorted_by_id() {
        // 12 queues: `io_ring_q10` sorts before `io_ring_q2` by name, never by id.
        let (root, _) = tree("vif4.0", 12);
        let queues = read_vif(root.path(), "vif4.0").expect("read");
        assert_eq!(
            queues.iter().map(|q| q.id).collect::<Vec<_>>(),
            (0..12).collect::<Vec<_>>()
        );
    }

    /// The guest is destroyed while its queues are read: netback removes the directory after the
    /// first file. The vif fails as a whole (no half a vif), naming the file that vanished.
    #[test]
    fn vif_vanishing_mid_read_fails_that_vif() {
        let (root, dir) = tree("vif5.0", 4);
        let mut reads = 0;
        let mut vanishing = |path: &Path, text: &mut String| {
            reads += 1;
            if reads == 2 {
                std::fs::remove_dir_all(&dir).expect("remove vif");
            }
            read_file(path, text)
        };
        let error = read_vif_with(root.path(), "vif5.0", &mut vanishing).expect_err("vanished");
        assert_eq!(reads, 2, "stops at the first failed read");
        match &error {
            ReadError::Io { path, source } => {
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
                assert!(
                    path.starts_with(root.path().join("xen-netback/vif5.0")),
                    "{error}"
                );
            }
            other => panic!("expected an I/O error, got {other}"),
        }
        assert!(
            read_vif(root.path(), "vif5.0").expect("gone").is_empty(),
            "a vif that is already gone simply has no queues"
        );
    }

    /// A queue file listed by `readdir` that cannot be opened any more (here a dangling symlink,
    /// which is what the race looks like to `open`).
    #[test]
    fn queue_file_gone_after_listing_fails_the_vif() {
        let (root, dir) = tree("vif6.0", 2);
        std::os::unix::fs::symlink(dir.join("gone"), dir.join("io_ring_q2")).expect("symlink");
        let error = read_vif(root.path(), "vif6.0").expect_err("dangling");
        assert!(error.to_string().contains("vif6.0/io_ring_q2"), "{error}");
    }

    /// Permission bits do not stop root, so make `io_ring_q1` a directory: reading it fails with
    /// EISDIR for every user. (tests/ring_files.rs covers real mode bits, with root's
    /// CAP_DAC_OVERRIDE dropped as the systemd unit does.)
    #[test]
    fn unreadable_queue_fails_the_vif() {
        let (root, dir) = tree("vif7.0", 1);
        std::fs::create_dir(dir.join("io_ring_q1")).expect("mkdir");
        let error = read_vif(root.path(), "vif7.0").expect_err("EISDIR");
        assert!(error.to_string().contains("vif7.0/io_ring_q1"), "{error}");
    }

    #[test]
    fn unparsable_queue_fails_the_vif_with_the_reason() {
        let (root, dir) = tree("vif8.0", 2);
        std::fs::write(
            dir.join("io_ring_q1"),
            Q0.replace("req prod 6 (0) cons 6", "req prod 6 (0) cons 9"),
        )
        .expect("write");
        let error = read_vif(root.path(), "vif8.0").expect_err("impossible indexes");
        let message = error.to_string();
        assert!(
            message.contains("vif8.0/io_ring_q1") && message.contains("exceeds the ring"),
            "{message}"
        );
    }
}

#[cfg(test)]
mod read_only_tests {
    use std::os::unix::fs::PermissionsExt;

    use super::reader::read_vif;

    /// The reader must never write: a 0400 queue file is read, and its content and mtime stay as they were.
    #[test]
    fn reads_0400_file_without_changing_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("xen-netback/vif2.0");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let file = dir.join("io_ring_q0");
        let text = include_str!("../../../tests/fixtures/debugfs/xen-netback/vif1.0/io_ring_q0");
        std::fs::write(&file, text).expect("write fixture");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).expect("chmod");
        let before = std::fs::metadata(&file)
            .and_then(|m| m.modified())
            .expect("mtime");
        let qs = read_vif(tmp.path(), "vif2.0").expect("read");
        assert_eq!(qs.len(), 1);
        assert_eq!(std::fs::read_to_string(&file).expect("reread"), text);
        assert_eq!(
            std::fs::metadata(&file)
                .and_then(|m| m.modified())
                .expect("mtime"),
            before
        );
    }
}
