//! Raw FFI to libxenstat, loaded at run time.
