//! End-to-end test against a real Kubernetes API server (envtest convention).
//!
//! Runs when `KUBECONFIG` points at a reachable cluster; otherwise it is skipped with a printed
//! reason. It is careful with a shared cluster: everything it creates lives in a fresh
//! namespace that it deletes at the end; the operator under test watches only that namespace;
//! an installed CRD (from the chart, or `kubectl apply -f crds/`) is used as it is, and the test
//! installs its own only when there is none, removing it only if no ProviderIntegration is left
//! anywhere. The Confluent side is the emulator on loopback.
//!
//! The controller runs in this process, so nothing here may block a runtime thread: `kubectl`
//! runs through `tokio::process` on a multi-thread runtime.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client, CustomResourceExt, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use pio::{
    controller::Config,
    crd::{FINALIZER, ProviderIntegration, RECONCILING, STALLED},
};
use serde_json::{Value, json};

mod common;
use common::cluster::{Operator, clean_up, cluster, kubectl, wait_deleted, wait_for};

const ENV: &str = "env-e2e01";

fn cond(pi: &ProviderIntegration, ty: &str, reason: &str) -> bool {
    pi.condition(ty).is_some_and(|c| {
        c.status == "True" && c.reason == reason && c.observed_generation == pi.metadata.generation
    })
}

fn resource(name: &str, role: usize, extra: Value) -> ProviderIntegration {
    let mut spec = json!({
        "environment": ENV, "provider": "AWS",
        "aws": {"customerIamRoleArn": format!("arn:aws:iam::123456789012:role/e2e-{role}")},
        "credentialsRef": {"name": "pim-creds"},
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(
        json!({"apiVersion": "pim.confluent.cloud/v1alpha1", "kind": "ProviderIntegration",
        "metadata": {"name": name}, "spec": spec}),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_against_a_real_api_server() {
    let client = match cluster().await {
        Ok(c) => c,
        Err(reason) => {
            println!("SKIPPED lifecycle_against_a_real_api_server: {reason}");
            return;
        }
    };
    // CRD: an installed one is used as it is (the chart's, say); ours only when there is none.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd_name = ProviderIntegration::crd_name();
    let preexisting = match crds.get_opt(crd_name).await.unwrap() {
        Some(installed) => {
            let labels = installed.labels();
            println!(
                "using the installed CRD {crd_name} (resourceVersion {}, managed by {}, versions {:?}) as it is",
                installed.resource_version().unwrap_or_default(),
                labels
                    .get("app.kubernetes.io/managed-by")
                    .map(String::as_str)
                    .unwrap_or("an unknown tool"),
                installed
                    .spec
                    .versions
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect::<Vec<_>>()
            );
            true
        }
        None => {
            println!("no {crd_name} installed: installing this build's CRD for the test");
            crds.create(&PostParams::default(), &pio::crd::crd())
                .await
                .unwrap();
            false
        }
    };
    let (ok, out) = kubectl(&[
        "wait",
        "--for=condition=Established",
        &format!("crd/{crd_name}"),
        "--timeout=60s",
    ])
    .await;
    assert!(ok, "CRD not established: {out}");

    let ns = common::cluster::namespace(&client, "pio-e2e").await;

    let result = tokio::spawn(run_lifecycle(client.clone(), ns.clone())).await;

    // Clean up whatever happened: our namespace (finalizers first, so it cannot hang).
    clean_up(&client, &ns).await;
    if !preexisting {
        let all: Api<ProviderIntegration> = Api::all(client.clone());
        let left = all
            .list(&ListParams::default())
            .await
            .map(|l| l.items.len())
            .unwrap_or(1);
        if left == 0 {
            let _ = crds.delete(crd_name, &DeleteParams::default()).await;
        }
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn run_lifecycle(client: Client, ns: String) {
    let config = Config {
        resync: Duration::from_secs(5),
        retry_base: Duration::from_millis(200),
        stall_retry: Duration::from_secs(1),
        ..Default::default()
    };
    let operator = Operator::start(&client, &ns, config).await;
    let em = &operator.em;
    let http = reqwest::Client::new();
    let api: Api<ProviderIntegration> = Api::namespaced(client.clone(), &ns);

    // The API server enforces the schema and the CEL rule before the operator sees anything.
    let mut bad = resource("bad-arn", 0, json!({}));
    bad.spec.aws.as_mut().unwrap().customer_iam_role_arn = "not-an-arn-but-long-enough".into();
    let err = api
        .create(&PostParams::default(), &bad)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("customerIamRoleArn"), "{err}");
    let mut noaws = resource("no-aws", 0, json!({}));
    noaws.spec.aws = None;
    let err = api
        .create(&PostParams::default(), &noaws)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("provider AWS requires"), "{err}");
    let err = api
        .create(
            &PostParams::default(),
            &resource("bad-env", 0, json!({"environment": "prod"})),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("environment"), "{err}");

    // An observer never becomes an owner: the transition rule refuses the update.
    let observer = resource(
        "observer",
        0,
        json!({"managementPolicy": "Observe", "integrationId": "dlz-e2e0000"}),
    );
    api.create(&PostParams::default(), &observer).await.unwrap();
    let err = api
        .patch(
            "observer",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"managementPolicy": "Manage"}})),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("an observer stays one"), "{err}");
    api.delete("observer", &Default::default()).await.unwrap();

    // Every ProviderIntegration of `examples/` passes the real server's schema and CEL rules (a
    // dry run: nothing is stored; the cloud operators' objects of the trust examples need their
    // CRDs, and are tried in `e2e_trust.rs`).
    let examples = common::cluster::provider_integrations_of_examples();
    let (ok, out) = kubectl(&["apply", "--dry-run=server", "-n", &ns, "-f", &examples]).await;
    assert!(ok, "examples/ rejected by the API server: {out}");

    // Create: Ready with ids, and `kubectl wait` agrees (conditions + observedGeneration).
    api.create(&PostParams::default(), &resource("orders", 1, json!({})))
        .await
        .unwrap();
    let (ok, out) = kubectl(&[
        "wait",
        "-n",
        &ns,
        "--for=condition=Ready",
        "providerintegration/orders",
        "--timeout=60s",
    ])
    .await;
    assert!(ok, "kubectl wait Ready failed: {out}");
    let pi = api.get("orders").await.unwrap();
    assert!(pi.is_ready());
    let st = pi.status.clone().unwrap();
    assert!(st.id.as_deref().unwrap().starts_with("dlz-"));
    assert!(st.external_id.is_some() && st.iam_role_arn.is_some());
    assert_eq!(st.observed_generation, pi.metadata.generation);
    assert!(pi.finalizers().contains(&FINALIZER.to_string()));
    let (ok, out) = kubectl(&[
        "get",
        "-n",
        &ns,
        "cpi",
        "orders",
        "-o",
        "jsonpath={.status.externalId}",
    ])
    .await;
    assert!(
        ok && out.trim() == st.external_id.as_deref().unwrap(),
        "short name and status: {out}"
    );

    // Immutable change: Stalled for the new generation; revert: Ready again.
    api.patch("orders", &PatchParams::default(), &Patch::Merge(json!({"spec": {"aws": {"customerIamRoleArn": "arn:aws:iam::123456789012:role/e2e-other"}}}))).await.unwrap();
    let (ok, out) = kubectl(&[
        "wait",
        "-n",
        &ns,
        "--for=condition=Stalled",
        "providerintegration/orders",
        "--timeout=60s",
    ])
    .await;
    assert!(ok, "kubectl wait Stalled failed: {out}");
    let pi = wait_for(&api, "orders", "stalled for the new generation", |p| {
        cond(p, STALLED, "ImmutableFieldChanged")
    })
    .await;
    assert_eq!(pi.condition("Ready").unwrap().status, "False");
    api.patch("orders", &PatchParams::default(), &Patch::Merge(json!({"spec": {"aws": {"customerIamRoleArn": "arn:aws:iam::123456789012:role/e2e-1"}}}))).await.unwrap();
    wait_for(&api, "orders", "Ready again", |p| p.is_ready()).await;

    // Deletion blocked by usages keeps the finalizer; detaching lets it finish.
    let id = st.id.clone().unwrap();
    let crn = "crn://confluent.cloud/organization=o/environment=env-e2e01/cloud-cluster=lkc-1/connector=sink";
    let r = http
        .put(format!(
            "{}/_emulator/integrations/{id}/usages",
            em.base_url
        ))
        .json(&json!([crn]))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    api.delete("orders", &DeleteParams::default())
        .await
        .unwrap();
    let pi = wait_for(&api, "orders", "DeletionBlocked", |p| {
        cond(p, RECONCILING, "DeletionBlocked")
    })
    .await;
    assert!(pi.condition("Ready").unwrap().message.contains(crn));
    assert!(pi.finalizers().contains(&FINALIZER.to_string()));
    let (ok, out) = kubectl(&[
        "get",
        "events.events.k8s.io",
        "-n",
        &ns,
        "--field-selector",
        "regarding.name=orders",
        "-o",
        "jsonpath={.items[*].reason}",
    ])
    .await;
    assert!(ok && out.contains("DeletionBlocked"), "events: {out}");
    http.put(format!(
        "{}/_emulator/integrations/{id}/usages",
        em.base_url
    ))
    .json(&json!([]))
    .send()
    .await
    .unwrap();
    wait_deleted(&ns, "providerintegration/orders").await;
    assert_eq!(em.state.len(), 0, "the integration was deleted");

    // Orphan keeps the integration.
    api.create(
        &PostParams::default(),
        &resource("kept", 2, json!({"deletionPolicy": "Orphan"})),
    )
    .await
    .unwrap();
    wait_for(&api, "kept", "Ready", |p| p.is_ready()).await;
    api.delete("kept", &DeleteParams::default()).await.unwrap();
    wait_deleted(&ns, "providerintegration/kept").await;
    assert_eq!(em.state.len(), 1, "orphaned integration stays");

    multicloud(&client, &ns, &api, &em.base_url, &http).await;

    operator.stop().await;
}

fn typed(name: &str, spec: Value) -> ProviderIntegration {
    serde_json::from_value(json!({"apiVersion": "pim.confluent.cloud/v1alpha1",
        "kind": "ProviderIntegration", "metadata": {"name": name}, "spec": spec}))
    .unwrap()
}

/// GCP and Azure: the schema's checks, Ready before validation, Validated after the grant, and
/// the outputs ConfigMap garbage collected with its resource.
async fn multicloud(
    client: &Client,
    ns: &str,
    api: &Api<ProviderIntegration>,
    emulator: &str,
    http: &reqwest::Client,
) {
    let base = |provider: &str, block: &str, value: Value| {
        let mut spec = json!({"environment": ENV, "provider": provider,
            "credentialsRef": {"name": "pim-creds"}});
        spec[block] = value;
        spec
    };
    for (name, spec, needle) in [
        (
            "bad-sa",
            base(
                "GCP",
                "gcp",
                json!({"customerGoogleServiceAccount": "alice@example.com"}),
            ),
            "customerGoogleServiceAccount",
        ),
        (
            "bad-tenant",
            base(
                "Azure",
                "azure",
                json!({"customerAzureTenantId": "tenant-1"}),
            ),
            "customerAzureTenantId",
        ),
        (
            "no-gcp",
            json!({"environment": ENV, "provider": "GCP", "credentialsRef": {"name": "pim-creds"}}),
            "provider GCP requires",
        ),
        (
            "two-blocks",
            {
                let mut s = base(
                    "GCP",
                    "gcp",
                    json!({"customerGoogleServiceAccount": "connectors@p-1.iam.gserviceaccount.com"}),
                );
                s["aws"] = json!({"customerIamRoleArn": "arn:aws:iam::123456789012:role/e2e-9"});
                s
            },
            "set only the block",
        ),
        (
            "observe-nothing",
            {
                let mut s = base(
                    "GCP",
                    "gcp",
                    json!({"customerGoogleServiceAccount": "connectors@p-1.iam.gserviceaccount.com"}),
                );
                s["managementPolicy"] = json!("Observe");
                s
            },
            "managementPolicy Observe needs",
        ),
    ] {
        let err = api
            .create(&PostParams::default(), &typed(name, spec))
            .await
            .expect_err(name)
            .to_string();
        assert!(err.contains(needle), "{name}: {err}");
    }

    let spec = {
        let mut s = base(
            "GCP",
            "gcp",
            json!({"customerGoogleServiceAccount": "connectors@p-1.iam.gserviceaccount.com"}),
        );
        s["writeOutputsTo"] = json!({"name": "gcs-outputs"});
        s
    };
    api.create(&PostParams::default(), &typed("gcs", spec))
        .await
        .unwrap();
    let (ok, out) = kubectl(&[
        "wait",
        "-n",
        ns,
        "--for=condition=Ready",
        "providerintegration/gcs",
        "--timeout=60s",
    ])
    .await;
    assert!(ok, "GCP Ready before any grant: {out}");
    let pi = api.get("gcs").await.unwrap();
    let st = pi.status.clone().unwrap();
    let id = st.id.clone().unwrap();
    assert!(st.google_service_account.is_some(), "{st:?}");
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm = cms.get("gcs-outputs").await.unwrap();
    assert_eq!(cm.data.as_ref().unwrap()["id"], id);
    assert!(
        cm.owner_references()
            .iter()
            .any(|o| o.uid == pi.uid().unwrap())
    );
    let r = http
        .put(format!("{emulator}/_emulator/integrations/{id}/access"))
        .json(&json!({"granted": true}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let (ok, out) = kubectl(&[
        "wait",
        "-n",
        ns,
        "--for=condition=Validated",
        "providerintegration/gcs",
        "--timeout=60s",
    ])
    .await;
    assert!(ok, "Validated after the grant: {out}");

    api.create(
        &PostParams::default(),
        &typed(
            "blob",
            base(
                "Azure",
                "azure",
                json!({"customerAzureTenantId": "7f3c2a9e-1b4d-4c8e-9a6f-2d5b8e1c0f47"}),
            ),
        ),
    )
    .await
    .unwrap();
    let pi = wait_for(api, "blob", "Ready", |p| p.is_ready()).await;
    assert!(pi.status.unwrap().confluent_multi_tenant_app_id.is_some());

    api.delete("gcs", &DeleteParams::default()).await.unwrap();
    api.delete("blob", &DeleteParams::default()).await.unwrap();
    wait_deleted(ns, "providerintegration/gcs").await;
    wait_deleted(ns, "providerintegration/blob").await;
    // Garbage collection is kube-controller-manager's job; a bare API server has none.
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), "kube-system");
    if leases
        .get_opt("kube-controller-manager")
        .await
        .ok()
        .flatten()
        .is_some()
    {
        let (ok, out) = kubectl(&[
            "wait",
            "-n",
            ns,
            "--for=delete",
            "configmap/gcs-outputs",
            "--timeout=60s",
        ])
        .await;
        assert!(
            ok,
            "the outputs ConfigMap is garbage collected with its resource: {out}"
        );
    } else {
        println!(
            "NOTE: no kube-controller-manager lease: garbage collection of the outputs ConfigMap not checked"
        );
    }
}
