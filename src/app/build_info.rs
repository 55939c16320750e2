//! What this binary is: version, git revision and compiler, for `--version` and `*_build_info`.

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision the binary was built from (`unknown` outside a checkout).
pub const REVISION: &str = env!("XEN_EXPORTER_REVISION");
/// The rustc version that built it.
pub const RUSTC: &str = env!("XEN_EXPORTER_RUSTC");
/// What `--version` prints.
pub const VERSION_LONG: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("XEN_EXPORTER_REVISION"),
    ", rustc ",
    env!("XEN_EXPORTER_RUSTC"),
    ")"
);
