//! The reconcile loop, as its pipeline: finalizer dispatch, then on the apply path
//! desired → credentials → observe → decide → apply → status → validation, one file per step.
//! Judgement lives in the pure `decide`; HTTP details stay in `pim`; this file is the driver and
//! the error policy.

mod apply;
mod cached;
mod cleanup;
mod context;
mod credentials;
pub mod decide;
pub mod desired;
mod feed;
mod metadata;
mod observe;
pub mod outputs;
mod owners;
pub mod reasons;
pub mod remote;
mod run;
mod status;
mod validation;

use std::{ops::ControlFlow, sync::Arc, time::Duration};

use kube::{Api, Resource, ResourceExt, runtime::controller::Action};
use tracing::{debug, error, instrument, warn};

pub use cached::Cached;
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
    /// The cached copy did not decode (`Cached::decode`): a bug, not a state of the resource.
    #[error("the cached copy of the resource does not decode: {0}")]
    Cache(#[from] serde_json::Error),
    /// The API server refused a write of ours as invalid (422), with its message.
    #[error("the Kubernetes API server refused the operator's write (422): {0}")]
    Rejected(String),
    /// The reconcile passed `Config::reconcile_timeout`; it is dropped where it was (every step
    /// is safe to repeat) and retried with backoff.
    #[error("the reconcile did not finish within {0:?}")]
    Deadline(Duration),
}

/// How soon a stale decision is made again (the watch event of the newer copy usually comes
/// first and triggers it anyway).
const STALE_RETRY: Duration = Duration::from_millis(200);

/// The controller's reconcile function.
#[instrument(skip_all, fields(namespace = %cached.namespace().unwrap_or_default(), resource = %cached.name_any()))]
pub async fn reconcile(cached: Arc<Cached>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = std::time::Instant::now();
    let limit = ctx.config.reconcile_timeout;
    let result = match cached.decode() {
        Ok(pi) => tokio::time::timeout(limit, dispatch(Arc::new(pi), &ctx))
            .await
            .unwrap_or(Err(Error::Deadline(limit))),
        Err(e) => Err(e.into()),
    };
    ctx.metrics
        .reconciled(if result.is_ok() { "ok" } else { "error" }, start.elapsed());
    result
}

/// The finalizer: a live resource gets it and goes down the apply path; a deleted one goes
/// down the cleanup path and loses it once cleanup is done.
async fn dispatch(pi: Arc<ProviderIntegration>, ctx: &Context) -> Result<Action, Error> {
    match finalize(pi.clone(), ctx).await {
        // Said on the resource, by a write guarded by the same `resourceVersion`: on a copy that
        // changed meanwhile it fails 409 (stale, decided again), so only a real refusal lands.
        Err(Error::Rejected(message)) => {
            let stalled = status::stall(
                ctx,
                &pi,
                Reason::WriteRejected,
                format!("the Kubernetes API server refused the operator's write (422): {message}"),
            )
            .await;
            if stalled.is_ok() {
                ctx.metrics.write_rejected();
            }
            stalled
        }
        other => other,
    }
}

async fn finalize(pi: Arc<ProviderIntegration>, ctx: &Context) -> Result<Action, Error> {
    // A copy one of our own later writes replaced: nothing to decide on it, and the watch event
    // of that write will bring the latest. (The preconditions would refuse its writes anyway;
    // this spares the API server the refused writes.)
    if ctx.superseded(&pi) {
        return Err(Error::Stale);
    }
    let api: Api<ProviderIntegration> =
        Api::namespaced(ctx.client.clone(), &pi.namespace().unwrap_or_default());
    if pi.meta().deletion_timestamp.is_none() {
        return apply(&api, pi, ctx).await;
    }
    if !pi.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let action = cleanup::cleanup(&pi, ctx).await?;
    metadata::remove_finalizer(&api, &pi).await?;
    // Only now: a failed removal retries cleanup, which may need the remembered credentials.
    ctx.forget(&pi);
    Ok(action)
}

/// The apply path: each step may end it with an action (a stall, a retry). The finalizer is
/// added before the first Confluent write, in the same patch as the first create's intent.
async fn apply(
    api: &Api<ProviderIntegration>,
    pi: Arc<ProviderIntegration>,
    ctx: &Context,
) -> Result<Action, Error> {
    let desired = match Desired::from_resource(&pi) {
        Ok(d) => d,
        Err(decide::InvalidSpec(m)) => {
            return status::stall(ctx, &pi, Reason::InvalidSpec, m).await;
        }
    };
    let creds = match credentials::load(ctx, &pi).await? {
        ControlFlow::Continue(c) => c,
        ControlFlow::Break(action) => return Ok(action),
    };
    let status = pi.decided_status();
    let observed = match observe::observe(ctx, &pi, &creds, &desired, &status).await {
        Ok(o) => o,
        Err(e) => return status::api_error(ctx, &pi, &creds, e).await,
    };
    let others = observe::others_of(ctx, &pi, &desired, &status, &observed);
    let decision = decide::decide_among(&desired, &status, observed, &others);
    let has_finalizer = pi.finalizers().iter().any(|f| f == FINALIZER);
    let pi = match &decision {
        // Nothing in Confluent to clean up after: no finalizer needed (yet).
        decide::Action::Stall { .. } => pi,
        // The first create adds the finalizer with its intent, in one patch.
        decide::Action::Create { .. } if !has_finalizer => pi,
        _ => metadata::ensure_finalizer(ctx, api, pi).await?,
    };
    apply::act(ctx, api, &pi, &desired, &creds, decision).await
}

/// The API server did not answer, or answered that it cannot now: not about this resource.
fn api_server_unavailable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code >= 500 || s.code == 429,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Requeue policy for errors that escaped `reconcile`.
pub fn error_policy(cached: Arc<Cached>, err: &Error, ctx: Arc<Context>) -> Action {
    match err {
        Error::DeletionPending { retry_in, .. } => Action::requeue(*retry_in),
        Error::Stale => {
            debug!("{err}");
            Action::requeue(STALE_RETRY.mul_f64(0.5 + fastrand::f64()))
        }
        Error::Kube(_) | Error::Rejected(_) | Error::Deadline(_) => {
            // Backoff is counted per uid, which the cached copy keeps in its JSON.
            let mut d = match cached.decode() {
                Ok(pi) => ctx.backoff(&pi, ctx.config.retry_base / 2, ctx.config.retry_max),
                Err(_) => ctx.config.retry_max,
            };
            // An API server that did not answer (down, restarting, overloaded) is tried again
            // soon, as the watch is: back to work within seconds of its return.
            if let Error::Kube(e) = err
                && api_server_unavailable(e)
            {
                d = d.min(run::RECONNECT_MAX);
            }
            warn!(namespace = %cached.namespace().unwrap_or_default(), resource = %cached.name_any(), error = %err, retry_in_ms = d.as_millis() as u64, "reconcile failed");
            Action::requeue(d)
        }
        // Deciding again on the same copy would fail again; a new copy from the watch retries.
        Error::Cache(_) => {
            error!(namespace = %cached.namespace().unwrap_or_default(), resource = %cached.name_any(), error = %err, "reconcile impossible");
            Action::await_change()
        }
    }
}
