//! Guest memory as xenstore has it: the balloon target the toolstack sets
//! (`/local/domain/<id>/memory/target`) and the free memory a guest agent reports
//! (`/local/domain/<id>/data/meminfo_free`), both KiB.
//!
//! `data/` is written by the guest itself: its value is shown, never used for a decision, and a
//! value that is not a number is left out rather than failing anything. Both keys change slowly
//! (the target on a balloon change, the agent's figure about once a minute), so each domain's
//! pair is read once and then again after [`REFRESH`]: a host of 1,000 domains costs about
//! 1,000 × 2 / 30 xenstore reads per second, not 2,000 per scrape.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::xen::dom0::xenstore::{XenStore, XenStoreError};
use crate::xen::model::Host;

/// How long a domain's values are served before they are read again.
pub const REFRESH: Duration = Duration::from_secs(30);

/// One domain's values and when they were read.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    read_at: Instant,
    target: Option<u64>,
    free: Option<u64>,
}

/// Values kept between scrapes, by domid.
#[derive(Debug, Default)]
pub struct MemoryCache {
    entries: HashMap<u32, Entry>,
}

/// A KiB count as xenstore holds it (`"4194304"`) → bytes; anything else → `None`.
pub fn parse_kib(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u64>().ok()?.checked_mul(1024)
}

/// Fills each domain's `memory_target_bytes` and `guest_memory_free_bytes`, reading xenstore
/// only for domains not read within [`REFRESH`] (or whose domid now has another name). Returns
/// the reads that failed (a key that does not exist is not a failure).
pub fn fill(
    store: &dyn XenStore,
    host: &mut Host,
    cache: &mut MemoryCache,
    now: Instant,
) -> Vec<XenStoreError> {
    let mut failures = Vec::new();
    cache
        .entries
        .retain(|domid, _| host.domains.iter().any(|domain| domain.domid == *domid));
    for domain in &mut host.domains {
        let fresh = cache.entries.get(&domain.domid).filter(|entry| {
            entry.name == domain.name && now.saturating_duration_since(entry.read_at) < REFRESH
        });
        let entry = match fresh {
            Some(entry) => entry.clone(),
            None => {
                let base = format!("/local/domain/{}", domain.domid);
                let failed_before = failures.len();
                let mut read = |key: &str| match store.read(&format!("{base}/{key}")) {
                    Ok(value) => value.as_deref().and_then(parse_kib),
                    Err(error) => {
                        failures.push(error);
                        None
                    }
                };
                let entry = Entry {
                    name: domain.name.clone(),
                    read_at: now,
                    target: read("memory/target"),
                    free: read("data/meminfo_free"),
                };
                // A failed read is tried again at the next scrape, not served as absent.
                if failures.len() == failed_before {
                    cache.entries.insert(domain.domid, entry.clone());
                }
                entry
            }
        };
        domain.memory_target_bytes = entry.target;
        domain.guest_memory_free_bytes = entry.free;
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xen::dom0::xenstore::MemoryStore;
    use crate::xen::model::Domain;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A store that counts reads.
    struct Counting(MemoryStore, AtomicUsize);

    impl XenStore for Counting {
        fn read(&self, path: &str) -> Result<Option<String>, XenStoreError> {
            self.1.fetch_add(1, Ordering::Relaxed);
            if path.contains("/66/") {
                return Err(XenStoreError::Read {
                    path: path.to_owned(),
                    reason: "EACCES".to_owned(),
                });
            }
            self.0.read(path)
        }
    }

    fn host(domids: &[u32]) -> Host {
        Host {
            domains: domids
                .iter()
                .map(|&domid| Domain {
                    domid,
                    name: format!("vm{domid}"),
                    ..Domain::default()
                })
                .collect(),
            ..Host::default()
        }
    }

    #[test]
    fn kib_become_bytes_and_guest_garbage_is_left_out() {
        assert_eq!(parse_kib("4194304"), Some(4 << 30));
        assert_eq!(parse_kib(" 12\n"), Some(12_288));
        for bad in ["", "-1", "1e9", "12 KiB", "0x10", "99999999999999999999"] {
            assert_eq!(parse_kib(bad), None, "{bad}");
        }
    }

    #[test]
    fn read_once_per_refresh_and_failures_named() {
        let mut memory = MemoryStore::new();
        memory.insert("/local/domain/1/memory/target", "4194304");
        memory.insert("/local/domain/1/data/meminfo_free", "1048576");
        memory.insert("/local/domain/2/memory/target", "524288");
        memory.insert("/local/domain/2/data/meminfo_free", "lots");
        let store = Counting(memory, AtomicUsize::new(0));
        let mut cache = MemoryCache::default();
        let start = Instant::now();
        let mut first = host(&[1, 2, 66]);
        let failures = fill(&store, &mut first, &mut cache, start);
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert!(failures[0]
            .to_string()
            .contains("/local/domain/66/memory/target"));
        assert_eq!(first.domains[0].memory_target_bytes, Some(4 << 30));
        assert_eq!(first.domains[0].guest_memory_free_bytes, Some(1 << 30));
        assert_eq!(first.domains[1].memory_target_bytes, Some(512 << 20));
        assert_eq!(
            first.domains[1].guest_memory_free_bytes, None,
            "not a number"
        );
        assert_eq!(store.1.load(Ordering::Relaxed), 6);

        let mut second = host(&[1, 2]);
        fill(&store, &mut second, &mut cache, start + REFRESH / 2);
        assert_eq!(store.1.load(Ordering::Relaxed), 6, "served from the cache");
        assert_eq!(second.domains[0].memory_target_bytes, Some(4 << 30));

        let mut later = host(&[1, 2]);
        fill(&store, &mut later, &mut cache, start + REFRESH);
        assert_eq!(store.1.load(Ordering::Relaxed), 10, "read again");
        assert!(
            !cache.entries.contains_key(&66),
            "failed reads are not kept"
        );
    }
}
