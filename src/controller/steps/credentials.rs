//! The Confluent Cloud API key a resource acts with: its `credentialsRef` Secret, else the
//! operator's default. Secrets are cached for a few seconds so a burst of reconciles reads each
//! once, and the last key that worked is remembered per resource for its deletion.

use std::ops::ControlFlow;

use kube::{ResourceExt, runtime::controller::Action};

use super::status;
use crate::controller::decide::reasons::Reason;
use crate::controller::error::CredentialsError;
use crate::controller::error::Error;
use crate::controller::state::context::{
    Context, DEFAULT_CREDENTIALS_ANNOTATION, DefaultCredentials, DefaultCredentialsScope,
};
use crate::controller::state::secrets::granted;
use crate::crd::ProviderIntegration;
use crate::pim::Credentials;

impl Context {
    /// The credentials of a resource, remembered as the last that worked for it.
    pub(crate) async fn credentials(
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
    pub(crate) fn remembered_credentials(&self, pi: &ProviderIntegration) -> Option<Credentials> {
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
pub(crate) async fn load(
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
