//! Issue 15's threat model on the in-memory API server: one integration has one owner, and the
//! operator's default credentials act only where a platform team granted them.

mod common;

use std::time::Duration;

use common::*;
use pio::controller::DEFAULT_CREDENTIALS_ANNOTATION;
use pio::crd::{ProviderIntegration, STALLED};
use serde_json::{Value, json};

fn stalled(reason: &'static str) -> impl Fn(&ProviderIntegration) -> bool {
    move |p: &ProviderIntegration| {
        p.condition(STALLED)
            .is_some_and(|c| c.status == "True" && c.reason == reason)
    }
}

fn spec_for(role: usize, secret: Option<&str>) -> Value {
    let mut s = aws_spec(role);
    s["displayName"] = json!("s3");
    match secret {
        Some(name) => s["credentialsRef"] = json!({"name": name}),
        None => {
            if let Some(o) = s.as_object_mut() {
                o.remove("credentialsRef");
            }
        }
    }
    s
}

/// The takeover of issue 15: team B names team A's integration. It stalls `AlreadyManaged`
/// naming the owner; deleting it leaves the integration and team A's resource unchanged.
#[tokio::test]
async fn naming_another_teams_integration_stalls_and_deleting_it_changes_nothing() {
    let h = Harness::new().await;
    for ns in ["team-a", "team-b"] {
        h.namespace(ns, json!({})).await;
        h.put_secret_in(ns, "pim-creds", KEY, SECRET).await;
    }
    h.create_in("team-a", "s3", spec_for(1, Some("pim-creds")))
        .await;
    let a = h.wait_in("team-a", "s3", "Ready", |p| p.is_ready()).await;
    let id = a.status.clone().unwrap().id.unwrap();
    let external_id = a.status.clone().unwrap().external_id;

    // By id, with the same environment, display name and role.
    let mut takeover = spec_for(1, Some("pim-creds"));
    takeover["integrationId"] = json!(id);
    takeover["deletionPolicy"] = json!("Delete");
    h.create_in("team-b", "s3", takeover).await;
    let b = h
        .wait_in("team-b", "s3", "AlreadyManaged", stalled("AlreadyManaged"))
        .await;
    let msg = &b.condition(STALLED).unwrap().message;
    assert!(msg.contains("team-a/s3") && msg.contains(&id), "{msg}");
    assert!(b.status.unwrap().id.is_none(), "team B never records it");
    // Without the id, by naming the same key: the same.
    h.create_in("team-b", "s3-by-key", spec_for(1, Some("pim-creds")))
        .await;
    h.wait_in(
        "team-b",
        "s3-by-key",
        "AlreadyManaged",
        stalled("AlreadyManaged"),
    )
    .await;

    let validates = h.em.state.count("v2_validate");
    h.api_in("team-b")
        .delete("s3", &Default::default())
        .await
        .unwrap();
    h.api_in("team-b")
        .delete("s3-by-key", &Default::default())
        .await
        .unwrap();
    for name in ["s3", "s3-by-key"] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while h.get_in("team-b", name).is_some() {
            assert!(tokio::time::Instant::now() < deadline, "{name} not deleted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Both are gone, so their finalizers ran: whatever they were to do is done.
    let remote = h.remote().await;
    assert_eq!(remote.len(), 1, "{remote:?}");
    assert_eq!(remote[0]["id"], json!(id));
    assert_eq!(h.em.state.count("v1_delete"), 0);
    assert_eq!(h.em.state.count("v2_validate"), validates);
    let a = h.get_in("team-a", "s3").unwrap();
    assert!(a.is_ready());
    assert_eq!(a.status.clone().unwrap().id.as_deref(), Some(id.as_str()));
    assert_eq!(a.status.unwrap().external_id, external_id);
    assert!(!h.has_event("s3", "Warning", "Recreated"));
}

/// Two resources created at once for one key: exactly one owner, one integration, and the other
/// says who owns it, even with watch events arriving late. For AWS the API keeps roles unique;
/// for GCP and Azure it does not, and only the operator's rule prevents a second integration.
#[tokio::test]
async fn two_resources_racing_for_one_key_produce_one_owner() {
    let h = Harness::new().await;
    h.fake.set_watch_lag(Duration::from_millis(100));
    for round in 0..6 {
        let (first, second) = (format!("first-{round}"), format!("second-{round}"));
        let spec = match round % 3 {
            0 => spec_for(100 + round, Some("pim-creds")),
            1 => {
                json!({"environment": ENV, "provider": "GCP", "displayName": format!("gcs-{round}"),
                "gcp": {"customerGoogleServiceAccount": GCP_SA}, "credentialsRef": {"name": "pim-creds"}})
            }
            _ => {
                json!({"environment": ENV, "provider": "Azure", "displayName": format!("blob-{round}"),
                "azure": {"customerAzureTenantId": AZURE_TENANT}, "credentialsRef": {"name": "pim-creds"}})
            }
        };
        let (a, b) = tokio::join!(h.create(&first, spec.clone()), h.create(&second, spec));
        let (a, b) = (a.metadata.name.unwrap(), b.metadata.name.unwrap());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let (owner, other) = loop {
            let (pa, pb) = (h.get(&a).unwrap(), h.get(&b).unwrap());
            match (pa.is_ready(), pb.is_ready()) {
                (true, false) if stalled("AlreadyManaged")(&pb) => break (pa, pb),
                (false, true) if stalled("AlreadyManaged")(&pa) => break (pb, pa),
                (true, true) => {
                    panic!("round {round}: both Ready: {:?} {:?}", pa.status, pb.status)
                }
                _ => {}
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {round}: {:?} / {:?}",
                pa.status,
                pb.status
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let id = owner.status.clone().unwrap().id.unwrap();
        assert!(other.status.clone().unwrap().id.is_none(), "round {round}");
        let msg = other.condition(STALLED).unwrap().message.clone();
        assert!(
            msg.contains(&format!("{NS}/{}", owner.metadata.name.unwrap())),
            "{msg}"
        );
        let remote = h.remote().await;
        let same_key: Vec<&Value> = remote
            .iter()
            .filter(|r| match round % 3 {
                0 => r["config"]["customer_iam_role_arn"] == json!(arn(100 + round)),
                1 => r["display_name"] == json!(format!("gcs-{round}")),
                _ => r["display_name"] == json!(format!("blob-{round}")),
            })
            .collect();
        assert_eq!(same_key.len(), 1, "round {round}: {same_key:?}");
        assert_eq!(same_key[0]["id"], json!(id));
    }
}

/// Default credentials are usable only where a platform team granted them, per namespace and
/// environment; elsewhere the resource stalls `CredentialsNotAllowed` without any API call.
#[tokio::test]
async fn default_credentials_act_only_where_granted() {
    let h = Harness::with(default_credentials_config(), emulator_config()).await;
    h.namespace("open", json!({DEFAULT_CREDENTIALS_ANNOTATION: ENV}))
        .await;
    h.namespace(
        "other-env",
        json!({DEFAULT_CREDENTIALS_ANNOTATION: "env-zzz9, env-yyy8"}),
    )
    .await;
    h.namespace("closed", json!({})).await;

    for ns in ["closed", "other-env"] {
        h.create_in(ns, "s3", spec_for(7, None)).await;
        let pi = h
            .wait_in(
                ns,
                "s3",
                "CredentialsNotAllowed",
                stalled("CredentialsNotAllowed"),
            )
            .await;
        let msg = pi.condition(STALLED).unwrap().message.clone();
        assert!(
            msg.contains(&format!(
                "kubectl annotate namespace {ns} {DEFAULT_CREDENTIALS_ANNOTATION}={ENV}"
            )),
            "{msg}"
        );
    }
    // Each looked at again on the stall's retry: still no call.
    h.wait_reconciles(h.reconciles(), 4).await;
    assert_eq!(
        h.em.state.stats()["total"],
        0,
        "no API call for a namespace outside the scope"
    );

    // Granted for its environment: it works.
    h.create_in("open", "s3", spec_for(7, None)).await;
    h.wait_in("open", "s3", "Ready", |p| p.is_ready()).await;
    // Its own Secret is its own authority, granted or not.
    h.put_secret_in("closed", "own", KEY, SECRET).await;
    h.create_in("closed", "s3-own", spec_for(8, Some("own")))
        .await;
    h.wait_in("closed", "s3-own", "Ready", |p| p.is_ready())
        .await;
}
