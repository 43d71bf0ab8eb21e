//! The operator's writes to a resource's metadata: the finalizer, the first create's intent with
//! it, and the finalizer's release. Each states the `resourceVersion` it was decided on.

use json_patch::{
    AddOperation, PatchOperation, RemoveOperation, ReplaceOperation, TestOperation,
    jsonptr::PointerBuf,
};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};

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
fn finalizer_ops(pi: &ProviderIntegration) -> Vec<PatchOperation> {
    if pi.finalizers().is_empty() {
        vec![
            test(&["metadata", "finalizers"], Value::Null),
            add(&["metadata", "finalizers"], json!([FINALIZER])),
        ]
    } else {
        vec![
            test(&["metadata", "finalizers"], json!(pi.finalizers())),
            add(&["metadata", "finalizers", "-"], json!(FINALIZER)),
        ]
    }
}

/// A pointer from its tokens (escaped by `jsonptr`: an annotation key holds a `/`).
fn pointer(tokens: &[&str]) -> PointerBuf {
    PointerBuf::from_tokens(tokens.iter().copied())
}

fn test(path: &[&str], value: Value) -> PatchOperation {
    PatchOperation::Test(TestOperation {
        path: pointer(path),
        value,
    })
}

fn add(path: &[&str], value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: pointer(path),
        value,
    })
}

/// The precondition of every metadata patch: the `resourceVersion` it was decided on.
fn decided_on(pi: &ProviderIntegration) -> PatchOperation {
    PatchOperation::Replace(ReplaceOperation {
        path: pointer(&["metadata", "resourceVersion"]),
        value: json!(pi.resource_version()),
    })
}

/// Sends a JSON patch of the resource's metadata and returns the stored result. The patch also
/// states the `resourceVersion` it was decided on: a precondition, so a stale decision gets 409.
async fn patch_metadata(
    ctx: &Context,
    api: &Api<ProviderIntegration>,
    pi: &ProviderIntegration,
    mut ops: Vec<PatchOperation>,
) -> Result<ProviderIntegration, Error> {
    let _slot = ctx.write_slot().await?;
    ops.insert(0, decided_on(pi));
    let patch = json_patch::Patch(ops);
    let updated = api
        .patch(&pi.name_any(), &params(), &Patch::Json::<()>(patch))
        .await
        .map_err(rejected_or_stale)?;
    Ok(ctx.wrote(updated))
}

/// Whether `pi` is still the stored version, asked of the API server itself (the watch may lag):
/// a JSON patch that only tests `resourceVersion`. It changes nothing, so it costs no write; a
/// newer version fails the test (422), and the caller's decision is made again (`Stale`). Asked
/// before a Confluent write that no later guarded write could undo (a recreate's delete).
pub(crate) async fn still_latest(
    api: &Api<ProviderIntegration>,
    pi: &ProviderIntegration,
) -> Result<(), Error> {
    let patch = json_patch::Patch(vec![test(
        &["metadata", "resourceVersion"],
        json!(pi.resource_version()),
    )]);
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
pub(crate) async fn add_finalizer(
    ctx: &Context,
    api: &Api<ProviderIntegration>,
    pi: &ProviderIntegration,
) -> Result<ProviderIntegration, Error> {
    patch_metadata(ctx, api, pi, finalizer_ops(pi)).await
}

const INTENT_PATH: [&str; 3] = ["metadata", "annotations", INTENT_ANNOTATION];

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
        ops.push(add(&["metadata", "annotations"], json!({})));
    }
    ops.push(add(&INTENT_PATH, Value::String(value)));
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
    let ops = vec![PatchOperation::Remove(RemoveOperation {
        path: pointer(&INTENT_PATH),
    })];
    patch_metadata(ctx, api, pi, ops).await.map(Some)
}

/// Lets the resource go. Guarded by the `resourceVersion` cleanup decided on: a decision made
/// on a copy older than one of our own writes (which may have recorded an id to delete) must
/// not release the finalizer.
pub(crate) async fn remove_finalizer(
    ctx: &Context,
    api: &Api<ProviderIntegration>,
    pi: &ProviderIntegration,
) -> Result<(), Error> {
    let _slot = ctx.write_slot().await?;
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
        Ok(_) => {
            ctx.api_server.write_passed();
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(rejected_or_stale(e)),
    }
}
