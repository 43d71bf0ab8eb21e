//! The Kubernetes API calls the operator makes, in one place. The Helm chart's RBAC rules must
//! grant exactly these (checked by `.ci/charts`), so least privilege cannot drift from the code.

/// One RBAC rule: API group, resource (or `resource/subresource`) and verbs.
pub struct Rule {
    pub group: &'static str,
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    /// Only in the operator's own namespace (not cluster-wide, nor in watched namespaces).
    pub own_namespace: bool,
    /// Cluster-wide whatever is watched: the resource is cluster-scoped (a Role cannot grant it).
    pub cluster: bool,
    /// Granted only when the chart's `trust.<key>` is on: a cloud operator's kind that carries a
    /// trust (`spec.trust`).
    pub trust: Option<&'static str>,
}

const fn rule(group: &'static str, resource: &'static str, verbs: &'static [&'static str]) -> Rule {
    Rule {
        group,
        resource,
        verbs,
        own_namespace: false,
        cluster: false,
        trust: None,
    }
}

/// The verbs on a trust kind: read and watched (the cloud operator's reports), created and
/// applied (`Own`), merge-patched (`Share`), deleted (`Own`, with the integration).
const TRUST_VERBS: &[&str] = &["get", "list", "watch", "create", "patch", "delete"];

const fn trust_rule(
    group: &'static str,
    resource: &'static str,
    cluster: bool,
    key: &'static str,
) -> Rule {
    Rule {
        group,
        resource,
        verbs: TRUST_VERBS,
        own_namespace: false,
        cluster,
        trust: Some(key),
    }
}

/// Every rule the operator needs, and why.
pub const RULES: &[Rule] = &[
    // The controller's watcher lists and watches; the finalizer is added and removed by patch.
    rule(
        "pim.confluent.cloud",
        "providerintegrations",
        &["list", "watch", "patch"],
    ),
    // Status is written by server-side apply.
    rule(
        "pim.confluent.cloud",
        "providerintegrations/status",
        &["patch"],
    ),
    // Needed where the OwnerReferencesPermissionEnforcement admission plugin guards finalizers.
    rule(
        "pim.confluent.cloud",
        "providerintegrations/finalizers",
        &["update"],
    ),
    // Credentials are read by name only: never listed or watched.
    rule("", "secrets", &["get"]),
    // Namespaces are followed by one metadata-only watch, for the annotations that grant the
    // default credentials and pause every resource in them. Read-only; cluster-wide even in a
    // namespace-scoped install (without it, both annotations are off, said once at start).
    Rule {
        group: "",
        resource: "namespaces",
        verbs: &["list", "watch"],
        own_namespace: false,
        cluster: true,
        trust: None,
    },
    // The outputs ConfigMap (`spec.writeOutputsTo`): read by name to check its owner, written by
    // server-side apply (which creates it when missing), deleted when renamed. Never listed or
    // watched.
    rule("", "configmaps", &["get", "create", "patch", "delete"]),
    // kube's event recorder creates events and patches repeated ones into a series.
    rule("events.k8s.io", "events", &["create", "patch"]),
    // Leader election (`leader.rs`) reads, creates and renews its Lease.
    Rule {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "create", "patch"],
        own_namespace: true,
        cluster: false,
        trust: None,
    },
    // The trust objects (`spec.trust`), each kind only where the chart turns it on.
    trust_rule("iam.services.k8s.aws", "roles", false, "ackRole"),
    trust_rule("iam.aws.m.upbound.io", "roles", false, "crossplaneRole"),
    trust_rule("iam.aws.upbound.io", "roles", true, "crossplaneClusterRole"),
    trust_rule(
        "iam.cnrm.cloud.google.com",
        "iampolicymembers",
        false,
        "configConnectorPolicyMember",
    ),
    trust_rule(
        "serviceprincipals.azuread.m.upbound.io",
        "principals",
        false,
        "crossplanePrincipal",
    ),
    trust_rule(
        "serviceprincipals.azuread.upbound.io",
        "principals",
        true,
        "crossplaneClusterPrincipal",
    ),
];

/// The rules as JSON (`provider-integration-operator rbac`), for the chart checks.
pub fn rules_json() -> serde_json::Value {
    RULES
        .iter()
        .map(|r| {
            serde_json::json!({
                "apiGroup": r.group,
                "resource": r.resource,
                "verbs": r.verbs,
                "ownNamespace": r.own_namespace,
                "cluster": r.cluster,
                "trust": r.trust,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::decide::trust::TrustKind;
    use strum::IntoEnumIterator;

    /// Every kind the operator can write a trust to has its rule, switched by its chart key.
    #[test]
    fn each_trust_kind_has_its_rule() {
        for k in TrustKind::iter() {
            let r = RULES
                .iter()
                .find(|r| r.trust == Some(k.chart_key()))
                .unwrap_or_else(|| panic!("{k:?}"));
            assert_eq!((r.group, r.resource), (k.group(), k.plural()), "{k:?}");
            assert_eq!(r.cluster, !k.namespaced(), "{k:?}");
        }
        assert_eq!(RULES.iter().filter(|r| r.trust.is_some()).count(), 6);
    }
}
