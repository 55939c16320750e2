//! Readers and parsers of Dom0's own files: blkback sysfs, netback debugfs, `/proc/net/dev`,
//! tapdisk3's shared memory, guest memory and the rest of xenstore, ring geometry and the Linux device numbers of virtual
//! disks.

pub(crate) mod devno;
pub(crate) mod io_ring;
pub(crate) mod memory;
pub(crate) mod netback;
pub(crate) mod netdev;
pub(crate) mod rings;
pub(crate) mod sysfs;
pub(crate) mod tapdisk;
pub(crate) mod xenstore;
