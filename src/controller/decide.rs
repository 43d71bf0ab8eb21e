//! The decision: a pure function of (spec, status, remote observation) to one action. All of the
//! operator's judgement lives here so it can be tested exhaustively without I/O.

use crate::crd::{
    DeletionPolicy, PendingCreate, ProviderIntegration, ProviderIntegrationStatus, UpdatePolicy,
};
use crate::pim::Integration;

/// The spec, resolved and checked: what the integration must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub environment: String,
    pub display_name: String,
    /// Whether `displayName` was set; an adopted integration's name is only compared if so.
    pub display_name_explicit: bool,
    pub provider: &'static str,
    pub customer_iam_role_arn: String,
    pub deletion_policy: DeletionPolicy,
    pub update_policy: UpdatePolicy,
    pub adopt_id: Option<String>,
}

/// A spec the operator cannot act on, found before any API call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSpec(pub String);

impl Desired {
    /// Resolves defaults and checks what the CRD schema may not have enforced (CEL rules are
    /// skipped on old clusters).
    pub fn from_resource(pi: &ProviderIntegration) -> Result<Self, InvalidSpec> {
        let spec = &pi.spec;
        let name = pi.metadata.name.clone().unwrap_or_default();
        let aws = spec.aws.as_ref().ok_or_else(|| {
            InvalidSpec("provider AWS requires spec.aws.customerIamRoleArn".into())
        })?;
        let display_name = spec.display_name.clone().unwrap_or_else(|| name.clone());
        if display_name.chars().count() > 60 {
            return Err(InvalidSpec(format!(
                "the display name \"{display_name}\" is longer than 60 characters; set spec.displayName"
            )));
        }
        let arn_len = aws.customer_iam_role_arn.chars().count();
        if !(20..=2048).contains(&arn_len) {
            return Err(InvalidSpec(
                "spec.aws.customerIamRoleArn must be 20 to 2048 characters".into(),
            ));
        }
        Ok(Self {
            environment: spec.environment.clone(),
            display_name,
            display_name_explicit: spec.display_name.is_some(),
            provider: spec.provider.api_name(),
            customer_iam_role_arn: aws.customer_iam_role_arn.clone(),
            deletion_policy: spec.deletion_policy,
            update_policy: spec.update_policy,
            adopt_id: spec.integration_id.clone(),
        })
    }

    /// The natural key recorded before a create, to find the integration after a crash.
    pub fn intent(&self) -> PendingCreate {
        PendingCreate {
            environment: self.environment.clone(),
            display_name: self.display_name.clone(),
            customer_iam_role_arn: self.customer_iam_role_arn.clone(),
        }
    }
}

/// Whether an integration matches a recorded intent (environment, role ARN and name).
pub fn matches_intent(i: &Integration, p: &PendingCreate) -> bool {
    i.environment.id == p.environment
        && i.customer_iam_role_arn() == Some(p.customer_iam_role_arn.as_str())
        && i.display_name == p.display_name
}

/// What the I/O layer must look up before deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The integration we track (or are asked to adopt), by id, in this environment.
    ById { id: String, environment: String },
    /// An integration with this natural key; `fresh` demands a listing newer than our last
    /// create attempt (we may have created it), otherwise a cached one will do.
    ByKey { key: PendingCreate, fresh: bool },
}

/// What the remote side looked like.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// The tracked id exists.
    Found(Integration),
    /// The tracked id does not exist (confirmed, not merely absent from a cache).
    Missing,
    /// Result of a key lookup.
    ByKey(Option<Integration>),
}

/// The id to track: the one we recorded, else the one we are asked to adopt.
pub fn tracked_id(desired: &Desired, status: &ProviderIntegrationStatus) -> Option<String> {
    status.id.clone().or_else(|| desired.adopt_id.clone())
}

/// Which lookup the apply path needs.
pub fn lookup(desired: &Desired, status: &ProviderIntegrationStatus) -> Lookup {
    match tracked_id(desired, status) {
        Some(id) => Lookup::ById {
            id,
            environment: status
                .id
                .as_ref()
                .and(status.environment.clone())
                .unwrap_or_else(|| desired.environment.clone()),
        },
        None => match &status.pending_create {
            Some(p) => Lookup::ByKey {
                key: p.clone(),
                fresh: true,
            },
            None => Lookup::ByKey {
                key: desired.intent(),
                fresh: false,
            },
        },
    }
}

/// Why a resource is stalled; each maps to a condition reason a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StallReason {
    InvalidSpec,
    AlreadyExists,
    ImmutableFieldChanged,
    AdoptionTargetNotFound,
    AdoptedMismatch,
    IntegrationGone,
    IntegrationIdChanged,
}

impl StallReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            StallReason::InvalidSpec => "InvalidSpec",
            StallReason::AlreadyExists => "AlreadyExists",
            StallReason::ImmutableFieldChanged => "ImmutableFieldChanged",
            StallReason::AdoptionTargetNotFound => "AdoptionTargetNotFound",
            StallReason::AdoptedMismatch => "AdoptedMismatch",
            StallReason::IntegrationGone => "IntegrationGone",
            StallReason::IntegrationIdChanged => "IntegrationIdChanged",
        }
    }
}

/// The one thing to do next on the apply path.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Everything matches: record the remote state.
    InSync(Integration),
    /// Record intent, then create. `replaces` names an integration deleted out of band.
    Create { replaces: Option<String> },
    /// Our earlier create did happen (found by its intent): record its id.
    Claim(Integration),
    /// Take over the integration named by `spec.integrationId`.
    Adopt(Integration),
    /// Delete this integration so that a new one can be created from the changed spec.
    Recreate {
        old: Integration,
        changed: Vec<&'static str>,
    },
    Stall {
        reason: StallReason,
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
    if i.provider != desired.provider {
        out.push("provider");
    }
    if i.customer_iam_role_arn() != Some(desired.customer_iam_role_arn.as_str()) {
        out.push("aws.customerIamRoleArn");
    }
    out
}

/// Decides the apply path from the looked-up remote state.
pub fn decide(desired: &Desired, status: &ProviderIntegrationStatus, observed: Observed) -> Action {
    let adopting = desired.adopt_id.is_some();
    if let (Some(recorded), Some(wanted)) = (&status.id, &desired.adopt_id)
        && recorded != wanted
    {
        return Action::Stall {
            reason: StallReason::IntegrationIdChanged,
            message: format!(
                "spec.integrationId changed from {recorded} to {wanted}; an integration cannot be swapped in place. \
                 Restore spec.integrationId, or delete this resource (with deletionPolicy: Orphan to keep {recorded}) and create it again"
            ),
        };
    }
    let observed = match observed {
        // Nothing tracked: an integration found is only a key match, never one to adopt.
        Observed::Found(i) if status.id.is_none() && desired.adopt_id.is_none() => {
            Observed::ByKey(Some(i))
        }
        o => o,
    };
    match observed {
        Observed::Found(i) => {
            let changed = changed_fields(desired, &i, adopting);
            if status.id.is_none() {
                // Adoption: `spec.integrationId` named an integration we do not track yet.
                return if changed.is_empty() {
                    Action::Adopt(i)
                } else {
                    Action::Stall {
                        reason: StallReason::AdoptedMismatch,
                        message: format!(
                            "integration {} does not match the spec in {}; make the spec match it to adopt it",
                            i.id,
                            changed.join(", ")
                        ),
                    }
                };
            }
            if changed.is_empty() {
                Action::InSync(i)
            } else if adopting {
                Action::Stall {
                    reason: StallReason::AdoptedMismatch,
                    message: format!(
                        "adopted integration {} no longer matches the spec in {}; adopted integrations are never recreated, revert the spec",
                        i.id,
                        changed.join(", ")
                    ),
                }
            } else if desired.update_policy == UpdatePolicy::Recreate {
                Action::Recreate { old: i, changed }
            } else {
                Action::Stall {
                    reason: StallReason::ImmutableFieldChanged,
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
            (None, Some(id)) => Action::Stall {
                reason: StallReason::AdoptionTargetNotFound,
                message: format!(
                    "integration {id} named by spec.integrationId does not exist in environment {}",
                    desired.environment
                ),
            },
            (Some(id), Some(_)) => Action::Stall {
                reason: StallReason::IntegrationGone,
                message: format!(
                    "adopted integration {id} was deleted outside Kubernetes; remove spec.integrationId to let the operator create a new one"
                ),
            },
            (id, None) => Action::Create {
                replaces: id.clone(),
            },
        },
        Observed::ByKey(found) => match (found, &status.pending_create) {
            (Some(i), Some(_)) => Action::Claim(i),
            (Some(i), None) => Action::Stall {
                reason: StallReason::AlreadyExists,
                message: format!(
                    "integration {} already uses role {} in environment {} and was not created by this resource; \
                     set spec.integrationId: {} to adopt it",
                    i.id, desired.customer_iam_role_arn, desired.environment, i.id
                ),
            },
            (None, _) => Action::Create { replaces: None },
        },
    }
}

/// The one thing to do next on the delete path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleanup {
    /// Remove the finalizer without calling the API.
    Orphan,
    /// Nothing was ever created: remove the finalizer.
    Nothing,
    /// Delete this id.
    Delete { id: String, environment: String },
    /// An intent exists without an id: find the integration first.
    FindThenDelete(PendingCreate),
}

pub fn cleanup(policy: DeletionPolicy, status: &ProviderIntegrationStatus) -> Cleanup {
    if policy == DeletionPolicy::Orphan {
        return Cleanup::Orphan;
    }
    match (&status.id, &status.pending_create) {
        (Some(id), _) => Cleanup::Delete {
            id: id.clone(),
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

/// After a refused DELETE, the integration read back tells whether it is in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Connectors use it: keep the finalizer and say which.
    InUse(Vec<String>),
    /// Refused for another reason: retry with backoff and show the API's detail.
    Other(String),
}

pub fn refusal(detail: &str, read_back: Option<&Integration>) -> Refusal {
    match read_back {
        Some(i) if !i.usages.is_empty() => Refusal::InUse(i.usages.clone()),
        _ => Refusal::Other(detail.to_string()),
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
