//! The resource as the controller's cache keeps it. A decoded `ProviderIntegration` is a
//! 960-byte struct (mostly empty `Option`s) plus some thirty small allocations, about 2.4 KB
//! per resource; its trimmed JSON is one allocation of about 1 KB. The cache keeps the JSON
//! (and the name and namespace it is looked up by), and a reconcile decodes the one copy it
//! works on: a few microseconds, against megabytes at 10,000 resources (`benches/scale.rs`).

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, core::NamespaceResourceScope, runtime::watcher};
use serde::{Deserialize, Serialize};

use crate::controller::state::trim;
use crate::crd::{
    PAUSED, ProviderIntegration, ProviderIntegrationSpec, ProviderIntegrationStatus, STALLED,
    VALIDATED,
};

/// One cached resource. Its metadata holds only the name and namespace (the cache's key; a uid
/// or resourceVersion there would be copied into every key too); everything else is in `json`.
#[derive(Clone, Debug)]
pub struct Cached {
    metadata: ObjectMeta,
    json: Box<str>,
    state: State,
}

/// What the per-state gauges count, read once as the copy is cached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct State {
    pub kstatus: Kstatus,
    /// The `Validated` condition's status: `None` without one.
    pub validated: Option<ValidatedState>,
    /// The `Paused` condition is True.
    pub paused: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kstatus {
    Ready,
    Stalled,
    Reconciling,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ValidatedState {
    Passed,
    Failed,
    Pending,
}

impl State {
    fn of(pi: &ProviderIntegration) -> Self {
        let kstatus = if pi.is_ready() {
            Kstatus::Ready
        } else if pi.condition(STALLED).is_some_and(|c| c.status == "True") {
            Kstatus::Stalled
        } else {
            Kstatus::Reconciling
        };
        let validated = pi.condition(VALIDATED).map(|c| match c.status.as_str() {
            "True" => ValidatedState::Passed,
            "False" => ValidatedState::Failed,
            _ => ValidatedState::Pending,
        });
        let paused = pi.condition(PAUSED).is_some_and(|c| c.status == "True");
        Self {
            kstatus,
            validated,
            paused,
        }
    }
}

/// The JSON a copy is kept as: the resource without what is the same for every resource
/// (`apiVersion`, `kind`) or kept beside it (the name and namespace).
#[derive(Serialize)]
struct Stored<'a> {
    metadata: &'a ObjectMeta,
    spec: &'a ProviderIntegrationSpec,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a ProviderIntegrationStatus>,
}

impl Cached {
    /// The copy to cache: `pi` trimmed (`trim`), as JSON.
    pub fn of(mut pi: ProviderIntegration) -> Self {
        trim(&mut pi);
        let state = State::of(&pi);
        let metadata = ObjectMeta {
            name: pi.metadata.name.take(),
            namespace: pi.metadata.namespace.take(),
            ..ObjectMeta::default()
        };
        let kept = Stored {
            metadata: &pi.metadata,
            spec: &pi.spec,
            status: pi.status.as_ref(),
        };
        Self {
            metadata,
            // Encoding a value that was just decoded cannot fail (string keys, finite numbers).
            json: serde_json::to_string(&kept).unwrap_or_default().into(),
            state,
        }
    }

    /// The resource as it was cached (trimmed). Fails only if our own encoding does not decode,
    /// which a test of every field rules out.
    pub fn decode(&self) -> Result<ProviderIntegration, serde_json::Error> {
        let mut pi: ProviderIntegration = serde_json::from_str(&self.json)?;
        pi.metadata.name = self.metadata.name.clone();
        pi.metadata.namespace = self.metadata.namespace.clone();
        Ok(pi)
    }

    pub(crate) fn state(&self) -> State {
        self.state
    }
}

impl Resource for Cached {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        ProviderIntegration::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        ProviderIntegration::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        ProviderIntegration::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        ProviderIntegration::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// A watch event with its object as the cache keeps it.
pub(crate) fn cache(event: watcher::Event<ProviderIntegration>) -> watcher::Event<Cached> {
    use watcher::Event::*;
    match event {
        Apply(pi) => Apply(Cached::of(pi)),
        Delete(pi) => Delete(Cached::of(pi)),
        InitApply(pi) => InitApply(Cached::of(pi)),
        Init => Init,
        InitDone => InitDone,
    }
}

/// kube's `Controller` asks that its objects decode; ours come from the watch already decoded
/// (`Cached::of`), so this is only the same path from JSON.
impl<'de> Deserialize<'de> for Cached {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ProviderIntegration::deserialize(d).map(Cached::of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json(pi: ProviderIntegration) -> serde_json::Value {
        serde_json::to_value(pi).unwrap()
    }

    /// Every field of the spec, status and metadata the controller reads, set.
    fn full() -> ProviderIntegration {
        serde_json::from_value(json!({
            "apiVersion": "pim.confluent.cloud/v1alpha1", "kind": "ProviderIntegration",
            "metadata": {
                "name": "orders", "namespace": "team-a", "uid": "u-1", "resourceVersion": "42",
                "generation": 3, "creationTimestamp": "2026-01-01T00:00:00Z",
                "deletionTimestamp": "2026-01-02T00:00:00Z", "deletionGracePeriodSeconds": 0,
                "finalizers": ["pim.confluent.cloud/finalizer", "other/finalizer"],
                "annotations": {"pim.confluent.cloud/credentials": "default",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}"},
                "labels": {"app": "x"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]
            },
            "spec": {"environment": "env-1", "displayName": "orders", "provider": "AWS",
                "aws": {"customerIamRoleArn": "arn:aws:iam::123456789012:role/x", "validate": true},
                "credentialsRef": {"name": "creds", "apiKeyField": "k", "apiSecretField": "s"},
                "deletionPolicy": "Orphan", "updatePolicy": "Recreate",
                "integrationId": "dlz-1", "writeOutputsTo": {"name": "out"}},
            "status": {"id": "dlz-1", "environment": "env-1", "externalId": "e",
                "iamRoleArn": "arn:aws:iam::0:role/c", "provider": "AWS", "phase": "ACTIVE",
                "outputsConfigMap": "out", "usages": ["crn://x"],
                "pendingCreate": {"environment": "env-1", "displayName": "orders",
                    "provider": "AWS", "customerIamRoleArn": "arn:aws:iam::123456789012:role/x"},
                "observedGeneration": 3,
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": "Synced", "message": "m",
                     "observedGeneration": 3, "lastTransitionTime": "2026-01-01T00:00:00Z"},
                    {"type": "Validated", "status": "False", "reason": "R", "message": "",
                     "observedGeneration": 3, "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_cached_copy_decodes_to_the_trimmed_resource() {
        let mut want = full();
        trim(&mut want);
        let cached = Cached::of(full());
        assert_eq!(json(cached.decode().unwrap()), json(want));
        // Looked up by name and namespace, and nothing else is kept twice.
        assert_eq!(cached.meta().name.as_deref(), Some("orders"));
        assert_eq!(cached.meta().namespace.as_deref(), Some("team-a"));
        assert_eq!(cached.meta().uid, None);
        assert_eq!(
            cached.state(),
            State {
                kstatus: Kstatus::Ready,
                validated: Some(ValidatedState::Failed),
                paused: false,
            }
        );
        // What the trim drops is gone; the kept annotation map is there.
        let pi = cached.decode().unwrap();
        assert_eq!(pi.metadata.managed_fields, None);
        assert_eq!(pi.metadata.labels, None);
        assert_eq!(
            pi.metadata.annotations.unwrap().keys().collect::<Vec<_>>(),
            ["pim.confluent.cloud/credentials"]
        );
    }

    #[test]
    fn the_cache_decodes_what_kube_hands_it() {
        let cached: Cached = serde_json::from_value(serde_json::to_value(full()).unwrap()).unwrap();
        let mut want = full();
        trim(&mut want);
        assert_eq!(json(cached.decode().unwrap()), json(want));
    }

    #[test]
    fn an_emptied_annotation_map_stays() {
        let mut pi = full();
        pi.metadata.annotations = Some(
            [("other/x".to_string(), "y".to_string())]
                .into_iter()
                .collect(),
        );
        let back = Cached::of(pi).decode().unwrap();
        assert_eq!(back.metadata.annotations, Some(Default::default()));
    }
}
