//! [`XenStore`] over libxenstore, loaded at run time through `xenstat-sys` (no GPL or link-time
//! dependency). It writes nothing: only `xs_read`, `xs_directory`, `xs_watch`, `xs_unwatch` and
//! `xs_check_watch` are ever called. Watch events are queued by libxenstore's own reader
//! thread as they arrive and taken with `xs_check_watch`, which never blocks and sends nothing.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_uint, c_void, CStr, CString};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Mutex;

use xenstat_sys::xenstore::{XsHandle, XBT_NULL, XS_OPEN_READONLY, XS_WATCH_PATH};
use xenstat_sys::Libxenstore as Lib;

use crate::lock::MutexUnpoisoned;
use crate::xen::dom0::xenstore::{XenStore, XenStoreError};

/// An open connection to xenstored.
pub struct LibXenStore {
    // Declared before `lib`: the connection closes (in `Drop`) while the library is loaded.
    handle: Mutex<NonNull<XsHandle>>,
    lib: Lib,
}

// SAFETY: an xs_handle is a socket/device fd plus heap state; libxenstore is built thread-safe
// (it locks internally), and we additionally serialise every call through the `Mutex`.
unsafe impl Send for LibXenStore {}
// SAFETY: as for `Send`: all access to the handle goes through the `Mutex`.
unsafe impl Sync for LibXenStore {}

impl std::fmt::Debug for LibXenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LibXenStore")
            .field("library", &self.lib.path())
            .finish_non_exhaustive()
    }
}

impl LibXenStore {
    /// Loads libxenstore (`library`, else `libxenstore.so.4` and friends) and connects
    /// read-only. No library or no xenstored is [`XenStoreError::Unavailable`] with the reason.
    pub fn open(library: Option<&Path>) -> Result<Self, XenStoreError> {
        let lib = Lib::load(library).map_err(|err| XenStoreError::Unavailable {
            reason: err.to_string(),
        })?;
        // SAFETY: `xs_open` takes flags and returns an owned handle or NULL (errno set).
        let ptr = unsafe { (lib.open)(XS_OPEN_READONLY) };
        let errno = std::io::Error::last_os_error();
        let Some(ptr) = NonNull::new(ptr) else {
            return Err(XenStoreError::Unavailable {
                reason: format!(
                    "{}: xs_open failed (is xenstored running?): {errno}",
                    lib.path().display()
                ),
            });
        };
        Ok(Self {
            handle: Mutex::new(ptr),
            lib,
        })
    }

    fn c_path(path: &str) -> Result<CString, XenStoreError> {
        CString::new(path).map_err(|_| XenStoreError::Read {
            path: path.to_owned(),
            reason: "path contains a NUL byte".to_owned(),
        })
    }

    /// Takes ownership of a `malloc`ed block from libxenstore so it is freed on every path.
    fn owned(&self, ptr: *mut c_void) -> Option<Malloced> {
        NonNull::new(ptr).map(|ptr| Malloced {
            ptr,
            free: self.lib.free_fn(),
        })
    }
}

impl Drop for LibXenStore {
    fn drop(&mut self) {
        let handle = self.handle.get_mut_unpoisoned();
        // SAFETY: the handle came from `xs_open` and is closed exactly once, here.
        unsafe { (self.lib.close)(handle.as_ptr()) };
    }
}

/// A block libxenstore allocated with `malloc`, released with `free` on drop.
struct Malloced {
    ptr: NonNull<c_void>,
    free: xenstat_sys::xenstore::FreeFn,
}

impl Drop for Malloced {
    fn drop(&mut self) {
        // SAFETY: `ptr` was returned by `xs_read`/`xs_directory`, which document that the
        // caller releases it with `free()`; it is released once.
        unsafe { (self.free)(self.ptr.as_ptr()) };
    }
}

/// `ENOENT`: the key does not exist (a normal answer, not an error).
fn is_absent(err: &std::io::Error) -> bool {
    err.raw_os_error() == Some(libc::ENOENT)
}

impl LibXenStore {
    fn read_key(&self, path: &str) -> Result<Option<String>, XenStoreError> {
        let c_path = Self::c_path(path)?;
        let mut len: c_uint = 0;
        let handle = self.handle.lock_unpoisoned();
        // SAFETY: the handle is open and used by this thread only (lock held); `c_path` is
        // NUL-terminated; `len` is a valid out-pointer.
        let value =
            unsafe { (self.lib.read)(handle.as_ptr(), XBT_NULL, c_path.as_ptr(), &mut len) };
        let errno = std::io::Error::last_os_error();
        drop(handle);
        let Some(value) = self.owned(value) else {
            if is_absent(&errno) {
                return Ok(None);
            }
            return Err(XenStoreError::Read {
                path: path.to_owned(),
                reason: errno.to_string(),
            });
        };
        // SAFETY: xs_read returns `len` bytes followed by a NUL; the block lives until `value`
        // drops at the end of this function.
        let bytes =
            unsafe { std::slice::from_raw_parts(value.ptr.as_ptr().cast::<u8>(), len as usize) };
        Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
    }
}

/// Drained at most per call to [`XenStore::fired`]: a flood of events cannot hold a scrape; the
/// rest stays queued for the next call.
const MAX_EVENTS_PER_CALL: usize = 100_000;

impl LibXenStore {
    /// `xs_watch` or `xs_unwatch` on `path` with `token`.
    fn set_watch(&self, path: &str, token: &str, set: bool) -> Result<(), XenStoreError> {
        let call = if set {
            self.lib.watch
        } else {
            self.lib.unwatch
        };
        let failed = |reason: String| XenStoreError::Watch {
            path: path.to_owned(),
            reason,
        };
        let Some(call) = call else {
            return Err(failed(format!(
                "{} has no xs_watch/xs_unwatch",
                self.lib.path().display()
            )));
        };
        let c_path = Self::c_path(path)?;
        let c_token = CString::new(token).map_err(|_| failed("token holds a NUL".to_owned()))?;
        let handle = self.handle.lock_unpoisoned();
        // SAFETY: the handle is open and used by this thread only (lock held); both strings are
        // NUL-terminated and outlive the call, which copies them into its request.
        let done = unsafe { call(handle.as_ptr(), c_path.as_ptr(), c_token.as_ptr()) };
        let errno = std::io::Error::last_os_error();
        drop(handle);
        if done {
            Ok(())
        } else {
            Err(failed(errno.to_string()))
        }
    }
}

impl XenStore for LibXenStore {
    fn read(&self, path: &str) -> Result<Option<String>, XenStoreError> {
        self.read_key(path)
    }

    fn watch(&self, path: &str, token: &str) -> Result<(), XenStoreError> {
        self.set_watch(path, token, true)
    }

    fn unwatch(&self, path: &str, token: &str) -> Result<(), XenStoreError> {
        self.set_watch(path, token, false)
    }

    fn fired(&self) -> Result<Vec<String>, XenStoreError> {
        let Some(check) = self.lib.check_watch else {
            return Ok(Vec::new());
        };
        let mut paths = Vec::new();
        let handle = self.handle.lock_unpoisoned();
        while paths.len() < MAX_EVENTS_PER_CALL {
            // SAFETY: the handle is open and used by this thread only (lock held). With
            // libxenstore's reader thread running (it starts with the first watch), this takes
            // the next event off its queue and never touches the socket.
            let event = unsafe { check(handle.as_ptr()) };
            let errno = std::io::Error::last_os_error();
            let Some(event) = self.owned(event.cast::<c_void>()) else {
                if errno.raw_os_error() == Some(libc::EAGAIN) {
                    break;
                }
                return Err(XenStoreError::Watch {
                    path: String::new(),
                    reason: format!("reading watch events: {errno}"),
                });
            };
            // SAFETY: an event is an array of at least two pointers (path, token) to
            // NUL-terminated strings, all inside the block `event` frees when it drops.
            let path = unsafe {
                let strings = event.ptr.as_ptr().cast::<*const c_char>();
                CStr::from_ptr(*strings.add(XS_WATCH_PATH))
            };
            paths.push(path.to_string_lossy().into_owned());
        }
        Ok(paths)
    }
}
