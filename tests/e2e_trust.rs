//! The trust handshake (`spec.trust`) against a real Kubernetes API server: what the in-memory
//! one can only imitate is checked here on the real thing: discovery of the cloud operators'
//! CRDs, their schemas and pruning, server-side apply's field ownership and conflicts, owner
//! references, status subresources. Runs when `KUBECONFIG` points at a reachable cluster and the
//! cloud operators' CRDs are beside the checkout (`../shared/cloud-crds`); otherwise skipped with
//! a printed reason. Careful with a shared cluster as `e2e.rs` is: a fresh namespace, deleted at
//! the end; CRDs installed only where missing, and removed only by this test, only if nothing of
//! theirs is left. The Confluent side is the emulator on loopback; no cloud operator runs, so the
//! test writes their reports (status conditions) itself.

mod common;

use std::time::Duration;

use common::cluster::{
    Operator, clean_up, cluster, ensure_crd, kubectl, remove_crd, wait_deleted, wait_for,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams},
    core::{ApiResource, GroupVersionKind},
};
use pio::{
    controller::{Config, decide::trust::TrustKind},
    crd::{ProviderIntegration, STALLED, TRUSTED, VALIDATED},
};
use serde_json::{Value, json};

const ENV: &str = "env-e2e02";
const KINDS: [(TrustKind, &str); 2] = [
    (
        TrustKind::AckRole,
        "ack-iam/iam.services.k8s.aws_roles.yaml",
    ),
    (
        TrustKind::CrossplaneRole,
        "crossplane-aws/iam.aws.m.upbound.io_roles.yaml",
    ),
];

fn dynamic(client: &Client, kind: TrustKind, ns: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(kind.group(), kind.version(), kind.kind()),
        kind.plural(),
    );
    Api::namespaced_with(client.clone(), ns, &ar)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_against_a_real_api_server() {
    let client = match cluster().await {
        Ok(c) => c,
        Err(reason) => {
            println!("SKIPPED trust_against_a_real_api_server: {reason}");
            return;
        }
    };
    let Some(dir) = common::cloud_crds::dir() else {
        println!(
            "SKIPPED trust_against_a_real_api_server: the cloud operators' CRDs are not available"
        );
        return;
    };
    let mut installed = Vec::new();
    let ours = ensure_crd(&client, pio::crd::crd()).await;
    for (kind, file) in KINDS {
        let crd: CustomResourceDefinition =
            serde_saphyr::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
        if ensure_crd(&client, crd).await {
            installed.push(kind);
        }
    }
    let ns = common::cluster::namespace(&client, "pio-e2e-trust").await;

    let result = tokio::spawn(run(client.clone(), ns.clone())).await;

    // Clean up whatever happened: finalizers first, so the namespace cannot hang.
    clean_up(&client, &ns).await;
    let _ = kubectl(&[
        "wait",
        "--for=delete",
        &format!("namespace/{ns}"),
        "--timeout=120s",
    ])
    .await;
    for kind in installed {
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(kind.group(), kind.version(), kind.kind()),
            kind.plural(),
        );
        let all: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        let left = all
            .list(&ListParams::default())
            .await
            .map_or(1, |l| l.items.len());
        remove_crd(
            &client,
            &format!("{}.{}", kind.plural(), kind.group()),
            left,
        )
        .await;
    }
    if ours {
        let all: Api<ProviderIntegration> = Api::all(client.clone());
        let left = all
            .list(&ListParams::default())
            .await
            .map_or(1, |l| l.items.len());
        remove_crd(&client, "providerintegrations.pim.confluent.cloud", left).await;
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn resource(
    name: &str,
    role: &str,
    kind: TrustKind,
    target: &str,
    mode: &str,
) -> ProviderIntegration {
    serde_json::from_value(json!({"apiVersion": "pim.confluent.cloud/v1alpha1",
        "kind": "ProviderIntegration", "metadata": {"name": name},
        "spec": {"environment": ENV, "provider": "AWS",
            "aws": {"customerIamRoleArn": format!("arn:aws:iam::123456789012:role/{role}")},
            "credentialsRef": {"name": "pim-creds"},
            "trust": {"targetRef": {"apiVersion": kind.api_version(), "kind": "Role", "name": target},
                "mode": mode}}}))
    .unwrap()
}

fn condition(pi: &ProviderIntegration, ty: &str) -> Option<(String, String)> {
    pi.condition(ty)
        .filter(|c| c.observed_generation == pi.metadata.generation)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

fn statements(object: &DynamicObject, kind: TrustKind) -> Vec<Value> {
    let v = serde_json::to_value(object).unwrap();
    let doc: Value =
        serde_json::from_str(v.pointer(kind.field()).unwrap().as_str().unwrap()).unwrap();
    doc["Statement"].as_array().cloned().unwrap_or_default()
}

async fn run(client: Client, ns: String) {
    let config = Config {
        retry_base: Duration::from_millis(200),
        stall_retry: Duration::from_secs(1),
        ..Default::default()
    };
    let operator = Operator::start(&client, &ns, config).await;
    let em = &operator.em;
    let http = reqwest::Client::new();
    let api: Api<ProviderIntegration> = Api::namespaced(client.clone(), &ns);

    // Owned: an ACK Role, created with an owner reference and exactly the trust.
    let ack = TrustKind::AckRole;
    api.create(
        &PostParams::default(),
        &resource("owned", "e2e-owned", ack, "owned-trust", "Own"),
    )
    .await
    .unwrap();
    let pi = wait_for(&api, "owned", "waiting for ACK", |p| {
        p.is_ready()
            && condition(p, TRUSTED) == Some(("Unknown".into(), "AwaitingCloudOperator".into()))
    })
    .await;
    let st = pi.status.clone().unwrap();
    let id = st.id.clone().unwrap();
    let roles = dynamic(&client, ack, &ns);
    let role = roles.get("owned-trust").await.unwrap();
    assert_eq!(
        role.metadata.owner_references.as_ref().unwrap()[0].uid,
        pi.uid().unwrap()
    );
    let sid = pio::controller::decide::trust::aws::sid(&id);
    let s = statements(&role, ack);
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!(s[0]["Sid"], sid.as_str());
    assert_eq!(
        s[0]["Principal"]["AWS"],
        st.iam_role_arn.clone().unwrap().as_str()
    );
    assert_eq!(
        s[0]["Condition"]["StringEquals"]["sts:ExternalId"],
        st.external_id.clone().unwrap().as_str()
    );
    assert_eq!(s[1]["Action"], "sts:TagSession");
    // ACK reports it synced (through the status subresource, as ACK writes it), the customer's
    // side works: Trusted, then Validated.
    let code = http
        .put(format!(
            "{}/_emulator/integrations/{id}/access",
            em.base_url
        ))
        .json(&json!({"granted": true}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(code, 204);
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    roles
        .patch_status(
            "owned-trust",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"conditions": [{"type": "ACK.ResourceSynced",
                "status": "True", "lastTransitionTime": now, "message": "synced"}]}}),
            ),
        )
        .await
        .unwrap();
    let pi = wait_for(&api, "owned", "validated", |p| {
        condition(p, VALIDATED).is_some_and(|c| c.0 == "True")
    })
    .await;
    assert_eq!(condition(&pi, TRUSTED).unwrap().0, "True");
    // Another manager takes the document by a forced server-side apply: not fought over.
    let theirs = json!({"apiVersion": ack.api_version(), "kind": "Role",
        "metadata": {"name": "owned-trust"},
        "spec": {"name": "e2e-owned", "assumeRolePolicyDocument": "{\"Version\":\"2012-10-17\",\"Statement\":[]}"}});
    roles
        .patch(
            "owned-trust",
            &PatchParams::apply("flux").force(),
            &Patch::Apply(&theirs),
        )
        .await
        .unwrap();
    let pi = wait_for(&api, "owned", "TrustFieldOwned", |p| {
        p.condition(STALLED)
            .is_some_and(|c| c.status == "True" && c.reason == "TrustFieldOwned")
    })
    .await;
    assert!(pi.condition(STALLED).unwrap().message.contains("flux"));
    // Deleted with the integration.
    api.delete("owned", &DeleteParams::default()).await.unwrap();
    wait_deleted(&ns, "providerintegration/owned").await;
    assert!(
        roles.get_opt("owned-trust").await.unwrap().is_none(),
        "the owned role goes with it"
    );

    // Shared: a team's Crossplane Role, written by its own manager; the statements go in and
    // out again, the team's statement and fields stay.
    let xp = TrustKind::CrossplaneRole;
    let team_doc = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Glue", "Effect": "Allow",
        "Principal": {"Service": "glue.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    let team: DynamicObject = serde_json::from_value(json!({"apiVersion": xp.api_version(), "kind": "Role",
        "metadata": {"name": "team-role", "labels": {"team": "payments"}},
        "spec": {"forProvider": {"maxSessionDuration": 7200, "assumeRolePolicy": team_doc.to_string()}}}))
    .unwrap();
    let team_roles = dynamic(&client, xp, &ns);
    let pp = PostParams {
        field_manager: Some("kubectl-edit".into()),
        ..Default::default()
    };
    team_roles.create(&pp, &team).await.unwrap();
    api.create(
        &PostParams::default(),
        &resource("shared", "team-role", xp, "team-role", "Share"),
    )
    .await
    .unwrap();
    wait_for(&api, "shared", "written", |p| {
        condition(p, TRUSTED).is_some_and(|c| c.1 == "AwaitingCloudOperator")
    })
    .await;
    let role = team_roles.get("team-role").await.unwrap();
    let s = statements(&role, xp);
    assert_eq!(s.len(), 3, "{s:?}");
    assert_eq!(s[0], team_doc["Statement"][0]);
    api.delete("shared", &DeleteParams::default())
        .await
        .unwrap();
    wait_deleted(&ns, "providerintegration/shared").await;
    let role = team_roles.get("team-role").await.unwrap();
    assert_eq!(
        statements(&role, xp),
        team_doc["Statement"].as_array().unwrap().clone()
    );
    assert_eq!(
        role.labels().get("team").map(String::as_str),
        Some("payments")
    );

    // A document a GitOps tool applies is left alone, and the resource says who applies it.
    let gitops = json!({"apiVersion": xp.api_version(), "kind": "Role",
        "metadata": {"name": "gitops-role"},
        "spec": {"forProvider": {"assumeRolePolicy": team_doc.to_string()}}});
    team_roles
        .patch(
            "gitops-role",
            &PatchParams::apply("argocd-controller"),
            &Patch::Apply(&gitops),
        )
        .await
        .unwrap();
    api.create(
        &PostParams::default(),
        &resource("gitops", "gitops-role", xp, "gitops-role", "Share"),
    )
    .await
    .unwrap();
    let pi = wait_for(&api, "gitops", "TrustFieldOwned", |p| {
        p.condition(STALLED)
            .is_some_and(|c| c.status == "True" && c.reason == "TrustFieldOwned")
    })
    .await;
    assert!(
        pi.condition(STALLED)
            .unwrap()
            .message
            .contains("argocd-controller")
    );
    let role = team_roles.get("gitops-role").await.unwrap();
    assert_eq!(statements(&role, xp).len(), 1, "not written");

    // The trust examples' cloud objects pass the real server (their CRDs are installed now).
    let examples = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/trust-aws-crossplane-role-shared.yaml"
    );
    let (ok, out) = kubectl(&["apply", "--dry-run=server", "-n", &ns, "-f", examples]).await;
    assert!(ok, "rejected by the API server: {out}");

    operator.stop().await;
}
