//! Builds the Xen collector from the command line at start: opens the source the flags choose
//! and says in one log line what serves the Xen metrics, or why nothing does.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::app::cli::Cli;
use crate::config::Config;
use crate::xen::collector::{HostFiles, XenCollector};
use crate::xen::source::select::{self, Opened};
use crate::xen::source::simulated::{SimulatedHost, SimulatedOptions, Storm};
use crate::xen::source::{SourceError, XenSource};

/// The collector for `cli`'s `--xen.*` and `--path.*` flags. Loading libxenstat and connecting
/// to xenstore block, so they run off the runtime's workers.
pub async fn collector(cli: &Cli, config: watch::Receiver<Arc<Config>>) -> XenCollector {
    let kind = cli.xen_source;
    let library = cli.xen_library.clone();
    let options = simulated_options(cli);
    let frozen_at = cli.simulated_frozen_at;
    let opened = tokio::task::spawn_blocking(move || {
        select::open(kind, library.as_deref(), || {
            let host = match frozen_at {
                Some(at) => SimulatedHost::with_clock(options, Arc::new(move || at)),
                None => SimulatedHost::new(options),
            };
            Box::new(host) as Box<dyn XenSource>
        })
    })
    .await;
    let (source, xenstore) = match opened {
        Ok(Ok(Opened { source, xenstore })) => {
            tracing::info!(source = source.name(), "Xen metrics enabled");
            (Ok(source), xenstore)
        }
        Ok(Err(error)) => {
            tracing::warn!(reason = %error, "Xen metrics unavailable: serving xen_up 0, everything else as usual");
            (Err(error), None)
        }
        Err(join_error) => {
            tracing::error!(error = %join_error, "opening the Xen source failed");
            let reason = format!("opening the Xen source failed: {join_error}");
            (Err(SourceError::Unavailable { reason }), None)
        }
    };
    // Before the collector sizes its budget of kept descriptors on it.
    crate::xen::dom0::kept_files::raise_nofile_limit();
    let files = HostFiles {
        sysfs: cli.sysfs.clone(),
        debugfs: cli.debugfs.clone(),
        procfs: cli.procfs.clone(),
        shm: cli.shm.clone(),
        xenstore,
    };
    // Idle unless `xen.xapi.names` is on; it follows configuration reloads.
    let xapi_names = crate::xen::xapi::spawn(config.clone());
    if config.borrow().xen.xapi.names {
        xapi_names.first_read(Duration::from_secs(2)).await;
    }
    let collector = XenCollector::new(source, files, config).with_xapi_names(xapi_names);
    collector.log_start_problems();
    collector
}

fn simulated_options(cli: &Cli) -> SimulatedOptions {
    SimulatedOptions {
        guests: cli.simulated_domains,
        storms: cli
            .simulated_storm_domains
            .iter()
            .map(|domain| Storm {
                domain: domain.clone(),
                after: cli.simulated_storm_after,
            })
            .collect(),
        stall: cli.simulated_stall_domain.clone().map(|domain| Storm {
            domain,
            after: cli.simulated_stall_after,
        }),
        churn: (!cli.simulated_churn.is_zero()).then_some(cli.simulated_churn),
    }
}
