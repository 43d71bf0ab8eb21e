//! The pause: `pim.confluent.cloud/paused: "true"` on a resource or its Namespace stops all work,
//! counted in calls to the emulator; lifting it repairs what changed meanwhile.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use pio::{controller::Config, crd::PAUSED};
use reqwest::Method;
use serde_json::{Value, json};

const PAUSED_ANNOTATION: &str = "pim.confluent.cloud/paused";

/// Resync every 300 ms, so two resync periods pass in well under a second.
fn fast_resync() -> Config {
    Config {
        resync: Duration::from_millis(300),
        ..test_config()
    }
}

fn calls(h: &Harness) -> u64 {
    h.em.state.stats()["total"].as_u64().unwrap()
}

fn paused_message(p: &pio::crd::ProviderIntegration) -> Option<String> {
    p.condition(PAUSED)
        .filter(|c| c.status == "True" && c.reason == "Paused")
        .map(|c| c.message.clone())
}

#[tokio::test]
async fn a_paused_resource_makes_no_call_while_it_changes_and_unpausing_repairs_it() {
    let h = Harness::with(fast_resync(), emulator_config()).await;
    h.create("p", aws_spec(1)).await;
    let before = h.wait_ready("p").await;
    let old_id = before.status.as_ref().unwrap().id.clone().unwrap();

    h.set_paused(NS, "p", json!("true")).await;
    let paused = h.wait("p", "Paused", |p| paused_message(p).is_some()).await;
    assert!(h.has_event("p", "Normal", "Paused"));
    assert!(paused.is_ready(), "Ready keeps its last value");
    let message = paused_message(&paused).unwrap();
    assert!(
        message.contains("kubectl annotate providerintegration p"),
        "{message}"
    );

    // While paused: the spec changes and the integration is deleted out of band.
    let mut spec = aws_spec(1);
    spec["writeOutputsTo"] = json!({"name": "p-out"});
    h.patch_spec("p", spec).await;
    let path = format!("/_emulator/integrations/{old_id}");
    assert_eq!(h.admin(Method::DELETE, &path, None).await, 204);
    let baseline = calls(&h);
    // Three more looks at it (the change and the deletion each bring one, the resync sweeps
    // the rest), and not one call.
    h.wait_reconciles(h.reconciles(), 3).await;
    assert_eq!(calls(&h), baseline, "calls to Confluent while paused");
    let still = h.get("p").unwrap();
    assert_eq!(
        still.status.as_ref().unwrap().id.as_deref(),
        Some(old_id.as_str())
    );
    assert!(
        h.configmap("p-out").is_none(),
        "no outputs write while paused"
    );
    assert!(h.remote().await.is_empty());

    // Lifted: both repaired, the condition gone.
    h.set_paused(NS, "p", Value::Null).await;
    let repaired = h
        .wait("p", "recreated with outputs", |p| {
            p.is_ready()
                && p.status.as_ref().unwrap().id.as_deref() != Some(old_id.as_str())
                && p.condition(PAUSED).is_none()
        })
        .await;
    assert!(h.configmap("p-out").is_some());
    assert_eq!(h.remote().await.len(), 1);
    assert!(h.has_event("p", "Normal", "Resumed"));
    assert!(repaired.status.unwrap().id.is_some());
}

#[tokio::test]
async fn deleting_while_paused_waits_and_says_why_until_unpaused_or_orphaned() {
    let h = Harness::with(fast_resync(), emulator_config()).await;
    for name in ["a", "b"] {
        h.create(name, aws_spec(if name == "a" { 1 } else { 2 }))
            .await;
        h.wait_ready(name).await;
        h.set_paused(NS, name, json!("true")).await;
        h.wait(name, "Paused", |p| paused_message(p).is_some())
            .await;
        h.delete(name).await;
    }
    for name in ["a", "b"] {
        let p = h
            .wait(name, "waiting to be deleted", |p| {
                paused_message(p).is_some_and(|m| m.starts_with("deletion waits"))
            })
            .await;
        assert!(
            paused_message(&p)
                .unwrap()
                .contains("deletionPolicy: Orphan")
        );
    }
    let baseline = calls(&h);
    // Each looked at three more times by the resync sweeps, and no deletion.
    h.wait_reconciles(h.reconciles(), 6).await;
    assert_eq!(calls(&h), baseline, "no deletion while paused");
    assert!(h.get("a").is_some() && h.get("b").is_some());
    assert_eq!(h.remote().await.len(), 2);

    // Lifting the pause lets the finalizer run: the integration goes with the resource.
    h.set_paused(NS, "a", Value::Null).await;
    h.wait_gone("a").await;
    assert_eq!(h.remote().await.len(), 1);

    // `deletionPolicy: Orphan` lets a paused resource go at once, keeping its integration.
    let mut spec = aws_spec(2);
    spec["deletionPolicy"] = json!("Orphan");
    h.patch_spec("b", spec).await;
    h.wait_gone("b").await;
    assert_eq!(h.remote().await.len(), 1, "the orphaned integration stays");
}

#[tokio::test]
async fn a_namespace_pause_covers_every_resource_in_it() {
    let h = Harness::with(fast_resync(), emulator_config()).await;
    h.namespace("frozen", json!({PAUSED_ANNOTATION: "true"}))
        .await;
    h.put_secret_in("frozen", "pim-creds", KEY, SECRET).await;
    let baseline = calls(&h);
    for i in 0..3 {
        h.create_in("frozen", &format!("r{i}"), aws_spec(10 + i))
            .await;
    }
    for i in 0..3 {
        let p = h
            .wait_in("frozen", &format!("r{i}"), "Paused", |p| {
                paused_message(p).is_some()
            })
            .await;
        let m = paused_message(&p).unwrap();
        assert!(m.contains("on its namespace frozen"), "{m}");
        assert!(!p.is_ready());
    }
    h.wait_reconciles(h.reconciles(), 9).await;
    assert_eq!(calls(&h), baseline, "no call for a paused namespace");
    assert!(h.remote().await.is_empty());

    // Lifted on the Namespace: the watch of Namespaces puts each resource in line at once.
    let namespaces: Api<Namespace> = Api::all(h.client.clone());
    namespaces
        .patch(
            "frozen",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {PAUSED_ANNOTATION: null}}})),
        )
        .await
        .unwrap();
    for i in 0..3 {
        h.wait_in("frozen", &format!("r{i}"), "Ready", |p| {
            p.is_ready() && p.condition(PAUSED).is_none()
        })
        .await;
    }
    assert_eq!(h.remote().await.len(), 3);
}

/// A namespace-scoped install without RBAC for Namespaces: listing them is forbidden. The
/// Namespace pause is off (said once at start), resources reconcile as usual, and the listing is
/// tried again only on the watch's backoff, never per reconcile.
#[tokio::test]
async fn without_rbac_for_namespaces_resources_still_reconcile_and_namespaces_are_not_asked_again()
{
    let mut h = Harness::with(fast_resync(), emulator_config()).await;
    h.crash().await;
    // Every list and watch of Namespaces is forbidden, from the start.
    h.fake
        .fail_next(http::Method::GET, "/api/v1/namespaces$", 1_000_000, 403);
    h.start();
    for i in 0..5 {
        h.create(&format!("r{i}"), aws_spec(i)).await;
    }
    for i in 0..5 {
        h.wait_ready(&format!("r{i}")).await;
    }
    let asked = |h: &Harness| {
        h.fake
            .requests()
            .get("GET namespaces")
            .copied()
            .unwrap_or(0)
    };
    // Five resources, each reconciled more than once (resync 300 ms): the asks are the watch's
    // retries alone, a few a second at most, not one per reconcile.
    let reconciles_before = h.em.state.stats()["total"].as_u64().unwrap_or(0);
    let asked_before = asked(&h);
    // A resource's own annotation still pauses it.
    h.set_paused(NS, "r0", json!("true")).await;
    h.wait("r0", "Paused", |p| paused_message(p).is_some())
        .await;
    for i in 1..5 {
        h.wait_ready(&format!("r{i}")).await;
    }
    let reconciled = h.em.state.stats()["total"].as_u64().unwrap_or(0) - reconciles_before;
    let asked_meanwhile = asked(&h) - asked_before;
    assert!(
        asked_meanwhile <= 3,
        "Namespace lists after the first 403 while {reconciled} API calls were made: {asked_meanwhile}"
    );
    assert!(asked(&h) >= 1, "the operator tried to list Namespaces");
}
