//! The spec, resolved and checked: what the integration must look like. Everything the CRD
//! schema may not have enforced (CEL rules are skipped on old clusters) is checked here, before
//! any API call.

use crate::crd::{
    CloudProvider, DeletionPolicy, PendingCreate, ProviderIntegration, ProviderIntegrationSpec,
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

    /// Whether an integration's config matches; `None` when it is not configured yet (a DRAFT,
    /// or an empty customer field): then the flow resumes with the config.
    pub fn matches(&self, i: &Integration) -> Option<bool> {
        if i.is_draft() {
            return None;
        }
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

/// The deletion policy in force: the spec's, else `Delete` for an integration this resource
/// creates and `Orphan` for one it adopts (adoption is not permission to delete).
pub fn deletion_policy(spec: &ProviderIntegrationSpec) -> DeletionPolicy {
    // An observer never deletes, whatever its deletionPolicy says.
    if spec.observes() {
        return DeletionPolicy::Orphan;
    }
    spec.deletion_policy
        .unwrap_or(if spec.integration_id.is_some() {
            DeletionPolicy::Orphan
        } else {
            DeletionPolicy::Delete
        })
}

/// What the CRD's rules say of `spec.trust`, for clusters that skip CEL.
fn check_trust(
    spec: &crate::crd::ProviderIntegrationSpec,
    t: &crate::crd::TrustSpec,
) -> Result<(), InvalidSpec> {
    use super::trust::TrustKind;
    if spec.observes() || spec.integration_id.is_some() {
        return Err(InvalidSpec(
            "spec.trust is written only for an integration this resource creates: an adopted (integrationId) or observed integration keeps the trust it has".into(),
        ));
    }
    let r = &t.target_ref;
    let Some(kind) = TrustKind::of(&r.api_version, &r.kind) else {
        return Err(InvalidSpec(format!(
            "spec.trust.targetRef: {} {} is not a supported trust object",
            r.api_version, r.kind
        )));
    };
    if kind.provider() != spec.provider {
        return Err(InvalidSpec(format!(
            "spec.trust.targetRef: a {} carries the trust of {}, not of {}",
            r.kind,
            kind.provider().as_str(),
            spec.provider.as_str()
        )));
    }
    if kind == TrustKind::PolicyMember && t.mode == crate::crd::TrustMode::Share {
        return Err(InvalidSpec(
            "spec.trust.mode: an IAMPolicyMember cannot be shared (it binds one immutable member); use Own".into(),
        ));
    }
    Ok(())
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
    /// `managementPolicy: Observe`: mirror, never write to Confluent Cloud.
    pub observe: bool,
    /// Where the operator writes the cloud side of the trust (`spec.trust`), checked.
    pub trust: Option<crate::crd::TrustSpec>,
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
        let trust = spec.trust.clone();
        if let Some(t) = &trust {
            check_trust(spec, t)?;
        }
        Ok(Self {
            environment: spec.environment.clone(),
            display_name,
            display_name_explicit: spec.display_name.is_some(),
            config,
            // An observer never calls validate on someone else's behalf. With a trust to write,
            // `Validated` is what says the loop is closed, on AWS too.
            validate: (validate || trust.is_some()) && !spec.observes(),
            deletion_policy: deletion_policy(spec),
            update_policy: spec.update_policy,
            adopt_id: spec.integration_id.clone(),
            observe: spec.observes(),
            trust,
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
