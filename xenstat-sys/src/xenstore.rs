//! The read-only part of `xenstore.h` (libxenstore, Xen 4.17; LGPL) and its loader.

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
/// `void free(void *ptr);` for the values `xs_read`/`xs_directory` return.
pub type FreeFn = unsafe extern "C" fn(ptr: *mut c_void);

library! {
    /// libxenstore, loaded at run time (read-only subset).
    pub struct Libxenstore;
    required {
        open: XsOpenFn = "xs_open";
        close: XsCloseFn = "xs_close";
        read: XsReadFn = "xs_read";
        directory: XsDirectoryFn = "xs_directory";
    }
    optional {}
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
