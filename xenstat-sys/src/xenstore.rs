//! The read-only part of `xenstore.h` (reads, listings and watches) (libxenstore, Xen 4.17; LGPL) and its loader.

use std::ffi::{c_char, c_uint, c_ulong, c_void};
use std::marker::{PhantomData, PhantomPinned};
use std::path::Path;

use crate::load::{library, open_first, LoadError};

/// `struct xs_handle`: one connection to xenstored (socket or `/dev/xen/xenbus`).
#[repr(C)]
pub struct XsHandle {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `typedef uint32_t xs_transaction_t;`
pub type XsTransaction = u32;
/// `XBT_NULL`: no transaction.
pub const XBT_NULL: XsTransaction = 0;
/// `XS_OPEN_READONLY`
pub const XS_OPEN_READONLY: c_ulong = 1 << 0;
/// `XS_OPEN_SOCKETONLY`: only the xenstored socket, never the xenbus device.
pub const XS_OPEN_SOCKETONLY: c_ulong = 1 << 1;

/// `struct xs_handle *xs_open(unsigned long flags);` NULL on failure (errno set).
pub type XsOpenFn = unsafe extern "C" fn(flags: c_ulong) -> *mut XsHandle;
/// `void xs_close(struct xs_handle *xsh /* NULL ok */);`
pub type XsCloseFn = unsafe extern "C" fn(xsh: *mut XsHandle);
/// `void *xs_read(struct xs_handle *h, xs_transaction_t t, const char *path, unsigned int *len);`
/// Returns a `malloc`ed, NUL-terminated value to release with `free()`, or NULL (errno set;
/// `ENOENT` when the key does not exist).
pub type XsReadFn = unsafe extern "C" fn(
    h: *mut XsHandle,
    t: XsTransaction,
    path: *const c_char,
    len: *mut c_uint,
) -> *mut c_void;
/// `char **xs_directory(struct xs_handle *h, xs_transaction_t t, const char *path,
/// unsigned int *num);` Returns one `malloc`ed block (the array and its strings) to release
/// with a single `free()`, or NULL (errno set).
pub type XsDirectoryFn = unsafe extern "C" fn(
    h: *mut XsHandle,
    t: XsTransaction,
    path: *const c_char,
    num: *mut c_uint,
) -> *mut *mut c_char;
/// `bool xs_watch(struct xs_handle *h, const char *path, const char *token);` Watches `path`
/// and everything under it; xenstored fires one event at once, then one per write or removal.
/// A watch writes nothing to the store. `false` on failure (errno set).
pub type XsWatchFn =
    unsafe extern "C" fn(h: *mut XsHandle, path: *const c_char, token: *const c_char) -> bool;
/// `bool xs_unwatch(struct xs_handle *h, const char *path, const char *token);`
pub type XsUnwatchFn =
    unsafe extern "C" fn(h: *mut XsHandle, path: *const c_char, token: *const c_char) -> bool;
/// `char **xs_check_watch(struct xs_handle *h);` The next queued watch event without blocking:
/// one `malloc`ed block (`[XS_WATCH_PATH]`, `[XS_WATCH_TOKEN]` and their strings) to release
/// with a single `free()`, or NULL with errno `EAGAIN` when none is queued (another errno: the
/// connection is lost).
pub type XsCheckWatchFn = unsafe extern "C" fn(h: *mut XsHandle) -> *mut *mut c_char;
/// `XS_WATCH_PATH`: index of the path that fired in an event.
pub const XS_WATCH_PATH: usize = 0;
/// `XS_WATCH_TOKEN`: index of the token given to `xs_watch`.
pub const XS_WATCH_TOKEN: usize = 1;
/// `void free(void *ptr);` for the values `xs_read`/`xs_directory` return.
pub type FreeFn = unsafe extern "C" fn(ptr: *mut c_void);

library! {
    /// libxenstore, loaded at run time (the subset that writes nothing).
    pub struct Libxenstore;
    required {
        open: XsOpenFn = "xs_open";
        close: XsCloseFn = "xs_close";
        read: XsReadFn = "xs_read";
        directory: XsDirectoryFn = "xs_directory";
    }
    optional {
        /// In every libxenstore since Xen 4.0; optional so that a library without them only
        /// costs the watch (the caller falls back to reading what it would have watched).
        watch: XsWatchFn = "xs_watch";
        unwatch: XsUnwatchFn = "xs_unwatch";
        check_watch: XsCheckWatchFn = "xs_check_watch";
    }
}

impl Libxenstore {
    /// Names tried when no explicit path is given: the stable soname (Xen 4.x), then the
    /// development symlink and the soname of Xen 3.x/early 4.x.
    pub fn default_candidates() -> Vec<String> {
        ["libxenstore.so.4", "libxenstore.so", "libxenstore.so.3.0"]
            .map(str::to_owned)
            .to_vec()
    }

    /// Loads `explicit` if given, else the first of [`Self::default_candidates`] that opens.
    pub fn load(explicit: Option<&Path>) -> Result<Self, LoadError> {
        let (library, path) = open_first("libxenstore", explicit, &Self::default_candidates())?;
        Self::from_library(library, path)
    }

    /// Loads the first of `candidates` that opens (file paths or names for the loader's search).
    pub fn load_first(candidates: &[String]) -> Result<Self, LoadError> {
        let (library, path) = open_first("libxenstore", None, candidates)?;
        Self::from_library(library, path)
    }

    /// The C library's `free()`, which releases what `xs_read` and `xs_directory` return.
    ///
    /// Deliberately the process's own `free` (the symbol the whole program, and libxenstore's
    /// `malloc` calls, bind to) rather than `dlsym(handle, "free")`: a handle lookup searches only
    /// the library's own dependency tree and could return libc's `free` while an interposed
    /// allocator (`LD_PRELOAD`) served the `malloc`.
    pub fn free_fn(&self) -> FreeFn {
        libc_free
    }
}

extern "C" {
    #[link_name = "free"]
    fn libc_free(ptr: *mut c_void);
}
