//! The Confluent Cloud API key a resource acts with: its `credentialsRef` Secret, else the
//! operator's default. Secrets are cached for a few seconds so a burst of reconciles reads each
//! once, and the last key that worked is remembered per resource for its deletion.

use std::{
    collections::HashMap,
    ops::ControlFlow,
    sync::Mutex,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{Api, Client, ResourceExt, runtime::controller::Action};

use super::context::{
    Context, DEFAULT_CREDENTIALS_ANNOTATION, DefaultCredentials, DefaultCredentialsScope, lock,
};
use super::reasons::Reason;
use super::{Error, status};
use crate::crd::ProviderIntegration;
use crate::pim::Credentials;

/// Why credentials could not be loaded; each is something a user must fix.
#[derive(thiserror::Error, Debug)]
pub enum CredentialsError {
    #[error("Secret {namespace}/{name} not found")]
    SecretNotFound { namespace: String, name: String },
    #[error("Secret {namespace}/{name} has no non-empty key \"{key}\"")]
    MissingKey {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("no credentialsRef and the operator has no default credentials")]
    NoDefault,
    #[error(
        "the operator's default credentials are not granted to namespace {namespace} for environment {environment}"
    )]
    NotAllowed {
        namespace: String,
        environment: String,
    },
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

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

/// The default-credentials grants of Namespaces read in the last `SECRET_TTL`: a grant added or
/// revoked is seen within seconds, and a burst of reconciles reads each Namespace once.
#[derive(Default)]
pub struct GrantCache(Mutex<HashMap<String, (Instant, Option<String>)>>);

impl GrantCache {
    /// The namespace's annotation, if any.
    async fn grant(&self, client: &Client, namespace: &str) -> Result<Option<String>, kube::Error> {
        if let Some((at, g)) = lock(&self.0).get(namespace)
            && at.elapsed() < SECRET_TTL
        {
            return Ok(g.clone());
        }
        let api: Api<Namespace> = Api::all(client.clone());
        let grant = api.get_opt(namespace).await?.and_then(|ns| {
            ns.annotations()
                .get(DEFAULT_CREDENTIALS_ANNOTATION)
                .cloned()
        });
        lock(&self.0).insert(namespace.to_string(), (Instant::now(), grant.clone()));
        Ok(grant)
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
    async fn read(
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
    fn last(
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

impl Context {
    /// The credentials of a resource, remembered as the last that worked for it.
    pub(super) async fn credentials(
        &self,
        pi: &ProviderIntegration,
    ) -> Result<Credentials, CredentialsError> {
        let ns = pi.namespace().unwrap_or_default();
        if pi.spec.credentials_ref.is_none()
            && self.config.default_credentials_scope == DefaultCredentialsScope::Annotated
            && !matches!(self.config.default_credentials, DefaultCredentials::None)
        {
            let grant = self.grants.grant(&self.client, &ns).await?;
            if !granted(grant.as_deref(), &pi.spec.environment) {
                return Err(CredentialsError::NotAllowed {
                    namespace: ns,
                    environment: pi.spec.environment.clone(),
                });
            }
        }
        let creds = match (&pi.spec.credentials_ref, &self.config.default_credentials) {
            (Some(r), _) => {
                self.secrets
                    .read(
                        &self.client,
                        &ns,
                        &r.name,
                        &r.api_key_field,
                        &r.api_secret_field,
                    )
                    .await?
            }
            (None, DefaultCredentials::Static(c)) => c.clone(),
            (None, DefaultCredentials::Secret { namespace, name }) => {
                self.secrets
                    .read(&self.client, namespace, name, "apiKey", "apiSecret")
                    .await?
            }
            (None, DefaultCredentials::None) => return Err(CredentialsError::NoDefault),
        };
        if pi.spec.credentials_ref.is_none() {
            self.memory(pi, |m| m.credentials = Some(creds.clone()));
        }
        Ok(creds)
    }

    /// The credentials that last worked for a resource: its Secret's last key, or the default
    /// credentials it was once allowed.
    pub(super) fn remembered_credentials(&self, pi: &ProviderIntegration) -> Option<Credentials> {
        match &pi.spec.credentials_ref {
            Some(r) => self.secrets.last(
                &pi.namespace().unwrap_or_default(),
                &r.name,
                &r.api_key_field,
                &r.api_secret_field,
            ),
            None => self.memory(pi, |m| m.credentials.clone()),
        }
    }
}

/// The credentials for the apply path; when there are none, the resource is stalled with a
/// reason that says what to fix, and reconciling stops there.
pub(super) async fn load(
    ctx: &Context,
    pi: &ProviderIntegration,
) -> Result<ControlFlow<Action, Credentials>, Error> {
    let (reason, message) = match ctx.credentials(pi).await {
        Ok(c) => return Ok(ControlFlow::Continue(c)),
        Err(CredentialsError::Kube(e)) => return Err(Error::Kube(e)),
        Err(e @ CredentialsError::NoDefault) => (
            Reason::NoCredentials,
            format!("{e}; set spec.credentialsRef"),
        ),
        Err(e @ CredentialsError::NotAllowed { .. }) => (
            Reason::CredentialsNotAllowed,
            format!(
                "{e}; set spec.credentialsRef to a Secret of your own, or ask the platform team to grant them \
                 (kubectl annotate namespace {} {DEFAULT_CREDENTIALS_ANNOTATION}={})",
                pi.namespace().unwrap_or_default(),
                pi.spec.environment
            ),
        ),
        Err(e) => (Reason::CredentialsNotFound, e.to_string()),
    };
    Ok(ControlFlow::Break(
        status::stall(ctx, pi, reason, message).await?,
    ))
}
