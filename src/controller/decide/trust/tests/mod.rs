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

mod readiness;
mod share;
