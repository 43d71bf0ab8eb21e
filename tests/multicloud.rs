//! GCP and Azure through `pim/v2` (DRAFT → config → validate), the `Validated` condition, crash
//! safety of the two-step create, and the outputs ConfigMap: the real controller against the
//! fake Kubernetes API and the PIM emulator.

mod common;

use std::{collections::BTreeMap, time::Duration};

use common::*;
use pio::crd::{READY, STALLED, VALIDATED};
use serde_json::{Value, json};

/// The one integration the emulator holds.
async fn only_remote(h: &Harness) -> Value {
    let remote = h.remote().await;
    assert_eq!(remote.len(), 1, "exactly one integration: {remote:#?}");
    remote[0].clone()
}

#[tokio::test]
async fn gcp_end_to_end_ready_before_validated_then_validated_after_the_grant() {
    let h = Harness::new().await;
    h.create("gcs", gcp_spec()).await;
    let pi = h.wait_ready("gcs").await;
    let r = only_remote(&h).await;
    let st = pi.status.clone().unwrap();
    assert_eq!(r["provider"], "gcp", "v2 answers lower case");
    assert_eq!(r["status"], "CREATED", "config set on the DRAFT");
    assert_eq!(r["config"]["kind"], "GcpIntegrationConfig");
    assert_eq!(r["config"]["customer_google_service_account"], GCP_SA);
    assert_eq!(st.id.as_deref(), r["id"].as_str());
    assert!(st.id.as_deref().unwrap().starts_with("cspi-"));
    let gsa = r["config"]["google_service_account"].as_str().unwrap();
    assert_eq!(st.google_service_account.as_deref(), Some(gsa));
    assert_eq!(st.provider, Some(pio::crd::CloudProvider::Gcp));
    assert!(st.external_id.is_none() && st.iam_role_arn.is_none());
    assert!(st.pending_create.is_none());
    assert_eq!(h.em.state.count("v2_create"), 1);
    assert_eq!(h.em.state.count("v2_update"), 1);
    assert_eq!(h.em.state.count("v1_create"), 0);

    // Ready did not wait for the grant; Validated says what to grant.
    let pi = h.wait_status("gcs", VALIDATED, "False").await;
    assert!(pi.is_ready(), "Ready stays True while not validated");
    let c = pi.condition(VALIDATED).unwrap();
    assert_eq!(c.reason, "ValidationFailed");
    assert!(
        c.message.contains(gsa)
            && c.message.contains("roles/iam.serviceAccountTokenCreator")
            && c.message.contains(GCP_SA),
        "{}",
        c.message
    );
    assert!(
        c.message
            .contains("lacks permission iam.serviceAccounts.getAccessToken"),
        "the API's detail: {}",
        c.message
    );
    assert!(h.has_event("gcs", "Warning", "ValidationFailed"));
    assert_eq!(
        pi.status.as_ref().unwrap().phase.as_deref(),
        Some("CREATED")
    );

    // Rechecked with backoff: granting access turns it True without any edit.
    let failed_checks = h.em.state.count("v2_validate");
    h.grant_access(st.id.as_deref().unwrap(), true).await;
    let pi = h.wait_status("gcs", VALIDATED, "True").await;
    assert!(h.em.state.count("v2_validate") > failed_checks);
    assert_eq!(pi.condition(VALIDATED).unwrap().reason, "Validated");
    // ACTIVE means "in use by Confluent resources", not "validated".
    assert_eq!(
        pi.status.as_ref().unwrap().phase.as_deref(),
        Some("CREATED")
    );
    assert!(pi.is_ready());
    assert!(h.has_event("gcs", "Normal", "Validated"));
    // One Warning for the one distinct failure, however many rechecks.
    let warnings = h
        .events("gcs")
        .iter()
        .filter(|(t, r, _)| t == "Warning" && r == "ValidationFailed")
        .count();
    assert_eq!(warnings, 1);

    // Once validated, it is checked at the resync period only, not on every reconcile.
    let checks = h.em.state.count("v2_validate");
    h.touch("gcs").await;
    h.touch("gcs").await;
    assert_eq!(h.em.state.count("v2_validate"), checks);

    // Deletion goes through pim/v2.
    h.delete("gcs").await;
    h.wait_gone("gcs").await;
    assert!(h.remote().await.is_empty());
    assert_eq!(h.em.state.count("v2_delete"), 1);
}

#[tokio::test]
async fn azure_end_to_end_validated_at_once_when_access_is_already_granted() {
    let h = Harness::new().await;
    h.create("blob", azure_spec()).await;
    let pi = h.wait_ready("blob").await;
    let r = only_remote(&h).await;
    assert_eq!(r["provider"], "azure", "v2 answers lower case");
    assert_eq!(r["config"]["customer_azure_tenant_id"], AZURE_TENANT);
    let app = r["config"]["confluent_multi_tenant_app_id"]
        .as_str()
        .unwrap();
    let st = pi.status.clone().unwrap();
    assert_eq!(st.confluent_multi_tenant_app_id.as_deref(), Some(app));
    assert_eq!(st.provider, Some(pio::crd::CloudProvider::Azure));
    let pi = h.wait_status("blob", VALIDATED, "False").await;
    let msg = &pi.condition(VALIDATED).unwrap().message;
    assert!(
        msg.contains(app) && msg.contains("admin consent") && msg.contains(AZURE_TENANT),
        "{msg}"
    );

    // A second integration whose tenant already consented validates on the first check.
    h.grant_access(st.id.as_deref().unwrap(), true).await;
    let pi = h.wait_status("blob", VALIDATED, "True").await;
    assert!(
        pi.condition(VALIDATED)
            .unwrap()
            .message
            .contains(AZURE_TENANT)
    );
}

#[tokio::test]
async fn revoked_access_is_noticed_on_the_next_check_and_ready_stays() {
    let mut config = test_config();
    config.resync = Duration::from_millis(400);
    let h = Harness::with(config, emulator_config()).await;
    h.create("gcs", gcp_spec()).await;
    let pi = h.wait_ready("gcs").await;
    let id = pi.status.unwrap().id.unwrap();
    h.grant_access(&id, true).await;
    h.wait_status("gcs", VALIDATED, "True").await;
    h.grant_access(&id, false).await;
    let pi = h.wait_status("gcs", VALIDATED, "False").await;
    assert!(pi.is_ready());
    assert_eq!(h.em.state.count("v2_create"), 1);
}

#[tokio::test]
async fn aws_validation_is_opt_in() {
    let h = Harness::new().await;
    h.create("plain", aws_spec(1)).await;
    let mut spec = aws_spec(2);
    spec["aws"]["validate"] = json!(true);
    h.create("checked", spec).await;
    h.wait_ready("plain").await;
    let pi = h.wait_status("checked", VALIDATED, "False").await;
    let msg = &pi.condition(VALIDATED).unwrap().message;
    assert!(
        msg.contains("sts:ExternalId") && msg.contains(&arn(2)),
        "{msg}"
    );
    let id = pi.status.clone().unwrap().id.unwrap();
    assert!(id.starts_with("dlz-"), "AWS stays on pim/v1: {id}");
    h.grant_access(&id, true).await;
    h.wait_status("checked", VALIDATED, "True").await;
    let plain = h.get("plain").unwrap();
    assert!(
        plain.condition(VALIDATED).is_none(),
        "no validation unless asked"
    );
    assert_eq!(h.em.state.count("v1_create"), 2);
    assert_eq!(h.em.state.count("v2_create"), 0);
}

#[tokio::test]
async fn transient_validation_errors_do_not_mark_it_failed() {
    let h = Harness::new().await;
    h.fail_next("v2_validate", 2, 503).await;
    h.create("gcs", gcp_spec()).await;
    let pi = h.wait_ready("gcs").await;
    h.grant_access(&pi.status.unwrap().id.unwrap(), true).await;
    let pi = h.wait_status("gcs", VALIDATED, "True").await;
    assert!(
        !h.has_event("gcs", "Warning", "ValidationFailed"),
        "503s are retried, not reported as a failed validation"
    );
    assert!(pi.is_ready());
}

#[tokio::test]
async fn crash_between_create_and_config_leaves_exactly_one_integration() {
    let mut h = Harness::new().await;
    // The intent is written (with the finalizer), then every status write fails: the DRAFT's id
    // is never recorded and the config never set. Then the operator dies.
    h.fake
        .fail_after(http::Method::PATCH, "/status", 0, 1000, 500);
    h.create("gcs", gcp_spec()).await;
    h.wait_called("v2_create").await;
    // The status write that would record the DRAFT's id has been refused.
    h.wait_requests("PATCH providerintegrations/status", 1)
        .await;
    h.crash().await;
    let pi = h.get("gcs").unwrap();
    let st = pi.status.clone().unwrap_or_default();
    assert!(st.id.is_none() && pi.recorded_intent().is_some(), "{st:?}");
    let r = only_remote(&h).await;
    assert_eq!(r["status"], "DRAFT", "crashed before the config was set");
    assert_eq!(h.em.state.count("v2_update"), 0);

    h.fake.clear_faults();
    h.start();
    let pi = h.wait_ready("gcs").await;
    assert_eq!(h.em.state.count("v2_create"), 1, "no second DRAFT");
    let r = only_remote(&h).await;
    assert_eq!(r["status"], "CREATED");
    assert_eq!(pi.status.as_ref().unwrap().id.as_deref(), r["id"].as_str());
    assert!(h.has_event("gcs", "Normal", "Created"));
}

#[tokio::test]
async fn crash_after_the_draft_id_is_recorded_resumes_with_the_config() {
    let mut h = Harness::new().await;
    // The PATCH keeps failing (the API is down for it) after the id was recorded; then a crash.
    h.fail_next("v2_update", 1000, 503).await;
    h.create("gcs", gcp_spec()).await;
    let pi = h
        .wait("gcs", "id recorded", |p| {
            p.status.as_ref().is_some_and(|s| s.id.is_some())
        })
        .await;
    assert_eq!(
        pi.status.as_ref().unwrap().phase.as_deref(),
        Some("DRAFT"),
        "the id is remembered before the config is set"
    );
    h.crash().await;
    let code = h
        .admin(reqwest::Method::PUT, "/_emulator/faults", Some(json!({})))
        .await;
    assert!(code < 300, "faults cleared: {code}");
    h.start();
    let pi = h.wait_ready("gcs").await;
    assert_eq!(h.em.state.count("v2_create"), 1);
    let r = only_remote(&h).await;
    assert_eq!(r["status"], "CREATED");
    assert_eq!(pi.status.unwrap().id.as_deref(), r["id"].as_str());
}

#[tokio::test]
async fn crash_between_config_and_status_write_leaves_exactly_one_integration() {
    let mut h = Harness::new().await;
    // The intent (with the finalizer) and status write 1 (the DRAFT's id) pass; the one after
    // the PATCH fails, and so do all later ones until the crash.
    h.fake
        .fail_after(http::Method::PATCH, "/status", 1, 1000, 500);
    h.create("gcs", gcp_spec()).await;
    h.wait_called("v2_update").await;
    // The status write after the PATCH has been refused (the first one passed).
    h.wait_requests("PATCH providerintegrations/status", 2)
        .await;
    h.crash().await;
    let st = h.get("gcs").unwrap().status.unwrap();
    assert_eq!(st.phase.as_deref(), Some("DRAFT"), "{st:?}");
    // A DRAFT already names Confluent's service account; it stays when configured.
    let remote = only_remote(&h).await;
    assert_eq!(remote["status"], "CREATED");
    assert_eq!(
        st.google_service_account.as_deref(),
        remote["config"]["google_service_account"].as_str()
    );

    h.fake.clear_faults();
    h.start();
    let pi = h.wait_ready("gcs").await;
    assert_eq!(h.em.state.count("v2_create"), 1);
    assert_eq!(
        h.em.state.count("v2_update"),
        1,
        "the config is not set twice"
    );
    let r = only_remote(&h).await;
    let st = pi.status.unwrap();
    assert_eq!(st.id.as_deref(), r["id"].as_str());
    assert_eq!(
        st.google_service_account.as_deref(),
        r["config"]["google_service_account"].as_str()
    );
    assert_eq!(st.phase.as_deref(), Some("CREATED"));
}

#[tokio::test]
async fn same_name_integrations_are_never_claimed_or_duplicated() {
    let h = Harness::new().await;
    // Someone else's GCP integration already has the name this resource would use.
    let r = h
        .http
        .post(format!("{}/pim/v2/integrations", h.em.base_url))
        .basic_auth(KEY, Some(SECRET))
        .json(&json!({"display_name": "gcs", "provider": "GCP", "environment": {"id": ENV}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let theirs: Value = r.json().await.unwrap();
    h.create("gcs", gcp_spec()).await;
    let pi = h.wait_condition("gcs", STALLED, "AlreadyExists").await;
    let msg = &pi.condition(STALLED).unwrap().message;
    let id = theirs["id"].as_str().unwrap();
    assert!(
        msg.contains(id) && msg.contains("spec.displayName"),
        "{msg}"
    );
    assert_eq!(h.em.state.count("v2_create"), 1, "only theirs");
    // A distinct display name resolves it.
    h.patch_spec("gcs", json!({"displayName": "gcs-payments"}))
        .await;
    h.wait_ready("gcs").await;
    assert_eq!(h.remote().await.len(), 2);
}

#[tokio::test]
async fn provider_change_with_recreate_moves_from_v1_to_v2() {
    let h = Harness::new().await;
    let mut spec = aws_spec(1);
    spec["updatePolicy"] = json!("Recreate");
    h.create("moving", spec).await;
    let pi = h.wait_ready("moving").await;
    let old = pi.status.unwrap().id.unwrap();
    h.patch_spec(
        "moving",
        json!({"provider": "GCP", "aws": null, "gcp": {"customerGoogleServiceAccount": GCP_SA}}),
    )
    .await;
    let pi = h
        .wait("moving", "Ready as GCP", |p| {
            p.is_ready()
                && p.status
                    .as_ref()
                    .is_some_and(|s| s.google_service_account.is_some())
        })
        .await;
    let st = pi.status.unwrap();
    assert_ne!(st.id.as_deref(), Some(old.as_str()));
    assert!(st.external_id.is_none() && st.iam_role_arn.is_none());
    let r = only_remote(&h).await;
    assert_eq!(r["provider"], "gcp");
    assert_eq!(h.em.state.count("v1_delete"), 1);
    assert!(h.has_event("moving", "Warning", "Recreating"));
}

#[tokio::test]
async fn changed_service_account_stalls_without_recreate() {
    let h = Harness::new().await;
    h.create("gcs", gcp_spec()).await;
    h.wait_ready("gcs").await;
    h.patch_spec(
        "gcs",
        json!({"gcp": {"customerGoogleServiceAccount": "other@my-project.iam.gserviceaccount.com"}}),
    )
    .await;
    let pi = h
        .wait_condition("gcs", STALLED, "ImmutableFieldChanged")
        .await;
    assert!(
        pi.condition(STALLED)
            .unwrap()
            .message
            .contains("gcp.customerGoogleServiceAccount")
    );
    assert_eq!(pi.condition(READY).unwrap().status, "False");
    assert_eq!(
        h.em.state.count("v2_update"),
        1,
        "a CREATED config is never patched"
    );
}

#[tokio::test]
async fn mismatched_provider_block_that_bypassed_the_schema_stalls() {
    let h = Harness::new().await;
    let mut spec = gcp_spec();
    spec["aws"] = json!({"customerIamRoleArn": arn(1)});
    h.create("both", spec).await;
    let pi = h.wait_condition("both", STALLED, "InvalidSpec").await;
    assert!(
        pi.condition(STALLED)
            .unwrap()
            .message
            .contains("spec.aws is set")
    );
    let mut bad = gcp_spec();
    bad["gcp"]["customerGoogleServiceAccount"] = json!("alice@example.com");
    h.create("bad-sa", bad).await;
    h.wait_condition("bad-sa", STALLED, "InvalidSpec").await;
    let mut bad = azure_spec();
    bad["azure"]["customerAzureTenantId"] = json!("not-a-uuid");
    h.create("bad-tenant", bad).await;
    h.wait_condition("bad-tenant", STALLED, "InvalidSpec").await;
    assert!(h.remote().await.is_empty());
}

// ---- the outputs ConfigMap ----

/// The `data` the docs/usage.md documents for a provider, parsed from its marked YAML block.
fn documented(provider: &str) -> BTreeMap<String, String> {
    let readme = include_str!("../docs/usage.md");
    let marker = format!("<!-- outputs:{provider} -->\n```yaml\n");
    let start = readme
        .find(&marker)
        .unwrap_or_else(|| panic!("docs/usage.md has no {marker:?}"))
        + marker.len();
    let len = readme[start..].find("```").expect("closed block");
    serde_saphyr::from_str(&readme[start..start + len]).expect("the docs/usage.md block is YAML")
}

/// Keys whose values the API assigns; the docs/usage.md shows example values for them.
const ASSIGNED: &[&str] = &[
    "id",
    "externalId",
    "iamRoleArn",
    "googleServiceAccount",
    "confluentMultiTenantAppId",
];

/// Creates the docs/usage.md's example resource for `provider` and checks its ConfigMap against the
/// docs/usage.md byte for byte, with the API-assigned example values replaced by the real ones.
async fn outputs_match_readme(provider: &str) {
    let doc = documented(provider);
    let h = Harness::new().await;
    let name = doc["displayName"].clone();
    let mut spec = json!({
        "environment": doc["environment"],
        "provider": provider,
        "credentialsRef": {"name": "pim-creds"},
        "writeOutputsTo": {"name": format!("{name}-outputs")},
    });
    match provider {
        "AWS" => spec["aws"] = json!({"customerIamRoleArn": doc["customerIamRoleArn"]}),
        "GCP" => {
            spec["gcp"] =
                json!({"customerGoogleServiceAccount": doc["customerGoogleServiceAccount"]})
        }
        _ => spec["azure"] = json!({"customerAzureTenantId": doc["customerAzureTenantId"]}),
    }
    h.create(&name, spec).await;
    let pi = h.wait_ready(&name).await;
    let cm = h.configmap(&format!("{name}-outputs")).expect("ConfigMap");
    let actual: BTreeMap<String, String> = serde_json::from_value(cm["data"].clone()).unwrap();
    let mut pairs: Vec<(&String, &String)> = ASSIGNED
        .iter()
        .filter_map(|k| Some((doc.get(*k)?, actual.get(*k)?)))
        .collect();
    pairs.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
    let expected: BTreeMap<String, String> = doc
        .iter()
        .map(|(k, v)| {
            let v = pairs
                .iter()
                .fold(v.clone(), |v, (from, to)| v.replace(from.as_str(), to));
            (k.clone(), v)
        })
        .collect();
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        actual.keys().collect::<Vec<_>>()
    );
    for (k, v) in &expected {
        assert_eq!(
            v.as_bytes(),
            actual[k].as_bytes(),
            "{provider} key {k}:\ndocs/usage.md:\n{v}\nConfigMap:\n{}",
            actual[k]
        );
    }
    // Owned by the resource (garbage collected with it) and labelled.
    let owners = cm["metadata"]["ownerReferences"].as_array().unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0]["uid"].as_str(), pi.metadata.uid.as_deref());
    assert_eq!(owners[0]["kind"], "ProviderIntegration");
    assert_eq!(owners[0]["controller"], true);
    assert_eq!(
        cm["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "provider-integration-operator"
    );
    // JSON values parse, and name the values in the status.
    let st = pi.status.unwrap();
    if provider == "AWS" {
        let p: Value = serde_json::from_str(&actual["trustPolicy"]).unwrap();
        let s = &p["Statement"][0];
        assert_eq!(s["Principal"]["AWS"].as_str(), st.iam_role_arn.as_deref());
        assert_eq!(
            s["Condition"]["StringEquals"]["sts:ExternalId"].as_str(),
            st.external_id.as_deref()
        );
        // The same statements `spec.trust` writes (less their `Sid`s).
        let id = st.id.as_deref().unwrap();
        let mut written = pio::controller::decide::trust::aws::aws_statements(
            id,
            st.iam_role_arn.as_deref().unwrap(),
            st.external_id.as_deref().unwrap(),
        );
        written.iter_mut().for_each(|w| {
            w.as_object_mut().unwrap().remove("Sid");
        });
        assert_eq!(p["Statement"], json!(written));
    }
    if provider == "GCP" {
        let b: Value = serde_json::from_str(&actual["impersonationBinding"]).unwrap();
        assert_eq!(
            b["members"][0].as_str().unwrap(),
            format!("serviceAccount:{}", st.google_service_account.unwrap())
        );
    }
}

#[tokio::test]
async fn outputs_configmap_for_aws_is_byte_for_byte_the_readme() {
    outputs_match_readme("AWS").await;
}

#[tokio::test]
async fn outputs_configmap_for_gcp_is_byte_for_byte_the_readme() {
    outputs_match_readme("GCP").await;
}

#[tokio::test]
async fn outputs_configmap_for_azure_is_byte_for_byte_the_readme() {
    outputs_match_readme("Azure").await;
}

#[tokio::test]
async fn outputs_follow_a_recreate_and_are_restored_after_tampering() {
    let mut config = test_config();
    config.resync = Duration::from_millis(500);
    let h = Harness::with(config, emulator_config()).await;
    let mut spec = aws_spec(1);
    spec["updatePolicy"] = json!("Recreate");
    spec["writeOutputsTo"] = json!({"name": "out"});
    h.create("s3", spec).await;
    let pi = h.wait_ready("s3").await;
    let first = pi.status.unwrap();
    let cm = h.configmap("out").unwrap();
    assert_eq!(
        cm["data"]["externalId"].as_str(),
        first.external_id.as_deref()
    );

    h.patch_spec("s3", json!({"aws": {"customerIamRoleArn": arn(2)}}))
        .await;
    let pi = h
        .wait("s3", "recreated", |p| {
            p.is_ready() && p.status.as_ref().and_then(|s| s.id.clone()) != first.id
        })
        .await;
    let second = pi.status.unwrap();
    let cm = h.configmap("out").unwrap();
    assert_eq!(cm["data"]["id"].as_str(), second.id.as_deref());
    assert_eq!(
        cm["data"]["externalId"].as_str(),
        second.external_id.as_deref()
    );
    assert_eq!(cm["data"]["customerIamRoleArn"], arn(2));
    assert!(
        cm["data"]["trustPolicy"]
            .as_str()
            .unwrap()
            .contains(second.external_id.as_deref().unwrap())
    );

    // Someone edits a value: put back at the next resync.
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(h.client.clone(), NS);
    api.patch(
        "out",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"data": {"externalId": "tampered"}})),
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let cm = h.configmap("out").unwrap();
        if cm["data"]["externalId"].as_str() == second.external_id.as_deref() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not restored: {cm}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_foreign_configmap_is_never_overwritten() {
    let h = Harness::new().await;
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(h.client.clone(), NS);
    let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "taken"},
        "data": {"owner": "someone else"},
    }))
    .unwrap();
    api.create(&kube::api::PostParams::default(), &cm)
        .await
        .unwrap();
    let mut spec = gcp_spec();
    spec["writeOutputsTo"] = json!({"name": "taken"});
    h.create("gcs", spec).await;
    let pi = h.wait_condition("gcs", STALLED, "OutputsConflict").await;
    assert!(
        pi.condition(STALLED)
            .unwrap()
            .message
            .contains("not owned by this ProviderIntegration")
    );
    // The integration exists and its values are in the status all the same.
    let st = pi.status.unwrap();
    assert!(st.id.is_some() && st.google_service_account.is_some());
    assert_eq!(
        h.configmap("taken").unwrap()["data"],
        json!({"owner": "someone else"})
    );
    assert!(h.has_event("gcs", "Warning", "OutputsConflict"));
    // Pointing it elsewhere resolves it.
    h.patch_spec("gcs", json!({"writeOutputsTo": {"name": "gcs-outputs"}}))
        .await;
    h.wait_ready("gcs").await;
    assert!(h.configmap("gcs-outputs").is_some());
    assert_eq!(
        h.configmap("taken").unwrap()["data"],
        json!({"owner": "someone else"}),
        "a ConfigMap it never owned is never deleted either"
    );
    assert_eq!(h.remote().await.len(), 1);
}

#[tokio::test]
async fn renaming_or_removing_the_outputs_deletes_the_previous_configmap() {
    let h = Harness::new().await;
    let mut spec = azure_spec();
    spec["writeOutputsTo"] = json!({"name": "first"});
    h.create("blob", spec).await;
    let pi = h.wait_ready("blob").await;
    assert_eq!(
        pi.status.unwrap().outputs_config_map.as_deref(),
        Some("first")
    );
    assert!(h.configmap("first").is_some());

    h.patch_spec("blob", json!({"writeOutputsTo": {"name": "second"}}))
        .await;
    let pi = h
        .wait("blob", "outputs renamed", |p| {
            p.is_ready()
                && p.status
                    .as_ref()
                    .and_then(|s| s.outputs_config_map.as_deref())
                    == Some("second")
        })
        .await;
    assert!(
        h.configmap("first").is_none(),
        "the old ConfigMap is deleted"
    );
    let cm = h.configmap("second").unwrap();
    assert_eq!(
        cm["data"]["id"].as_str(),
        pi.status.as_ref().unwrap().id.as_deref()
    );

    h.patch_spec("blob", json!({"writeOutputsTo": null})).await;
    h.wait("blob", "outputs removed", |p| {
        p.is_ready()
            && p.spec.write_outputs_to.is_none()
            && p.status
                .as_ref()
                .is_some_and(|s| s.outputs_config_map.is_none())
    })
    .await;
    assert!(h.configmap("second").is_none());
    assert_eq!(h.remote().await.len(), 1, "the integration is untouched");
}

#[tokio::test]
async fn lost_responses_and_errors_never_create_twice_for_any_cloud() {
    let mut em = emulator_config();
    em.faults.lost_response_rate = 0.3;
    em.faults.error_rate_500 = 0.1;
    let h = Harness::with(test_config(), em).await;
    let names: Vec<String> = (0..24).map(|i| format!("r{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let mut spec = match i % 3 {
            0 => aws_spec(i),
            1 => gcp_spec(),
            _ => azure_spec(),
        };
        // GCP and Azure integrations are told apart by display name; so are these resources.
        spec["displayName"] = json!(format!("integration-{i}"));
        h.create(name, spec).await;
    }
    for name in &names {
        h.wait_ready(name).await;
    }
    let remote = h.remote().await;
    assert_eq!(remote.len(), names.len(), "one integration per resource");
    assert!(
        remote.iter().all(|r| r["status"] != "DRAFT"),
        "no DRAFT left behind"
    );
    for name in &names {
        let st = h.get(name).unwrap().status.unwrap();
        let r = remote
            .iter()
            .find(|r| r["id"].as_str() == st.id.as_deref())
            .unwrap_or_else(|| panic!("{name}'s integration {:?} exists", st.id));
        assert_eq!(
            r["display_name"].as_str().unwrap(),
            format!("integration-{}", &name[1..])
        );
    }
    let lost = h.em.state.count_status(504);
    assert!(lost > 0, "the test lost some answers: {lost}");
    for name in &names {
        h.delete(name).await;
    }
    for name in &names {
        h.wait_gone(name).await;
    }
    assert!(h.remote().await.is_empty(), "nothing leaked");
}

/// Issue 10's run, in the published shapes: GCP and Azure resources while 25 % of writes are
/// answered 503 after taking effect and 15 % before. Every resource ends Ready with Confluent's
/// identity, exactly one configured integration each, no DRAFT left, nothing left after deletion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_flow_under_503s_before_and_after_writes_leaves_one_configured_integration_each() {
    const N: usize = 40;
    let mut em = emulator_config();
    em.faults.lost_response_rate = 0.25;
    em.faults.lost_response_status = 503;
    em.faults.write_error_rate = 0.15;
    em.faults.retry_after_secs = 0;
    // Reproducible in CI; `FAULT_SEED=n` tries other sequences.
    em.faults.seed = std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .or(Some(10));
    let h = Harness::with(test_config(), em).await;
    let start = std::time::Instant::now();
    let names: Vec<String> = (0..N).map(|i| format!("v2-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let mut spec = if i % 2 == 0 { gcp_spec() } else { azure_spec() };
        spec["displayName"] = json!(name);
        h.create(name, spec).await;
    }
    for name in &names {
        let st = h.wait_ready(name).await.status.unwrap();
        let identity = st
            .google_service_account
            .or(st.confluent_multi_tenant_app_id);
        assert!(identity.is_some(), "{name} shows Confluent's identity");
    }
    let took = start.elapsed();
    let remote = h.remote().await;
    let drafts = remote.iter().filter(|r| r["status"] == "DRAFT").count();
    let unconfigured = remote
        .iter()
        .filter(|r| {
            let c = &r["config"];
            c["customer_google_service_account"]
                .as_str()
                .unwrap_or("")
                .is_empty()
                && c["customer_azure_tenant_id"]
                    .as_str()
                    .unwrap_or("")
                    .is_empty()
        })
        .count();
    let stats = h.em.state.stats();
    let answered_503 = h.em.state.count_status(503);
    for name in &names {
        h.delete(name).await;
    }
    for name in &names {
        h.wait_gone(name).await;
    }
    let leaked = h.remote().await.len();
    println!(
        "v2 faults: {N} GCP/Azure resources Ready in {:.2} s; {} API calls, {answered_503} answered 503; \
         {} integrations ({} duplicates), {drafts} DRAFTs, {unconfigured} unconfigured; {leaked} left after delete",
        took.as_secs_f64(),
        stats["total"],
        remote.len(),
        remote.len() as i64 - N as i64
    );
    assert!(answered_503 > 0, "{stats}");
    assert_eq!(remote.len(), N, "one integration per resource");
    assert_eq!(drafts, 0, "no DRAFT left");
    assert_eq!(unconfigured, 0);
    assert_eq!(leaked, 0, "nothing leaked");
}
