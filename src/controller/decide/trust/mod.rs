//! The cloud side of the trust (`spec.trust`), judged without I/O: which cloud operator's object
//! carries it, what the operator writes there, what it removes, and what the object's own
//! conditions say. `steps/trust.rs` does the reading and writing.
//!
//! Two ways (`TrustMode`): `Own`, the object is the operator's (created with an owner reference,
//! applied server-side, deleted with the integration); `Share`, the object is the team's and the
//! operator adds only its own part: one trust statement per integration in a Role's document
//! (`aws.rs`), or a Principal's client id when unset and an annotation naming the integration.

pub mod aws;
mod objects;
mod readiness;
mod write;

pub use objects::{Owner, TrustValues, owned_object};
pub use readiness::{Readiness, readiness};
pub use write::{Target, TrustWrite, appliers_of, plan, release};

use crate::crd::CloudProvider;

/// The objects that can carry a trust, by the cloud operator that reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum TrustKind {
    /// AWS Controllers for Kubernetes, IAM controller: `Role` (namespaced).
    AckRole,
    /// Crossplane's AWS provider, namespaced `Role`.
    CrossplaneRole,
    /// Crossplane's AWS provider, cluster-scoped `Role`.
    CrossplaneClusterRole,
    /// Google Config Connector `IAMPolicyMember` (namespaced).
    PolicyMember,
    /// Crossplane's Azure AD provider, namespaced service principal `Principal`.
    CrossplanePrincipal,
    /// Crossplane's Azure AD provider, cluster-scoped `Principal`.
    CrossplaneClusterPrincipal,
}

impl TrustKind {
    /// The kind named by a `targetRef`.
    pub fn of(api_version: &str, kind: &str) -> Option<Self> {
        use strum::IntoEnumIterator;
        TrustKind::iter().find(|k| k.api_version() == api_version && k.kind() == kind)
    }

    pub fn api_version(self) -> &'static str {
        match self {
            TrustKind::AckRole => "iam.services.k8s.aws/v1alpha1",
            TrustKind::CrossplaneRole => "iam.aws.m.upbound.io/v1beta1",
            TrustKind::CrossplaneClusterRole => "iam.aws.upbound.io/v1beta1",
            TrustKind::PolicyMember => "iam.cnrm.cloud.google.com/v1beta1",
            TrustKind::CrossplanePrincipal => "serviceprincipals.azuread.m.upbound.io/v1beta1",
            TrustKind::CrossplaneClusterPrincipal => "serviceprincipals.azuread.upbound.io/v1beta2",
        }
    }

    pub fn group(self) -> &'static str {
        self.api_version()
            .split_once('/')
            .map_or("", |(group, _)| group)
    }

    pub fn version(self) -> &'static str {
        self.api_version()
            .split_once('/')
            .map_or("", |(_, version)| version)
    }

    pub fn kind(self) -> &'static str {
        match self {
            TrustKind::AckRole | TrustKind::CrossplaneRole | TrustKind::CrossplaneClusterRole => {
                "Role"
            }
            TrustKind::PolicyMember => "IAMPolicyMember",
            TrustKind::CrossplanePrincipal | TrustKind::CrossplaneClusterPrincipal => "Principal",
        }
    }

    pub fn plural(self) -> &'static str {
        match self.kind() {
            "Role" => "roles",
            "IAMPolicyMember" => "iampolicymembers",
            _ => "principals",
        }
    }

    pub fn namespaced(self) -> bool {
        !matches!(
            self,
            TrustKind::CrossplaneClusterRole | TrustKind::CrossplaneClusterPrincipal
        )
    }

    pub fn provider(self) -> CloudProvider {
        match self {
            TrustKind::AckRole | TrustKind::CrossplaneRole | TrustKind::CrossplaneClusterRole => {
                CloudProvider::Aws
            }
            TrustKind::PolicyMember => CloudProvider::Gcp,
            TrustKind::CrossplanePrincipal | TrustKind::CrossplaneClusterPrincipal => {
                CloudProvider::Azure
            }
        }
    }

    /// The cloud operator that reads it, for messages.
    pub fn operator(self) -> &'static str {
        match self {
            TrustKind::AckRole => "the ACK IAM controller",
            TrustKind::CrossplaneRole | TrustKind::CrossplaneClusterRole => {
                "Crossplane's AWS provider"
            }
            TrustKind::PolicyMember => "Config Connector",
            TrustKind::CrossplanePrincipal | TrustKind::CrossplaneClusterPrincipal => {
                "Crossplane's Azure AD provider"
            }
        }
    }

    /// The chart's switch that grants the operator this kind (`trust.<key>` in values.yaml).
    pub fn chart_key(self) -> &'static str {
        match self {
            TrustKind::AckRole => "ackRole",
            TrustKind::CrossplaneRole => "crossplaneRole",
            TrustKind::CrossplaneClusterRole => "crossplaneClusterRole",
            TrustKind::PolicyMember => "configConnectorPolicyMember",
            TrustKind::CrossplanePrincipal => "crossplanePrincipal",
            TrustKind::CrossplaneClusterPrincipal => "crossplaneClusterPrincipal",
        }
    }

    /// The field that carries the trust (a JSON pointer).
    pub fn field(self) -> &'static str {
        match self {
            TrustKind::AckRole => "/spec/assumeRolePolicyDocument",
            TrustKind::CrossplaneRole | TrustKind::CrossplaneClusterRole => {
                "/spec/forProvider/assumeRolePolicy"
            }
            TrustKind::PolicyMember => "/spec/member",
            TrustKind::CrossplanePrincipal | TrustKind::CrossplaneClusterPrincipal => {
                "/spec/forProvider/clientId"
            }
        }
    }

    /// `Kind name` or `Kind namespace/name`, for messages.
    pub fn describe(self, namespace: &str, name: &str) -> String {
        if self.namespaced() {
            format!("{} {namespace}/{name}", self.kind())
        } else {
            format!("{} {name} ({})", self.kind(), self.api_version())
        }
    }
}

/// The Namespace annotation by which the platform lets a namespace's resources write to
/// cluster-scoped trust objects: a comma-separated list of `Kind/name` (`Role/shared-s3`,
/// `Principal/*`), or `*` for all.
pub const CLUSTER_TRUST_ANNOTATION: &str = "pim.confluent.cloud/cluster-trust";

/// Whether `grant` (the annotation's value) lets a namespace write to `kind`'s object `name`.
pub fn granted(grant: Option<&str>, kind: TrustKind, name: &str) -> bool {
    grant.is_some_and(|g| {
        g.split(',').map(str::trim).any(|entry| {
            entry == "*"
                || entry.split_once('/').is_some_and(|(k, n)| {
                    k.eq_ignore_ascii_case(kind.kind()) && (n == "*" || n == name)
                })
        })
    })
}

/// The annotation that marks a shared Principal with one integration that relies on it.
pub fn principal_mark(id: &str) -> String {
    format!("trust.pim.confluent.cloud/{id}")
}

#[cfg(test)]
mod tests;
