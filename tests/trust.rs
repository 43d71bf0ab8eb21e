//! Issue 30, closing the trust handshake: the operator writes the cloud side of the trust into
//! the objects of the cloud operators teams run (ACK, Crossplane, Config Connector). The fake API
//! server installs their published CRDs (`../shared/cloud-crds/`, read in place; skipped with a
//! line where absent, a failure under `CI=true`), so every object the operator writes is pruned
//! and validated as a real server would, and their immutable fields are enforced.
//!
//! For each kind and both ways (`Own`, `Share`): the exact object written, the update after a
//! recreate, the removal on delete (only its own statement when shared), and the team's own
//! fields left untouched.

mod common;

use common::*;
use kube::{
    Api,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    core::{ApiResource, GroupVersionKind},
};
use pio::controller::decide::trust::{TrustKind, aws};
use pio::crd::{READY, STALLED, TRUSTED, VALIDATED};
use serde_json::{Value, json};

const TEAM: &str = "kubectl-edit";

/// Installs the published CRDs of `kinds` in the harness's API server; `false` (said as
/// `SKIPPED <test>`, which `.ci/run` counts) where the cloud CRDs are absent.
fn install(h: &Harness, kinds: &[TrustKind], test: &str) -> bool {
    let Some(dir) = common::cloud_crds::dir() else {
        println!("SKIPPED {test}: the cloud operators' CRDs are not available");
        return false;
    };
    for k in kinds {
        let text = std::fs::read_to_string(dir.join(common::cloud_crds::file_of(*k))).unwrap();
        let crd: Value = serde_saphyr::from_str(&text).unwrap();
        h.fake.install_crd(&crd);
    }
    true
}

fn api(h: &Harness, kind: TrustKind, ns: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(kind.group(), kind.version(), kind.kind()),
        kind.plural(),
    );
    if kind.namespaced() {
        Api::namespaced_with(h.client.clone(), ns, &ar)
    } else {
        Api::all_with(h.client.clone(), &ar)
    }
}

/// The object as the API server stores it.
fn stored(h: &Harness, kind: TrustKind, name: &str) -> Option<Value> {
    let ns = if kind.namespaced() { NS } else { "" };
    h.fake
        .get(&format!("{}.{}", kind.plural(), kind.group()), ns, name)
}

fn target(kind: TrustKind, name: &str, mode: &str) -> Value {
    json!({"targetRef": {"apiVersion": kind.api_version(), "kind": kind.kind(), "name": name},
        "mode": mode})
}

fn spec(kind: TrustKind, name: &str, mode: &str, role: usize) -> Value {
    let mut s = match kind.provider() {
        pio::crd::CloudProvider::Aws => aws_spec(role),
        pio::crd::CloudProvider::Gcp => gcp_spec(),
        pio::crd::CloudProvider::Azure => azure_spec(),
    };
    s["updatePolicy"] = "Recreate".into();
    s["trust"] = target(kind, name, mode);
    s
}

/// The cloud operator reports on `name`: the conditions each one writes, for the object's
/// current generation.
async fn report(h: &Harness, kind: TrustKind, name: &str, ok: bool) {
    let object = stored(h, kind, name).expect("the object");
    let generation = object["metadata"]["generation"].as_i64().unwrap_or(1);
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let s = if ok { "True" } else { "False" };
    let c = |ty: &str| {
        json!({"type": ty, "status": s, "reason": if ok { "Available" } else { "ReconcileError" },
            "message": if ok { "" } else { "AccessDenied: not authorized" },
            "lastTransitionTime": now, "observedGeneration": generation})
    };
    let status = match kind {
        TrustKind::AckRole => json!({"conditions": [
            {"type": "ACK.ResourceSynced", "status": s, "lastTransitionTime": now,
             "message": if ok { "Resource synced successfully" } else { "" }},
        ]}),
        TrustKind::PolicyMember => json!({"observedGeneration": generation,
            "conditions": [{"type": "Ready", "status": s,
                "reason": if ok { "UpToDate" } else { "UpdateFailed" },
                "message": if ok { "The resource is up to date" } else { "Permission denied" },
                "lastTransitionTime": now}]}),
        _ => json!({"conditions": [c("Ready"), c("Synced")]}),
    };
    api(h, kind, NS)
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
        .unwrap();
}

/// The team edits its own fields of the object (`kubectl edit`): a merge patch under its own
/// field manager.
async fn team_edit(h: &Harness, kind: TrustKind, name: &str, patch: Value) {
    let pp = PatchParams {
        field_manager: Some(TEAM.into()),
        ..Default::default()
    };
    api(h, kind, NS)
        .patch(name, &pp, &Patch::Merge(&patch))
        .await
        .unwrap();
}

fn trusted(pi: &pio::crd::ProviderIntegration) -> (String, String) {
    let c = pi.condition(TRUSTED).expect("a Trusted condition");
    (c.status.clone(), c.reason.clone())
}

/// The role statements the operator must write for the integration recorded in `pi`:
/// `sts:AssumeRole` by Confluent's role with the external id, and `sts:TagSession`.
fn statements_of(pi: &pio::crd::ProviderIntegration) -> Vec<Value> {
    let st = pi.status.as_ref().unwrap();
    let (role, ext) = (
        st.iam_role_arn.clone().unwrap(),
        st.external_id.clone().unwrap(),
    );
    let sid = aws::sid(st.id.as_deref().unwrap());
    // Spelled out here, not built by the code under test.
    vec![
        json!({"Sid": sid, "Effect": "Allow", "Principal": {"AWS": role},
            "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"sts:ExternalId": ext}}}),
        json!({"Sid": format!("{sid}Tags"), "Effect": "Allow", "Principal": {"AWS": role},
            "Action": "sts:TagSession"}),
    ]
}

fn document(object: &Value, kind: TrustKind) -> Value {
    serde_json::from_str(object.pointer(kind.field()).unwrap().as_str().unwrap()).unwrap()
}

/// Recreates `name` (a new display name, so a new integration) and waits until its trust is
/// written for the new integration.
async fn recreated(
    h: &Harness,
    name: &str,
    before: &pio::crd::ProviderIntegration,
) -> pio::crd::ProviderIntegration {
    let old = before.status.as_ref().and_then(|s| s.id.clone());
    h.patch_spec(name, json!({"displayName": format!("{name}-renamed")}))
        .await;
    h.wait(name, "recreated and written", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.trust.as_ref())
            .is_some_and(|t| Some(&t.integration_id) != old.as_ref())
            && p.is_ready()
    })
    .await
}

/// Owning a role, for each of the three role kinds: the exact object, the cloud operator's
/// report carried to `Trusted` and then `Validated`, the team's fields kept, a recreate's new
/// external id written, and the object deleted with the integration.
#[tokio::test]
async fn an_owned_role_is_written_exactly_kept_in_sync_and_deleted_with_the_integration() {
    let h = Harness::new().await;
    let kinds = [
        TrustKind::AckRole,
        TrustKind::CrossplaneRole,
        TrustKind::CrossplaneClusterRole,
    ];
    if !install(&h, &kinds, "an_owned_role_is_written_exactly") {
        return;
    }
    // The cluster-scoped kind only where the platform granted it.
    h.namespace(NS, json!({})).await;
    for (n, kind) in kinds.into_iter().enumerate() {
        let name = format!("role-{n}");
        let object_name = format!("s3-trust-{n}");
        let pi = h.create(&name, spec(kind, &object_name, "Own", n)).await;
        let uid = pi.metadata.uid.clone().unwrap();
        if !kind.namespaced() {
            let pi = h.wait_status(&name, STALLED, "True").await;
            let c = pi.condition(STALLED).unwrap();
            assert_eq!(c.reason, "TrustNotGranted");
            assert!(
                c.message.contains("pim.confluent.cloud/cluster-trust"),
                "{}",
                c.message
            );
            assert!(stored(&h, kind, &object_name).is_none());
            let ns_api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(h.client.clone());
            ns_api
                .patch(
                    NS,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"annotations": {
                        "pim.confluent.cloud/cluster-trust": format!("Role/{object_name}")}}})),
                )
                .await
                .unwrap();
        }
        let pi = h.wait_status(&name, TRUSTED, "Unknown").await;
        assert!(
            pi.is_ready(),
            "{kind:?}: Ready does not wait for the cloud operator"
        );
        assert_eq!(trusted(&pi).1, "AwaitingCloudOperator");
        let v = pi.condition(VALIDATED).unwrap();
        assert_eq!(
            (v.status.as_str(), v.reason.as_str()),
            ("Unknown", "AwaitingTrust")
        );
        let id = pi.status.as_ref().unwrap().id.clone().unwrap();

        // Exactly this object.
        let object = stored(&h, kind, &object_name).expect("the role object");
        let want_doc = json!({"Version": "2012-10-17", "Statement": statements_of(&pi)});
        assert_eq!(document(&object, kind), want_doc, "{kind:?}");
        match kind {
            TrustKind::AckRole => {
                assert_eq!(object["spec"]["name"], format!("connector-role-{n}"));
                assert_eq!(object["spec"].as_object().unwrap().len(), 2, "{object:#}");
            }
            _ => {
                assert_eq!(
                    object["metadata"]["annotations"]["crossplane.io/external-name"],
                    format!("connector-role-{n}")
                );
                assert_eq!(object["spec"]["forProvider"].as_object().unwrap().len(), 1);
            }
        }
        if kind.namespaced() {
            let owners = object["metadata"]["ownerReferences"].as_array().unwrap();
            assert_eq!(owners.len(), 1);
            assert_eq!(owners[0]["uid"], uid.as_str());
            assert_eq!(owners[0]["kind"], "ProviderIntegration");
            assert_eq!(owners[0]["controller"], true);
        } else {
            assert_eq!(
                object["metadata"]["labels"]["pim.confluent.cloud/owner-uid"],
                uid.as_str()
            );
            assert!(object["metadata"].get("ownerReferences").is_none());
        }

        // The team's own fields of the role are theirs.
        let team_fields = match kind {
            TrustKind::AckRole => json!({"spec": {"maxSessionDuration": 7200}}),
            _ => json!({"spec": {"forProvider": {"maxSessionDuration": 7200}}}),
        };
        let mut edit = team_fields.clone();
        edit["metadata"] = json!({"labels": {"team": "payments"}});
        team_edit(&h, kind, &object_name, edit).await;

        // The cloud operator syncs it; the customer's side now works: Trusted, then Validated.
        h.grant_access(&id, true).await;
        report(&h, kind, &object_name, true).await;
        let pi = h.wait_status(&name, VALIDATED, "True").await;
        assert_eq!(trusted(&pi), ("True".into(), "TrustSynced".into()));

        // A recreate (new id, new external id): the document follows, the team's fields stay.
        h.patch_spec(&name, json!({"displayName": format!("renamed-{n}")}))
            .await;
        let pi = h
            .wait(&name, "a new integration", |p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.id.as_deref())
                    .is_some_and(|i| i != id)
                    && p.is_ready()
            })
            .await;
        let object = stored(&h, kind, &object_name).unwrap();
        assert_eq!(
            document(&object, kind),
            json!({"Version": "2012-10-17", "Statement": statements_of(&pi)}),
            "{kind:?}: the new external id"
        );
        assert_eq!(object["metadata"]["labels"]["team"], "payments");
        let kept = match kind {
            TrustKind::AckRole => &object["spec"]["maxSessionDuration"],
            _ => &object["spec"]["forProvider"]["maxSessionDuration"],
        };
        assert_eq!(kept, 7200, "{kind:?}: the team's field");

        // Deleted with the integration.
        h.delete(&name).await;
        h.wait_gone(&name).await;
        assert!(stored(&h, kind, &object_name).is_none(), "{kind:?}");
    }
    assert!(h.remote().await.is_empty(), "every integration deleted");
    assert_eq!(
        h.fake.pruned(),
        Vec::<String>::new(),
        "nothing written was pruned"
    );
}

/// Sharing a team's role, for each of the three role kinds: two integrations add one statement
/// each to the team's document, a recreate swaps only its own, a deletion takes only its own,
/// and the team's statement and fields stay as they were.
#[tokio::test]
async fn a_shared_role_gets_one_statement_per_integration_and_loses_only_its_own() {
    let h = Harness::new().await;
    let kinds = [
        TrustKind::AckRole,
        TrustKind::CrossplaneRole,
        TrustKind::CrossplaneClusterRole,
    ];
    if !install(
        &h,
        &kinds,
        "a_shared_role_gets_one_statement_per_integration",
    ) {
        return;
    }
    h.namespace(NS, json!({"pim.confluent.cloud/cluster-trust": "Role/*"}))
        .await;
    let team_statement = json!({"Sid": "Ec2", "Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"});
    let team_doc =
        json!({"Version": "2012-10-17", "Id": "team", "Statement": [team_statement]}).to_string();
    for (n, kind) in kinds.into_iter().enumerate() {
        let role = format!("shared-{n}");
        let mut team_object = json!({"apiVersion": kind.api_version(), "kind": "Role",
            "metadata": {"name": role, "labels": {"team": "payments"}}});
        if kind.namespaced() {
            team_object["metadata"]["namespace"] = NS.into();
        }
        match kind {
            TrustKind::AckRole => {
                team_object["spec"] = json!({"name": "s3-sink", "maxSessionDuration": 7200,
                    "assumeRolePolicyDocument": team_doc});
            }
            _ => {
                team_object["spec"] = json!({"forProvider": {"maxSessionDuration": 7200,
                    "assumeRolePolicy": team_doc}});
            }
        }
        let team_object: DynamicObject = serde_json::from_value(team_object).unwrap();
        let pp = PostParams {
            field_manager: Some(TEAM.into()),
            ..Default::default()
        };
        api(&h, kind, NS).create(&pp, &team_object).await.unwrap();

        let (a, b) = (format!("a-{n}"), format!("b-{n}"));
        h.create(&a, spec(kind, &role, "Share", 10 + 2 * n)).await;
        h.create(&b, spec(kind, &role, "Share", 11 + 2 * n)).await;
        let pa = h.wait_status(&a, TRUSTED, "Unknown").await;
        let pb = h.wait_status(&b, TRUSTED, "Unknown").await;
        let doc = document(&stored(&h, kind, &role).unwrap(), kind);
        let statements = doc["Statement"].as_array().unwrap();
        assert_eq!(doc["Id"], "team");
        assert_eq!(statements.len(), 5, "{doc:#}");
        assert_eq!(statements[0], team_statement);
        for s in [statements_of(&pa), statements_of(&pb)].concat() {
            assert!(statements.contains(&s), "{s} in {doc:#}");
        }

        // a is recreated: its statement is replaced, b's and the team's stay.
        let old_a = statements_of(&pa);
        let pa2 = recreated(&h, &a, &pa).await;
        let doc = document(&stored(&h, kind, &role).unwrap(), kind);
        let statements = doc["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 5, "{doc:#}");
        assert!(old_a.iter().all(|s| !statements.contains(s)));
        for s in [statements_of(&pa2), statements_of(&pb)].concat() {
            assert!(statements.contains(&s), "{s} in {doc:#}");
        }

        // b goes: only its statement goes; the object and the team's fields stay.
        h.delete(&b).await;
        h.wait_gone(&b).await;
        let object = stored(&h, kind, &role).expect("the team's object stays");
        let doc = document(&object, kind);
        assert_eq!(
            doc["Statement"],
            json!([vec![team_statement.clone()], statements_of(&pa2)].concat())
        );
        assert_eq!(object["metadata"]["labels"]["team"], "payments");
        let kept = match kind {
            TrustKind::AckRole => &object["spec"]["maxSessionDuration"],
            _ => &object["spec"]["forProvider"]["maxSessionDuration"],
        };
        assert_eq!(kept, 7200);
        h.delete(&a).await;
        h.wait_gone(&a).await;
        let doc = document(&stored(&h, kind, &role).unwrap(), kind);
        assert_eq!(
            doc,
            serde_json::from_str::<Value>(&team_doc).unwrap(),
            "{kind:?}: back to the team's own"
        );
    }
    assert_eq!(h.fake.pruned(), Vec::<String>::new());
}

/// A shared document that a GitOps tool applies (server-side apply) would lose the statement at
/// its next sync: the operator does not write it, and says who applies it.
#[tokio::test]
async fn a_document_applied_by_another_manager_is_left_alone_and_said() {
    let h = Harness::new().await;
    let kind = TrustKind::AckRole;
    if !install(&h, &[kind], "a_document_applied_by_another_manager") {
        return;
    }
    let object = json!({"apiVersion": kind.api_version(), "kind": "Role",
        "metadata": {"name": "gitops", "namespace": NS},
        "spec": {"name": "s3-sink", "assumeRolePolicyDocument": "{\"Version\":\"2012-10-17\",\"Statement\":[]}"}});
    api(&h, kind, NS)
        .patch(
            "gitops",
            &PatchParams::apply("argocd-controller"),
            &Patch::Apply(&object),
        )
        .await
        .unwrap();
    let before = stored(&h, kind, "gitops").unwrap();
    h.create("s", spec(kind, "gitops", "Share", 1)).await;
    let pi = h.wait_status("s", STALLED, "True").await;
    let c = pi.condition(STALLED).unwrap();
    assert_eq!(c.reason, "TrustFieldOwned");
    assert!(c.message.contains("argocd-controller"), "{}", c.message);
    assert!(
        pi.status.as_ref().unwrap().id.is_some(),
        "the integration's values stay in status"
    );
    assert_eq!(stored(&h, kind, "gitops").unwrap(), before, "not written");

    // Owning it instead: the apply would take a field Argo CD owns; a conflict, said.
    h.patch_spec("s", json!({"trust": target(kind, "gitops", "Own")}))
        .await;
    let pi = h
        .wait("s", "not owned", |p| {
            p.condition(STALLED)
                .is_some_and(|c| c.reason == "TrustTargetNotOwned")
        })
        .await;
    assert!(
        pi.condition(STALLED)
            .unwrap()
            .message
            .contains("mode: Share")
    );
    assert_eq!(
        stored(&h, kind, "gitops").unwrap(),
        before,
        "still not written"
    );
}

/// GCP: the IAMPolicyMember the operator owns binds Confluent's service account to the
/// customer's with the token creator role; a recreate gives a new member, which Config
/// Connector makes immutable, so the object is replaced (a patch would be refused); deleted
/// with the integration.
#[tokio::test]
async fn a_policy_member_binds_confluents_account_and_is_replaced_on_recreate() {
    let h = Harness::new().await;
    let kind = TrustKind::PolicyMember;
    if !install(&h, &[kind], "a_policy_member_binds_confluents_account") {
        return;
    }
    h.create("gcs", spec(kind, "confluent-impersonation", "Own", 0))
        .await;
    let pi = h.wait_status("gcs", TRUSTED, "Unknown").await;
    let st = pi.status.clone().unwrap();
    let gsa = st.google_service_account.clone().unwrap();
    let object = stored(&h, kind, "confluent-impersonation").unwrap();
    assert_eq!(
        object["spec"],
        json!({"member": format!("serviceAccount:{gsa}"),
            "role": "roles/iam.serviceAccountTokenCreator",
            "resourceRef": {"kind": "IAMServiceAccount",
                "external": format!("projects/my-project/serviceAccounts/{GCP_SA}")}})
    );
    assert_eq!(
        object["metadata"]["ownerReferences"][0]["uid"],
        pi.metadata.uid.clone().unwrap().as_str()
    );
    // The server enforces the CRD's immutability, as a real one does.
    let refused = api(&h, kind, NS)
        .patch(
            "confluent-impersonation",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"member": "serviceAccount:x@y.iam.gserviceaccount.com"}}),
            ),
        )
        .await;
    assert!(matches!(refused, Err(kube::Error::Api(e)) if e.code == 422));
    h.grant_access(st.id.as_deref().unwrap(), true).await;
    report(&h, kind, "confluent-impersonation", true).await;
    let pi = h.wait_status("gcs", VALIDATED, "True").await;
    assert_eq!(trusted(&pi).0, "True");

    h.patch_spec("gcs", json!({"displayName": "gcs-renamed"}))
        .await;
    let pi = h
        .wait("gcs", "recreated with a new member", |p| {
            let s = p.status.as_ref();
            s.and_then(|s| s.google_service_account.as_ref())
                .is_some_and(|g| *g != gsa)
                && p.condition(TRUSTED)
                    .is_some_and(|c| c.reason == "AwaitingCloudOperator")
                && s.and_then(|s| s.trust.as_ref())
                    .is_some_and(|t| Some(&t.integration_id) == s.and_then(|s| s.id.as_ref()))
        })
        .await;
    let new_gsa = pi
        .status
        .as_ref()
        .unwrap()
        .google_service_account
        .clone()
        .unwrap();
    let member = format!("serviceAccount:{new_gsa}");
    eventually(
        std::time::Duration::from_secs(10),
        "the object replaced with the new member",
        || stored(&h, kind, "confluent-impersonation"),
        |o| {
            o.as_ref()
                .is_some_and(|o| o["spec"]["member"] == member.as_str())
        },
    )
    .await;
    h.delete("gcs").await;
    h.wait_gone("gcs").await;
    assert!(stored(&h, kind, "confluent-impersonation").is_none());
    assert_eq!(h.fake.pruned(), Vec::<String>::new());
}

/// Azure, both Principal kinds, both ways: owned, the service principal of Confluent's app
/// (taking over the one admin consent may have made); shared, the team's principal gets the
/// client id once and one mark per integration, and loses only its mark.
#[tokio::test]
async fn a_principal_is_owned_or_shared_for_confluents_app() {
    let h = Harness::new().await;
    let kinds = [
        TrustKind::CrossplanePrincipal,
        TrustKind::CrossplaneClusterPrincipal,
    ];
    if !install(&h, &kinds, "a_principal_is_owned_or_shared") {
        return;
    }
    h.namespace(
        NS,
        json!({"pim.confluent.cloud/cluster-trust": "Principal/*"}),
    )
    .await;
    for (n, kind) in kinds.into_iter().enumerate() {
        // Owned.
        let owned = format!("owned-{n}");
        h.create(&owned, spec(kind, &format!("confluent-sp-{n}"), "Own", 0))
            .await;
        let pi = h.wait_status(&owned, TRUSTED, "Unknown").await;
        let app = pi
            .status
            .as_ref()
            .unwrap()
            .confluent_multi_tenant_app_id
            .clone()
            .unwrap();
        let object = stored(&h, kind, &format!("confluent-sp-{n}")).unwrap();
        assert_eq!(
            object["spec"],
            json!({"forProvider": {"clientId": app, "useExisting": true}})
        );
        report(&h, kind, &format!("confluent-sp-{n}"), false).await;
        let pi = h.wait_status(&owned, TRUSTED, "False").await;
        let c = pi.condition(TRUSTED).unwrap();
        assert_eq!(c.reason, "TrustFailing");
        assert!(
            c.message.contains("AccessDenied"),
            "the cloud operator's words: {}",
            c.message
        );
        h.delete(&owned).await;
        h.wait_gone(&owned).await;
        assert!(stored(&h, kind, &format!("confluent-sp-{n}")).is_none());

        // Shared: the team's principal, with its own fields.
        let team = format!("team-sp-{n}");
        let mut obj = json!({"apiVersion": kind.api_version(), "kind": "Principal",
            "metadata": {"name": team, "labels": {"team": "payments"}},
            "spec": {"forProvider": {"notes": "the team's", "appRoleAssignmentRequired": true}}});
        if kind.namespaced() {
            obj["metadata"]["namespace"] = NS.into();
        }
        let obj: DynamicObject = serde_json::from_value(obj).unwrap();
        api(&h, kind, NS)
            .create(&PostParams::default(), &obj)
            .await
            .unwrap();
        let (a, b) = (format!("pa-{n}"), format!("pb-{n}"));
        h.create(&a, spec(kind, &team, "Share", 0)).await;
        h.create(&b, spec(kind, &team, "Share", 0)).await;
        let pa = h.wait_status(&a, TRUSTED, "Unknown").await;
        let pb = h.wait_status(&b, TRUSTED, "Unknown").await;
        let mark = |p: &pio::crd::ProviderIntegration| {
            format!(
                "trust.pim.confluent.cloud/{}",
                p.status.as_ref().unwrap().id.clone().unwrap()
            )
        };
        let object = stored(&h, kind, &team).unwrap();
        assert_eq!(
            object["spec"]["forProvider"],
            json!({"notes": "the team's",
            "appRoleAssignmentRequired": true, "clientId": app})
        );
        assert_eq!(
            object["metadata"]["annotations"][mark(&pa)],
            format!("{NS}/{a}")
        );
        assert_eq!(
            object["metadata"]["annotations"][mark(&pb)],
            format!("{NS}/{b}")
        );
        // a recreated: its mark moves to the new id.
        let pa2 = recreated(&h, &a, &pa).await;
        let annotations = stored(&h, kind, &team).unwrap()["metadata"]["annotations"].clone();
        assert!(annotations.get(mark(&pa)).is_none() && annotations.get(mark(&pa2)).is_some());
        h.delete(&b).await;
        h.wait_gone(&b).await;
        let object = stored(&h, kind, &team).unwrap();
        assert!(object["metadata"]["annotations"].get(mark(&pb)).is_none());
        assert!(object["metadata"]["annotations"].get(mark(&pa2)).is_some());
        assert_eq!(object["metadata"]["labels"]["team"], "payments");
        assert_eq!(object["spec"]["forProvider"]["notes"], "the team's");
        h.delete(&a).await;
        h.wait_gone(&a).await;
        assert!(stored(&h, kind, &team).is_some(), "the team's object stays");
    }
    assert_eq!(h.fake.pruned(), Vec::<String>::new());
}

/// What a human must do is said: a CRD not installed, RBAC not granted, a team's object
/// missing; `deletionPolicy: Orphan` keeps an owned object (no longer owned, so garbage
/// collection leaves it).
#[tokio::test]
async fn missing_crds_rbac_and_objects_stall_with_what_to_do_and_orphans_are_disowned() {
    let h = Harness::new().await;
    let kind = TrustKind::AckRole;
    // Not installed yet.
    h.create("r", spec(kind, "role", "Own", 1)).await;
    let pi = h
        .wait("r", "TrustKindNotInstalled", |p| {
            p.condition(STALLED)
                .is_some_and(|c| c.reason == "TrustKindNotInstalled")
        })
        .await;
    let m = &pi.condition(STALLED).unwrap().message;
    assert!(
        m.contains("roles.iam.services.k8s.aws") && m.contains("ACK IAM controller"),
        "{m}"
    );
    assert!(!pi.is_ready());
    if !install(&h, &[kind], "missing_crds_rbac_and_objects_stall") {
        return;
    }
    // Installed, but not granted.
    h.fake
        .fail_next(axum::http::Method::GET, "/roles/", 50, 403);
    h.patch_spec("r", json!({"deletionPolicy": "Orphan"})).await;
    let pi = h
        .wait("r", "TrustForbidden", |p| {
            p.condition(STALLED)
                .is_some_and(|c| c.reason == "TrustForbidden")
        })
        .await;
    assert!(
        pi.condition(STALLED)
            .unwrap()
            .message
            .contains("trust.ackRole")
    );
    h.fake.clear_faults();
    let pi = h.wait_status("r", TRUSTED, "Unknown").await;
    assert!(pi.is_ready());
    let uid = pi.metadata.uid.clone().unwrap();
    // Orphan: the integration and the role stay, no longer owned by the resource.
    h.delete("r").await;
    h.wait_gone("r").await;
    let object = stored(&h, kind, "role").expect("kept");
    let owners = object["metadata"]["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        owners.iter().all(|o| o["uid"] != uid.as_str()),
        "{owners:?}"
    );
    assert_eq!(h.remote().await.len(), 1);

    // Sharing an object that does not exist.
    h.create("s", spec(kind, "nobody-made-it", "Share", 2))
        .await;
    let pi = h
        .wait("s", "TrustTargetNotFound", |p| {
            p.condition(STALLED)
                .is_some_and(|c| c.reason == "TrustTargetNotFound")
        })
        .await;
    assert!(pi.condition(STALLED).unwrap().message.contains("mode: Own"));
    assert!(pi.condition(READY).is_some_and(|c| c.status == "False"));
}

/// An owned object whose trust field another manager takes over (a server-side apply with
/// force, e.g. a GitOps tool syncing a manifest of the same role) is not fought over: the
/// operator's apply conflicts, and the resource says who took it.
#[tokio::test]
async fn an_owned_field_another_manager_takes_is_not_fought_over() {
    let h = Harness::new().await;
    let kind = TrustKind::CrossplaneRole;
    if !install(&h, &[kind], "an_owned_field_another_manager_takes") {
        return;
    }
    h.create("o", spec(kind, "owned", "Own", 3)).await;
    h.wait_status("o", TRUSTED, "Unknown").await;
    let theirs = json!({"apiVersion": kind.api_version(), "kind": "Role",
        "metadata": {"name": "owned", "namespace": NS},
        "spec": {"forProvider": {"assumeRolePolicy": "{\"Version\":\"2012-10-17\",\"Statement\":[]}"}}});
    api(&h, kind, NS)
        .patch(
            "owned",
            &PatchParams::apply("flux").force(),
            &Patch::Apply(&theirs),
        )
        .await
        .unwrap();
    let pi = h
        .wait("o", "TrustFieldOwned", |p| {
            p.condition(STALLED)
                .is_some_and(|c| c.reason == "TrustFieldOwned")
        })
        .await;
    let m = &pi.condition(STALLED).unwrap().message;
    assert!(m.contains("flux") && m.contains("assumeRolePolicy"), "{m}");
    let object = stored(&h, kind, "owned").unwrap();
    assert_eq!(
        document(&object, kind)["Statement"],
        json!([]),
        "flux's value stands"
    );
}

/// `spec.trust` moved to another object, then removed: the trust goes from where it was (an
/// owned object is deleted, a shared one loses only its statements) and is written where it is.
#[tokio::test]
async fn moving_or_removing_the_trust_undoes_it_where_it_was() {
    let h = Harness::new().await;
    let kind = TrustKind::AckRole;
    if !install(&h, &[kind], "moving_or_removing_the_trust") {
        return;
    }
    let team = json!({"apiVersion": kind.api_version(), "kind": "Role",
        "metadata": {"name": "team", "namespace": NS},
        "spec": {"name": "connector-role-4", "assumeRolePolicyDocument": "{\"Version\":\"2012-10-17\",\"Statement\":[]}"}});
    let team: DynamicObject = serde_json::from_value(team).unwrap();
    api(&h, kind, NS)
        .create(&PostParams::default(), &team)
        .await
        .unwrap();
    h.create("m", spec(kind, "first", "Own", 4)).await;
    h.wait_status("m", TRUSTED, "Unknown").await;
    assert!(stored(&h, kind, "first").is_some());
    // Moved to the team's role, shared.
    h.patch_spec("m", json!({"trust": target(kind, "team", "Share")}))
        .await;
    let pi = h
        .wait("m", "moved", |p| {
            p.status
                .as_ref()
                .and_then(|s| s.trust.as_ref())
                .is_some_and(|t| t.name == "team")
        })
        .await;
    assert!(
        stored(&h, kind, "first").is_none(),
        "the owned object it left is deleted"
    );
    let doc = document(&stored(&h, kind, "team").unwrap(), kind);
    assert_eq!(doc["Statement"], json!(statements_of(&pi)));
    // Removed: the team's role is back to its own document; the condition goes.
    h.patch_spec("m", json!({"trust": null})).await;
    let pi = h
        .wait("m", "no trust", |p| {
            p.status.as_ref().is_some_and(|s| s.trust.is_none()) && p.condition(TRUSTED).is_none()
        })
        .await;
    assert!(pi.is_ready());
    let doc = document(&stored(&h, kind, "team").unwrap(), kind);
    assert_eq!(doc["Statement"], json!([]));
    assert_eq!(h.remote().await.len(), 1, "the integration itself stays");
}
