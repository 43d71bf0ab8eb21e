//! The Secrets reconciles read, cached for a few seconds so a burst of reconciles reads each once
//! (concurrent first reads of one Secret are one GET: single flight); a Secret's last key is kept
//! after that for deletions, and the default credentials granted per namespace and environment.
//!
//! Both are bounded: what a namespace kept goes with the namespace, and a Secret no reconcile
//! asked for in `keep_for` (two resync periods, in which every resource using it is reconciled)
//! is forgotten.

use parking_lot::Mutex;
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::controller::error::{CredentialsError, MAX_CREDENTIAL_BYTES};
use crate::pim::Credentials;

/// How long a Secret read is reused. Short, so a rotated key is picked up within seconds; a
/// cached key that the API rejects is dropped at once.
const SECRET_TTL: Duration = Duration::from_secs(5);

/// (namespace, name, key field, secret field)
type SecretKey = (String, String, String, String);

struct Kept {
    /// When it was read (`None` once the API rejected it): reused for `SECRET_TTL`.
    read: Option<Instant>,
    /// When a reconcile last asked for it.
    used: Instant,
    creds: Credentials,
}

#[derive(Default)]
struct Inner {
    kept: HashMap<SecretKey, Kept>,
    /// One read in flight per Secret: the others wait for it.
    reading: HashMap<SecretKey, Arc<tokio::sync::Mutex<()>>>,
    /// (namespace, environment) pairs granted the operator's default credentials once, so a
    /// deletion there still works after the grant is withdrawn.
    granted: HashSet<(String, String)>,
    swept: Option<Instant>,
}

/// The last key read from each Secret. Per Secret, not per resource: thousands of resources
/// share a few Secrets.
pub struct SecretCache {
    inner: Mutex<Inner>,
    keep_for: Duration,
}

impl Default for SecretCache {
    fn default() -> Self {
        Self::new(Duration::from_secs(600))
    }
}

fn secret_key(namespace: &str, name: &str, key_field: &str, secret_field: &str) -> SecretKey {
    (
        namespace.to_string(),
        name.to_string(),
        key_field.to_string(),
        secret_field.to_string(),
    )
}

impl SecretCache {
    /// A cache that forgets a Secret no reconcile asked for in `keep_for`.
    pub fn new(keep_for: Duration) -> Self {
        Self {
            inner: Mutex::default(),
            keep_for,
        }
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock();
        let now = Instant::now();
        if inner
            .swept
            .is_none_or(|t| now.duration_since(t) >= self.keep_for / 4)
        {
            let keep_for = self.keep_for;
            inner
                .kept
                .retain(|_, k| now.duration_since(k.used) < keep_for);
            inner.swept = Some(now);
        }
        inner
    }

    /// The key reused from a read in the last `SECRET_TTL`.
    fn fresh(&self, key: &SecretKey) -> Option<Credentials> {
        let mut inner = self.lock();
        let k = inner.kept.get_mut(key)?;
        k.used = Instant::now();
        k.read
            .filter(|at| at.elapsed() < SECRET_TTL)
            .map(|_| k.creds.clone())
    }

    pub(crate) async fn read(
        &self,
        client: &Client,
        namespace: &str,
        name: &str,
        key_field: &str,
        secret_field: &str,
    ) -> Result<Credentials, CredentialsError> {
        let cache_key = secret_key(namespace, name, key_field, secret_field);
        if let Some(c) = self.fresh(&cache_key) {
            return Ok(c);
        }
        // Single flight: the first reader reads, the others wait and take what it read.
        let gate = self
            .lock()
            .reading
            .entry(cache_key.clone())
            .or_default()
            .clone();
        let result = {
            let _turn = gate.lock().await;
            match self.fresh(&cache_key) {
                Some(c) => Ok(c),
                None => {
                    self.get(client, &cache_key, namespace, name, key_field, secret_field)
                        .await
                }
            }
        };
        let mut inner = self.lock();
        if inner
            .reading
            .get(&cache_key)
            .is_some_and(|g| Arc::ptr_eq(g, &gate) && Arc::strong_count(&gate) == 2)
        {
            inner.reading.remove(&cache_key);
        }
        result
    }

    async fn get(
        &self,
        client: &Client,
        cache_key: &SecretKey,
        namespace: &str,
        name: &str,
        key_field: &str,
        secret_field: &str,
    ) -> Result<Credentials, CredentialsError> {
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let secret = api
            .get_opt(name)
            .await?
            .ok_or_else(|| CredentialsError::SecretNotFound {
                namespace: namespace.into(),
                name: name.into(),
            })?;
        let field = |k: &str| {
            let value = secret
                .data
                .as_ref()
                .and_then(|d| d.get(k))
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| CredentialsError::MissingKey {
                    namespace: namespace.into(),
                    name: name.into(),
                    key: k.into(),
                })?;
            if value.len() > MAX_CREDENTIAL_BYTES {
                return Err(CredentialsError::TooLong {
                    namespace: namespace.into(),
                    name: name.into(),
                    key: k.into(),
                    bytes: value.len(),
                });
            }
            Ok(value)
        };
        let creds = Credentials::new(field(key_field)?, field(secret_field)?);
        let now = Instant::now();
        self.lock().kept.insert(
            cache_key.clone(),
            Kept {
                read: Some(now),
                used: now,
                creds: creds.clone(),
            },
        );
        Ok(creds)
    }

    /// The last key read from a Secret, however long ago (within `keep_for` of its last use).
    pub(crate) fn last(
        &self,
        namespace: &str,
        name: &str,
        key_field: &str,
        secret_field: &str,
    ) -> Option<Credentials> {
        let key = secret_key(namespace, name, key_field, secret_field);
        let mut inner = self.lock();
        let k = inner.kept.get_mut(&key)?;
        k.used = Instant::now();
        Some(k.creds.clone())
    }

    /// Stops reusing credentials the API just rejected: the next read goes to the Secret.
    pub fn forget(&self, creds: &Credentials) {
        for k in self.lock().kept.values_mut() {
            if &k.creds == creds {
                k.read = None;
            }
        }
    }

    /// Records that resources in `namespace` were granted the default credentials for
    /// `environment`.
    pub(crate) fn grant(&self, namespace: &str, environment: &str) {
        self.lock()
            .granted
            .insert((namespace.to_string(), environment.to_string()));
    }

    /// Whether resources in `namespace` were once granted the default credentials for
    /// `environment`.
    pub(crate) fn was_granted(&self, namespace: &str, environment: &str) -> bool {
        self.lock()
            .granted
            .contains(&(namespace.to_string(), environment.to_string()))
    }

    /// Forgets everything kept for a namespace that is gone: its Secrets' keys and its grants.
    pub fn forget_namespace(&self, namespace: &str) {
        let mut inner = self.lock();
        inner.kept.retain(|k, _| k.0 != namespace);
        inner.granted.retain(|(ns, _)| ns != namespace);
    }

    /// Secrets and grants kept, for tests of eviction.
    pub(crate) fn len(&self) -> usize {
        let inner = self.lock();
        inner.kept.len() + inner.granted.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(c: &SecretCache, ns: &str, name: &str, idle: Duration) {
        let now = Instant::now();
        c.lock().kept.insert(
            secret_key(ns, name, "apiKey", "apiSecret"),
            Kept {
                read: Some(now),
                used: now.checked_sub(idle).unwrap_or(now),
                creds: Credentials::new("K", "S"),
            },
        );
    }

    #[test]
    fn a_gone_namespace_takes_its_keys_and_grants_along() {
        let c = SecretCache::default();
        kept(&c, "a", "creds", Duration::ZERO);
        kept(&c, "b", "creds", Duration::ZERO);
        c.grant("a", "env-1");
        c.grant("b", "env-1");
        c.forget_namespace("a");
        assert!(c.last("a", "creds", "apiKey", "apiSecret").is_none());
        assert!(!c.was_granted("a", "env-1"));
        assert!(c.last("b", "creds", "apiKey", "apiSecret").is_some());
        assert!(c.was_granted("b", "env-1"));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn a_secret_nobody_asked_for_in_keep_for_is_forgotten_at_the_next_sweep() {
        let c = SecretCache::new(Duration::from_secs(600));
        kept(&c, "a", "recent", Duration::from_secs(599));
        kept(&c, "a", "idle", Duration::from_secs(601));
        c.lock().swept = None;
        assert!(c.last("a", "idle", "apiKey", "apiSecret").is_none());
        assert!(c.last("a", "recent", "apiKey", "apiSecret").is_some());
        assert_eq!(c.len(), 1);
    }
}
