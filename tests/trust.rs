//! Issue 30, the objects that carry the cloud side of the trust: every object the operator would
//! write is valid against the published CRD of the cloud operator that reads it
//! (`../shared/cloud-crds/`, read in place; skipped with a line where absent, a failure under
//! `CI=true`).

mod common;

use common::cloud_crds::Crd;
use pio::controller::decide::trust::{
    AwsRoleKind, aws_document, aws_role_object, aws_statement, our_sids, sid,
};
use serde_json::{Value, json};
use strum::IntoEnumIterator;

const ROLE: &str = "arn:aws:iam::123456789012:role/team-a/s3-sink";
const CFLT: &str = "arn:aws:iam::000000000000:role/confluent-pim";

fn crd_file(kind: AwsRoleKind) -> &'static str {
    match kind {
        AwsRoleKind::Ack => "ack-iam/iam.services.k8s.aws_roles.yaml",
        AwsRoleKind::Crossplane => "crossplane-aws/iam.aws.m.upbound.io_roles.yaml",
        AwsRoleKind::CrossplaneCluster => "crossplane-aws/iam.aws.upbound.io_roles.yaml",
    }
}

/// The published CRD of `kind`, or `None` (said as `SKIPPED <test>`, which `.ci/run` counts)
/// where the cloud CRDs are absent.
fn crd(kind: AwsRoleKind, test: &str) -> Option<Crd> {
    let crd = Crd::load(crd_file(kind));
    if crd.is_none() {
        println!("SKIPPED {test}: the cloud operators' CRDs are not available");
    }
    crd
}

fn owner() -> Value {
    json!({"apiVersion": "pim.confluent.cloud/v1alpha1", "kind": "ProviderIntegration",
        "name": "s3-sink", "uid": "0b7c6f2e-0000-4000-8000-000000000001",
        "controller": true, "blockOwnerDeletion": true})
}

/// The role object of each kind, as the operator would create and own it, passes its CRD's
/// schema and loses no field to pruning; it carries exactly the trust document, at the field
/// that kind reads.
#[test]
fn every_role_object_is_valid_against_its_published_crd() {
    let document = aws_document(vec![aws_statement("dlz-f3a90de", CFLT, "ext-1")]).to_string();
    let mut checked = 0;
    for kind in AwsRoleKind::iter() {
        let Some(crd) = crd(kind, "every_role_object_is_valid_against_its_published_crd") else {
            return;
        };
        let object = aws_role_object(kind, "s3-sink-trust", "team-a", ROLE, &document, owner())
            .expect("a role ARN");
        let problems = crd.problems(&object);
        assert!(problems.is_empty(), "{kind:?}: {problems:#?}\n{object:#}");
        let written = object.pointer(kind.document_pointer()).unwrap();
        assert_eq!(written, &json!(document), "{kind:?}");
        assert_eq!(our_sids(written.as_str().unwrap()), [sid("dlz-f3a90de")]);
        // Namespaced kinds name their owner; a cluster-scoped one cannot, and is labelled.
        assert_eq!(
            object["metadata"].get("ownerReferences").is_some(),
            kind.namespaced(),
            "{kind:?}"
        );
        checked += 1;
    }
    assert_eq!(checked, 3);
    // The role's name and path come from the customer's ARN.
    let ack = aws_role_object(AwsRoleKind::Ack, "t", "ns", ROLE, &document, owner()).unwrap();
    assert_eq!(
        (ack["spec"]["name"].as_str(), ack["spec"]["path"].as_str()),
        (Some("s3-sink"), Some("/team-a/"))
    );
    let xp = aws_role_object(AwsRoleKind::Crossplane, "t", "ns", ROLE, &document, owner()).unwrap();
    assert_eq!(
        xp["metadata"]["annotations"]["crossplane.io/external-name"],
        "s3-sink"
    );
}

/// The check can fail: a field the CRD does not have (the server would drop it, and the trust
/// with it) and a value of the wrong type are both reported.
#[test]
fn a_wrong_object_is_caught() {
    let Some(crd) = crd(AwsRoleKind::Ack, "a_wrong_object_is_caught") else {
        return;
    };
    let bad = json!({"apiVersion": "iam.services.k8s.aws/v1alpha1", "kind": "Role",
        "metadata": {"name": "x", "namespace": "ns"},
        "spec": {"name": "r", "assumeRolePolicy": "{}", "maxSessionDuration": "an hour"}});
    let problems = crd.problems(&bad);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("assumeRolePolicyDocument")),
        "the required field is missing: {problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains(".spec.assumeRolePolicy is not in the schema")),
        "{problems:?}"
    );
    assert!(problems.len() >= 3, "{problems:?}");
}
