//! The Secrets and Namespaces (grants, pauses) reconciles read, cached for a few seconds so a burst of
//! reconciles reads each once; a Secret's last key is kept after that for deletions.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{Api, Client, ResourceExt};

use super::lock;

/// The Namespace annotation that grants a namespace the default credentials, for a comma-separated
/// list of environment ids, or `*` for all.
pub const DEFAULT_CREDENTIALS_ANNOTATION: &str = "pim.confluent.cloud/default-credentials";
use crate::controller::error::CredentialsError;
use crate::pim::Credentials;

/// How long a Secret read is reused. Short, so a rotated key is picked up within seconds; a
/// cached key that the API rejects is dropped at once.
const SECRET_TTL: Duration = Duration::from_secs(5);

/// (namespace, name, key field, secret field)
type SecretKey = (String, String, String, String);

/// The last key read from each Secret, and when (`None` once the API rejected it): reused for
/// `SECRET_TTL`, and kept after that so a deletion still works when the Secret went first (as it
/// does when a whole namespace is deleted). Per Secret, not per resource: thousands of resources
/// share a few Secrets.
#[derive(Default)]
pub struct SecretCache(Mutex<HashMap<SecretKey, (Option<Instant>, Credentials)>>);

fn secret_key(namespace: &str, name: &str, key_field: &str, secret_field: &str) -> SecretKey {
    (
        namespace.to_string(),
        name.to_string(),
        key_field.to_string(),
        secret_field.to_string(),
    )
}

/// What a Namespace's annotations say to the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceFacts {
    /// The default-credentials grant (`DEFAULT_CREDENTIALS_ANNOTATION`).
    pub grant: Option<String>,
    /// Every resource in it is paused (`PAUSED_ANNOTATION`).
    pub paused: bool,
}

/// The Namespaces read in the last `SECRET_TTL`: a grant or pause added or removed is seen within
/// seconds, and a burst of reconciles reads each Namespace once.
#[derive(Default)]
pub struct NamespaceCache(
    Mutex<HashMap<String, (Instant, NamespaceFacts)>>,
    std::sync::atomic::AtomicBool,
);

impl NamespaceCache {
    /// A read of a Namespace was forbidden (403): the operator has no RBAC for Namespaces.
    pub(crate) fn unreadable(&self) -> bool {
        self.1.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn set_unreadable(&self) {
        self.1.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// What the namespace's annotations say (nothing, for a namespace that does not exist).
    pub(crate) async fn facts(
        &self,
        client: &Client,
        namespace: &str,
    ) -> Result<NamespaceFacts, kube::Error> {
        if let Some((at, f)) = lock(&self.0).get(namespace)
            && at.elapsed() < SECRET_TTL
        {
            return Ok(f.clone());
        }
        let api: Api<Namespace> = Api::all(client.clone());
        let facts = api
            .get_opt(namespace)
            .await?
            .map(|ns| NamespaceFacts {
                grant: ns
                    .annotations()
                    .get(DEFAULT_CREDENTIALS_ANNOTATION)
                    .cloned(),
                paused: crate::crd::says_paused(ns.metadata.annotations.as_ref()),
            })
            .unwrap_or_default();
        lock(&self.0).insert(namespace.to_string(), (Instant::now(), facts.clone()));
        Ok(facts)
    }

    /// The namespace's default-credentials grant, if any.
    pub(crate) async fn grant(
        &self,
        client: &Client,
        namespace: &str,
    ) -> Result<Option<String>, kube::Error> {
        Ok(self.facts(client, namespace).await?.grant)
    }
}

/// Whether a grant (the annotation's value) covers an environment.
pub fn granted(grant: Option<&str>, environment: &str) -> bool {
    grant.is_some_and(|g| {
        g.split(',')
            .map(str::trim)
            .any(|e| e == "*" || e == environment)
    })
}

impl SecretCache {
    pub(crate) async fn read(
        &self,
        client: &Client,
        namespace: &str,
        name: &str,
        key_field: &str,
        secret_field: &str,
    ) -> Result<Credentials, CredentialsError> {
        let cache_key = secret_key(namespace, name, key_field, secret_field);
        if let Some((Some(at), c)) = lock(&self.0).get(&cache_key)
            && at.elapsed() < SECRET_TTL
        {
            return Ok(c.clone());
        }
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let secret = api
            .get_opt(name)
            .await?
            .ok_or_else(|| CredentialsError::SecretNotFound {
                namespace: namespace.into(),
                name: name.into(),
            })?;
        let field = |k: &str| {
            secret
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
                })
        };
        let creds = Credentials::new(field(key_field)?, field(secret_field)?);
        lock(&self.0).insert(cache_key, (Some(Instant::now()), creds.clone()));
        Ok(creds)
    }

    /// The last key read from a Secret, however long ago.
    pub(crate) fn last(
        &self,
        namespace: &str,
        name: &str,
        key_field: &str,
        secret_field: &str,
    ) -> Option<Credentials> {
        let key = secret_key(namespace, name, key_field, secret_field);
        lock(&self.0).get(&key).map(|(_, c)| c.clone())
    }

    /// Stops reusing credentials the API just rejected: the next read goes to the Secret.
    pub fn forget(&self, creds: &Credentials) {
        for (at, c) in lock(&self.0).values_mut() {
            if c == creds {
                *at = None;
            }
        }
    }
}
