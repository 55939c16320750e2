//! A stand-in xenstored on a Unix socket that speaks the xenstore wire protocol
//! (`xen/io/xs_wire.h`) and serves keys from a [`MemoryStore`], so the real Debian libxenstore
//! (pointed at it with `XENSTORED_PATH`) can be tested end to end. It answers reads, directory
//! listings and watches as xenstored does (`XS_WATCH` fires one `XS_WATCH_EVENT` for the
//! watched path at once, then one per write or removal under it, made with [`StandIn::write`]
//! and [`StandIn::remove`]; `XS_UNWATCH` ends it); every other request gets `EACCES`, and every
//! request is recorded, so a test can prove that nothing was written.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use xen_exporter::testing::{MemoryStore, XenStore};

pub const XS_DIRECTORY: u32 = 1;
pub const XS_READ: u32 = 2;
pub const XS_WATCH: u32 = 4;
pub const XS_UNWATCH: u32 = 5;
const XS_WATCH_EVENT: u32 = 15;
const XS_ERROR: u32 = 16;

/// Whether a request type writes nothing to the store.
#[allow(dead_code)] // not every test binary checks it
pub fn writes_nothing(kind: u32) -> bool {
    matches!(kind, XS_READ | XS_DIRECTORY | XS_WATCH | XS_UNWATCH)
}

/// One watch: the connection's writing half, the path and the token.
struct Watch {
    stream: Arc<Mutex<UnixStream>>,
    path: String,
    token: String,
}

/// What every connection shares: the keys and the watches.
#[derive(Default)]
struct State {
    store: MemoryStore,
    watches: Vec<Watch>,
}

/// A running stand-in; its socket lives in a temporary directory removed on drop.
pub struct StandIn {
    dir: tempfile::TempDir,
    socket: PathBuf,
    /// Request types received, in order.
    pub seen: Arc<Mutex<Vec<u32>>>,
    state: Arc<Mutex<State>>,
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
        let state = Arc::new(Mutex::new(State {
            store,
            watches: Vec::new(),
        }));
        let server_seen = Arc::clone(&seen);
        let server_state = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let state = Arc::clone(&server_state);
                let seen = Arc::clone(&server_seen);
                std::thread::spawn(move || serve(stream, &state, &seen));
            }
        });
        StandIn {
            dir,
            socket,
            seen,
            state,
        }
    }

    /// Sets `path` to `value`, like `xenstore-write`, firing the watches on it or above it.
    /// The events are on their sockets when this returns.
    #[allow(dead_code)] // not every test binary changes keys
    pub fn write(&self, path: &str, value: &str) {
        let mut state = self.state.lock().expect("state");
        state.store.insert(path, value);
        fire(&state, path);
    }

    /// Removes `path` and everything under it, like `xenstore-rm`, firing the watches on it,
    /// above it or under it (as xenstored does for a removed subtree).
    #[allow(dead_code)]
    pub fn remove(&self, path: &str) {
        let mut state = self.state.lock().expect("state");
        state.store.remove(path);
        fire(&state, path);
    }

    /// Watches set and not removed.
    #[allow(dead_code)]
    pub fn watches(&self) -> usize {
        self.state.lock().expect("state").watches.len()
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

/// Whether a change at `changed` fires a watch on `watched`: the same node, a node under it,
/// or (a removal) a node above it.
fn fires(watched: &str, changed: &str) -> bool {
    let under = |inner: &str, outer: &str| {
        inner == outer || inner.starts_with(&format!("{}/", outer.trim_end_matches('/')))
    };
    under(changed, watched) || under(watched, changed)
}

/// Sends an `XS_WATCH_EVENT` for `changed` to every watch it fires (a closed connection's
/// send just fails).
fn fire(state: &State, changed: &str) {
    for watch in state.watches.iter().filter(|w| fires(&w.path, changed)) {
        let path = if changed.len() >= watch.path.len() {
            changed
        } else {
            watch.path.as_str()
        };
        event(&watch.stream, path, &watch.token);
    }
}

fn event(stream: &Mutex<UnixStream>, path: &str, token: &str) {
    let mut body = Vec::new();
    for part in [path, token] {
        body.extend_from_slice(part.as_bytes());
        body.push(0);
    }
    reply(
        &mut stream.lock().expect("stream"),
        XS_WATCH_EVENT,
        0,
        0,
        &body,
    );
}

fn reply(stream: &mut UnixStream, kind: u32, req_id: u32, tx_id: u32, body: &[u8]) -> bool {
    let mut message = Vec::with_capacity(16 + body.len());
    for word in [kind, req_id, tx_id, body.len() as u32] {
        message.extend_from_slice(&word.to_ne_bytes());
    }
    message.extend_from_slice(body);
    stream.write_all(&message).is_ok()
}

/// Serves one connection until the client closes it; records every request type. Replies and
/// events share the connection's writing half, so a message is never cut by another.
fn serve(mut stream: UnixStream, state: &Mutex<State>, seen: &Mutex<Vec<u32>>) {
    let Ok(writer) = stream.try_clone() else {
        return;
    };
    let writer = Arc::new(Mutex::new(writer));
    let answer = |kind: u32, req_id: u32, tx_id: u32, body: &[u8]| {
        reply(
            &mut writer.lock().expect("stream"),
            kind,
            req_id,
            tx_id,
            body,
        )
    };
    loop {
        let mut header = [0u8; 16];
        if stream.read_exact(&mut header).is_err() {
            // xs_close: its watches go with it.
            state
                .lock()
                .expect("state")
                .watches
                .retain(|watch| !Arc::ptr_eq(&watch.stream, &writer));
            return;
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
        let mut strings = body
            .split(|b| *b == 0)
            .map(|part| String::from_utf8_lossy(part).into_owned());
        let path = strings.next().unwrap_or_default();
        let token = strings.next().unwrap_or_default();
        let mut state = state.lock().expect("state");
        let sent = match kind {
            XS_READ => match state.store.read(&path).expect("memory store") {
                Some(value) => answer(XS_READ, req_id, tx_id, value.as_bytes()),
                None => answer(XS_ERROR, req_id, tx_id, b"ENOENT\0"),
            },
            XS_DIRECTORY => {
                let children = state.store.directory(&path);
                if children.is_empty() && state.store.read(&path).expect("memory store").is_none() {
                    answer(XS_ERROR, req_id, tx_id, b"ENOENT\0")
                } else {
                    let mut list = Vec::new();
                    for child in children {
                        list.extend_from_slice(child.as_bytes());
                        list.push(0);
                    }
                    answer(XS_DIRECTORY, req_id, tx_id, &list)
                }
            }
            XS_WATCH => {
                // As xenstored: the reply, then at once the event for the watched path.
                let sent = answer(XS_WATCH, req_id, tx_id, b"OK\0");
                event(&writer, &path, &token);
                state.watches.push(Watch {
                    stream: Arc::clone(&writer),
                    path,
                    token,
                });
                sent
            }
            XS_UNWATCH => {
                let before = state.watches.len();
                state.watches.retain(|watch| {
                    !(Arc::ptr_eq(&watch.stream, &writer)
                        && watch.path == path
                        && watch.token == token)
                });
                if state.watches.len() < before {
                    answer(XS_UNWATCH, req_id, tx_id, b"OK\0")
                } else {
                    answer(XS_ERROR, req_id, tx_id, b"ENOENT\0")
                }
            }
            _ => answer(XS_ERROR, req_id, tx_id, b"EACCES\0"),
        };
        drop(state);
        if !sent {
            return;
        }
    }
}
