//! The decision: a pure function of (spec, status, remote observation) to one action. All of the
//! operator's judgement lives here so it can be tested exhaustively without I/O. This folder may
//! use the resource and API types (`crate::crd`, `crate::pim` types) and nothing that talks to
//! anything: no `kube::Api`, no `reqwest`, no `tokio`, nothing from `steps/`, `state/` or
//! `runtime/` (`tests.rs` holds it to that).
//!
//! A decision is only as fresh as the copy it was made on, and the watch cache lags behind the
//! operator's own writes: a copy may lack an id or intent we recorded a moment ago. So every
//! write a decision leads to carries that copy's `resourceVersion` as a precondition (the status
//! apply in `steps/status.rs`, the metadata patches in `steps/metadata.rs`): on a stale copy it fails with 409,
//! writes nothing, and the decision is made again on the latest copy. Confluent is only written
//! after such a guarded write (the intent before a create, the id before a DRAFT's config).

use crate::crd::{
    CloudProvider, DeletionPolicy, PendingCreate, ProviderIntegrationStatus, UpdatePolicy,
};
use crate::pim::{ApiVersion, Integration};

pub mod desired;
pub mod reasons;
pub mod trust;
mod validation;

pub use desired::{Desired, DesiredConfig, InvalidSpec, api_version};
pub use reasons::Reason;

/// Whether an integration holds a key the API (or, for `pim/v2`, the operator) keeps unique: the
/// role ARN of an AWS integration, the display name of a GCP or Azure one. Such an integration
/// blocks a create with that key, and is a candidate to claim after an interrupted create.
pub fn holds_key(i: &Integration, p: &PendingCreate) -> bool {
    i.environment.id == p.environment
        && CloudProvider::from_api_name(&i.provider) == Some(p.provider())
        && match &p.customer_iam_role_arn {
            Some(arn) => i.customer_iam_role_arn() == Some(arn.as_str()),
            None => i.display_name == p.display_name,
        }
}

/// Whether an integration matches a recorded intent (environment, name, provider and, for
/// AWS, role ARN): only such a one may be claimed as ours.
pub fn matches_intent(i: &Integration, p: &PendingCreate) -> bool {
    i.environment.id == p.environment
        && i.display_name == p.display_name
        && CloudProvider::from_api_name(&i.provider) == Some(p.provider())
        && p.customer_iam_role_arn
            .as_ref()
            .is_none_or(|arn| i.customer_iam_role_arn() == Some(arn.as_str()))
}

/// What the I/O layer must look up before deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The integration we track (or are asked to adopt), by id, in this environment, through
    /// the API version of its provider.
    ById {
        id: String,
        environment: String,
        version: ApiVersion,
    },
    /// An integration with this natural key; `fresh` demands a listing newer than our last
    /// create attempt (we may have created it), otherwise a cached one will do.
    ByKey { key: PendingCreate, fresh: bool },
}

/// What the remote side looked like.
// Short-lived and moved, never stored in bulk: boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// The tracked id exists.
    Found(Integration),
    /// The tracked id does not exist (confirmed, not merely absent from a cache).
    Missing,
    /// Result of a key lookup: every integration that `holds_key` (at most one for AWS, whose
    /// role ARN is unique; display names are not unique in `pim/v2`).
    ByKey(Vec<Integration>),
}

/// The id to track: the one we recorded, else the one we are asked to adopt.
pub fn tracked_id(desired: &Desired, status: &ProviderIntegrationStatus) -> Option<String> {
    status.id.clone().or_else(|| desired.adopt_id.clone())
}

/// Which lookup the apply path needs. `throttled` is the intent whose last create this process
/// saw answered 429 (nothing was created); only then may a recorded intent be looked
/// up in the cache instead of a fresh listing, since no create of ours can be missing from it.
pub fn lookup(
    desired: &Desired,
    status: &ProviderIntegrationStatus,
    throttled: Option<&PendingCreate>,
) -> Lookup {
    // An observer follows its spec, not a recorded id: by `integrationId`, else by the key (so
    // it follows the integration its owner recreates).
    if desired.observe {
        return match &desired.adopt_id {
            Some(id) => Lookup::ById {
                id: id.clone(),
                version: desired.api_version(),
                environment: desired.environment.clone(),
            },
            None => Lookup::ByKey {
                key: desired.intent(),
                fresh: false,
            },
        };
    }
    match tracked_id(desired, status) {
        Some(id) => Lookup::ById {
            id,
            // A recorded id is of the recorded provider (AWS on resources older than GCP and
            // Azure support); an id to adopt is of the spec's.
            version: api_version(match &status.id {
                Some(_) => status.provider.unwrap_or(CloudProvider::Aws),
                None => desired.provider(),
            }),
            environment: status
                .id
                .as_ref()
                .and(status.environment.clone())
                .unwrap_or_else(|| desired.environment.clone()),
        },
        None => match &status.pending_create {
            Some(p) => Lookup::ByKey {
                key: p.clone(),
                fresh: throttled != Some(p),
            },
            None => Lookup::ByKey {
                key: desired.intent(),
                fresh: false,
            },
        },
    }
}

/// The one thing to do next on the apply path. The integration of `InSync`, `Claim` and `Adopt`
/// may be a `pim/v2` DRAFT, whose config the apply path then sets.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Everything matches: record the remote state.
    InSync(Integration),
    /// Record intent, then create. `replaces` names an integration deleted out of band.
    Create {
        replaces: Option<String>,
    },
    /// Our earlier create did happen (found by its intent): record its id.
    Claim(Integration),
    /// Take over the integration named by `spec.integrationId`.
    Adopt(Integration),
    /// Mirror this integration (`managementPolicy: Observe`): record it, write nothing to it.
    Mirror(Integration),
    /// Delete this integration so that a new one can be created from the changed spec.
    Recreate {
        old: Integration,
        changed: Vec<&'static str>,
    },
    Stall {
        reason: Reason,
        message: String,
    },
}

/// When a live resource gets the finalizer, for the decision about to be carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalizerStep {
    /// It has it already.
    Present,
    /// Not yet: a stall writes nothing to Confluent, so there is nothing to clean up after.
    NotYet,
    /// In the first create's own patch, together with its intent (one write, not two).
    WithIntent,
    /// Now, before the decision is carried out: it records, adopts or deletes an integration
    /// that a deletion of the resource must then clean up after.
    AddNow,
}

/// The finalizer judgement:
///
/// | has it | decision                              | step         |
/// |--------|---------------------------------------|--------------|
/// | yes    | any                                   | `Present`    |
/// | no     | `Stall`                               | `NotYet`     |
/// | no     | `Create`                              | `WithIntent` |
/// | no     | `InSync`, `Claim`, `Adopt`, `Recreate` | `AddNow`     |
pub fn finalizer_step(decision: &Decision, has_finalizer: bool) -> FinalizerStep {
    match decision {
        _ if has_finalizer => FinalizerStep::Present,
        Decision::Stall { .. } => FinalizerStep::NotYet,
        Decision::Create { .. } => FinalizerStep::WithIntent,
        Decision::InSync(_)
        | Decision::Claim(_)
        | Decision::Adopt(_)
        | Decision::Recreate { .. } => FinalizerStep::AddNow,
        // An observer deletes nothing, so it has nothing to clean up after.
        Decision::Mirror(_) => FinalizerStep::NotYet,
    }
}

/// Whether a resource is paused, as far as can be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paused {
    No,
    Yes,
    /// Its Namespace cannot be read now (the watch of Namespaces is starting or failing), so a
    /// pause there cannot be ruled out.
    Unknown,
}

/// What the pause annotation (on the resource or its Namespace) leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseStep {
    /// Not paused, and no `Paused` condition to clear: work as usual.
    Go,
    /// Paused: say so (and, while being deleted, that the finalizer waits), do nothing else.
    Hold { deleting: bool },
    /// A pause cannot be ruled out: do nothing and look again soon; a deletion says why it waits.
    Unsure { deleting: bool },
    /// The pause was lifted: clear the `Paused` condition, then work as usual.
    Resume,
}

/// The pause judgement. A pause is never lost to an error: while it cannot be told, nothing is
/// done that the pause would forbid.
///
/// | paused  | deleting | `deletionPolicy: Orphan` | `Paused` condition | step                |
/// |---------|----------|--------------------------|--------------------|---------------------|
/// | yes/unknown | yes  | yes                      | any                | `Go` (no Confluent call to hold) |
/// | yes     | yes      | no                       | any                | `Hold{deleting}`    |
/// | yes     | no       | any                      | any                | `Hold`              |
/// | unknown | any      | no (or not deleting)     | any                | `Unsure{deleting}`  |
/// | no      | any      | any                      | present            | `Resume`            |
/// | no      | any      | any                      | absent             | `Go`                |
pub fn pause_step(paused: Paused, deleting: bool, orphan: bool, has_condition: bool) -> PauseStep {
    match (paused, deleting, orphan) {
        (Paused::Yes | Paused::Unknown, true, true) => PauseStep::Go,
        (Paused::Yes, deleting, _) => PauseStep::Hold { deleting },
        (Paused::Unknown, deleting, _) => PauseStep::Unsure { deleting },
        (Paused::No, ..) if has_condition => PauseStep::Resume,
        (Paused::No, ..) => PauseStep::Go,
    }
}

/// The decision for an observer (`managementPolicy: Observe`), which never writes to Confluent
/// Cloud and is nobody's owner (the owner index does not hold it, so `decide_among`'s rules do
/// not apply):
///
/// | found                  | decision                        |
/// |------------------------|---------------------------------|
/// | none                   | `Stall IntegrationGone` (waits) |
/// | one, matching the spec | `Mirror`                        |
/// | one, not matching      | `Stall AdoptedMismatch`         |
/// | several holding the key | `Stall AmbiguousIntegration`   |
pub fn decide_observer(desired: &Desired, observed: Observed) -> Decision {
    let mut found = match observed {
        Observed::Found(i) => vec![i],
        Observed::ByKey(found) => found,
        Observed::Missing => Vec::new(),
    };
    let what = match &desired.adopt_id {
        Some(id) => format!("integration {id}"),
        None => format!(
            "an integration with {} {}",
            desired.config.field(),
            desired.config.value()
        ),
    };
    match found.len() {
        0 => Decision::Stall {
            reason: Reason::IntegrationGone,
            message: format!(
                "{what} is not in environment {} (deleted, or not created yet); an observer never creates \
                 one: the status keeps the last values seen, and the resource waits for it",
                desired.environment
            ),
        },
        1 => {
            let i = found.remove(0);
            let changed = changed_fields(desired, &i, true);
            if changed.is_empty() {
                Decision::Mirror(i)
            } else {
                Decision::Stall {
                    reason: Reason::AdoptedMismatch,
                    message: format!(
                        "integration {} does not match the spec in {}; an observer mirrors only the integration its spec describes",
                        i.id,
                        changed.join(", ")
                    ),
                }
            }
        }
        _ => Decision::Stall {
            reason: Reason::AmbiguousIntegration,
            message: format!(
                "{} integrations hold {} {} in environment {} ({}); set spec.integrationId to the one to observe",
                found.len(),
                desired.config.field(),
                desired.config.value(),
                desired.environment,
                found
                    .iter()
                    .map(|i| i.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    }
}

/// The immutable fields that differ between the spec and an integration.
pub fn changed_fields(desired: &Desired, i: &Integration, adopted: bool) -> Vec<&'static str> {
    let mut out = Vec::new();
    if i.environment.id != desired.environment {
        out.push("environment");
    }
    if (!adopted || desired.display_name_explicit) && i.display_name != desired.display_name {
        out.push("displayName");
    }
    if CloudProvider::from_api_name(&i.provider) != Some(desired.provider()) {
        out.push("provider");
    } else if desired.config.matches(i) == Some(false) {
        out.push(desired.config.field());
    }
    out
}

/// Decides the apply path from the looked-up remote state.
pub fn decide(
    desired: &Desired,
    status: &ProviderIntegrationStatus,
    observed: Observed,
) -> Decision {
    let adopting = desired.adopt_id.is_some();
    if let (Some(recorded), Some(wanted)) = (&status.id, &desired.adopt_id)
        && recorded != wanted
    {
        return Decision::Stall {
            reason: Reason::IntegrationIdChanged,
            message: format!(
                "spec.integrationId changed from {recorded} to {wanted}; an integration cannot be swapped in place. \
                 Restore spec.integrationId, or delete this resource (with deletionPolicy: Orphan to keep {recorded}) and create it again"
            ),
        };
    }
    let observed = match observed {
        // Nothing tracked: an integration found is only a key match, never one to adopt.
        Observed::Found(i) if status.id.is_none() && desired.adopt_id.is_none() => {
            Observed::ByKey(vec![i])
        }
        o => o,
    };
    match observed {
        Observed::Found(i) => {
            let changed = changed_fields(desired, &i, adopting);
            if status.id.is_none() {
                // Adoption: `spec.integrationId` named an integration we do not track yet.
                return if changed.is_empty() {
                    Decision::Adopt(i)
                } else {
                    Decision::Stall {
                        reason: Reason::AdoptedMismatch,
                        message: format!(
                            "integration {} does not match the spec in {}; make the spec match it to adopt it",
                            i.id,
                            changed.join(", ")
                        ),
                    }
                };
            }
            if changed.is_empty() {
                Decision::InSync(i)
            } else if adopting {
                Decision::Stall {
                    reason: Reason::AdoptedMismatch,
                    message: format!(
                        "adopted integration {} no longer matches the spec in {}; adopted integrations are never recreated, revert the spec",
                        i.id,
                        changed.join(", ")
                    ),
                }
            } else if desired.update_policy == UpdatePolicy::Recreate {
                Decision::Recreate { old: i, changed }
            } else {
                Decision::Stall {
                    reason: Reason::ImmutableFieldChanged,
                    message: format!(
                        "{} cannot change on integration {}: the API cannot update it. Revert the change, or set spec.updatePolicy: Recreate \
                         to replace it (the new integration gets a new external id)",
                        changed.join(", "),
                        i.id
                    ),
                }
            }
        }
        Observed::Missing => match (&status.id, &desired.adopt_id) {
            (None, Some(id)) => Decision::Stall {
                reason: Reason::AdoptionTargetNotFound,
                message: format!(
                    "integration {id} named by spec.integrationId does not exist in environment {}",
                    desired.environment
                ),
            },
            (Some(id), Some(_)) => Decision::Stall {
                reason: Reason::IntegrationGone,
                message: format!(
                    "adopted integration {id} was deleted outside Kubernetes; remove spec.integrationId to let the operator create a new one"
                ),
            },
            (id, None) => Decision::Create {
                replaces: id.clone(),
            },
        },
        Observed::ByKey(mut found) => {
            if found.len() > 1 {
                let ids: Vec<&str> = found.iter().map(|i| i.id.as_str()).collect();
                return Decision::Stall {
                    reason: Reason::AmbiguousIntegration,
                    message: format!(
                        "{} {} integrations named \"{}\" exist in environment {} ({}); the operator cannot tell which is this resource's. \
                         Set spec.integrationId to the one to adopt, or choose another spec.displayName",
                        found.len(),
                        desired.provider().as_str(),
                        desired.display_name,
                        desired.environment,
                        ids.join(", ")
                    ),
                };
            }
            match (found.pop(), &status.pending_create) {
                (Some(i), Some(p)) if matches_intent(&i, p) => Decision::Claim(i),
                (Some(i), _) => Decision::Stall {
                    reason: Reason::AlreadyExists,
                    message: already_exists(desired, &i.id),
                },
                (None, _) => Decision::Create { replaces: None },
            }
        }
    }
}

/// Another resource, named `namespace/name`, that holds an integration or a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub name: String,
}

/// What other resources hold, as far as this decision is concerned (`owners.rs` indexes it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Others {
    /// Integration id → another resource recording it, and whether that one is older.
    pub ids: Vec<(String, Holder, bool)>,
    /// An older resource asking for the same key.
    pub key: Option<Holder>,
}

impl Others {
    pub fn id(&self, id: &str) -> Option<(&Holder, bool)> {
        self.ids
            .iter()
            .find(|(i, _, _)| i == id)
            .map(|(_, h, older)| (h, *older))
    }
}

fn already_managed(message: String) -> Decision {
    Decision::Stall {
        reason: Reason::AlreadyManaged,
        message,
    }
}

/// `decide`, among other resources: an integration has one owner. An id another resource
/// records is never adopted or claimed (nor kept, if that one is older: a double record from an
/// older release); a key an older resource asks for is never created. The second resource
/// stalls `AlreadyManaged`, naming the owner, and never deletes, recreates or validates.
pub fn decide_among(
    desired: &Desired,
    status: &ProviderIntegrationStatus,
    observed: Observed,
    others: &Others,
) -> Decision {
    if let Some(id) = tracked_id(desired, status)
        && let Some((h, older)) = others.id(&id)
        && (status.id.is_none() || older)
    {
        return already_managed(format!(
            "integration {id} is managed by ProviderIntegration {}; an integration has one owner, so this resource \
             will not adopt, change, validate or delete it. Remove spec.integrationId, or delete this resource \
             (nothing is deleted in Confluent Cloud)",
            h.name
        ));
    }
    if let Observed::ByKey(found) = &observed
        && let Some((i, h)) = found
            .iter()
            .find_map(|i| others.id(&i.id).map(|(h, _)| (i, h)))
    {
        return already_managed(format!(
            "integration {} with this resource's {} in environment {} is managed by ProviderIntegration {}; \
             change {} or the environment",
            i.id,
            desired.config.field(),
            desired.environment,
            h.name,
            if desired.provider() == CloudProvider::Aws {
                desired.config.field()
            } else {
                "spec.displayName"
            }
        ));
    }
    match decide(desired, status, observed) {
        Decision::Create { .. } if others.key.is_some() => {
            let h = others
                .key
                .as_ref()
                .map(|h| h.name.as_str())
                .unwrap_or_default();
            already_managed(format!(
                "ProviderIntegration {h} asked first for an integration with this resource's {} in environment {}; \
                 one integration cannot have two owners. Delete one of the two resources, or change this one's {}",
                desired.config.field(),
                desired.environment,
                if desired.provider() == CloudProvider::Aws {
                    desired.config.field()
                } else {
                    "spec.displayName"
                }
            ))
        }
        a => a,
    }
}

/// Why an integration with our key cannot be ours, and how to take it over.
pub fn already_exists(desired: &Desired, id: &str) -> String {
    let what = match &desired.config {
        DesiredConfig::Aws {
            customer_iam_role_arn,
        } => format!("already uses role {customer_iam_role_arn}"),
        _ => format!(
            "named \"{}\" already exists for {}",
            desired.display_name,
            desired.provider().as_str()
        ),
    };
    let or_rename = match desired.provider() {
        CloudProvider::Aws => "",
        _ => ", or choose another spec.displayName",
    };
    format!(
        "integration {id} {what} in environment {} and was not created by this resource; \
         set spec.integrationId: {id} to adopt it{or_rename}",
        desired.environment
    )
}

/// The one thing to do next on the delete path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleanup {
    /// Remove the finalizer without calling the API.
    Orphan,
    /// Nothing was ever created: remove the finalizer.
    Nothing,
    /// Delete this id.
    Delete {
        id: String,
        environment: String,
        version: ApiVersion,
    },
    /// An intent exists without an id: find the integration first.
    FindThenDelete(PendingCreate),
    /// The recorded id is managed by an older resource: let go without deleting it.
    NotOurs { id: String, owner: Holder },
}

pub fn cleanup(
    policy: DeletionPolicy,
    status: &ProviderIntegrationStatus,
    others: &Others,
) -> Cleanup {
    if policy == DeletionPolicy::Orphan {
        return Cleanup::Orphan;
    }
    if let Some(id) = &status.id
        && let Some((owner, true)) = others.id(id)
    {
        return Cleanup::NotOurs {
            id: id.clone(),
            owner: owner.clone(),
        };
    }
    match (&status.id, &status.pending_create) {
        (Some(id), _) => Cleanup::Delete {
            id: id.clone(),
            version: api_version(status.provider.unwrap_or(CloudProvider::Aws)),
            environment: status
                .environment
                .clone()
                .or_else(|| {
                    status
                        .pending_create
                        .as_ref()
                        .map(|p| p.environment.clone())
                })
                .unwrap_or_default(),
        },
        (None, Some(p)) => Cleanup::FindThenDelete(p.clone()),
        (None, None) => Cleanup::Nothing,
    }
}

/// Which integration an intent-only resource may delete: only the single full match of its
/// intent. Several matches share the name, and deleting a stranger's would be worse than leaving
/// ours, so none is deleted and the user is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeletionTarget {
    One(String),
    Nothing,
    Ambiguous(Vec<String>),
}

pub fn deletion_target(
    found: &[Integration],
    intent: &PendingCreate,
    others: &Others,
) -> DeletionTarget {
    let ids: Vec<String> = found
        .iter()
        .filter(|i| matches_intent(i, intent) && others.id(&i.id).is_none())
        .map(|i| i.id.clone())
        .collect();
    match <[String; 1]>::try_from(ids) {
        Ok([id]) => DeletionTarget::One(id),
        Err(ids) if ids.is_empty() => DeletionTarget::Nothing,
        Err(ids) => DeletionTarget::Ambiguous(ids),
    }
}

/// What a create answered "already exists" (the key is taken) leads to.
// Short-lived and moved once, like `Decision`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum AfterConflict {
    /// Our own earlier attempt did create it.
    Claim(Integration),
    /// Someone else's: stall `AlreadyExists` with this message, and drop the intent so that a
    /// later pass cannot claim it by mistake either.
    Foreign(String),
}

/// The holder of the key is ours only when this exact intent was recorded before the attempt
/// (an earlier answer was lost) and it is the one full match.
pub fn after_conflict(
    desired: &Desired,
    had_intent: bool,
    mut found: Vec<Integration>,
    api_detail: &str,
    others: &Others,
) -> AfterConflict {
    let intent = desired.intent();
    if had_intent
        && found.len() == 1
        && matches_intent(&found[0], &intent)
        && others.id(&found[0].id).is_none()
    {
        return AfterConflict::Claim(found.remove(0));
    }
    let message = match found.first() {
        Some(i) => already_exists(desired, &i.id),
        None => format!(
            "{api_detail}; another integration holds {} {} in {}",
            desired.config.field(),
            desired.config.value(),
            desired.environment
        ),
    };
    AfterConflict::Foreign(message)
}

/// What a GET after a failed DELETE returned.
#[derive(Debug, Clone, Copy)]
pub enum ReadBack<'a> {
    Found(&'a Integration),
    /// 404: it is gone after all (deleted meanwhile, or by a lost earlier answer).
    Gone,
    /// The read failed too.
    Unknown,
}

/// After a failed DELETE, the integration read back tells whether it is in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// Connectors use it: keep the finalizer and say which.
    InUse(Vec<String>),
    /// It no longer exists: the delete is done.
    Gone,
    /// Failed for another reason: retry with backoff and show the API's detail.
    Other(String),
}

/// Judged by the integration's `usages`, never by the status code, which the API does not
/// document for this case.
pub fn delete_outcome(detail: &str, read_back: ReadBack<'_>) -> DeleteOutcome {
    match read_back {
        ReadBack::Found(i) if !i.usages.is_empty() => DeleteOutcome::InUse(i.usages.clone()),
        ReadBack::Gone => DeleteOutcome::Gone,
        _ => DeleteOutcome::Other(detail.to_string()),
    }
}

pub use validation::{
    Next, Validation, ValidationMemo, ValidationOutcome, ValidationStep, validation_outcome,
    validation_step,
};

#[cfg(test)]
mod tests;
