//! The reconcile loop, as its pipeline: finalizer dispatch, then on the apply path
//! desired → credentials → observe → decide → apply → status → validation, one file per step.
//! Judgement lives in the pure `decide`; HTTP details stay in `pim`; this file is the driver and
//! the error policy.

mod apply;
mod cleanup;
mod context;
mod credentials;
pub mod decide;
pub mod desired;
mod observe;
pub mod outputs;
pub mod reasons;
pub mod remote;
mod run;
mod status;
mod validation;

use std::{ops::ControlFlow, sync::Arc, time::Duration};

use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        controller::Action,
        finalizer::{Event as Finalizer, finalizer},
    },
};
use serde_json::json;
use tracing::{instrument, warn};

pub use context::{Config, Context, DefaultCredentials};
pub use credentials::CredentialsError;
pub use run::{Tally, run};

use crate::crd::{FINALIZER, ProviderIntegration};
use decide::Desired;
use reasons::Reason;

/// The field manager of our writes.
pub const MANAGER: &str = "provider-integration-operator";

/// Errors that end a reconcile; `error_policy` requeues them.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    /// Deletion must wait (in use, API unavailable); the finalizer stays.
    #[error("deletion pending: {message}")]
    DeletionPending { message: String, retry_in: Duration },
    #[error("{0}")]
    Finalizer(Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    fn retry_in(&self) -> Option<Duration> {
        match self {
            Error::DeletionPending { retry_in, .. } => Some(*retry_in),
            Error::Finalizer(f) => match f.as_ref() {
                kube::runtime::finalizer::Error::CleanupFailed(e)
                | kube::runtime::finalizer::Error::ApplyFailed(e) => e.retry_in(),
                _ => None,
            },
            Error::Kube(_) => None,
        }
    }
}

/// The controller's reconcile function.
#[instrument(skip_all, fields(namespace = %pi.namespace().unwrap_or_default(), resource = %pi.name_any()))]
pub async fn reconcile(pi: Arc<ProviderIntegration>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = std::time::Instant::now();
    let api: Api<ProviderIntegration> =
        Api::namespaced(ctx.client.clone(), &pi.namespace().unwrap_or_default());
    let result = match ensure_finalizer(&api, pi).await {
        Ok(pi) => finalizer(&api, FINALIZER, pi, |event| async {
            match event {
                Finalizer::Apply(pi) => apply(&pi, &ctx).await,
                Finalizer::Cleanup(pi) => cleanup::cleanup(&pi, &ctx).await,
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e))),
        Err(e) => Err(e),
    };
    ctx.metrics
        .reconciled(if result.is_ok() { "ok" } else { "error" }, start.elapsed());
    result
}

/// The apply path: each step may end it with an action (a stall, a retry).
async fn apply(pi: &ProviderIntegration, ctx: &Context) -> Result<Action, Error> {
    let desired = match Desired::from_resource(pi) {
        Ok(d) => d,
        Err(decide::InvalidSpec(m)) => return status::stall(ctx, pi, Reason::InvalidSpec, m).await,
    };
    let creds = match credentials::load(ctx, pi).await? {
        ControlFlow::Continue(c) => c,
        ControlFlow::Break(action) => return Ok(action),
    };
    let status = pi.status.clone().unwrap_or_default();
    let observed = match observe::observe(ctx, &creds, &desired, &status).await {
        Ok(o) => o,
        Err(e) => return status::api_error(ctx, pi, &creds, e).await,
    };
    let decision = decide::decide(&desired, &status, observed);
    apply::act(ctx, pi, &desired, &creds, decision).await
}

/// Adds our finalizer to a live resource that lacks it and returns the stored result, so the
/// same reconcile goes on to create the integration. (kube's `finalizer` helper would stop after
/// the patch and wait for the watch event: one more round trip per new resource.) The patch is
/// guarded by a `test` exactly like the helper's, so concurrent finalizer edits are not lost.
async fn ensure_finalizer(
    api: &Api<ProviderIntegration>,
    pi: Arc<ProviderIntegration>,
) -> Result<Arc<ProviderIntegration>, Error> {
    if pi.meta().deletion_timestamp.is_some() || pi.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(pi);
    }
    let ops = if pi.finalizers().is_empty() {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ])
    } else {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": pi.finalizers()},
            {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
        ])
    };
    let patch: json_patch::Patch =
        serde_json::from_value(ops).map_err(|e| Error::Kube(kube::Error::SerdeError(e)))?;
    let updated = api
        .patch(
            &pi.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await?;
    Ok(Arc::new(updated))
}

/// Requeue policy for errors that escaped `reconcile`.
pub fn error_policy(pi: Arc<ProviderIntegration>, err: &Error, ctx: Arc<Context>) -> Action {
    match err.retry_in() {
        Some(d) => Action::requeue(d),
        None => {
            let d = ctx.backoff(&pi, ctx.config.retry_base / 2, ctx.config.retry_max);
            warn!(namespace = %pi.namespace().unwrap_or_default(), resource = %pi.name_any(), error = %err, retry_in_ms = d.as_millis() as u64, "reconcile failed");
            Action::requeue(d)
        }
    }
}
