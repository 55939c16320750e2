//! The real Xen source: libxenstat (loaded at run time through `xenstat-sys`) copied into a
//! plain [`Host`] snapshot.
//!
//! This and `libxenstore.rs` are the only modules of the crate with `unsafe`. The rules kept
//! here: every C pointer is checked for NULL before use, a NULL skips only the one item it
//! stands for (netdata aborted the whole iteration), the node is freed before `snapshot`
//! returns (RAII), and the handle, which libxenstat does not make thread-safe, sits behind a
//! `Mutex`. No snapshot waits for another: the handle and the xenstore lookup are taken with
//! `try_lock`, and no lock is waited for across xenstore I/O.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::CStr;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use xenstat_sys::xenstat::{
    XenstatDomain, XenstatHandle, XenstatNetwork, XenstatNode, XenstatVbd, XenstatVcpu,
    VBD_TYPE_BLKBACK, VBD_TYPE_QDISK, VBD_TYPE_TAP, VBD_TYPE_VBD3, XENSTAT_ALL, XENSTAT_VBD,
};
use xenstat_sys::Libxenstat as Lib;

use crate::lock::MutexUnpoisoned;
use crate::xen::dom0::xenstore::XenStore;
use crate::xen::model::{Domain, DomainState, Host, Vbd, VbdBackend, Vcpu, Vif, VifKind};
use crate::xen::source::{SourceError, XenSource};

/// A `xenstat_handle`, uninitialised on drop.
struct Handle {
    ptr: NonNull<XenstatHandle>,
    lib: Arc<Lib>,
}

// SAFETY: a xenstat handle holds file descriptors and heap state, nothing tied to the thread
// that created it; `LibXenstat` only touches it under its `Mutex`, one thread at a time.
unsafe impl Send for Handle {}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `xenstat_init` and is released exactly once, here; no node
        // taken from it outlives a `snapshot` call (which borrows the handle).
        unsafe { (self.lib.uninit)(self.ptr.as_ptr()) };
    }
}

/// A `xenstat_node`, freed on drop. Borrows the handle it came from.
struct Node<'h> {
    ptr: NonNull<XenstatNode>,
    lib: &'h Lib,
}

impl Drop for Node<'_> {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `xenstat_get_node` and is freed exactly once; every pointer
        // derived from it (domains, VCPUs, networks, VBDs) was only used inside `copy_host`,
        // which finished before the node is dropped.
        unsafe { (self.lib.free_node)(self.ptr.as_ptr()) };
    }
}

/// Why a snapshot failed while an earlier one is still inside libxenstat.
pub const BUSY_REASON: &str =
    "the previous libxenstat snapshot has not returned yet (is libxenstat hanging?)";

/// Why a snapshot failed while an earlier one is still reading UUIDs from xenstore.
pub const XENSTORE_BUSY_REASON: &str =
    "the previous xenstore UUID lookup has not returned yet (is xenstored hanging?)";

/// The libxenstat source. Cheap to share: `snapshot` takes `&self`.
pub struct LibXenstat {
    lib: Arc<Lib>,
    handle: Mutex<Handle>,
    store: Option<Arc<dyn XenStore>>,
    /// UUIDs already read, by domid, with the name they were read under. A domain keeps its
    /// UUID for its whole life, so a 1,000-domain host costs 1,000 xenstore round trips once,
    /// not at every scrape. Entries of domains that no longer exist are dropped. Held only to
    /// copy in or out, never across xenstore I/O.
    uuids: Mutex<HashMap<u32, (String, String)>>,
    /// Held by the one snapshot reading UUIDs from xenstore, taken with `try_lock`: a read that
    /// hangs (xenstored stuck) parks that one blocking thread, and later snapshots fail at once
    /// instead of queueing behind it, one parked thread per scrape.
    lookup: Mutex<()>,
}

impl std::fmt::Debug for LibXenstat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LibXenstat")
            .field("library", &self.lib.path())
            .field("xenstore", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

impl LibXenstat {
    /// Loads libxenstat (`library`, else the default candidates) and opens a handle.
    ///
    /// Both "no library" and "no hypervisor" (`xenstat_init` returning NULL, as on any machine
    /// with the Xen packages installed but not booted under Xen) are
    /// [`SourceError::Unavailable`] with the reason: never a crash.
    pub fn open(
        library: Option<&Path>,
        store: Option<Arc<dyn XenStore>>,
    ) -> Result<Self, SourceError> {
        let lib = Lib::load(library).map_err(|err| SourceError::Unavailable {
            reason: err.to_string(),
        })?;
        Self::with_library(Arc::new(lib), store)
    }

    /// Opens a handle on an already loaded library.
    pub fn with_library(
        lib: Arc<Lib>,
        store: Option<Arc<dyn XenStore>>,
    ) -> Result<Self, SourceError> {
        // SAFETY: `xenstat_init` takes no arguments and returns an owned handle or NULL.
        let ptr = unsafe { (lib.init)() };
        // Read errno right away, before anything else can overwrite it.
        let errno = std::io::Error::last_os_error();
        let Some(ptr) = NonNull::new(ptr) else {
            return Err(SourceError::Unavailable {
                reason: format!(
                    "{}: xenstat_init failed (is this a Xen Dom0, running as root?): {errno}",
                    lib.path().display()
                ),
            });
        };
        if !lib.missing_optional().is_empty() {
            tracing::info!(
                library = %lib.path().display(),
                missing = ?lib.missing_optional(),
                "libxenstat predates some optional functions; their metrics are left out"
            );
        }
        let handle = Handle {
            ptr,
            lib: Arc::clone(&lib),
        };
        Ok(Self {
            lib,
            handle: Mutex::new(handle),
            store,
            uuids: Mutex::new(HashMap::new()),
            lookup: Mutex::new(()),
        })
    }

    /// Adds xenstore access, for the domains' UUIDs.
    pub fn with_xenstore(mut self, store: Arc<dyn XenStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The loaded library's path.
    pub fn library_path(&self) -> &Path {
        self.lib.path()
    }

    /// Takes a node (what `flags` asks for) under the lock and copies it; the node is freed before the lock is released.
    fn read_host(&self, flags: std::ffi::c_uint) -> Result<Host, SourceError> {
        // Scrapes already share one collection, so the lock is only ever contended when an
        // earlier snapshot outlived its scrape timeout and is still inside libxenstat. Waiting
        // would park one more blocking thread per scrape behind a hung library; failing fast
        // keeps the exporter responsive and the operator sees `collector_success 0`.
        // A panic while holding the lock cannot leave the handle half-updated (we only read
        // through it), so a poisoned lock is still usable.
        let Some(handle) = self.handle.try_lock_unpoisoned() else {
            return Err(SourceError::Failed {
                reason: BUSY_REASON.to_owned(),
            });
        };
        // SAFETY: the handle is live (owned by `handle`) and used by this thread only (lock held).
        let ptr = unsafe { (self.lib.get_node)(handle.ptr.as_ptr(), flags) };
        let errno = std::io::Error::last_os_error();
        let Some(ptr) = NonNull::new(ptr) else {
            return Err(SourceError::Failed {
                reason: format!("xenstat_get_node returned NULL: {errno}"),
            });
        };
        let node = Node {
            ptr,
            lib: &self.lib,
        };
        let host = copy_host(&node);
        drop(node);
        drop(handle);
        Ok(host)
    }

    /// Fills `Domain::uuid` from xenstore `/local/domain/<id>/vm` = `/vm/<uuid>`, reading only
    /// domains not seen before (a new domid, or a domid reused under another name).
    ///
    /// Fails with [`XENSTORE_BUSY_REASON`] when it has domains to look up while another
    /// snapshot's lookup is still in xenstore: serving them without their UUID would change
    /// their `xen_domain_info` series from one scrape to the next.
    fn add_uuids(&self, host: &mut Host) -> Result<(), SourceError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let missing: Vec<usize> = {
            // A poisoned map is just a cache: every entry in it was complete when inserted.
            let mut cache = self.uuids.lock_unpoisoned();
            cache.retain(|domid, _| host.domains.iter().any(|domain| domain.domid == *domid));
            host.domains
                .iter_mut()
                .enumerate()
                .filter_map(|(index, domain)| match cache.get(&domain.domid) {
                    Some((name, uuid)) if *name == domain.name => {
                        domain.uuid = Some(uuid.clone());
                        None
                    }
                    _ => Some(index),
                })
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        // The guard protects no data; a panic under it left nothing half-done.
        let Some(_lookup) = self.lookup.try_lock_unpoisoned() else {
            return Err(SourceError::Failed {
                reason: XENSTORE_BUSY_REASON.to_owned(),
            });
        };
        let mut found = Vec::new();
        for index in missing {
            let domain = &mut host.domains[index];
            let path = format!("/local/domain/{}/vm", domain.domid);
            match store.read(&path) {
                Ok(Some(vm)) => domain.uuid = parse_vm_path(&vm),
                // Dom0 has no `vm` key on many setups; a domain may vanish between the two
                // reads. Not cached: a key that appears later is picked up.
                Ok(None) => {}
                Err(err) => {
                    tracing::debug!(domain = %domain.name, error = %err, "no UUID from xenstore");
                }
            }
            if let Some(uuid) = &domain.uuid {
                found.push((domain.domid, domain.name.clone(), uuid.clone()));
            }
        }
        let mut cache = self.uuids.lock_unpoisoned();
        for (domid, name, uuid) in found {
            cache.insert(domid, (name, uuid));
        }
        Ok(())
    }
}

impl XenSource for LibXenstat {
    fn name(&self) -> &'static str {
        "libxenstat"
    }

    fn describe(&self) -> String {
        format!("libxenstat ({})", self.library_path().display())
    }

    fn snapshot(&self) -> Result<Host, SourceError> {
        let mut host = self.read_host(XENSTAT_ALL)?;
        self.add_uuids(&mut host)?;
        Ok(host)
    }

    /// Without `XENSTAT_VBD`: libxenstat then neither reads blkback's statistics files (which
    /// the `vbd` part reads anyway) nor asks qemu over QMP.
    fn snapshot_without_vbds(&self) -> Option<Result<Host, SourceError>> {
        Some(
            self.read_host(XENSTAT_ALL & !XENSTAT_VBD)
                .and_then(|mut host| self.add_uuids(&mut host).map(|()| host)),
        )
    }
}

/// `/vm/<uuid>` -> `<uuid>`; anything else (a toolstack that stores something different) -> None.
fn parse_vm_path(vm: &str) -> Option<String> {
    let uuid = vm.trim().strip_prefix("/vm/")?;
    let uuid = uuid.split('/').next().unwrap_or_default();
    (!uuid.is_empty()).then(|| uuid.to_owned())
}

/// libxenstat's VBD type number -> backend kind (`tools/libs/stat/xenstat_linux.c`,
/// `xenstat_qmp.c`).
fn backend_kind(vbd_type: u32) -> VbdBackend {
    match vbd_type {
        VBD_TYPE_BLKBACK => VbdBackend::Blkback,
        VBD_TYPE_TAP => VbdBackend::Tap,
        VBD_TYPE_VBD3 => VbdBackend::Tapdisk3,
        // QMP (qdisk) VBDs are the only ones libxenstat creates with type 0.
        VBD_TYPE_QDISK => VbdBackend::Qdisk,
        _ => VbdBackend::Unknown,
    }
}

/// `max_mem` of a domain without a limit: libxenstat stores `(unsigned long long)-1`.
const UNLIMITED_MEMORY: u64 = u64::MAX;

/// Domain ids below `DOMID_FIRST_RESERVED` (0x7FF0): no host has more domains.
const MAX_DOMAINS: u32 = 0x7FF0;
/// More VCPUs, vifs or VBDs than any domain has (Xen caps VCPUs at 4096 per domain).
const MAX_DEVICES: u32 = 4096;

/// A count from C, capped: a library built for another ABI could return garbage, and a huge
/// count must not turn into a huge allocation (an abort) or an endless loop.
fn bounded(count: u32, max: u32, what: &str) -> u32 {
    if count > max {
        tracing::warn!(
            count,
            max,
            what,
            "libxenstat reported an implausible count; capped"
        );
        return max;
    }
    count
}

/// Copies one node into owned data. Everything below the node is borrowed from it and must not
/// escape this function.
fn copy_host(node: &Node<'_>) -> Host {
    let lib = node.lib;
    let n = node.ptr.as_ptr();
    // `n` is a live node (owned by `node`, which outlives this function's borrows); the node
    // accessors below only read fields of it.
    // SAFETY: see above; the version string is owned by the node and copied here.
    let xen_version = unsafe { c_string((lib.node_xen_version)(n)) };
    // SAFETY: see above.
    let (cpus, cpu_hz, total, free, count) = unsafe {
        (
            (lib.node_num_cpus)(n),
            (lib.node_cpu_hz)(n),
            (lib.node_tot_mem)(n),
            (lib.node_free_mem)(n),
            (lib.node_num_domains)(n),
        )
    };
    let count = bounded(count, MAX_DOMAINS, "domains");
    let mut domains = Vec::with_capacity(count as usize);
    for index in 0..count {
        // SAFETY: `n` is live; an index past the end yields NULL, which is checked.
        let d = unsafe { (lib.node_domain_by_index)(n, index) };
        let Some(d) = NonNull::new(d) else { continue };
        if let Some(domain) = copy_domain(lib, d) {
            domains.push(domain);
        }
    }
    // The model promises domid order; libxenstat lists domains in hypervisor order, which is
    // domid order today, but that is not part of its API.
    domains.sort_by_key(|domain| domain.domid);
    Host {
        xen_version,
        cpus,
        cpu_hz,
        memory_total_bytes: total,
        memory_free_bytes: free,
        domains,
    }
}

/// Copies one domain; `None` when it has no name (libxenstat's sign of a dying domain).
fn copy_domain(lib: &Lib, d: NonNull<XenstatDomain>) -> Option<Domain> {
    let d = d.as_ptr();
    // SAFETY: `d` is a non-NULL domain of the live node; the name, if any, is a NUL-terminated
    // string owned by the node, copied before the node is freed.
    let name = unsafe { c_string((lib.domain_name)(d)) }?;
    // SAFETY: `d` is a live domain; the scalar accessors only read its fields.
    let (domid, cpu_ns, cur_mem, max_mem, ssid) = unsafe {
        (
            (lib.domain_id)(d),
            (lib.domain_cpu_ns)(d),
            (lib.domain_cur_mem)(d),
            (lib.domain_max_mem)(d),
            (lib.domain_ssid)(d),
        )
    };
    // SAFETY: as above.
    let state = unsafe {
        DomainState {
            running: (lib.domain_running)(d) != 0,
            blocked: (lib.domain_blocked)(d) != 0,
            paused: (lib.domain_paused)(d) != 0,
            shutdown: (lib.domain_shutdown)(d) != 0,
            crashed: (lib.domain_crashed)(d) != 0,
            dying: (lib.domain_dying)(d) != 0,
        }
    };
    // SAFETY: as above.
    let (num_vcpus, num_networks, num_vbds) = unsafe {
        (
            (lib.domain_num_vcpus)(d),
            (lib.domain_num_networks)(d),
            (lib.domain_num_vbds)(d),
        )
    };

    let num_vcpus = bounded(num_vcpus, MAX_DEVICES, "VCPUs");
    let num_networks = bounded(num_networks, MAX_DEVICES, "networks");
    let num_vbds = bounded(num_vbds, MAX_DEVICES, "VBDs");
    let mut vcpus = Vec::with_capacity(num_vcpus as usize);
    for id in 0..num_vcpus {
        // SAFETY: `d` is live; an index the domain lacks yields NULL, which is checked.
        let Some(v) = NonNull::new(unsafe { (lib.domain_vcpu)(d, id) }) else {
            continue;
        };
        let v: *mut XenstatVcpu = v.as_ptr();
        // SAFETY: `v` is a non-NULL VCPU of the live node.
        let (online, ns) = unsafe { ((lib.vcpu_online)(v), (lib.vcpu_ns)(v)) };
        vcpus.push(Vcpu {
            id,
            online: online != 0,
            cpu_time: Duration::from_nanos(ns),
        });
    }

    let mut vifs = Vec::with_capacity(num_networks as usize);
    for index in 0..num_networks {
        // SAFETY: `d` is live; NULL is checked.
        let Some(net) = NonNull::new(unsafe { (lib.domain_network)(d, index) }) else {
            continue;
        };
        vifs.push(copy_vif(lib, net.as_ptr()));
    }

    let mut vbds = Vec::with_capacity(num_vbds as usize);
    for index in 0..num_vbds {
        // SAFETY: `d` is live; NULL is checked.
        let Some(vbd) = NonNull::new(unsafe { (lib.domain_vbd)(d, index) }) else {
            continue;
        };
        vbds.push(copy_vbd(lib, vbd.as_ptr()));
    }

    Some(Domain {
        domid,
        name,
        uuid: None,
        ssid,
        cpu_time: Duration::from_nanos(cpu_ns),
        vcpus,
        memory_bytes: cur_mem,
        memory_max_bytes: (max_mem != UNLIMITED_MEMORY).then_some(max_mem),
        state,
        vifs,
        vbds,
        memory_target_bytes: None,
        guest_memory_free_bytes: None,
    })
}

fn copy_vif(lib: &Lib, net: *mut XenstatNetwork) -> Vif {
    // SAFETY: `net` is a non-NULL network of the live node; the accessors only read its fields.
    unsafe {
        Vif {
            devid: (lib.network_id)(net),
            rx_bytes: (lib.network_rbytes)(net),
            rx_packets: (lib.network_rpackets)(net),
            rx_errors: (lib.network_rerrs)(net),
            rx_drops: (lib.network_rdrop)(net),
            tx_bytes: (lib.network_tbytes)(net),
            tx_packets: (lib.network_tpackets)(net),
            tx_errors: (lib.network_terrs)(net),
            tx_drops: (lib.network_tdrop)(net),
            kind: VifKind::Netback,
            queues: Vec::new(),
        }
    }
}

fn copy_vbd(lib: &Lib, vbd: *mut XenstatVbd) -> Vbd {
    // SAFETY: `vbd` is a non-NULL VBD of the live node; the accessors only read its fields.
    // `xenstat_vbd_error` is only called when this libxenstat has it (Xen 4.13+).
    unsafe {
        Vbd {
            devno: (lib.vbd_dev)(vbd),
            backend: backend_kind((lib.vbd_type)(vbd)),
            read_requests: (lib.vbd_rd_reqs)(vbd),
            write_requests: (lib.vbd_wr_reqs)(vbd),
            read_sectors: (lib.vbd_rd_sects)(vbd),
            write_sectors: (lib.vbd_wr_sects)(vbd),
            out_of_requests: (lib.vbd_oo_reqs)(vbd),
            flush_requests: None,
            discard_requests: None,
            error: lib.vbd_error.map(|error| error(vbd)),
            ring: None,
            backing: None,
            tapdisk: None,
            io_ring: None,
            storage: None,
        }
    }
}

/// Copies a C string the node owns; NULL -> `None`. Invalid UTF-8 is replaced, not rejected:
/// a domain name is operator input.
///
/// # Safety
/// `ptr` must be NULL or point to a NUL-terminated string that stays valid during the call.
unsafe fn c_string(ptr: *const std::ffi::c_char) -> Option<String> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    Some(
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_path_gives_uuid() {
        assert_eq!(
            parse_vm_path("/vm/a7c1cbd9-b1a3-4f54-9c5c-d1c8e3e35ab6").as_deref(),
            Some("a7c1cbd9-b1a3-4f54-9c5c-d1c8e3e35ab6")
        );
        assert_eq!(parse_vm_path("/vm/"), None);
        assert_eq!(parse_vm_path("something-else"), None);
    }

    #[test]
    fn vbd_types_map_to_backends() {
        assert_eq!(backend_kind(0), VbdBackend::Qdisk);
        assert_eq!(backend_kind(1), VbdBackend::Blkback);
        assert_eq!(backend_kind(2), VbdBackend::Tap);
        assert_eq!(backend_kind(3), VbdBackend::Tapdisk3);
        assert_eq!(backend_kind(99), VbdBackend::Unknown);
    }
}
