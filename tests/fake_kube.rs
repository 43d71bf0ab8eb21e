//! The in-memory API server must behave like a real one where it matters to the operator
//! (`shared/design.md`, "What a real API server does"). These tests hold it to that, through
//! kube's client as the operator talks to it.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, Preconditions},
    runtime::{WatchStreamExt, watcher},
};
use pio::crd::ProviderIntegration;
use serde_json::{Value, json};

fn status_apply(rv: Option<&str>, status: Value) -> Value {
    let mut p = json!({
        "apiVersion": "pim.confluent.cloud/v1alpha1", "kind": "ProviderIntegration",
        "status": status,
    });
    if let Some(rv) = rv {
        p["metadata"] = json!({"resourceVersion": rv});
    }
    p
}

fn fake() -> (FakeKube, Api<ProviderIntegration>) {
    let fake = FakeKube::new();
    let api = Api::namespaced(fake.client(NS), NS);
    (fake, api)
}

async fn create_raw(fake: &FakeKube) -> ProviderIntegration {
    {
        let api: Api<ProviderIntegration> = Api::namespaced(fake.client(NS), NS);
        let pi: ProviderIntegration = serde_json::from_value(json!({
            "apiVersion": "pim.confluent.cloud/v1alpha1", "kind": "ProviderIntegration",
            "metadata": {"name": "x", "namespace": NS},
            "spec": aws_spec(1),
        }))
        .unwrap();
        let pp = kube::api::PostParams {
            field_manager: Some("kubectl-client-side-apply".into()),
            ..Default::default()
        };
        api.create(&pp, &pi).await.unwrap()
    }
}

#[tokio::test]
async fn apply_removes_the_fields_a_manager_stops_applying_and_records_owners() {
    let (fake, api) = fake();
    create_raw(&fake).await;
    let ssa = PatchParams::apply("op").force();
    api.patch_status(
        "x",
        &ssa,
        &Patch::Apply(status_apply(
            None,
            json!({"id": "dlz-1", "conditions": [
                {"type": "Ready", "status": "True", "reason": "R", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "Stalled", "status": "False", "reason": "R", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}),
        )),
    )
    .await
    .unwrap();
    // Another manager's field survives our next apply; ours that we stop sending do not.
    api.patch_status(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "CREATED"}})),
    )
    .await
    .unwrap();
    api.patch_status(
        "x",
        &ssa,
        &Patch::Apply(status_apply(
            None,
            json!({"conditions": [{"type": "Ready", "status": "False", "reason": "R", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}),
        )),
    )
    .await
    .unwrap();
    let stored = fake.get("providerintegrations", NS, "x").unwrap();
    assert_eq!(stored["status"]["id"], Value::Null, "{stored:#}");
    assert_eq!(stored["status"]["phase"], "CREATED");
    let conditions = stored["status"]["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 1, "{conditions:?}");
    assert_eq!(conditions[0]["status"], "False");
    let managers: Vec<(String, String)> = stored["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap().to_string(),
                e["operation"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(managers.contains(&("kubectl-client-side-apply".into(), "Update".into())));
    assert!(managers.contains(&("op".into(), "Apply".into())));
    assert!(managers.contains(&("unknown".into(), "Update".into())));
}

#[tokio::test]
async fn resource_version_preconditions_answer_409() {
    let (fake, api) = fake();
    let created = create_raw(&fake).await;
    let old_rv = created.metadata.resource_version.clone().unwrap();
    let ssa = PatchParams::apply("op").force();
    let applied = api
        .patch_status(
            "x",
            &ssa,
            &Patch::Apply(status_apply(Some(&old_rv), json!({"id": "dlz-1"}))),
        )
        .await
        .unwrap();
    // The same precondition again is now stale.
    let err = api
        .patch_status(
            "x",
            &ssa,
            &Patch::Apply(status_apply(Some(&old_rv), json!({}))),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref e) if e.code == 409),
        "{err}"
    );
    let err = api
        .patch(
            "x",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"resourceVersion": old_rv, "finalizers": []}})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref e) if e.code == 409),
        "{err}"
    );
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some("not-the-uid".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let err = api.delete("x", &dp).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref e) if e.code == 409),
        "{err}"
    );
    // Nothing was lost.
    let stored = fake.get("providerintegrations", NS, "x").unwrap();
    assert_eq!(stored["status"]["id"], "dlz-1");
    assert_eq!(
        stored["metadata"]["resourceVersion"],
        applied.metadata.resource_version.unwrap().as_str()
    );
}

#[tokio::test]
async fn watch_events_lag_behind_writes_in_order() {
    let (fake, api) = fake();
    fake.set_watch_lag(Duration::from_millis(300));
    let mut raw = watcher(api.clone(), watcher::Config::default()).boxed();
    // The initial (empty) list comes at once; only watch events lag.
    loop {
        match raw.next().await {
            Some(Ok(watcher::Event::InitDone)) => break,
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    let mut events = raw.applied_objects().boxed();
    let start = tokio::time::Instant::now();
    create_raw(&fake).await;
    let first = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(first.metadata.name.as_deref(), Some("x"));
    // The write is visible at once to a GET, only later to the watch.
    api.patch_status(
        "x",
        &PatchParams::apply("op").force(),
        &Patch::Apply(status_apply(None, json!({"id": "dlz-1"}))),
    )
    .await
    .unwrap();
    assert!(api.get("x").await.unwrap().status.is_some());
    let second = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.status.unwrap().id.as_deref(), Some("dlz-1"));
}

#[tokio::test]
async fn the_harness_creates_objects_as_kubectl_apply_does() {
    let h = Harness::new().await;
    h.create("orders", aws_spec(1)).await;
    h.wait_ready("orders").await;
    let stored = h.fake.get("providerintegrations", NS, "orders").unwrap();
    let last =
        stored["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap();
    let last: Value = serde_json::from_str(last).unwrap();
    assert_eq!(last["spec"], aws_spec(1));
    let managers: Vec<&str> = stored["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    // Every write names its manager: kubectl's and the operator's, never `unknown`.
    assert!(
        managers.contains(&"kubectl-client-side-apply"),
        "{managers:?}"
    );
    assert!(
        managers.contains(&"provider-integration-operator"),
        "{managers:?}"
    );
    assert!(!managers.contains(&"unknown"), "{managers:?}");
}

/// A cloud operator's published CRD installed in the fake is served by its group (ACK's and
/// Crossplane's `roles` side by side), and objects are pruned to its schema and validated
/// against it, as a real server does.
#[tokio::test]
async fn installed_crds_are_served_by_group_pruned_and_validated() {
    use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
    let Some(dir) = common::cloud_crds::dir() else {
        println!("SKIPPED installed_crds_are_served_by_group_pruned_and_validated: no cloud CRDs");
        return;
    };
    let (fake, _) = fake();
    for file in [
        "ack-iam/iam.services.k8s.aws_roles.yaml",
        "crossplane-aws/iam.aws.m.upbound.io_roles.yaml",
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        fake.install_crd(&serde_saphyr::from_str::<Value>(&text).unwrap());
    }
    let client = fake.client(NS);
    let ack = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("iam.services.k8s.aws", "v1alpha1", "Role"),
        "roles",
    );
    let xp = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("iam.aws.m.upbound.io", "v1beta1", "Role"),
        "roles",
    );
    let acks: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &ack);
    let xps: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &xp);
    let role = |api_version: &str, spec: Value| -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": api_version, "kind": "Role",
            "metadata": {"name": "r"}, "spec": spec}))
        .unwrap()
    };
    // Same name and plural in two groups: two objects.
    acks.create(
        &Default::default(),
        &role(
            "iam.services.k8s.aws/v1alpha1",
            json!({"name": "r", "assumeRolePolicyDocument": "{}", "typo": 1}),
        ),
    )
    .await
    .unwrap();
    xps.create(
        &Default::default(),
        &role(
            "iam.aws.m.upbound.io/v1beta1",
            json!({"forProvider": {"assumeRolePolicy": "{}"}}),
        ),
    )
    .await
    .unwrap();
    let stored = acks.get("r").await.unwrap();
    assert_eq!(stored.data["spec"]["name"], "r");
    assert!(stored.data["spec"].get("typo").is_none(), "pruned");
    assert_eq!(fake.pruned(), ["roles.iam.services.k8s.aws: .spec.typo"]);
    assert!(xps.get("r").await.unwrap().data["spec"]["forProvider"].is_object());
    // A value of the wrong type, or a missing required field: 422, nothing stored.
    let e = acks
        .patch(
            "r",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"maxSessionDuration": "an hour"}})),
        )
        .await
        .unwrap_err();
    assert!(matches!(&e, kube::Error::Api(s) if s.code == 422), "{e}");
    let e = acks
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"apiVersion": "iam.services.k8s.aws/v1alpha1",
                "kind": "Role", "metadata": {"name": "no-doc"}, "spec": {"name": "x"}}))
            .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, kube::Error::Api(s) if s.code == 422 && s.message.contains("assumeRolePolicyDocument")),
        "{e}"
    );
    assert_eq!(acks.list(&Default::default()).await.unwrap().items.len(), 1);
}

/// Charged like a real server (`set_write_throughput`): writes are served one line for all
/// clients, in arrival order, at the given rate, so a write's latency is the line before it;
/// reads are not charged. On tokio's paused clock: exact, and instant.
#[tokio::test(start_paused = true)]
async fn writes_wait_their_turn_in_one_line_at_the_charged_rate() {
    let fake = FakeKube::new();
    fake.set_write_throughput(100);
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(fake.client(NS), NS);
    let start = tokio::time::Instant::now();
    let writes = (0..50).map(|i| {
        let secrets = secrets.clone();
        async move {
            let s = serde_json::from_value(json!({"metadata": {"name": format!("s{i}")}})).unwrap();
            secrets.create(&Default::default(), &s).await.unwrap();
            start.elapsed()
        }
    });
    let mut done: Vec<Duration> = futures::future::join_all(writes).await;
    done.sort();
    // One every 10 ms: the first at once, the 50th after 49 turns.
    assert_eq!(done[0], Duration::ZERO);
    assert_eq!(done[49], Duration::from_millis(490));
    let (n, waited) = fake.charged_writes();
    assert_eq!(n, 50);
    assert_eq!(waited, Duration::from_millis((0..50).map(|i| i * 10).sum()));
    // Reads wait for no one.
    let t = tokio::time::Instant::now();
    secrets.list(&Default::default()).await.unwrap();
    assert_eq!(t.elapsed(), Duration::ZERO);
    // Free again.
    fake.set_write_throughput(0);
    let t = tokio::time::Instant::now();
    let s = serde_json::from_value(json!({"metadata": {"name": "free"}})).unwrap();
    secrets.create(&Default::default(), &s).await.unwrap();
    assert_eq!(t.elapsed(), Duration::ZERO);
}
