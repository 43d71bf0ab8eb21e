//! What Confluent Cloud holds, cached per (credentials, environment, API version): one paginated
//! LIST serves every resource of an environment, instead of one GET each. Concurrent lookups of
//! an environment share a single refresh.
//!
//! An entry is keyed by the whole credentials, key id **and** secret, and is filled only by
//! answers to those credentials: a cached answer reaches only credentials the API itself
//! accepted. Key ids are not secrets; a second Secret naming the same key id with a wrong
//! secret has an entry of its own, empty until the API answers it (with a 401).

use parking_lot::Mutex;
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::crd::PendingCreate;
use crate::pim::{ApiVersion, Credentials, Integration, ListFilter, PimClient, PimError};

use crate::controller::decide::{api_version, holds_key};

#[derive(Default)]
struct Snapshot {
    /// When the listing it holds was asked for: what existed from then on is in it.
    listed: Option<Instant>,
    items: HashMap<String, Listed>,
}

/// How recent a listing a lookup needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recent {
    /// Asked for within this long (a periodic check).
    Within(Duration),
    /// Asked for at this instant or later: after the last answer to a create that may have made
    /// what is sought (a 5xx, a lost answer), so the listing shows it if it was made. Any
    /// resource's listing of the environment will do, not only one of its own.
    Since(Instant),
}

impl Recent {
    /// A listing asked for from now on.
    pub fn now() -> Self {
        Recent::Since(Instant::now())
    }
}

type Entry = Arc<tokio::sync::Mutex<Snapshot>>;

/// An integration as a snapshot keeps it: its JSON, one allocation where the decoded form has a
/// dozen (megabytes at 10,000 integrations), and hashes of the two fields a natural key compares
/// (`holds_key`), so a lookup by key decodes only its candidates. The envelope (`api_version`,
/// `kind`) and the environment's links are the same for every item; nothing reads them.
struct Listed {
    json: Box<str>,
    role: u64,
    name: u64,
}

fn hash(s: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(s)
}

impl Listed {
    fn of(mut i: Integration) -> Self {
        i.api_version = String::new();
        i.kind = String::new();
        i.environment.related = None;
        i.environment.resource_name = None;
        Self {
            role: hash(i.customer_iam_role_arn().unwrap_or_default()),
            name: hash(&i.display_name),
            // Serializing a decoded value cannot fail (string keys, no non-finite floats).
            json: serde_json::to_string(&i).unwrap_or_default().into(),
        }
    }

    /// The integration; `None` only if it could not be decoded, which our own encoding rules out
    /// (treated as not cached: the caller asks the API).
    fn get(&self) -> Option<Integration> {
        serde_json::from_str(&self.json).ok()
    }

    /// Whether it may hold `key`: its field that `holds_key` compares hashes the same.
    fn may_hold(&self, key: &PendingCreate) -> bool {
        match &key.customer_iam_role_arn {
            Some(arn) => self.role == hash(arn),
            None => self.name == hash(&key.display_name),
        }
    }
}

/// (credentials, environment, version): never the key id alone (see the module's doc).
type EntryKey = (Credentials, String, ApiVersion);

/// The per-environment cache of integrations. An entry unused for `unused_for` is dropped, so a
/// rotated API key or a deleted environment does not stay behind.
pub struct RemoteCache {
    envs: Mutex<Envs>,
    unused_for: Duration,
}

#[derive(Default)]
struct Envs {
    map: HashMap<EntryKey, (Instant, Entry)>,
    swept: Option<Instant>,
}

impl Default for RemoteCache {
    fn default() -> Self {
        Self::new(Duration::from_secs(600))
    }
}

impl RemoteCache {
    /// A cache whose entries go once unused for `unused_for` (the controller: two resync
    /// periods, so every entry a resync uses stays).
    pub fn new(unused_for: Duration) -> Self {
        Self {
            envs: Mutex::default(),
            unused_for,
        }
    }

    fn entry(&self, creds: &Credentials, env: &str, version: ApiVersion) -> Entry {
        let now = Instant::now();
        let mut envs = self.envs.lock();
        if envs
            .swept
            .is_none_or(|t| now.duration_since(t) >= self.unused_for / 4)
        {
            let horizon = self.unused_for;
            // An entry a lookup still holds is kept, however old.
            envs.map.retain(|_, (used, e)| {
                now.duration_since(*used) < horizon || Arc::strong_count(e) > 1
            });
            envs.swept = Some(now);
        }
        let (used, e) = envs
            .map
            .entry((creds.clone(), env.to_string(), version))
            .or_insert_with(|| (now, Entry::default()));
        *used = now;
        e.clone()
    }

    /// Entries held: (credentials, environment, version) triples.
    pub fn len(&self) -> usize {
        self.envs.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Refreshes the snapshot unless its listing is as `recent` as asked.
    async fn fresh<'a>(
        &self,
        entry: &'a Entry,
        pim: &PimClient,
        creds: &Credentials,
        (env, version): (&str, ApiVersion),
        recent: Recent,
    ) -> Result<tokio::sync::MutexGuard<'a, Snapshot>, PimError> {
        let mut snap = entry.lock().await;
        // A refresh asked for while we waited for the lock is as good as our own.
        let stale = match (snap.listed, recent) {
            (None, _) => true,
            (Some(t), Recent::Within(max_age)) => t.elapsed() >= max_age,
            (Some(t), Recent::Since(since)) => t < since,
        };
        if stale {
            let asked = Instant::now();
            tracing::debug!(env, ?version, ?recent, age_ms = ?snap.listed.map(|t| t.elapsed().as_millis()), "listing integrations");
            // `pim/v1` lists AWS only; one `pim/v2` listing serves GCP and Azure together. No
            // provider filter: the spec calls it an exact match, and v2 answers the provider in
            // lower case, so matching is done here, ignoring case (`holds_key`).
            let items = pim
                .list_as(creds, version, env, ListFilter::default(), |i| {
                    (i.id.clone(), Listed::of(i))
                })
                .await?;
            // Emptied first, so the old snapshot's memory is reused, not added to.
            snap.items.clear();
            snap.items.extend(items);
            snap.listed = Some(asked);
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
        recent: Recent,
    ) -> Result<Option<Integration>, PimError> {
        let entry = self.entry(creds, env, version);
        {
            let snap = self
                .fresh(&entry, pim, creds, (env, version), recent)
                .await?;
            if let Some(i) = snap.items.get(id).and_then(Listed::get) {
                return Ok(Some(i));
            }
        }
        match pim.get(creds, version, env, id).await {
            Ok(i) => {
                entry
                    .lock()
                    .await
                    .items
                    .insert(i.id.clone(), Listed::of(i.clone()));
                Ok(Some(i))
            }
            Err(PimError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The integrations holding a natural key (`decide::holds_key`). With `Recent::Since`, a
    /// match already cached is trusted (it was seen to exist), but a miss is confirmed against a
    /// listing asked for since then: this is the check before creating again after an
    /// interrupted create. `pim/v2` confirms with a LIST filtered by display name (never by
    /// provider, whose case the server chooses) rather than a full one.
    pub async fn by_key(
        &self,
        pim: &PimClient,
        creds: &Credentials,
        key: &PendingCreate,
        recent: Recent,
    ) -> Result<Vec<Integration>, PimError> {
        let version = api_version(key.provider());
        let env = key.environment.as_str();
        let entry = self.entry(creds, env, version);
        let matching = |snap: &Snapshot| -> Vec<Integration> {
            let mut v: Vec<Integration> = snap
                .items
                .values()
                .filter(|k| k.may_hold(key))
                .filter_map(Listed::get)
                .filter(|i| holds_key(i, key))
                .collect();
            v.sort_by(|a, b| a.id.cmp(&b.id));
            v
        };
        if let Recent::Since(_) = recent {
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
                    snap.items.insert(i.id.clone(), Listed::of(i.clone()));
                }
                return Ok(found);
            }
        }
        let snap = self
            .fresh(&entry, pim, creds, (env, version), recent)
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
            .insert(i.id.clone(), Listed::of(i.clone()));
    }

    /// Forgets an integration we just deleted.
    pub async fn remove(&self, creds: &Credentials, (env, version): (&str, ApiVersion), id: &str) {
        let entry = self.entry(creds, env, version);
        entry.lock().await.items.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::CloudProvider;
    use crate::emulator::{self, EmulatorConfig};
    use serde_json::json;

    fn integrations() -> Vec<Integration> {
        [
            json!({"api_version": "pim/v1", "kind": "Integration", "id": "dlz-1",
                "display_name": "orders", "provider": "AWS",
                "config": {"kind": "AwsIntegrationConfig",
                    "customer_iam_role_arn": "arn:aws:iam::123456789012:role/r",
                    "iam_role_arn": "arn:aws:iam::000000000000:role/cflt", "external_id": "ext"},
                "usages": ["lcc-1", "lcc-2"],
                "environment": {"id": "env-1", "related": "https://x/env-1", "resource_name": "crn://x"}}),
            json!({"api_version": "pim/v2", "kind": "Integration", "id": "cspi-1",
                "display_name": "draft", "provider": "gcp", "status": "DRAFT",
                "config": {"kind": "GcpIntegrationConfig", "customer_google_service_account": "",
                    "google_service_account": "cflt@cflt.iam.gserviceaccount.com"},
                "environment": {"id": "env-1"}}),
            json!({"id": "cspi-2", "display_name": "az", "provider": "azure", "status": "ACTIVE",
                "config": {"kind": "AzureIntegrationConfig",
                    "customer_azure_tenant_id": "00000000-0000-0000-0000-000000000001",
                    "confluent_multi_tenant_app_id": "app"},
                "environment": {"id": "env-1"}}),
            json!({"id": "cspi-3", "display_name": "new", "provider": "oracle",
                "config": {"kind": "OracleIntegrationConfig", "tenancy": "t"},
                "environment": {"id": "env-1"}}),
        ]
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect()
    }

    /// A kept integration reads back as it was, less only the envelope and environment links.
    #[test]
    fn kept_integrations_read_back_whole() {
        for i in integrations() {
            let mut want = i.clone();
            want.api_version = String::new();
            want.kind = String::new();
            want.environment.related = None;
            want.environment.resource_name = None;
            assert_eq!(Listed::of(i.clone()).get().as_ref(), Some(&want), "{i:?}");
        }
    }

    /// The hash prefilter never hides a match: whatever `holds_key` accepts, `may_hold` does.
    #[test]
    fn the_key_prefilter_never_hides_a_match() {
        let all = integrations();
        let keys = [
            (
                Some("arn:aws:iam::123456789012:role/r"),
                "x",
                CloudProvider::Aws,
            ),
            (
                Some("arn:aws:iam::123456789012:role/other"),
                "orders",
                CloudProvider::Aws,
            ),
            (None, "draft", CloudProvider::Gcp),
            (None, "az", CloudProvider::Azure),
            (None, "orders", CloudProvider::Gcp),
        ];
        let mut matched = 0;
        for (arn, name, provider) in keys {
            let key = PendingCreate {
                environment: "env-1".into(),
                display_name: name.into(),
                provider: Some(provider),
                customer_iam_role_arn: arn.map(String::from),
            };
            for i in &all {
                let kept = Listed::of(i.clone());
                if holds_key(i, &key) {
                    matched += 1;
                    assert!(kept.may_hold(&key), "{i:?} holds {key:?}");
                }
                if arn.is_some() && i.customer_iam_role_arn() != arn {
                    assert!(!kept.may_hold(&key), "{i:?} for {key:?}");
                }
            }
        }
        assert_eq!(matched, 3, "the table has three true matches");
    }

    /// A lookup after an interrupted create needs a listing asked for since that create was
    /// answered: any resource's will do (in a storm, 25 resources of an environment each
    /// listed again, and each listing was refused 40 % of the time), an older one will not.
    #[tokio::test]
    async fn a_listing_since_an_interrupted_create_serves_every_lookup_after_it() {
        let em = emulator::spawn_local(EmulatorConfig::default())
            .await
            .unwrap();
        let pim = PimClient::new(&em.base_url, Duration::from_secs(5)).unwrap();
        let creds = Credentials::new(emulator::DEMO_API_KEY, emulator::DEMO_API_SECRET);
        let cache = RemoteCache::default();
        let key = |n: u32| PendingCreate {
            environment: "env-recent".into(),
            display_name: format!("pi-{n}"),
            provider: None,
            customer_iam_role_arn: Some(format!("arn:aws:iam::123456789012:role/r{n}")),
        };
        let lists = || em.state.count("v1_list");
        let answered = Instant::now();
        cache
            .by_key(&pim, &creds, &key(1), Recent::Since(answered))
            .await
            .unwrap();
        assert_eq!(lists(), 1);
        // Another resource whose create was answered at the same moment: already listed since.
        cache
            .by_key(&pim, &creds, &key(2), Recent::Since(answered))
            .await
            .unwrap();
        assert_eq!(lists(), 1, "a listing asked for since then serves it");
        // A create answered after that listing was asked for: listed again.
        cache
            .by_key(&pim, &creds, &key(3), Recent::now())
            .await
            .unwrap();
        assert_eq!(lists(), 2, "a listing asked for before does not");
        // A periodic check takes what is young enough.
        cache
            .by_key(
                &pim,
                &creds,
                &key(4),
                Recent::Within(Duration::from_secs(60)),
            )
            .await
            .unwrap();
        assert_eq!(lists(), 2);
    }
}
