//! Wire types of the Provider Integration API (`pim/v1` and `pim/v2`), following Confluent's
//! published contract (`shared/confluent-api/`: the SDK's OpenAPI files and the bodies Confluent's
//! Terraform provider replays). Shared by the client and the emulator so both speak one dialect;
//! contract tests validate both against the OpenAPI files.
//!
//! Decoding is lenient where the contract is: the spec requires only `kind` in a config, so the
//! customer's field may be absent (read as empty); `status` and `provider` are extensible enums
//! kept as strings.

use serde::{Deserialize, Serialize};

/// One provider integration as the API returns it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Integration {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    /// `AWS` in `pim/v1`; lower case (`gcp`, `azure`) in `pim/v2` answers. Compare ignoring case.
    #[serde(default)]
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<IntegrationConfig>,
    #[serde(default)]
    pub usages: Vec<String>,
    #[serde(default)]
    pub environment: EnvironmentRef,
    /// `pim/v2` only: `DRAFT` (no customer configuration yet), `CREATED` (configured) or `ACTIVE`
    /// (in use by Confluent resources; not "validated"). Extensible: other values may come.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// The longest integration id the API documents.
pub const MAX_ID_BYTES: usize = 255;
/// The longest value of an answer that is kept (an ARN's documented 2,048): each ends up in a
/// resource's status, which no answer may bloat.
pub const MAX_VALUE_BYTES: usize = 2048;
/// The usages kept of one integration (their count is what deletion waits on; the first ones
/// tell the user which connectors to remove).
pub const MAX_USAGES: usize = 100;

impl Integration {
    /// The answer, if it is one this operator can keep: an id of 1 to `MAX_ID_BYTES` (an empty
    /// one would address the collection), values of at most `MAX_VALUE_BYTES`, at most
    /// `MAX_USAGES` usages (the rest dropped). Otherwise what is wrong, for a `Decode` error.
    pub fn bounded(mut self) -> Result<Self, String> {
        if self.id.is_empty() || self.id.len() > MAX_ID_BYTES {
            return Err(format!(
                "an integration id of {} bytes (the API's are 1 to {MAX_ID_BYTES})",
                self.id.len()
            ));
        }
        let config = match &self.config {
            Some(IntegrationConfig::Aws(c)) => vec![
                Some(c.customer_iam_role_arn.as_str()),
                c.iam_role_arn.as_deref(),
                c.external_id.as_deref(),
            ],
            Some(IntegrationConfig::Gcp(c)) => vec![
                Some(c.customer_google_service_account.as_str()),
                c.google_service_account.as_deref(),
            ],
            Some(IntegrationConfig::Azure(c)) => vec![
                Some(c.customer_azure_tenant_id.as_str()),
                c.confluent_multi_tenant_app_id.as_deref(),
            ],
            _ => Vec::new(),
        };
        let long = [
            Some(self.display_name.as_str()),
            Some(self.provider.as_str()),
            Some(self.environment.id.as_str()),
            self.status.as_deref(),
        ]
        .into_iter()
        .chain(config)
        .chain(
            self.usages
                .iter()
                .take(MAX_USAGES)
                .map(|u| Some(u.as_str())),
        )
        .flatten()
        .find(|v| v.len() > MAX_VALUE_BYTES);
        if let Some(v) = long {
            return Err(format!(
                "integration {}: a value of {} bytes (at most {MAX_VALUE_BYTES} are kept)",
                self.id,
                v.len()
            ));
        }
        self.usages.truncate(MAX_USAGES);
        Ok(self)
    }

    /// The customer's IAM role ARN of an AWS integration, which the API keeps unique per
    /// environment and which therefore finds an integration again after a crash.
    pub fn customer_iam_role_arn(&self) -> Option<&str> {
        self.aws().map(|c| c.customer_iam_role_arn.as_str())
    }

    pub fn aws(&self) -> Option<&AwsConfig> {
        match &self.config {
            Some(IntegrationConfig::Aws(c)) => Some(c),
            _ => None,
        }
    }

    pub fn gcp(&self) -> Option<&GcpConfig> {
        match &self.config {
            Some(IntegrationConfig::Gcp(c)) => Some(c),
            _ => None,
        }
    }

    pub fn azure(&self) -> Option<&AzureConfig> {
        match &self.config {
            Some(IntegrationConfig::Azure(c)) => Some(c),
            _ => None,
        }
    }

    /// An integration whose customer configuration is still to be set: status `DRAFT`, or no
    /// customer value. A `pim/v2` DRAFT already carries a `config` holding Confluent's identity
    /// and an empty customer field (`terraform-mocks/provider_integration_setup__create_*`), so
    /// the presence of `config` says nothing.
    pub fn is_draft(&self) -> bool {
        let draft = self
            .status
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case(STATUS_DRAFT));
        let customer = match &self.config {
            Some(IntegrationConfig::Aws(c)) => c.customer_iam_role_arn.as_str(),
            Some(IntegrationConfig::Gcp(c)) => c.customer_google_service_account.as_str(),
            Some(IntegrationConfig::Azure(c)) => c.customer_azure_tenant_id.as_str(),
            Some(IntegrationConfig::Unknown) => "unknown kind",
            None => "",
        };
        draft || customer.trim().is_empty()
    }
}

/// The provider-specific configuration, tagged by `kind`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "kind")]
pub enum IntegrationConfig {
    #[serde(rename = "AwsIntegrationConfig")]
    Aws(AwsConfig),
    #[serde(rename = "GcpIntegrationConfig")]
    Gcp(GcpConfig),
    #[serde(rename = "AzureIntegrationConfig")]
    Azure(AzureConfig),
    /// A kind this build does not know yet; kept so a newer API does not break listing.
    #[serde(other)]
    Unknown,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct AwsConfig {
    /// The customer's side; absent or empty until configured. Absent when empty on the wire:
    /// the spec gives it `minLength: 20`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub customer_iam_role_arn: String,
    /// Confluent's role that the customer's role must trust (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam_role_arn: Option<String>,
    /// The `sts:ExternalId` for the customer's trust policy (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct GcpConfig {
    /// The customer's side; absent or empty until configured.
    #[serde(default)]
    pub customer_google_service_account: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google_service_account: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct AzureConfig {
    /// The customer's side; absent or empty until configured.
    #[serde(default)]
    pub customer_azure_tenant_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confluent_multi_tenant_app_id: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct EnvironmentRef {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ListMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    #[serde(default)]
    pub total_size: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct IntegrationList {
    /// Required by the spec and never read: an answer without them is still a page.
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    pub metadata: ListMeta,
    pub data: Vec<Integration>,
}

/// Body of `POST /pim/v1/integrations` (config required) and `POST /pim/v2/integrations`
/// (without config: a DRAFT).
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct CreateIntegration {
    pub display_name: String,
    pub provider: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<WriteConfig>,
    pub environment: EnvId,
}

/// The writable part of a config, tagged by `kind`.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "kind")]
pub enum WriteConfig {
    #[serde(rename = "AwsIntegrationConfig")]
    Aws { customer_iam_role_arn: String },
    #[serde(rename = "GcpIntegrationConfig")]
    Gcp {
        customer_google_service_account: String,
    },
    #[serde(rename = "AzureIntegrationConfig")]
    Azure { customer_azure_tenant_id: String },
}

/// Body of `PATCH /pim/v2/integrations/{id}`.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct UpdateIntegration {
    pub config: WriteConfig,
    pub environment: EnvId,
}

/// Body of `POST /pim/v2/integrations:validate`.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ValidateIntegration {
    pub id: String,
    pub environment: EnvId,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct EnvId {
    pub id: String,
}

/// The documented error body: `{"errors":[{...}]}`.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct ErrorBody {
    pub errors: Vec<ApiErrorItem>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct ApiErrorItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ErrorSource>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct ErrorSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

/// The other error shape some endpoints use: `{"error_code":404,"message":"..."}`.
#[derive(Deserialize, Clone, Debug)]
pub struct LegacyErrorBody {
    pub error_code: u16,
    pub message: String,
}

pub const STATUS_DRAFT: &str = "DRAFT";

#[cfg(test)]
mod tests {
    use super::*;

    fn aws(id: &str, external_id: &str) -> Integration {
        serde_json::from_value(serde_json::json!({
            "id": id, "display_name": "pi", "provider": "AWS",
            "environment": {"id": "env-1"},
            "config": {"kind": "AwsIntegrationConfig",
                "customer_iam_role_arn": "arn:aws:iam::123456789012:role/r",
                "external_id": external_id},
        }))
        .unwrap()
    }

    #[test]
    fn only_an_answer_within_bounds_is_kept() {
        assert!(aws("dlz-1", "ext").bounded().is_ok());
        let id = |n| "d".repeat(n);
        assert!(aws(&id(MAX_ID_BYTES), "ext").bounded().is_ok());
        for bad in [String::new(), id(MAX_ID_BYTES + 1)] {
            let e = aws(&bad, "ext").bounded().unwrap_err();
            assert!(e.contains("integration id of"), "{e}");
        }
        let huge = "x".repeat(MAX_VALUE_BYTES + 1);
        let e = aws("dlz-1", &huge).bounded().unwrap_err();
        assert!(e.contains(&format!("{} bytes", MAX_VALUE_BYTES + 1)), "{e}");
        let mut many = aws("dlz-1", "ext");
        many.usages = (0..MAX_USAGES + 50)
            .map(|n| format!("crn://c/{n}"))
            .collect();
        assert_eq!(many.bounded().unwrap().usages.len(), MAX_USAGES);
        let mut long_usage = aws("dlz-1", "ext");
        long_usage.usages = vec![huge];
        assert!(long_usage.bounded().is_err());
    }
}
