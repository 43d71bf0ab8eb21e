//! The Kubernetes API calls the operator makes, in one place. The Helm chart's RBAC rules must
//! grant exactly these (checked by `.ci/charts`), so least privilege cannot drift from the code.

/// One RBAC rule: API group, resource (or `resource/subresource`) and verbs.
pub struct Rule {
    pub group: &'static str,
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
}

/// Every rule the operator needs, and why.
pub const RULES: &[Rule] = &[
    // The controller's watcher lists and watches; the finalizer is added and removed by patch.
    Rule {
        group: "pim.confluent.cloud",
        resource: "providerintegrations",
        verbs: &["list", "watch", "patch"],
    },
    // Status is written by server-side apply.
    Rule {
        group: "pim.confluent.cloud",
        resource: "providerintegrations/status",
        verbs: &["patch"],
    },
    // Needed where the OwnerReferencesPermissionEnforcement admission plugin guards finalizers.
    Rule {
        group: "pim.confluent.cloud",
        resource: "providerintegrations/finalizers",
        verbs: &["update"],
    },
    // Credentials are read by name only: never listed or watched.
    Rule {
        group: "",
        resource: "secrets",
        verbs: &["get"],
    },
    // kube's event recorder creates events and patches repeated ones into a series.
    Rule {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create", "patch"],
    },
];

/// The rules as JSON (`provider-integration-operator rbac`), for the chart checks.
pub fn rules_json() -> serde_json::Value {
    RULES
        .iter()
        .map(|r| serde_json::json!({"apiGroup": r.group, "resource": r.resource, "verbs": r.verbs}))
        .collect()
}
