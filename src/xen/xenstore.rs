//! Read-only access to xenstore, behind a trait so fixtures can stand in for the daemon in tests.

use std::collections::BTreeMap;

/// A failed xenstore access (not "key absent", which is `Ok(None)`).
#[derive(Debug, thiserror::Error)]
pub enum XenStoreError {
    #[error("xenstore is not available: {reason}")]
    Unavailable { reason: String },
    #[error("xenstore read of {path} failed: {reason}")]
    Read { path: String, reason: String },
}

/// Reads xenstore keys. Paths are absolute (`/local/domain/0/backend/vbd/1/51712/mode`).
pub trait XenStore: Send + Sync {
    /// The value at `path`, or `None` when the key does not exist.
    fn read(&self, path: &str) -> Result<Option<String>, XenStoreError>;
    /// The names of the children of `path` (empty when it does not exist).
    fn directory(&self, path: &str) -> Result<Vec<String>, XenStoreError>;
}

/// An in-memory xenstore for tests and the simulated host.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    entries: BTreeMap<String, String>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `path` to `value`, like `xenstore-write`.
    pub fn insert(&mut self, path: impl Into<String>, value: impl Into<String>) {
        self.entries.insert(path.into(), value.into());
    }

    /// Parses `xenstore-ls -f` output (`/path/to/key = "value"` lines), as in the lab captures.
    pub fn parse_ls_f(text: &str) -> Self {
        let mut store = Self::new();
        for line in text.lines() {
            let Some((path, value)) = line.split_once(" = ") else {
                continue;
            };
            if !path.starts_with('/') {
                continue;
            }
            let value = value.trim().trim_matches('"');
            store.insert(path.trim(), value);
        }
        store
    }
}

impl XenStore for MemoryStore {
    fn read(&self, path: &str) -> Result<Option<String>, XenStoreError> {
        Ok(self.entries.get(path).cloned())
    }

    fn directory(&self, path: &str) -> Result<Vec<String>, XenStoreError> {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        let mut children: Vec<String> = self
            .entries
            .keys()
            .filter_map(|key| key.strip_prefix(&prefix))
            .filter_map(|rest| rest.split('/').next())
            .map(str::to_owned)
            .collect();
        children.dedup();
        Ok(children)
    }
}
