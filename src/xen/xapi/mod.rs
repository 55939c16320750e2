//! VM names from XAPI (XCP-ng, XenServer), off unless `xen.xapi.names` is set: xenstore's
//! `name` is written when a VM starts and not when it is renamed, XAPI's `name_label` is what the
//! operator sees. A background task (`refresher`) reads them over XAPI's local socket; a scrape
//! only looks them up by VM UUID, so a slow or absent XAPI never holds a scrape.

mod jsonrpc;
mod refresher;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Notify;

pub use refresher::spawn;

use crate::lock::RwLockUnpoisoned;
use crate::xen::model::Host;

/// The names last read, shared by the refresher and the collector.
#[derive(Clone, Default)]
pub struct XapiNames {
    state: Arc<RwLock<NameState>>,
    /// Told at each read, so the start can wait for the first.
    read: Arc<Notify>,
}

#[derive(Default)]
struct NameState {
    /// `name_label` by lower-case VM UUID.
    by_uuid: HashMap<String, String>,
    /// Whether XAPI ever answered since the names were turned on.
    answered: bool,
    /// Why the last read failed (the names read before it stay in use).
    problem: Option<String>,
}

impl XapiNames {
    /// Names every domain XAPI knows by its UUID; the others keep xenstore's name. Fails
    /// (part `xapi`) while XAPI's last answer was an error or it never answered: the names
    /// then come from the last good answer, or from xenstore.
    pub fn apply(&self, host: &mut Host) -> Result<(), String> {
        let state = self.state.read_unpoisoned();
        for domain in &mut host.domains {
            let name = domain
                .uuid
                .as_ref()
                .and_then(|uuid| state.by_uuid.get(&uuid.to_ascii_lowercase()));
            if let Some(name) = name {
                domain.name.clone_from(name);
            }
        }
        match (&state.problem, state.answered) {
            (Some(problem), _) => Err(problem.clone()),
            (None, false) => Err("XAPI has not answered yet".to_owned()),
            (None, true) => Ok(()),
        }
    }

    /// Waits up to `limit` for the first read while the names are on, so the first scrapes
    /// do not report a failure that is only XAPI not having been asked yet.
    pub async fn first_read(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.read.notified()).await;
    }

    fn store(&self, answer: Result<HashMap<String, String>, String>) {
        let mut state = self.state.write_unpoisoned();
        self.read.notify_one();
        match answer {
            Ok(names) => {
                state.by_uuid = names;
                state.answered = true;
                state.problem = None;
            }
            Err(problem) => state.problem = Some(problem),
        }
    }

    fn forget(&self) {
        *self.state.write_unpoisoned() = NameState::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xen::model::Domain;

    fn host() -> Host {
        let domain = |domid: u32, name: &str, uuid: Option<&str>| Domain {
            domid,
            name: name.to_owned(),
            uuid: uuid.map(str::to_owned),
            ..Domain::default()
        };
        Host {
            domains: vec![
                domain(0, "Domain-0", Some("00000000-0000-0000-0000-000000000000")),
                domain(1, "web", Some("A1B2C3D4-0000-4000-8000-000000000001")),
                domain(2, "db", None),
            ],
            ..Host::default()
        }
    }

    fn names(host: &Host) -> Vec<&str> {
        host.domains
            .iter()
            .map(|domain| domain.name.as_str())
            .collect()
    }

    #[test]
    fn known_uuids_take_xapi_names_and_failures_keep_the_last_good_ones() {
        let xapi = XapiNames::default();
        let mut before = host();
        assert_eq!(
            xapi.apply(&mut before),
            Err("XAPI has not answered yet".to_owned())
        );
        assert_eq!(names(&before), ["Domain-0", "web", "db"]);

        let renamed = HashMap::from([(
            "a1b2c3d4-0000-4000-8000-000000000001".to_owned(),
            "web (renamed)".to_owned(),
        )]);
        xapi.store(Ok(renamed));
        let mut after = host();
        assert_eq!(xapi.apply(&mut after), Ok(()));
        assert_eq!(names(&after), ["Domain-0", "web (renamed)", "db"]);

        xapi.store(Err("connection refused".to_owned()));
        let mut failing = host();
        assert_eq!(
            xapi.apply(&mut failing),
            Err("connection refused".to_owned())
        );
        assert_eq!(names(&failing), ["Domain-0", "web (renamed)", "db"]);

        xapi.forget();
        let mut off = host();
        assert!(xapi.apply(&mut off).is_err());
        assert_eq!(names(&off), ["Domain-0", "web", "db"]);
    }
}
