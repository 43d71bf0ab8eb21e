//! `managementPolicy: Observe`: resources that mirror an integration another resource manages,
//! counted in calls to the emulator: they never write to Confluent Cloud.

mod common;

use std::time::Duration;

use common::*;
use pio::controller::Config;
use reqwest::Method;
use serde_json::{Value, json};

fn fast_resync() -> Config {
    Config {
        resync: Duration::from_millis(300),
        ..test_config()
    }
}

fn observer(role: usize, id: Option<&str>) -> Value {
    let mut s = aws_spec(role);
    s["managementPolicy"] = json!("Observe");
    if let Some(id) = id {
        s["integrationId"] = json!(id);
    }
    s
}

/// Calls that write to Confluent Cloud.
fn writes(h: &Harness) -> u64 {
    [
        "v1_create",
        "v1_delete",
        "v2_create",
        "v2_delete",
        "v2_update",
        "v2_validate",
    ]
    .iter()
    .map(|op| h.em.state.count(op))
    .sum()
}

#[tokio::test]
async fn observers_mirror_the_owners_integration_and_never_write() {
    let h = Harness::with(fast_resync(), emulator_config()).await;
    h.put_secret_in("team-b", "pim-creds", KEY, SECRET).await;
    h.create("owner", aws_spec(1)).await;
    let owned = h.wait_ready("owner").await.status.unwrap();
    let id = owned.id.clone().unwrap();
    assert_eq!(writes(&h), 1, "the owner's create");

    // Three observers: by id, by key (the role ARN), and by id in another team's namespace with
    // the outputs ConfigMap.
    h.create("by-id", observer(1, Some(&id))).await;
    h.create("by-key", observer(1, None)).await;
    let mut other_team = observer(1, Some(&id));
    other_team["writeOutputsTo"] = json!({"name": "ids"});
    h.create_in("team-b", "mirror", other_team).await;
    for (ns, name) in [(NS, "by-id"), (NS, "by-key"), ("team-b", "mirror")] {
        let p = h.wait_in(ns, name, "Ready", |p| p.is_ready()).await;
        let s = p.status.as_ref().unwrap();
        assert_eq!(s.id.as_deref(), Some(id.as_str()), "{name}");
        assert_eq!(s.external_id, owned.external_id, "{name}");
        assert!(
            p.metadata.finalizers.as_ref().is_none_or(|f| f.is_empty()),
            "{name}: an observer needs no finalizer"
        );
    }
    assert!(h.fake.get("configmaps", "team-b", "ids").is_some());
    // The owner is still the owner: observers hold nothing. Every resource looked at twice
    // more by the resync sweeps, and still one write.
    h.wait_reconciles(h.reconciles(), 8).await;
    assert!(h.get("owner").unwrap().is_ready());
    assert_eq!(writes(&h), 1, "observers wrote to Confluent Cloud");

    // The integration goes (its owner paused, so it is not recreated at once): each observer says
    // so and waits, keeping the values it last saw.
    h.set_paused(NS, "owner", json!("true")).await;
    h.wait("owner", "Paused", |p| p.condition("Paused").is_some())
        .await;
    let path = format!("/_emulator/integrations/{id}");
    assert_eq!(h.admin(Method::DELETE, &path, None).await, 204);
    for (ns, name) in [(NS, "by-id"), (NS, "by-key"), ("team-b", "mirror")] {
        let p = h
            .wait_in(ns, name, "IntegrationGone", |p| {
                p.condition("Stalled")
                    .is_some_and(|c| c.status == "True" && c.reason == "IntegrationGone")
            })
            .await;
        assert_eq!(p.status.unwrap().id.as_deref(), Some(id.as_str()));
    }
    assert_eq!(writes(&h), 1, "an observer never creates");

    // The owner resumes and recreates it: the observer by key follows the new one; those by id
    // keep waiting for theirs.
    h.set_paused(NS, "owner", json!(null)).await;
    let new_id = h
        .wait("owner", "recreated", |p| {
            p.is_ready() && p.status.as_ref().unwrap().id.as_deref() != Some(id.as_str())
        })
        .await
        .status
        .unwrap()
        .id
        .unwrap();
    h.wait("by-key", "following the new integration", |p| {
        p.is_ready() && p.status.as_ref().unwrap().id.as_deref() == Some(new_id.as_str())
    })
    .await;
    assert!(!h.get("by-id").unwrap().is_ready());

    // Deleting every observer deletes nothing in Confluent Cloud.
    let before = writes(&h);
    h.delete("by-id").await;
    h.delete("by-key").await;
    h.api_in("team-b")
        .delete("mirror", &Default::default())
        .await
        .unwrap();
    h.wait_gone("by-id").await;
    h.wait_gone("by-key").await;
    assert_eq!(writes(&h), before);
    assert_eq!(h.remote().await.len(), 1, "the owner's integration stays");
    assert!(h.get("owner").unwrap().is_ready());
}

/// An owner let go (`Manage` to `Observe`, the one way the CRD allows): it keeps mirroring its
/// integration, and its deletion deletes nothing.
#[tokio::test]
async fn an_owner_that_becomes_an_observer_lets_its_integration_go() {
    let h = Harness::new().await;
    h.create("owner", aws_spec(5)).await;
    let id = h.wait_ready("owner").await.status.unwrap().id.unwrap();
    let before = writes(&h);
    h.patch_spec("owner", json!({"managementPolicy": "Observe"}))
        .await;
    h.wait("owner", "Ready as an observer", |p| {
        p.is_ready()
            && p.status.as_ref().and_then(|s| s.observed_generation) == p.metadata.generation
    })
    .await;
    h.delete("owner").await;
    h.wait_gone("owner").await;
    let remote = h.remote().await;
    assert_eq!(remote.len(), 1, "{remote:?}");
    assert_eq!(remote[0]["id"], json!(id));
    assert_eq!(
        writes(&h),
        before,
        "no write to Confluent Cloud after the switch"
    );
}
