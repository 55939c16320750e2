//! tapdisk3's own VBD counters (XCP-ng, XenServer): the `vbd3-<domid>-<devid>` backends, their
//! statistics in shared memory, ring occupancy, ring geometry and storage identity.
//!
//! A `vbd3` disk is served by tapback + tapdisk3 in user space, so sysfs has no `statistics/` for
//! it and libxenstat (4.19+, or XCP-ng's backport) keeps only 5 of its counters. tapdisk keeps a
//! versioned `struct stats` in `<shm>/td3-<tapdisk pid>/vbd-<domid>-<devid>` (blktap
//! `drivers/tapdisk-metrics-stats.h`, 96 bytes in host order, version 1, updated in place) and
//! the ring indexes in `<shm>/vbd3-<domid>-<devid>/io_ring`. The tapdisk is found through
//! xenstore `backend/vbd3/<domid>/<devid>/kthread-pid`, else by scanning `td3-*` directories whose
//! tapdisk is alive (a tapdisk that died leaves its directory behind).
//!
//! The files are tapdisk's (root, 0600 in 0700 directories); nothing else may stand in for them:
//! every directory and file is opened without following a link, and must be owned by root,
//! writable by nobody else, a regular file with one link and of a plausible size. A length is
//! never taken from a file: the struct's size is ours, the version must be 1.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::ops::RangeInclusive;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::fcntl::{open, openat, OFlag};
use nix::sys::stat::Mode;

use crate::xen::dom0::io_ring::{self, IoRingError};
use crate::xen::dom0::xenstore::{XenStore, XenStoreError};
use crate::xen::model::{Host, TapdiskRing, TapdiskStats, Vbd, VbdBackend, VbdRing, VbdStorage};

/// `VBD_STATS_VERSION`: the only layout known.
pub const STATS_VERSION: u32 = 1;
/// `sizeof(struct stats)`.
pub const STATS_BYTES: usize = 96;
/// tapdisk maps one page; a larger file is not its.
const MAX_STATS_FILE: u64 = 64 * 1024;
/// `io_ring` is a CRC and three short lines.
const MAX_IO_RING_FILE: u64 = 4096;
/// blktap's `BT3_LOW_MEMORY_MODE` flag bit.
const LOW_MEMORY_MODE: u64 = 1;

/// tapdisk's `struct stats` of one VBD, as in the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawStats {
    pub version: u32,
    /// Never written by tapdisk: always 0.
    pub oo_reqs: u64,
    pub read_reqs_submitted: u64,
    pub read_reqs_completed: u64,
    pub read_sectors: u64,
    /// Microseconds.
    pub read_total_ticks: u64,
    pub write_reqs_submitted: u64,
    pub write_reqs_completed: u64,
    pub write_sectors: u64,
    /// Microseconds.
    pub write_total_ticks: u64,
    pub io_errors: u64,
    pub flags: u64,
}

/// Why a stats file's bytes were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StatsError {
    #[error("{0} bytes, shorter than the {STATS_BYTES}-byte struct stats (truncated)")]
    Truncated(usize),
    #[error("struct stats version {0}, only version {STATS_VERSION} is known")]
    Version(u32),
}

/// Parses the first `STATS_BYTES` (96) of a `vbd-<domid>-<devid>` file (the rest of the page is 0).
pub fn parse_stats(bytes: &[u8]) -> Result<RawStats, StatsError> {
    let Some(bytes) = bytes.first_chunk::<STATS_BYTES>() else {
        return Err(StatsError::Truncated(bytes.len()));
    };
    let u64_at = |offset: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[offset..offset + 8]);
        u64::from_ne_bytes(word)
    };
    let version = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if version != STATS_VERSION {
        return Err(StatsError::Version(version));
    }
    Ok(RawStats {
        version,
        oo_reqs: u64_at(8),
        read_reqs_submitted: u64_at(16),
        read_reqs_completed: u64_at(24),
        read_sectors: u64_at(32),
        read_total_ticks: u64_at(40),
        write_reqs_submitted: u64_at(48),
        write_reqs_completed: u64_at(56),
        write_sectors: u64_at(64),
        write_total_ticks: u64_at(72),
        io_errors: u64_at(80),
        flags: u64_at(88),
    })
}

impl RawStats {
    /// The bytes tapdisk keeps for these numbers: for tests and fixtures.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(4096);
        bytes.extend_from_slice(&self.version.to_ne_bytes());
        bytes.extend_from_slice(&[0; 4]);
        for word in [
            self.oo_reqs,
            self.read_reqs_submitted,
            self.read_reqs_completed,
            self.read_sectors,
            self.read_total_ticks,
            self.write_reqs_submitted,
            self.write_reqs_completed,
            self.write_sectors,
            self.write_total_ticks,
            self.io_errors,
            self.flags,
        ] {
            bytes.extend_from_slice(&word.to_ne_bytes());
        }
        bytes.resize(4096, 0);
        bytes
    }

    /// Puts these counters into `vbd`: requests are the completed ones, as blkback counts them.
    pub fn apply(&self, vbd: &mut Vbd) {
        vbd.read_requests = self.read_reqs_completed;
        vbd.write_requests = self.write_reqs_completed;
        vbd.read_sectors = self.read_sectors;
        vbd.write_sectors = self.write_sectors;
        vbd.out_of_requests = self.oo_reqs;
        vbd.tapdisk = Some(TapdiskStats {
            read_requests_submitted: self.read_reqs_submitted,
            write_requests_submitted: self.write_reqs_submitted,
            read_time: Duration::from_micros(self.read_total_ticks),
            write_time: Duration::from_micros(self.write_total_ticks),
            io_errors: self.io_errors,
            low_memory_mode: self.flags & LOW_MEMORY_MODE != 0,
        });
    }
}

/// Why one vbd3 device's files or keys could not be read. Each names the path and the reason.
#[derive(Debug, thiserror::Error)]
pub enum TapdiskError {
    #[error("{}: a symbolic link, not followed", .0.display())]
    Symlink(PathBuf),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{}: {source}: tapdisk makes vbd3-* directories mode 0600 (no search bit), so reading \
         io_ring needs CAP_DAC_READ_SEARCH",
        path.display()
    )]
    NoSearch {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: owned by uid {uid}, expected uid {expected} (tapdisk's files are root's)", path.display())]
    Owner {
        path: PathBuf,
        uid: u32,
        expected: u32,
    },
    #[error("{}: mode {mode:o} lets group or others write it", path.display())]
    Writable { path: PathBuf, mode: u32 },
    #[error("{}: not a regular file", .0.display())]
    NotAFile(PathBuf),
    #[error("{}: {links} hard links, expected 1", path.display())]
    Links { path: PathBuf, links: u64 },
    #[error("{}: {size} bytes, expected {min} to {max} (truncated, or not tapdisk's)", path.display())]
    Size {
        path: PathBuf,
        size: u64,
        min: u64,
        max: u64,
    },
    #[error("{}: {source}", path.display())]
    Stats {
        path: PathBuf,
        #[source]
        source: StatsError,
    },
    #[error("{}: {source}", path.display())]
    IoRing {
        path: PathBuf,
        #[source]
        source: IoRingError,
    },
    #[error("vbd3-{domid}-{devid}: its tapdisk {pid} (xenstore kthread-pid) is not running")]
    Dead { domid: u32, devid: u32, pid: u32 },
    #[error("vbd3-{domid}-{devid}: {source}")]
    XenStore {
        domid: u32,
        devid: u32,
        #[source]
        source: XenStoreError,
    },
}

impl TapdiskError {
    fn is_not_found(&self) -> bool {
        matches!(self, TapdiskError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// What one pass over the host's vbd3 devices did.
#[derive(Debug, Default)]
pub struct TapdiskReport {
    /// vbd3 devices whose stats file was read.
    pub read: usize,
    /// vbd3 devices without a stats file (ring not connected yet, an empty CD drive).
    pub without_stats: usize,
    pub failures: Vec<TapdiskError>,
}

/// What xenstore says of a vbd3 device, read once its ring is connected and kept while the
/// device exists: none of it changes during a VBD's life, and a host of 1,000 disks would
/// otherwise cost thousands of xenstore round trips per scrape.
#[derive(Debug, Clone, Default)]
struct Known {
    /// The tapdisk last found serving it.
    pid: Option<u32>,
    ring: Option<VbdRing>,
    storage: Option<VbdStorage>,
}

/// The facts kept between scrapes, by (domid, devid).
#[derive(Debug, Default)]
pub struct TapdiskCache {
    known: HashMap<(u32, u32), Known>,
}

/// Where tapdisk's files are and who must own them.
pub struct Tapdisk<'a> {
    pub sysfs: &'a Path,
    pub shm: &'a Path,
    pub procfs: &'a Path,
    pub store: Option<&'a dyn XenStore>,
    /// The owner every directory and file must have: root (0); tests pass their own uid.
    pub owner: u32,
}

/// `vbd3-<domid>-<devid>` → (domid, devid).
fn vbd3_device(name: &str) -> Option<(u32, u32)> {
    let rest = name.strip_prefix("vbd3-")?;
    let (domid, devid) = rest.split_once('-')?;
    Some((number(domid)?, number(devid)?))
}

/// Decimal digits only (`parse` would take a `+`).
fn number(text: &str) -> Option<u32> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// XAPI's `params` of a vbd3 backend, `/dev/sm/backend/<SR uuid>/<VDI uuid>` → (SR, VDI).
fn sm_params(params: &str) -> Option<(&str, &str)> {
    let rest = params.trim().strip_prefix("/dev/sm/backend/")?;
    let (sr, vdi) = rest.split_once('/')?;
    let uuid = |text: &str| {
        !text.is_empty()
            && text.len() <= 64
            && text.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
    };
    (uuid(sr) && uuid(vdi)).then_some((sr, vdi))
}

impl Tapdisk<'_> {
    /// The vbd3 devices on the xenbus backend bus, sorted. No bus directory: no devices.
    pub fn devices(&self) -> Result<Vec<(u32, u32)>, TapdiskError> {
        let bus = self.sysfs.join("bus/xen-backend/devices");
        let entries = match std::fs::read_dir(&bus) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(TapdiskError::Io { path: bus, source }),
        };
        let mut devices = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| TapdiskError::Io {
                path: bus.clone(),
                source,
            })?;
            if let Some(device) = entry.file_name().to_str().and_then(vbd3_device) {
                devices.push(device);
            }
        }
        devices.sort_unstable();
        Ok(devices)
    }

    /// Reads every vbd3 device of `host`'s domains into it: a VBD the snapshot lacks is added
    /// (an older libxenstat does not list vbd3 disks), one it has becomes `Tapdisk3` and takes
    /// tapdisk's counters. A device that fails keeps what it had and adds one failure.
    pub fn read_host(&self, host: &mut Host, cache: &mut TapdiskCache) -> TapdiskReport {
        let mut report = TapdiskReport::default();
        let devices = match self.devices() {
            Ok(devices) => devices,
            Err(error) => {
                report.failures.push(error);
                return report;
            }
        };
        cache
            .known
            .retain(|key, _| devices.binary_search(key).is_ok());
        if devices.is_empty() {
            return report;
        }
        // Opened once per pass: every file below is reached from it without following links.
        let root = match open(
            self.shm,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(root) => root,
            Err(errno) => {
                report.failures.push(io_error(self.shm, errno));
                return report;
            }
        };
        let mut scan = None;
        for (domid, devid) in devices {
            let Ok(index) = host
                .domains
                .binary_search_by_key(&domid, |domain| domain.domid)
            else {
                // Created or destroyed between the snapshot and this listing.
                continue;
            };
            let vbds = &mut host.domains[index].vbds;
            let position = match vbds.iter().position(|vbd| vbd.devno == devid) {
                Some(position) => position,
                None => {
                    vbds.push(Vbd {
                        devno: devid,
                        ..Vbd::default()
                    });
                    vbds.len() - 1
                }
            };
            let vbd = &mut vbds[position];
            vbd.backend = VbdBackend::Tapdisk3;
            match self.read_device(&root, (domid, devid), vbd, cache, &mut scan) {
                Ok(true) => report.read += 1,
                Ok(false) => report.without_stats += 1,
                Err(error) => report.failures.push(error),
            }
        }
        report
    }

    /// One device; `Ok(false)` when it has no stats file (not connected).
    fn read_device(
        &self,
        root: &OwnedFd,
        (domid, devid): (u32, u32),
        vbd: &mut Vbd,
        cache: &mut TapdiskCache,
        scan: &mut Option<HashMap<(u32, u32), u32>>,
    ) -> Result<bool, TapdiskError> {
        let cached = cache.known.get(&(domid, devid)).cloned();
        let pid = match cached.as_ref().and_then(|known| known.pid) {
            Some(pid) if self.alive(pid) => Some(pid),
            _ => self.locate(domid, devid, scan)?,
        };
        let Some(pid) = pid else {
            return Ok(false);
        };
        let stats = match self.read_stats(root, pid, domid, devid) {
            Ok(stats) => stats,
            Err(error) if error.is_not_found() => {
                cache.known.remove(&(domid, devid));
                return Ok(false);
            }
            Err(error) => return Err(error),
        };
        stats.apply(vbd);
        let known = match cached {
            Some(known) => known,
            // The ring is connected (tapdisk made the file then): the frontend's ring-page-order
            // is final now, so the keys are read once.
            None => self.read_keys(domid, devid)?,
        };
        vbd.ring = known.ring.clone();
        vbd.storage = known.storage.clone();
        cache.known.insert(
            (domid, devid),
            Known {
                pid: Some(pid),
                ..known
            },
        );
        // The ring file is a bonus: without it (or with a bad one) the counters still serve.
        vbd.io_ring = self.read_io_ring(root, domid, devid)?;
        Ok(true)
    }

    /// Whether tapdisk `pid` runs. Where procfs hides other processes (`hidepid=invisible`,
    /// systemd's `ProtectProc=invisible`: PID 1 is not there either) this cannot be known, and a
    /// tapdisk is taken to be alive: a dead one's stale directory is then not told apart.
    fn alive(&self, pid: u32) -> bool {
        self.procfs.join(pid.to_string()).is_dir() || !self.procfs.join("1").is_dir()
    }

    /// The tapdisk serving (domid, devid): xenstore's `kthread-pid`, else the scan.
    fn locate(
        &self,
        domid: u32,
        devid: u32,
        scan: &mut Option<HashMap<(u32, u32), u32>>,
    ) -> Result<Option<u32>, TapdiskError> {
        if let Some(store) = self.store {
            let path = format!("/local/domain/0/backend/vbd3/{domid}/{devid}/kthread-pid");
            let value = store.read(&path).map_err(|source| TapdiskError::XenStore {
                domid,
                devid,
                source,
            })?;
            if let Some(pid) = value.as_deref().and_then(|v| number(v.trim())) {
                if !self.alive(pid) {
                    return Err(TapdiskError::Dead { domid, devid, pid });
                }
                return Ok(Some(pid));
            }
        }
        let scan = scan.get_or_insert_with(|| self.scan());
        Ok(scan.get(&(domid, devid)).copied())
    }

    /// Every `td3-<pid>/vbd-<domid>-<devid>` of a live tapdisk. A directory whose tapdisk is gone
    /// (it died without cleaning up) is skipped: its counters are frozen.
    fn scan(&self) -> HashMap<(u32, u32), u32> {
        let mut found = HashMap::new();
        let Ok(entries) = std::fs::read_dir(self.shm) else {
            return found;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix("td3-"))
                .and_then(number)
            else {
                continue;
            };
            if !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                continue;
            }
            if !self.alive(pid) {
                tracing::debug!(directory = %entry.path().display(), "stale tapdisk directory skipped: its process is gone");
                continue;
            }
            let Ok(files) = std::fs::read_dir(entry.path()) else {
                continue;
            };
            for file in files.flatten() {
                let name = file.file_name();
                let device = name
                    .to_str()
                    .and_then(|n| n.strip_prefix("vbd-"))
                    .and_then(|rest| rest.split_once('-'))
                    .and_then(|(d, n)| Some((number(d)?, number(n)?)));
                if let Some(device) = device {
                    found.entry(device).or_insert(pid);
                }
            }
        }
        found
    }

    fn read_stats(
        &self,
        root: &OwnedFd,
        pid: u32,
        domid: u32,
        devid: u32,
    ) -> Result<RawStats, TapdiskError> {
        let dir = format!("td3-{pid}");
        let name = format!("vbd-{domid}-{devid}");
        let sizes = STATS_BYTES as u64..=MAX_STATS_FILE;
        let (bytes, _) = self.read_checked(root, &dir, &name, sizes, STATS_BYTES)?;
        parse_stats(&bytes).map_err(|source| TapdiskError::Stats {
            path: self.shm.join(dir).join(name),
            source,
        })
    }

    /// `io_ring` and its age; `None` when tapdisk has not written it.
    fn read_io_ring(
        &self,
        root: &OwnedFd,
        domid: u32,
        devid: u32,
    ) -> Result<Option<TapdiskRing>, TapdiskError> {
        let dir = format!("vbd3-{domid}-{devid}");
        let sizes = io_ring::CRC_BYTES as u64..=MAX_IO_RING_FILE;
        let (bytes, metadata) =
            match self.read_checked(root, &dir, "io_ring", sizes, MAX_IO_RING_FILE as usize) {
                Ok(read) => read,
                Err(error) if error.is_not_found() => return Ok(None),
                Err(TapdiskError::Io { path, source })
                    if source.kind() == io::ErrorKind::PermissionDenied =>
                {
                    return Err(TapdiskError::NoSearch { path, source })
                }
                Err(error) => return Err(error),
            };
        let indexes = io_ring::parse(&bytes).map_err(|source| TapdiskError::IoRing {
            path: self.shm.join(&dir).join("io_ring"),
            source,
        })?;
        let age = metadata
            .modified()
            .ok()
            .and_then(|written| SystemTime::now().duration_since(written).ok())
            .unwrap_or_default();
        Ok(Some(TapdiskRing { indexes, age }))
    }

    /// Ring geometry (one ring: tapback has no multi-queue) and XAPI's storage identity.
    fn read_keys(&self, domid: u32, devid: u32) -> Result<Known, TapdiskError> {
        let Some(store) = self.store else {
            return Ok(Known::default());
        };
        let read = |path: String| {
            store.read(&path).map_err(|source| TapdiskError::XenStore {
                domid,
                devid,
                source,
            })
        };
        let backend = format!("/local/domain/0/backend/vbd3/{domid}/{devid}");
        let frontend = format!("/local/domain/{domid}/device/vbd/{devid}");
        let order = |value: Option<String>| value.and_then(|v| number(v.trim()));
        let pages = order(read(format!("{frontend}/ring-page-order"))?).unwrap_or(0);
        let max_pages = order(read(format!("{backend}/max-ring-page-order"))?);
        // Other readers add facts to VbdRing (the backing device): keep theirs at default here.
        #[allow(clippy::needless_update)]
        let ring = VbdRing {
            queues: 1,
            pages: 1u32.checked_shl(pages).unwrap_or(0),
            max_pages: max_pages.and_then(|o| 1u32.checked_shl(o)),
            max_queues: None,
            ..VbdRing::default()
        };
        let params = read(format!("{backend}/params"))?;
        let vdi = read(format!("{backend}/sm-data/vdi-uuid"))?;
        let from_params = params.as_deref().and_then(sm_params);
        let storage = VbdStorage {
            sr_uuid: from_params.map(|(sr, _)| sr.to_owned()),
            vdi_uuid: vdi
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .or_else(|| from_params.map(|(_, vdi)| vdi.to_owned())),
        };
        let storage = (storage.sr_uuid.is_some() || storage.vdi_uuid.is_some()).then_some(storage);
        Ok(Known {
            pid: None,
            ring: Some(ring),
            storage,
        })
    }

    /// Reads at most `limit` bytes of `<shm>/<dir>/<name>` after the checks the module doc
    /// lists; the metadata is the open file's.
    fn read_checked(
        &self,
        root: &OwnedFd,
        dir: &str,
        name: &str,
        sizes: RangeInclusive<u64>,
        limit: usize,
    ) -> Result<(Vec<u8>, Metadata), TapdiskError> {
        let dir_path = self.shm.join(dir);
        let path = dir_path.join(name);
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let directory = openat(root, dir, flags | OFlag::O_DIRECTORY, Mode::empty())
            .map_err(|errno| nofollow_error(&dir_path, errno))?;
        let directory = File::from(directory);
        let metadata = directory.metadata().map_err(|source| TapdiskError::Io {
            path: dir_path.clone(),
            source,
        })?;
        self.check_owner(&dir_path, &metadata)?;
        let file = openat(
            &directory,
            name,
            flags | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
            Mode::empty(),
        )
        .map_err(|errno| nofollow_error(&path, errno))?;
        let file = File::from(file);
        let metadata = file.metadata().map_err(|source| TapdiskError::Io {
            path: path.clone(),
            source,
        })?;
        if !metadata.file_type().is_file() {
            return Err(TapdiskError::NotAFile(path));
        }
        self.check_owner(&path, &metadata)?;
        if metadata.nlink() != 1 {
            return Err(TapdiskError::Links {
                path,
                links: metadata.nlink(),
            });
        }
        if !sizes.contains(&metadata.size()) {
            return Err(TapdiskError::Size {
                path,
                size: metadata.size(),
                min: *sizes.start(),
                max: *sizes.end(),
            });
        }
        let mut bytes = Vec::with_capacity(limit);
        file.take(limit as u64)
            .read_to_end(&mut bytes)
            .map_err(|source| TapdiskError::Io {
                path: path.clone(),
                source,
            })?;
        Ok((bytes, metadata))
    }

    fn check_owner(&self, path: &Path, metadata: &Metadata) -> Result<(), TapdiskError> {
        if metadata.uid() != self.owner {
            return Err(TapdiskError::Owner {
                path: path.to_owned(),
                uid: metadata.uid(),
                expected: self.owner,
            });
        }
        if metadata.mode() & 0o022 != 0 {
            return Err(TapdiskError::Writable {
                path: path.to_owned(),
                mode: metadata.mode() & 0o7777,
            });
        }
        Ok(())
    }
}

fn io_error(path: &Path, errno: Errno) -> TapdiskError {
    TapdiskError::Io {
        path: path.to_owned(),
        source: io::Error::from(errno),
    }
}

/// An `O_NOFOLLOW` open that met a link fails with `ELOOP` (or `ENOTDIR` with `O_DIRECTORY`):
/// say so rather than "too many levels of symbolic links".
fn nofollow_error(path: &Path, errno: Errno) -> TapdiskError {
    let link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if link && matches!(errno, Errno::ELOOP | Errno::ENOTDIR) {
        return TapdiskError::Symlink(path.to_owned());
    }
    io_error(path, errno)
}

#[cfg(test)]
#[cfg(test)]
mod tests;
