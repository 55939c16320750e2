//! blkback's own VBD counters from sysfs, which overwrite libxenstat's for blkback (and blktap)
//! devices.
//!
//! Why sysfs and not libxenstat: libxenstat of Xen 4.13.0–4.13.3, 4.14.0–4.14.2 and 4.15.0 never
//! fills `rd_sects` (it scans `rd_sect` into the write counter), while blkback's files are right
//! on every release and also carry `f_req` (flushes) and `ds_req` (discards). Layout:
//! `<sysfs>/bus/xen-backend/devices/vbd-<domid>-<devno>/statistics/<counter>`, one `"%llu\n"` per
//! file, each the sum over the device's rings. qdisk and vbd3 devices have no such directory;
//! they keep libxenstat's numbers.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::xen::dom0::backend_devices::Instances;
use crate::xen::dom0::kept_files::KeptFiles;
use crate::xen::model::{Host, Vbd, VbdBackend};

/// A failed read of one VBD's statistics; the VBD keeps the numbers libxenstat gave it.
#[derive(Debug, thiserror::Error)]
pub enum SysfsError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: expected an unsigned counter, found {value:?}")]
    Parse { path: PathBuf, value: String },
}

/// One VBD's counters as blkback publishes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VbdStatistics {
    pub oo_req: u64,
    pub rd_req: u64,
    pub wr_req: u64,
    pub rd_sect: u64,
    pub wr_sect: u64,
    /// `None` when the kernel does not publish the file.
    pub f_req: Option<u64>,
    pub ds_req: Option<u64>,
}

impl VbdStatistics {
    /// Overwrites the VBD's counters with these.
    pub fn apply(&self, vbd: &mut Vbd) {
        vbd.out_of_requests = self.oo_req;
        vbd.read_requests = self.rd_req;
        vbd.write_requests = self.wr_req;
        vbd.read_sectors = self.rd_sect;
        vbd.write_sectors = self.wr_sect;
        vbd.flush_requests = self.f_req;
        vbd.discard_requests = self.ds_req;
        // The error flag says the statistics could not be read; they just were.
        if vbd.error.is_some() {
            vbd.error = Some(false);
        }
    }
}

/// What one pass over a host's VBDs did.
#[derive(Debug, Default)]
pub struct VbdReport {
    /// VBDs whose counters now come from sysfs.
    pub read: usize,
    /// VBDs served by a backend without sysfs statistics (qdisk, vbd3): left as they were.
    pub skipped: usize,
    /// VBDs whose statistics could not be read; each keeps libxenstat's numbers.
    pub failures: Vec<SysfsError>,
}

impl VbdReport {
    /// The `vbd` part succeeded when every blkback VBD was read.
    #[cfg(test)]
    pub fn success(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The sysfs directory name prefix of a backend, or `None` when it publishes no statistics there.
fn device_prefix(backend: VbdBackend) -> Option<&'static str> {
    match backend {
        VbdBackend::Blkback => Some("vbd"),
        // blktap2 registered its devices on the same bus with the same statistics files.
        VbdBackend::Tap => Some("tap"),
        VbdBackend::Qdisk | VbdBackend::Tapdisk3 | VbdBackend::Unknown => None,
    }
}

/// `<sysfs>/bus/xen-backend/devices/<prefix>-<domid>-<devno>/statistics`.
pub fn statistics_dir(sysfs: &Path, prefix: &str, domid: u32, devno: u32) -> PathBuf {
    sysfs
        .join("bus/xen-backend/devices")
        .join(format!("{prefix}-{domid}-{devno}"))
        .join("statistics")
}

/// Parses one counter file's text (`"%llu\n"`).
pub fn parse_counter(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// Reads every blkback/blktap VBD's statistics under `sysfs` into `host`. A VBD that cannot be read
/// whole keeps its numbers and adds one failure; nothing here panics on what the kernel shows.
pub fn read_vbds(host: &mut Host, sysfs: &Path) -> VbdReport {
    read_vbds_with(host, sysfs, &mut read_file)
}

/// [`read_vbds`] through descriptors kept open between scrapes (`kept_files.rs`), tied to
/// each device's instance in `instances` (none kept without it).
pub fn read_vbds_kept(
    host: &mut Host,
    sysfs: &Path,
    kept: &mut KeptFiles,
    instances: Option<&Instances>,
) -> VbdReport {
    kept.begin();
    let report = read_vbds_by(host, sysfs, &mut |(domid, devno, backend), file, buffer| {
        let instance = instances.and_then(|listed| listed.get(backend, domid, devno));
        kept.read(
            (domid, devno, backend),
            instance,
            file.path,
            file.name,
            buffer,
        )
    });
    kept.end();
    report
}

/// One statistics file: its name and its path.
struct StatisticsFile<'a> {
    name: &'static str,
    path: &'a Path,
}

/// A device's `(domid, devno, backend)`.
type Key = (u32, u32, VbdBackend);

/// [`read_vbds`] with the file reader given, so tests can change the tree between two reads.
fn read_vbds_with(
    host: &mut Host,
    sysfs: &Path,
    read: &mut dyn FnMut(&Path, &mut String) -> io::Result<()>,
) -> VbdReport {
    read_vbds_by(host, sysfs, &mut |_, file, buffer| read(file.path, buffer))
}

/// [`read_vbds`] with a reader told which device each file belongs to.
fn read_vbds_by(
    host: &mut Host,
    sysfs: &Path,
    read: &mut dyn FnMut(Key, StatisticsFile<'_>, &mut String) -> io::Result<()>,
) -> VbdReport {
    let mut report = VbdReport::default();
    let mut buffer = String::with_capacity(32);
    for domain in &mut host.domains {
        for vbd in &mut domain.vbds {
            let Some(prefix) = device_prefix(vbd.backend) else {
                report.skipped += 1;
                continue;
            };
            let dir = statistics_dir(sysfs, prefix, domain.domid, vbd.devno);
            let key = (domain.domid, vbd.devno, vbd.backend);
            match read_statistics_with(&dir, &mut buffer, &mut |file, buffer| {
                read(key, file, buffer)
            }) {
                Ok(statistics) => {
                    statistics.apply(vbd);
                    report.read += 1;
                }
                Err(error) => report.failures.push(error),
            }
        }
    }
    report
}

fn read_statistics_with(
    dir: &Path,
    buffer: &mut String,
    read: &mut dyn FnMut(StatisticsFile<'_>, &mut String) -> io::Result<()>,
) -> Result<VbdStatistics, SysfsError> {
    let mut path = dir.to_path_buf();
    let mut counter = |name: &'static str, optional: bool| -> Result<Option<u64>, SysfsError> {
        path.push(name);
        let file = StatisticsFile { name, path: &path };
        let result = match read(file, buffer) {
            Ok(()) => match parse_counter(buffer) {
                Some(value) => Ok(Some(value)),
                None => Err(SysfsError::Parse {
                    path: path.clone(),
                    value: buffer.trim_end().to_owned(),
                }),
            },
            // f_req and ds_req are newer than the others; a kernel without them is not an error.
            Err(error) if optional && error.kind() == io::ErrorKind::NotFound && dir.is_dir() => {
                Ok(None)
            }
            Err(source) => Err(SysfsError::Io {
                path: path.clone(),
                source,
            }),
        };
        path.pop();
        result
    };
    let required = |value: Option<u64>| value.unwrap_or_default();
    Ok(VbdStatistics {
        oo_req: required(counter("oo_req", false)?),
        rd_req: required(counter("rd_req", false)?),
        wr_req: required(counter("wr_req", false)?),
        rd_sect: required(counter("rd_sect", false)?),
        wr_sect: required(counter("wr_sect", false)?),
        f_req: counter("f_req", true)?,
        ds_req: counter("ds_req", true)?,
    })
}

/// Reads a whole small file into `buffer` (cleared first), reusing its allocation.
fn read_file(path: &Path, buffer: &mut String) -> io::Result<()> {
    buffer.clear();
    File::open(path)?.read_to_string(buffer)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xen::model::Domain;

    fn fixture(case: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/sysfs")
            .join(case)
    }

    /// A host as libxenstat 4.15.0 would report it: `read_sectors` never filled (0).
    fn host_with(vbds: &[(u32, u32, VbdBackend)]) -> Host {
        let mut host = Host::default();
        for &(domid, devno, backend) in vbds {
            if host.domains.last().map(|d| d.domid) != Some(domid) {
                host.domains.push(Domain {
                    domid,
                    name: format!("dom{domid}"),
                    ..Domain::default()
                });
            }
            let domain = host.domains.last_mut().expect("pushed above");
            domain.vbds.push(Vbd {
                devno,
                backend,
                read_requests: 1,
                write_requests: 2,
                read_sectors: 0,
                write_sectors: 4,
                out_of_requests: 5,
                ..Vbd::default()
            });
        }
        host
    }

    fn libxenstat_numbers(vbd: &Vbd) -> bool {
        vbd.read_requests == 1
            && vbd.write_requests == 2
            && vbd.write_sectors == 4
            && vbd.out_of_requests == 5
            && vbd.flush_requests.is_none()
    }

    #[test]
    fn parses_counters() {
        assert_eq!(parse_counter("515\n"), Some(515));
        assert_eq!(parse_counter("0"), Some(0));
        assert_eq!(parse_counter("18446744073709551615\n"), Some(u64::MAX));
        assert_eq!(parse_counter(""), None);
        assert_eq!(parse_counter("-1\n"), None);
        assert_eq!(parse_counter("12 34\n"), None);
    }

    #[test]
    fn reads_the_captured_xen_4_17_tree() {
        let mut host = host_with(&[(1, 51712, VbdBackend::Blkback)]);
        let report = read_vbds(&mut host, &fixture("xen417-default"));
        assert!(report.success(), "{:?}", report.failures);
        assert_eq!(report.read, 1);
        let vbd = &host.domains[0].vbds[0];
        assert_eq!(vbd.read_requests, 515);
        assert_eq!(vbd.write_requests, 512);
        assert_eq!(vbd.read_sectors, 65560);
        assert_eq!(vbd.write_sectors, 65536);
        assert_eq!(vbd.out_of_requests, 0);
        assert_eq!(vbd.flush_requests, Some(0));
        assert_eq!(vbd.discard_requests, Some(0));
    }

    #[test]
    fn busy_tree_with_several_devices_and_backends() {
        let mut host = host_with(&[
            (3, 51712, VbdBackend::Blkback),
            (3, 51728, VbdBackend::Blkback),
            (3, 768, VbdBackend::Qdisk),
            (7, 51712, VbdBackend::Tap),
        ]);
        let report = read_vbds(&mut host, &fixture("busy"));
        assert!(report.success(), "{:?}", report.failures);
        assert_eq!((report.read, report.skipped), (3, 1));
        let xvda = &host.domains[0].vbds[0];
        assert_eq!(xvda.out_of_requests, 1234);
        assert_eq!(xvda.flush_requests, Some(88));
        assert_eq!(xvda.discard_requests, Some(7));
        assert_eq!(host.domains[0].vbds[1].read_sectors, 4096);
        assert!(
            libxenstat_numbers(&host.domains[0].vbds[2]),
            "qdisk untouched"
        );
        assert_eq!(host.domains[1].vbds[0].write_requests, 99);
    }

    #[test]
    fn kernel_without_flush_and_discard_files() {
        let mut host = host_with(&[(1, 51712, VbdBackend::Blkback)]);
        let report = read_vbds(&mut host, &fixture("no-flush-discard"));
        assert!(report.success(), "{:?}", report.failures);
        let vbd = &host.domains[0].vbds[0];
        assert_eq!(vbd.read_sectors, 65560);
        assert_eq!((vbd.flush_requests, vbd.discard_requests), (None, None));
    }

    #[test]
    fn missing_file_keeps_libxenstat_numbers_and_fails() {
        let mut host = host_with(&[
            (1, 51712, VbdBackend::Blkback),
            (1, 51728, VbdBackend::Blkback),
        ]);
        let report = read_vbds(&mut host, &fixture("missing-file"));
        assert_eq!(report.read, 1);
        assert_eq!(report.failures.len(), 1);
        let message = report.failures[0].to_string();
        assert!(
            message.contains("vbd-1-51712/statistics/rd_sect"),
            "{message}"
        );
        assert!(libxenstat_numbers(&host.domains[0].vbds[0]));
        assert_eq!(host.domains[0].vbds[1].read_requests, 10);
    }

    #[test]
    fn unparsable_value_keeps_libxenstat_numbers_and_fails() {
        let mut host = host_with(&[(1, 51712, VbdBackend::Blkback)]);
        let report = read_vbds(&mut host, &fixture("bad-value"));
        assert_eq!(report.failures.len(), 1);
        let message = report.failures[0].to_string();
        assert!(
            message.contains("wr_req") && message.contains("garbage"),
            "{message}"
        );
        assert!(libxenstat_numbers(&host.domains[0].vbds[0]));
    }

    #[test]
    fn absent_device_directory_is_a_failure() {
        let mut host = host_with(&[(9, 51712, VbdBackend::Blkback)]);
        let report = read_vbds(&mut host, &fixture("xen417-default"));
        assert_eq!(report.failures.len(), 1);
        assert!(report.failures[0].to_string().contains("vbd-9-51712"));
        assert!(libxenstat_numbers(&host.domains[0].vbds[0]));
    }

    /// A temporary sysfs root with every statistics file of one blkback VBD set to 42.
    fn full_statistics_tree(domid: u32, devno: u32) -> tempfile::TempDir {
        let tree = tempfile::tempdir().expect("temporary directory");
        let dir = statistics_dir(tree.path(), "vbd", domid, devno);
        std::fs::create_dir_all(&dir).expect("create statistics dir");
        for name in [
            "oo_req", "rd_req", "wr_req", "rd_sect", "wr_sect", "f_req", "ds_req",
        ] {
            std::fs::write(dir.join(name), "42\n").expect("write counter");
        }
        tree
    }

    #[test]
    fn statistics_directory_vanishing_mid_read() {
        let tree = full_statistics_tree(1, 51712);
        let mut host = host_with(&[(1, 51712, VbdBackend::Blkback)]);
        let mut reads = 0;
        // The real files, read through the real filesystem; after the third the domain is
        // destroyed (its device directory removed), as happens between two reads on a live Dom0.
        let mut vanishing = |path: &Path, buffer: &mut String| {
            reads += 1;
            if reads == 4 {
                std::fs::remove_dir_all(tree.path().join("bus")).expect("remove tree");
            }
            read_file(path, buffer)
        };
        let report = read_vbds_with(&mut host, tree.path(), &mut vanishing);
        assert_eq!(reads, 4, "stops at the first failed read");
        assert_eq!(report.read, 0);
        assert_eq!(report.failures.len(), 1);
        assert!(report.failures[0].to_string().contains("rd_sect"));
        assert!(
            libxenstat_numbers(&host.domains[0].vbds[0]),
            "no mix of sysfs and libxenstat numbers"
        );
    }

    #[test]
    fn optional_file_of_a_vanished_directory_is_a_failure() {
        let tree = full_statistics_tree(1, 51712);
        let mut host = host_with(&[(1, 51712, VbdBackend::Blkback)]);
        let mut reads = 0;
        let mut vanishing = |path: &Path, buffer: &mut String| {
            reads += 1;
            if reads == 6 {
                std::fs::remove_dir_all(tree.path().join("bus")).expect("remove tree");
            }
            read_file(path, buffer)
        };
        let report = read_vbds_with(&mut host, tree.path(), &mut vanishing);
        assert_eq!(
            report.failures.len(),
            1,
            "f_req missing because the dir is gone"
        );
        assert!(libxenstat_numbers(&host.domains[0].vbds[0]));
    }

    #[test]
    fn unreadable_statistics_entry_is_a_failure() {
        // Permission bits do not stop root, so make `rd_req` a directory: reading it fails with
        // EISDIR for every user, which is what an unreadable file looks like to the reader.
        let tree = tempfile::tempdir().expect("temporary directory");
        let dir = statistics_dir(tree.path(), "vbd", 1, 51712);
        std::fs::create_dir_all(dir.join("rd_req")).expect("create dirs");
        std::fs::write(dir.join("oo_req"), "1\n").expect("write counter");
        let mut host = host_with(&[(1, 51712, VbdBackend::Blkback)]);
        let report = read_vbds(&mut host, tree.path());
        assert_eq!(report.failures.len(), 1);
        assert!(report.failures[0].to_string().contains("rd_req"));
        assert!(libxenstat_numbers(&host.domains[0].vbds[0]));
    }
}
