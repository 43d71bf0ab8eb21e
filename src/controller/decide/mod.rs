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

use crate::crd::{CloudProvider, PendingCreate, ProviderIntegrationStatus, UpdatePolicy};
use crate::pim::Integration;

mod deletion;
pub mod desired;
mod gates;
mod lookup;
mod observer;
mod reason_help;
pub mod reasons;
pub mod trust;
mod validation;

pub use deletion::{
    Cleanup, DeleteOutcome, DeletionTarget, ReadBack, cleanup, delete_outcome, deletion_target,
};
pub use gates::{FinalizerStep, PauseStep, Paused, finalizer_step, pause_step};
pub use lookup::{Lookup, Observed, lookup, tracked_id};
pub use observer::decide_observer;

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

pub use validation::{
    Next, Validation, ValidationMemo, ValidationOutcome, ValidationStep, validation_outcome,
    validation_step,
};

#[cfg(test)]
mod tests;
