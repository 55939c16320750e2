//! The exporter's own long-lived metrics: build information and configuration reloads.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::app::build_info;

/// Gauges the reload path updates.
#[derive(Debug, Clone, Default)]
pub struct ReloadMetrics {
    successful: Gauge,
    success_timestamp: Gauge<f64, AtomicU64>,
}

impl ReloadMetrics {
    /// Records a successful (re)load now.
    pub fn record_success(&self) {
        self.successful.set(1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        self.success_timestamp.set(now.as_secs_f64());
    }

    /// Records a failed reload; the last success timestamp stays.
    pub fn record_failure(&self) {
        self.successful.set(0);
    }

    pub fn last_successful(&self) -> bool {
        self.successful.get() == 1
    }

    /// `xen_exporter_<name>_last_reload_successful` and its success timestamp, for the file
    /// called `what` in the help text.
    fn register(registry: &mut Registry, name: &str, what: &str) -> Self {
        let reload = Self::default();
        registry.register(
            format!("xen_exporter_{name}_last_reload_successful"),
            format!("Whether the last {what} reload attempt was successful"),
            reload.successful.clone(),
        );
        registry.register_with_unit(
            format!("xen_exporter_{name}_last_reload_success_timestamp"),
            format!("Timestamp of the last successful {what} reload"),
            Unit::Seconds,
            reload.success_timestamp.clone(),
        );
        reload
    }
}

/// Registers `xen_exporter_build_info` and the reload gauges; returns the reload gauges.
pub fn register(registry: &mut Registry) -> ReloadMetrics {
    registry.register(
        "xen_exporter_build",
        "A metric with a constant '1' value labeled by version, revision and rustc from which xen_exporter was built",
        Info::new(vec![
            ("version", build_info::VERSION),
            ("revision", build_info::REVISION),
            ("rustc", build_info::RUSTC),
        ]),
    );
    ReloadMetrics::register(registry, "config", "configuration")
}

/// Registers the reload gauges of the web configuration file (`--web.config.file`, re-read when
/// it changes); without a file they say 1 from the start.
pub fn register_web_config(registry: &mut Registry) -> ReloadMetrics {
    ReloadMetrics::register(registry, "web_config", "web configuration")
}
