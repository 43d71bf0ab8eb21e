//! `Share`: only the operator's own statements and marks go in and out of a team's object.

use super::*;

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
