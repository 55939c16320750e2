//! Snapshot → metric families: the label sets (`labelled`), what xentop shows (`host`), the
//! I/O rings (`rings`), the block devices behind VBDs (`backing`) and tapdisk3's own counters
//! (`tapdisk`).

pub(crate) mod backing;
pub(crate) mod host;
pub(crate) mod labelled;
pub(crate) mod rings;
pub(crate) mod tapdisk;
