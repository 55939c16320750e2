//! The hypervisor side: sources that snapshot a Xen host (`source/`), the Dom0 files read beside
//! them (`dom0/`), VM names from XAPI (`xapi/`), the plain snapshot (`model`), the scrape-time
//! collector and the families it encodes (`metrics/`).

pub(crate) mod collector;
pub(crate) mod dom0;
pub(crate) mod metrics;
pub(crate) mod model;
pub(crate) mod source;
pub(crate) mod vbd_plan;
pub(crate) mod xapi;
