//! The apply path: every combination, the tables of `decide`, `lookup`, GCP.

use super::*;

#[test]
fn invariants_hold_for_every_combination() {
    let mut n = 0;
    for d in all_desired() {
        for s in all_status() {
            for o in all_observed(&d, &s) {
                n += 1;
                let a = decide(&d, &s, o.clone());
                let ctx = format!("desired={d:?}\nstatus={s:?}\nobserved={o:?}\naction={a:?}");
                let swapped_id = matches!((&s.id, &d.adopt_id), (Some(x), Some(y)) if x != y);
                if swapped_id {
                    assert!(
                        matches!(
                            a,
                            Decision::Stall {
                                reason: Reason::IntegrationIdChanged,
                                ..
                            }
                        ),
                        "{ctx}"
                    );
                    continue;
                }
                match &a {
                    // Only observers mirror.
                    Decision::Mirror(_) => panic!("an owner mirrors nothing: {ctx}"),
                    // Never take over an integration we did not start creating.
                    Decision::Claim(i) => {
                        assert!(s.pending_create.is_some() && s.id.is_none(), "{ctx}");
                        assert!(
                            matches_intent(i, s.pending_create.as_ref().unwrap()),
                            "only our own intent is claimed: {ctx}"
                        );
                        assert!(
                            !matches!(&o, Observed::ByKey(v) if v.len() != 1),
                            "only an unambiguous match is claimed: {ctx}"
                        );
                    }
                    // Adoption only of the named integration, once.
                    Decision::Adopt(i) => {
                        assert!(s.id.is_none(), "{ctx}");
                        assert_eq!(d.adopt_id.as_deref(), Some(i.id.as_str()), "{ctx}");
                    }
                    // Recreate only on opt-in, never for adopted integrations.
                    Decision::Recreate { changed, .. } => {
                        assert_eq!(d.update_policy, UpdatePolicy::Recreate, "{ctx}");
                        assert!(
                            d.adopt_id.is_none() && s.id.is_some() && !changed.is_empty(),
                            "{ctx}"
                        );
                    }
                    // In sync means the observed integration matches the spec.
                    Decision::InSync(i) => {
                        assert!(
                            changed_fields(&d, i, d.adopt_id.is_some()).is_empty(),
                            "{ctx}"
                        );
                        assert!(s.id.is_some(), "{ctx}");
                    }
                    Decision::Create { replaces } => {
                        // Only when nothing matching exists: never a second integration.
                        assert!(
                            matches!(&o, Observed::Missing)
                                || matches!(&o, Observed::ByKey(v) if v.is_empty()),
                            "{ctx}"
                        );
                        assert!(
                            d.adopt_id.is_none(),
                            "an adopted integration is never replaced: {ctx}"
                        );
                        assert_eq!(replaces, &s.id, "{ctx}");
                    }
                    Decision::Stall { message, .. } => assert!(!message.is_empty(), "{ctx}"),
                }
                let one_match = matches!(&o, Observed::ByKey(v) if v.len() == 1)
                    || matches!(&o, Observed::Found(_));
                if let (true, None, None, None) = (one_match, &s.pending_create, &s.id, &d.adopt_id)
                {
                    assert!(
                        matches!(
                            a,
                            Decision::Stall {
                                reason: Reason::AlreadyExists,
                                ..
                            }
                        ),
                        "{ctx}"
                    );
                }
            }
        }
    }
    assert!(n > 1900, "{n} combinations");
}

#[test]
fn table() {
    let manual = desired(None, UpdatePolicy::Manual, false);
    let recreate = desired(None, UpdatePolicy::Recreate, false);
    let adopt = desired(Some("dlz-a"), UpdatePolicy::Manual, false);
    let same = integration("dlz-a", ENV, "name", ROLE);
    let renamed = integration("dlz-a", ENV, "other", ROLE);
    let rerole = integration("dlz-a", ENV, "name", OTHER_ROLE);
    let moved = integration("dlz-a", "env-2", "name", ROLE);
    let tracked = status(Some("dlz-a"), None);
    let fresh = status(None, None);
    let pending = status(None, Some(intent()));

    assert_eq!(
        decide(&manual, &tracked, Observed::Found(same.clone())),
        Decision::InSync(same.clone())
    );
    assert!(
        matches!(decide(&manual, &tracked, Observed::Found(rerole.clone())),
        Decision::Stall { reason: Reason::ImmutableFieldChanged, message } if message.contains("aws.customerIamRoleArn"))
    );
    assert!(
        matches!(decide(&manual, &tracked, Observed::Found(moved.clone())),
        Decision::Stall { reason: Reason::ImmutableFieldChanged, message } if message.contains("environment"))
    );
    assert!(
        matches!(decide(&manual, &tracked, Observed::Found(renamed.clone())),
        Decision::Stall { reason: Reason::ImmutableFieldChanged, message } if message.contains("displayName"))
    );
    assert!(
        matches!(decide(&recreate, &tracked, Observed::Found(rerole.clone())),
        Decision::Recreate { old, changed } if old.id == "dlz-a" && changed == vec!["aws.customerIamRoleArn"])
    );
    assert_eq!(
        decide(&manual, &tracked, Observed::Missing),
        Decision::Create {
            replaces: Some("dlz-a".into())
        }
    );
    assert_eq!(
        decide(&manual, &fresh, Observed::ByKey(vec![])),
        Decision::Create { replaces: None }
    );
    assert!(
        matches!(decide(&manual, &fresh, Observed::ByKey(vec![same.clone()])),
        Decision::Stall { reason: Reason::AlreadyExists, message } if message.contains("integrationId: dlz-a"))
    );
    assert_eq!(
        decide(&manual, &pending, Observed::ByKey(vec![same.clone()])),
        Decision::Claim(same.clone())
    );
    assert_eq!(
        decide(&manual, &pending, Observed::ByKey(vec![])),
        Decision::Create { replaces: None }
    );

    // Adoption: an implicit display name does not have to match; an explicit one does.
    assert_eq!(
        decide(&adopt, &fresh, Observed::Found(renamed.clone())),
        Decision::Adopt(renamed.clone())
    );
    let adopt_named = desired(Some("dlz-a"), UpdatePolicy::Manual, true);
    assert!(matches!(
        decide(&adopt_named, &fresh, Observed::Found(renamed.clone())),
        Decision::Stall {
            reason: Reason::AdoptedMismatch,
            ..
        }
    ));
    assert!(matches!(
        decide(&adopt, &fresh, Observed::Found(rerole.clone())),
        Decision::Stall {
            reason: Reason::AdoptedMismatch,
            ..
        }
    ));
    assert!(matches!(
        decide(&adopt, &fresh, Observed::Missing),
        Decision::Stall {
            reason: Reason::AdoptionTargetNotFound,
            ..
        }
    ));
    assert!(matches!(
        decide(&adopt, &tracked, Observed::Missing),
        Decision::Stall {
            reason: Reason::IntegrationGone,
            ..
        }
    ));
    let adopt_recreate = desired(Some("dlz-a"), UpdatePolicy::Recreate, false);
    assert!(matches!(
        decide(&adopt_recreate, &tracked, Observed::Found(rerole)),
        Decision::Stall {
            reason: Reason::AdoptedMismatch,
            ..
        }
    ));
    let adopt_b = desired(Some("dlz-b"), UpdatePolicy::Manual, false);
    assert!(matches!(
        decide(&adopt_b, &tracked, Observed::Found(same)),
        Decision::Stall {
            reason: Reason::IntegrationIdChanged,
            ..
        }
    ));
}

#[test]
fn lookups() {
    let d = desired(None, UpdatePolicy::Manual, false);
    assert_eq!(
        lookup(&d, &status(None, None), None),
        Lookup::ByKey {
            key: intent(),
            fresh: false
        }
    );
    assert_eq!(
        lookup(&d, &status(None, Some(intent())), None),
        Lookup::ByKey {
            key: intent(),
            fresh: true
        }
    );
    // Our last create of this intent was answered 429: nothing of ours can be missing
    // from the cache, so no fresh listing is needed; any other intent still needs one.
    assert_eq!(
        lookup(&d, &status(None, Some(intent())), Some(&intent())),
        Lookup::ByKey {
            key: intent(),
            fresh: false
        }
    );
    let other = PendingCreate {
        display_name: "other".into(),
        ..intent()
    };
    assert_eq!(
        lookup(&d, &status(None, Some(intent())), Some(&other)),
        Lookup::ByKey {
            key: intent(),
            fresh: true
        }
    );
    let mut s = status(Some("dlz-a"), None);
    s.environment = Some("env-old".into());
    assert_eq!(
        lookup(&d, &s, None),
        Lookup::ById {
            id: "dlz-a".into(),
            environment: "env-old".into(),
            version: ApiVersion::V1,
        }
    );
    let a = desired(Some("dlz-z"), UpdatePolicy::Manual, false);
    assert_eq!(
        lookup(&a, &status(None, None), None),
        Lookup::ById {
            id: "dlz-z".into(),
            environment: ENV.into(),
            version: ApiVersion::V1,
        }
    );
    // A GCP resource looks its id up through pim/v2, and its intent by name and provider.
    let g = desired_gcp(None, UpdatePolicy::Manual, false);
    let mut s = status(Some("dlz-g"), None);
    s.provider = Some(CloudProvider::Gcp);
    assert!(matches!(
        lookup(&g, &s, None),
        Lookup::ById {
            version: ApiVersion::V2,
            ..
        }
    ));
    // A legacy AWS status (no provider recorded) stays on pim/v1 even if the spec now says GCP.
    assert!(matches!(
        lookup(&g, &status(Some("dlz-a"), None), None),
        Lookup::ById {
            version: ApiVersion::V1,
            ..
        }
    ));
    let key = g.intent();
    assert_eq!(key.provider, Some(CloudProvider::Gcp));
    assert_eq!(key.customer_iam_role_arn, None);
    assert!(matches_intent(&gcp("dlz-k", ENV, "name", None), &key));
    assert!(!matches_intent(
        &integration("dlz-k", ENV, "name", ROLE),
        &key
    ));
    assert!(!matches_intent(&gcp("dlz-k", ENV, "other", None), &key));
    assert!(!matches_intent(&gcp("dlz-k", ENV, "name", None), &intent()));
}

#[test]
fn gcp_table() {
    let d = desired_gcp(None, UpdatePolicy::Manual, false);
    let mut tracked = status(Some("dlz-a"), None);
    tracked.provider = Some(CloudProvider::Gcp);
    let draft = gcp("dlz-a", ENV, "name", None);
    // A DRAFT matches: the apply path sets its config.
    assert_eq!(
        decide(&d, &tracked, Observed::Found(draft.clone())),
        Decision::InSync(draft.clone())
    );
    assert!(matches!(
        decide(&d, &tracked, Observed::Found(gcp("dlz-a", ENV, "name", Some(OTHER_SA)))),
        Decision::Stall { reason: Reason::ImmutableFieldChanged, message } if message.contains("gcp.customerGoogleServiceAccount")
    ));
    assert!(matches!(
        decide(&d, &tracked, Observed::Found(integration("dlz-a", ENV, "name", ROLE))),
        Decision::Stall { reason: Reason::ImmutableFieldChanged, message } if message.contains("provider")
    ));
    let pending = status(None, Some(d.intent()));
    assert_eq!(
        decide(&d, &pending, Observed::ByKey(vec![draft.clone()])),
        Decision::Claim(draft.clone())
    );
    let two = vec![draft.clone(), gcp("dlz-b", ENV, "name", None)];
    assert!(matches!(
        decide(&d, &pending, Observed::ByKey(two)),
        Decision::Stall { reason: Reason::AmbiguousIntegration, message } if message.contains("dlz-a, dlz-b")
    ));
    assert!(matches!(
        decide(&d, &status(None, None), Observed::ByKey(vec![draft])),
        Decision::Stall { reason: Reason::AlreadyExists, message } if message.contains("spec.displayName")
    ));
    assert_eq!(
        cleanup(DeletionPolicy::Delete, &tracked, &Others::default()),
        Cleanup::Delete {
            id: "dlz-a".into(),
            environment: ENV.into(),
            version: ApiVersion::V2,
        }
    );
}
