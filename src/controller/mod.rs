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
mod owners;
pub mod reasons;
pub mod remote;
mod run;
mod status;
mod validation;

use std::{ops::ControlFlow, sync::Arc, time::Duration};

use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::json;
use tracing::{debug, instrument, warn};

pub use context::{
    Config, Context, DEFAULT_CREDENTIALS_ANNOTATION, DefaultCredentials, DefaultCredentialsScope,
};
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
    /// A write was refused because the copy it was decided on is no longer the latest (409):
    /// the decision is made again on the fresh copy the watch brings.
    #[error("the resource changed since it was read; deciding again on the latest version")]
    Stale,
}

/// How soon a stale decision is made again (the watch event of the newer copy usually comes
/// first and triggers it anyway).
const STALE_RETRY: Duration = Duration::from_millis(200);

/// The controller's reconcile function.
#[instrument(skip_all, fields(namespace = %pi.namespace().unwrap_or_default(), resource = %pi.name_any()))]
pub async fn reconcile(pi: Arc<ProviderIntegration>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = std::time::Instant::now();
    let result = dispatch(pi, &ctx).await;
    ctx.metrics
        .reconciled(if result.is_ok() { "ok" } else { "error" }, start.elapsed());
    result
}

/// The finalizer: a live resource gets it and goes down the apply path; a deleted one goes
/// down the cleanup path and loses it once cleanup is done.
async fn dispatch(pi: Arc<ProviderIntegration>, ctx: &Context) -> Result<Action, Error> {
    let api: Api<ProviderIntegration> =
        Api::namespaced(ctx.client.clone(), &pi.namespace().unwrap_or_default());
    if pi.meta().deletion_timestamp.is_none() {
        let pi = ensure_finalizer(&api, pi).await?;
        return apply(&pi, ctx).await;
    }
    if !pi.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let action = cleanup::cleanup(&pi, ctx).await?;
    remove_finalizer(&api, &pi).await?;
    // Only now: a failed removal retries cleanup, which may need the remembered credentials.
    ctx.forget(&pi);
    Ok(action)
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
    let observed = match observe::observe(ctx, pi, &creds, &desired, &status).await {
        Ok(o) => o,
        Err(e) => return status::api_error(ctx, pi, &creds, e).await,
    };
    let others = observe::others_of(ctx, pi, &desired, &status, &observed);
    let decision = decide::decide_among(&desired, &status, observed, &others);
    apply::act(ctx, pi, &desired, &creds, decision).await
}

/// Field manager on every write, so `managedFields` name us (never `unknown`).
fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    }
}

/// A 409 on one of our writes means our copy was stale.
fn stale_on_conflict(e: kube::Error) -> Error {
    match e {
        kube::Error::Api(ref s) if s.code == 409 => Error::Stale,
        e => Error::Kube(e),
    }
}

/// Adds our finalizer to a live resource that lacks it and returns the stored result, so the
/// same reconcile goes on to create the integration (rather than waiting for the watch event of
/// its own patch). The patch is guarded by a `test` of the finalizers, so concurrent finalizer
/// edits are not lost.
async fn ensure_finalizer(
    api: &Api<ProviderIntegration>,
    pi: Arc<ProviderIntegration>,
) -> Result<Arc<ProviderIntegration>, Error> {
    if pi.finalizers().iter().any(|f| f == FINALIZER) {
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
        .patch(&pi.name_any(), &params(), &Patch::Json::<()>(patch))
        .await?;
    Ok(Arc::new(updated))
}

/// Lets the resource go. Guarded by the `resourceVersion` cleanup decided on: a decision made
/// on a copy older than one of our own writes (which may have recorded an id to delete) must
/// not release the finalizer.
async fn remove_finalizer(
    api: &Api<ProviderIntegration>,
    pi: &ProviderIntegration,
) -> Result<(), Error> {
    let remaining: Vec<&String> = pi.finalizers().iter().filter(|f| *f != FINALIZER).collect();
    let patch = json!({"metadata": {
        "resourceVersion": pi.resource_version(),
        "finalizers": remaining,
    }});
    match api
        .patch(&pi.name_any(), &params(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(stale_on_conflict(e)),
    }
}

/// Requeue policy for errors that escaped `reconcile`.
pub fn error_policy(pi: Arc<ProviderIntegration>, err: &Error, ctx: Arc<Context>) -> Action {
    match err {
        Error::DeletionPending { retry_in, .. } => Action::requeue(*retry_in),
        Error::Stale => {
            debug!("{err}");
            Action::requeue(STALE_RETRY.mul_f64(0.5 + fastrand::f64()))
        }
        Error::Kube(_) => {
            let d = ctx.backoff(&pi, ctx.config.retry_base / 2, ctx.config.retry_max);
            warn!(namespace = %pi.namespace().unwrap_or_default(), resource = %pi.name_any(), error = %err, retry_in_ms = d.as_millis() as u64, "reconcile failed");
            Action::requeue(d)
        }
    }
}
