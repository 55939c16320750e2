//! `basic_auth_users`: HTTP basic auth against bcrypt hashes, with a cache of verified passwords
//! so that a scraper pays bcrypt's cost (tens of milliseconds) once, not on every scrape.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use hyper::header::HeaderValue;
use ring::hmac;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::Problem;
use crate::lock::MutexUnpoisoned;

/// bcrypt's lowest cost; the decoy hash takes the users' highest.
const MIN_COST: u32 = 4;

/// Whether a request may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorization {
    Allowed,
    Denied,
}

/// The configured users and what has been verified so far. Without users every request passes.
pub struct BasicAuth {
    /// user -> bcrypt hash, as configured.
    users: HashMap<String, String>,
    /// user -> HMAC of the last password that bcrypt accepted for that user. Keyed with a random
    /// per-process key so that a memory dump does not give a fast offline check of passwords.
    verified: Mutex<HashMap<String, [u8; 32]>>,
    key: hmac::Key,
    /// A hash at the users' highest cost, checked for unknown users so that a wrong user name
    /// costs as much time as a wrong password (no user enumeration by timing).
    decoy: Arc<OnceLock<Option<String>>>,
    decoy_cost: u32,
    /// bcrypt is CPU-bound: at most one check per core at a time, on blocking threads.
    checks: Arc<Semaphore>,
}

impl Default for BasicAuth {
    fn default() -> Self {
        BasicAuth::from_users(HashMap::new(), MIN_COST)
    }
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut users: Vec<&String> = self.users.keys().collect();
        users.sort();
        f.debug_struct("BasicAuth").field("users", &users).finish()
    }
}

impl BasicAuth {
    /// Checks that every configured hash is a bcrypt hash (`$2a$`, `$2b$`, `$2x$` or `$2y$`).
    pub(crate) fn new(users: BTreeMap<String, String>) -> Result<Self, Problem> {
        let mut max_cost = MIN_COST;
        for (user, hash) in &users {
            let parts: bcrypt::HashParts = hash.parse().map_err(|_| Problem {
                field: format!("basic_auth_users.{user}"),
                reason: "not a bcrypt hash (60 characters, like $2y$10$…); create one with \
                         `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"
                    .to_owned(),
                near: vec![format!("{user}:"), "basic_auth_users:".to_owned()],
            })?;
            if user.contains(':') {
                return Err(Problem {
                    field: format!("basic_auth_users.{user}"),
                    reason: "a user name cannot contain ':' in HTTP basic auth".to_owned(),
                    near: vec![user.clone(), "basic_auth_users:".to_owned()],
                });
            }
            max_cost = max_cost.max(parts.get_cost());
        }
        Ok(BasicAuth::from_users(users.into_iter().collect(), max_cost))
    }

    fn from_users(users: HashMap<String, String>, decoy_cost: u32) -> Self {
        let rng = ring::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).unwrap_or_else(|_| {
            hmac::Key::new(hmac::HMAC_SHA256, &std::process::id().to_le_bytes())
        });
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        BasicAuth {
            users,
            verified: Mutex::new(HashMap::new()),
            key,
            decoy: Arc::new(OnceLock::new()),
            decoy_cost,
            checks: Arc::new(Semaphore::new(cores)),
        }
    }

    /// Whether any user is configured.
    #[cfg(test)]
    pub fn enabled(&self) -> bool {
        !self.users.is_empty()
    }

    /// Checks the `Authorization` header. bcrypt runs on a blocking thread.
    pub async fn authorize(&self, authorization: Option<&HeaderValue>) -> Authorization {
        if self.users.is_empty() {
            return Authorization::Allowed;
        }
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return Authorization::Denied;
        };
        let tag = self.tag(&user, &password);
        let Some(hash) = self.users.get(&user).cloned() else {
            self.check_decoy(password).await;
            return Authorization::Denied;
        };
        if self.remembered(&user, &tag) {
            return Authorization::Allowed;
        }
        let Ok(_permit) = self.checks.clone().acquire_owned().await else {
            return Authorization::Denied;
        };
        let valid = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false);
        if !valid {
            return Authorization::Denied;
        }
        self.verified.lock_unpoisoned().insert(user, tag);
        Authorization::Allowed
    }

    fn tag(&self, user: &str, password: &str) -> [u8; 32] {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(&(user.len() as u64).to_le_bytes());
        context.update(user.as_bytes());
        context.update(password.as_bytes());
        let mut tag = [0u8; 32];
        tag.copy_from_slice(context.sign().as_ref());
        tag
    }

    /// Whether this password was already verified for this user (constant-time comparison).
    fn remembered(&self, user: &str, tag: &[u8; 32]) -> bool {
        let verified = self.verified.lock_unpoisoned();
        verified
            .get(user)
            .is_some_and(|known| bool::from(known.ct_eq(tag)))
    }

    /// Spends a bcrypt check's time on an unknown user.
    async fn check_decoy(&self, password: String) {
        let Ok(_permit) = self.checks.clone().acquire_owned().await else {
            return;
        };
        let decoy = self.decoy.clone();
        let cost = self.decoy_cost;
        let _ = tokio::task::spawn_blocking(move || {
            let hash = decoy.get_or_init(|| bcrypt::hash("decoy password", cost).ok());
            if let Some(hash) = hash {
                let _ = bcrypt::verify(password, hash);
            }
        })
        .await;
    }
}

/// `Basic base64(user:password)` -> (user, password); `None` for anything else.
fn parse_basic(value: &HeaderValue) -> Option<(String, String)> {
    let text = value.to_str().ok()?;
    let (scheme, credentials) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, password: &str) -> HeaderValue {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {encoded}")).expect("valid header")
    }

    /// Cost 4 (bcrypt's minimum) keeps the tests fast; the logic does not depend on the cost.
    fn auth() -> BasicAuth {
        let mut users = BTreeMap::new();
        users.insert(
            "alice".to_owned(),
            bcrypt::hash("wonderland", 4).expect("hash"),
        );
        users.insert("bob".to_owned(), bcrypt::hash("builder", 4).expect("hash"));
        BasicAuth::new(users).expect("valid users")
    }

    #[tokio::test]
    async fn no_users_allows_everything() {
        let auth = BasicAuth::default();
        assert_eq!(auth.authorize(None).await, Authorization::Allowed);
        assert!(!auth.enabled());
    }

    #[tokio::test]
    async fn right_password_passes_and_is_remembered() {
        let auth = auth();
        let value = header("alice", "wonderland");
        assert!(!auth.remembered("alice", &auth.tag("alice", "wonderland")));
        assert_eq!(auth.authorize(Some(&value)).await, Authorization::Allowed);
        assert!(auth.remembered("alice", &auth.tag("alice", "wonderland")));
        assert_eq!(auth.authorize(Some(&value)).await, Authorization::Allowed);
        assert_eq!(
            auth.authorize(Some(&header("bob", "builder"))).await,
            Authorization::Allowed
        );
    }

    #[tokio::test]
    async fn wrong_or_missing_credentials_are_denied() {
        let auth = auth();
        for value in [
            header("alice", "WONDERLAND"),
            header("alice", ""),
            header("bob", "wonderland"),
            header("mallory", "wonderland"),
            header("", ""),
            HeaderValue::from_static("Basic !!!notbase64"),
            HeaderValue::from_static("Bearer abc"),
            HeaderValue::from_static("Basic"),
            // "alice" with no colon
            HeaderValue::from_static("Basic YWxpY2U="),
        ] {
            assert_eq!(
                auth.authorize(Some(&value)).await,
                Authorization::Denied,
                "{value:?}"
            );
        }
        assert_eq!(auth.authorize(None).await, Authorization::Denied);
        assert!(!auth.remembered("alice", &auth.tag("alice", "WONDERLAND")));
    }

    #[tokio::test]
    async fn a_remembered_password_does_not_let_another_through() {
        let auth = auth();
        assert_eq!(
            auth.authorize(Some(&header("alice", "wonderland"))).await,
            Authorization::Allowed
        );
        assert_eq!(
            auth.authorize(Some(&header("alice", "wonderlan"))).await,
            Authorization::Denied
        );
        assert_eq!(
            auth.authorize(Some(&header("bob", "wonderland"))).await,
            Authorization::Denied
        );
    }

    #[test]
    fn scheme_is_case_insensitive_and_password_may_hold_colons() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("alice:a:b:c");
        let value = HeaderValue::from_str(&format!("bAsIc {encoded}")).expect("header");
        assert_eq!(
            parse_basic(&value),
            Some(("alice".to_owned(), "a:b:c".to_owned()))
        );
    }

    #[test]
    fn htpasswd_2y_hashes_are_accepted() {
        let mut users = BTreeMap::new();
        // `htpasswd -nbBC 10 "" secret`, as the exporter-toolkit docs suggest.
        let hash = bcrypt::hash("secret", 4)
            .expect("hash")
            .replacen("$2b$", "$2y$", 1);
        users.insert("prometheus".to_owned(), hash.clone());
        BasicAuth::new(users).expect("2y hash accepted");
        assert!(bcrypt::verify("secret", &hash).expect("verify"));
    }
}
