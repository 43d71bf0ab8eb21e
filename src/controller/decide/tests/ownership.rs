//! One owner per integration; adopted integrations are kept.

use super::*;

#[test]
fn one_owner_per_integration_table() {
    let owner = Holder {
        name: "team-a/s3".into(),
    };
    let held = |older: bool| Others {
        ids: vec![("dlz-a".into(), owner.clone(), older)],
        key: None,
    };
    let key_held = Others {
        ids: vec![],
        key: Some(owner.clone()),
    };
    let none = Others::default();
    let (held_older, held_younger) = (held(true), held(false));
    let mine = integration("dlz-a", ENV, "name", ROLE);
    let d = desired(None, UpdatePolicy::Manual, false);
    let adopt = desired(Some("dlz-a"), UpdatePolicy::Manual, false);
    let managed = |a: &Decision| matches!(a, Decision::Stall { reason: Reason::AlreadyManaged, message } if message.contains("team-a/s3"));
    // (desired, status, observed, others) → stalled AlreadyManaged?
    let cases: Vec<(&Desired, ProviderIntegrationStatus, Observed, &Others, bool)> = vec![
        // Adopting an id another resource records: never, whatever the age.
        (
            &adopt,
            status(None, None),
            Observed::Found(mine.clone()),
            &held_younger,
            true,
        ),
        (
            &adopt,
            status(None, None),
            Observed::Found(mine.clone()),
            &held_older,
            true,
        ),
        (
            &adopt,
            status(None, None),
            Observed::Found(mine.clone()),
            &none,
            false,
        ),
        // Both record it (an older release let that happen): the older keeps it.
        (
            &d,
            status(Some("dlz-a"), None),
            Observed::Found(mine.clone()),
            &held_older,
            true,
        ),
        (
            &d,
            status(Some("dlz-a"), None),
            Observed::Found(mine.clone()),
            &held_younger,
            false,
        ),
        // Found by key, held by another: not claimed, not offered for adoption.
        (
            &d,
            status(None, Some(intent())),
            Observed::ByKey(vec![mine.clone()]),
            &held_younger,
            true,
        ),
        (
            &d,
            status(None, None),
            Observed::ByKey(vec![mine.clone()]),
            &held_younger,
            true,
        ),
        (
            &d,
            status(None, Some(intent())),
            Observed::ByKey(vec![mine.clone()]),
            &none,
            false,
        ),
        // Nothing exists yet, but an older resource asks for the same key: no second create.
        (
            &d,
            status(None, None),
            Observed::ByKey(vec![]),
            &key_held,
            true,
        ),
        (
            &d,
            status(None, None),
            Observed::ByKey(vec![]),
            &none,
            false,
        ),
        // Our own recorded integration is ours, whoever else wants its key.
        (
            &d,
            status(Some("dlz-a"), None),
            Observed::Found(mine.clone()),
            &key_held,
            false,
        ),
    ];
    for (d, s, o, others, want) in cases {
        let what = format!("{:?} {:?} {:?} {others:?}", d.adopt_id, s.id, o);
        let a = decide_among(d, &s, o, others);
        assert_eq!(managed(&a), want, "{what}: {a:?}");
        if !want {
            assert!(
                !matches!(
                    a,
                    Decision::Stall {
                        reason: Reason::AlreadyManaged,
                        ..
                    }
                ),
                "{what}"
            );
        }
    }
    // Cleanup never deletes what an older resource manages; a younger double is ours to delete.
    let s = status(Some("dlz-a"), None);
    assert!(matches!(
        cleanup(DeletionPolicy::Delete, &s, &held(true)),
        Cleanup::NotOurs { id, owner: o } if id == "dlz-a" && o.name == "team-a/s3"
    ));
    assert!(matches!(
        cleanup(DeletionPolicy::Delete, &s, &held(false)),
        Cleanup::Delete { .. }
    ));
    // An intent-only cleanup never deletes another's, nor claims after a conflict.
    assert_eq!(
        deletion_target(std::slice::from_ref(&mine), &intent(), &held(false)),
        DeletionTarget::Nothing
    );
    assert!(matches!(
        after_conflict(&d, true, vec![mine], "409", &held(false)),
        AfterConflict::Foreign(_)
    ));
}

#[test]
fn adopted_integrations_are_orphaned_unless_the_spec_says_delete() {
    let spec = |integration_id: Option<&str>, policy: Option<DeletionPolicy>| {
        let mut pi: crate::crd::ProviderIntegration = serde_json::from_value(serde_json::json!({
            "apiVersion": "pim.confluent.cloud/v1alpha1", "kind": "ProviderIntegration",
            "metadata": {"name": "x"},
            "spec": {"environment": ENV, "provider": "AWS", "aws": {"customerIamRoleArn": ROLE}},
        }))
        .unwrap();
        pi.spec.integration_id = integration_id.map(String::from);
        pi.spec.deletion_policy = policy;
        pi.spec
    };
    use super::desired::deletion_policy;
    assert_eq!(deletion_policy(&spec(None, None)), DeletionPolicy::Delete);
    assert_eq!(
        deletion_policy(&spec(Some("dlz-a"), None)),
        DeletionPolicy::Orphan
    );
    assert_eq!(
        deletion_policy(&spec(Some("dlz-a"), Some(DeletionPolicy::Delete))),
        DeletionPolicy::Delete
    );
    assert_eq!(
        deletion_policy(&spec(None, Some(DeletionPolicy::Orphan))),
        DeletionPolicy::Orphan
    );
}
