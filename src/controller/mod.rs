//! The driver of the reconcile loop: finalizer dispatch, then on the apply path
//! desired → credentials → observe → decide → apply → status → validation, and the error policy.
//! Nothing below imports from this file; it wires the folders together:
//!
//! - `error`: the reconcile's error and the field manager name (imports nothing of ours);
//! - `decide/`: pure judgement (no Kubernetes or Confluent client, no clock of its own);
//! - `steps/`: one file per step, each doing its own I/O;
//! - `state/`: what reconciles share (context and backoff, the remote cache, the owner index);
//! - `runtime/`: the `kube::runtime::Controller` wiring, the line of requests, the cached form.

pub mod decide;
pub mod error;
mod runtime;
mod state;
mod steps;

use std::{sync::Arc, time::Duration};

use kube::{Api, Resource, ResourceExt, runtime::controller::Action};
use tracing::{debug, error, instrument, warn};

pub use decide::{desired, reasons};
pub use error::{CredentialsError, Error, MANAGER};
pub use runtime::cached::Cached;
pub use runtime::wiring::Tally;
pub use state::context::{
    Config, Context, DEFAULT_CREDENTIALS_ANNOTATION, DefaultCredentials, DefaultCredentialsScope,
};
pub use state::remote;
pub use steps::outputs;

use crate::crd::{FINALIZER, ProviderIntegration};
use decide::Desired;
use reasons::Reason;
use steps::{apply, cleanup, credentials, metadata, observe, pause, status, trust, validate};

/// Runs the controller until `shutdown` resolves (`runtime::wiring`, with this driver's reconcile
/// and error policy).
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    runtime::wiring::run(ctx, shutdown, reconcile, error_policy).await
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
        // changed meanwhile it fails 409 (stale, decided again), so only a real rejection lands.
        Err(Error::Rejected(message)) => {
            let stalled = Box::pin(status::stall(
                ctx,
                &pi,
                Reason::WriteRejected,
                format!("the Kubernetes API server rejected the operator's write (422): {message}"),
            ))
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
    // of that write will bring the latest. (The preconditions would fail its writes with 409 anyway;
    // this spares the API server those writes.)
    if ctx.superseded(&pi) {
        return Err(Error::Stale);
    }
    let api: Api<ProviderIntegration> =
        Api::namespaced(ctx.client.clone(), &pi.namespace().unwrap_or_default());
    let deleting = pi.meta().deletion_timestamp.is_some();
    if deleting && !has_finalizer(&pi) {
        return Ok(Action::await_change());
    }
    let (paused, by) = pause::paused_by(ctx, &pi);
    let orphan = desired::deletion_policy(&pi.spec) == crate::crd::DeletionPolicy::Orphan;
    let has_condition = pi.condition(crate::crd::PAUSED).is_some();
    let pi = match decide::pause_step(paused, deleting, orphan, has_condition) {
        decide::PauseStep::Go => pi,
        decide::PauseStep::Hold { deleting } => {
            let by = by.unwrap_or(pause::PausedBy::Resource);
            Box::pin(pause::hold(ctx, &pi, by, deleting)).await?;
            return Ok(Action::await_change());
        }
        decide::PauseStep::Unsure { deleting } => {
            return Ok(Action::requeue(
                Box::pin(pause::unsure(ctx, &pi, deleting)).await?,
            ));
        }
        decide::PauseStep::Resume => Arc::new(Box::pin(pause::resume(ctx, &pi)).await?),
    };
    if !deleting {
        return apply(&api, pi, ctx).await;
    }
    if let Some(left) = ctx.told_to_wait(&pi) {
        return Ok(Action::requeue(left));
    }
    let action = Box::pin(cleanup::cleanup(&pi, ctx)).await?;
    // The integration is gone (or kept): so goes the trust written for it (or it stays).
    Box::pin(trust::release(ctx, &pi, orphan || pi.spec.observes())).await?;
    Box::pin(metadata::remove_finalizer(ctx, &api, &pi)).await?;
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
            return Box::pin(status::stall(ctx, &pi, Reason::InvalidSpec, m)).await;
        }
    };
    let creds = match Box::pin(credentials::for_apply(ctx, &pi)).await? {
        Ok(c) => c,
        Err((reason, message)) => {
            return Box::pin(status::stall(ctx, &pi, reason, message)).await;
        }
    };
    let status = pi.decided_status();
    // Whatever brought this pass (the watch event of our own write, a user's edit), the API
    // asked this resource to wait: no call before the time it named. (A spec or Secret that is
    // wrong was said above, without a call.)
    if let Some(left) = ctx.told_to_wait(&pi) {
        return Ok(Action::requeue(left));
    }
    let observed = match Box::pin(observe::observe(ctx, &pi, &creds, &desired, &status)).await {
        Ok(o) => o,
        Err(e) => return Box::pin(status::api_error(ctx, &pi, &creds, e)).await,
    };
    let decision = if desired.observe {
        decide::decide_observer(&desired, observed)
    } else {
        let others = observe::others_of(ctx, &pi, &desired, &status, &observed);
        decide::decide_among(&desired, &status, observed, &others)
    };
    let pi = match decide::finalizer_step(&decision, has_finalizer(&pi)) {
        decide::FinalizerStep::AddNow => {
            Arc::new(Box::pin(metadata::add_finalizer(ctx, api, &pi)).await?)
        }
        // Present, not needed yet, or added by `apply` with the first create's intent.
        decide::FinalizerStep::Present
        | decide::FinalizerStep::NotYet
        | decide::FinalizerStep::WithIntent => pi,
    };
    match apply::act(ctx, api, &pi, &desired, &creds, decision).await? {
        apply::Acted::Done(action) => Ok(action),
        // Ready is written; validation, when due, is the last step. Then the resource is
        // settled: the resync sweep (`runtime/feed.rs`) brings it back, or the validation retry.
        apply::Acted::Settled {
            pi,
            integration,
            trust_ready,
            trust_retry,
        } => {
            let next = if desired.validate && trust_ready {
                Box::pin(validate::validate(ctx, &pi, &creds, &integration)).await?
            } else {
                None
            };
            let next = match (next, trust_retry) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            Ok(next.map_or_else(Action::await_change, Action::requeue))
        }
    }
}

fn has_finalizer(pi: &ProviderIntegration) -> bool {
    pi.finalizers().iter().any(|f| f == FINALIZER)
}

/// Requeue policy for errors that escaped `reconcile`.
pub fn error_policy(cached: Arc<Cached>, err: &Error, ctx: Arc<Context>) -> Action {
    match err {
        Error::DeletionPending { retry_in, .. } => Action::requeue(*retry_in),
        // Past the Lease's deadline: this replica is stepping down, a new leader takes over.
        Error::Fenced => {
            debug!("{err}");
            Action::await_change()
        }
        Error::NamespaceUnknown(_) => {
            debug!("{err}");
            Action::requeue(pause::UNSURE_RETRY.mul_f64(0.5 + fastrand::f64()))
        }
        Error::Stale => {
            debug!("{err}");
            Action::requeue(STALE_RETRY.mul_f64(0.5 + fastrand::f64()))
        }
        Error::Kube(_) | Error::Rejected(_) | Error::Deadline(_) => {
            // Backoff is counted per uid, which the cached copy keeps in its JSON.
            let d = match cached.decode() {
                Ok(pi) => ctx.backoff(&pi, ctx.config.retry_base / 2, ctx.config.retry_max),
                Err(_) => ctx.config.retry_max,
            };
            // (An API server that did not answer never comes here: the wiring holds all work at
            // the gate until it answers, `state/gate.rs`.)
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
/// A reconcile's future is allocated whole when it starts, as large as its largest path, and
/// hundreds wait on a create's POST at once (at 1 s of API latency): its paths are boxed, so
/// each holds only the path it is on. Unboxed it was 20 KB.
#[cfg(test)]
mod future_size {
    use super::*;

    #[tokio::test]
    async fn a_reconcile_in_flight_holds_only_its_path() {
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let pim = crate::pim::PimClient::new("http://127.0.0.1:1", Duration::from_secs(1)).unwrap();
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let ctx = Arc::new(Context::new(client, pim, Default::default(), metrics));
        let pi: ProviderIntegration = serde_json::from_value(serde_json::json!({
            "apiVersion": "pim.confluent.cloud/v1alpha1", "kind": "ProviderIntegration",
            "metadata": {"name": "a", "namespace": "n"},
            "spec": {"environment": "env-a", "provider": "AWS", "credentialsRef": {"name": "c"},
                     "aws": {"customerIamRoleArn": "arn:aws:iam::123456789012:role/x"}}}))
        .unwrap();
        let cached = Arc::new(runtime::cached::Cached::of(pi));
        let size = std::mem::size_of_val(&reconcile(cached, ctx));
        println!("a reconcile's future: {size} bytes");
        assert!(size <= 8 * 1024, "a reconcile's future is {size} bytes");
    }
}
