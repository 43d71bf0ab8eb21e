//! The operator's writes to a resource's metadata: the finalizer, the first create's intent with
//! it, and the finalizer's release. Each states the `resourceVersion` it was decided on.

use std::sync::Arc;

use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::json;

use crate::controller::error::{Error, MANAGER};
use crate::controller::state::context::Context;
use crate::crd::{FINALIZER, INTENT_ANNOTATION, PendingCreate, ProviderIntegration};

/// Field manager on every write, so `managedFields` name us (never `unknown`).
pub(crate) fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    }
}

/// A 409 on one of our writes means our copy was stale.
pub(crate) fn stale_on_conflict(e: kube::Error) -> Error {
    match e {
        kube::Error::Api(ref s) if s.code == 409 => Error::Stale,
        e => Error::Kube(e),
    }
}

/// A 422 on a metadata patch: the write is invalid, or one of its operations no longer fits a
/// copy that changed meanwhile (a failed `test`, a path gone). The driver tells the two apart by
/// writing the stall guarded by the same `resourceVersion` (`Error::Rejected`).
fn rejected_or_stale(e: kube::Error) -> Error {
    match e {
        kube::Error::Api(s) if s.code == 422 => Error::Rejected(s.message),
        e => stale_on_conflict(e),
    }
}

/// The JSON patch operations that add our finalizer, guarded by a `test` of the finalizers so
/// concurrent finalizer edits are not lost.
fn finalizer_ops(pi: &ProviderIntegration) -> Vec<serde_json::Value> {
    if pi.finalizers().is_empty() {
        vec![
            json!({"op": "test", "path": "/metadata/finalizers", "value": null}),
            json!({"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}),
        ]
    } else {
        vec![
            json!({"op": "test", "path": "/metadata/finalizers", "value": pi.finalizers()}),
            json!({"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER}),
        ]
    }
}

/// Sends a JSON patch of the resource's metadata and returns the stored result. The patch also
/// states the `resourceVersion` it was decided on: a precondition, so a stale decision gets 409.
async fn patch_metadata(
    ctx: &Context,
    api: &Api<ProviderIntegration>,
    pi: &ProviderIntegration,
    mut ops: Vec<serde_json::Value>,
) -> Result<ProviderIntegration, Error> {
    ops.insert(
        0,
        json!({"op": "replace", "path": "/metadata/resourceVersion", "value": pi.resource_version()}),
    );
    let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(ops))
        .map_err(|e| Error::Kube(kube::Error::SerdeError(e)))?;
    let updated = api
        .patch(&pi.name_any(), &params(), &Patch::Json::<()>(patch))
        .await
        .map_err(rejected_or_stale)?;
    ctx.wrote(&updated);
    Ok(updated)
}

/// Whether `pi` is still the stored version, asked of the API server itself (the watch may lag):
/// a JSON patch that only tests `resourceVersion`. It changes nothing, so it costs no write; a
/// newer version fails the test (422), and the caller's decision is made again (`Stale`). Asked
/// before a Confluent write that no later guarded write could undo (a recreate's delete).
pub(crate) async fn still_latest(
    api: &Api<ProviderIntegration>,
    pi: &ProviderIntegration,
) -> Result<(), Error> {
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": pi.resource_version()}
    ]))
    .map_err(|e| Error::Kube(kube::Error::SerdeError(e)))?;
    match api
        .patch(&pi.name_any(), &params(), &Patch::Json::<()>(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 422 || s.code == 409 || s.code == 404 => {
            Err(Error::Stale)
        }
        Err(e) => Err(Error::Kube(e)),
    }
}

/// Adds our finalizer to a live resource that lacks it and returns the stored result, so the
/// same reconcile goes on (rather than waiting for the watch event of its own patch).
pub(crate) async fn ensure_finalizer(
    ctx: &Context,
    api: &Api<ProviderIntegration>,
    pi: Arc<ProviderIntegration>,
) -> Result<Arc<ProviderIntegration>, Error> {
    if pi.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(pi);
    }
    Ok(Arc::new(
        patch_metadata(ctx, api, &pi, finalizer_ops(&pi)).await?,
    ))
}

fn intent_pointer() -> String {
    format!(
        "/metadata/annotations/{}",
        INTENT_ANNOTATION.replace('~', "~0").replace('/', "~1")
    )
}

/// The first create's one write before the POST: the finalizer and the intent, together.
pub(crate) async fn finalizer_with_intent(
    ctx: &Context,
    api: &Api<ProviderIntegration>,
    pi: &ProviderIntegration,
    intent: &PendingCreate,
) -> Result<ProviderIntegration, Error> {
    let value =
        serde_json::to_string(intent).map_err(|e| Error::Kube(kube::Error::SerdeError(e)))?;
    let mut ops = finalizer_ops(pi);
    if pi.metadata.annotations.is_none() {
        ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {}}));
    }
    ops.push(json!({"op": "add", "path": intent_pointer(), "value": value}));
    patch_metadata(ctx, api, pi, ops).await
}

/// Forgets the first create's intent (it was someone else's key); nothing when there is none.
pub(crate) async fn drop_intent_annotation(
    ctx: &Context,
    api: &Api<ProviderIntegration>,
    pi: &ProviderIntegration,
) -> Result<Option<ProviderIntegration>, Error> {
    let has = pi
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(INTENT_ANNOTATION));
    if !has {
        return Ok(None);
    }
    let ops = vec![json!({"op": "remove", "path": intent_pointer()})];
    patch_metadata(ctx, api, pi, ops).await.map(Some)
}

/// Lets the resource go. Guarded by the `resourceVersion` cleanup decided on: a decision made
/// on a copy older than one of our own writes (which may have recorded an id to delete) must
/// not release the finalizer.
pub(crate) async fn remove_finalizer(
    api: &Api<ProviderIntegration>,
    pi: &ProviderIntegration,
) -> Result<(), Error> {
    let remaining: Vec<&String> = pi.finalizers().iter().filter(|f| *f != FINALIZER).collect();
    // Merge patch: `resourceVersion` is a precondition, so a release decided on a stale copy
    // gets 409.
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
        Err(e) => Err(rejected_or_stale(e)),
    }
}
