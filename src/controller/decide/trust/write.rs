//! The one write that brings a trust object in line (`plan`), and the one that undoes it
//! (`release`): server-side apply of an owned object, a merge patch guarded by the object's
//! `resourceVersion` on a shared one, a replacement where its CRD makes a field immutable.

use serde_json::{Value, json};

use super::objects::{self, Owner, TrustValues, owned_object};
use super::{TrustKind, aws, principal_mark};
use crate::controller::decide::reasons::Reason;
use crate::crd::{CloudProvider, TrustMode, TrustStatus};

/// The managers other than `ours` that applied (server-side apply) the field at `pointer`:
/// their next apply would take it back, so the operator does not write it.
pub fn appliers_of(object: &Value, pointer: &str, ours: &str) -> Vec<String> {
    let path: Vec<String> = pointer
        .trim_start_matches('/')
        .split('/')
        .map(|p| format!("f:{p}"))
        .collect();
    let Some(entries) = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    entries
        .iter()
        .filter(|e| e["operation"] == "Apply" && e["manager"] != ours)
        .filter(|e| {
            path.iter()
                .try_fold(&e["fieldsV1"], |at, step| at.get(step))
                .is_some()
        })
        .filter_map(|e| e["manager"].as_str().map(String::from))
        .collect()
}

/// The one write that brings a trust object in line.
#[derive(Debug, Clone, PartialEq)]
pub enum TrustWrite {
    Nothing,
    /// Server-side apply of the operator's own object (creates it when missing).
    Apply(Value),
    /// Delete the object with this uid (a field its CRD makes immutable must change); it is
    /// created again on the next pass.
    Replace {
        uid: String,
    },
    /// A JSON merge patch on a shared object, carrying its `resourceVersion` as a precondition.
    Patch(Value),
    /// The object is being deleted (by its operator, after a `Replace`): wait for it to go.
    Wait(String),
    Stall(Reason, String),
}

fn uid_of(object: &Value) -> String {
    object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn resource_version(object: &Value) -> Value {
    object
        .pointer("/metadata/resourceVersion")
        .cloned()
        .unwrap_or(Value::Null)
}

/// Whether every value `want` sets is already in `have` (lists compared whole, except
/// `ownerReferences`, where ours being there is enough).
fn holds(have: &Value, want: &Value, at: &str) -> bool {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => w.iter().all(|(k, v)| {
            h.get(k)
                .is_some_and(|hv| holds(hv, v, &format!("{at}/{k}")))
        }),
        (Value::Array(h), Value::Array(w)) if at == "/metadata/ownerReferences" => {
            w.iter().all(|o| h.iter().any(|x| x["uid"] == o["uid"]))
        }
        _ => have == want,
    }
}

/// A trust object as `spec.trust` names it.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub kind: TrustKind,
    pub mode: TrustMode,
    pub name: &'a str,
}

/// What to write to the trust object `existing` (`None`: absent) for the integration in
/// `values`. `previous` is the integration whose trust was written before (a recreate replaces
/// its statement or mark).
pub fn plan(
    Target { kind, mode, name }: Target<'_>,
    existing: Option<&Value>,
    owner: &Owner,
    values: &TrustValues,
    previous: Option<&str>,
    manager: &str,
) -> TrustWrite {
    let what = kind.describe(&owner.namespace, name);
    match mode {
        TrustMode::Own => {
            let want = match owned_object(kind, name, owner, values) {
                Ok(w) => w,
                Err(m) => return TrustWrite::Stall(Reason::TrustInvalid, m),
            };
            let Some(have) = existing else {
                return TrustWrite::Apply(want);
            };
            if have.pointer("/metadata/deletionTimestamp").is_some() {
                return TrustWrite::Wait(format!(
                    "waiting for {} to finish deleting {what} before it is created again",
                    kind.operator()
                ));
            }
            if !owner.owns(kind, have) {
                return TrustWrite::Stall(
                    Reason::TrustTargetNotOwned,
                    format!(
                        "{what} exists and was not created by this ProviderIntegration; set spec.trust.mode: Share to add this integration's trust to it, or name another object"
                    ),
                );
            }
            if kind == TrustKind::PolicyMember
                && have.pointer(kind.field()) != want.pointer(kind.field())
            {
                return TrustWrite::Replace { uid: uid_of(have) };
            }
            if holds(have, &want, "") {
                TrustWrite::Nothing
            } else {
                TrustWrite::Apply(want)
            }
        }
        TrustMode::Share => {
            let Some(have) = existing else {
                return TrustWrite::Stall(
                    Reason::TrustTargetNotFound,
                    format!(
                        "{what} does not exist; create it (the team's own object), or set spec.trust.mode: Own to let the operator create it"
                    ),
                );
            };
            let patch = match shared_patch(kind, have, owner, values, previous) {
                Ok(p) => p,
                Err((reason, m)) => return TrustWrite::Stall(reason, format!("{what}: {m}")),
            };
            let Some((patch, writes_field)) = patch else {
                return TrustWrite::Nothing;
            };
            let appliers = appliers_of(have, kind.field(), manager);
            if writes_field && !appliers.is_empty() {
                return TrustWrite::Stall(
                    Reason::TrustFieldOwned,
                    format!(
                        "{what}: {} is applied by {} (server-side apply), whose next apply would take this integration's trust out again; stop applying that field (e.g. leave it out of the manifest, or ignore its differences in Argo CD), or use spec.trust.mode: Own with an object of its own",
                        kind.field().trim_start_matches('/').replace('/', "."),
                        appliers.join(", ")
                    ),
                );
            }
            TrustWrite::Patch(patch)
        }
    }
}

type Stalled = (Reason, String);

/// The merge patch that adds this integration's part to a shared object and takes out the
/// previous integration's, with whether it writes the trust field itself; `None` when there is
/// nothing to change.
fn shared_patch(
    kind: TrustKind,
    have: &Value,
    owner: &Owner,
    values: &TrustValues,
    previous: Option<&str>,
) -> Result<Option<(Value, bool)>, Stalled> {
    let rv = resource_version(have);
    match values {
        TrustValues::Aws {
            id,
            confluent_role,
            external_id,
            ..
        } => {
            let document = have
                .pointer(kind.field())
                .and_then(Value::as_str)
                .unwrap_or_default();
            let remove: Vec<String> = previous
                .filter(|p| p != id)
                .map(aws::sids)
                .unwrap_or_default();
            let add = aws::aws_statements(id, confluent_role, external_id);
            let merged = aws::merge(document, &remove, add)
                .map_err(|e| (Reason::TrustInvalid, format!("{e}; fix the document")))?;
            Ok(merged.map(|doc| {
                (
                    with_field(
                        kind,
                        json!({"metadata": {"resourceVersion": rv}}),
                        doc.into(),
                    ),
                    true,
                )
            }))
        }
        TrustValues::Azure { id, app_id } => {
            let client = have.pointer(kind.field()).and_then(Value::as_str);
            if client.is_some_and(|c| c != app_id) {
                return Err((
                    Reason::TrustTargetMismatch,
                    format!(
                        "it is the service principal of application {}, not of Confluent's multi-tenant app {app_id}; name the Principal of {app_id}",
                        client.unwrap_or_default()
                    ),
                ));
            }
            let mark = principal_mark(id);
            let marked = have
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(&mark))
                .is_some();
            let stale = previous.filter(|p| p != id).map(principal_mark);
            let stale_there = stale.as_ref().is_some_and(|s| {
                have.pointer("/metadata/annotations")
                    .and_then(|a| a.get(s))
                    .is_some()
            });
            if client.is_some() && marked && !stale_there {
                return Ok(None);
            }
            let mut annotations = serde_json::Map::new();
            annotations.insert(mark, format!("{}/{}", owner.namespace, owner.name).into());
            if let Some(s) = stale.filter(|_| stale_there) {
                annotations.insert(s, Value::Null);
            }
            let mut patch =
                json!({"metadata": {"resourceVersion": rv, "annotations": annotations}});
            if client.is_none() {
                patch = with_field(kind, patch, app_id.as_str().into());
            }
            Ok(Some((patch, client.is_none())))
        }
        TrustValues::Gcp { .. } => Err((
            Reason::InvalidSpec,
            "an IAMPolicyMember cannot be shared: use spec.trust.mode: Own".into(),
        )),
    }
}

/// `patch` with `value` at `kind`'s trust field.
fn with_field(kind: TrustKind, mut patch: Value, value: Value) -> Value {
    let mut at = &mut patch;
    let steps: Vec<&str> = kind.field().trim_start_matches('/').split('/').collect();
    for (i, step) in steps.iter().enumerate() {
        if i + 1 == steps.len() {
            at[*step] = value;
            break;
        }
        if at.get(*step).is_none() {
            at[*step] = json!({});
        }
        at = &mut at[*step];
    }
    patch
}

/// What to do to the trust object when the trust ends: the integration is deleted
/// (`keep: false`) or kept (`deletionPolicy: Orphan`), or `spec.trust` now names another object.
pub fn release(
    kind: TrustKind,
    record: &TrustStatus,
    existing: Option<&Value>,
    owner: &Owner,
    keep: bool,
) -> TrustWrite {
    let Some(have) = existing else {
        return TrustWrite::Nothing;
    };
    let rv = resource_version(have);
    match record.mode {
        TrustMode::Own if !owner.owns(kind, have) => TrustWrite::Nothing,
        TrustMode::Own if !keep => TrustWrite::Replace { uid: uid_of(have) },
        // Kept: it must outlive this resource, so garbage collection must not take it.
        TrustMode::Own => TrustWrite::Patch(objects::disown(kind, have, owner)),
        TrustMode::Share if keep => TrustWrite::Nothing,
        TrustMode::Share => match kind.provider() {
            CloudProvider::Aws => {
                let document = have
                    .pointer(kind.field())
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                match aws::merge(document, &aws::sids(&record.integration_id), Vec::new()) {
                    Ok(Some(doc)) => TrustWrite::Patch(with_field(
                        kind,
                        json!({"metadata": {"resourceVersion": rv}}),
                        doc.into(),
                    )),
                    // Not there, or a document someone broke since: nothing of ours to take.
                    Ok(None) | Err(_) => TrustWrite::Nothing,
                }
            }
            _ => {
                let mark = principal_mark(&record.integration_id);
                let marked = have
                    .pointer("/metadata/annotations")
                    .and_then(|a| a.get(&mark))
                    .is_some();
                if marked {
                    TrustWrite::Patch(json!({"metadata": {"resourceVersion": rv,
                        "annotations": {mark: null}}}))
                } else {
                    TrustWrite::Nothing
                }
            }
        },
    }
}
