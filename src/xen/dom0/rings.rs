//! Ring geometry from xenstore: VBD rings/pages negotiated by blkfront/blkback, vif queue counts.
//!
//! blkback publishes no ring occupancy in sysfs; only the negotiated geometry is observable.

use crate::xen::dom0::xenstore::{XenStore, XenStoreError};
use crate::xen::model::VbdRing;

fn read_u32(store: &dyn XenStore, path: &str) -> Result<Option<u32>, XenStoreError> {
    Ok(store.read(path)?.and_then(|v| v.trim().parse().ok()))
}

/// Geometry of VBD `devno` of domain `domid` (frontend values, backend limits from Dom0's backend dir).
pub fn vbd_ring(store: &dyn XenStore, domid: u32, devno: u32) -> Result<VbdRing, XenStoreError> {
    let fe = format!("/local/domain/{domid}/device/vbd/{devno}");
    let be = format!("/local/domain/0/backend/vbd/{domid}/{devno}");
    let order = read_u32(store, &format!("{fe}/ring-page-order"))?.unwrap_or(0);
    let max_order = read_u32(store, &format!("{be}/max-ring-page-order"))?;
    Ok(VbdRing {
        queues: read_u32(store, &format!("{fe}/multi-queue-num-queues"))?.unwrap_or(1),
        pages: 1u32.checked_shl(order).unwrap_or(0),
        max_pages: max_order.and_then(|o| 1u32.checked_shl(o)),
        max_queues: read_u32(store, &format!("{be}/multi-queue-max-queues"))?,
        // Read with the geometry so one cached read per VBD serves both.
        physical_device: store
            .read(&format!("{be}/physical-device"))?
            .as_deref()
            .and_then(crate::xen::dom0::blockdev::parse_physical_device),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xen::dom0::xenstore::MemoryStore;

    #[test]
    fn ringorder2_capture() {
        let text = [
            include_str!("../../../tests/fixtures/xenstore/ringorder2/20-xenstore-backend-vbd.txt"),
            include_str!(
                "../../../tests/fixtures/xenstore/ringorder2/22-xenstore-frontend-device.txt"
            ),
        ]
        .join("\n");
        let store = MemoryStore::parse_ls_f(&text);
        let r = vbd_ring(&store, 1, 51712).expect("read");
        assert_eq!(
            (r.queues, r.pages, r.max_pages, r.max_queues),
            (2, 4, Some(16), Some(2))
        );
        assert_eq!(r.capacity_requests(), 256);
        assert_eq!(r.physical_device, Some((7, 0)));
        let absent = vbd_ring(&store, 7, 1).expect("absent");
        assert_eq!((absent.queues, absent.physical_device), (1, None));
    }
}

/// Whether blkback's `log_stats` module parameter is on (`<sysfs>/module/xen_blkback/parameters/log_stats`).
///
/// When it is non-zero blkback logs and then zeroes its per-VBD counters every 10 s, so
/// `xen_vbd_out_of_requests_total` keeps resetting and VBD_OO rates become unreliable; the caller
/// should warn once and expose the flag. `None` when blkback is not loaded or the file is unreadable.
pub fn blkback_log_stats(sysfs: &std::path::Path) -> Option<bool> {
    let path = sysfs.join("module/xen_blkback/parameters/log_stats");
    let text = std::fs::read_to_string(path).ok()?;
    let t = text.trim();
    // bool params read as Y/N, int params as a number.
    Some(!(t == "0" || t.eq_ignore_ascii_case("n")))
}

#[cfg(test)]
mod log_stats_tests {
    use super::blkback_log_stats;

    #[test]
    fn reads_log_stats_param() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert_eq!(blkback_log_stats(tmp.path()), None);
        let dir = tmp.path().join("module/xen_blkback/parameters");
        std::fs::create_dir_all(&dir).expect("mkdir");
        for (v, want) in [("0\n", false), ("N\n", false), ("1\n", true), ("Y\n", true)] {
            std::fs::write(dir.join("log_stats"), v).expect("write");
            assert_eq!(blkback_log_stats(tmp.path()), Some(want), "{v:?}");
        }
    }
}
