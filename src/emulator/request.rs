//! What a request must hold: the API's errors in their published shape, and the validation of
//! request bodies. Kept apart from the store so each rule reads next to its error.

use serde_json::Value;

pub use super::model::ApiError;
use super::model::Version;
use crate::pim::types::{AwsConfig, AzureConfig, GcpConfig, IntegrationConfig};

pub const MAX_DISPLAY_NAME: usize = 60;
pub const ROLE_ARN_LEN: std::ops::RangeInclusive<usize> = 20..=2048;

fn expected_kind(provider: &str) -> &'static str {
    match provider.to_ascii_uppercase().as_str() {
        "GCP" => "GcpIntegrationConfig",
        "AZURE" => "AzureIntegrationConfig",
        _ => "AwsIntegrationConfig",
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Validates the `environment: {id}` object of a body.
pub fn body_environment(body: &Value) -> Result<String, ApiError> {
    match body
        .get("environment")
        .and_then(|e| e.get("id"))
        .and_then(Value::as_str)
    {
        Some(id) if !id.trim().is_empty() => Ok(id.to_string()),
        _ => Err(ApiError::invalid_field(
            "/environment/id",
            "environment.id is required",
        )),
    }
}

pub fn body_display_name(body: &Value) -> Result<String, ApiError> {
    match str_field(body, "display_name") {
        None => Err(ApiError::invalid_field(
            "/display_name",
            "display_name is required",
        )),
        Some(n) if n.trim().is_empty() => Err(ApiError::invalid_field(
            "/display_name",
            "display_name must not be empty",
        )),
        Some(n) if n.chars().count() > MAX_DISPLAY_NAME => Err(ApiError::invalid_field(
            "/display_name",
            format!("display_name must be at most {MAX_DISPLAY_NAME} characters"),
        )),
        Some(n) => Ok(n.to_string()),
    }
}

/// The provider of a create body, in the case the API answers with: `AWS` in `pim/v1`, lower case
/// in `pim/v2` (`terraform-mocks/provider_integration_setup__*`: `"provider": "gcp"`). Any case
/// is accepted, as Confluent's Terraform provider sends lower case and the spec's examples upper.
pub fn body_provider(body: &Value, version: Version) -> Result<String, ApiError> {
    let allowed: &[&str] = match version {
        Version::V1 => &["AWS"],
        Version::V2 => &["AWS", "GCP", "AZURE"],
    };
    match str_field(body, "provider") {
        None => Err(ApiError::invalid_field("/provider", "provider is required")),
        Some(p) if allowed.iter().any(|a| a.eq_ignore_ascii_case(p)) => Ok(match version {
            Version::V1 => p.to_ascii_uppercase(),
            Version::V2 => p.to_ascii_lowercase(),
        }),
        Some(p) => Err(ApiError::invalid_field(
            "/provider",
            format!(
                "provider \"{p}\" is not supported; expected one of {}",
                allowed.join(", ")
            ),
        )),
    }
}

/// Parses the writable part of a config and checks it against the provider.
pub fn body_config(config: &Value, provider: &str) -> Result<IntegrationConfig, ApiError> {
    if !config.is_object() {
        return Err(ApiError::invalid_field(
            "/config",
            "config must be an object",
        ));
    }
    let want = expected_kind(provider);
    match str_field(config, "kind") {
        Some(k) if k == want => {}
        Some(k) => {
            return Err(ApiError::invalid_field(
                "/config/kind",
                format!("config.kind \"{k}\" does not match provider {provider}; expected {want}"),
            ));
        }
        None => {
            return Err(ApiError::invalid_field(
                "/config/kind",
                "config.kind is required",
            ));
        }
    }
    match provider.to_ascii_uppercase().as_str() {
        "GCP" => {
            let sa = str_field(config, "customer_google_service_account").unwrap_or_default();
            // inferred: the spec has no pattern; a service account is an e-mail address.
            let ok = sa
                .split_once('@')
                .is_some_and(|(u, d)| !u.is_empty() && d.contains('.') && !d.contains('@'));
            if !ok {
                return Err(ApiError::invalid_field(
                    "/config/customer_google_service_account",
                    "customer_google_service_account must be a service account e-mail address",
                ));
            }
            Ok(IntegrationConfig::Gcp(GcpConfig {
                customer_google_service_account: sa.to_string(),
                google_service_account: None,
            }))
        }
        "AZURE" => {
            let t = str_field(config, "customer_azure_tenant_id").unwrap_or_default();
            // inferred: a tenant id is a UUID.
            if uuid::Uuid::parse_str(t).is_err() {
                return Err(ApiError::invalid_field(
                    "/config/customer_azure_tenant_id",
                    "customer_azure_tenant_id must be a UUID",
                ));
            }
            Ok(IntegrationConfig::Azure(AzureConfig {
                customer_azure_tenant_id: t.to_string(),
                confluent_multi_tenant_app_id: None,
            }))
        }
        _ => {
            let arn = str_field(config, "customer_iam_role_arn").unwrap_or_default();
            let n = arn.chars().count();
            if !ROLE_ARN_LEN.contains(&n) {
                return Err(ApiError::invalid_field(
                    "/config/customer_iam_role_arn",
                    format!("customer_iam_role_arn must be 20 to 2048 characters, got {n}"),
                ));
            }
            Ok(IntegrationConfig::Aws(AwsConfig {
                customer_iam_role_arn: arn.to_string(),
                iam_role_arn: None,
                external_id: None,
            }))
        }
    }
}
