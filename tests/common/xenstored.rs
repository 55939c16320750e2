//! A stand-in xenstored on a Unix socket that speaks the xenstore wire protocol
//! (`xen/io/xs_wire.h`) and serves keys from a [`MemoryStore`], so the real Debian libxenstore
//! (pointed at it with `XENSTORED_PATH`) can be tested end to end. It answers reads and
//! directory listings; every other request gets `EACCES` and is recorded, so a test can prove
//! that nothing but reads was sent.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use xen_exporter::testing::{MemoryStore, XenStore};

pub const XS_DIRECTORY: u32 = 1;
pub const XS_READ: u32 = 2;
const XS_ERROR: u32 = 16;

/// A running stand-in; its socket lives in a temporary directory removed on drop.
pub struct StandIn {
    dir: tempfile::TempDir,
    socket: PathBuf,
    /// Request types received, in order.
    pub seen: Arc<Mutex<Vec<u32>>>,
}

impl StandIn {
    /// Serves `store` to every connection, each on its own thread, until the process ends.
    pub fn start(store: MemoryStore) -> StandIn {
        let dir = tempfile::Builder::new()
            .prefix("xenstored-")
            .tempdir()
            .expect("tempdir for the stand-in xenstored");
        let socket = dir.path().join("socket");
        let listener = UnixListener::bind(&socket).expect("bind the stand-in xenstored");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::new(store);
        let server_seen = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let store = Arc::clone(&store);
                let seen = Arc::clone(&server_seen);
                std::thread::spawn(move || serve(stream, &store, &seen));
            }
        });
        StandIn { dir, socket, seen }
    }

    /// The value for `XENSTORED_PATH`.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The temporary directory holding the socket.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn u32_at(bytes: &[u8], index: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[index * 4..index * 4 + 4]);
    u32::from_ne_bytes(word)
}

fn reply(stream: &mut UnixStream, kind: u32, req_id: u32, tx_id: u32, body: &[u8]) -> bool {
    let mut message = Vec::with_capacity(16 + body.len());
    for word in [kind, req_id, tx_id, body.len() as u32] {
        message.extend_from_slice(&word.to_ne_bytes());
    }
    message.extend_from_slice(body);
    stream.write_all(&message).is_ok()
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
        if stream.read_exact(&mut body).is_err() {
            return;
        }
        seen.lock().expect("seen").push(kind);
        let path = String::from_utf8_lossy(body.split(|b| *b == 0).next().unwrap_or_default())
            .into_owned();
        let sent = match kind {
            XS_READ => match store.read(&path).expect("memory store") {
                Some(value) => reply(&mut stream, XS_READ, req_id, tx_id, value.as_bytes()),
                None => reply(&mut stream, XS_ERROR, req_id, tx_id, b"ENOENT\0"),
            },
            XS_DIRECTORY => {
                let children = store.directory(&path);
                if children.is_empty() && store.read(&path).expect("memory store").is_none() {
                    reply(&mut stream, XS_ERROR, req_id, tx_id, b"ENOENT\0")
                } else {
                    let mut list = Vec::new();
                    for child in children {
                        list.extend_from_slice(child.as_bytes());
                        list.push(0);
                    }
                    reply(&mut stream, XS_DIRECTORY, req_id, tx_id, &list)
                }
            }
            _ => reply(&mut stream, XS_ERROR, req_id, tx_id, b"EACCES\0"),
        };
        if !sent {
            return;
        }
    }
}
