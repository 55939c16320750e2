//! Configuration reloads (SIGHUP, `POST /-/reload`): a reload that fails keeps the old
//! configuration and says why.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::config::{self, Config, ConfigError};
use crate::lock::MutexUnpoisoned;
use crate::scrape::self_metrics::ReloadMetrics;

/// Re-reads the configuration file and publishes it to every subsystem that watches it.
pub struct Reloader {
    path: Option<PathBuf>,
    sender: watch::Sender<Arc<Config>>,
    metrics: ReloadMetrics,
    /// Serialises reloads so two at once cannot publish out of order.
    lock: Mutex<()>,
}

impl Reloader {
    /// `initial` is the configuration already loaded at start.
    pub fn new(
        path: Option<PathBuf>,
        initial: Arc<Config>,
        metrics: ReloadMetrics,
    ) -> (Self, watch::Receiver<Arc<Config>>) {
        let (sender, receiver) = watch::channel(initial);
        metrics.record_success();
        let reloader = Self {
            path,
            sender,
            metrics,
            lock: Mutex::new(()),
        };
        (reloader, receiver)
    }

    /// A receiver of every configuration published from now on.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Config>> {
        self.sender.subscribe()
    }

    /// Loads the file again. On success publishes it; on failure keeps the old one.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let _guard = self.lock.lock_unpoisoned();
        match config::load(self.path.as_deref()) {
            Ok((config, origin)) => {
                self.sender.send_replace(Arc::new(config));
                self.metrics.record_success();
                tracing::info!(config = %origin, "configuration reloaded");
                Ok(())
            }
            Err(error) => {
                self.metrics.record_failure();
                tracing::error!(%error, "configuration reload failed; keeping the previous configuration");
                Err(error)
            }
        }
    }
}
