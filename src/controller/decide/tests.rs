//! Exhaustive tests of the decision: every combination of spec × status × remote state, checked
//! against invariants, plus table cases for the exact outcome.

use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::*;
use crate::crd::{
    CloudProvider, DeletionPolicy, PendingCreate, ProviderIntegrationStatus, UpdatePolicy,
};
use crate::pim::{
    ApiVersion, AwsConfig, EnvironmentRef, GcpConfig, Integration, IntegrationConfig,
};

const ENV: &str = "env-1";
const ROLE: &str = "arn:aws:iam::123456789012:role/a";
const OTHER_ROLE: &str = "arn:aws:iam::123456789012:role/b";
const SA: &str = "connect@proj.iam.gserviceaccount.com";
const OTHER_SA: &str = "other@proj.iam.gserviceaccount.com";

fn desired(adopt: Option<&str>, policy: UpdatePolicy, explicit_name: bool) -> Desired {
    Desired {
        environment: ENV.into(),
        display_name: "name".into(),
        display_name_explicit: explicit_name,
        config: DesiredConfig::Aws {
            customer_iam_role_arn: ROLE.into(),
        },
        validate: false,
        deletion_policy: DeletionPolicy::Delete,
        update_policy: policy,
        adopt_id: adopt.map(String::from),
        observe: false,
        trust: None,
    }
}

fn desired_gcp(adopt: Option<&str>, policy: UpdatePolicy, explicit_name: bool) -> Desired {
    Desired {
        config: DesiredConfig::Gcp {
            customer_google_service_account: SA.into(),
        },
        validate: true,
        ..desired(adopt, policy, explicit_name)
    }
}

/// A `pim/v2` GCP integration; `sa: None` is a DRAFT.
fn gcp(id: &str, env: &str, name: &str, sa: Option<&str>) -> Integration {
    Integration {
        api_version: "pim/v2".into(),
        kind: "Integration".into(),
        id: id.into(),
        display_name: name.into(),
        provider: "GCP".into(),
        config: sa.map(|sa| {
            IntegrationConfig::Gcp(GcpConfig {
                customer_google_service_account: sa.into(),
                google_service_account: Some("cflt@cflt.iam.gserviceaccount.com".into()),
            })
        }),
        usages: vec![],
        environment: EnvironmentRef {
            id: env.into(),
            ..Default::default()
        },
        status: Some(if sa.is_some() { "CREATED" } else { "DRAFT" }.into()),
    }
}

fn integration(id: &str, env: &str, name: &str, role: &str) -> Integration {
    Integration {
        api_version: "pim/v1".into(),
        kind: "Integration".into(),
        id: id.into(),
        display_name: name.into(),
        provider: "AWS".into(),
        config: Some(IntegrationConfig::Aws(AwsConfig {
            customer_iam_role_arn: role.into(),
            iam_role_arn: Some("arn:aws:iam::000000000000:role/cflt".into()),
            external_id: Some("ext".into()),
        })),
        usages: vec![],
        environment: EnvironmentRef {
            id: env.into(),
            ..Default::default()
        },
        status: None,
    }
}

fn status(id: Option<&str>, pending: Option<PendingCreate>) -> ProviderIntegrationStatus {
    ProviderIntegrationStatus {
        id: id.map(String::from),
        environment: id.map(|_| ENV.to_string()),
        pending_create: pending,
        ..Default::default()
    }
}

fn intent() -> PendingCreate {
    PendingCreate {
        environment: ENV.into(),
        display_name: "name".into(),
        provider: None,
        customer_iam_role_arn: Some(ROLE.into()),
    }
}

fn all_desired() -> Vec<Desired> {
    let mut v = Vec::new();
    for adopt in [None, Some("dlz-a"), Some("dlz-b")] {
        for policy in [UpdatePolicy::Manual, UpdatePolicy::Recreate] {
            for explicit in [false, true] {
                v.push(desired(adopt, policy, explicit));
                v.push(desired_gcp(adopt, policy, explicit));
            }
        }
    }
    v
}

fn all_status() -> Vec<ProviderIntegrationStatus> {
    let other = PendingCreate {
        customer_iam_role_arn: Some(OTHER_ROLE.into()),
        ..intent()
    };
    let gcp_intent = desired_gcp(None, UpdatePolicy::Manual, false).intent();
    let mut v = Vec::new();
    for id in [None, Some("dlz-a"), Some("dlz-b")] {
        for pending in [
            None,
            Some(intent()),
            Some(other.clone()),
            Some(gcp_intent.clone()),
        ] {
            v.push(status(id, pending));
        }
    }
    v
}

/// Every remote state the lookup chosen by `lookup` can produce.
fn all_observed(d: &Desired, s: &ProviderIntegrationStatus) -> Vec<Observed> {
    let aws = d.provider() == CloudProvider::Aws;
    // An integration of the desired provider, and one of the other.
    let mine = |id: &str, env: &str, name: &str, other_config: bool| {
        if aws {
            integration(id, env, name, if other_config { OTHER_ROLE } else { ROLE })
        } else {
            gcp(
                id,
                env,
                name,
                Some(if other_config { OTHER_SA } else { SA }),
            )
        }
    };
    let theirs = |id: &str| {
        if aws {
            gcp(id, ENV, "name", Some(SA))
        } else {
            integration(id, ENV, "name", ROLE)
        }
    };
    match lookup(d, s, None) {
        Lookup::ById { id, .. } => vec![
            Observed::Found(mine(&id, ENV, "name", false)),
            Observed::Found(mine(&id, ENV, "other-name", false)),
            Observed::Found(mine(&id, ENV, "name", true)),
            Observed::Found(mine(&id, "env-2", "name", false)),
            Observed::Found(theirs(&id)),
            Observed::Found(gcp(&id, ENV, "name", None)),
            Observed::Missing,
        ],
        Lookup::ByKey { .. } => vec![
            Observed::ByKey(vec![]),
            Observed::ByKey(vec![mine("dlz-k", ENV, "name", false)]),
            // Same role (AWS's key), another name: someone else's.
            Observed::ByKey(vec![mine("dlz-k", ENV, "their-name", false)]),
            Observed::ByKey(vec![gcp("dlz-k", ENV, "name", None)]),
            Observed::ByKey(vec![
                mine("dlz-k", ENV, "name", false),
                mine("dlz-l", ENV, "name", false),
            ]),
            // Robustness: a `Found` with nothing tracked counts as a key match.
            Observed::Found(mine("dlz-k", ENV, "name", false)),
        ],
    }
}

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

fn condition(status: &str, generation: i64, message: &str) -> Condition {
    Condition {
        type_: "Validated".into(),
        status: status.into(),
        reason: "R".into(),
        message: message.into(),
        observed_generation: Some(generation),
        last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::UNIX_EPOCH,
        ),
    }
}

#[test]
fn validation_step_table() {
    let now = Instant::now();
    let later = now + Duration::from_secs(10);
    let memo = |id: &str, generation: i64, due: Instant, failures: u32| ValidationMemo {
        generation: Some(generation),
        id: id.into(),
        due,
        failures,
    };
    let current = condition("True", 1, "");
    let old = condition("True", 0, "");
    let cases = [
        // Never validated.
        (None, Some(&current), ValidationStep::Now { failures: 0 }),
        // Due later, same id and generation, condition current: wait.
        (
            Some(memo("i", 1, later, 2)),
            Some(&current),
            ValidationStep::NotYet(Duration::from_secs(10)),
        ),
        // Due now: validate, counting the failures so far.
        (
            Some(memo("i", 1, now, 2)),
            Some(&current),
            ValidationStep::Now { failures: 2 },
        ),
        // Another integration: its own count.
        (
            Some(memo("other", 1, later, 2)),
            Some(&current),
            ValidationStep::Now { failures: 0 },
        ),
        // Another generation, or a condition of an older one: at once.
        (
            Some(memo("i", 0, later, 2)),
            Some(&current),
            ValidationStep::Now { failures: 2 },
        ),
        (
            Some(memo("i", 1, later, 2)),
            Some(&old),
            ValidationStep::Now { failures: 2 },
        ),
        (
            Some(memo("i", 1, later, 2)),
            None,
            ValidationStep::Now { failures: 2 },
        ),
    ];
    for (m, c, want) in cases {
        assert_eq!(
            validation_step(m.as_ref(), "i", Some(1), c, now),
            want,
            "{m:?} {c:?}"
        );
    }
}

#[test]
fn validation_outcome_table() {
    let i = gcp("cspi-1", ENV, "name", Some(SA));
    let pass = || Validation::Passed;
    let fail = || Validation::Failed("denied".into());
    let blip = || Validation::Transient {
        error: "503".into(),
        retry_after: Some(Duration::from_secs(3)),
    };
    let failed_msg = validation_outcome(&i, None, 0, fail()).condition.unwrap().2;
    let was_true = condition("True", 1, "ok");
    let was_false = condition("False", 1, &failed_msg);
    let was_false_other = condition("False", 1, "older detail");
    // (previous, result) → condition status set (None: kept), event (warning?), next
    type Case<'a> = (
        Option<&'a Condition>,
        Validation,
        Option<&'static str>,
        Option<bool>,
        Next,
    );
    let cases: Vec<Case> = vec![
        (None, pass(), Some("True"), Some(false), Next::Resync),
        // Passing again: no event.
        (Some(&was_true), pass(), Some("True"), None, Next::Resync),
        (
            Some(&was_false),
            pass(),
            Some("True"),
            Some(false),
            Next::Resync,
        ),
        (
            None,
            fail(),
            Some("False"),
            Some(true),
            Next::StallRetry { failures: 3 },
        ),
        // The same failure again: no second Warning.
        (
            Some(&was_false),
            fail(),
            Some("False"),
            None,
            Next::StallRetry { failures: 3 },
        ),
        (
            Some(&was_false_other),
            fail(),
            Some("False"),
            Some(true),
            Next::StallRetry { failures: 3 },
        ),
        // A blip never says anything about the customer's setup.
        (
            None,
            blip(),
            Some("Unknown"),
            None,
            Next::Retry {
                failures: 3,
                hint: Some(Duration::from_secs(3)),
            },
        ),
        (
            Some(&was_true),
            blip(),
            None,
            None,
            Next::Retry {
                failures: 3,
                hint: Some(Duration::from_secs(3)),
            },
        ),
        (
            Some(&was_false),
            blip(),
            None,
            None,
            Next::Retry {
                failures: 3,
                hint: Some(Duration::from_secs(3)),
            },
        ),
    ];
    for (previous, result, status, warning, next) in cases {
        let what = format!("{previous:?} {result:?}");
        let o = validation_outcome(&i, previous, 2, result);
        assert_eq!(o.condition.as_ref().map(|c| c.0), status, "{what}");
        assert_eq!(o.event.as_ref().map(|e| e.0), warning, "{what}");
        assert_eq!(o.next, next, "{what}");
        assert_eq!(
            o.failures,
            if next == Next::Resync { 0 } else { 3 },
            "{what}"
        );
    }
    // The failure names the grant to make; the pass names the identity.
    assert!(failed_msg.contains("roles/iam.serviceAccountTokenCreator"));
    assert!(
        validation_outcome(&i, None, 0, pass())
            .condition
            .unwrap()
            .2
            .contains(SA)
    );
}

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

/// `decide/` stays pure: none of its files names a client, a runtime or another folder of the
/// controller (a new `use` of one fails here, not in review).
#[test]
fn decide_does_no_io() {
    let files = [
        ("mod.rs", include_str!("mod.rs")),
        ("desired.rs", include_str!("desired.rs")),
        ("validation.rs", include_str!("validation.rs")),
        ("reasons.rs", include_str!("reasons.rs")),
    ];
    let forbidden = [
        "kube::",
        "reqwest",
        "tokio",
        "std::time::Instant",
        "controller::steps",
        "controller::state",
        "controller::runtime",
        "PimClient",
    ];
    for (name, text) in files {
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for f in forbidden {
                assert!(
                    !code.contains(f),
                    "decide/{name}:{}: {f} in {line:?}",
                    n + 1
                );
            }
        }
    }
}
