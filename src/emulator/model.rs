//! What the emulator's parts share: the API dialect of a request (`Version`), a stored
//! integration (`Record`) and how it is shown, and an API error (`ApiError`). It depends on no
//! other part of the emulator, so `store`, `pages` and `request` need not depend on each other.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::pim::types::{
    ApiErrorItem, EnvironmentRef, ErrorBody, ErrorSource, Integration, IntegrationConfig,
};

/// An API error in the documented `{"errors":[...]}` shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub pointer: Option<String>,
    pub parameter: Option<String>,
    /// Answer in the legacy `{"error_code","message"}` shape instead of `{"errors":[…]}`.
    pub legacy: bool,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            title,
            detail: detail.into(),
            pointer: None,
            parameter: None,
            legacy: false,
        }
    }

    /// The same error in the legacy shape. Confluent's Terraform provider replays it for a GET
    /// of a v1 integration that is gone
    /// (`terraform-mocks/provider_integration__read_deleted_aws_provider_integration.json`:
    /// `{"error_code":404,"message":"Provider Integration dlz-… not found"}`).
    pub fn legacy(mut self) -> Self {
        self.legacy = true;
        self
    }
    pub fn invalid_field(pointer: &str, detail: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "Validation Failed",
            detail,
        );
        e.pointer = Some(pointer.to_string());
        e
    }
    pub fn invalid_param(parameter: &str, code: &'static str, detail: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, code, "Bad Request", detail);
        e.parameter = Some(parameter.to_string());
        e
    }
    pub fn not_found(id: &str, env: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            "Not Found",
            format!("integration \"{id}\" not found in environment \"{env}\""),
        )
    }
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            errors: vec![ApiErrorItem {
                id: Some(uuid::Uuid::new_v4().to_string()),
                status: Some(self.status.as_u16().to_string()),
                code: Some(self.code.to_string()),
                title: Some(self.title.to_string()),
                detail: Some(self.detail.clone()),
                source: (self.pointer.is_some() || self.parameter.is_some()).then(|| ErrorSource {
                    pointer: self.pointer.clone(),
                    parameter: self.parameter.clone(),
                }),
            }],
        }
    }
}

/// Which API dialect a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl Version {
    pub fn path(self) -> &'static str {
        match self {
            Version::V1 => "pim/v1",
            Version::V2 => "pim/v2",
        }
    }
}

/// The `pim/v2` lifecycle as stored: DRAFT (no customer configuration yet) or CREATED. The API
/// shows CREATED as `ACTIVE` while the integration is in use by Confluent resources
/// (`pim-v2.openapi.yaml`, `pim.v2.Integration.status`); `Active` is read from older state files
/// and means CREATED.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Phase {
    Draft,
    Created,
    Active,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Draft => "DRAFT",
            Phase::Created => "CREATED",
            Phase::Active => "ACTIVE",
        }
    }
}

/// One stored integration.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Record {
    pub seq: u64,
    pub id: String,
    pub display_name: String,
    pub provider: String,
    pub environment: String,
    pub config: Option<IntegrationConfig>,
    pub usages: Vec<String>,
    pub phase: Phase,
    /// Whether the customer granted Confluent access on their cloud side (drives validate).
    pub access_granted: bool,
}

impl Record {
    pub fn customer_role(&self) -> Option<&str> {
        match &self.config {
            Some(IntegrationConfig::Aws(c)) => Some(&c.customer_iam_role_arn),
            _ => None,
        }
    }

    /// The `pim/v2` status: DRAFT until configured, then ACTIVE while in use by Confluent
    /// resources (`usages`), else CREATED.
    pub fn status(&self) -> &'static str {
        match self.phase {
            Phase::Draft => "DRAFT",
            _ if !self.usages.is_empty() => "ACTIVE",
            _ => "CREATED",
        }
    }

    /// The API view of this record in one dialect.
    pub fn to_api(&self, version: Version, base: &str, org_id: &str) -> Integration {
        Integration {
            api_version: version.path().to_string(),
            kind: "Integration".into(),
            id: self.id.clone(),
            display_name: self.display_name.clone(),
            provider: self.provider.clone(),
            config: self.config.clone(),
            usages: self.usages.clone(),
            environment: EnvironmentRef {
                id: self.environment.clone(),
                related: Some(format!("{base}/v2/environments/{}", self.environment)),
                resource_name: Some(format!(
                    "{base}/organization={org_id}/environment={}",
                    self.environment
                )),
            },
            status: (version == Version::V2).then(|| self.status().to_string()),
        }
    }
}
