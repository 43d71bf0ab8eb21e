//! What Confluent Cloud holds, cached per (API key, environment): one paginated LIST serves every
//! resource of an environment, instead of one GET each. Concurrent lookups of an environment
//! share a single refresh.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::crd::PendingCreate;
use crate::pim::{Credentials, Integration, PimClient, PimError};

use super::decide::matches_intent;

#[derive(Default)]
struct Snapshot {
    fetched: Option<Instant>,
    items: HashMap<String, Integration>,
}

type Entry = Arc<tokio::sync::Mutex<Snapshot>>;

/// The per-environment cache of integrations.
#[derive(Default)]
pub struct RemoteCache {
    envs: Mutex<HashMap<(String, String), Entry>>,
}

impl RemoteCache {
    fn entry(&self, creds: &Credentials, env: &str) -> Entry {
        let mut envs = self.envs.lock().unwrap_or_else(|e| e.into_inner());
        envs.entry((creds.key.clone(), env.to_string()))
            .or_default()
            .clone()
    }

    /// Refreshes the snapshot when it is older than `max_age` (zero forces a LIST).
    async fn fresh<'a>(
        &self,
        entry: &'a Entry,
        pim: &PimClient,
        creds: &Credentials,
        env: &str,
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
            tracing::debug!(env, forced = max_age.is_zero(), age_ms = ?snap.fetched.map(|t| t.elapsed().as_millis()), "listing integrations");
            let items = pim.list(creds, env, Some(crate::pim::PROVIDER_AWS)).await?;
            snap.items = items.into_iter().map(|i| (i.id.clone(), i)).collect();
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
        env: &str,
        id: &str,
        max_age: Duration,
    ) -> Result<Option<Integration>, PimError> {
        let entry = self.entry(creds, env);
        {
            let snap = self.fresh(&entry, pim, creds, env, max_age).await?;
            if let Some(i) = snap.items.get(id) {
                return Ok(Some(i.clone()));
            }
        }
        match pim.get(creds, env, id).await {
            Ok(i) => {
                entry.lock().await.items.insert(i.id.clone(), i.clone());
                Ok(Some(i))
            }
            Err(PimError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The integration matching a natural key, if any. With `max_age` zero, a match already
    /// cached is trusted (it was seen to exist), but a miss is confirmed by a fresh LIST: this is
    /// the check before creating again after an interrupted create.
    pub async fn by_key(
        &self,
        pim: &PimClient,
        creds: &Credentials,
        key: &PendingCreate,
        max_age: Duration,
    ) -> Result<Option<Integration>, PimError> {
        let entry = self.entry(creds, &key.environment);
        if max_age.is_zero()
            && let Some(i) = entry
                .lock()
                .await
                .items
                .values()
                .find(|i| matches_intent(i, key))
        {
            return Ok(Some(i.clone()));
        }
        let snap = self
            .fresh(&entry, pim, creds, &key.environment, max_age)
            .await?;
        Ok(snap
            .items
            .values()
            .find(|i| matches_intent(i, key))
            .cloned())
    }

    /// Records an integration we just created or read.
    pub async fn insert(&self, creds: &Credentials, i: &Integration) {
        let entry = self.entry(creds, &i.environment.id);
        entry.lock().await.items.insert(i.id.clone(), i.clone());
    }

    /// Forgets an integration we just deleted.
    pub async fn remove(&self, creds: &Credentials, env: &str, id: &str) {
        let entry = self.entry(creds, env);
        entry.lock().await.items.remove(id);
    }
}
