//! Watches `probes.target_files`: every `target_files_interval` the patterns are expanded and
//! each file whose size or modification time changed is read again. A file that reads and
//! checks gives its targets; a bad one keeps its last good targets, logs why (file:line) and
//! sets `xen_exporter_target_file_last_reload_successful{file}` to 0; a file that is gone takes
//! its targets with it. The targets of all files go to the supervisor, which applies them like
//! a reload (unchanged targets keep their series).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::limits;
use crate::config::probes::{ProbesConfig, Target};
use crate::config::target_files::{identity, parse, TargetFileError};
use crate::config::Config;

type FileLabel = Vec<(String, String)>;

/// `xen_exporter_target_file_*{file}`.
#[derive(Debug, Clone, Default)]
pub struct TargetFileMetrics {
    successful: Family<FileLabel, Gauge>,
    targets: Family<FileLabel, Gauge>,
}

impl TargetFileMetrics {
    pub fn register(registry: &mut Registry) -> TargetFileMetrics {
        let metrics = TargetFileMetrics::default();
        registry.register(
            "xen_exporter_target_file_last_reload_successful",
            "Whether the last read of a probes.target_files file succeeded; 0 keeps its last good targets (the log says why)",
            metrics.successful.clone(),
        );
        registry.register(
            "xen_exporter_target_file_targets",
            "Probe targets a probes.target_files file gives (its last good version)",
            metrics.targets.clone(),
        );
        metrics
    }

    fn set(&self, file: &Path, successful: bool, targets: usize) {
        let label = label(file);
        self.successful
            .get_or_create(&label)
            .set(i64::from(successful));
        self.targets
            .get_or_create(&label)
            .set(i64::try_from(targets).unwrap_or(i64::MAX));
    }

    fn remove(&self, file: &Path) {
        let label = label(file);
        self.successful.remove(&label);
        self.targets.remove(&label);
    }
}

fn label(file: &Path) -> FileLabel {
    vec![("file".to_owned(), file.display().to_string())]
}

/// What the watcher knows of one file.
struct Watched {
    /// Size and modification time when last read; `None` when it could not be read.
    stamp: Option<(u64, SystemTime)>,
    /// The last good targets.
    targets: Vec<Target>,
}

/// Watches the files until `shutdown`, sending every change of their targets to `sender`.
pub async fn watch(
    mut config: watch::Receiver<Arc<Config>>,
    sender: watch::Sender<Vec<Target>>,
    metrics: TargetFileMetrics,
    shutdown: CancellationToken,
) {
    let mut files: BTreeMap<PathBuf, Watched> = BTreeMap::new();
    let mut reread = true;
    loop {
        let probes = config.borrow_and_update().probes.clone();
        let changed = scan(&probes, &mut files, &metrics, reread);
        if changed {
            let targets: Vec<Target> = files
                .values()
                .flat_map(|watched| watched.targets.iter().cloned())
                .collect();
            sender.send_replace(targets);
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = config.changed() => {
                if changed.is_err() {
                    return;
                }
                // New defaults or patterns: every file is read again.
                reread = true;
            }
            () = tokio::time::sleep(probes.target_files_interval()) => reread = false,
        }
    }
}

/// One pass over the patterns; whether any file's targets changed.
fn scan(
    probes: &ProbesConfig,
    files: &mut BTreeMap<PathBuf, Watched>,
    metrics: &TargetFileMetrics,
    reread: bool,
) -> bool {
    let paths: Vec<PathBuf> = probes
        .target_files
        .iter()
        .flat_map(|pattern| expand(&pattern.0))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut changed = false;
    let gone: Vec<PathBuf> = files
        .keys()
        .filter(|path| !paths.contains(path))
        .cloned()
        .collect();
    for path in gone {
        if let Some(watched) = files.remove(&path) {
            tracing::info!(file = %path.display(), targets = watched.targets.len(),
                "target file gone: its targets stop");
            changed |= !watched.targets.is_empty();
        }
        metrics.remove(&path);
    }
    // The config's own targets, and each file's before this one, own their names.
    let mut taken: HashSet<_> = probes.targets().iter().map(identity).collect();
    for path in paths {
        let stamp = std::fs::metadata(&path)
            .ok()
            .and_then(|meta| Some((meta.len(), meta.modified().ok()?)));
        let watched = files.entry(path.clone()).or_insert(Watched {
            stamp: None,
            targets: Vec::new(),
        });
        if reread || stamp.is_none() || stamp != watched.stamp {
            let outcome = read(&path)
                .and_then(|text| parse(&path, &text, probes))
                .and_then(|targets| check_taken(&path, targets, &taken));
            // A file that cannot be read is tried again at the next pass.
            watched.stamp = stamp;
            match outcome {
                Ok(targets) => {
                    if targets != watched.targets {
                        tracing::info!(file = %path.display(), targets = targets.len(),
                            "target file read");
                        watched.targets = targets;
                        changed = true;
                    }
                    metrics.set(&path, true, watched.targets.len());
                }
                Err(error) => {
                    // Last good targets whose names the config (after a reload) or an earlier
                    // file took since go: two targets must never write one series.
                    let kept = watched.targets.len();
                    watched
                        .targets
                        .retain(|target| !taken.contains(&identity(target)));
                    changed |= watched.targets.len() != kept;
                    tracing::warn!(%error, kept = watched.targets.len(),
                        "target file not used; its last good targets stay");
                    metrics.set(&path, false, watched.targets.len());
                }
            }
        }
        taken.extend(watched.targets.iter().map(identity));
    }
    changed
}

/// A target file's text, if it is within the config file's size and nesting bounds (the YAML
/// parser's time grows fast with both).
fn read(path: &Path) -> Result<String, TargetFileError> {
    let fail = |line: usize, reason: String| TargetFileError {
        file: path.display().to_string(),
        line,
        reason,
    };
    let size = std::fs::metadata(path)
        .map_err(|error| fail(0, format!("cannot read: {error}")))?
        .len();
    if size > limits::MAX_BYTES {
        return Err(fail(
            0,
            format!("{size} bytes, more than the {} allowed", limits::MAX_BYTES),
        ));
    }
    let text =
        std::fs::read_to_string(path).map_err(|error| fail(0, format!("cannot read: {error}")))?;
    limits::check_depth(&text).map_err(|deep| {
        fail(
            deep.line,
            format!("nested deeper than {} levels", limits::MAX_DEPTH),
        )
    })?;
    Ok(text)
}

/// A file's targets, unless one has the name of a target defined before it.
fn check_taken(
    path: &Path,
    targets: Vec<Target>,
    taken: &HashSet<(String, crate::config::probes::Protocol, Option<String>)>,
) -> Result<Vec<Target>, TargetFileError> {
    match targets.iter().find(|target| taken.contains(&identity(target))) {
        Some(target) => Err(TargetFileError {
            file: path.display().to_string(),
            line: 0,
            reason: format!(
                "the {} target {:?} is already defined in the config file or an earlier target file",
                target.protocol, target.name
            ),
        }),
        None => Ok(targets),
    }
}

/// The files a pattern names: itself, or with `*` / `?` in its file name, the matching files
/// of its directory, sorted.
fn expand(pattern: &str) -> Vec<PathBuf> {
    let path = Path::new(pattern);
    let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
        return Vec::new();
    };
    if !name.contains(['*', '?']) {
        return vec![path.to_path_buf()];
    }
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(directory) else {
        return Vec::new();
    };
    let mut matched: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_file()))
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|file| wildcard(name.as_bytes(), file.as_bytes()))
        })
        .map(|entry| directory.join(entry.file_name()))
        .collect();
    matched.sort();
    matched
}

/// Shell-style match of `*` (any run) and `?` (one byte).
fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.split_first(), name.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => {
            wildcard(rest, name) || (!name.is_empty() && wildcard(pattern, &name[1..]))
        }
        (Some((b'?', rest)), Some((_, name_rest))) => wildcard(rest, name_rest),
        (Some((p, rest)), Some((n, name_rest))) if p == n => wildcard(rest, name_rest),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_file_names() {
        assert!(wildcard(b"*.yml", b"a.yml"));
        assert!(wildcard(b"t?.json", b"t1.json"));
        assert!(!wildcard(b"*.yml", b"a.yaml"));
        assert!(wildcard(b"*", b""));
        assert!(!wildcard(b"a?", b"a"));
        let dir = tempfile::tempdir().expect("dir");
        for name in ["b.yml", "a.yml", "c.json"] {
            std::fs::write(dir.path().join(name), "").expect("write");
        }
        let pattern = format!("{}/*.yml", dir.path().display());
        assert_eq!(
            expand(&pattern),
            [dir.path().join("a.yml"), dir.path().join("b.yml")]
        );
    }
}
