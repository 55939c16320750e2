//! `xenstat.h` of Xen 4.17 (Debian bookworm `libxen-dev` 4.17.7): opaque handles, function
//! pointer types and the loader for `libxenstat`.

use std::ffi::{c_char, c_long, c_uint, c_ulonglong};
use std::marker::{PhantomData, PhantomPinned};
use std::path::Path;

use crate::load::{library, open_first, LoadError};

macro_rules! opaque {
    ($($(#[$meta:meta])* $name:ident),* $(,)?) => {
        $(
            $(#[$meta])*
            #[repr(C)]
            pub struct $name {
                _data: [u8; 0],
                // Not Send, not Sync, not Unpin: only ever used behind a raw pointer.
                _marker: PhantomData<(*mut u8, PhantomPinned)>,
            }
        )*
    };
}

opaque!(
    /// `xenstat_handle`: hypervisor and xenstore connections; not thread-safe.
    XenstatHandle,
    /// `xenstat_node`: one snapshot; owns every domain, VCPU, network and VBD below it.
    XenstatNode,
    /// `xenstat_domain`
    XenstatDomain,
    /// `xenstat_vcpu`
    XenstatVcpu,
    /// `xenstat_network`
    XenstatNetwork,
    /// `xenstat_vbd`
    XenstatVbd,
);

/// `XENSTAT_VCPU`: collect per-VCPU data.
pub const XENSTAT_VCPU: c_uint = 0x1;
/// `XENSTAT_NETWORK`: collect network interfaces.
pub const XENSTAT_NETWORK: c_uint = 0x2;
/// `XENSTAT_XEN_VERSION`: collect the hypervisor version string.
pub const XENSTAT_XEN_VERSION: c_uint = 0x4;
/// `XENSTAT_VBD`: collect virtual block devices.
pub const XENSTAT_VBD: c_uint = 0x8;
/// `XENSTAT_ALL`
pub const XENSTAT_ALL: c_uint = XENSTAT_VCPU | XENSTAT_NETWORK | XENSTAT_XEN_VERSION | XENSTAT_VBD;

/// `xenstat_vbd_type` value of a VBD served through QEMU's QMP (qdisk): xentop's "Unidentified".
pub const VBD_TYPE_QDISK: c_uint = 0;
/// `xenstat_vbd_type` value of a kernel blkback VBD (`vbd-<domid>-<dev>` in sysfs).
pub const VBD_TYPE_BLKBACK: c_uint = 1;
/// `xenstat_vbd_type` value of a blktap VBD (`tap-<domid>-<dev>`).
pub const VBD_TYPE_TAP: c_uint = 2;
/// `XENSTAT_VBD_TYPE_VBD3` (Xen 4.19+): tapdisk3.
pub const VBD_TYPE_VBD3: c_uint = 3;

/// `xenstat_handle *xenstat_init(void);` NULL on failure (e.g. no hypervisor).
pub type InitFn = unsafe extern "C" fn() -> *mut XenstatHandle;
/// `void xenstat_uninit(xenstat_handle *handle);`
pub type UninitFn = unsafe extern "C" fn(handle: *mut XenstatHandle);
/// `xenstat_node *xenstat_get_node(xenstat_handle *handle, unsigned int flags);`
pub type GetNodeFn =
    unsafe extern "C" fn(handle: *mut XenstatHandle, flags: c_uint) -> *mut XenstatNode;
/// `void xenstat_free_node(xenstat_node *node);`
pub type FreeNodeFn = unsafe extern "C" fn(node: *mut XenstatNode);
/// `xenstat_domain *xenstat_node_domain(xenstat_node *node, unsigned int domid);` and
/// `xenstat_domain *xenstat_node_domain_by_index(xenstat_node *node, unsigned index);`
pub type NodeDomainFn =
    unsafe extern "C" fn(node: *mut XenstatNode, domid_or_index: c_uint) -> *mut XenstatDomain;
/// `const char *xenstat_node_xen_version(xenstat_node *node);`
pub type NodeXenVersionFn = unsafe extern "C" fn(node: *mut XenstatNode) -> *const c_char;
/// `unsigned long long xenstat_node_{tot_mem,free_mem,cpu_hz}(xenstat_node *node);`
pub type NodeU64Fn = unsafe extern "C" fn(node: *mut XenstatNode) -> c_ulonglong;
/// `long xenstat_node_freeable_mb(xenstat_node *node);`
pub type NodeFreeableMbFn = unsafe extern "C" fn(node: *mut XenstatNode) -> c_long;
/// `unsigned int xenstat_node_{num_domains,num_cpus}(xenstat_node *node);`
pub type NodeUintFn = unsafe extern "C" fn(node: *mut XenstatNode) -> c_uint;
/// `unsigned xenstat_domain_id(xenstat_domain *)`, `unsigned int xenstat_domain_{num_vcpus,ssid,
/// dying,crashed,shutdown,paused,blocked,running,num_networks,num_vbds}(xenstat_domain *)`
pub type DomainUintFn = unsafe extern "C" fn(domain: *mut XenstatDomain) -> c_uint;
/// `char *xenstat_domain_name(xenstat_domain *domain);`
pub type DomainNameFn = unsafe extern "C" fn(domain: *mut XenstatDomain) -> *mut c_char;
/// `unsigned long long xenstat_domain_{cpu_ns,cur_mem,max_mem}(xenstat_domain *domain);`
pub type DomainU64Fn = unsafe extern "C" fn(domain: *mut XenstatDomain) -> c_ulonglong;
/// `xenstat_vcpu *xenstat_domain_vcpu(xenstat_domain *domain, unsigned int vcpu);`
pub type DomainVcpuFn =
    unsafe extern "C" fn(domain: *mut XenstatDomain, vcpu: c_uint) -> *mut XenstatVcpu;
/// `xenstat_network *xenstat_domain_network(xenstat_domain *domain, unsigned int network);`
pub type DomainNetworkFn =
    unsafe extern "C" fn(domain: *mut XenstatDomain, network: c_uint) -> *mut XenstatNetwork;
/// `xenstat_vbd *xenstat_domain_vbd(xenstat_domain *domain, unsigned int vbd);`
pub type DomainVbdFn =
    unsafe extern "C" fn(domain: *mut XenstatDomain, vbd: c_uint) -> *mut XenstatVbd;
/// `unsigned int xenstat_vcpu_online(xenstat_vcpu *vcpu);`
pub type VcpuUintFn = unsafe extern "C" fn(vcpu: *mut XenstatVcpu) -> c_uint;
/// `unsigned long long xenstat_vcpu_ns(xenstat_vcpu *vcpu);`
pub type VcpuU64Fn = unsafe extern "C" fn(vcpu: *mut XenstatVcpu) -> c_ulonglong;
/// `unsigned int xenstat_network_id(xenstat_network *network);`
pub type NetworkUintFn = unsafe extern "C" fn(network: *mut XenstatNetwork) -> c_uint;
/// `unsigned long long xenstat_network_{r,t}{bytes,packets,errs,drop}(xenstat_network *);`
pub type NetworkU64Fn = unsafe extern "C" fn(network: *mut XenstatNetwork) -> c_ulonglong;
/// `unsigned int xenstat_vbd_{type,dev}(xenstat_vbd *vbd);`
pub type VbdUintFn = unsafe extern "C" fn(vbd: *mut XenstatVbd) -> c_uint;
/// `unsigned long long xenstat_vbd_{oo,rd,wr}_reqs / {rd,wr}_sects(xenstat_vbd *vbd);`
pub type VbdU64Fn = unsafe extern "C" fn(vbd: *mut XenstatVbd) -> c_ulonglong;
/// `bool xenstat_vbd_error(xenstat_vbd *vbd);` (Xen 4.13+)
pub type VbdErrorFn = unsafe extern "C" fn(vbd: *mut XenstatVbd) -> bool;

library! {
    /// libxenstat, loaded at run time. Every field is one C function of `xenstat.h`.
    pub struct Libxenstat;
    required {
        init: InitFn = "xenstat_init";
        uninit: UninitFn = "xenstat_uninit";
        get_node: GetNodeFn = "xenstat_get_node";
        free_node: FreeNodeFn = "xenstat_free_node";
        node_domain: NodeDomainFn = "xenstat_node_domain";
        node_domain_by_index: NodeDomainFn = "xenstat_node_domain_by_index";
        node_xen_version: NodeXenVersionFn = "xenstat_node_xen_version";
        node_tot_mem: NodeU64Fn = "xenstat_node_tot_mem";
        node_free_mem: NodeU64Fn = "xenstat_node_free_mem";
        node_freeable_mb: NodeFreeableMbFn = "xenstat_node_freeable_mb";
        node_num_domains: NodeUintFn = "xenstat_node_num_domains";
        node_num_cpus: NodeUintFn = "xenstat_node_num_cpus";
        node_cpu_hz: NodeU64Fn = "xenstat_node_cpu_hz";
        domain_id: DomainUintFn = "xenstat_domain_id";
        domain_name: DomainNameFn = "xenstat_domain_name";
        domain_cpu_ns: DomainU64Fn = "xenstat_domain_cpu_ns";
        domain_num_vcpus: DomainUintFn = "xenstat_domain_num_vcpus";
        domain_vcpu: DomainVcpuFn = "xenstat_domain_vcpu";
        domain_cur_mem: DomainU64Fn = "xenstat_domain_cur_mem";
        domain_max_mem: DomainU64Fn = "xenstat_domain_max_mem";
        domain_ssid: DomainUintFn = "xenstat_domain_ssid";
        domain_dying: DomainUintFn = "xenstat_domain_dying";
        domain_crashed: DomainUintFn = "xenstat_domain_crashed";
        domain_shutdown: DomainUintFn = "xenstat_domain_shutdown";
        domain_paused: DomainUintFn = "xenstat_domain_paused";
        domain_blocked: DomainUintFn = "xenstat_domain_blocked";
        domain_running: DomainUintFn = "xenstat_domain_running";
        domain_num_networks: DomainUintFn = "xenstat_domain_num_networks";
        domain_network: DomainNetworkFn = "xenstat_domain_network";
        domain_num_vbds: DomainUintFn = "xenstat_domain_num_vbds";
        domain_vbd: DomainVbdFn = "xenstat_domain_vbd";
        vcpu_online: VcpuUintFn = "xenstat_vcpu_online";
        vcpu_ns: VcpuU64Fn = "xenstat_vcpu_ns";
        network_id: NetworkUintFn = "xenstat_network_id";
        network_rbytes: NetworkU64Fn = "xenstat_network_rbytes";
        network_rpackets: NetworkU64Fn = "xenstat_network_rpackets";
        network_rerrs: NetworkU64Fn = "xenstat_network_rerrs";
        network_rdrop: NetworkU64Fn = "xenstat_network_rdrop";
        network_tbytes: NetworkU64Fn = "xenstat_network_tbytes";
        network_tpackets: NetworkU64Fn = "xenstat_network_tpackets";
        network_terrs: NetworkU64Fn = "xenstat_network_terrs";
        network_tdrop: NetworkU64Fn = "xenstat_network_tdrop";
        vbd_type: VbdUintFn = "xenstat_vbd_type";
        vbd_dev: VbdUintFn = "xenstat_vbd_dev";
        vbd_oo_reqs: VbdU64Fn = "xenstat_vbd_oo_reqs";
        vbd_rd_reqs: VbdU64Fn = "xenstat_vbd_rd_reqs";
        vbd_wr_reqs: VbdU64Fn = "xenstat_vbd_wr_reqs";
        vbd_rd_sects: VbdU64Fn = "xenstat_vbd_rd_sects";
        vbd_wr_sects: VbdU64Fn = "xenstat_vbd_wr_sects";
    }
    optional {
        /// Added in Xen 4.13 (commit 91c3e3dc91).
        vbd_error: VbdErrorFn = "xenstat_vbd_error";
    }
}

/// Highest 4.x minor release tried by soname (`libxenstat.so.4.<minor>`), newest first.
const NEWEST_MINOR: u32 = 30;

impl Libxenstat {
    /// The names tried when no explicit path is given: the development symlink, then the
    /// release sonames newest first (the soname changes with every Xen release), then the
    /// pre-4.x style `libxenstat.so.0`.
    pub fn default_candidates() -> Vec<String> {
        let mut names = Vec::with_capacity(NEWEST_MINOR as usize + 3);
        names.push("libxenstat.so".to_owned());
        names.extend(
            (0..=NEWEST_MINOR)
                .rev()
                .map(|minor| format!("libxenstat.so.4.{minor}")),
        );
        names.push("libxenstat.so.0".to_owned());
        names
    }

    /// Loads `explicit` if given, else the first of [`Self::default_candidates`] that opens.
    pub fn load(explicit: Option<&Path>) -> Result<Self, LoadError> {
        let (library, path) = open_first("libxenstat", explicit, &Self::default_candidates())?;
        Self::from_library(library, path)
    }

    /// Loads the first of `candidates` that opens (file paths or names for the loader's search).
    pub fn load_first(candidates: &[String]) -> Result<Self, LoadError> {
        let (library, path) = open_first("libxenstat", None, candidates)?;
        Self::from_library(library, path)
    }
}
