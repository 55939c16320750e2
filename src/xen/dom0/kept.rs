//! Descriptors kept open between scrapes, per device, and the `pread` that reads them.
//!
//! blkback's sysfs statistics (`kept_files.rs`) and netback's debugfs queue files
//! (`kept_vifs.rs`) are both read by `pread` at offset 0, which makes the kernel generate the
//! text again, instead of an open and a close per file and scrape. The bookkeeping they share
//! lives here: each device's files are tied to its instance (the inode of its directory: a
//! device removed and created again under the same name is another inode, whose files the old
//! descriptors must never serve), the devices a scrape did not read are closed at its end, and
//! the number of descriptors stays within a budget.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fs::File;
use std::hash::Hash;
use std::io;
use std::os::unix::fs::FileExt;

/// One device's kept files, each with its tag (a file name, or a path).
#[derive(Debug)]
struct Device<T> {
    /// The inode of the device's directory when its files were opened.
    instance: u64,
    files: Vec<(T, File)>,
    /// The last scrape that read the device.
    seen: u64,
}

/// The kept files of every device, by key, within a budget of descriptors.
#[derive(Debug)]
pub struct KeptSet<K, T> {
    devices: HashMap<K, Device<T>>,
    open: usize,
    budget: usize,
    scrape: u64,
}

impl<K: Eq + Hash, T> KeptSet<K, T> {
    pub fn with_budget(budget: usize) -> Self {
        Self {
            devices: HashMap::new(),
            open: 0,
            budget,
            scrape: 0,
        }
    }

    /// Starts a scrape.
    pub fn begin(&mut self) {
        self.scrape += 1;
    }

    /// Ends a scrape: closes the files of devices it did not read.
    pub fn end(&mut self) {
        let scrape = self.scrape;
        let mut closed = 0;
        self.devices.retain(|_, device| {
            let keep = device.seen == scrape;
            if !keep {
                closed += device.files.len();
            }
            keep
        });
        self.open -= closed;
    }

    /// The files kept for `key`, which this scrape reads: none if it has none, or if they were
    /// kept for another instance of the device (they are closed then).
    pub fn visit<Q>(&mut self, key: &Q, instance: u64) -> &[(T, File)]
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let Some(device) = self.devices.get_mut(key) else {
            return &[];
        };
        device.seen = self.scrape;
        if device.instance != instance {
            self.open -= device.files.len();
            device.files.clear();
            device.instance = instance;
        }
        &device.files
    }

    /// Closes the file tagged `tag` of `key` (its read failed).
    pub fn close<Q>(&mut self, key: &Q, tag: &T)
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
        T: PartialEq,
    {
        if let Some(device) = self.devices.get_mut(key) {
            if let Some(index) = device.files.iter().position(|(kept, _)| kept == tag) {
                device.files.swap_remove(index);
                self.open -= 1;
            }
        }
    }

    /// Closes every file of `key`.
    pub fn forget<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        if let Some(device) = self.devices.remove(key) {
            self.open -= device.files.len();
        }
    }

    /// Keeps one more file of `key` (of `instance`), if the budget has room.
    pub fn keep(&mut self, key: K, instance: u64, tag: T, file: File) {
        if self.open >= self.budget {
            return;
        }
        let scrape = self.scrape;
        let device = self.devices.entry(key).or_insert_with(|| Device {
            instance,
            files: Vec::new(),
            seen: scrape,
        });
        if device.instance == instance {
            device.files.push((tag, file));
            self.open += 1;
        }
    }

    /// Keeps all of `key`'s files (of `instance`) in place of any it had, if the budget has room
    /// for all of them; otherwise none.
    pub fn keep_all(&mut self, key: K, instance: u64, files: Vec<(T, File)>) {
        self.forget(&key);
        if files.is_empty() || self.open + files.len() > self.budget {
            return;
        }
        self.open += files.len();
        let seen = self.scrape;
        self.devices.insert(
            key,
            Device {
                instance,
                files,
                seen,
            },
        );
    }

    /// Descriptors kept open now.
    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.open
    }
}

/// Reads a small kernel-generated file from offset 0 into `text` (cleared first), at most about
/// `max` bytes. A read shorter than asked is the end: a sysfs attribute is one read, and a
/// `seq_file` (debugfs) fills every read until its text ends.
pub fn pread_text(file: &File, text: &mut String, max: usize) -> io::Result<()> {
    let mut bytes = [0u8; 4096];
    text.clear();
    let mut offset = 0u64;
    while text.len() < max {
        let read = file.read_at(&mut bytes, offset)?;
        text.push_str(
            std::str::from_utf8(&bytes[..read])
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?,
        );
        if read < bytes.len() {
            break;
        }
        offset += read as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &std::path::Path, name: &str, text: &str) -> File {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        File::open(path).expect("open")
    }

    #[test]
    fn another_instance_closes_the_files_and_unread_devices_close_at_the_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut set: KeptSet<String, &str> = KeptSet::with_budget(8);
        set.begin();
        assert!(set.visit("vbd-1", 7).is_empty());
        set.keep(
            "vbd-1".to_owned(),
            7,
            "rd_req",
            file(dir.path(), "a", "1\n"),
        );
        set.keep(
            "vbd-1".to_owned(),
            7,
            "wr_req",
            file(dir.path(), "b", "2\n"),
        );
        set.keep(
            "vbd-2".to_owned(),
            9,
            "rd_req",
            file(dir.path(), "c", "3\n"),
        );
        set.end();
        assert_eq!(set.open(), 3);
        set.begin();
        assert_eq!(set.visit("vbd-1", 7).len(), 2, "the same instance");
        set.close("vbd-1", &"wr_req");
        assert_eq!(set.visit("vbd-1", 7).len(), 1);
        assert!(set.visit("vbd-1", 8).is_empty(), "another instance");
        set.end();
        assert_eq!(
            set.open(),
            0,
            "vbd-2 was not read, vbd-1 is another instance"
        );
    }

    #[test]
    fn the_budget_bounds_single_files_and_whole_devices() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut set: KeptSet<&str, String> = KeptSet::with_budget(3);
        set.begin();
        for name in ["a", "b", "c", "d"] {
            set.keep("vbd", 1, name.to_owned(), file(dir.path(), name, "1\n"));
        }
        assert_eq!(set.open(), 3);
        let two = vec![
            ("q0".to_owned(), file(dir.path(), "q0", "x")),
            ("q1".to_owned(), file(dir.path(), "q1", "y")),
        ];
        set.keep_all("vif", 5, two);
        assert_eq!(set.open(), 3, "no room for the whole vif: none of it");
        set.forget("vbd");
        let two = vec![
            ("q0".to_owned(), file(dir.path(), "q0", "x")),
            ("q1".to_owned(), file(dir.path(), "q1", "y")),
        ];
        set.keep_all("vif", 5, two);
        assert_eq!((set.open(), set.visit("vif", 5).len()), (2, 2));
    }

    #[test]
    fn pread_text_reads_from_the_start_up_to_the_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kept = file(dir.path(), "f", "first\n");
        let mut text = String::from("stale");
        pread_text(&kept, &mut text, 1024).expect("read");
        assert_eq!(text, "first\n");
        std::fs::write(dir.path().join("f"), "second, longer\n").expect("rewrite");
        pread_text(&kept, &mut text, 1024).expect("read");
        assert_eq!(
            text, "second, longer\n",
            "the kept descriptor reads the new text"
        );
        let long = "x".repeat(10_000);
        let big = file(dir.path(), "big", &long);
        pread_text(&big, &mut text, 4096).expect("read");
        assert_eq!(text.len(), 4096, "stops at the bound, on a read boundary");
        pread_text(&big, &mut text, 1 << 20).expect("read");
        assert_eq!(text, long);
    }
}
