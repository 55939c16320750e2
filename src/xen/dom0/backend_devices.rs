//! The block backend devices the kernel lists under `<sysfs>/bus/xen-backend/devices`, each with
//! its instance: the inode of its directory entry, which is new whenever a device is removed and
//! created again under the same name.
//!
//! One `readdir` of one directory tells, for every VBD of the host at once, whether it is still
//! the device seen before, so caches keyed by the device's name (ring geometry) can notice a VBD
//! detached and attached again between two scrapes without asking xenstore.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::DirEntryExt;
use std::path::Path;

use crate::xen::model::{Host, Vbd, VbdBackend};

/// `(backend, domid, devno)` of each listed block device, to its directory entry's inode.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Instances(HashMap<(VbdBackend, u32, u32), u64>);

impl Instances {
    /// The instance of a device; `None` when the kernel does not list it.
    pub fn get(&self, backend: VbdBackend, domid: u32, devno: u32) -> Option<u64> {
        self.0.get(&(backend, domid, devno)).copied()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Adds every listed device of a domain in `host` as a VBD without counters, as libxenstat
/// lists them (same directory, same names); the `vbd` part then reads their statistics.
/// `error` starts as `Some(true)`, "not read", until those statistics are read.
pub fn add_vbds(host: &mut Host, instances: &Instances) {
    let mut listed: Vec<_> = instances.0.keys().copied().collect();
    // Ours in domid then devno order; libxenstat's is readdir order, which means nothing.
    listed.sort_by_key(|&(backend, domid, devno)| (domid, devno, backend == VbdBackend::Tap));
    for (backend, domid, devno) in listed {
        // Domains are in domid order (the model's promise).
        let Ok(index) = host
            .domains
            .binary_search_by_key(&domid, |domain| domain.domid)
        else {
            continue; // a device of a domain the snapshot no longer (or not yet) has
        };
        host.domains[index].vbds.push(Vbd {
            devno,
            backend,
            error: Some(true),
            ..Vbd::default()
        });
    }
}

/// `vbd-<domid>-<devno>` (blkback) or `tap-<domid>-<devno>` (blktap2); anything else is `None`.
fn parse_name(name: &str) -> Option<(VbdBackend, u32, u32)> {
    let (prefix, rest) = name.split_once('-')?;
    let backend = match prefix {
        "vbd" => VbdBackend::Blkback,
        "tap" => VbdBackend::Tap,
        _ => return None,
    };
    let (domid, devno) = rest.split_once('-')?;
    Some((backend, domid.parse().ok()?, devno.parse().ok()?))
}

/// Lists the block backend devices under `sysfs`. An error means the directory could not be
/// read (no blkback, or not Linux): callers then do without instances.
pub fn list(sysfs: &Path) -> io::Result<Instances> {
    let mut instances = HashMap::new();
    for entry in std::fs::read_dir(sysfs.join("bus/xen-backend/devices"))? {
        let entry = entry?;
        let name = entry.file_name();
        if let Some(key) = name.to_str().and_then(parse_name) {
            instances.insert(key, entry.ino());
        }
    }
    Ok(Instances(instances))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_block_backends() {
        assert_eq!(
            parse_name("vbd-3-51712"),
            Some((VbdBackend::Blkback, 3, 51712))
        );
        assert_eq!(parse_name("tap-1-768"), Some((VbdBackend::Tap, 1, 768)));
        for other in ["vif-3-0", "vbd3-1-51712", "vbd-x-1", "vbd-1", "console-1-0"] {
            assert_eq!(parse_name(other), None, "{other}");
        }
    }

    /// A device removed and created again under the same name is another instance.
    #[test]
    fn a_recreated_device_is_a_new_instance() {
        let root = tempfile::tempdir().expect("tempdir");
        let devices = root.path().join("bus/xen-backend/devices");
        let device = devices.join("vbd-3-51712");
        std::fs::create_dir_all(&device).expect("mkdir");
        std::fs::create_dir_all(devices.join("vif-3-0")).expect("mkdir");
        let before = list(root.path()).expect("list");
        assert_eq!(before.len(), 1);
        let first = before.get(VbdBackend::Blkback, 3, 51712).expect("listed");
        // The new directory exists before the old one goes, so no filesystem can give it the
        // old inode back (sysfs never reuses one soon; ext4 might at once).
        let new = devices.join("new");
        std::fs::create_dir(&new).expect("create");
        std::fs::remove_dir(&device).expect("remove");
        std::fs::rename(&new, &device).expect("re-create");
        let after = list(root.path()).expect("list");
        assert_ne!(after.get(VbdBackend::Blkback, 3, 51712), Some(first));
        assert!(list(&root.path().join("absent")).is_err());
    }
}
