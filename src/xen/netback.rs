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
    // Ring indexes are free-running 32-bit counters: differences wrap.
    Ok((
        s,
        RingIndexes {
            entries,
            requests_outstanding: req_prod.wrapping_sub(req_cons),
            responses_unconsumed: rsp_pvt.wrapping_sub(rsp_prod),
        },
    ))
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
    let (_, remaining) = line(&lines, 0, "remaining:")?;
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
        credit_remaining_bytes: value_after(remaining, "remaining")?,
        credit_bytes: value_after(credit, "credit")?,
        credit_period: Duration::from_micros(usec),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q0: &str = include_str!("../../tests/fixtures/debugfs/xen-netback/vif1.0/io_ring_q0");

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
    use std::path::Path;

    use super::parse_io_ring;
    use crate::xen::model::VifQueue;

    /// The only way this module opens a file. Read-only on purpose: each vif directory also holds
    /// `kick`, and writing to it raises an interrupt in the guest's queue.
    fn open_read_only(path: &Path) -> io::Result<File> {
        OpenOptions::new().read(true).open(path)
    }

    /// Queues of one vif (`vif3.0`), sorted by queue id. A vif that vanished returns an empty list;
    /// a queue file that vanished mid-read or does not parse is skipped with a debug log.
    pub fn read_vif(debugfs: &Path, interface: &str) -> io::Result<Vec<VifQueue>> {
        let dir = debugfs.join("xen-netback").join(interface);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut queues = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !name.to_string_lossy().starts_with("io_ring_q") {
                continue;
            }
            let path = entry.path();
            let mut text = String::new();
            match open_read_only(&path).and_then(|mut f| f.read_to_string(&mut text)) {
                Ok(_) => match parse_io_ring(&text) {
                    Ok(q) => queues.push(q),
                    Err(e) => tracing::debug!(path = %path.display(), error = %e, "skipping queue"),
                },
                Err(e) => tracing::debug!(path = %path.display(), error = %e, "queue vanished"),
            }
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
        let text = include_str!("../../tests/fixtures/debugfs/xen-netback/vif1.0/io_ring_q0");
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
