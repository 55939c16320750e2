//! Host names to addresses: looked up through getaddrinfo (so `/etc/hosts` and nsswitch apply)
//! at start and again every `resolve_interval`; a change is followed, a failure keeps the last
//! good address and is counted.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::metrics::TargetSeries;
use crate::config::probes::Target;
use crate::lock::MutexUnpoisoned;

/// A bound on one lookup, so a dead resolver cannot hold a target's address forever.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The address a target is probed at now; `None` until a lookup succeeded.
#[derive(Debug, Default)]
pub struct CurrentAddress(Mutex<Option<IpAddr>>);

impl CurrentAddress {
    pub fn fixed(address: IpAddr) -> CurrentAddress {
        CurrentAddress(Mutex::new(Some(address)))
    }

    pub fn get(&self) -> Option<IpAddr> {
        *self.0.lock_unpoisoned()
    }

    fn set(&self, address: IpAddr) -> Option<IpAddr> {
        self.0.lock_unpoisoned().replace(address)
    }
}

/// Looks `target.host` up now and every `resolve_interval` until `cancel`.
pub async fn follow(
    target: Target,
    series: Arc<TargetSeries>,
    current: Arc<CurrentAddress>,
    cancel: CancellationToken,
) {
    let mut failing = false;
    loop {
        let started = Instant::now();
        let answer = tokio::time::timeout(
            LOOKUP_TIMEOUT,
            tokio::net::lookup_host((target.host.as_str(), 0)),
        )
        .await;
        let (picked, problem) = match answer {
            Ok(Ok(addresses)) => {
                let addresses: Vec<IpAddr> = addresses.map(|address| address.ip()).collect();
                match target.family.pick(&addresses) {
                    Some(address) => (Some(address), None),
                    None => (
                        None,
                        Some(format!(
                            "no address of family {:?} among {addresses:?}",
                            target.family
                        )),
                    ),
                }
            }
            Ok(Err(error)) => (None, Some(error.to_string())),
            Err(_) => (None, Some(format!("timed out after {LOOKUP_TIMEOUT:?}"))),
        };
        // Logged when lookups start failing and when they recover, not at every attempt: a
        // host without DNS must not fill the journal (the counters show every failure).
        match (&problem, failing) {
            (Some(error), false) => tracing::warn!(target = %target.name, host = %target.host,
                %error, "host name lookup failed; keeping the last address, if any"),
            (None, true) => tracing::info!(target = %target.name, host = %target.host,
                "host name lookup works again"),
            _ => {}
        }
        failing = problem.is_some();
        series.looked_up(started.elapsed(), picked.is_some());
        if let Some(address) = picked {
            let previous = current.set(address);
            if previous != Some(address) {
                tracing::info!(target = %target.name, host = %target.host, %address, previous = ?previous,
                    "probing a new address");
                series.set_address(Some(address));
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(target.resolve_interval) => {}
        }
    }
}
