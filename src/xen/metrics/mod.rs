//! Snapshot → metric families: the label sets (`labelled`), what xentop shows (`host`) and the
//! I/O rings (`rings`).

pub(crate) mod host;
pub(crate) mod labelled;
pub(crate) mod rings;
