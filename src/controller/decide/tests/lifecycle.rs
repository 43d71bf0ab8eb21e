//! Cleanup, observers, the pause and finalizer steps, conflicts and deletion targets.

use super::*;

#[test]
fn cleanups() {
    let tracked = status(Some("dlz-a"), None);
    assert_eq!(
        cleanup(DeletionPolicy::Orphan, &tracked, &Others::default()),
        Cleanup::Orphan
    );
    assert_eq!(
        cleanup(DeletionPolicy::Delete, &tracked, &Others::default()),
        Cleanup::Delete {
            id: "dlz-a".into(),
            environment: ENV.into(),
            version: ApiVersion::V1,
        }
    );
    assert_eq!(
        cleanup(
            DeletionPolicy::Delete,
            &status(None, Some(intent())),
            &Others::default()
        ),
        Cleanup::FindThenDelete(intent())
    );
    assert_eq!(
        cleanup(
            DeletionPolicy::Delete,
            &status(None, None),
            &Others::default()
        ),
        Cleanup::Nothing
    );
}

#[test]
fn observer_table() {
    let mut d = desired(None, UpdatePolicy::Manual, false);
    d.observe = true;
    let mine = integration("dlz-1", ENV, "someone-elses-name", ROLE);
    let other_role = integration("dlz-2", ENV, "x", OTHER_ROLE);
    // By key: the one holder of the role, whatever its display name (not set in the spec).
    assert_eq!(
        decide_observer(&d, Observed::ByKey(vec![mine.clone()])),
        Decision::Mirror(mine.clone())
    );
    let stall = |o| match decide_observer(&d, o) {
        Decision::Stall { reason, .. } => reason,
        other => panic!("{other:?}"),
    };
    assert_eq!(stall(Observed::ByKey(vec![])), Reason::IntegrationGone);
    assert_eq!(stall(Observed::Missing), Reason::IntegrationGone);
    assert_eq!(
        stall(Observed::ByKey(vec![mine.clone(), mine.clone()])),
        Reason::AmbiguousIntegration
    );
    assert_eq!(stall(Observed::Found(other_role)), Reason::AdoptedMismatch);
    // Never a create, whatever is found; and the lookup follows the key, not a recorded id.
    for o in [Observed::Missing, Observed::ByKey(vec![])] {
        assert!(!matches!(decide_observer(&d, o), Decision::Create { .. }));
    }
    let recorded = status(Some("dlz-9"), None);
    assert!(matches!(
        lookup(&d, &recorded, None),
        Lookup::ByKey { fresh: false, .. }
    ));
    d.adopt_id = Some("dlz-1".into());
    assert!(matches!(lookup(&d, &recorded, None), Lookup::ById { ref id, .. } if id == "dlz-1"));
    assert_eq!(
        finalizer_step(&Decision::Mirror(mine), false),
        FinalizerStep::NotYet
    );
}

#[test]
fn pause_step_table() {
    use PauseStep::*;
    use Paused::{No, Unknown, Yes};
    // (paused, deleting, orphan, has the Paused condition) → step
    let cases = [
        ((Yes, true, true, false), Go),
        ((Yes, true, true, true), Go),
        ((Yes, true, false, false), Hold { deleting: true }),
        ((Yes, true, false, true), Hold { deleting: true }),
        ((Yes, false, false, false), Hold { deleting: false }),
        ((Yes, false, true, true), Hold { deleting: false }),
        ((No, false, false, true), Resume),
        ((No, true, false, true), Resume),
        ((No, false, false, false), Go),
        ((No, true, true, false), Go),
        // A pause that cannot be told is never taken for none.
        ((Unknown, true, false, false), Unsure { deleting: true }),
        ((Unknown, true, false, true), Unsure { deleting: true }),
        ((Unknown, false, false, false), Unsure { deleting: false }),
        ((Unknown, false, true, true), Unsure { deleting: false }),
        ((Unknown, true, true, false), Go),
    ];
    for ((p, d, o, c), want) in cases {
        assert_eq!(
            pause_step(p, d, o, c),
            want,
            "paused={p:?} deleting={d} orphan={o} cond={c}"
        );
    }
}

#[test]
fn finalizer_step_table() {
    use FinalizerStep::*;
    let i = integration("dlz-1", ENV, "name", ROLE);
    let stall = Decision::Stall {
        reason: Reason::InvalidSpec,
        message: "m".into(),
    };
    let create = Decision::Create { replaces: None };
    let recreate = Decision::Recreate {
        old: i.clone(),
        changed: vec!["environment"],
    };
    let cases = [
        (&stall, false, NotYet),
        (&create, false, WithIntent),
        (&Decision::InSync(i.clone()), false, AddNow),
        (&Decision::Claim(i.clone()), false, AddNow),
        (&Decision::Adopt(i.clone()), false, AddNow),
        (&recreate, false, AddNow),
        (&stall, true, Present),
        (&create, true, Present),
        (&Decision::InSync(i.clone()), true, Present),
        (&recreate, true, Present),
    ];
    for (decision, has, want) in cases {
        assert_eq!(
            finalizer_step(decision, has),
            want,
            "{decision:?}, has={has}"
        );
    }
}

#[test]
fn delete_outcomes_are_judged_by_usages() {
    let mut used = integration("dlz-a", ENV, "n", ROLE);
    used.usages = vec!["crn://x".into()];
    assert_eq!(
        delete_outcome("409", ReadBack::Found(&used)),
        DeleteOutcome::InUse(vec!["crn://x".into()])
    );
    let unused = integration("dlz-a", ENV, "n", ROLE);
    assert_eq!(
        delete_outcome("conflict", ReadBack::Found(&unused)),
        DeleteOutcome::Other("conflict".into())
    );
    assert_eq!(
        delete_outcome("conflict", ReadBack::Unknown),
        DeleteOutcome::Other("conflict".into())
    );
    assert_eq!(
        delete_outcome("conflict", ReadBack::Gone),
        DeleteOutcome::Gone
    );
}

#[test]
fn spec_resolution() {
    let pi: crate::crd::ProviderIntegration = serde_json::from_value(serde_json::json!({
        "apiVersion": "pim.confluent.cloud/v1alpha1", "kind": "ProviderIntegration",
        "metadata": {"name": "orders", "namespace": "x"},
        "spec": {"environment": ENV, "provider": "AWS", "aws": {"customerIamRoleArn": ROLE}},
    }))
    .unwrap();
    let d = Desired::from_resource(&pi).unwrap();
    assert_eq!(d.display_name, "orders");
    assert!(!d.display_name_explicit);
    assert_eq!(d.deletion_policy, DeletionPolicy::Delete);
    assert_eq!(d.update_policy, UpdatePolicy::Manual);
    let mut long = pi.clone();
    long.metadata.name = Some("n".repeat(61));
    assert!(Desired::from_resource(&long).unwrap_err().0.contains("60"));
    let mut noaws = pi;
    noaws.spec.aws = None;
    assert!(Desired::from_resource(&noaws).is_err());
}

#[test]
fn after_conflict_table() {
    let d = desired(None, UpdatePolicy::Manual, false);
    let mine = integration("dlz-a", ENV, "name", ROLE);
    let renamed = integration("dlz-b", ENV, "other-name", ROLE);
    let other_env = integration("dlz-c", "env-2", "name", ROLE);
    // (had intent, found) → claimed id, or the message names the holder (or the API's detail).
    let cases: Vec<(bool, Vec<Integration>, Result<&str, &str>)> = vec![
        (true, vec![mine.clone()], Ok("dlz-a")),
        // No intent recorded before this attempt: a namesake is never ours.
        (false, vec![mine.clone()], Err("dlz-a")),
        // Same role under another name: a stranger's.
        (true, vec![renamed.clone()], Err("dlz-b")),
        (true, vec![other_env], Err("dlz-c")),
        // Two candidates: never claim either.
        (true, vec![mine.clone(), renamed], Err("dlz-a")),
        // The 409 said taken, but the lookup found nothing: the API's detail is shown.
        (true, vec![], Err("409 detail")),
    ];
    for (had_intent, found, want) in cases {
        let got = after_conflict(
            &d,
            had_intent,
            found.clone(),
            "409 detail",
            &Others::default(),
        );
        match (want, &got) {
            (Ok(id), AfterConflict::Claim(i)) => assert_eq!(i.id, id),
            (Err(text), AfterConflict::Foreign(m)) => {
                assert!(m.contains(text), "{had_intent} {found:?}: {m}")
            }
            _ => panic!("{had_intent} {found:?}: got {got:?}, want {want:?}"),
        }
    }
    // GCP: the name is the key, and a DRAFT of ours is claimed.
    let g = desired_gcp(None, UpdatePolicy::Manual, false);
    let draft = gcp("cspi-1", ENV, "name", None);
    assert_eq!(
        after_conflict(&g, true, vec![draft.clone()], "", &Others::default()),
        AfterConflict::Claim(draft)
    );
}

#[test]
fn deletion_target_table() {
    let key = intent();
    let mine = integration("dlz-a", ENV, "name", ROLE);
    let renamed = integration("dlz-b", ENV, "other-name", ROLE);
    let twin = integration("dlz-c", ENV, "name", ROLE);
    let cases: Vec<(Vec<Integration>, DeletionTarget)> = vec![
        (vec![], DeletionTarget::Nothing),
        (vec![mine.clone()], DeletionTarget::One("dlz-a".into())),
        // Holds the role under another name: not the intent's, never deleted.
        (vec![renamed.clone()], DeletionTarget::Nothing),
        (
            vec![mine.clone(), renamed],
            DeletionTarget::One("dlz-a".into()),
        ),
        (
            vec![mine, twin],
            DeletionTarget::Ambiguous(vec!["dlz-a".into(), "dlz-c".into()]),
        ),
    ];
    for (found, want) in cases {
        assert_eq!(
            deletion_target(&found, &key, &Others::default()),
            want,
            "{found:?}"
        );
    }
}
