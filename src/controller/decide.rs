//! The decision: a pure function of (spec, status, remote observation) to one action. All of the
//! operator's judgement lives here so it can be tested exhaustively without I/O.

use crate::crd::{
    CloudProvider, DeletionPolicy, PendingCreate, ProviderIntegration, ProviderIntegrationStatus,
    UpdatePolicy,
};
use crate::pim::{ApiVersion, Integration, WriteConfig};

/// The provider-specific part of the spec: the customer's identity Confluent acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DesiredConfig {
    Aws {
        customer_iam_role_arn: String,
    },
    Gcp {
        customer_google_service_account: String,
    },
    Azure {
        customer_azure_tenant_id: String,
    },
}

impl DesiredConfig {
    pub fn provider(&self) -> CloudProvider {
        match self {
            DesiredConfig::Aws { .. } => CloudProvider::Aws,
            DesiredConfig::Gcp { .. } => CloudProvider::Gcp,
            DesiredConfig::Azure { .. } => CloudProvider::Azure,
        }
    }

    /// The spec field holding the value, for messages.
    pub fn field(&self) -> &'static str {
        match self {
            DesiredConfig::Aws { .. } => "aws.customerIamRoleArn",
            DesiredConfig::Gcp { .. } => "gcp.customerGoogleServiceAccount",
            DesiredConfig::Azure { .. } => "azure.customerAzureTenantId",
        }
    }

    pub fn value(&self) -> &str {
        match self {
            DesiredConfig::Aws {
                customer_iam_role_arn: v,
            }
            | DesiredConfig::Gcp {
                customer_google_service_account: v,
            }
            | DesiredConfig::Azure {
                customer_azure_tenant_id: v,
            } => v,
        }
    }

    /// The config as the API takes it.
    pub fn write(&self) -> WriteConfig {
        match self.clone() {
            DesiredConfig::Aws {
                customer_iam_role_arn,
            } => WriteConfig::Aws {
                customer_iam_role_arn,
            },
            DesiredConfig::Gcp {
                customer_google_service_account,
            } => WriteConfig::Gcp {
                customer_google_service_account,
            },
            DesiredConfig::Azure {
                customer_azure_tenant_id,
            } => WriteConfig::Azure {
                customer_azure_tenant_id,
            },
        }
    }

    /// Whether an integration's config matches; `None` when it has none yet (a DRAFT).
    pub fn matches(&self, i: &Integration) -> Option<bool> {
        i.config.as_ref()?;
        Some(match self {
            DesiredConfig::Aws {
                customer_iam_role_arn,
            } => i.customer_iam_role_arn() == Some(customer_iam_role_arn.as_str()),
            DesiredConfig::Gcp {
                customer_google_service_account,
            } => {
                i.gcp().map(|c| c.customer_google_service_account.as_str())
                    == Some(customer_google_service_account.as_str())
            }
            DesiredConfig::Azure {
                customer_azure_tenant_id,
            } => i.azure().is_some_and(|c| {
                c.customer_azure_tenant_id
                    .eq_ignore_ascii_case(customer_azure_tenant_id)
            }),
        })
    }
}

/// The API version that manages integrations of a provider: AWS stays on `pim/v1`, which is
/// what Confluent documents for AWS and what existing resources were created with; GCP and
/// Azure exist only in `pim/v2`.
pub fn api_version(provider: CloudProvider) -> ApiVersion {
    match provider {
        CloudProvider::Aws => ApiVersion::V1,
        CloudProvider::Gcp | CloudProvider::Azure => ApiVersion::V2,
    }
}

/// The spec, resolved and checked: what the integration must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub environment: String,
    pub display_name: String,
    /// Whether `displayName` was set; an adopted integration's name is only compared if so.
    pub display_name_explicit: bool,
    /// The provider-specific part; it also names the provider.
    pub config: DesiredConfig,
    /// Whether to call validate and keep the `Validated` condition.
    pub validate: bool,
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
        let display_name = spec.display_name.clone().unwrap_or_else(|| name.clone());
        if display_name.chars().count() > 60 {
            return Err(InvalidSpec(format!(
                "the display name \"{display_name}\" is longer than 60 characters; set spec.displayName"
            )));
        }
        let provider = spec.provider;
        let blocks = [
            (CloudProvider::Aws, "aws", spec.aws.is_some()),
            (CloudProvider::Gcp, "gcp", spec.gcp.is_some()),
            (CloudProvider::Azure, "azure", spec.azure.is_some()),
        ];
        if let Some((_, block, _)) = blocks.iter().find(|(p, _, set)| *set && *p != provider) {
            return Err(InvalidSpec(format!(
                "spec.{block} is set but spec.provider is {}; set only the block of the provider",
                provider.as_str()
            )));
        }
        let (config, validate) = match provider {
            CloudProvider::Aws => {
                let aws = spec.aws.as_ref().ok_or_else(|| {
                    InvalidSpec("provider AWS requires spec.aws.customerIamRoleArn".into())
                })?;
                let arn_len = aws.customer_iam_role_arn.chars().count();
                if !(20..=2048).contains(&arn_len) {
                    return Err(InvalidSpec(
                        "spec.aws.customerIamRoleArn must be 20 to 2048 characters".into(),
                    ));
                }
                let c = DesiredConfig::Aws {
                    customer_iam_role_arn: aws.customer_iam_role_arn.clone(),
                };
                (c, aws.validate)
            }
            CloudProvider::Gcp => {
                let gcp = spec.gcp.as_ref().ok_or_else(|| {
                    InvalidSpec(
                        "provider GCP requires spec.gcp.customerGoogleServiceAccount".into(),
                    )
                })?;
                let sa = &gcp.customer_google_service_account;
                let ok = sa.split_once('@').is_some_and(|(user, domain)| {
                    !user.is_empty() && domain.ends_with(".gserviceaccount.com")
                });
                if !ok {
                    return Err(InvalidSpec(format!(
                        "spec.gcp.customerGoogleServiceAccount \"{sa}\" is not a service account e-mail (NAME@PROJECT.iam.gserviceaccount.com)"
                    )));
                }
                let c = DesiredConfig::Gcp {
                    customer_google_service_account: sa.clone(),
                };
                (c, true)
            }
            CloudProvider::Azure => {
                let azure = spec.azure.as_ref().ok_or_else(|| {
                    InvalidSpec("provider Azure requires spec.azure.customerAzureTenantId".into())
                })?;
                let t = &azure.customer_azure_tenant_id;
                if t.len() != 36 || uuid::Uuid::parse_str(t).is_err() {
                    return Err(InvalidSpec(format!(
                        "spec.azure.customerAzureTenantId \"{t}\" is not a tenant id (a UUID like 00000000-0000-0000-0000-000000000000)"
                    )));
                }
                let c = DesiredConfig::Azure {
                    customer_azure_tenant_id: t.clone(),
                };
                (c, true)
            }
        };
        Ok(Self {
            environment: spec.environment.clone(),
            display_name,
            display_name_explicit: spec.display_name.is_some(),
            config,
            validate,
            deletion_policy: spec.deletion_policy,
            update_policy: spec.update_policy,
            adopt_id: spec.integration_id.clone(),
        })
    }

    /// The natural key recorded before a create, to find the integration after a crash: the
    /// role ARN for AWS (unique per environment), the name and provider for `pim/v2` (a DRAFT
    /// has no config to match).
    pub fn intent(&self) -> PendingCreate {
        match &self.config {
            DesiredConfig::Aws {
                customer_iam_role_arn,
            } => PendingCreate {
                environment: self.environment.clone(),
                display_name: self.display_name.clone(),
                provider: None,
                customer_iam_role_arn: Some(customer_iam_role_arn.clone()),
            },
            _ => PendingCreate {
                environment: self.environment.clone(),
                display_name: self.display_name.clone(),
                provider: Some(self.provider()),
                customer_iam_role_arn: None,
            },
        }
    }

    pub fn provider(&self) -> CloudProvider {
        self.config.provider()
    }

    pub fn api_version(&self) -> ApiVersion {
        api_version(self.provider())
    }
}

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

/// Which lookup the apply path needs.
pub fn lookup(desired: &Desired, status: &ProviderIntegrationStatus) -> Lookup {
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
    Ambiguous,
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
            StallReason::Ambiguous => "AmbiguousIntegration",
        }
    }
}

/// The one thing to do next on the apply path. The integration of `InSync`, `Claim` and `Adopt`
/// may be a `pim/v2` DRAFT, whose config the apply path then sets.
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
    if CloudProvider::from_api_name(&i.provider) != Some(desired.provider()) {
        out.push("provider");
    } else if desired.config.matches(i) == Some(false) {
        out.push(desired.config.field());
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
        Observed::ByKey(mut found) => {
            if found.len() > 1 {
                let ids: Vec<&str> = found.iter().map(|i| i.id.as_str()).collect();
                return Action::Stall {
                    reason: StallReason::Ambiguous,
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
                (Some(i), Some(p)) if matches_intent(&i, p) => Action::Claim(i),
                (Some(i), _) => Action::Stall {
                    reason: StallReason::AlreadyExists,
                    message: already_exists(desired, &i.id),
                },
                (None, _) => Action::Create { replaces: None },
            }
        }
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
}

pub fn cleanup(policy: DeletionPolicy, status: &ProviderIntegrationStatus) -> Cleanup {
    if policy == DeletionPolicy::Orphan {
        return Cleanup::Orphan;
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
