//! VBD ring geometry read from xenstore only when it can have changed: kept per backend device
//! and read again when the device is new, was not connected, is another instance (detached and
//! attached again), or xenstore says something under its backend directory changed.
//!
//! Why: geometry is negotiated once per connection, but reading it costs four or five xenstore
//! round trips per VBD, ~16,000 per scrape on a 1,000-guest host. A xenstore watch on Dom0's
//! backend directory (`/local/domain/0/backend`) tells which devices changed: every
//! (re)connection moves the backend's `state` there, so an event for a device's directory
//! drops its entry and nothing else is read (a device not connected yet is cached too: its
//! connection will fire). Events are taken at the start of a scrape without
//! blocking and without a request, so the steady state asks xenstore nothing at all. Only Dom0
//! writes that directory: a guest cannot flood the exporter with events (a watch on the guests'
//! frontend directories would let it).
//!
//! Without a watch (an old xenstored refusing it, a library without `xs_watch`, or the
//! connection lost: said once in the log) a scrape asks xenstore once per domain: the backend
//! `state` of one of its VBDs, in turn, so each device is checked every `k` scrapes in a domain
//! of `k` VBDs. Not seen then: a frontend that disconnects and connects again (a guest
//! kexec'ing into another kernel) entirely between two checks of that device.
//!
//! What neither can see, a device removed and created again under the same name between two
//! scrapes, the sysfs listing shows at no xenstore cost: the device's directory entry is then
//! another inode ([`Instances`]).

use std::collections::HashMap;

use crate::xen::dom0::backend_devices::Instances;
use crate::xen::dom0::rings::vbd_ring;
use crate::xen::dom0::xenstore::{XenStore, XenStoreError};
use crate::xen::model::{Host, VbdBackend, VbdRing};

/// `XenbusStateConnected`: the geometry is negotiated and will not change until it leaves it.
const CONNECTED: &str = "4";

/// The directory watched: every backend device's keys, written only by Dom0.
pub const WATCHED: &str = "/local/domain/0/backend";
/// The token of the watch (one connection may hold other watches).
const TOKEN: &str = "xen_exporter-rings";

/// Whether ring geometry is kept valid by a watch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Watch {
    /// Not tried yet: the first scrape sets it.
    #[default]
    NotSet,
    /// Set; `registered` once xenstored's event for setting it came.
    Set { registered: bool },
    /// Could not be set or was lost: one backend `state` per domain per scrape instead.
    Off,
}

/// One device's geometry as read, and what it was read under.
#[derive(Debug)]
struct Entry {
    ring: VbdRing,
    /// The device's sysfs instance when read (`None`: not listed, or no listing).
    instance: Option<u64>,
    /// The last scrape that saw the device, to drop devices that went away.
    seen: u64,
}

/// Ring geometry per `(domid, devno, backend)`.
#[derive(Debug, Default)]
pub struct RingCache {
    entries: HashMap<(u32, u32, VbdBackend), Entry>,
    /// Scrapes so far: picks the device whose state a domain's scrape checks.
    scrape: u64,
    watch: Watch,
}

/// The backend's xenstore directory of a device (where `vbd_ring` reads the backend limits).
fn backend_dir(domid: u32, devno: u32) -> String {
    format!("/local/domain/0/backend/vbd/{domid}/{devno}")
}

/// Whether the backend reports the device connected. A key that is absent is not connected.
fn connected(store: &dyn XenStore, domid: u32, devno: u32) -> Result<bool, XenStoreError> {
    let state = store.read(&format!("{}/state", backend_dir(domid, devno)))?;
    Ok(state.as_deref().map(str::trim) == Some(CONNECTED))
}

impl RingCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Fills the ring geometry of every blkback and blktap VBD of `host`; `instances` is the
    /// sysfs listing of this scrape when it could be read. Returns one line per VBD whose
    /// geometry could not be read (`<domain> <disk>: <error>`); those VBDs get none.
    pub fn fill(
        &mut self,
        store: &dyn XenStore,
        host: &mut Host,
        instances: Option<&Instances>,
    ) -> Vec<String> {
        self.scrape += 1;
        let scrape = self.scrape;
        let watched = self.take_events(store);
        let mut problems = Vec::new();
        let served = |backend| matches!(backend, VbdBackend::Blkback | VbdBackend::Tap);
        for domain in &mut host.domains {
            let domid = domain.domid;
            let count = domain.vbds.iter().filter(|vbd| served(vbd.backend)).count();
            // The one device of this domain whose backend state is checked in this scrape.
            // None under a watch: its events already said which devices changed.
            let checked = (count > 0 && !watched).then(|| (scrape % count as u64) as usize);
            for (index, vbd) in domain
                .vbds
                .iter_mut()
                .filter(|vbd| served(vbd.backend))
                .enumerate()
            {
                let key = (domid, vbd.devno, vbd.backend);
                let instance =
                    instances.and_then(|listed| listed.get(vbd.backend, domid, vbd.devno));
                let result = if watched {
                    self.watched_ring(store, key, instance, scrape)
                } else {
                    self.ring(store, key, instance, Some(index) == checked, scrape)
                };
                match result {
                    Ok(ring) => vbd.ring = Some(ring),
                    Err(error) => problems.push(format!(
                        "{} {}: {error}",
                        domain.name,
                        crate::xen::dom0::devno::name(vbd.devno)
                    )),
                }
            }
        }
        // Devices (and domains) this scrape did not see are gone: a device that comes back
        // under the same name is read again.
        self.entries.retain(|_, entry| entry.seen == scrape);
        problems
    }

    /// Sets the watch at the first scrape and then applies the events that came since the last
    /// scrape. `true` while the watch keeps the entries valid; `false` (and the log says why,
    /// once) when each domain's state must be checked instead.
    fn take_events(&mut self, store: &dyn XenStore) -> bool {
        if self.watch == Watch::NotSet {
            self.watch = match store.watch(WATCHED, TOKEN) {
                Ok(()) => Watch::Set { registered: false },
                Err(error) => {
                    tracing::warn!(
                        collector = "rings",
                        %error,
                        "no xenstore watch: VBD ring geometry is checked by reading one \
                         backend state per domain per scrape instead"
                    );
                    Watch::Off
                }
            };
        }
        let Watch::Set { registered } = self.watch else {
            return false;
        };
        match store.fired() {
            Ok(paths) => {
                let mut registered = registered;
                for path in paths {
                    // xenstored fires once when the watch is set, for the watched path itself:
                    // nothing changed then (the entries were read after it was set).
                    if !registered && path == WATCHED {
                        registered = true;
                        continue;
                    }
                    self.invalidate(&path);
                }
                self.watch = Watch::Set { registered };
                true
            }
            Err(error) => {
                tracing::warn!(
                    collector = "rings",
                    %error,
                    "xenstore watch lost: VBD ring geometry is read again, then checked by \
                     reading one backend state per domain per scrape"
                );
                // Events may have been missed: nothing cached can be trusted.
                self.entries.clear();
                // Nothing more is taken off the queue: stop it growing. Best effort, as the
                // connection may be what was lost.
                let _ = store.unwatch(WATCHED, TOKEN);
                self.watch = Watch::Off;
                false
            }
        }
    }

    /// Drops what an event at `path` may have changed: `<WATCHED>/<kind>/<domid>/<devno>/...`
    /// drops that device; a shorter path, all the devices it holds.
    fn invalidate(&mut self, path: &str) {
        let Some(rest) = path
            .strip_prefix(WATCHED)
            .and_then(|rest| rest.strip_prefix('/'))
        else {
            // The watched directory itself (removed or written), or a path outside it.
            self.entries.clear();
            return;
        };
        let mut parts = rest.split('/');
        // blkback and blktap devices keep their keys under `vbd` (what `vbd_ring` reads); the
        // other kinds (vif, qdisk, vbd3, console...) hold nothing cached here.
        if parts.next() != Some("vbd") {
            return;
        }
        match (parts.next(), parts.next()) {
            (Some(domid), Some(devno)) => {
                let (Ok(domid), Ok(devno)) = (domid.parse::<u32>(), devno.parse::<u32>()) else {
                    return;
                };
                self.entries
                    .retain(|&(d, n, _), _| (d, n) != (domid, devno));
            }
            (Some(domid), None) => {
                if let Ok(domid) = domid.parse::<u32>() {
                    self.entries.retain(|&(d, _, _), _| d != domid);
                }
            }
            (None, _) => self.entries.clear(),
        }
    }

    /// One device's geometry under the watch: the cached one unless the device is another
    /// instance, else read and cached whatever its state. Any change to come (the frontend's
    /// keys are followed by the backend's `state` moving, a device appearing creates its
    /// backend directory) fires an event that drops the entry.
    fn watched_ring(
        &mut self,
        store: &dyn XenStore,
        key: (u32, u32, VbdBackend),
        instance: Option<u64>,
        scrape: u64,
    ) -> Result<VbdRing, XenStoreError> {
        if let Some(entry) = self.entries.get_mut(&key) {
            if instance.is_none() || entry.instance == instance {
                entry.seen = scrape;
                return Ok(entry.ring.clone());
            }
        }
        let (domid, devno, _) = key;
        let ring = vbd_ring(store, domid, devno)?;
        self.entries.insert(
            key,
            Entry {
                ring: ring.clone(),
                instance,
                seen: scrape,
            },
        );
        Ok(ring)
    }

    /// One device's geometry: the cached one when it is still valid, else read (and cached
    /// when the backend says the device is connected).
    fn ring(
        &mut self,
        store: &dyn XenStore,
        key: (u32, u32, VbdBackend),
        instance: Option<u64>,
        check_state: bool,
        scrape: u64,
    ) -> Result<VbdRing, XenStoreError> {
        let (domid, devno, _) = key;
        if let Some(entry) = self.entries.get_mut(&key) {
            let same_instance = instance.is_none() || entry.instance == instance;
            if same_instance {
                if !check_state || connected(store, domid, devno)? {
                    entry.seen = scrape;
                    return Ok(entry.ring.clone());
                }
                // Caught leaving its connection: serve what is there now, keep nothing.
                self.entries.remove(&key);
                return vbd_ring(store, domid, devno);
            }
            self.entries.remove(&key);
        }
        // The state before the geometry: a device connected now was negotiated before its
        // keys are read, so what is read belongs to this connection.
        let is_connected = connected(store, domid, devno)?;
        let ring = vbd_ring(store, domid, devno)?;
        if is_connected {
            self.entries.insert(
                key,
                Entry {
                    ring: ring.clone(),
                    instance,
                    seen: scrape,
                },
            );
        }
        Ok(ring)
    }

    /// Devices whose geometry is cached.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::xen::dom0::xenstore::MemoryStore;
    use crate::xen::model::{Domain, Vbd};

    /// The watched path and the events not taken yet (`Err`: the watch was lost).
    type WatchState = (String, Result<Vec<String>, ()>);

    /// A store whose keys change between scrapes, counting the requests it answers. With
    /// `watchable`, it keeps watches as xenstored does: an event for the watched path when set,
    /// then one for each write under it.
    #[derive(Default, Clone)]
    struct Counting {
        inner: Arc<Mutex<MemoryStore>>,
        reads: Arc<AtomicUsize>,
        watchable: bool,
        /// The watched path and the events not taken yet; `Err` once the watch is "lost".
        watch: Arc<Mutex<Option<WatchState>>>,
    }

    impl XenStore for Counting {
        fn read(&self, path: &str) -> Result<Option<String>, XenStoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.inner.lock().expect("store").read(path)
        }

        fn watch(&self, path: &str, token: &str) -> Result<(), XenStoreError> {
            if !self.watchable {
                return Err(XenStoreError::Watch {
                    path: path.to_owned(),
                    reason: "EACCES".to_owned(),
                });
            }
            assert_eq!(token, TOKEN);
            self.reads.fetch_add(1, Ordering::SeqCst);
            *self.watch.lock().expect("watch") = Some((path.to_owned(), Ok(vec![path.to_owned()])));
            Ok(())
        }

        fn unwatch(&self, _path: &str, _token: &str) -> Result<(), XenStoreError> {
            *self.watch.lock().expect("watch") = None;
            Ok(())
        }

        fn fired(&self) -> Result<Vec<String>, XenStoreError> {
            match self.watch.lock().expect("watch").as_mut() {
                None => Ok(Vec::new()),
                Some((_, Ok(events))) => Ok(std::mem::take(events)),
                Some((path, Err(()))) => Err(XenStoreError::Watch {
                    path: path.clone(),
                    reason: "connection lost".to_owned(),
                }),
            }
        }
    }

    impl Counting {
        fn watchable() -> Self {
            Self {
                watchable: true,
                ..Self::default()
            }
        }
        fn set(&self, path: &str, value: &str) {
            self.inner.lock().expect("store").insert(path, value);
            if let Some((watched, Ok(events))) = self.watch.lock().expect("watch").as_mut() {
                if path.starts_with(&format!("{watched}/")) {
                    events.push(path.to_owned());
                }
            }
        }
        fn lose_watch(&self) {
            if let Some((_, events)) = self.watch.lock().expect("watch").as_mut() {
                *events = Err(());
            }
        }
        fn take(&self) -> usize {
            self.reads.swap(0, Ordering::SeqCst)
        }
    }

    const DISKS: [u32; 4] = [51712, 51728, 51744, 51760];

    fn connect(store: &Counting, domid: u32, devno: u32, order: u32) {
        store.set(&format!("{}/state", backend_dir(domid, devno)), CONNECTED);
        store.set(
            &format!("/local/domain/{domid}/device/vbd/{devno}/ring-page-order"),
            &order.to_string(),
        );
    }

    fn host(domids: &[u32]) -> Host {
        Host {
            domains: domids
                .iter()
                .map(|&domid| Domain {
                    domid,
                    name: format!("guest{domid}"),
                    vbds: DISKS
                        .iter()
                        .map(|&devno| Vbd {
                            devno,
                            ..Vbd::default()
                        })
                        .collect(),
                    ..Domain::default()
                })
                .collect(),
            ..Host::default()
        }
    }

    fn pages(host: &Host, domid: u32, devno: u32) -> u32 {
        host.domains
            .iter()
            .find(|domain| domain.domid == domid)
            .and_then(|domain| domain.vbds.iter().find(|vbd| vbd.devno == devno))
            .and_then(|vbd| vbd.ring.as_ref())
            .map(|ring| ring.pages)
            .expect("ring filled")
    }

    /// First scrape: every device read in full; then one request per domain per scrape.
    #[test]
    fn steady_state_is_one_request_per_domain() {
        let store = Counting::default();
        for domid in 1..=3 {
            for devno in DISKS {
                connect(&store, domid, devno, 2);
            }
        }
        let mut cache = RingCache::new();
        let mut scraped = host(&[1, 2, 3]);
        assert!(cache.fill(&store, &mut scraped, None).is_empty());
        assert_eq!(store.take(), 3 * 4 * 6, "state + 5 geometry keys per VBD");
        for _ in 0..8 {
            let mut scraped = host(&[1, 2, 3]);
            assert!(cache.fill(&store, &mut scraped, None).is_empty());
            assert_eq!(store.take(), 3, "one state read per domain");
            assert_eq!(pages(&scraped, 2, 51744), 4);
        }
    }

    /// Under a watch the steady state asks xenstore nothing; a reconnect (the frontend's new
    /// keys, the backend's state moving) drops that device alone, whose new geometry the next
    /// scrape serves; a domain's backend directory removed drops its devices.
    #[test]
    fn a_watch_makes_the_steady_state_request_free() {
        let store = Counting::watchable();
        for domid in 1..=3 {
            for devno in DISKS {
                connect(&store, domid, devno, 2);
            }
        }
        let mut cache = RingCache::new();
        assert!(cache.fill(&store, &mut host(&[1, 2, 3]), None).is_empty());
        assert_eq!(
            store.take(),
            1 + 3 * 4 * 5,
            "the watch, then every VBD's geometry"
        );
        for _ in 0..8 {
            let mut scraped = host(&[1, 2, 3]);
            assert!(cache.fill(&store, &mut scraped, None).is_empty());
            assert_eq!(store.take(), 0, "no request in the steady state");
            assert_eq!(pages(&scraped, 2, 51744), 4);
        }
        // Domain 2 reconnects xvdc with 8 pages: the backend goes through its states.
        store.set(&format!("{}/state", backend_dir(2, 51744)), "5");
        store.set("/local/domain/2/device/vbd/51744/ring-page-order", "3");
        connect(&store, 2, 51744, 3);
        let mut scraped = host(&[1, 2, 3]);
        cache.fill(&store, &mut scraped, None);
        assert_eq!(pages(&scraped, 2, 51744), 8);
        assert_eq!(pages(&scraped, 2, 51728), 4);
        assert_eq!(store.take(), 5, "that device alone is read again");
        // Domain 3's backend directory goes (the event for a removal names the directory).
        store.set(&format!("{WATCHED}/vbd/3"), "");
        cache.fill(&store, &mut host(&[1, 2, 3]), None);
        assert_eq!(store.take(), 4 * 5, "domain 3's devices are read again");
        cache.fill(&store, &mut host(&[1, 2, 3]), None);
        assert_eq!(store.take(), 0);
    }

    /// A watch lost (the connection to xenstored broke) may have lost events: everything is
    /// read again, then one backend state per domain per scrape. A store that cannot watch
    /// starts there.
    #[test]
    fn a_lost_watch_falls_back_to_state_checks() {
        let store = Counting::watchable();
        for devno in DISKS {
            connect(&store, 1, devno, 1);
        }
        let mut cache = RingCache::new();
        cache.fill(&store, &mut host(&[1]), None);
        cache.fill(&store, &mut host(&[1]), None);
        store.take();
        store.lose_watch();
        store.set("/local/domain/1/device/vbd/51712/ring-page-order", "2");
        let mut scraped = host(&[1]);
        cache.fill(&store, &mut scraped, None);
        assert_eq!(pages(&scraped, 1, 51712), 4, "read again after the loss");
        assert_eq!(store.take(), 4 * 6);
        cache.fill(&store, &mut host(&[1]), None);
        assert_eq!(store.take(), 1, "one state read per domain");
        assert!(store.watch.lock().expect("watch").is_none(), "unwatched");
    }

    /// A device caught not connected is read again, and its new geometry served.
    #[test]
    fn a_state_change_is_picked_up() {
        let store = Counting::default();
        for devno in DISKS {
            connect(&store, 1, devno, 0);
        }
        let mut cache = RingCache::new();
        cache.fill(&store, &mut host(&[1]), None);
        // The guest reconnects xvdb with 4 pages; the check of xvdb sees it mid-way.
        store.set(&format!("{}/state", backend_dir(1, 51728)), "5");
        store.set("/local/domain/1/device/vbd/51728/ring-page-order", "2");
        let mut seen = Vec::new();
        for _ in 0..DISKS.len() {
            let mut scraped = host(&[1]);
            cache.fill(&store, &mut scraped, None);
            seen.push(pages(&scraped, 1, 51728));
        }
        assert!(seen.contains(&4), "{seen:?}");
        // Not connected: not cached, so read again until it is.
        store.set(&format!("{}/state", backend_dir(1, 51728)), CONNECTED);
        let mut scraped = host(&[1]);
        cache.fill(&store, &mut scraped, None);
        assert_eq!(pages(&scraped, 1, 51728), 4);
        assert_eq!(cache.len(), 4);
    }

    /// A domain destroyed and another created under a new domid, or the same domid reused:
    /// nothing of the old one is served.
    #[test]
    fn a_domid_change_is_picked_up() {
        let store = Counting::default();
        for devno in DISKS {
            connect(&store, 1, devno, 0);
            connect(&store, 2, devno, 1);
        }
        let mut cache = RingCache::new();
        cache.fill(&store, &mut host(&[1]), None);
        let mut scraped = host(&[2]);
        cache.fill(&store, &mut scraped, None);
        assert_eq!(pages(&scraped, 2, 51712), 2);
        assert_eq!(cache.len(), 4, "domain 1's entries dropped");
        // Domain 1's id comes back (a new guest) with other geometry.
        for devno in DISKS {
            connect(&store, 1, devno, 3);
        }
        let mut scraped = host(&[1]);
        cache.fill(&store, &mut scraped, None);
        assert_eq!(pages(&scraped, 1, 51760), 8);
    }

    /// A VBD detached and attached again between two scrapes, connected both times: its
    /// state check cannot tell, the sysfs instance does.
    #[test]
    fn a_recreated_device_is_read_again() {
        let store = Counting::default();
        for devno in DISKS {
            connect(&store, 1, devno, 0);
        }
        let root = tempfile::tempdir().expect("tempdir");
        let devices = root.path().join("bus/xen-backend/devices");
        for devno in DISKS {
            std::fs::create_dir_all(devices.join(format!("vbd-1-{devno}"))).expect("mkdir");
        }
        let mut cache = RingCache::new();
        let listed = crate::xen::dom0::backend_devices::list(root.path()).expect("list");
        cache.fill(&store, &mut host(&[1]), Some(&listed));
        store.take();
        // xvdd re-created with 2 pages; its state is connected again at once.
        let new = devices.join("new");
        std::fs::create_dir(&new).expect("mkdir");
        std::fs::remove_dir(devices.join("vbd-1-51760")).expect("remove");
        std::fs::rename(&new, devices.join("vbd-1-51760")).expect("rename");
        connect(&store, 1, 51760, 1);
        let listed = crate::xen::dom0::backend_devices::list(root.path()).expect("list");
        let mut scraped = host(&[1]);
        cache.fill(&store, &mut scraped, Some(&listed));
        assert_eq!(pages(&scraped, 1, 51760), 2);
        assert_eq!(pages(&scraped, 1, 51712), 1);
        assert!(
            store.take() <= 1 + 6,
            "the checked device and the re-created one"
        );
    }
}
