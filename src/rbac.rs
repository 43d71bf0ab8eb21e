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
}

const fn rule(group: &'static str, resource: &'static str, verbs: &'static [&'static str]) -> Rule {
    Rule {
        group,
        resource,
        verbs,
        own_namespace: false,
        cluster: false,
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
    },
    // The outputs ConfigMap (`spec.writeOutputsTo`): read by name to check its owner, written by
    // server-side apply (which creates it when missing), deleted when renamed. Never listed or
    // watched.
    rule("", "configmaps", &["get", "create", "patch", "delete"]),
    // kube's event recorder creates events and patches repeated ones into a series.
    rule("events.k8s.io", "events", &["create", "patch"]),
    // Leader election (kube-lease-manager) reads, creates and renews its Lease.
    Rule {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "create", "patch"],
        own_namespace: true,
        cluster: false,
    },
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
            })
        })
        .collect()
}
