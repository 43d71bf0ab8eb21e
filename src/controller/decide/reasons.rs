//! Every condition and event reason the operator writes, in one place, with the hint texts that
//! tell a user what to do. Reasons are API: dashboards, alerts and `kubectl wait` scripts match
//! on them, so they never change spelling.

use crate::crd::CloudProvider;
use crate::pim::{Credentials, Integration, PimError};

/// The GCP role that lets one service account impersonate another (the grant a GCP integration
/// needs; named in hints and in the outputs ConfigMap).
pub const GCP_TOKEN_CREATOR: &str = "roles/iam.serviceAccountTokenCreator";

/// A CamelCase condition or event reason, spelled as the variant unless marked.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::EnumIter,
    strum::Display,
)]
pub enum Reason {
    // Progress (Ready=False, Reconciling=True) and the steady state.
    Synced,
    Reconciling,
    Creating,
    Configuring,
    Recreating,
    RecreateBlocked,
    Deleting,
    DeletionBlocked,
    DeletionFailed,
    // Transient API trouble: retried, never a stall.
    RateLimited,
    #[strum(serialize = "APITimeout")]
    ApiTimeout,
    #[strum(serialize = "APIUnavailable")]
    ApiUnavailable,
    // API errors a human must fix.
    Unauthenticated,
    Forbidden,
    QuotaExceeded,
    Rejected,
    Conflict,
    NotFound,
    #[strum(serialize = "APIError")]
    ApiError,
    /// Answers that could not be decoded, several times in a row.
    UnexpectedResponse,
    /// The Kubernetes API server rejected one of the operator's writes as invalid (422).
    WriteRejected,
    // Credentials.
    NoCredentials,
    CredentialsNotFound,
    /// The operator's default credentials are not granted to this namespace and environment.
    CredentialsNotAllowed,
    // Judgements of `decide` a human must resolve.
    InvalidSpec,
    AlreadyExists,
    /// Another resource owns the integration (or asked for its key first).
    AlreadyManaged,
    ImmutableFieldChanged,
    AdoptionTargetNotFound,
    AdoptedMismatch,
    IntegrationGone,
    IntegrationIdChanged,
    AmbiguousIntegration,
    OutputsConflict,
    /// Deletion cannot reach the integration's environment (deleted, or no longer granted).
    EnvironmentUnreachable,
    // The trust object (`spec.trust`): stalls a human must resolve.
    /// The cloud operator's CRD is not installed.
    TrustKindNotInstalled,
    /// The operator may not read or write that kind (RBAC).
    TrustForbidden,
    /// The trust field is applied by another manager (server-side apply).
    TrustFieldOwned,
    /// `Own`: an object of that name exists and is not this resource's.
    TrustTargetNotOwned,
    /// `Share`: the team's object does not exist.
    TrustTargetNotFound,
    /// `Share`: the team's object is for another identity (a Principal of another app).
    TrustTargetMismatch,
    /// A cluster-scoped object the resource's Namespace was not granted.
    TrustNotGranted,
    /// The trust cannot be made from the values, or the shared document cannot be read.
    TrustInvalid,
    // The `Trusted` condition.
    TrustSynced,
    AwaitingCloudOperator,
    TrustFailing,
    // The `Validated` condition.
    /// Validation waits for the trust to be in place (`Trusted`).
    AwaitingTrust,
    Validated,
    Validating,
    ValidationFailed,
    /// Work is paused by `pim.confluent.cloud/paused` (the `Paused` condition and its event).
    Paused,
    /// A deletion waits: the resource's Namespace cannot be read, so a pause cannot be ruled out.
    PauseUnknown,
    // Events only.
    /// The pause was lifted.
    Resumed,
    Created,
    Adopted,
    Recreated,
    Orphaned,
    Deleted,
    /// The operator wrote or removed its trust.
    TrustWritten,
    TrustRemoved,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The reason a condition carries, if it is one of ours.
    pub fn parse(s: &str) -> Option<Reason> {
        s.parse().ok()
    }

    /// The reason for an API error a human must fix.
    pub fn of_stall(e: &PimError) -> Reason {
        match e {
            PimError::Unauthenticated { .. } => Reason::Unauthenticated,
            PimError::Forbidden { .. } => Reason::Forbidden,
            PimError::QuotaExceeded { .. } => Reason::QuotaExceeded,
            PimError::Invalid { .. } => Reason::Rejected,
            PimError::Conflict { .. } => Reason::Conflict,
            PimError::NotFound { .. } => Reason::NotFound,
            _ => Reason::ApiError,
        }
    }

    /// The reason for an API error that will likely pass.
    pub fn of_transient(e: &PimError) -> Reason {
        match e {
            PimError::RateLimited { .. } => Reason::RateLimited,
            PimError::Timeout => Reason::ApiTimeout,
            _ => Reason::ApiUnavailable,
        }
    }
}

/// An API error with what the user can do about it.
pub fn user_hint(e: &PimError, creds: &Credentials) -> String {
    match e {
        PimError::Unauthenticated { .. } => {
            format!("{e}; check the API key {} and its secret", creds.key)
        }
        PimError::Forbidden { .. } => format!(
            "{e}; API key {} needs the EnvironmentAdmin or OrganizationAdmin role",
            creds.key
        ),
        PimError::QuotaExceeded { .. } => {
            format!("{e}; delete unused integrations or ask Confluent to raise the quota")
        }
        _ => e.to_string(),
    }
}

/// What the customer must redo after their integration was replaced.
pub fn regrant(provider: CloudProvider) -> &'static str {
    match provider {
        CloudProvider::Aws => "it has a new external id: update your trust policy",
        CloudProvider::Gcp => {
            "it may have a new Google service account: update the impersonation binding"
        }
        CloudProvider::Azure => "check the admin consent of its multi-tenant app",
    }
}

/// What the customer must grant for validation to pass, from the values Confluent returned.
pub fn grant_hint(i: &Integration) -> String {
    if let Some(c) = i.gcp() {
        let gsa = c
            .google_service_account
            .as_deref()
            .unwrap_or("Confluent's service account");
        return format!(
            "grant {gsa} the Service Account Token Creator role ({}) on {}",
            GCP_TOKEN_CREATOR, c.customer_google_service_account
        );
    }
    if let Some(c) = i.azure() {
        let app = c
            .confluent_multi_tenant_app_id
            .as_deref()
            .unwrap_or("Confluent's multi-tenant app");
        return format!(
            "in tenant {}, create a service principal for app {app} (az ad sp create --id {app}), grant it admin consent and access to your resources",
            c.customer_azure_tenant_id
        );
    }
    if let Some(c) = i.aws() {
        return format!(
            "let {} assume {} with sts:ExternalId {} in its trust policy",
            c.iam_role_arn.as_deref().unwrap_or("Confluent's IAM role"),
            c.customer_iam_role_arn,
            c.external_id.as_deref().unwrap_or("(the external id)")
        );
    }
    "complete the cloud-side setup".into()
}

/// The customer's identity an integration acts as, for messages.
pub fn customer_identity(i: &Integration) -> String {
    if let Some(c) = i.gcp() {
        format!("service account {}", c.customer_google_service_account)
    } else if let Some(c) = i.azure() {
        format!("tenant {}", c.customer_azure_tenant_id)
    } else if let Some(c) = i.aws() {
        format!("role {}", c.customer_iam_role_arn)
    } else {
        format!("integration {}", i.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_camel_case_unique_and_parses_back() {
        let mut seen = std::collections::HashSet::new();
        use strum::IntoEnumIterator;
        let mut n = 0;
        for r in Reason::iter() {
            n += 1;
            let s = r.as_str();
            assert!(
                s.chars().next().is_some_and(|c| c.is_ascii_uppercase()),
                "{s}"
            );
            assert!(s.chars().all(|c| c.is_ascii_alphanumeric()), "{s}");
            assert!(seen.insert(s), "{s} twice");
            assert_eq!(Reason::parse(s), Some(r));
        }
        assert_eq!(Reason::parse("Nope"), None);
        assert_eq!(n, 60);
        // Spellings dashboards match on.
        assert_eq!(Reason::ApiTimeout.as_str(), "APITimeout");
        assert_eq!(Reason::ApiError.to_string(), "APIError");
        assert_eq!(Reason::WriteRejected.as_str(), "WriteRejected");
    }
}
