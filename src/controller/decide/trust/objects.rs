//! The objects the operator creates and owns (`TrustMode::Own`), one per kind: the trust field
//! and what the object needs to be valid against its published CRD, nothing else of the cloud
//! identity (a role's permissions, a principal's assignments stay the team's).

use serde_json::{Value, json};

use super::{TrustKind, aws};
use crate::controller::decide::reasons::GCP_TOKEN_CREATOR;

/// The label on every object the operator writes.
const MANAGED_BY: (&str, &str) = (
    "app.kubernetes.io/managed-by",
    "provider-integration-operator",
);

/// On a cluster-scoped object, which cannot name a namespaced owner (garbage collection would
/// take it for gone): the owner's uid, as a label, and its namespace/name, as an annotation.
pub const OWNER_UID_LABEL: &str = "pim.confluent.cloud/owner-uid";
pub const OWNER_ANNOTATION: &str = "pim.confluent.cloud/owner";

/// The `ProviderIntegration` the trust is written for.
#[derive(Debug, Clone)]
pub struct Owner {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Its owner reference (controller, blocking deletion).
    pub reference: Value,
}

impl Owner {
    /// Whether `object` is one this resource created.
    pub fn owns(&self, kind: TrustKind, object: &Value) -> bool {
        if kind.namespaced() {
            object
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| refs.iter().any(|o| o["uid"] == self.uid.as_str()))
        } else {
            object
                .pointer("/metadata/labels")
                .and_then(|l| l.get(OWNER_UID_LABEL))
                == Some(&Value::from(self.uid.as_str()))
        }
    }
}

/// What Confluent returned that the trust is made of, per cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustValues {
    Aws {
        id: String,
        /// Confluent's role (`config.iam_role_arn`).
        confluent_role: String,
        external_id: String,
        /// The customer's role, which the trust object is.
        customer_role: String,
    },
    Gcp {
        id: String,
        /// Confluent's service account (`config.google_service_account`).
        confluent_account: String,
        /// The customer's service account, which Confluent impersonates.
        customer_account: String,
    },
    Azure {
        id: String,
        /// Confluent's multi-tenant app (`config.confluent_multi_tenant_app_id`).
        app_id: String,
    },
}

/// The resource name of a GCP service account for IAM: `projects/<project>/serviceAccounts/
/// <email>`; the project is read from a user-managed account's address, else `-`, which IAM
/// resolves from the address itself.
fn service_account_resource(email: &str) -> String {
    let project = email
        .split_once('@')
        .and_then(|(_, domain)| domain.strip_suffix(".iam.gserviceaccount.com"))
        .unwrap_or("-");
    format!("projects/{project}/serviceAccounts/{email}")
}

/// The object of `kind` named `name` that carries exactly this trust, owned by `owner`; an
/// error (for the user) when the values cannot make one.
pub fn owned_object(
    kind: TrustKind,
    name: &str,
    owner: &Owner,
    values: &TrustValues,
) -> Result<Value, String> {
    let mut metadata = json!({"name": name, "labels": {MANAGED_BY.0: MANAGED_BY.1}});
    if kind.namespaced() {
        metadata["namespace"] = owner.namespace.as_str().into();
        metadata["ownerReferences"] = json!([owner.reference]);
    } else {
        metadata["labels"][OWNER_UID_LABEL] = owner.uid.as_str().into();
        metadata["annotations"] =
            json!({OWNER_ANNOTATION: format!("{}/{}", owner.namespace, owner.name)});
    }
    let spec = match (kind, values) {
        (
            TrustKind::AckRole | TrustKind::CrossplaneRole | TrustKind::CrossplaneClusterRole,
            TrustValues::Aws {
                id,
                confluent_role,
                external_id,
                customer_role,
            },
        ) => {
            let (role, path) = aws::role_name_and_path(customer_role)
                .ok_or_else(|| format!("{customer_role} is not an IAM role ARN"))?;
            let document =
                aws::aws_document(aws::aws_statements(id, confluent_role, external_id)).to_string();
            if kind == TrustKind::AckRole {
                let mut spec = json!({"name": role, "assumeRolePolicyDocument": document});
                if path != "/" {
                    spec["path"] = path.into();
                }
                spec
            } else {
                // Crossplane names the cloud resource by this annotation, not by a field.
                metadata["annotations"]["crossplane.io/external-name"] = role.into();
                let mut for_provider = json!({"assumeRolePolicy": document});
                if path != "/" {
                    for_provider["path"] = path.into();
                }
                json!({"forProvider": for_provider})
            }
        }
        (
            TrustKind::PolicyMember,
            TrustValues::Gcp {
                confluent_account,
                customer_account,
                ..
            },
        ) => json!({
            "member": format!("serviceAccount:{confluent_account}"),
            "role": GCP_TOKEN_CREATOR,
            "resourceRef": {
                "kind": "IAMServiceAccount",
                "external": service_account_resource(customer_account),
            },
        }),
        (
            TrustKind::CrossplanePrincipal | TrustKind::CrossplaneClusterPrincipal,
            TrustValues::Azure { app_id, .. },
        ) => {
            // Admin consent creates the service principal too: take it over if it exists.
            json!({"forProvider": {"clientId": app_id, "useExisting": true}})
        }
        _ => {
            return Err(format!(
                "a {} cannot carry the trust of this provider",
                kind.kind()
            ));
        }
    };
    Ok(json!({
        "apiVersion": kind.api_version(),
        "kind": kind.kind(),
        "metadata": metadata,
        "spec": spec,
    }))
}

/// The merge patch that lets an owned object outlive its owner (`deletionPolicy: Orphan`):
/// without this resource's owner reference (or, cluster-scoped, its owner marks), guarded by
/// the object's `resourceVersion`.
pub fn disown(kind: TrustKind, have: &Value, owner: &Owner) -> Value {
    let rv = have
        .pointer("/metadata/resourceVersion")
        .cloned()
        .unwrap_or(Value::Null);
    if kind.namespaced() {
        let refs: Vec<Value> = have
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|o| o["uid"] != owner.uid.as_str())
            .cloned()
            .collect();
        json!({"metadata": {"resourceVersion": rv, "ownerReferences": refs}})
    } else {
        json!({"metadata": {"resourceVersion": rv,
            "labels": {OWNER_UID_LABEL: null},
            "annotations": {OWNER_ANNOTATION: null}}})
    }
}
