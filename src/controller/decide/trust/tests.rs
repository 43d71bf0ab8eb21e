use serde_json::{Value, json};

use super::*;
use crate::controller::decide::reasons::Reason;
use crate::crd::{TrustMode, TrustStatus};

const CFLT: &str = "arn:aws:iam::000000000000:role/confluent";
const ROLE: &str = "arn:aws:iam::123456789012:role/s3-sink";
const MANAGER: &str = "provider-integration-operator";

fn owner() -> Owner {
    Owner {
        namespace: "team-a".into(),
        name: "s3".into(),
        uid: "uid-1".into(),
        reference: json!({"apiVersion": "pim.confluent.cloud/v1alpha1",
            "kind": "ProviderIntegration", "name": "s3", "uid": "uid-1", "controller": true}),
    }
}

fn aws(id: &str, ext: &str) -> TrustValues {
    TrustValues::Aws {
        id: id.into(),
        confluent_role: CFLT.into(),
        external_id: ext.into(),
        customer_role: ROLE.into(),
    }
}

fn record(mode: TrustMode, id: &str) -> TrustStatus {
    TrustStatus {
        api_version: TrustKind::AckRole.api_version().into(),
        kind: "Role".into(),
        name: "r".into(),
        mode,
        integration_id: id.into(),
        written_at: None,
    }
}

/// A stored copy of `object`, as the API server returns it.
fn stored(mut object: Value, rv: &str) -> Value {
    object["metadata"]["uid"] = "obj-uid".into();
    object["metadata"]["resourceVersion"] = rv.into();
    object["metadata"]["generation"] = 1.into();
    object
}

#[test]
fn kinds_are_found_by_their_target_ref_only() {
    use strum::IntoEnumIterator;
    for k in TrustKind::iter() {
        assert_eq!(TrustKind::of(k.api_version(), k.kind()), Some(k));
        assert_eq!(format!("{}/{}", k.group(), k.version()), k.api_version());
    }
    assert_eq!(
        TrustKind::of("iam.services.k8s.aws/v1alpha1", "Policy"),
        None
    );
    assert_eq!(TrustKind::of("iam.aws.upbound.io/v1beta2", "Role"), None);
}

#[test]
fn grants_name_kind_and_object() {
    let k = TrustKind::CrossplaneClusterRole;
    assert!(granted(Some("*"), k, "x"));
    assert!(granted(Some("Principal/a, Role/shared"), k, "shared"));
    assert!(granted(Some("role/*"), k, "any"));
    assert!(!granted(Some("Role/shared"), k, "other"));
    assert!(!granted(Some("Principal/*"), k, "shared"));
    assert!(!granted(Some(""), k, "shared"));
    assert!(!granted(None, k, "shared"));
}

#[test]
fn owning_creates_then_leaves_an_object_in_line_alone() {
    let k = TrustKind::AckRole;
    let want = match plan(
        Target {
            kind: k,
            mode: TrustMode::Own,
            name: "r",
        },
        None,
        &owner(),
        &aws("dlz-1", "e1"),
        None,
        MANAGER,
    ) {
        TrustWrite::Apply(w) => w,
        other => panic!("{other:?}"),
    };
    assert_eq!(want["spec"]["name"], "s3-sink");
    assert_eq!(want["metadata"]["ownerReferences"][0]["uid"], "uid-1");
    // As stored, with what the cloud operator added (status, defaults): nothing to write.
    let mut have = stored(want.clone(), "5");
    have["spec"]["maxSessionDuration"] = 3600.into();
    have["status"] = json!({"conditions": []});
    assert_eq!(
        plan(
            Target {
                kind: k,
                mode: TrustMode::Own,
                name: "r"
            },
            Some(&have),
            &owner(),
            &aws("dlz-1", "e1"),
            None,
            MANAGER
        ),
        TrustWrite::Nothing
    );
    // A recreate: the document changes, by the same apply.
    match plan(
        Target {
            kind: k,
            mode: TrustMode::Own,
            name: "r",
        },
        Some(&have),
        &owner(),
        &aws("dlz-2", "e2"),
        Some("dlz-1"),
        MANAGER,
    ) {
        TrustWrite::Apply(w) => {
            let doc = w["spec"]["assumeRolePolicyDocument"].as_str().unwrap();
            assert_eq!(aws::our_sids(doc), aws::sids("dlz-2"));
            assert!(doc.contains("e2") && !doc.contains("e1"));
        }
        other => panic!("{other:?}"),
    }
    // Someone else's object of that name is never taken over.
    let mut foreign = have.clone();
    foreign["metadata"]["ownerReferences"] = json!([]);
    assert!(matches!(
        plan(
            Target {
                kind: k,
                mode: TrustMode::Own,
                name: "r"
            },
            Some(&foreign),
            &owner(),
            &aws("dlz-1", "e1"),
            None,
            MANAGER
        ),
        TrustWrite::Stall(Reason::TrustTargetNotOwned, _)
    ));
}

#[test]
fn a_policy_member_is_replaced_not_patched_when_its_member_changes() {
    let k = TrustKind::PolicyMember;
    let gcp = |sa: &str| TrustValues::Gcp {
        id: "cspi-1".into(),
        confluent_account: sa.into(),
        customer_account: "connectors@my-project.iam.gserviceaccount.com".into(),
    };
    let TrustWrite::Apply(want) = plan(
        Target {
            kind: k,
            mode: TrustMode::Own,
            name: "b",
        },
        None,
        &owner(),
        &gcp("a@cflt.iam.gserviceaccount.com"),
        None,
        MANAGER,
    ) else {
        panic!()
    };
    assert_eq!(
        want["spec"],
        json!({"member": "serviceAccount:a@cflt.iam.gserviceaccount.com",
            "role": "roles/iam.serviceAccountTokenCreator",
            "resourceRef": {"kind": "IAMServiceAccount",
                "external": "projects/my-project/serviceAccounts/connectors@my-project.iam.gserviceaccount.com"}})
    );
    let have = stored(want, "3");
    assert_eq!(
        plan(
            Target {
                kind: k,
                mode: TrustMode::Own,
                name: "b"
            },
            Some(&have),
            &owner(),
            &gcp("b@cflt.iam.gserviceaccount.com"),
            None,
            MANAGER
        ),
        TrustWrite::Replace {
            uid: "obj-uid".into()
        }
    );
    let mut going = have.clone();
    going["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
    assert!(matches!(
        plan(
            Target {
                kind: k,
                mode: TrustMode::Own,
                name: "b"
            },
            Some(&going),
            &owner(),
            &gcp("b@cflt.iam.gserviceaccount.com"),
            None,
            MANAGER
        ),
        TrustWrite::Wait(_)
    ));
}

fn team_role() -> Value {
    stored(
        json!({"apiVersion": "iam.services.k8s.aws/v1alpha1", "kind": "Role",
            "metadata": {"name": "r", "namespace": "team-a", "labels": {"team": "a"}},
            "spec": {"name": "s3-sink", "maxSessionDuration": 7200,
                "assumeRolePolicyDocument": json!({"Version": "2012-10-17", "Statement": [
                    {"Sid": "Ec2", "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                     "Action": "sts:AssumeRole"}]}).to_string()}}),
        "7",
    )
}

#[test]
fn sharing_patches_only_the_document_under_the_objects_version() {
    let k = TrustKind::AckRole;
    let have = team_role();
    let TrustWrite::Patch(p) = plan(
        Target {
            kind: k,
            mode: TrustMode::Share,
            name: "r",
        },
        Some(&have),
        &owner(),
        &aws("dlz-1", "e1"),
        None,
        MANAGER,
    ) else {
        panic!()
    };
    assert_eq!(p["metadata"], json!({"resourceVersion": "7"}));
    assert_eq!(p["spec"].as_object().unwrap().len(), 1, "{p}");
    let doc = p["spec"]["assumeRolePolicyDocument"].as_str().unwrap();
    assert!(doc.contains("\"Ec2\""));
    // Applied: nothing more to do; a recreate swaps only its own statement.
    let mut after = have.clone();
    json_patch::merge(&mut after, &p);
    assert_eq!(
        plan(
            Target {
                kind: k,
                mode: TrustMode::Share,
                name: "r"
            },
            Some(&after),
            &owner(),
            &aws("dlz-1", "e1"),
            None,
            MANAGER
        ),
        TrustWrite::Nothing
    );
    let TrustWrite::Patch(p2) = plan(
        Target {
            kind: k,
            mode: TrustMode::Share,
            name: "r",
        },
        Some(&after),
        &owner(),
        &aws("dlz-2", "e2"),
        Some("dlz-1"),
        MANAGER,
    ) else {
        panic!()
    };
    let doc2 = p2["spec"]["assumeRolePolicyDocument"].as_str().unwrap();
    assert_eq!(aws::our_sids(doc2), aws::sids("dlz-2"));
    // Released: only its statement goes.
    let mut trusted = after.clone();
    json_patch::merge(&mut trusted, &p2);
    let TrustWrite::Patch(out) = release(
        k,
        &record(TrustMode::Share, "dlz-2"),
        Some(&trusted),
        &owner(),
        false,
    ) else {
        panic!()
    };
    let left = out["spec"]["assumeRolePolicyDocument"].as_str().unwrap();
    assert!(aws::our_sids(left).is_empty() && left.contains("Ec2"));
    // Kept with the integration (Orphan): nothing is taken.
    assert_eq!(
        release(
            k,
            &record(TrustMode::Share, "dlz-2"),
            Some(&trusted),
            &owner(),
            true
        ),
        TrustWrite::Nothing
    );
}

#[test]
fn a_document_another_manager_applies_is_not_written() {
    let mut have = team_role();
    have["metadata"]["managedFields"] = json!([{"manager": "argocd-controller", "operation": "Apply",
        "fieldsV1": {"f:spec": {"f:assumeRolePolicyDocument": {}, "f:name": {}}}}]);
    match plan(
        Target {
            kind: TrustKind::AckRole,
            mode: TrustMode::Share,
            name: "r",
        },
        Some(&have),
        &owner(),
        &aws("dlz-1", "e1"),
        None,
        MANAGER,
    ) {
        TrustWrite::Stall(Reason::TrustFieldOwned, m) => {
            assert!(m.contains("argocd-controller"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    // An update (kubectl edit, client-side apply) does not take fields back: writable.
    have["metadata"]["managedFields"][0]["operation"] = "Update".into();
    assert!(matches!(
        plan(
            Target {
                kind: TrustKind::AckRole,
                mode: TrustMode::Share,
                name: "r"
            },
            Some(&have),
            &owner(),
            &aws("dlz-1", "e1"),
            None,
            MANAGER
        ),
        TrustWrite::Patch(_)
    ));
}

#[test]
fn a_shared_principal_gets_the_client_id_once_and_one_mark_per_integration() {
    let k = TrustKind::CrossplanePrincipal;
    let azure = |id: &str| TrustValues::Azure {
        id: id.into(),
        app_id: "app-1".into(),
    };
    let have = stored(
        json!({"apiVersion": k.api_version(), "kind": "Principal",
            "metadata": {"name": "p", "namespace": "team-a"},
            "spec": {"forProvider": {"notes": "the team's"}}}),
        "4",
    );
    let TrustWrite::Patch(p) = plan(
        Target {
            kind: k,
            mode: TrustMode::Share,
            name: "p",
        },
        Some(&have),
        &owner(),
        &azure("cspi-1"),
        None,
        MANAGER,
    ) else {
        panic!()
    };
    assert_eq!(
        p,
        json!({"metadata": {"resourceVersion": "4",
            "annotations": {"trust.pim.confluent.cloud/cspi-1": "team-a/s3"}},
            "spec": {"forProvider": {"clientId": "app-1"}}})
    );
    let mut after = have.clone();
    json_patch::merge(&mut after, &p);
    assert_eq!(after["spec"]["forProvider"]["notes"], "the team's");
    // A second integration only adds its mark.
    let TrustWrite::Patch(p2) = plan(
        Target {
            kind: k,
            mode: TrustMode::Share,
            name: "p",
        },
        Some(&after),
        &owner(),
        &azure("cspi-2"),
        None,
        MANAGER,
    ) else {
        panic!()
    };
    assert!(p2.get("spec").is_none(), "{p2}");
    // Another app's principal is refused.
    let mut other = have.clone();
    other["spec"]["forProvider"]["clientId"] = "app-9".into();
    assert!(matches!(
        plan(
            Target {
                kind: k,
                mode: TrustMode::Share,
                name: "p"
            },
            Some(&other),
            &owner(),
            &azure("cspi-1"),
            None,
            MANAGER
        ),
        TrustWrite::Stall(Reason::TrustTargetMismatch, _)
    ));
    // Released: its mark only.
    let mut rec = record(TrustMode::Share, "cspi-1");
    rec.kind = "Principal".into();
    assert_eq!(
        release(k, &rec, Some(&after), &owner(), false),
        TrustWrite::Patch(json!({"metadata": {"resourceVersion": "4",
            "annotations": {"trust.pim.confluent.cloud/cspi-1": null}}}))
    );
}

#[test]
fn an_owned_object_is_deleted_with_the_integration_or_disowned_when_kept() {
    for k in [TrustKind::CrossplaneRole, TrustKind::CrossplaneClusterRole] {
        let TrustWrite::Apply(want) = plan(
            Target {
                kind: k,
                mode: TrustMode::Own,
                name: "r",
            },
            None,
            &owner(),
            &aws("dlz-1", "e"),
            None,
            MANAGER,
        ) else {
            panic!()
        };
        let have = stored(want, "9");
        let rec = record(TrustMode::Own, "dlz-1");
        assert_eq!(
            release(k, &rec, Some(&have), &owner(), false),
            TrustWrite::Replace {
                uid: "obj-uid".into()
            }
        );
        let TrustWrite::Patch(p) = release(k, &rec, Some(&have), &owner(), true) else {
            panic!()
        };
        let mut kept = have.clone();
        json_patch::merge(&mut kept, &p);
        assert!(!owner().owns(k, &kept), "{k:?}: {kept}");
        assert_eq!(p["metadata"]["resourceVersion"], "9");
        // Not ours (any more): nothing.
        assert_eq!(
            release(k, &rec, Some(&kept), &owner(), false),
            TrustWrite::Nothing
        );
    }
}

fn cond(ty: &str, status: &str, extra: Value) -> Value {
    let mut c = json!({"type": ty, "status": status, "reason": "R", "message": "m",
        "lastTransitionTime": "2026-12-03T10:00:00Z"});
    if let Value::Object(e) = extra {
        c.as_object_mut().unwrap().extend(e);
    }
    c
}

fn with_conditions(kind: TrustKind, generation: i64, conditions: Value, extra: Value) -> Value {
    let mut o = json!({"apiVersion": kind.api_version(), "kind": kind.kind(),
        "metadata": {"name": "x", "namespace": "ns", "generation": generation},
        "status": {"conditions": conditions}});
    if let Value::Object(e) = extra {
        o["status"].as_object_mut().unwrap().extend(e);
    }
    o
}

#[test]
fn readiness_follows_each_operators_own_conditions() {
    use Readiness::*;
    let k = TrustKind::AckRole;
    let synced = with_conditions(
        k,
        2,
        json!([cond("ACK.ResourceSynced", "True", json!({}))]),
        json!({}),
    );
    assert!(matches!(readiness(k, &synced, None), Ready(_)));
    assert!(matches!(
        readiness(k, &synced, Some("2026-12-03T10:00:00Z")),
        Ready(_)
    ));
    // Synced before the operator's last change: about an older document.
    assert!(matches!(
        readiness(k, &synced, Some("2026-12-03T10:00:01Z")),
        Pending(_)
    ));
    let terminal = with_conditions(
        k,
        2,
        json!([cond(
            "ACK.Terminal",
            "True",
            json!({"message": "MalformedPolicyDocument"})
        )]),
        json!({}),
    );
    assert!(
        matches!(readiness(k, &terminal, None), Failing(m) if m.contains("MalformedPolicyDocument"))
    );
    assert!(matches!(
        readiness(k, &with_conditions(k, 1, json!([]), json!({})), None),
        Pending(_)
    ));

    let k = TrustKind::CrossplaneRole;
    let both = |g: i64| {
        json!([
            cond("Ready", "True", json!({"observedGeneration": g})),
            cond("Synced", "True", json!({"observedGeneration": g}))
        ])
    };
    assert!(matches!(
        readiness(k, &with_conditions(k, 3, both(3), json!({})), None),
        Ready(_)
    ));
    assert!(matches!(
        readiness(k, &with_conditions(k, 3, both(2), json!({})), None),
        Pending(_)
    ));
    let failing = json!([cond(
        "Synced",
        "False",
        json!({"reason": "ReconcileError", "message": "AccessDenied", "observedGeneration": 3})
    )]);
    assert!(
        matches!(readiness(k, &with_conditions(k, 3, failing, json!({})), None), Failing(m) if m.contains("AccessDenied"))
    );

    let k = TrustKind::PolicyMember;
    let ready = json!([cond("Ready", "True", json!({}))]);
    assert!(matches!(
        readiness(
            k,
            &with_conditions(k, 2, ready.clone(), json!({"observedGeneration": 2})),
            None
        ),
        Ready(_)
    ));
    assert!(matches!(
        readiness(
            k,
            &with_conditions(k, 2, ready, json!({"observedGeneration": 1})),
            None
        ),
        Pending(_)
    ));
    let failed = json!([cond(
        "Ready",
        "False",
        json!({"reason": "UpdateFailed", "message": "Permission denied"})
    )]);
    assert!(matches!(
        readiness(
            k,
            &with_conditions(k, 2, failed, json!({"observedGeneration": 2})),
            None
        ),
        Failing(_)
    ));
}

/// Where CEL is not enforced (old clusters), the same rules hold before any write.
#[test]
fn a_trust_on_an_integration_not_ours_or_of_another_cloud_is_refused() {
    use crate::controller::decide::desired::Desired;
    let pi = |extra: Value| -> crate::crd::ProviderIntegration {
        let mut spec = json!({"environment": "env-1", "provider": "AWS",
            "aws": {"customerIamRoleArn": ROLE},
            "trust": {"targetRef": {"apiVersion": "iam.services.k8s.aws/v1alpha1",
                "kind": "Role", "name": "r"}}});
        if let Value::Object(e) = extra {
            spec.as_object_mut().unwrap().extend(e);
        }
        serde_json::from_value(json!({"apiVersion": "pim.confluent.cloud/v1alpha1",
            "kind": "ProviderIntegration", "metadata": {"name": "x"}, "spec": spec}))
        .unwrap()
    };
    let d = Desired::from_resource(&pi(json!({}))).unwrap();
    assert!(
        d.trust.is_some() && d.validate,
        "a trust makes Validated the end of the loop, on AWS too"
    );
    for bad in [
        json!({"integrationId": "dlz-1"}),
        json!({"managementPolicy": "Observe"}),
        json!({"provider": "GCP", "aws": null,
            "gcp": {"customerGoogleServiceAccount": "sa@p.iam.gserviceaccount.com"}}),
    ] {
        assert!(Desired::from_resource(&pi(bad.clone())).is_err(), "{bad}");
    }
}
