//! The web configuration while the server runs. exporter-toolkit re-reads its file on every
//! request; we check the file once a second (and read it at once on SIGHUP or `POST
//! /-/reload`) and swap in the new configuration when it loads, so new passwords, headers, TLS
//! settings and rate limits apply without a restart. A file that no longer loads keeps the
//! previous configuration serving and says why, once per change of the file.
//!
//! The same check re-reads the TLS certificate and key files (renewal), so that no handshake
//! reads a file on a runtime worker.
//!
//! A change is read once the file has stayed the same for one check: a file caught between
//! truncation and write is empty, and an empty file is a valid one that turns basic auth off.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::{WebConfig, WebConfigError};
use crate::lock::{MutexUnpoisoned, RwLockUnpoisoned};
use crate::scrape::self_metrics::ReloadMetrics;

/// How often the file's metadata is compared with the version last read.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What identifies one version of the file: a rewrite, a rename over it or a touch changes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    modified: Option<SystemTime>,
    length: u64,
    inode: u64,
}

impl Version {
    /// `None` when the file cannot be read (the load that follows reports why).
    fn of(path: &Path) -> Option<Version> {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(path).ok()?;
        Some(Version {
            modified: metadata.modified().ok(),
            length: metadata.len(),
            inode: metadata.ino(),
        })
    }
}

/// The file's versions as the checks saw them (`None`: unreadable).
#[derive(Debug, Default)]
struct Seen {
    /// The version last read, loaded or not: a broken file is reported once, not every second.
    read: Option<Version>,
    /// Another version, seen by the last check; read if the next check sees it unchanged.
    settling: Option<Option<Version>>,
}

/// Why a changed web configuration file was not taken (the previous one keeps serving).
#[derive(Debug, thiserror::Error)]
pub enum WebReloadError {
    #[error(transparent)]
    Load(#[from] WebConfigError),
    /// A port that switched between plain HTTP and TLS under its scrapers would fail them all.
    #[error("the file turns TLS {}; that needs a restart", if *.turns_on { "on" } else { "off" })]
    TlsSwitch { turns_on: bool },
}

/// The current web configuration, replaced whole when its file changes.
pub struct LiveWebConfig {
    path: Option<PathBuf>,
    current: RwLock<Arc<WebConfig>>,
    /// Also serialises reloads.
    seen: Mutex<Seen>,
    metrics: ReloadMetrics,
}

impl LiveWebConfig {
    /// `config` was loaded from `path` at start (or is the default, without a file).
    pub fn new(path: Option<PathBuf>, config: WebConfig, metrics: ReloadMetrics) -> Self {
        let seen = Seen {
            read: path.as_deref().and_then(Version::of),
            settling: None,
        };
        metrics.record_success();
        Self {
            path,
            current: RwLock::new(Arc::new(config)),
            seen: Mutex::new(seen),
            metrics,
        }
    }

    /// The configuration a new connection or request uses.
    pub fn current(&self) -> Arc<WebConfig> {
        self.current.read_unpoisoned().clone()
    }

    /// Reads the file again if it changed and then stayed the same since the last call (or at
    /// once, with `force`), and the TLS certificate files if they changed: handshakes never read
    /// them. Blocking file I/O: call it off the runtime's workers. Returns why a changed file was
    /// not taken; `Ok` also when nothing was read.
    pub fn reload(&self, force: bool) -> Result<(), WebReloadError> {
        let result = self.reload_file(force);
        self.current().refresh_certificate();
        result
    }

    fn reload_file(&self, force: bool) -> Result<(), WebReloadError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut seen = self.seen.lock_unpoisoned();
        let version = Version::of(path);
        if !force {
            if version == seen.read {
                seen.settling = None;
                return Ok(());
            }
            if seen.settling.as_ref() != Some(&version) {
                seen.settling = Some(version);
                return Ok(());
            }
        }
        seen.read = version;
        seen.settling = None;
        let file = path.display().to_string();
        match self.load(path) {
            Ok(loaded) => {
                *self.current.write_unpoisoned() = Arc::new(loaded);
                self.metrics.record_success();
                tracing::info!(file = %file, "web configuration reloaded");
                Ok(())
            }
            Err(reason) => {
                self.metrics.record_failure();
                tracing::error!(
                    file = %file,
                    error = %reason,
                    "web configuration reload failed; keeping the previous one"
                );
                Err(reason)
            }
        }
    }

    /// The file's configuration, if it loads and keeps the listeners' protocol: a port that
    /// switched between plain HTTP and TLS under its scrapers would fail every one of them.
    fn load(&self, path: &Path) -> Result<WebConfig, WebReloadError> {
        let loaded = WebConfig::load(path)?;
        let serving_tls = self.current().tls_acceptor().is_some();
        let turns_on = loaded.tls_acceptor().is_some();
        if serving_tls != turns_on {
            return Err(WebReloadError::TlsSwitch { turns_on });
        }
        Ok(loaded)
    }

    /// Checks the file every `CHECK_INTERVAL` until `shutdown`.
    pub async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        if self.path.is_none() {
            return;
        }
        let mut ticks = tokio::time::interval(CHECK_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let live = self.clone();
            let _ = tokio::task::spawn_blocking(move || live.reload(false)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct File {
        _dir: tempfile::TempDir,
        path: PathBuf,
    }

    impl File {
        fn new(text: &str) -> File {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("web.yml");
            std::fs::write(&path, text).expect("write");
            File { _dir: dir, path }
        }

        fn live(&self) -> LiveWebConfig {
            let config = WebConfig::load(&self.path).expect("loads");
            LiveWebConfig::new(Some(self.path.clone()), config, ReloadMetrics::default())
        }

        fn write(&self, text: &str) {
            std::fs::write(&self.path, text).expect("rewrite");
        }
    }

    const HEADER: &str = "http_server_config:\n  headers:\n    X-Frame-Options: deny\n";

    #[test]
    fn a_settled_change_is_read_and_an_unchanged_file_is_not() {
        let file = File::new("");
        let live = file.live();
        let before = live.current();
        assert!(before.headers().is_empty());
        live.reload(false).expect("unchanged");
        assert!(
            Arc::ptr_eq(&before, &live.current()),
            "unchanged file was read"
        );
        file.write(HEADER);
        // The first check sees the change, the second finds it settled and reads the file.
        live.reload(false).expect("settling");
        assert!(live.current().headers().is_empty());
        live.reload(false).expect("loads");
        assert_eq!(live.current().headers().len(), 1);
        assert!(live.metrics.last_successful());
    }

    #[test]
    fn a_file_still_changing_is_not_read() {
        let file = File::new(HEADER);
        let live = file.live();
        // Truncated, then written: each check sees another version, so none is read.
        file.write("");
        live.reload(false).expect("settling");
        file.write("basic_auth_users:\n");
        live.reload(false).expect("settling again");
        assert_eq!(live.current().headers().len(), 1);
        live.reload(false).expect("settled");
        assert!(live.current().headers().is_empty());
    }

    #[test]
    fn a_broken_file_keeps_the_previous_configuration_and_is_reported_once() {
        let file = File::new(HEADER);
        let live = file.live();
        file.write("http_server_config:\n  headerz: {}\n");
        live.reload(false).expect("settling");
        let error = live.reload(false).expect_err("broken").to_string();
        assert!(
            error.contains("web.yml:2:3: http_server_config.headerz"),
            "{error}"
        );
        assert_eq!(live.current().headers().len(), 1);
        assert!(!live.metrics.last_successful());
        // The same broken version is not reported again; a forced reload reads it again.
        live.reload(false).expect("already read");
        assert!(live.reload(true).is_err());
        file.write("");
        live.reload(true)
            .expect("fixed, and read at once when forced");
        assert!(live.current().headers().is_empty());
        assert!(live.metrics.last_successful());
    }

    #[test]
    fn without_a_file_there_is_nothing_to_reload() {
        let live = LiveWebConfig::new(None, WebConfig::default(), ReloadMetrics::default());
        assert!(live.reload(true).is_ok());
    }
}
