//! Exhaustive tests of the decision: every combination of spec × status × remote state, checked
//! against invariants, plus table cases for the exact outcome.

use super::*;
use crate::crd::{
    CloudProvider, DeletionPolicy, PendingCreate, ProviderIntegrationStatus, UpdatePolicy,
};
use crate::pim::{AwsConfig, EnvironmentRef, GcpConfig, Integration, IntegrationConfig};

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
    match lookup(d, s) {
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
                            Action::Stall {
                                reason: StallReason::IntegrationIdChanged,
                                ..
                            }
                        ),
                        "{ctx}"
                    );
                    continue;
                }
                match &a {
                    // Never take over an integration we did not start creating.
                    Action::Claim(i) => {
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
                    Action::Adopt(i) => {
                        assert!(s.id.is_none(), "{ctx}");
                        assert_eq!(d.adopt_id.as_deref(), Some(i.id.as_str()), "{ctx}");
                    }
                    // Recreate only on opt-in, never for adopted integrations.
                    Action::Recreate { changed, .. } => {
                        assert_eq!(d.update_policy, UpdatePolicy::Recreate, "{ctx}");
                        assert!(
                            d.adopt_id.is_none() && s.id.is_some() && !changed.is_empty(),
                            "{ctx}"
                        );
                    }
                    // In sync means the observed integration matches the spec.
                    Action::InSync(i) => {
                        assert!(
                            changed_fields(&d, i, d.adopt_id.is_some()).is_empty(),
                            "{ctx}"
                        );
                        assert!(s.id.is_some(), "{ctx}");
                    }
                    Action::Create { replaces } => {
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
                    Action::Stall { message, .. } => assert!(!message.is_empty(), "{ctx}"),
                }
                let one_match = matches!(&o, Observed::ByKey(v) if v.len() == 1)
                    || matches!(&o, Observed::Found(_));
                if let (true, None, None, None) = (one_match, &s.pending_create, &s.id, &d.adopt_id)
                {
                    assert!(
                        matches!(
                            a,
                            Action::Stall {
                                reason: StallReason::AlreadyExists,
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
        Action::InSync(same.clone())
    );
    assert!(
        matches!(decide(&manual, &tracked, Observed::Found(rerole.clone())),
        Action::Stall { reason: StallReason::ImmutableFieldChanged, message } if message.contains("aws.customerIamRoleArn"))
    );
    assert!(
        matches!(decide(&manual, &tracked, Observed::Found(moved.clone())),
        Action::Stall { reason: StallReason::ImmutableFieldChanged, message } if message.contains("environment"))
    );
    assert!(
        matches!(decide(&manual, &tracked, Observed::Found(renamed.clone())),
        Action::Stall { reason: StallReason::ImmutableFieldChanged, message } if message.contains("displayName"))
    );
    assert!(
        matches!(decide(&recreate, &tracked, Observed::Found(rerole.clone())),
        Action::Recreate { old, changed } if old.id == "dlz-a" && changed == vec!["aws.customerIamRoleArn"])
    );
    assert_eq!(
        decide(&manual, &tracked, Observed::Missing),
        Action::Create {
            replaces: Some("dlz-a".into())
        }
    );
    assert_eq!(
        decide(&manual, &fresh, Observed::ByKey(vec![])),
        Action::Create { replaces: None }
    );
    assert!(
        matches!(decide(&manual, &fresh, Observed::ByKey(vec![same.clone()])),
        Action::Stall { reason: StallReason::AlreadyExists, message } if message.contains("integrationId: dlz-a"))
    );
    assert_eq!(
        decide(&manual, &pending, Observed::ByKey(vec![same.clone()])),
        Action::Claim(same.clone())
    );
    assert_eq!(
        decide(&manual, &pending, Observed::ByKey(vec![])),
        Action::Create { replaces: None }
    );

    // Adoption: an implicit display name does not have to match; an explicit one does.
    assert_eq!(
        decide(&adopt, &fresh, Observed::Found(renamed.clone())),
        Action::Adopt(renamed.clone())
    );
    let adopt_named = desired(Some("dlz-a"), UpdatePolicy::Manual, true);
    assert!(matches!(
        decide(&adopt_named, &fresh, Observed::Found(renamed.clone())),
        Action::Stall {
            reason: StallReason::AdoptedMismatch,
            ..
        }
    ));
    assert!(matches!(
        decide(&adopt, &fresh, Observed::Found(rerole.clone())),
        Action::Stall {
            reason: StallReason::AdoptedMismatch,
            ..
        }
    ));
    assert!(matches!(
        decide(&adopt, &fresh, Observed::Missing),
        Action::Stall {
            reason: StallReason::AdoptionTargetNotFound,
            ..
        }
    ));
    assert!(matches!(
        decide(&adopt, &tracked, Observed::Missing),
        Action::Stall {
            reason: StallReason::IntegrationGone,
            ..
        }
    ));
    let adopt_recreate = desired(Some("dlz-a"), UpdatePolicy::Recreate, false);
    assert!(matches!(
        decide(&adopt_recreate, &tracked, Observed::Found(rerole)),
        Action::Stall {
            reason: StallReason::AdoptedMismatch,
            ..
        }
    ));
    let adopt_b = desired(Some("dlz-b"), UpdatePolicy::Manual, false);
    assert!(matches!(
        decide(&adopt_b, &tracked, Observed::Found(same)),
        Action::Stall {
            reason: StallReason::IntegrationIdChanged,
            ..
        }
    ));
}

#[test]
fn lookups() {
    let d = desired(None, UpdatePolicy::Manual, false);
    assert_eq!(
        lookup(&d, &status(None, None)),
        Lookup::ByKey {
            key: intent(),
            fresh: false
        }
    );
    assert_eq!(
        lookup(&d, &status(None, Some(intent()))),
        Lookup::ByKey {
            key: intent(),
            fresh: true
        }
    );
    let mut s = status(Some("dlz-a"), None);
    s.environment = Some("env-old".into());
    assert_eq!(
        lookup(&d, &s),
        Lookup::ById {
            id: "dlz-a".into(),
            environment: "env-old".into(),
            version: ApiVersion::V1,
        }
    );
    let a = desired(Some("dlz-z"), UpdatePolicy::Manual, false);
    assert_eq!(
        lookup(&a, &status(None, None)),
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
        lookup(&g, &s),
        Lookup::ById {
            version: ApiVersion::V2,
            ..
        }
    ));
    // A legacy AWS status (no provider recorded) stays on pim/v1 even if the spec now says GCP.
    assert!(matches!(
        lookup(&g, &status(Some("dlz-a"), None)),
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
        Action::InSync(draft.clone())
    );
    assert!(matches!(
        decide(&d, &tracked, Observed::Found(gcp("dlz-a", ENV, "name", Some(OTHER_SA)))),
        Action::Stall { reason: StallReason::ImmutableFieldChanged, message } if message.contains("gcp.customerGoogleServiceAccount")
    ));
    assert!(matches!(
        decide(&d, &tracked, Observed::Found(integration("dlz-a", ENV, "name", ROLE))),
        Action::Stall { reason: StallReason::ImmutableFieldChanged, message } if message.contains("provider")
    ));
    let pending = status(None, Some(d.intent()));
    assert_eq!(
        decide(&d, &pending, Observed::ByKey(vec![draft.clone()])),
        Action::Claim(draft.clone())
    );
    let two = vec![draft.clone(), gcp("dlz-b", ENV, "name", None)];
    assert!(matches!(
        decide(&d, &pending, Observed::ByKey(two)),
        Action::Stall { reason: StallReason::Ambiguous, message } if message.contains("dlz-a, dlz-b")
    ));
    assert!(matches!(
        decide(&d, &status(None, None), Observed::ByKey(vec![draft])),
        Action::Stall { reason: StallReason::AlreadyExists, message } if message.contains("spec.displayName")
    ));
    assert_eq!(
        cleanup(DeletionPolicy::Delete, &tracked),
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
    assert_eq!(cleanup(DeletionPolicy::Orphan, &tracked), Cleanup::Orphan);
    assert_eq!(
        cleanup(DeletionPolicy::Delete, &tracked),
        Cleanup::Delete {
            id: "dlz-a".into(),
            environment: ENV.into(),
            version: ApiVersion::V1,
        }
    );
    assert_eq!(
        cleanup(DeletionPolicy::Delete, &status(None, Some(intent()))),
        Cleanup::FindThenDelete(intent())
    );
    assert_eq!(
        cleanup(DeletionPolicy::Delete, &status(None, None)),
        Cleanup::Nothing
    );
}

#[test]
fn refusals_are_judged_by_usages() {
    let mut used = integration("dlz-a", ENV, "n", ROLE);
    used.usages = vec!["crn://x".into()];
    assert_eq!(
        refusal("409", Some(&used)),
        Refusal::InUse(vec!["crn://x".into()])
    );
    let unused = integration("dlz-a", ENV, "n", ROLE);
    assert_eq!(
        refusal("conflict", Some(&unused)),
        Refusal::Other("conflict".into())
    );
    assert_eq!(refusal("conflict", None), Refusal::Other("conflict".into()));
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
