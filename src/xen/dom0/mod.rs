//! Readers and parsers of Dom0's own files: blkback sysfs, netback debugfs, `/proc/net/dev`,
//! tapdisk3's shared memory, guest memory and the rest of xenstore, ring geometry (and its
//! cache), the Linux device numbers of virtual disks and the block devices behind VBDs.

pub(crate) mod backend_devices;
pub(crate) mod blockdev;
pub(crate) mod devno;
pub(crate) mod io_ring;
pub(crate) mod kept;
pub(crate) mod kept_files;
pub(crate) mod kept_vifs;
pub(crate) mod memory;
pub(crate) mod netback;
pub(crate) mod netdev;
pub(crate) mod ring_cache;
pub(crate) mod rings;
pub(crate) mod sysfs;
pub(crate) mod tapdisk;
pub(crate) mod xenstore;
