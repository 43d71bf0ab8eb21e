//! Exhaustive tests of the decision: every combination of spec × status × remote state, checked
//! against invariants, plus table cases for the exact outcome, by path: `apply.rs` (decide and
//! lookups), `lifecycle.rs` (cleanup, observer, pause, finalizer, conflicts, deletion targets),
//! `validation.rs`, `ownership.rs`. The fixtures are here.

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

mod apply;
mod lifecycle;
mod ownership;
mod validation;

/// `decide/` stays pure: none of its files names a client, a runtime or another folder of the
/// controller (a new `use` of one fails here, not in review).
#[test]
fn decide_does_no_io() {
    let files = [
        ("mod.rs", include_str!("../mod.rs")),
        ("desired.rs", include_str!("../desired.rs")),
        ("validation.rs", include_str!("../validation.rs")),
        ("reasons.rs", include_str!("../reasons.rs")),
        ("reason_help.rs", include_str!("../reason_help.rs")),
        ("lookup.rs", include_str!("../lookup.rs")),
        ("gates.rs", include_str!("../gates.rs")),
        ("observer.rs", include_str!("../observer.rs")),
        ("deletion.rs", include_str!("../deletion.rs")),
        ("trust/mod.rs", include_str!("../trust/mod.rs")),
        ("trust/aws.rs", include_str!("../trust/aws.rs")),
        ("trust/objects.rs", include_str!("../trust/objects.rs")),
        ("trust/readiness.rs", include_str!("../trust/readiness.rs")),
        ("trust/write.rs", include_str!("../trust/write.rs")),
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
