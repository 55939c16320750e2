//! The allocator's shape: few arenas, so memory freed by one scrape's threads serves the next.
// The one unsafe call: glibc's `mallopt`, which the libc crate exposes only as an FFI function.
#![allow(unsafe_code)]

/// The number of glibc malloc arenas the exporter allows itself, unless `MALLOC_ARENA_MAX` says
/// otherwise.
///
/// glibc gives every thread that allocates under contention its own arena, up to 8 per core. A
/// scrape's parts, the encoder and the gzip workers each build megabytes in their own arena,
/// and what one arena frees is not reused by the next scrape's allocations in another, so the
/// resident set keeps the high-water mark of every arena. With two, the 1,000-domain real-path
/// benchmark peaked at 26.1 MiB instead of 30.0 MiB, at the same CPU per scrape
/// (benches/README.md).
const MALLOC_ARENAS: libc::c_int = 2;

/// Caps glibc's malloc arenas at two; called first in `main`, before any thread.
/// A `MALLOC_ARENA_MAX` in the environment wins (glibc reads it itself). Elsewhere a no-op.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; it is called before any other
        // thread exists. A refusal (return 0) leaves glibc's default, which is still correct.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        }
    }
}
