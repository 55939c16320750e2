//! Latency probe targets in the config file (filled in by the probes work).

use serde::Deserialize;

/// The `probes:` section of the config file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbesConfig {}

impl ProbesConfig {
    /// Checks that span several fields (e.g. duplicate target names).
    pub fn validate(&self) -> Result<(), super::CrossFieldProblem> {
        Ok(())
    }
}
