//! netback's debugfs queue files (`xen-netback/<vif>/io_ring_q<N>`) kept open between scrapes
//! and read with `pread` at offset 0, which makes the `seq_file` generate the text again,
//! instead of a directory listing and an open and close per queue file and scrape.
//!
//! A kept descriptor is never read for another vif: netback creates a vif's debugfs directory
//! when its queues connect and removes it, with every queue file, when they disconnect, so a
//! vif of the same name connected again (a guest rebooted, a vif re-plugged, a domid reused) is
//! another directory. Each scrape `stat`s the directory (no listing, no open) and reads the
//! kept files only while it is the same inode; a directory gone drops them (the vif has no
//! queues), and a read that fails (debugfs answers `EIO` on a removed file) drops them and
//! reads the directory afresh. Files are only ever opened read-only, through
//! [`reader::open_read_only`]: each vif directory also holds `kick`, and writing it raises an
//! interrupt in the guest. Descriptors are bounded (`budget`), beyond which vifs are read as
//! before.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::xen::dom0::kept::{pread_text, KeptSet};
use crate::xen::dom0::netback::parse_io_ring;
use crate::xen::dom0::netback::reader::{self, ReadError};
use crate::xen::model::VifQueue;

/// The most a queue file is read: netback's text is ~600 bytes; a file larger than this is not
/// netback's and fails its parse rather than growing a buffer.
const MAX_TEXT: usize = 16 * 1024;

/// Every netback vif's kept queue files, by interface name, each by its path.
#[derive(Debug)]
pub struct KeptVifs {
    set: KeptSet<String, PathBuf>,
    /// Reused for every queue's text.
    text: String,
}

/// Parses each kept file's text, sorted by queue id; `None` when a read failed (the files
/// are stale), `Some(Err)` when a text does not parse.
fn read_kept(
    files: &[(PathBuf, File)],
    text: &mut String,
) -> Option<Result<Vec<VifQueue>, ReadError>> {
    let mut queues = Vec::with_capacity(files.len());
    for (path, file) in files {
        pread_text(file, text, MAX_TEXT).ok()?;
        match parse_io_ring(text) {
            Ok(queue) => queues.push(queue),
            Err(source) => {
                return Some(Err(ReadError::Parse {
                    path: path.clone(),
                    source,
                }))
            }
        }
    }
    queues.sort_by_key(|queue| queue.id);
    Some(Ok(queues))
}

impl KeptVifs {
    pub fn with_budget(budget: usize) -> Self {
        Self {
            set: KeptSet::with_budget(budget),
            text: String::new(),
        }
    }

    /// Starts a scrape.
    pub fn begin(&mut self) {
        self.set.begin();
    }

    /// Ends a scrape: closes the files of vifs it did not read.
    pub fn end(&mut self) {
        self.set.end();
    }

    /// Queues of one vif (`vif3.0`), sorted by queue id, as [`reader::read_vif`] reads them:
    /// a vif whose directory does not exist has none, and a vif is never shown with some of
    /// its queues missing.
    pub fn read_vif(
        &mut self,
        debugfs: &Path,
        interface: &str,
    ) -> Result<Vec<VifQueue>, ReadError> {
        let dir = debugfs.join("xen-netback").join(interface);
        let instance = match std::fs::metadata(&dir) {
            Ok(meta) => meta.ino(),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                self.set.forget(interface);
                return Ok(Vec::new());
            }
            Err(source) => {
                self.set.forget(interface);
                return Err(ReadError::Io { path: dir, source });
            }
        };
        let kept = self.set.visit(interface, instance);
        if !kept.is_empty() {
            if let Some(result) = read_kept(kept, &mut self.text) {
                return result;
            }
        }
        // New, another instance, or a kept file failed: read the directory afresh.
        let files = reader::open_vif(debugfs, interface)?;
        let result = read_kept(&files, &mut self.text).unwrap_or_else(|| {
            // Just opened, and a read failed: the vif went away meanwhile, or cannot be read.
            reader::read_vif(debugfs, interface)
        });
        if result.is_ok() {
            self.set.keep_all(interface.to_owned(), instance, files);
        } else {
            self.set.forget(interface);
        }
        result
    }

    /// Descriptors kept open now.
    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.set.open()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q0: &str = include_str!("../../../tests/fixtures/debugfs/xen-netback/vif1.0/io_ring_q0");

    /// `queues` queue files of `interface`, queue 0's `nr_pending_reqs` set to `pending`.
    fn write_vif(root: &Path, interface: &str, queues: u32, pending: u32) {
        let dir = root.join("xen-netback").join(interface);
        std::fs::create_dir_all(&dir).expect("mkdir");
        for id in 0..queues {
            let text = Q0.replacen("Queue 0", &format!("Queue {id}"), 1).replacen(
                "nr_pending_reqs 0",
                &format!("nr_pending_reqs {pending}"),
                1,
            );
            std::fs::write(dir.join(format!("io_ring_q{id}")), text).expect("write queue");
        }
    }

    fn scrape(kept: &mut KeptVifs, root: &Path, interface: &str) -> Vec<VifQueue> {
        kept.begin();
        let queues = kept.read_vif(root, interface).expect("read");
        kept.end();
        queues
    }

    #[test]
    fn kept_files_follow_the_vif_not_the_name() {
        assert!(
            Q0.contains("nr_pending_reqs 0"),
            "the capture this test edits"
        );
        let root = tempfile::tempdir().expect("tempdir");
        write_vif(root.path(), "vif1.0", 2, 0);
        let mut kept = KeptVifs::with_budget(8);
        let queues = scrape(&mut kept, root.path(), "vif1.0");
        assert_eq!((queues.len(), kept.open()), (2, 2));
        // Rewritten in place: the kept descriptors read the new text from offset 0.
        write_vif(root.path(), "vif1.0", 2, 3);
        let queues = scrape(&mut kept, root.path(), "vif1.0");
        assert_eq!(queues[0].tx_pending_requests, 3);
        // Disconnected and connected again with 4 queues: netback's new directory. The old
        // files stay readable through their descriptors here (ext4), and must not be served.
        std::fs::remove_dir_all(root.path().join("xen-netback/vif1.0")).expect("remove");
        write_vif(root.path(), "vif1.0", 4, 7);
        let queues = scrape(&mut kept, root.path(), "vif1.0");
        assert_eq!(queues.len(), 4);
        assert!(queues
            .iter()
            .all(|queue| queue.tx_pending_requests == 7 || queue.id > 0));
        assert_eq!(kept.open(), 4);
        // Gone: no queues, nothing kept.
        std::fs::remove_dir_all(root.path().join("xen-netback/vif1.0")).expect("remove");
        assert!(scrape(&mut kept, root.path(), "vif1.0").is_empty());
        assert_eq!(kept.open(), 0);
        // A scrape without the vif closes its files.
        write_vif(root.path(), "vif1.0", 2, 0);
        scrape(&mut kept, root.path(), "vif1.0");
        kept.begin();
        kept.end();
        assert_eq!(kept.open(), 0);
    }

    #[test]
    fn the_budget_bounds_the_descriptors() {
        let root = tempfile::tempdir().expect("tempdir");
        for interface in ["vif1.0", "vif2.0", "vif3.0"] {
            write_vif(root.path(), interface, 2, 0);
        }
        let mut kept = KeptVifs::with_budget(5);
        for _ in 0..3 {
            kept.begin();
            for interface in ["vif1.0", "vif2.0", "vif3.0"] {
                assert_eq!(
                    kept.read_vif(root.path(), interface).expect("read").len(),
                    2
                );
            }
            kept.end();
            assert_eq!(kept.open(), 4, "whole vifs only, within the budget");
        }
    }
}
