//! Snapshot → metric families: the label sets (`labelled`), what xentop shows (`host`), the
//! I/O rings (`rings`) and the block devices behind VBDs (`backing`).

pub(crate) mod backing;
pub(crate) mod host;
pub(crate) mod labelled;
pub(crate) mod rings;
