//! What Confluent Cloud holds, cached per (API key, environment, API version): one paginated
//! LIST serves every resource of an environment, instead of one GET each. Concurrent lookups of
//! an environment share a single refresh.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::crd::PendingCreate;
use crate::pim::{ApiVersion, Credentials, Integration, ListFilter, PimClient, PimError};

use super::decide::{api_version, holds_key};

#[derive(Default)]
struct Snapshot {
    fetched: Option<Instant>,
    /// Boxed: a map's table has room for more entries than it holds, and a boxed entry is a
    /// pointer, not the 300-byte `Integration`.
    items: HashMap<String, Box<Integration>>,
}

type Entry = Arc<tokio::sync::Mutex<Snapshot>>;

/// What a snapshot keeps of an integration. The envelope (`api_version`, `kind`) and the
/// environment's links are the same for every item and nothing reads them; at thousands of
/// integrations they are a good part of the cache.
fn kept(mut i: Integration) -> Box<Integration> {
    i.api_version = String::new();
    i.kind = String::new();
    i.environment.related = None;
    i.environment.resource_name = None;
    Box::new(i)
}

/// (API key, environment, version)
type EntryKey = (Arc<str>, String, ApiVersion);

/// The per-environment cache of integrations.
#[derive(Default)]
pub struct RemoteCache {
    envs: Mutex<HashMap<EntryKey, Entry>>,
}

impl RemoteCache {
    fn entry(&self, creds: &Credentials, env: &str, version: ApiVersion) -> Entry {
        let mut envs = self.envs.lock().unwrap_or_else(|e| e.into_inner());
        envs.entry((creds.key.clone(), env.to_string(), version))
            .or_default()
            .clone()
    }

    /// Refreshes the snapshot when it is older than `max_age` (zero forces a LIST).
    async fn fresh<'a>(
        &self,
        entry: &'a Entry,
        pim: &PimClient,
        creds: &Credentials,
        (env, version): (&str, ApiVersion),
        max_age: Duration,
    ) -> Result<tokio::sync::MutexGuard<'a, Snapshot>, PimError> {
        let requested = Instant::now();
        let mut snap = entry.lock().await;
        // A refresh that finished after we asked is as good as our own.
        let stale = match snap.fetched {
            None => true,
            Some(t) => t < requested && requested.duration_since(t) >= max_age,
        };
        if stale {
            tracing::debug!(env, ?version, forced = max_age.is_zero(), age_ms = ?snap.fetched.map(|t| t.elapsed().as_millis()), "listing integrations");
            // `pim/v1` lists AWS only; one `pim/v2` listing serves GCP and Azure together. No
            // provider filter: the spec calls it an exact match, and v2 answers the provider in
            // lower case, so matching is done here, ignoring case (`holds_key`).
            let items = pim.list(creds, version, env, ListFilter::default()).await?;
            snap.items = items.into_iter().map(|i| (i.id.clone(), kept(i))).collect();
            snap.fetched = Some(Instant::now());
        }
        Ok(snap)
    }

    /// The integration `id`, or `None` when it does not exist. Absence from the snapshot is
    /// confirmed with a GET, so a stale snapshot never reports a live integration as gone.
    pub async fn by_id(
        &self,
        pim: &PimClient,
        creds: &Credentials,
        (env, version): (&str, ApiVersion),
        id: &str,
        max_age: Duration,
    ) -> Result<Option<Integration>, PimError> {
        let entry = self.entry(creds, env, version);
        {
            let snap = self
                .fresh(&entry, pim, creds, (env, version), max_age)
                .await?;
            if let Some(i) = snap.items.get(id) {
                return Ok(Some(Integration::clone(i)));
            }
        }
        match pim.get(creds, version, env, id).await {
            Ok(i) => {
                entry
                    .lock()
                    .await
                    .items
                    .insert(i.id.clone(), kept(i.clone()));
                Ok(Some(i))
            }
            Err(PimError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The integrations holding a natural key (`decide::holds_key`). With `max_age` zero, a match
    /// already cached is trusted (it was seen to exist), but a miss is confirmed against the API:
    /// this is the check before creating again after an interrupted create. `pim/v2` confirms
    /// with a LIST filtered by display name (never by provider, whose case the server chooses)
    /// rather than a full one.
    pub async fn by_key(
        &self,
        pim: &PimClient,
        creds: &Credentials,
        key: &PendingCreate,
        max_age: Duration,
    ) -> Result<Vec<Integration>, PimError> {
        let version = api_version(key.provider());
        let env = key.environment.as_str();
        let entry = self.entry(creds, env, version);
        let matching = |snap: &Snapshot| -> Vec<Integration> {
            let mut v: Vec<Integration> = snap
                .items
                .values()
                .filter(|i| holds_key(i, key))
                .map(|i| Integration::clone(i))
                .collect();
            v.sort_by(|a, b| a.id.cmp(&b.id));
            v
        };
        if max_age.is_zero() {
            let cached = matching(&*entry.lock().await);
            if !cached.is_empty() {
                return Ok(cached);
            }
            if version == ApiVersion::V2 {
                let filter = ListFilter {
                    display_name: Some(&key.display_name),
                    ..Default::default()
                };
                let found: Vec<Integration> = pim
                    .list(creds, version, env, filter)
                    .await?
                    .into_iter()
                    .filter(|i| holds_key(i, key))
                    .collect();
                let mut snap = entry.lock().await;
                for i in &found {
                    snap.items.insert(i.id.clone(), kept(i.clone()));
                }
                return Ok(found);
            }
        }
        let snap = self
            .fresh(&entry, pim, creds, (env, version), max_age)
            .await?;
        Ok(matching(&snap))
    }

    /// Records an integration we just created, changed or read.
    pub async fn insert(&self, creds: &Credentials, version: ApiVersion, i: &Integration) {
        let entry = self.entry(creds, &i.environment.id, version);
        entry
            .lock()
            .await
            .items
            .insert(i.id.clone(), kept(i.clone()));
    }

    /// Forgets an integration we just deleted.
    pub async fn remove(&self, creds: &Credentials, (env, version): (&str, ApiVersion), id: &str) {
        let entry = self.entry(creds, env, version);
        entry.lock().await.items.remove(id);
    }
}
