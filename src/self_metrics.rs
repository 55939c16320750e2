//! The exporter's own long-lived metrics: build information and configuration reloads.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::build;

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
}

/// Registers `xen_exporter_build_info` and the reload gauges; returns the reload gauges.
pub fn register(registry: &mut Registry) -> ReloadMetrics {
    registry.register(
        "xen_exporter_build",
        "A metric with a constant '1' value labeled by version, revision and rustc from which xen_exporter was built",
        Info::new(vec![
            ("version", build::VERSION),
            ("revision", build::REVISION),
            ("rustc", build::RUSTC),
        ]),
    );
    let reload = ReloadMetrics::default();
    registry.register(
        "xen_exporter_config_last_reload_successful",
        "Whether the last configuration reload attempt was successful",
        reload.successful.clone(),
    );
    registry.register_with_unit(
        "xen_exporter_config_last_reload_success_timestamp",
        "Timestamp of the last successful configuration reload",
        Unit::Seconds,
        reload.success_timestamp.clone(),
    );
    reload
}
