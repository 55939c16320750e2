//! Logging setup: logfmt (the exporter-toolkit default) or JSON on stderr, filtered by level.

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::app::cli::{LogFormat, LogLevel};

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `--log.level` (for debugging
/// one module).
pub fn init(level: LogLevel, format: LogFormat) {
    let level = match level {
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    };
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_span_events(FmtSpan::NONE);
    // A second init (tests that start twice) is harmless: keep the first subscriber.
    let _ = match format {
        LogFormat::Logfmt => builder
            .event_format(crate::app::logfmt::Logfmt)
            .fmt_fields(crate::app::logfmt::LogfmtFields)
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
