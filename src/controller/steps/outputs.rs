//! The outputs ConfigMap (`spec.writeOutputsTo`): the integration's ids and the grant the
//! customer must make in their cloud, in a form the next tool in the chain (Terraform, Crossplane,
//! a script) reads without parsing our status. Its keys and formats are documented in the README
//! and a test holds them to it byte for byte.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, Preconditions},
};
use serde::Serialize;
use serde_json::json;

use crate::crd::{CloudProvider, ProviderIntegration};
use crate::pim::Integration;

/// Label on every ConfigMap the operator writes.
pub const MANAGED_BY: (&str, &str) = (
    "app.kubernetes.io/managed-by",
    "provider-integration-operator",
);

pub use crate::controller::decide::reasons::GCP_TOKEN_CREATOR;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TrustPolicy<'a> {
    version: &'static str,
    statement: [TrustStatement<'a>; 2],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TrustStatement<'a> {
    effect: &'static str,
    principal: Principal<'a>,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    condition: Option<TrustCondition<'a>>,
}

#[derive(Serialize)]
struct Principal<'a> {
    #[serde(rename = "AWS")]
    aws: &'a str,
}

#[derive(Serialize)]
struct TrustCondition<'a> {
    #[serde(rename = "StringEquals")]
    string_equals: ExternalId<'a>,
}

#[derive(Serialize)]
struct ExternalId<'a> {
    #[serde(rename = "sts:ExternalId")]
    external_id: &'a str,
}

/// The IAM trust policy for the customer's role: Confluent's role may assume it, with the
/// integration's external id, and tag the session (the statements `spec.trust` writes, less
/// their `Sid`s, in the order Confluent's documentation shows them).
pub fn trust_policy(iam_role_arn: &str, external_id: &str) -> String {
    let p = TrustPolicy {
        version: "2012-10-17",
        statement: [
            TrustStatement {
                effect: "Allow",
                principal: Principal { aws: iam_role_arn },
                action: "sts:AssumeRole",
                condition: Some(TrustCondition {
                    string_equals: ExternalId { external_id },
                }),
            },
            TrustStatement {
                effect: "Allow",
                principal: Principal { aws: iam_role_arn },
                action: "sts:TagSession",
                condition: None,
            },
        ],
    };
    pretty(&p)
}

/// The IAM policy binding to add to the customer's service account.
pub fn impersonation_binding(google_service_account: &str) -> String {
    pretty(&json!({
        "role": GCP_TOKEN_CREATOR,
        "members": [format!("serviceAccount:{google_service_account}")],
    }))
}

/// Pretty JSON with a final newline, as a file would hold it.
fn pretty<T: Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// The ConfigMap's data for an integration. Values the API has not returned yet are left out.
pub fn data(pi: &ProviderIntegration, i: &Integration) -> BTreeMap<String, String> {
    let mut d = BTreeMap::new();
    let mut put = |k: &str, v: &str| {
        d.insert(k.to_string(), v.to_string());
    };
    put("id", &i.id);
    put("environment", &i.environment.id);
    put("displayName", &i.display_name);
    let provider = CloudProvider::from_api_name(&i.provider).unwrap_or(pi.spec.provider);
    put("provider", provider.as_str());
    if let Some(c) = i.aws() {
        put("customerIamRoleArn", &c.customer_iam_role_arn);
        if let (Some(role), Some(ext)) = (&c.iam_role_arn, &c.external_id) {
            put("iamRoleArn", role);
            put("externalId", ext);
            put("trustPolicy", &trust_policy(role, ext));
        }
    }
    if let Some(c) = i.gcp() {
        let customer = &c.customer_google_service_account;
        put("customerGoogleServiceAccount", customer);
        if let Some(gsa) = &c.google_service_account {
            put("googleServiceAccount", gsa);
            put("impersonationBinding", &impersonation_binding(gsa));
            put(
                "grantCommand",
                &format!(
                    "gcloud iam service-accounts add-iam-policy-binding {customer} --member=serviceAccount:{gsa} --role={GCP_TOKEN_CREATOR}"
                ),
            );
        }
    }
    if let Some(c) = i.azure() {
        let tenant = &c.customer_azure_tenant_id;
        put("customerAzureTenantId", tenant);
        if let Some(app) = &c.confluent_multi_tenant_app_id {
            put("confluentMultiTenantAppId", app);
            put(
                "adminConsentUrl",
                &format!("https://login.microsoftonline.com/{tenant}/adminconsent?client_id={app}"),
            );
            put("grantCommand", &format!("az ad sp create --id {app}"));
        }
    }
    d
}

/// Why the outputs could not be written.
#[derive(thiserror::Error, Debug)]
pub enum OutputsError {
    /// The name is taken by a ConfigMap this resource does not own: a human must choose.
    #[error(
        "ConfigMap {0} exists and is not owned by this ProviderIntegration; delete it or set another spec.writeOutputsTo.name"
    )]
    NotOwned(String),
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// Creates or updates the outputs ConfigMap, owned by `pi` so it is garbage collected with it.
/// Returns whether anything was written. An existing ConfigMap owned by something else is never
/// touched.
pub async fn write(
    client: &Client,
    manager: &str,
    pi: &ProviderIntegration,
    name: &str,
    i: &Integration,
) -> Result<bool, OutputsError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &pi.namespace().unwrap_or_default());
    let want = data(pi, i);
    let uid = pi.uid().unwrap_or_default();
    if let Some(cm) = api.get_opt(name).await? {
        if !cm.owner_references().iter().any(|o| o.uid == uid) {
            return Err(OutputsError::NotOwned(name.to_string()));
        }
        let labelled = cm.labels().get(MANAGED_BY.0).map(String::as_str) == Some(MANAGED_BY.1);
        if labelled && cm.data.as_ref() == Some(&want) {
            return Ok(false);
        }
    }
    let owner = pi.controller_owner_ref(&());
    let cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "labels": { MANAGED_BY.0: MANAGED_BY.1 },
            "ownerReferences": owner.into_iter().collect::<Vec<_>>(),
        },
        "data": want,
    });
    api.patch(
        name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&cm),
    )
    .await?;
    Ok(true)
}

/// Deletes a ConfigMap this resource wrote before (its `writeOutputsTo` was renamed or removed),
/// if it still owns it. Returns whether one was deleted.
pub async fn remove(
    client: &Client,
    pi: &ProviderIntegration,
    name: &str,
) -> Result<bool, kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &pi.namespace().unwrap_or_default());
    let uid = pi.uid().unwrap_or_default();
    let Some(cm) = api.get_opt(name).await? else {
        return Ok(false);
    };
    if !cm.owner_references().iter().any(|o| o.uid == uid) {
        return Ok(false);
    }
    // Only that very object: not a namesake created since.
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: cm.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Brings the outputs in line with `spec.writeOutputsTo`: deletes the ConfigMap written under an
/// old name, writes the wanted one. Returns the name now written, for `status.outputsConfigMap`.
pub async fn sync(
    client: &Client,
    manager: &str,
    pi: &ProviderIntegration,
    i: &Integration,
) -> Result<Option<String>, OutputsError> {
    let wanted = pi.spec.write_outputs_to.as_ref().map(|o| o.name.clone());
    let written = pi
        .status
        .as_ref()
        .and_then(|s| s.outputs_config_map.as_ref());
    if let Some(old) = written.filter(|o| Some(*o) != wanted.as_ref())
        && remove(client, pi, old).await?
    {
        tracing::info!(configmap = %old, "previous outputs deleted");
    }
    if let Some(out) = &wanted
        && write(client, manager, pi, out, i).await?
    {
        tracing::info!(configmap = %out, "outputs written");
    }
    Ok(wanted)
}
