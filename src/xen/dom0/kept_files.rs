//! blkback's statistics files kept open between scrapes and read with `pread` at offset 0,
//! which makes sysfs generate the value again, instead of a path walk, an open and a close per
//! file and scrape.
//!
//! Measured on this kernel (Linux 6.18): an open + read + close of a sysfs attribute costs
//! ~2.6 µs, a `pread` of a kept one ~0.35 µs; on the benchmark's ext4 fixture 4.8 µs against
//! 1.5 µs. The price is kernel memory: a sysfs file that has been read keeps its 4 KiB
//! `seq_file` buffer while open (~4.5 KiB of slab per descriptor, measured), so descriptors are
//! bounded by [`MAX_KEPT`] and by the process's limit; beyond them files are opened per read.
//!
//! A kept descriptor is never read for another device: each device's files are tied to its
//! instance in the sysfs listing (`kept.rs`: a device removed and created again under the same
//! name is another inode), are dropped when the device leaves the snapshot, and a descriptor
//! whose read fails (sysfs answers `ENODEV` once its device is gone) is closed and the path
//! opened again.

use std::fs::File;
use std::io;
use std::path::Path;

use nix::sys::resource::{getrlimit, setrlimit, Resource};

use crate::xen::dom0::kept::{pread_text, KeptSet};
use crate::xen::model::VbdBackend;

/// At most this many descriptors are kept: every file of 1,000 guests × 4 disks (28,000), at
/// ~4.5 KiB of kernel memory each once read: up to ~144 MiB of Dom0's kernel memory. Beyond
/// it, files are opened per read.
pub const MAX_KEPT: usize = 32_768;

/// Descriptors left to everything else (sockets, probes, libxenstat) under `RLIMIT_NOFILE`.
const RESERVED: u64 = 1_024;

/// The most a statistics file is read: its text is one number.
const MAX_TEXT: usize = 4096;

/// A blkback device: its domid, device number and backend kind.
type DeviceKey = (u32, u32, VbdBackend);

/// The kept descriptors of every blkback device, each file by its name.
#[derive(Debug)]
pub struct KeptFiles {
    set: KeptSet<DeviceKey, &'static str>,
}

/// At most this many of netback's debugfs queue files are kept (`kept_vifs.rs`): 1,000
/// guests × 2 vifs × 4 queues.
pub const MAX_KEPT_VIF_FILES: usize = 8_192;

/// How many descriptors blkback's files and netback's may keep: [`MAX_KEPT`] and
/// [`MAX_KEPT_VIF_FILES`], or less when `RLIMIT_NOFILE`'s soft limit leaves less room, netback
/// then getting a quarter (a kept queue file also saves its vif's directory listing).
pub fn budgets() -> (usize, usize) {
    let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return (0, 0);
    };
    let room = usize::try_from(soft.saturating_sub(RESERVED)).unwrap_or(usize::MAX);
    let vifs = (room / 4).min(MAX_KEPT_VIF_FILES);
    ((room - vifs).min(MAX_KEPT), vifs)
}

impl KeptFiles {
    pub fn with_budget(budget: usize) -> Self {
        Self {
            set: KeptSet::with_budget(budget),
        }
    }

    /// Starts a scrape.
    pub fn begin(&mut self) {
        self.set.begin();
    }

    /// Ends a scrape: closes the files of devices it did not read.
    pub fn end(&mut self) {
        self.set.end();
    }

    /// Reads file `name` of a device (at `path`). `instance` is the device's inode in the sysfs
    /// listing; `None` (no listing) keeps nothing open.
    pub fn read(
        &mut self,
        key: DeviceKey,
        instance: Option<u64>,
        path: &Path,
        name: &'static str,
        buffer: &mut String,
    ) -> io::Result<()> {
        let Some(instance) = instance else {
            return pread_text(&File::open(path)?, buffer, MAX_TEXT);
        };
        if let Some((_, file)) = self
            .set
            .visit(&key, instance)
            .iter()
            .find(|(kept, _)| *kept == name)
        {
            if pread_text(file, buffer, MAX_TEXT).is_ok() {
                return Ok(());
            }
            // Gone (ENODEV) or broken: close it and try the path once more.
            self.set.close(&key, &name);
        }
        let file = File::open(path)?;
        pread_text(&file, buffer, MAX_TEXT)?;
        self.set.keep(key, instance, name, file);
        Ok(())
    }

    /// Descriptors kept open now.
    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.set.open()
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, so descriptors can be kept for a large
/// host (systemd's default is 1,024 soft, 524,288 hard). Called once at start.
pub fn raise_nofile_limit() {
    let raised = getrlimit(Resource::RLIMIT_NOFILE)
        .and_then(|(_, hard)| setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map(|()| hard));
    match raised {
        Ok(limit) => tracing::debug!(limit, "RLIMIT_NOFILE soft limit raised to the hard limit"),
        Err(error) => tracing::debug!(%error, "RLIMIT_NOFILE left as it was"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: (u32, u32, VbdBackend) = (1, 51712, VbdBackend::Blkback);

    fn ino(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).expect("stat").ino()
    }

    #[test]
    fn kept_files_follow_the_device_not_the_name() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("vbd-1-51712");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(dir.join("rd_req"), "10\n").expect("write");
        let mut kept = KeptFiles::with_budget(8);
        let mut buffer = String::new();
        kept.begin();
        kept.read(
            KEY,
            Some(ino(&dir)),
            &dir.join("rd_req"),
            "rd_req",
            &mut buffer,
        )
        .expect("read");
        kept.end();
        assert_eq!((buffer.as_str(), kept.open()), ("10\n", 1));
        // Rewritten in place: the kept descriptor reads the new value from offset 0.
        std::fs::write(dir.join("rd_req"), "11\n").expect("write");
        kept.begin();
        kept.read(
            KEY,
            Some(ino(&dir)),
            &dir.join("rd_req"),
            "rd_req",
            &mut buffer,
        )
        .expect("read");
        kept.end();
        assert_eq!(buffer, "11\n");
        // Removed and created again (the old file stays readable through its descriptor on
        // this filesystem): the new instance's file is read.
        let new = root.path().join("new");
        std::fs::create_dir(&new).expect("mkdir");
        std::fs::write(new.join("rd_req"), "3\n").expect("write");
        std::fs::remove_dir_all(&dir).expect("remove");
        std::fs::rename(&new, &dir).expect("rename");
        kept.begin();
        kept.read(
            KEY,
            Some(ino(&dir)),
            &dir.join("rd_req"),
            "rd_req",
            &mut buffer,
        )
        .expect("read");
        kept.end();
        assert_eq!((buffer.as_str(), kept.open()), ("3\n", 1));
        // A scrape without the device closes its files.
        kept.begin();
        kept.end();
        assert_eq!(kept.open(), 0);
    }

    #[test]
    fn the_budget_bounds_the_descriptors() {
        let root = tempfile::tempdir().expect("tempdir");
        for name in ["oo_req", "rd_req", "wr_req"] {
            std::fs::write(root.path().join(name), "1\n").expect("write");
        }
        let mut kept = KeptFiles::with_budget(2);
        let mut buffer = String::new();
        for _ in 0..3 {
            kept.begin();
            for name in ["oo_req", "rd_req", "wr_req"] {
                kept.read(KEY, Some(7), &root.path().join(name), name, &mut buffer)
                    .expect("read");
                assert_eq!(buffer, "1\n");
            }
            kept.end();
            assert_eq!(kept.open(), 2);
        }
        // No instance (no listing): nothing kept.
        let mut none = KeptFiles::with_budget(8);
        none.begin();
        none.read(
            KEY,
            None,
            &root.path().join("oo_req"),
            "oo_req",
            &mut buffer,
        )
        .expect("read");
        assert_eq!(none.open(), 0);
    }
}
