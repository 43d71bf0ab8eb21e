//! Issue 28: one team's credentials, state and faults never reach another team. Each test runs
//! the operator against the emulator over HTTP and the in-memory API server.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams},
};
use pio::{
    controller::{Config, DEFAULT_CREDENTIALS_ANNOTATION},
    crd::{PAUSED, PAUSED_ANNOTATION, ProviderIntegration, STALLED},
    emulator,
    pim::{ApiVersion, Credentials, ListFilter, PimClient},
};
use serde_json::{Value, json};

fn stalled(reason: &'static str) -> impl Fn(&ProviderIntegration) -> bool {
    move |p: &ProviderIntegration| {
        p.condition(STALLED)
            .is_some_and(|c| c.status == "True" && c.reason == reason)
    }
}

/// Everything the operator wrote about a resource, as one text: its status and its events.
fn said_about(h: &Harness, ns: &str, name: &str) -> String {
    let status = h
        .get_in(ns, name)
        .and_then(|p| p.status)
        .map(|s| serde_json::to_string(&s).unwrap())
        .unwrap_or_default();
    let events: Vec<String> = h
        .fake
        .list("events")
        .into_iter()
        .filter(|e| e["regarding"]["name"] == name && e["regarding"]["namespace"] == ns)
        .map(|e| e["note"].to_string())
        .collect();
    format!("{status}\n{}", events.join("\n"))
}

/// Team B names team A's key id with a wrong secret, and observes A's integration by id (with
/// A's role ARN, then with a wrong guess). The operator had A's listing cached under that key id:
/// B must get the API's own answer to B's credentials (401), and nothing of A's.
#[tokio::test]
async fn a_wrong_secret_is_never_answered_from_another_teams_cache() {
    let h = Harness::new().await;
    for ns in ["team-a", "team-b"] {
        h.namespace(ns, json!({})).await;
    }
    h.put_secret_in("team-a", "pim-creds", KEY, SECRET).await;
    h.put_secret_in("team-b", "pim-creds", KEY, "not-the-secret")
        .await;
    let mut spec = aws_spec(1);
    spec["credentialsRef"] = json!({"name": "pim-creds"});
    h.create_in("team-a", "s3", spec).await;
    let a = h.wait_in("team-a", "s3", "Ready", |p| p.is_ready()).await;
    let a_status = a.status.unwrap();
    let id = a_status.id.clone().unwrap();
    let external_id = a_status.external_id.clone().unwrap();
    let unauthenticated_before = h.em.state.count_status(401);

    for (name, role) in [("observer", arn(1)), ("guess", arn(99))] {
        let spec = json!({"environment": ENV, "provider": "AWS", "managementPolicy": "Observe",
            "integrationId": id, "aws": {"customerIamRoleArn": role},
            "credentialsRef": {"name": "pim-creds"}});
        h.create_in("team-b", name, spec).await;
        let b = h
            .wait_in(
                "team-b",
                name,
                "Unauthenticated",
                stalled("Unauthenticated"),
            )
            .await;
        let s = b.status.unwrap();
        assert!(
            s.id.is_none() && s.external_id.is_none() && s.iam_role_arn.is_none(),
            "{name}: {s:?}"
        );
        let said = said_about(&h, "team-b", name);
        for secret_of_a in [&external_id, &a_status.iam_role_arn.clone().unwrap()] {
            assert!(!said.contains(secret_of_a.as_str()), "{name}: {said}");
        }
        assert!(
            !said.contains("differ"),
            "{name} is told nothing of A's: {said}"
        );
        assert!(!h.get_in("team-b", name).unwrap().is_ready());
    }
    assert!(
        h.em.state.count_status(401) > unauthenticated_before,
        "the API itself answered team B's credentials"
    );
    // Team A is untouched.
    assert!(h.get_in("team-a", "s3").unwrap().is_ready());
}

/// A revoked key answered 401 at once, a thousand times, among another team's slow successes:
/// the other team's calls in flight do not shrink (one 2 ms answer used to take the limit from
/// 500 to 16 for everyone).
#[tokio::test]
async fn a_401_storm_from_one_team_leaves_anothers_calls_in_flight_alone() {
    pio::install_crypto_provider();
    let mut config = emulator_config();
    config.faults.latency_ms = 200;
    let em = emulator::spawn_local(config).await.unwrap();
    let pim = PimClient::new(&em.base_url, Duration::from_secs(5))
        .unwrap()
        .with_concurrency(512);
    let good = Credentials::new(KEY, SECRET);
    let revoked = Credentials::new("REVOKED", "gone");
    let list = |c: Credentials| {
        let pim = pim.clone();
        async move {
            pim.list(&c, ApiVersion::V1, ENV, ListFilter::default())
                .await
                .map(|_| ())
        }
    };
    // Team A's work: rounds of 64 concurrent listings, each 200 ms.
    let round = || futures::future::join_all((0..64).map(|_| list(good.clone())));
    for _ in 0..3 {
        assert!(round().await.iter().all(Result::is_ok));
    }
    let before = pim.concurrency_limit();
    assert!(before > 64, "grew while latency held: {before}");
    // Team B's revoked key: a storm of instant 401s, beside A's next rounds.
    let storm = futures::future::join_all((0..1000).map(|_| list(revoked.clone())));
    let (storm, a_work) = tokio::join!(storm, async {
        let mut all = Vec::new();
        for _ in 0..3 {
            all.extend(round().await);
        }
        all
    });
    assert!(storm.iter().all(|r| r.is_err()));
    assert!(a_work.iter().all(Result::is_ok));
    assert_eq!(em.state.count_status(401), 1000);
    let after = pim.concurrency_limit();
    assert!(
        after >= before,
        "team B's 401s shrank team A's calls in flight from {before} to {after}"
    );
}

fn fast_resync() -> Config {
    Config {
        resync: Duration::from_millis(300),
        ..test_config()
    }
}

async fn annotate_namespace(h: &Harness, ns: &str, annotations: Value) {
    let api: Api<Namespace> = Api::all(h.client.clone());
    api.patch(
        ns,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": annotations}})),
    )
    .await
    .unwrap();
}

/// A namespace "team" with its own Secret, and a resource "s3" Ready in it.
async fn ready_in_team(h: &Harness, role: usize) {
    h.namespace("team", json!({})).await;
    h.put_secret_in("team", "pim-creds", KEY, SECRET).await;
    let mut spec = aws_spec(role);
    spec["credentialsRef"] = json!({"name": "pim-creds"});
    h.create_in("team", "s3", spec).await;
    h.wait_in("team", "s3", "Ready", |p| p.is_ready()).await;
}

/// While the Namespaces cannot be read (the watch broken, its restarts answered 500), a
/// deletion does not take the missing answer for "not paused": it waits and says why. When the
/// watch is back it sees the pause put on meanwhile, and the integration is deleted only once
/// the pause is lifted.
#[tokio::test]
async fn a_pause_is_never_lost_to_an_api_server_error() {
    let h = Harness::with(fast_resync(), emulator_config()).await;
    ready_in_team(&h, 3).await;

    // The Namespace watch breaks and cannot be restarted; meanwhile the team pauses.
    h.fake
        .fail_next(http::Method::GET, "/api/v1/namespaces$", 1_000_000, 500);
    h.fake.close_watches("namespaces");
    annotate_namespace(&h, "team", json!({PAUSED_ANNOTATION: "true"})).await;
    h.api_in("team")
        .delete("s3", &DeleteParams::default())
        .await
        .unwrap();
    let waiting = h
        .wait_in("team", "s3", "PauseUnknown", |p| {
            p.condition(PAUSED)
                .is_some_and(|c| c.status == "Unknown" && c.reason == "PauseUnknown")
        })
        .await;
    let message = &waiting.condition(PAUSED).unwrap().message;
    assert!(
        message.starts_with("deletion waits") && message.contains("team"),
        "{message}"
    );
    assert!(
        h.fake
            .list("events")
            .iter()
            .any(|e| e["regarding"]["namespace"] == "team"
                && e["regarding"]["name"] == "s3"
                && e["reason"] == "PauseUnknown"
                && e["type"] == "Warning"),
        "a Warning event says why the deletion waits"
    );

    // Back: the pause is seen, and still nothing was deleted.
    h.fake.clear_faults();
    h.wait_in("team", "s3", "Paused", |p| {
        p.condition(PAUSED)
            .is_some_and(|c| c.status == "True" && c.message.contains("on its namespace team"))
    })
    .await;
    assert_eq!(h.em.state.count("v1_delete"), 0);
    assert_eq!(h.remote().await.len(), 1);

    // Lifted: the deletion goes on, seen through the watch (no resync needed).
    annotate_namespace(&h, "team", json!({PAUSED_ANNOTATION: null})).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while h.get_in("team", "s3").is_some() {
        assert!(tokio::time::Instant::now() < deadline, "not deleted");
        h.fake.wait_change(Duration::from_millis(50)).await;
    }
    assert!(h.remote().await.is_empty());
}

/// A pause put on a Namespace reaches its resources through the watch, not a poll: with a resync
/// of five minutes, a change made on the spec of a resource right after is held.
#[tokio::test]
async fn a_namespace_pause_is_seen_through_the_watch() {
    let h = Harness::new().await;
    ready_in_team(&h, 4).await;
    let namespace_reads = h.fake.requests().get("GET namespaces").copied();
    annotate_namespace(&h, "team", json!({PAUSED_ANNOTATION: "true"})).await;
    h.wait_in("team", "s3", "Paused", |p| {
        p.condition(PAUSED).is_some_and(|c| c.status == "True")
    })
    .await;
    annotate_namespace(&h, "team", json!({PAUSED_ANNOTATION: null})).await;
    h.wait_in("team", "s3", "resumed", |p| {
        p.condition(PAUSED).is_none() && p.is_ready()
    })
    .await;
    assert_eq!(
        h.fake.requests().get("GET namespaces").copied(),
        namespace_reads,
        "no Namespace read by any reconcile: the watch told"
    );
}

/// Many resources sharing one Secret, all reconciled at once on start: their concurrent first
/// reads of it are one GET (single flight), whatever the API server's latency.
#[tokio::test]
async fn concurrent_first_reads_of_a_secret_are_one_read() {
    let mut h = Harness::new().await;
    h.crash().await;
    for i in 0..16 {
        h.create(&format!("r{i}"), aws_spec(i)).await;
    }
    h.fake.set_latency("secrets", Duration::from_millis(50));
    let reads = |h: &Harness| h.fake.requests().get("GET secrets").copied().unwrap_or(0);
    let before = reads(&h);
    h.start();
    for i in 0..16 {
        h.wait_ready(&format!("r{i}")).await;
    }
    assert_eq!(reads(&h) - before, 1, "one read of the shared Secret");
}

/// Resources on the default credentials keep no memory once settled; a namespace's Secrets'
/// keys and grants go with the namespace.
#[tokio::test]
async fn nothing_is_kept_for_settled_resources_or_departed_namespaces() {
    let h = Harness::with(default_credentials_config(), emulator_config()).await;
    h.namespace("open", json!({DEFAULT_CREDENTIALS_ANNOTATION: ENV}))
        .await;
    h.namespace("own", json!({})).await;
    h.put_secret_in("own", "pim-creds", KEY, SECRET).await;
    for i in 0..5 {
        let mut spec = aws_spec(10 + i);
        if let Some(o) = spec.as_object_mut() {
            o.remove("credentialsRef");
        }
        h.create_in("open", &format!("d{i}"), spec).await;
        let mut spec = aws_spec(20 + i);
        spec["credentialsRef"] = json!({"name": "pim-creds"});
        h.create_in("own", &format!("s{i}"), spec).await;
    }
    for i in 0..5 {
        h.wait_in("open", &format!("d{i}"), "Ready", |p| p.is_ready())
            .await;
        h.wait_in("own", &format!("s{i}"), "Ready", |p| p.is_ready())
            .await;
    }
    let ctx = h.ctx();
    // Settled once the operator has seen the watch event of its own last write (until then it
    // keeps that write's resourceVersion, to tell stale copies).
    eventually(
        Duration::from_secs(5),
        "settled resources keep nothing; still remembered",
        || ctx.remembered(),
        |n| *n == 0,
    )
    .await;
    // The default Secret of the harness, "own"'s Secret, and "open"'s grant.
    let kept = ctx.secrets_kept();
    assert!(kept >= 2, "{kept}");

    // The namespace "own" goes: its Secret's last key goes with it.
    let namespaces: Api<Namespace> = Api::all(h.client.clone());
    for i in 0..5 {
        h.api_in("own")
            .delete(&format!("s{i}"), &DeleteParams::default())
            .await
            .unwrap();
    }
    for i in 0..5 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while h.get_in("own", &format!("s{i}")).is_some() {
            assert!(tokio::time::Instant::now() < deadline);
            h.fake.wait_change(Duration::from_millis(50)).await;
        }
    }
    namespaces
        .delete("own", &DeleteParams::default())
        .await
        .unwrap();
    namespaces
        .delete("open", &DeleteParams::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while ctx.secrets_kept() > kept - 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} kept after their namespaces went",
            ctx.secrets_kept()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
