//! The Confluent Cloud API key a resource acts with: its `credentialsRef` Secret, else the
//! operator's default. Secrets are cached for a few seconds so a burst of reconciles reads each
//! once; a Secret's last key, and the default credentials granted per namespace and environment,
//! are remembered for deletions (`state/secrets.rs`), never per resource.

use kube::ResourceExt;

use crate::controller::decide::reasons::Reason;
use crate::controller::error::CredentialsError;
use crate::controller::error::Error;
use crate::controller::state::context::{
    Context, DEFAULT_CREDENTIALS_ANNOTATION, DefaultCredentials, DefaultCredentialsScope,
};
use crate::controller::state::namespaces::{Unreadable, granted};
use crate::crd::ProviderIntegration;
use crate::pim::Credentials;

/// The credentials of a resource, remembered as the last that worked for it.
pub(crate) async fn of(
    ctx: &Context,
    pi: &ProviderIntegration,
) -> Result<Credentials, CredentialsError> {
    let ns = pi.namespace().unwrap_or_default();
    if pi.spec.credentials_ref.is_none()
        && ctx.config.default_credentials_scope == DefaultCredentialsScope::Annotated
        && !matches!(ctx.config.default_credentials, DefaultCredentials::None)
    {
        let grant = match ctx.namespaces.facts(&ns) {
            Ok(f) => f.grant,
            Err(Unreadable::Unknown) => return Err(CredentialsError::NamespaceUnknown(ns)),
            // Without RBAC for Namespaces no grant can be read: none is given.
            Err(Unreadable::Forbidden) => None,
        };
        if !granted(grant.as_deref(), &pi.spec.environment) {
            return Err(CredentialsError::NotAllowed {
                namespace: ns,
                environment: pi.spec.environment.clone(),
            });
        }
        ctx.secrets.grant(&ns, &pi.spec.environment);
    }
    let creds = match (&pi.spec.credentials_ref, &ctx.config.default_credentials) {
        (Some(r), _) => {
            ctx.secrets
                .read(
                    &ctx.client,
                    &ns,
                    &r.name,
                    &r.api_key_field,
                    &r.api_secret_field,
                )
                .await?
        }
        (None, DefaultCredentials::Static(c)) => c.clone(),
        (None, DefaultCredentials::Secret { namespace, name }) => {
            ctx.secrets
                .read(&ctx.client, namespace, name, "apiKey", "apiSecret")
                .await?
        }
        (None, DefaultCredentials::None) => return Err(CredentialsError::NoDefault),
    };
    Ok(creds)
}

/// The credentials that last worked for a resource: its Secret's last key, or the default
/// credentials once granted to its namespace and environment.
pub(crate) fn remembered(ctx: &Context, pi: &ProviderIntegration) -> Option<Credentials> {
    let ns = pi.namespace().unwrap_or_default();
    match &pi.spec.credentials_ref {
        Some(r) => ctx
            .secrets
            .last(&ns, &r.name, &r.api_key_field, &r.api_secret_field),
        None if ctx.config.default_credentials_scope == DefaultCredentialsScope::Annotated
            && !ctx.secrets.was_granted(&ns, &pi.spec.environment) =>
        {
            None
        }
        None => match &ctx.config.default_credentials {
            DefaultCredentials::Static(c) => Some(c.clone()),
            DefaultCredentials::Secret { namespace, name } => {
                ctx.secrets.last(namespace, name, "apiKey", "apiSecret")
            }
            DefaultCredentials::None => None,
        },
    }
}

/// The credentials for the apply path, or why there are none: the reason and a message that
/// says what to fix, for the driver to stall the resource with.
pub(crate) async fn for_apply(
    ctx: &Context,
    pi: &ProviderIntegration,
) -> Result<Result<Credentials, (Reason, String)>, Error> {
    let missing = match of(ctx, pi).await {
        Ok(c) => return Ok(Ok(c)),
        Err(CredentialsError::Kube(e)) => return Err(Error::Kube(e)),
        Err(CredentialsError::NamespaceUnknown(ns)) => return Err(Error::NamespaceUnknown(ns)),
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
    Ok(Err(missing))
}
