//! The libxenstore wrapper through the real Debian libxenstore, talking to a small xenstored
//! stand-in on a Unix socket (`XENSTORED_PATH`) that speaks the xenstore wire protocol
//! (`xen/io/xs_wire.h`) and serves keys from the lab capture. Checks reads, directories,
//! absent keys, watches, and that the wrapper only ever sends requests that write nothing.

mod common;
#[path = "fake-libxenstat/fake.rs"]
mod fake;

use std::sync::Arc;

use common::xenstored::{StandIn, XS_DIRECTORY, XS_READ, XS_UNWATCH, XS_WATCH};
use xen_exporter::testing::LibXenStore;
use xen_exporter::testing::{open_source, SourceKind};
use xen_exporter::testing::{MemoryStore, XenStore};
use xenstat_sys::Libxenstore;

/// Keys from `23-xenstore-domain.txt` of the default-run capture.
const CAPTURED: &str = r#"/local/domain/1/name = "labdomu"
/local/domain/1/domid = "1"
/local/domain/1/vm = "/vm/a7c1cbd9-b1a3-4f54-9c5c-d1c8e3e35ab6"
/local/domain/1/memory/static-max = "131072"
/local/domain/1/memory/target = "131072"
/local/domain/1/cpu/0/availability = "online"
/local/domain/1/cpu/1/availability = "online"
/local/domain/1/console/limit = "1048576"
"#;

// One test function: it sets XENSTORED_PATH for the whole process before libxenstore reads it.
#[test]
fn reads_and_lists_keys_through_the_real_libxenstore() {
    let test = "reads_and_lists_keys_through_the_real_libxenstore";
    if let Err(err) = Libxenstore::load(None) {
        common::skip(test, &format!("install libxen-dev: {err}"));
        return;
    }
    let standin = StandIn::start(MemoryStore::parse_ls_f(CAPTURED));
    let seen = Arc::clone(&standin.seen);
    std::env::set_var("XENSTORED_PATH", standin.socket());

    let store = LibXenStore::open(None).expect("xs_open on the stand-in socket");
    assert_eq!(
        store.read("/local/domain/1/vm").expect("read").as_deref(),
        Some("/vm/a7c1cbd9-b1a3-4f54-9c5c-d1c8e3e35ab6")
    );
    assert_eq!(
        store.read("/local/domain/1/name").expect("read").as_deref(),
        Some("labdomu")
    );
    assert_eq!(
        store
            .read("/local/domain/1/nonexistent")
            .expect("absent is Ok"),
        None
    );
    assert!(
        store.read("/bad\0path").is_err(),
        "interior NUL is an error, not a panic"
    );

    // Concurrent readers share the handle safely.
    let store = Arc::new(store);
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let value = store.read("/local/domain/1/memory/target").expect("read");
                    assert_eq!(value.as_deref(), Some("131072"));
                }
            })
        })
        .collect();
    for reader in readers {
        reader.join().expect("reader thread");
    }

    // Every request was answered before its call returned: the record is complete.
    drop(store);
    let seen = seen.lock().expect("seen");
    assert!(
        seen.iter()
            .all(|kind| *kind == XS_READ || *kind == XS_DIRECTORY),
        "only read requests may be sent: {seen:?}"
    );
    assert_eq!(
        seen.iter().filter(|kind| **kind == XS_READ).count(),
        3 + 200
    );
    drop(seen);

    // A watch through the real library: the event for setting it, then one per write or
    // removal under the watched path, taken without blocking; none for a path elsewhere.
    let store = LibXenStore::open(None).expect("xs_open for the watch");
    assert_eq!(store.fired().expect("no watch yet"), Vec::<String>::new());
    store
        .watch("/local/domain/0/backend", "tok")
        .expect("xs_watch on the stand-in");
    let fired = |wanted: usize| {
        // libxenstore's reader thread queues events as they arrive: wait for them, boundedly.
        let mut paths = Vec::new();
        for _ in 0..200 {
            paths.extend(store.fired().expect("events"));
            if paths.len() >= wanted {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        paths
    };
    assert_eq!(fired(1), ["/local/domain/0/backend"]);
    standin.write("/local/domain/0/backend/vbd/1/51712/state", "4");
    standin.write("/local/domain/1/device/vbd/51712/state", "4");
    standin.remove("/local/domain/0/backend/vbd/1");
    assert_eq!(
        fired(2),
        [
            "/local/domain/0/backend/vbd/1/51712/state",
            "/local/domain/0/backend/vbd/1"
        ]
    );
    assert_eq!(store.fired().expect("none queued"), Vec::<String>::new());
    assert_eq!(standin.watches(), 1);
    store
        .unwatch("/local/domain/0/backend", "tok")
        .expect("xs_unwatch");
    assert_eq!(standin.watches(), 0);
    standin.write("/local/domain/0/backend/vbd/2/51712/state", "4");
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(
        store.fired().expect("none after unwatch"),
        Vec::<String>::new()
    );
    drop(store);
    let seen = standin.seen.lock().expect("seen");
    assert_eq!(
        (
            seen.iter().filter(|kind| **kind == XS_WATCH).count(),
            seen.iter().filter(|kind| **kind == XS_UNWATCH).count()
        ),
        (1, 1)
    );
    drop(seen);

    // The source selection wires xenstore in: libxenstat (the fake, through dlopen) gives the
    // domains, libxenstore (the real one, through the stand-in daemon) their UUIDs.
    let lib = fake::build(&[]);
    let source = open_source(SourceKind::Libxenstat, Some(&lib.path), || {
        panic!("simulated not wanted")
    })
    .expect("libxenstat source");
    let host = source.snapshot().expect("snapshot");
    assert_eq!(host.domains[0].uuid, None);
    assert_eq!(
        host.domains[1].uuid.as_deref(),
        Some("a7c1cbd9-b1a3-4f54-9c5c-d1c8e3e35ab6")
    );
}
