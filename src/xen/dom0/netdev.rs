//! Guest NIC counters from Dom0's `/proc/net/dev`: the `vif<domid>.<devid>` (netback) and
//! `tap<domid>.<devid>` / `vif<domid>.<devid>-emu` (emulated NIC) lines, read by us.
//!
//! Why not libxenstat's: every libxenstat release drops every vif when Dom0 has no Linux bridge
//! (`xenstat_collect_networks` takes the "bonding" branch for each interface when no
//! `/sys/class/net/*/bridge` exists), which is every XCP-ng and XenServer host (Open vSwitch).
//! The kernel's counters do not depend on the bridge. They are Dom0's view, as libxenstat's:
//! receive is what the guest sent, transmit what it was sent.
//!
//! PID 1's view (`<procfs>/1/net/dev`) is read, so an exporter in a network namespace of its own
//! (a container with the host's /proc mounted) still sees Dom0's interfaces; `<procfs>/net/dev`
//! is the fallback when there is no PID 1 directory.

use std::io;
use std::path::{Path, PathBuf};

use crate::xen::model::{Host, Vif, VifKind};

/// A line of a guest interface that cannot be read: names the line and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NetDevError {
    #[error("line {line}: {interface}: expected 16 counters after the colon, found {found}")]
    FieldCount {
        line: usize,
        interface: String,
        found: usize,
    },
    #[error("line {line}: {interface}: counter {field} is not an unsigned number: {value:?}")]
    BadCounter {
        line: usize,
        interface: String,
        field: usize,
        value: String,
    },
    #[error("not a /proc/net/dev file: the first line is {0:?}")]
    NotNetDev(String),
}

/// The file could not be read, or a guest interface's line could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
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
        source: NetDevError,
    },
}

/// One guest interface's line.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestInterface {
    pub domid: u32,
    pub vif: Vif,
}

/// `vif3.0` → (Netback, 3, 0), `tap3.0` → (Tap, 3, 0), `vif3.0-emu` → (Emu, 3, 0); anything
/// else (Dom0's own interfaces, `vif3.0.1` VLANs, names with signs or spaces) → `None`.
pub fn guest_interface(name: &str) -> Option<(VifKind, u32, u32)> {
    let (kind, rest) = if let Some(rest) = name.strip_prefix("tap") {
        (VifKind::Tap, rest)
    } else if let Some(rest) = name.strip_prefix("vif") {
        match rest.strip_suffix("-emu") {
            Some(rest) => (VifKind::Emu, rest),
            None => (VifKind::Netback, rest),
        }
    } else {
        return None;
    };
    let (domid, devid) = rest.split_once('.')?;
    let number = |text: &str| -> Option<u32> {
        // `parse` accepts a leading `+`; an interface name with one is not Xen's.
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse().ok())
            .flatten()
    };
    Some((kind, number(domid)?, number(devid)?))
}

/// Parses `/proc/net/dev` text (`dev_seq_printf_stats`: two header lines, then
/// `<name>: rx bytes packets errs drop fifo frame compressed multicast tx bytes packets errs drop
/// fifo colls carrier compressed`). Lines of Dom0's own interfaces are skipped unread, so a
/// malformed one of those never hides the guests'; a malformed guest line is an error.
pub fn parse(text: &str) -> Result<Vec<GuestInterface>, NetDevError> {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    if !first.starts_with("Inter-|") {
        return Err(NetDevError::NotNetDev(first.chars().take(40).collect()));
    }
    let mut found = Vec::new();
    // Line numbers are 1-based, the first two are the header.
    for (index, line) in lines.enumerate().skip(1) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let Some((kind, domid, devid)) = guest_interface(name) else {
            continue;
        };
        let line_number = index + 2;
        let mut values = [0u64; 16];
        let mut count = 0;
        for (field, word) in counters.split_whitespace().enumerate() {
            if field < values.len() {
                values[field] = word.parse().map_err(|_| NetDevError::BadCounter {
                    line: line_number,
                    interface: name.to_owned(),
                    field,
                    value: word.chars().take(24).collect(),
                })?;
            }
            count += 1;
        }
        if count != values.len() {
            return Err(NetDevError::FieldCount {
                line: line_number,
                interface: name.to_owned(),
                found: count,
            });
        }
        found.push(GuestInterface {
            domid,
            vif: Vif {
                devid,
                kind,
                rx_bytes: values[0],
                rx_packets: values[1],
                rx_errors: values[2],
                rx_drops: values[3],
                tx_bytes: values[8],
                tx_packets: values[9],
                tx_errors: values[10],
                tx_drops: values[11],
                queues: Vec::new(),
            },
        });
    }
    Ok(found)
}

/// `<procfs>/1/net/dev`, or `<procfs>/net/dev` when PID 1's directory is absent.
pub fn read(procfs: &Path) -> Result<Vec<GuestInterface>, ReadError> {
    let pid1 = procfs.join("1/net/dev");
    let (path, text) = match std::fs::read_to_string(&pid1) {
        Ok(text) => (pid1, text),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let own = procfs.join("net/dev");
            match std::fs::read_to_string(&own) {
                Ok(text) => (own, text),
                Err(source) => return Err(ReadError::Io { path: own, source }),
            }
        }
        Err(source) => return Err(ReadError::Io { path: pid1, source }),
    };
    parse(&text).map_err(|source| ReadError::Parse { path, source })
}

/// Puts the counters read into `host`: a NIC the snapshot has (same kind and devid) takes them,
/// one it lacks (every vif, on an Open vSwitch host) is added. Interfaces of domains not in the
/// snapshot (created or destroyed between the two reads) are left out. Returns how many NICs
/// were filled.
pub fn apply(host: &mut Host, interfaces: Vec<GuestInterface>) -> usize {
    let mut applied = 0;
    for GuestInterface { domid, vif } in interfaces {
        let Ok(index) = host
            .domains
            .binary_search_by_key(&domid, |domain| domain.domid)
        else {
            continue;
        };
        let vifs = &mut host.domains[index].vifs;
        match vifs
            .iter_mut()
            .find(|known| known.kind == vif.kind && known.devid == vif.devid)
        {
            Some(known) => {
                let queues = std::mem::take(&mut known.queues);
                *known = Vif { queues, ..vif };
            }
            None => vifs.push(vif),
        }
        applied += 1;
    }
    applied
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xen::model::Domain;

    /// The shape of an XCP-ng 8.3 Dom0's file (kernel 4.19): Open vSwitch, a PV vif, an HVM
    /// guest's emulated NIC, and Dom0's own interfaces (`xenbr0`, a `vif` VLAN lookalike).
    const XCP: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  123456     789    0    0    0     0          0         0   123456     789    0    0    0     0       0          0
  eth0: 9876543210 12345678    0   12    0     0          0     4567 8765432109 11223344    0    0    0     0       0          0
xenbr0: 55555 66 0 0 0 0 0 0 77777 88 0 0 0 0 0 0
ovs-system: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
vif1.0: 1216 17 1 2 0 0 0 0 1674 19 3 4 0 0 0 0
tap2.0: 500 5 0 0 0 0 0 0 600 6 0 1 0 0 0 0
vif2.0-emu: 70 7 0 0 0 0 0 0 80 8 0 0 0 0 0 0
vif1.0.100: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0
vif99.3:18446744073709551615 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0
";

    #[test]
    fn reads_vif_and_tap_lines_in_dom0_view() {
        let found = parse(XCP).expect("parses");
        let names: Vec<_> = found
            .iter()
            .map(|g| g.vif.interface_name(g.domid))
            .collect();
        assert_eq!(names, ["vif1.0", "tap2.0", "vif2.0-emu", "vif99.3"]);
        let vif = &found[0].vif;
        assert_eq!(
            (vif.rx_bytes, vif.rx_packets, vif.rx_errors, vif.rx_drops),
            (1216, 17, 1, 2),
            "receive = Dom0 received = the guest sent"
        );
        assert_eq!(
            (vif.tx_bytes, vif.tx_packets, vif.tx_errors, vif.tx_drops),
            (1674, 19, 3, 4)
        );
        assert_eq!(found[1].vif.kind, VifKind::Tap);
        assert_eq!(found[1].vif.tx_drops, 1);
        assert_eq!(found[2].vif.kind, VifKind::Emu);
        assert_eq!(found[3].vif.rx_bytes, u64::MAX, "no space after the colon");
    }

    #[test]
    fn interface_names() {
        assert_eq!(guest_interface("vif3.0"), Some((VifKind::Netback, 3, 0)));
        assert_eq!(guest_interface("tap12.1"), Some((VifKind::Tap, 12, 1)));
        assert_eq!(guest_interface("vif3.2-emu"), Some((VifKind::Emu, 3, 2)));
        for other in [
            "vif3",
            "vif.0",
            "vif3.",
            "vif+3.0",
            "vif3.0.1",
            "tap",
            "tapx.0",
            "eth0",
            "vifa.b",
            "vif3.0-emux",
            "xenbr0",
            "vif99999999999.0",
        ] {
            assert_eq!(guest_interface(other), None, "{other}");
        }
    }

    #[test]
    fn a_broken_guest_line_names_line_and_field() {
        let short = XCP.replace(
            "vif1.0: 1216 17 1 2 0 0 0 0 1674 19 3 4 0 0 0 0",
            "vif1.0: 1 2 3",
        );
        assert_eq!(
            parse(&short),
            Err(NetDevError::FieldCount {
                line: 7,
                interface: "vif1.0".into(),
                found: 3
            })
        );
        let bad = XCP.replace("tap2.0: 500", "tap2.0: -500");
        let error = parse(&bad).expect_err("negative counter");
        assert_eq!(
            error.to_string(),
            "line 8: tap2.0: counter 0 is not an unsigned number: \"-500\""
        );
        // Dom0's own lines are not read: a broken one does not hide the guests.
        let own = XCP.replace("xenbr0: 55555 66", "xenbr0: garbage");
        assert_eq!(parse(&own).expect("parses").len(), 4);
        assert!(matches!(
            parse("nonsense\n"),
            Err(NetDevError::NotNetDev(_))
        ));
        assert_eq!(parse(""), Err(NetDevError::NotNetDev(String::new())));
    }

    #[test]
    fn reads_pid_1_view_then_the_fallback() {
        let root = tempfile::tempdir().expect("tempdir");
        let error = read(root.path()).expect_err("no file");
        assert!(error.to_string().contains("net/dev"), "{error}");
        std::fs::create_dir_all(root.path().join("net")).expect("mkdir");
        std::fs::write(root.path().join("net/dev"), XCP).expect("write");
        assert_eq!(read(root.path()).expect("fallback").len(), 4);
        std::fs::create_dir_all(root.path().join("1/net")).expect("mkdir");
        let pid1 = XCP.replace("vif99.3", "lo2");
        std::fs::write(root.path().join("1/net/dev"), pid1).expect("write");
        assert_eq!(read(root.path()).expect("pid 1").len(), 3, "PID 1 first");
        std::fs::write(root.path().join("1/net/dev"), "junk\n").expect("write");
        let error = read(root.path()).expect_err("junk");
        assert!(error.to_string().contains("1/net/dev"), "{error}");
    }

    /// On an Open vSwitch host libxenstat gives no vifs: every one is added. Where it gives
    /// one (a Linux bridge host), ours replace its counters and its queues are kept.
    #[test]
    fn apply_fills_and_adds() {
        let mut host = Host {
            domains: vec![
                Domain {
                    domid: 1,
                    vifs: vec![Vif {
                        devid: 0,
                        rx_bytes: 5,
                        queues: vec![Default::default()],
                        ..Vif::default()
                    }],
                    ..Domain::default()
                },
                Domain {
                    domid: 2,
                    ..Domain::default()
                },
            ],
            ..Host::default()
        };
        let applied = apply(&mut host, parse(XCP).expect("parses"));
        assert_eq!(applied, 3, "vif99.3 has no domain");
        let vif = &host.domains[0].vifs[0];
        assert_eq!((vif.rx_bytes, vif.queues.len()), (1216, 1));
        let kinds: Vec<_> = host.domains[1].vifs.iter().map(|vif| vif.kind).collect();
        assert_eq!(kinds, [VifKind::Tap, VifKind::Emu]);
    }
}
