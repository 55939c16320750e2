//! Finding a shared library among candidate names and resolving its symbols one by one.

use std::path::{Path, PathBuf};

use libloading::Library;

/// One candidate that could not be opened, with `dlerror()`'s reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadFailure {
    pub candidate: PathBuf,
    pub reason: String,
}

/// Why a library could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// No candidate could be opened; every path tried is listed with its reason.
    #[error("{library} could not be loaded; tried {}", format_tried(.tried))]
    NotFound {
        library: &'static str,
        tried: Vec<LoadFailure>,
    },
    /// The library opened but lacks a symbol this program cannot do without.
    #[error("{path}: required symbol {name} is missing", path = .path.display())]
    MissingSymbol { path: PathBuf, name: &'static str },
}

impl LoadError {
    /// The candidates tried, in order (empty for [`LoadError::MissingSymbol`]).
    pub fn tried(&self) -> &[LoadFailure] {
        match self {
            LoadError::NotFound { tried, .. } => tried,
            LoadError::MissingSymbol { .. } => &[],
        }
    }
}

/// `a, b (reason); c (other reason)`: consecutive candidates that failed for the same reason
/// share it, so 33 "No such file or directory" stay readable on one log line.
fn format_tried(tried: &[LoadFailure]) -> String {
    let mut groups: Vec<(Vec<String>, &str)> = Vec::new();
    for failure in tried {
        let name = failure.candidate.display().to_string();
        match groups.last_mut() {
            Some((names, reason)) if *reason == failure.reason => names.push(name),
            _ => groups.push((vec![name], &failure.reason)),
        }
    }
    groups
        .iter()
        .map(|(names, reason)| format!("{} ({reason})", names.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Opens the first candidate that loads. `explicit` (the operator's flag) replaces the defaults:
/// when the operator names a file, silently falling back to another Xen's library would hide the
/// mistake.
pub(crate) fn open_first(
    library: &'static str,
    explicit: Option<&Path>,
    defaults: &[String],
) -> Result<(Library, PathBuf), LoadError> {
    let candidates: Vec<PathBuf> = match explicit {
        Some(path) => vec![path.to_path_buf()],
        None => defaults.iter().map(PathBuf::from).collect(),
    };
    let mut tried = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        // RTLD_NOW: a library whose own dependencies lack a symbol (a libxenstat from one Xen
        // release next to a libxenctrl from another) fails here, with dlerror's reason, instead
        // of aborting the process at the first call. RTLD_LOCAL keeps its symbols out of the
        // global namespace.
        let flags = libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL;
        // SAFETY: loading a library runs its ELF constructors. libxenstat's and libxenstore's
        // constructors (and those of their dependencies: libxenctrl, libyajl, libc) only set up
        // process-local state; they do not touch the hypervisor. The operator chooses the path.
        match unsafe { libloading::os::unix::Library::open(Some(&candidate), flags) } {
            Ok(lib) => return Ok((Library::from(lib), candidate)),
            Err(err) => {
                let reason = dl_reason(&err, &candidate);
                tried.push(LoadFailure { candidate, reason });
            }
        }
    }
    Err(LoadError::NotFound { library, tried })
}

/// `dlerror()`'s text without the leading path, which the error already names.
fn dl_reason(err: &libloading::Error, candidate: &Path) -> String {
    let text = err.to_string();
    let prefix = format!("{}: ", candidate.display());
    match text.strip_prefix(&prefix) {
        Some(reason) => reason.to_owned(),
        None => text,
    }
}

/// Resolves one symbol as a function pointer of type `T`; `None` when the library lacks it.
///
/// # Safety
/// `T` must be the exact `unsafe extern "C" fn` type of the C symbol `name`, and the returned
/// pointer must not be called after `lib` is dropped.
pub(crate) unsafe fn resolve<T: Copy>(lib: &Library, name: &str) -> Option<T> {
    let mut bytes = Vec::with_capacity(name.len() + 1);
    bytes.extend_from_slice(name.as_bytes());
    bytes.push(0);
    // SAFETY: the caller guarantees that `T` matches the symbol's C type.
    unsafe { lib.get::<T>(&bytes) }.ok().map(|symbol| *symbol)
}

/// Resolves a symbol the library cannot work without.
///
/// # Safety
/// As for [`resolve`].
pub(crate) unsafe fn require<T: Copy>(
    lib: &Library,
    path: &Path,
    name: &'static str,
) -> Result<T, LoadError> {
    // SAFETY: forwarded to the caller.
    unsafe { resolve(lib, name) }.ok_or_else(|| LoadError::MissingSymbol {
        path: path.to_path_buf(),
        name,
    })
}

/// Declares a loaded library: a struct holding the `Library`, one field per required symbol
/// (a function pointer) and one `Option` per optional symbol, plus the resolver.
///
/// The function pointers are only valid while the struct (and so the `Library`) lives; they are
/// `unsafe` to call anyway, and callers keep the struct alive (e.g. in an `Arc`) for as long as
/// they call through it.
macro_rules! library {
    (
        $(#[$meta:meta])*
        pub struct $name:ident;
        required { $( $(#[$rmeta:meta])* $rfield:ident : $rty:ty = $rsym:literal; )* }
        optional { $( $(#[$ometa:meta])* $ofield:ident : $oty:ty = $osym:literal; )* }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$rmeta])* pub $rfield: $rty, )*
            $( $(#[$ometa])* pub $ofield: Option<$oty>, )*
            path: std::path::PathBuf,
            // Dropped last (fields drop in declaration order), after nothing can call through
            // the pointers above.
            _library: libloading::Library,
        }

        impl $name {
            /// Every C symbol this crate requires, in declaration order.
            pub const REQUIRED_SYMBOLS: &'static [&'static str] = &[$($rsym),*];
            /// Symbols that older releases lack; `None` when absent.
            pub const OPTIONAL_SYMBOLS: &'static [&'static str] = &[$($osym),*];

            fn from_library(
                library: libloading::Library,
                path: std::path::PathBuf,
            ) -> Result<Self, $crate::load::LoadError> {
                // SAFETY: each field's type is the exact C signature of its symbol (copied from
                // the header named in this module's documentation); the pointers are stored next
                // to `library`, which outlives every use through `&self`.
                unsafe {
                    Ok(Self {
                        $( $rfield: $crate::load::require::<$rty>(&library, &path, $rsym)?, )*
                        $( $ofield: $crate::load::resolve::<$oty>(&library, $osym), )*
                        path,
                        _library: library,
                    })
                }
            }

            /// The file that was loaded (the candidate as given to `dlopen`).
            pub fn path(&self) -> &std::path::Path {
                &self.path
            }

            /// Optional symbols this library lacks (an older release).
            pub fn missing_optional(&self) -> Vec<&'static str> {
                #[allow(unused_mut)] // libraries without optional symbols
                let mut missing = Vec::new();
                $( if self.$ofield.is_none() { missing.push($osym); } )*
                missing
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("path", &self.path)
                    .field("missing_optional", &self.missing_optional())
                    .finish_non_exhaustive()
            }
        }
    };
}
pub(crate) use library;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_path_replaces_the_defaults() {
        let defaults = vec!["libc.so.6".to_owned()];
        let err = open_first(
            "libtest",
            Some(Path::new("/nonexistent/libx.so")),
            &defaults,
        )
        .expect_err("the explicit path does not exist");
        let tried: Vec<_> = err.tried().iter().map(|f| f.candidate.clone()).collect();
        assert_eq!(tried, [PathBuf::from("/nonexistent/libx.so")]);
    }

    #[test]
    fn different_reasons_are_kept_apart() {
        let failure = |candidate: &str, reason: &str| LoadFailure {
            candidate: PathBuf::from(candidate),
            reason: reason.to_owned(),
        };
        let tried = [
            failure("a.so", "missing"),
            failure("b.so", "missing"),
            failure("c.so", "wrong ELF class"),
            failure("d.so", "missing"),
        ];
        assert_eq!(
            format_tried(&tried),
            "a.so, b.so (missing); c.so (wrong ELF class); d.so (missing)"
        );
    }

    #[test]
    fn first_loadable_default_wins_and_failures_are_listed() {
        let defaults = vec!["libnone-1.so".to_owned(), "libnone-2.so".to_owned()];
        let err = open_first("libtest", None, &defaults).expect_err("none exist");
        assert_eq!(
            err.to_string(),
            "libtest could not be loaded; tried libnone-1.so, libnone-2.so \
             (cannot open shared object file: No such file or directory)"
        );
        let defaults = vec!["libnone-1.so".to_owned(), "libc.so.6".to_owned()];
        let (_, path) = open_first("libc", None, &defaults).expect("libc loads");
        assert_eq!(path, PathBuf::from("libc.so.6"));
    }
}
