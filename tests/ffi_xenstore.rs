//! The libxenstore wrapper through the real Debian libxenstore, talking to a small xenstored
//! stand-in on a Unix socket (`XENSTORED_PATH`) that speaks the xenstore wire protocol
//! (`xen/io/xs_wire.h`) and serves keys from the lab capture. Checks reads, directories,
//! absent keys, and that the wrapper only ever sends read requests.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex};

#[path = "fake-libxenstat/fake.rs"]
mod fake;

use xen_exporter::xen::libxenstore::LibXenStore;
use xen_exporter::xen::select::{open_source, SourceKind};
use xen_exporter::xen::xenstore::{MemoryStore, XenStore};
use xenstat_sys::Libxenstore;

const XS_DIRECTORY: u32 = 1;
const XS_READ: u32 = 2;
const XS_ERROR: u32 = 16;

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

fn skip(test: &str, reason: &str) {
    if std::env::var("XE_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{test} cannot be skipped under XE_REQUIRE_PRIVILEGED=1: {reason}");
    }
    println!("SKIP {test}: {reason}");
}

fn u32_at(bytes: &[u8], index: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[index * 4..index * 4 + 4]);
    u32::from_ne_bytes(word)
}

fn reply(stream: &mut UnixStream, kind: u32, req_id: u32, tx_id: u32, body: &[u8]) {
    let mut message = Vec::with_capacity(16 + body.len());
    for word in [kind, req_id, tx_id, body.len() as u32] {
        message.extend_from_slice(&word.to_ne_bytes());
    }
    message.extend_from_slice(body);
    stream.write_all(&message).expect("reply to libxenstore");
}

/// Serves one connection until the client closes it; records every request type.
fn serve(mut stream: UnixStream, store: &MemoryStore, seen: &Mutex<Vec<u32>>) {
    loop {
        let mut header = [0u8; 16];
        if stream.read_exact(&mut header).is_err() {
            return; // xs_close
        }
        let (kind, req_id, tx_id, len) = (
            u32_at(&header, 0),
            u32_at(&header, 1),
            u32_at(&header, 2),
            u32_at(&header, 3),
        );
        let mut body = vec![0u8; len as usize];
        stream.read_exact(&mut body).expect("request body");
        seen.lock().expect("seen").push(kind);
        let path = String::from_utf8_lossy(body.split(|b| *b == 0).next().unwrap_or_default())
            .into_owned();
        match kind {
            XS_READ => match store.read(&path).expect("memory store") {
                Some(value) => reply(&mut stream, XS_READ, req_id, tx_id, value.as_bytes()),
                None => reply(&mut stream, XS_ERROR, req_id, tx_id, b"ENOENT\0"),
            },
            XS_DIRECTORY => {
                let children = store.directory(&path).expect("memory store");
                if children.is_empty() && store.read(&path).expect("memory store").is_none() {
                    reply(&mut stream, XS_ERROR, req_id, tx_id, b"ENOENT\0");
                } else {
                    let mut list = Vec::new();
                    for child in children {
                        list.extend_from_slice(child.as_bytes());
                        list.push(0);
                    }
                    reply(&mut stream, XS_DIRECTORY, req_id, tx_id, &list);
                }
            }
            _ => reply(&mut stream, XS_ERROR, req_id, tx_id, b"EACCES\0"),
        }
    }
}

// One test function: it sets XENSTORED_PATH for the whole process before libxenstore reads it.
#[test]
fn reads_and_lists_keys_through_the_real_libxenstore() {
    let test = "reads_and_lists_keys_through_the_real_libxenstore";
    if let Err(err) = Libxenstore::load(None) {
        skip(test, &format!("install libxen-dev: {err}"));
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("socket");
    let listener = UnixListener::bind(&socket).expect("bind the stand-in xenstored");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server_seen = Arc::clone(&seen);
    let server = std::thread::spawn(move || {
        let store = MemoryStore::parse_ls_f(CAPTURED);
        // The first connection is the wrapper's own handle; the test waits for it to close.
        let (stream, _) = listener.accept().expect("libxenstore connects");
        serve(stream, &store, &server_seen);
        // Then the source selection's handle, served in the background until the process ends.
        std::thread::spawn(move || {
            if let Ok((stream, _)) = listener.accept() {
                serve(stream, &store, &server_seen);
            }
        });
    });
    std::env::set_var("XENSTORED_PATH", &socket);

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
    assert_eq!(
        store.directory("/local/domain/1/cpu").expect("directory"),
        ["0", "1"]
    );
    assert_eq!(
        store
            .directory("/local/domain/1/memory")
            .expect("directory"),
        ["static-max", "target"]
    );
    assert_eq!(
        store.directory("/local/domain/7").expect("absent is Ok"),
        Vec::<String>::new()
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

    drop(store); // xs_close: the server sees EOF and ends
    server.join().expect("server thread");
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
