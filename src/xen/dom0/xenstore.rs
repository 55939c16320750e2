//! Read-only access to xenstore (reads and watches, never a write), behind a trait so fixtures
//! can stand in for the daemon in tests.

use std::collections::BTreeMap;

/// A failed xenstore access (not "key absent", which is `Ok(None)`).
#[derive(Debug, thiserror::Error)]
pub enum XenStoreError {
    #[error("xenstore is not available: {reason}")]
    Unavailable { reason: String },
    #[error("xenstore read of {path} failed: {reason}")]
    Read { path: String, reason: String },
    /// A watch could not be set, or its events can no longer be read (the connection is lost).
    #[error("xenstore watch on {path} failed: {reason}")]
    Watch { path: String, reason: String },
}

/// Reads xenstore keys. Paths are absolute (`/local/domain/0/backend/vbd/1/51712/mode`).
pub trait XenStore: Send + Sync {
    /// The value at `path`, or `None` when the key does not exist.
    fn read(&self, path: &str) -> Result<Option<String>, XenStoreError>;

    /// Watches `path` and everything under it, with `token`: xenstored fires one event at
    /// once, then one for each write or removal under it, collected by [`XenStore::fired`].
    /// A store that cannot watch says so, and the caller reads what it would have watched.
    fn watch(&self, path: &str, _token: &str) -> Result<(), XenStoreError> {
        Err(XenStoreError::Watch {
            path: path.to_owned(),
            reason: "this store has no watches".to_owned(),
        })
    }

    /// Removes a watch [`XenStore::watch`] set.
    fn unwatch(&self, _path: &str, _token: &str) -> Result<(), XenStoreError> {
        Ok(())
    }

    /// The paths whose watches fired since the last call, oldest first, without ever blocking
    /// and without a request to xenstored. `Err`: events may have been lost (the connection
    /// is gone), so whatever the watch guarded must be read again.
    fn fired(&self) -> Result<Vec<String>, XenStoreError> {
        Ok(Vec::new())
    }
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

    /// Removes `path` and everything under it, like `xenstore-rm`.
    pub fn remove(&mut self, path: &str) {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        self.entries
            .retain(|key, _| key != path && !key.starts_with(&prefix));
    }

    /// Parses `xenstore-ls -f` output (`/path/to/key = "value"` lines), as in the lab captures.
    /// Lines that are not such a pair, or whose path xenstored would refuse, are left out.
    pub fn parse_ls_f(text: &str) -> Self {
        let mut store = Self::new();
        for line in text.lines() {
            // Paths hold no spaces, so the first ` = ` ends the path; the value may contain one.
            let Some((path, value)) = line.split_once(" = ") else {
                continue;
            };
            let path = path.trim();
            if !is_valid_path(path) {
                continue;
            }
            // Exactly one pair of quotes: a value may itself end in a quote (`"a""`).
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            store.insert(path, value);
        }
        store
    }

    /// The names of the children of `path` (empty when it does not exist), as `xenstore-ls`
    /// lists them: for tests and the fuzz target that check the parser.
    pub fn directory(&self, path: &str) -> Vec<String> {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        let mut children: Vec<String> = self
            .entries
            .keys()
            .filter_map(|key| key.strip_prefix(&prefix))
            .filter_map(|rest| rest.split('/').next())
            .map(str::to_owned)
            .collect();
        // Keys are sorted, but `a-b` sorts between `a` and `a/c`, so duplicates need not be
        // adjacent: sort the children before removing them.
        children.sort();
        children.dedup();
        children
    }
}

/// An absolute xenstore path xenstored accepts: `/` then non-empty segments of `[A-Za-z0-9_@-]`.
fn is_valid_path(path: &str) -> bool {
    path.strip_prefix('/').is_some_and(|rest| {
        rest.split('/').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'@'))
        })
    })
}

impl XenStore for MemoryStore {
    fn read(&self, path: &str) -> Result<Option<String>, XenStoreError> {
        Ok(self.entries.get(path).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_captured_ls_f_lines() {
        let store = MemoryStore::parse_ls_f(
            "/local/domain/1/device/vbd/51712/ring-page-order = \"2\"\n\
             /local/domain/1/name = \"a = b\"\r\n\
             /local/domain/1/quoted = \"say \"hi\"\"\n\
             not a pair\n\
             relative/path = \"x\"\n\
             /local//empty = \"x\"\n\
             /local/trailing/ = \"x\"\n\
             /local/sp ace = \"x\"\n",
        );
        let read = |path| store.read(path).expect("memory store");
        assert_eq!(
            read("/local/domain/1/device/vbd/51712/ring-page-order").as_deref(),
            Some("2")
        );
        assert_eq!(read("/local/domain/1/name").as_deref(), Some("a = b"));
        assert_eq!(
            read("/local/domain/1/quoted").as_deref(),
            Some("say \"hi\"")
        );
        assert_eq!(
            store.directory("/local"),
            ["domain"],
            "invalid paths are left out"
        );
    }

    /// Seen while writing the `xenstore_ls_f` fuzz target's invariant: `a-b` sorts between `a`
    /// and `a/c`, so the two `a` children were not adjacent and both were listed.
    #[test]
    fn directory_lists_each_child_once() {
        let store = MemoryStore::parse_ls_f("/x/a = \"1\"\n/x/a-b = \"2\"\n/x/a/c = \"3\"\n");
        assert_eq!(store.directory("/x"), ["a", "a-b"]);
    }
}
