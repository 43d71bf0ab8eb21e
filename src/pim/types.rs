//! Wire types of the Provider Integration API (`pim/v1` and `pim/v2`), exactly as documented in
//! `shared/pim-api.md`. Shared by the client and the emulator so both speak one dialect; the
//! emulator's black-box tests assert the raw JSON, so a mistake here cannot hide.

use serde::{Deserialize, Serialize};

/// One provider integration as the API returns it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Integration {
    pub api_version: String,
    pub kind: String,
    pub id: String,
    pub display_name: String,
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<IntegrationConfig>,
    #[serde(default)]
    pub usages: Vec<String>,
    pub environment: EnvironmentRef,
    /// `pim/v2` only: `DRAFT`, `CREATED` or `ACTIVE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

impl Integration {
    /// The customer's IAM role ARN of an AWS integration, which the API keeps unique per
    /// environment and which therefore finds an integration again after a crash.
    pub fn customer_iam_role_arn(&self) -> Option<&str> {
        match &self.config {
            Some(IntegrationConfig::Aws(c)) => Some(&c.customer_iam_role_arn),
            _ => None,
        }
    }

    pub fn aws(&self) -> Option<&AwsConfig> {
        match &self.config {
            Some(IntegrationConfig::Aws(c)) => Some(c),
            _ => None,
        }
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
    pub customer_google_service_account: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google_service_account: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct AzureConfig {
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
    pub api_version: String,
    pub kind: String,
    pub metadata: ListMeta,
    pub data: Vec<Integration>,
}

/// Body of `POST /pim/v1/integrations`.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct CreateIntegration {
    pub display_name: String,
    pub provider: String,
    pub config: CreateConfig,
    pub environment: EnvId,
}

/// The writable part of an AWS config.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct CreateConfig {
    pub kind: String,
    pub customer_iam_role_arn: String,
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

pub const KIND_AWS_CONFIG: &str = "AwsIntegrationConfig";
pub const PROVIDER_AWS: &str = "AWS";
