//! Wiring: load and validate everything, bind, then serve until a signal says stop.

pub(crate) mod build_info;
pub mod cli;
mod logfmt;
pub mod logging;
pub mod memory;
mod reload;
mod xen_setup;

use std::process::ExitCode;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::app::cli::Cli;
use crate::app::reload::Reloader;
use crate::config;
use crate::http::landing::Landing;
use crate::http::routes::{ReloadError, Routes};
use crate::http::server;
use crate::scrape::collector::ScrapeCollector;
use crate::scrape::Scraper;
use crate::web_config::{LiveWebConfig, WebConfig};

/// Exit status for an invalid configuration (flags, config file, web config file).
pub const EXIT_CONFIG: u8 = 2;
/// Exit status when a listener cannot be bound or the runtime fails.
pub const EXIT_FAILURE: u8 = 1;

/// Runs the exporter; returns the process exit status.
pub async fn run(cli: Cli) -> ExitCode {
    let (config, origin) = match config::load(cli.config_file.as_deref()) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let web = match cli
        .web_config_file
        .as_deref()
        .map(WebConfig::load)
        .transpose()
    {
        Ok(web) => web.unwrap_or_default(),
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if cli.config_check {
        println!("{origin}: configuration is valid");
        return ExitCode::SUCCESS;
    }
    let config = Arc::new(config);
    tracing::info!(version = crate::app::build_info::VERSION_LONG, config = %origin, "starting xen_exporter");
    if let Some(limit) = web.rate_limit() {
        tracing::info!(burst = limit.burst, interval = ?limit.interval, "rate limiter enabled");
    }

    let mut registry = Registry::default();
    let reload_metrics = crate::scrape::self_metrics::register(&mut registry);
    let web = Arc::new(LiveWebConfig::new(
        cli.web_config_file.clone(),
        web,
        crate::scrape::self_metrics::register_web_config(&mut registry),
    ));
    if !cli.disable_exporter_metrics {
        registry.register_collector(Box::new(crate::scrape::process::ProcessCollector));
    }
    let (reloader, config_updates) =
        Reloader::new(cli.config_file.clone(), config.clone(), reload_metrics);
    let reloader = Arc::new(reloader);

    let shutdown = CancellationToken::new();
    let xen = crate::app::xen_setup::collector(&cli, config_updates.clone()).await;
    let probes = crate::probe::Probes::start(&mut registry, reloader.subscribe(), shutdown.clone());
    let collectors: Vec<Arc<dyn ScrapeCollector>> = vec![Arc::new(xen), Arc::new(probes)];
    let landing = Landing {
        telemetry_path: cli.telemetry_path.clone(),
        collectors: collectors.clone(),
    };
    let scraper = Arc::new(Scraper::new(registry, collectors, cli.xen_timeout));

    let signals = match install_signals() {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("error: installing signal handlers: {error}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let listeners = match server::bind(&cli.listen_addresses).await {
        Ok(listeners) => listeners,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    for listener in &listeners {
        if let Ok(address) = listener.local_addr() {
            tracing::info!(%address, tls = web.current().tls_acceptor().is_some(), "listening");
        }
    }

    let routes = Arc::new(Routes {
        scraper,
        telemetry_path: cli.telemetry_path.clone(),
        landing,
        scrape_limit: (cli.max_requests > 0)
            .then(|| Arc::new(tokio::sync::Semaphore::new(cli.max_requests))),
        reload: {
            let reloader = reloader.clone();
            let web = web.clone();
            Arc::new(move || reload_both(&reloader, &web))
        },
        web: web.clone(),
    });

    tokio::spawn(web.clone().watch(shutdown.clone()));
    let signals = tokio::spawn(handle_signals(
        reloader.clone(),
        web,
        shutdown.clone(),
        signals,
    ));
    server::serve(listeners, routes, shutdown.clone()).await;
    signals.abort();
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// The signal streams, installed before the first "listening" line so that a signal sent right
/// after start is handled, not fatal.
struct Signals {
    hangup: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

fn install_signals() -> std::io::Result<Signals> {
    Ok(Signals {
        hangup: signal(SignalKind::hangup())?,
        terminate: signal(SignalKind::terminate())?,
        interrupt: signal(SignalKind::interrupt())?,
    })
}

/// Reloads the configuration file and the web configuration file (SIGHUP, `POST /-/reload`);
/// blocking file I/O. Each keeps its previous version when its file does not load.
fn reload_both(reloader: &Reloader, web: &LiveWebConfig) -> Result<(), ReloadError> {
    let config = reloader.reload();
    let web = web.reload(true);
    match (config, web) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(error), Ok(())) => Err(ReloadError::Config(error)),
        (Ok(()), Err(error)) => Err(ReloadError::Web(error)),
        (Err(config), Err(web)) => Err(ReloadError::Both {
            config: Box::new(config),
            web: Box::new(web),
        }),
    }
}

/// SIGHUP reloads both configuration files; SIGTERM and SIGINT start a graceful shutdown.
async fn handle_signals(
    reloader: Arc<Reloader>,
    web: Arc<LiveWebConfig>,
    shutdown: CancellationToken,
    signals: Signals,
) {
    let Signals {
        mut hangup,
        mut terminate,
        mut interrupt,
    } = signals;
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                let reloader = reloader.clone();
                let web = web.clone();
                // Reading the files is blocking I/O; keep it off the runtime's workers.
                let _ = tokio::task::spawn_blocking(move || reload_both(&reloader, &web)).await;
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
