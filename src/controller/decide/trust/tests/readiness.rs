//! What each cloud operator's conditions say, and the spec checks where CEL is not enforced.

use super::*;

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
