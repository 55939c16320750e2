//! The real Debian libxenstat and libxenstore (`libxen-dev`): every declared symbol resolves, and
//! without a hypervisor `xenstat_init` fails cleanly (`Unavailable`), never a crash.

use std::path::Path;

use netsim::skip;
use xen_exporter::testing::LibXenStore;
use xen_exporter::testing::LibXenstat;
use xen_exporter::testing::SourceError;
use xen_exporter::testing::XenStoreError;
use xen_exporter::testing::{open_source, SourceKind};
use xenstat_sys::{Libxenstat, Libxenstore};

/// Running under Xen (Dom0): then `xenstat_init` is expected to succeed instead.
fn under_xen() -> bool {
    std::fs::read_to_string("/sys/hypervisor/type").is_ok_and(|t| t.trim() == "xen")
        || Path::new("/proc/xen/capabilities").exists()
}

fn real_libxenstat(test: &str) -> Option<Libxenstat> {
    match Libxenstat::load(None) {
        Ok(lib) => Some(lib),
        Err(err) => {
            skip(test, &format!("install libxen-dev: {err}"));
            None
        }
    }
}

#[test]
fn every_declared_xenstat_symbol_resolves_in_the_real_library() {
    let Some(lib) = real_libxenstat("every_declared_xenstat_symbol_resolves_in_the_real_library")
    else {
        return;
    };
    // Loading succeeded, so every required symbol resolved; the optional one must too (4.13+).
    assert_eq!(
        lib.missing_optional(),
        Vec::<&str>::new(),
        "{}",
        lib.path().display()
    );
    assert_eq!(Libxenstat::REQUIRED_SYMBOLS.len(), 49);
    assert_eq!(Libxenstat::OPTIONAL_SYMBOLS, ["xenstat_vbd_error"]);
    // The same library through its versioned soname, as on a Dom0 without the -dev package.
    let versioned: Vec<String> = Libxenstat::default_candidates()
        .into_iter()
        .filter(|name| name.starts_with("libxenstat.so.4."))
        .collect();
    let by_soname = Libxenstat::load_first(&versioned).expect("a libxenstat.so.4.NN soname");
    assert!(by_soname
        .path()
        .to_string_lossy()
        .starts_with("libxenstat.so.4."));
    assert!(by_soname.missing_optional().is_empty());
}

#[test]
fn every_declared_xenstore_symbol_resolves_in_the_real_library() {
    match Libxenstore::load(None) {
        Ok(lib) => {
            assert_eq!(lib.path(), Path::new("libxenstore.so.4"));
            assert_eq!(
                Libxenstore::REQUIRED_SYMBOLS,
                ["xs_open", "xs_close", "xs_read", "xs_directory"]
            );
            assert_eq!(
                Libxenstore::OPTIONAL_SYMBOLS,
                ["xs_watch", "xs_unwatch", "xs_check_watch"]
            );
            assert!(
                lib.missing_optional().is_empty(),
                "Debian's libxenstore has the watch calls: {:?}",
                lib.missing_optional()
            );
        }
        Err(err) => skip(
            "every_declared_xenstore_symbol_resolves_in_the_real_library",
            &format!("install libxen-dev: {err}"),
        ),
    }
}

#[test]
fn real_xenstat_init_without_a_hypervisor_is_unavailable() {
    let test = "real_xenstat_init_without_a_hypervisor_is_unavailable";
    if real_libxenstat(test).is_none() {
        return;
    }
    if under_xen() {
        skip(
            test,
            "this machine runs under Xen: xenstat_init may succeed",
        );
        return;
    }
    match LibXenstat::open(None, None) {
        Err(SourceError::Unavailable { reason }) => {
            assert!(reason.contains("xenstat_init failed"), "{reason}");
        }
        Err(other) => panic!("expected Unavailable, got {other}"),
        Ok(source) => panic!("xenstat_init succeeded without Xen: {source:?}"),
    }
    // Through the selection, as the exporter starts with --xen.source=auto.
    let result = open_source(SourceKind::Auto, None, || {
        panic!("auto never picks simulated")
    });
    match result {
        Err(SourceError::Unavailable { reason }) => {
            assert!(
                reason.contains("libxenstat.so"),
                "names the library: {reason}"
            )
        }
        Err(other) => panic!("expected Unavailable, got {other}"),
        Ok(source) => panic!("expected Unavailable, got {}", source.name()),
    }
}

#[test]
fn real_xs_open_without_xenstored_is_unavailable() {
    let test = "real_xs_open_without_xenstored_is_unavailable";
    if Libxenstore::load(None).is_err() {
        skip(test, "install libxen-dev");
        return;
    }
    if under_xen() || Path::new("/var/run/xenstored/socket").exists() {
        skip(test, "xenstored may be running here");
        return;
    }
    match LibXenStore::open(None) {
        Err(XenStoreError::Unavailable { reason }) => {
            assert!(reason.contains("xs_open failed"), "{reason}")
        }
        Err(other) => panic!("expected Unavailable, got {other}"),
        Ok(store) => panic!("xs_open succeeded without xenstored: {store:?}"),
    }
}
