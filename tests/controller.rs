//! Reconcile tests: the real controller against the fake Kubernetes API and the PIM emulator.

mod common;

use std::time::Duration;

use common::*;
use pio::crd::{FINALIZER, RECONCILING, STALLED};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn create_writes_ids_to_status_and_is_ready() {
    let h = Harness::new().await;
    h.create("orders", aws_spec(1)).await;
    let pi = h.wait_ready("orders").await;
    let st = pi.status.clone().unwrap();
    let remote = h.remote().await;
    assert_eq!(remote.len(), 1);
    let r = &remote[0];
    assert_eq!(st.id.as_deref(), r["id"].as_str());
    assert_eq!(
        st.external_id.as_deref(),
        r["config"]["external_id"].as_str()
    );
    assert_eq!(
        st.iam_role_arn.as_deref(),
        r["config"]["iam_role_arn"].as_str()
    );
    assert_eq!(st.environment.as_deref(), Some(ENV));
    assert_eq!(
        r["display_name"], "orders",
        "display name defaults to the resource name"
    );
    assert_eq!(r["config"]["customer_iam_role_arn"], arn(1));
    assert!(st.pending_create.is_none());
    assert_eq!(st.observed_generation, pi.metadata.generation);
    for c in &st.conditions {
        assert_eq!(c.observed_generation, pi.metadata.generation, "{}", c.type_);
    }
    assert_eq!(pi.condition(RECONCILING).unwrap().status, "False");
    assert_eq!(pi.condition(STALLED).unwrap().status, "False");
    assert!(
        pi.metadata
            .finalizers
            .as_ref()
            .unwrap()
            .contains(&FINALIZER.to_string())
    );
    // Ready with the id says it was created: no routine event (they cost the API server a write
    // each, at scale).
    assert!(!h.has_event("orders", "Normal", "Created"));
    // A create costs two writes: the finalizer with the intent, then the status with the id.
    let requests = h.fake.requests();
    assert_eq!(
        requests.get("PATCH providerintegrations"),
        Some(&1),
        "{requests:?}"
    );
    assert_eq!(
        requests.get("PATCH providerintegrations/status"),
        Some(&1),
        "{requests:?}"
    );

    // Steady state: further reconciles call no API and write nothing.
    let creates = h.em.state.count("v1_create");
    let patches = h
        .fake
        .requests()
        .get("PATCH providerintegrations/status")
        .copied();
    h.touch("orders").await;
    h.touch("orders").await;
    assert_eq!(h.em.state.count("v1_create"), creates);
    assert_eq!(
        h.fake
            .requests()
            .get("PATCH providerintegrations/status")
            .copied(),
        patches
    );
}

#[tokio::test]
async fn explicit_display_name_and_many_resources_share_one_list() {
    let h = Harness::new().await;
    let mut spec = aws_spec(1);
    spec["displayName"] = json!("Orders Integration");
    h.create("a", spec).await;
    for i in 2..12 {
        h.create(&format!("r{i}"), aws_spec(i)).await;
    }
    h.wait_ready("a").await;
    for i in 2..12 {
        h.wait_ready(&format!("r{i}")).await;
    }
    assert!(
        h.remote()
            .await
            .iter()
            .any(|r| r["display_name"] == "Orders Integration")
    );
    assert_eq!(h.em.state.count("v1_create"), 11);
    // The pre-create check is served by one shared LIST of the environment, not one per resource.
    assert!(
        h.em.state.count("v1_list") <= 2,
        "lists: {}",
        h.em.state.count("v1_list")
    );
    assert_eq!(h.em.state.count("v1_get"), 0);
}

#[tokio::test]
async fn adopts_an_existing_integration_by_id() {
    let h = Harness::new().await;
    let existing = h.create_remote("made-by-terraform", &arn(7)).await;
    let id = existing["id"].as_str().unwrap();
    let mut spec = aws_spec(7);
    spec["integrationId"] = json!(id);
    h.create("adopted", spec).await;
    let pi = h.wait_ready("adopted").await;
    let st = pi.status.unwrap();
    assert_eq!(st.id.as_deref(), Some(id));
    assert_eq!(
        st.external_id.as_deref(),
        existing["config"]["external_id"].as_str()
    );
    assert_eq!(h.remote().await.len(), 1);
    assert!(h.has_event("adopted", "Normal", "Adopted"));
}

#[tokio::test]
async fn adoption_errors_stall_with_actionable_reasons() {
    let h = Harness::new().await;
    let existing = h.create_remote("other", &arn(7)).await;
    let id = existing["id"].as_str().unwrap();
    // Wrong role for the adopted integration.
    let mut spec = aws_spec(8);
    spec["integrationId"] = json!(id);
    h.create("mismatch", spec).await;
    let pi = h
        .wait_condition("mismatch", STALLED, "AdoptedMismatch")
        .await;
    assert!(
        pi.condition(STALLED)
            .unwrap()
            .message
            .contains("aws.customerIamRoleArn")
    );
    // Nonexistent id.
    let mut spec = aws_spec(9);
    spec["integrationId"] = json!("dlz-0000000");
    h.create("ghost", spec).await;
    let pi = h
        .wait_condition("ghost", STALLED, "AdoptionTargetNotFound")
        .await;
    assert!(
        pi.condition(STALLED)
            .unwrap()
            .message
            .contains("dlz-0000000")
    );
    assert_eq!(h.remote().await.len(), 1, "nothing created");
}

#[tokio::test]
async fn never_takes_over_a_foreign_integration_silently() {
    let h = Harness::new().await;
    let foreign = h.create_remote("foreign", &arn(3)).await;
    let id = foreign["id"].as_str().unwrap();
    let mut spec = aws_spec(3);
    spec["displayName"] = json!("foreign");
    h.create("mine", spec).await;
    let pi = h.wait_condition("mine", STALLED, "AlreadyExists").await;
    let msg = &pi.condition(STALLED).unwrap().message;
    assert!(msg.contains(id) && msg.contains("integrationId"), "{msg}");
    assert!(pi.status.as_ref().unwrap().id.is_none());
    assert!(pi.status.as_ref().unwrap().pending_create.is_none());
    // Same role, different name: the API's 409 path must stall the same way.
    h.create("mine2", aws_spec(3)).await;
    let pi = h.wait_condition("mine2", STALLED, "AlreadyExists").await;
    assert!(pi.status.as_ref().unwrap().pending_create.is_none());
    assert_eq!(h.remote().await.len(), 1);
    // Once stalled, the role is known to be taken: no more create attempts (our own status
    // writes trigger reconciles, which must not POST again).
    let creates = h.em.state.count("v1_create");
    // Looked at again (the stall's retries, then a change of the resource): no create.
    h.wait_reconciles(h.reconciles(), 2).await;
    h.touch("mine2").await;
    assert_eq!(h.em.state.count("v1_create"), creates, "no create loop");
    assert!(h.get("mine2").unwrap().condition(STALLED).unwrap().status == "True");
    assert!(h.has_event("mine2", "Warning", "AlreadyExists"));
}

#[tokio::test]
async fn immutable_change_stalls_and_revert_recovers() {
    let h = Harness::new().await;
    h.create("imm", aws_spec(1)).await;
    let before = h.wait_ready("imm").await;
    h.patch_spec("imm", json!({"aws": {"customerIamRoleArn": arn(2)}}))
        .await;
    let pi = h
        .wait_condition("imm", STALLED, "ImmutableFieldChanged")
        .await;
    assert!(pi.metadata.generation > before.metadata.generation);
    assert_eq!(
        pi.status.as_ref().unwrap().observed_generation,
        pi.metadata.generation
    );
    let ready = pi.condition("Ready").unwrap();
    assert_eq!(ready.status, "False");
    assert!(
        ready.message.contains("updatePolicy: Recreate"),
        "{}",
        ready.message
    );
    // The integration is untouched.
    assert_eq!(
        pi.status.as_ref().unwrap().id,
        before.status.as_ref().unwrap().id
    );
    h.patch_spec("imm", json!({"aws": {"customerIamRoleArn": arn(1)}}))
        .await;
    let pi = h.wait_ready("imm").await;
    assert_eq!(pi.status.unwrap().id, before.status.unwrap().id);
    assert_eq!(h.em.state.count("v1_create"), 1);
    assert_eq!(h.em.state.count("v1_delete"), 0);
}

#[tokio::test]
async fn recreate_opt_in_replaces_the_integration() {
    let h = Harness::new().await;
    let mut spec = aws_spec(1);
    spec["updatePolicy"] = json!("Recreate");
    h.create("rec", spec).await;
    let old = h.wait_ready("rec").await.status.unwrap();
    h.patch_spec("rec", json!({"aws": {"customerIamRoleArn": arn(2)}}))
        .await;
    let pi = h
        .wait("rec", "recreated", |p| {
            p.is_ready() && p.status.as_ref().unwrap().id != old.id
        })
        .await;
    let new = pi.status.unwrap();
    assert_ne!(new.external_id, old.external_id);
    let remote = h.remote().await;
    assert_eq!(remote.len(), 1);
    assert_eq!(remote[0]["config"]["customer_iam_role_arn"], arn(2));
    assert!(h.has_event("rec", "Warning", "Recreating"));
}

#[tokio::test]
async fn deletion_waits_for_usages_then_finishes() {
    let h = Harness::new().await;
    h.create("used", aws_spec(1)).await;
    let id = h.wait_ready("used").await.status.unwrap().id.unwrap();
    let crn = "crn://confluent.cloud/organization=o/environment=env-abc123/cloud-cluster=lkc-1/connector=s3-sink";
    assert_eq!(
        h.admin(
            Method::PUT,
            &format!("/_emulator/integrations/{id}/usages"),
            Some(json!([crn]))
        )
        .await,
        200
    );
    h.delete("used").await;
    let pi = h
        .wait_condition("used", RECONCILING, "DeletionBlocked")
        .await;
    let ready = pi.condition("Ready").unwrap();
    assert_eq!(ready.reason, "DeletionBlocked");
    assert!(ready.message.contains(crn), "{}", ready.message);
    assert_eq!(pi.status.as_ref().unwrap().usages, vec![crn.to_string()]);
    assert!(
        pi.metadata
            .finalizers
            .unwrap()
            .contains(&FINALIZER.to_string())
    );
    assert!(
        h.events("used")
            .iter()
            .any(|(t, r, n)| t == "Warning" && r == "DeletionBlocked" && n.contains(crn))
    );
    // Retries happen with backoff, not in a hot loop.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let deletes = h.em.state.count("v1_delete");
    assert!(
        (2..=8).contains(&deletes),
        "delete attempts in ~0.6 s: {deletes}"
    );
    assert_eq!(
        h.admin(
            Method::PUT,
            &format!("/_emulator/integrations/{id}/usages"),
            Some(json!([]))
        )
        .await,
        200
    );
    h.wait_gone("used").await;
    assert!(h.remote().await.is_empty());
    assert!(h.has_event("used", "Normal", "Deleted"));
    // At least the one blocked deletion (a busy machine may add a failed attempt between two
    // blocked ones, which counts the second again).
    let blocked = h.metrics.encode().lines().find_map(|l| {
        l.strip_prefix("pio_deletions_blocked_total ")?
            .parse::<u64>()
            .ok()
    });
    assert!(blocked.is_some_and(|n| n >= 1), "{blocked:?}");
}

#[tokio::test]
async fn orphan_policy_keeps_the_integration() {
    let h = Harness::new().await;
    let mut spec = aws_spec(1);
    spec["deletionPolicy"] = json!("Orphan");
    h.create("keep", spec).await;
    h.wait_ready("keep").await;
    h.delete("keep").await;
    h.wait_gone("keep").await;
    assert_eq!(h.remote().await.len(), 1);
    assert_eq!(h.em.state.count("v1_delete"), 0);
}

#[tokio::test]
async fn out_of_band_deletion_is_detected_and_recreated() {
    let mut config = test_config();
    config.resync = Duration::from_millis(300);
    let h = Harness::with(config, emulator_config()).await;
    h.create("drift", aws_spec(1)).await;
    let old = h.wait_ready("drift").await.status.unwrap();
    let id = old.id.clone().unwrap();
    assert_eq!(
        h.admin(
            Method::DELETE,
            &format!("/_emulator/integrations/{id}"),
            None
        )
        .await,
        204
    );
    let pi = h
        .wait("drift", "recreated", |p| {
            p.is_ready() && p.status.as_ref().unwrap().id != old.id
        })
        .await;
    assert_ne!(pi.status.unwrap().external_id, old.external_id);
    assert_eq!(h.remote().await.len(), 1);
    assert!(
        h.events("drift")
            .iter()
            .any(|(t, r, n)| t == "Warning" && r == "Recreated" && n.contains(&id))
    );
}

#[tokio::test]
async fn usages_are_refreshed_at_resync() {
    let mut config = test_config();
    config.resync = Duration::from_millis(200);
    let h = Harness::with(config, emulator_config()).await;
    h.create("u", aws_spec(1)).await;
    let id = h.wait_ready("u").await.status.unwrap().id.unwrap();
    let crn = "crn://confluent.cloud/organization=o/environment=env-abc123/cloud-cluster=lkc-1/connector=c";
    h.admin(
        Method::PUT,
        &format!("/_emulator/integrations/{id}/usages"),
        Some(json!([crn])),
    )
    .await;
    h.wait("u", "showing usages", |p| {
        p.status.as_ref().unwrap().usages == vec![crn.to_string()]
    })
    .await;
    // Checked by LIST, not by one GET per resource.
    assert_eq!(h.em.state.count("v1_get"), 0);
}

#[tokio::test]
async fn bad_credentials_stall_with_the_api_detail() {
    let h = Harness::new().await;
    h.put_secret("wrong", KEY, "not-the-secret").await;
    let mut spec = aws_spec(1);
    spec["credentialsRef"] = json!({"name": "wrong"});
    h.create("unauth", spec).await;
    let pi = h.wait_condition("unauth", STALLED, "Unauthenticated").await;
    let msg = &pi.condition(STALLED).unwrap().message;
    assert!(
        msg.contains("missing or invalid API key") && msg.contains(KEY),
        "{msg}"
    );
    assert!(
        !msg.contains("not-the-secret"),
        "the secret must never appear"
    );

    h.put_secret("reader", RO_KEY, RO_SECRET).await;
    let mut spec = aws_spec(2);
    spec["credentialsRef"] = json!({"name": "reader"});
    h.create("forbidden", spec).await;
    let pi = h.wait_condition("forbidden", STALLED, "Forbidden").await;
    assert!(
        pi.condition(STALLED)
            .unwrap()
            .message
            .contains("EnvironmentAdmin")
    );
    assert!(h.has_event("forbidden", "Warning", "Forbidden"));

    // Fixing the Secret heals the resource without touching it.
    h.put_secret("reader", KEY, SECRET).await;
    h.wait_ready("forbidden").await;
}

#[tokio::test]
async fn missing_secret_and_missing_key_stall_then_heal() {
    let h = Harness::new().await;
    let mut spec = aws_spec(1);
    spec["credentialsRef"] = json!({"name": "later"});
    h.create("nosecret", spec).await;
    let pi = h
        .wait_condition("nosecret", STALLED, "CredentialsNotFound")
        .await;
    assert!(
        pi.condition(STALLED)
            .unwrap()
            .message
            .contains("apps/later")
    );
    let mut spec = aws_spec(2);
    spec["credentialsRef"] = json!({"name": "pim-creds", "apiKeyField": "nope"});
    h.create("nokey", spec).await;
    let pi = h
        .wait_condition("nokey", STALLED, "CredentialsNotFound")
        .await;
    assert!(pi.condition(STALLED).unwrap().message.contains("\"nope\""));
    // A file put where the key goes is said, not sent as a header.
    h.put_secret("huge", &"k".repeat(2000), SECRET).await;
    let mut spec = aws_spec(4);
    spec["credentialsRef"] = json!({"name": "huge"});
    h.create("hugekey", spec).await;
    let pi = h
        .wait_condition("hugekey", STALLED, "CredentialsNotFound")
        .await;
    assert!(
        pi.condition(STALLED)
            .unwrap()
            .message
            .contains("holds 2000 bytes"),
        "{:?}",
        pi.condition(STALLED)
    );
    h.put_secret("later", KEY, SECRET).await;
    h.wait_ready("nosecret").await;
    // No credentialsRef and no operator default.
    let mut spec = aws_spec(3);
    spec.as_object_mut().unwrap().remove("credentialsRef");
    h.create("nodefault", spec).await;
    h.wait_condition("nodefault", STALLED, "NoCredentials")
        .await;
}

#[tokio::test]
async fn quota_exceeded_stalls_and_recovers_when_raised() {
    let mut em = emulator_config();
    em.quotas.per_org = 1;
    let h = Harness::with(test_config(), em).await;
    h.create("q1", aws_spec(1)).await;
    h.wait_ready("q1").await;
    h.create("q2", aws_spec(2)).await;
    let pi = h.wait_condition("q2", STALLED, "QuotaExceeded").await;
    assert!(
        pi.condition(STALLED)
            .unwrap()
            .message
            .contains("provider_integrations_per_org")
    );
    assert_eq!(
        h.admin(
            Method::PUT,
            "/_emulator/quotas",
            Some(json!({"per_org": 5, "per_env": null}))
        )
        .await,
        204
    );
    h.wait_ready("q2").await;
    assert_eq!(h.remote().await.len(), 2);
}

#[tokio::test]
async fn invalid_spec_that_bypassed_the_schema_stalls() {
    let h = Harness::new().await;
    let mut spec = aws_spec(1);
    spec.as_object_mut().unwrap().remove("aws");
    h.create("noaws", spec).await;
    let pi = h.wait_condition("noaws", STALLED, "InvalidSpec").await;
    assert!(
        pi.condition(STALLED)
            .unwrap()
            .message
            .contains("customerIamRoleArn")
    );
}

#[tokio::test]
async fn rate_limit_and_server_error_storm_converges_without_duplicates() {
    let mut em = emulator_config();
    em.faults.error_rate_429 = 0.2;
    em.faults.error_rate_500 = 0.1;
    em.faults.error_rate_503 = 0.1;
    em.faults.retry_after_secs = 0;
    let h = Harness::with(test_config(), em).await;
    for i in 0..20 {
        h.create(&format!("s{i}"), aws_spec(i)).await;
    }
    for i in 0..20 {
        h.wait_ready(&format!("s{i}")).await;
    }
    let remote = h.remote().await;
    assert_eq!(remote.len(), 20, "exactly one integration per resource");
    let stats = h.em.state.stats();
    assert!(
        stats["operations"]["v1_create"]["429"]
            .as_u64()
            .unwrap_or(0)
            + stats["operations"]["v1_create"]["500"]
                .as_u64()
                .unwrap_or(0)
            > 0,
        "{stats}"
    );
    // Every recorded id exists remotely.
    for i in 0..20 {
        let id = h.get(&format!("s{i}")).unwrap().status.unwrap().id.unwrap();
        assert!(remote.iter().any(|r| r["id"] == id.as_str()));
    }
}

/// A resource `told-to-wait` whose first create was answered 429 with `Retry-After: secs`.
async fn told_to_wait(secs: u64) -> Harness {
    let mut em = emulator_config();
    em.faults.retry_after_secs = secs;
    let h = Harness::with(test_config(), em).await;
    h.fail_next("v1_create", 1, 429).await;
    h.create("told-to-wait", aws_spec(0)).await;
    h.wait_called("v1_create").await;
    h
}

/// The API's `Retry-After` holds for the resource whatever brings it back sooner: the watch
/// event of the write before the POST used to come 50 ms after the 429 and send the POST again.
#[tokio::test]
async fn a_retry_after_is_waited_out_whatever_brings_the_resource_back() {
    let h = told_to_wait(2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        h.em.state.count("v1_create"),
        1,
        "created again before the Retry-After had passed"
    );
    h.wait_ready("told-to-wait").await;
    assert_eq!(h.em.state.count("v1_create"), 2);
}

/// What needs no call is still said at once while the API's `Retry-After` runs: a spec edited
/// during a minute's wait to name a Secret that does not exist stalls the resource now, not a
/// minute later.
#[tokio::test]
async fn a_retry_after_does_not_hold_back_what_needs_no_call() {
    let h = told_to_wait(60).await;
    let mut spec = aws_spec(0);
    spec["credentialsRef"] = serde_json::json!({"name": "no-such-secret"});
    h.patch_spec("told-to-wait", spec).await;
    h.wait_condition("told-to-wait", STALLED, "CredentialsNotFound")
        .await;
    assert_eq!(h.em.state.count("v1_create"), 1);
}

#[tokio::test]
async fn ready_resource_stays_ready_through_a_blip() {
    let mut config = test_config();
    config.resync = Duration::from_millis(200);
    let h = Harness::with(config, emulator_config()).await;
    h.create("steady", aws_spec(1)).await;
    h.wait_ready("steady").await;
    let patches = h
        .fake
        .requests()
        .get("PATCH providerintegrations/status")
        .copied();
    h.admin(
        Method::POST,
        "/_emulator/faults/fail-next",
        Some(json!({"operation": "list", "count": 3, "status": 503})),
    )
    .await;
    // The failed LISTs happen (resync sweeps), and then the one after them succeeds.
    let listed = || {
        h.em.state.stats()["operations"]["v1_list"]["503"]
            .as_u64()
            .unwrap_or(0)
    };
    eventually(Duration::from_secs(10), "three failed lists", listed, |n| {
        *n >= 3
    })
    .await;
    let ok = h.em.state.stats()["operations"]["v1_list"]["200"]
        .as_u64()
        .unwrap_or(0);
    eventually(
        Duration::from_secs(10),
        "a list that succeeds after them",
        || {
            h.em.state.stats()["operations"]["v1_list"]["200"]
                .as_u64()
                .unwrap_or(0)
        },
        |n| *n > ok,
    )
    .await;
    assert!(h.get("steady").unwrap().is_ready());
    assert_eq!(
        h.fake
            .requests()
            .get("PATCH providerintegrations/status")
            .copied(),
        patches,
        "no status flapping"
    );
}

#[tokio::test]
async fn failed_status_write_after_create_leaves_exactly_one_integration() {
    let h = Harness::new().await;
    // Let the intent write pass, then fail the write that records the id.
    h.fake.fail_after(http::Method::PATCH, "/status", 1, 1, 500);
    h.create("crashy", aws_spec(1)).await;
    let pi = h.wait_ready("crashy").await;
    assert_eq!(h.em.state.count("v1_create"), 1);
    let remote = h.remote().await;
    assert_eq!(remote.len(), 1);
    assert_eq!(pi.status.unwrap().id.as_deref(), remote[0]["id"].as_str());
}

#[tokio::test]
async fn crash_between_create_and_status_write_recovers_after_restart() {
    let mut h = Harness::new().await;
    // The intent is recorded (with the finalizer); every status write fails; the operator dies.
    h.fake
        .fail_after(http::Method::PATCH, "/status", 0, 1000, 500);
    h.create("crash", aws_spec(1)).await;
    h.wait_called("v1_create").await;
    // The status write that would record the id has been refused.
    h.wait_requests("PATCH providerintegrations/status", 1)
        .await;
    h.crash().await;
    let pi = h.get("crash").unwrap();
    let st = pi.status.clone().unwrap_or_default();
    assert!(
        st.id.is_none() && pi.recorded_intent().is_some(),
        "intent recorded, id lost: {st:?}"
    );
    h.fake.clear_faults();
    h.start();
    let pi = h.wait_ready("crash").await;
    assert_eq!(h.em.state.count("v1_create"), 1, "no second create");
    let remote = h.remote().await;
    assert_eq!(remote.len(), 1);
    assert_eq!(pi.status.unwrap().id.as_deref(), remote[0]["id"].as_str());
}

#[tokio::test]
async fn deletion_uses_remembered_credentials_when_the_secret_went_first() {
    let h = Harness::new().await;
    h.put_secret("ns-creds", KEY, SECRET).await;
    let mut spec = aws_spec(1);
    spec["credentialsRef"] = json!({"name": "ns-creds"});
    h.create("ordered", spec).await;
    h.wait_ready("ordered").await;
    h.delete_secret("ns-creds").await;
    h.delete("ordered").await;
    h.wait_gone("ordered").await;
    assert!(h.remote().await.is_empty());
}

#[tokio::test]
async fn deleting_before_anything_was_created_is_immediate() {
    let h = Harness::new().await;
    let mut spec = aws_spec(1);
    spec["credentialsRef"] = json!({"name": "missing"});
    h.create("never", spec).await;
    h.wait_condition("never", STALLED, "CredentialsNotFound")
        .await;
    h.delete("never").await;
    h.wait_gone("never").await;
}

#[tokio::test]
async fn metrics_count_api_requests_and_reconciles() {
    let h = Harness::new().await;
    h.create("m", aws_spec(1)).await;
    h.wait_ready("m").await;
    let text = h.metrics.encode();
    assert!(
        text.contains("pio_pim_requests_total{operation=\"create\",code=\"201\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("pio_reconciles_total{result=\"ok\"}"),
        "{text}"
    );
    assert!(
        text.contains("pio_pim_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn namespace_scoped_operator_ignores_other_namespaces() {
    let mut config = test_config();
    config.namespaces = vec![NS.to_string()];
    let h = Harness::with(config, emulator_config()).await;
    let other: kube::Api<pio::crd::ProviderIntegration> =
        kube::Api::namespaced(h.client.clone(), "elsewhere");
    let mut foreign = h.create("mine", aws_spec(1)).await;
    foreign.metadata.namespace = Some("elsewhere".into());
    foreign.metadata.name = Some("theirs".into());
    foreign.metadata.resource_version = None;
    foreign.metadata.uid = None;
    foreign.spec.aws.as_mut().unwrap().customer_iam_role_arn = arn(2);
    other
        .create(&kube::api::PostParams::default(), &foreign)
        .await
        .unwrap();
    h.wait_ready("mine").await;
    // A later event, reconciled: "theirs" (committed before it) would have been by now.
    h.touch("mine").await;
    let theirs = h
        .fake
        .get("providerintegrations", "elsewhere", "theirs")
        .unwrap();
    assert!(
        theirs.get("status").is_none() && theirs["metadata"].get("finalizers").is_none(),
        "{theirs}"
    );
    assert_eq!(h.remote().await.len(), 1);
}

#[tokio::test]
async fn health_readiness_and_metrics_endpoints_serve_after_a_reconcile() {
    let h = Harness::new().await;
    h.create("web", aws_spec(1)).await;
    h.wait_ready("web").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = pio::run::http_router(h.metrics.clone(), h.ready.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let get = |p: &str| h.http.get(format!("{url}{p}")).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200, "caches synced");
    let text = get("/metrics").await.unwrap().text().await.unwrap();
    for series in [
        "pio_reconciles_total{result=\"ok\"}",
        "pio_reconcile_duration_seconds_bucket",
        "pio_pim_requests_total{operation=\"create\",code=\"201\"} 1",
        "pio_pim_request_duration_seconds_bucket{le=\"0.005\",operation=\"create\"}",
        "pio_resources{state=\"ready\"}",
        "pio_resources{state=\"stalled\"}",
        "pio_validation{state=\"failing\"} 0",
        "pio_deletions_blocked_total 0",
        "pio_leader 0",
        // The harness's ceiling is 16, below the initial 64; nothing overloaded cuts it.
        "pio_pim_concurrency_limit 16",
        "pio_pim_calls_in_flight",
    ] {
        assert!(
            text.contains(series),
            "{series} missing from /metrics:\n{text}"
        );
    }
    h.ready.store(false, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(get("/readyz").await.unwrap().status(), 503);
}

/// An answer we cannot decode (a proxy's page, a changed shape) is not retried in silence: after
/// a few attempts the resource says so with an excerpt of the body, a metric counts it, and it
/// heals once the API answers properly again.
#[tokio::test]
async fn undecodable_answers_surface_as_a_condition_with_an_excerpt() {
    let h = Harness::new().await;
    let code = h
        .admin(
            Method::POST,
            "/_emulator/faults/fail-next",
            Some(json!({"operation": "list", "count": 1000, "status": 200,
                "body": "{\"kind\": \"IntegrationList\", \"data\": \"maintenance page\"}"})),
        )
        .await;
    assert_eq!(code, 204);
    h.create("orders", aws_spec(1)).await;
    let pi = h
        .wait_condition("orders", STALLED, "UnexpectedResponse")
        .await;
    let msg = &pi.condition(STALLED).unwrap().message;
    assert!(msg.contains("maintenance page"), "{msg}");
    assert!(!msg.contains(SECRET), "{msg}");
    assert!(
        h.em.state.count("v1_create") == 0,
        "nothing is created blind"
    );
    let metrics = h.metrics.encode();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("pio_pim_unexpected_responses_total{operation=\"list\"}")),
        "{metrics}"
    );
    // The API answers properly again: the next check heals it.
    h.admin(Method::PUT, "/_emulator/faults", Some(json!({})))
        .await;
    h.wait_ready("orders").await;
}

/// The environment was deleted (with its integrations) before the resource: deleting the
/// resource must not hang with no way out. It stalls with a reason and the one-line fix; after
/// `deletionPolicy: Orphan` it goes.
#[tokio::test]
async fn a_deleted_environment_stalls_deletion_with_the_way_out() {
    let h = Harness::new().await;
    h.create("orders", aws_spec(1)).await;
    h.wait_ready("orders").await;
    assert_eq!(
        h.admin(
            Method::DELETE,
            &format!("/_emulator/environments/{ENV}"),
            None
        )
        .await,
        200
    );
    h.delete("orders").await;
    let pi = h
        .wait_condition("orders", STALLED, "EnvironmentUnreachable")
        .await;
    let msg = &pi.condition(STALLED).unwrap().message;
    assert!(
        msg.contains(
            r#"kubectl patch providerintegration orders -n apps --type merge -p '{"spec":{"deletionPolicy":"Orphan"}}'"#
        ),
        "{msg}"
    );
    assert!(
        pi.metadata
            .finalizers
            .unwrap()
            .contains(&FINALIZER.to_string())
    );
    assert!(h.has_event("orders", "Warning", "EnvironmentUnreachable"));
    h.patch_spec("orders", json!({"deletionPolicy": "Orphan"}))
        .await;
    h.wait_gone("orders").await;
}

/// An API that redirects (a proxy, an `--api-url` naming the old host) is not followed: the
/// create is not sent twice, and the resource is Stalled saying where it points and what to set.
#[tokio::test]
async fn a_redirecting_api_stalls_the_resource_saying_where_it_points() {
    let h = Harness::new().await;
    h.fail_next("v1_create", 1000, 307).await;
    h.create("moved", aws_spec(1)).await;
    let pi = h.wait_condition("moved", STALLED, "APIError").await;
    let message = &pi.condition(STALLED).unwrap().message;
    assert!(
        message.contains(pio::emulator::MOVED_TO) && message.contains("--api-url"),
        "{message}"
    );
    // Nothing was created, and the resource is not retried as if the API were down.
    assert_eq!(h.em.state.len(), 0);
    assert_eq!(pi.condition("Ready").unwrap().reason, "APIError");
}
