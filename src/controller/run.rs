//! Wiring: one `kube::runtime::Controller` per watched scope, readiness once the caches have
//! synced, and the per-state gauges counted from those caches.

use std::{sync::Arc, time::Duration};

use futures::{StreamExt, TryStreamExt};
use kube::{
    Api, ResourceExt,
    runtime::{Controller, WatchStreamExt, reflector, reflector::ObjectRef, watcher},
};

use super::{Context, error_policy, reconcile};
use crate::crd::{ProviderIntegration, VALIDATED};

/// Runs the controller until `shutdown` resolves: one watch for all namespaces, or one per
/// namespace in `Config::namespaces` (which then needs only namespaced RBAC).
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let apis: Vec<Api<ProviderIntegration>> = if ctx.config.namespaces.is_empty() {
        vec![Api::all(ctx.client.clone())]
    } else {
        ctx.config
            .namespaces
            .iter()
            .map(|ns| Api::namespaced(ctx.client.clone(), ns))
            .collect()
    };
    let shutdown = futures::FutureExt::shared(shutdown);
    let mut stores = Vec::new();
    let mut runs = Vec::new();
    for api in apis {
        let config =
            kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency);
        // What `Controller::new` does, with the owner index following the same events as the
        // cache, before any reconcile they trigger.
        let (reader, writer) = reflector::store();
        let index = ctx.clone();
        // A consistent LIST in pages of 500 (kube's default), not `resourceVersion=0`: an API
        // server answers that from its watch cache in one piece, whatever its size, and parsing
        // it at once is the operator's peak memory. Each page is trimmed as it arrives.
        // The watch drives the cache and the index; reconciles are triggered by bare references
        // (name and namespace): the scheduler keeps one per resource, and kube's own
        // `ObjectRef::from_obj` would copy each `uid` and `resourceVersion` into it, which no
        // lookup reads (an `ObjectRef` compares by name and namespace).
        let triggers = watcher(api, watcher::Config::default())
            // This stream's errors never reach the controller's own trigger backoff.
            .default_backoff()
            .modify(trim)
            .reflect(writer)
            .inspect_ok(move |event| index.owners.apply(event))
            .applied_objects()
            .filter_map(|r| {
                futures::future::ready(match r {
                    Ok(pi) => Some(
                        ObjectRef::new(&pi.name_any()).within(&pi.namespace().unwrap_or_default()),
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "watching ProviderIntegrations failed; retrying");
                        None
                    }
                })
            });
        let controller = Controller::for_stream(futures::stream::pending(), reader)
            .reconcile_on(triggers)
            .with_config(config)
            .graceful_shutdown_on(shutdown.clone());
        stores.push(controller.store());
        runs.push(
            controller
                .run(reconcile, error_policy, ctx.clone())
                .for_each(|_| futures::future::ready(())),
        );
    }
    let gauges = tokio::spawn(count_states(ctx.clone(), stores.clone()));
    let synced = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            for s in &stores {
                if s.wait_until_ready().await.is_err() {
                    return;
                }
            }
            ctx.ready.store(true, std::sync::atomic::Ordering::Relaxed);
        })
    };
    futures::future::join_all(runs).await;
    ctx.ready.store(false, std::sync::atomic::Ordering::Relaxed);
    synced.abort();
    gauges.abort();
}

/// Drops what the controller never reads before an object enters the cache: `managedFields`
/// and kubectl's last-applied annotation are kilobytes per object on a real API server, and
/// the labels, owner references and other tools' annotations are read by no reconcile (no
/// write of ours sends the whole object back). An annotation map emptied here stays `Some`:
/// "the object has annotations" decides whether a JSON patch may add to the map or must
/// create it, and creating it would replace everyone else's.
pub(super) fn trim(pi: &mut ProviderIntegration) {
    let m = &mut pi.metadata;
    m.managed_fields = None;
    m.labels = None;
    m.owner_references = None;
    // The first create's intent is ignored once an id is recorded (`recorded_intent`).
    let recorded = pi.status.as_ref().is_some_and(|s| s.id.is_some());
    if let Some(a) = m.annotations.as_mut() {
        a.retain(|k, _| {
            k.starts_with(crate::crd::ANNOTATION_PREFIX)
                && !(recorded && k == crate::crd::INTENT_ANNOTATION)
        });
    }
}

/// Keeps the per-state resource gauges current from the controllers' caches.
async fn count_states(
    ctx: Arc<Context>,
    stores: Vec<kube::runtime::reflector::Store<ProviderIntegration>>,
) {
    loop {
        let all: Vec<Arc<ProviderIntegration>> = stores.iter().flat_map(|s| s.state()).collect();
        let t = Tally::of(all.iter().map(|p| p.as_ref()));
        ctx.metrics.set_resources(
            &[
                ("ready", t.ready),
                ("stalled", t.stalled),
                ("reconciling", t.reconciling),
            ],
            &[
                ("validated", t.validated),
                ("failing", t.validation_failing),
                ("pending", t.validation_pending),
            ],
        );
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

/// Resources counted by kstatus state and by `Validated` condition (those without one, such as
/// AWS resources that do not validate, are not counted there).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub ready: i64,
    pub stalled: i64,
    pub reconciling: i64,
    pub validated: i64,
    pub validation_failing: i64,
    pub validation_pending: i64,
}

impl Tally {
    pub fn of<'a>(resources: impl IntoIterator<Item = &'a ProviderIntegration>) -> Self {
        let mut t = Tally::default();
        for pi in resources {
            if pi.is_ready() {
                t.ready += 1;
            } else if pi
                .condition(crate::crd::STALLED)
                .is_some_and(|c| c.status == "True")
            {
                t.stalled += 1;
            } else {
                t.reconciling += 1;
            }
            match pi.condition(VALIDATED).map(|c| c.status.as_str()) {
                Some("True") => t.validated += 1,
                Some("False") => t.validation_failing += 1,
                Some(_) => t.validation_pending += 1,
                None => {}
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resource(generation: i64, conditions: serde_json::Value) -> ProviderIntegration {
        serde_json::from_value(json!({
            "apiVersion": "pim.confluent.cloud/v1alpha1", "kind": "ProviderIntegration",
            "metadata": {"name": "x", "generation": generation},
            "spec": {"environment": "env-1", "provider": "AWS",
                "aws": {"customerIamRoleArn": "arn:aws:iam::123456789012:role/x"}},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    fn c(ty: &str, status: &str, generation: i64) -> serde_json::Value {
        json!({"type": ty, "status": status, "reason": "R", "message": "",
            "observedGeneration": generation, "lastTransitionTime": "2026-01-01T00:00:00Z"})
    }

    #[test]
    fn tally_counts_states_and_validation() {
        let all = [
            resource(1, json!([c("Ready", "True", 1), c("Validated", "True", 1)])),
            resource(
                1,
                json!([c("Ready", "True", 1), c("Validated", "False", 1)]),
            ),
            // Ready for an older generation is not ready.
            resource(
                2,
                json!([c("Ready", "True", 1), c("Validated", "Unknown", 1)]),
            ),
            resource(1, json!([c("Ready", "False", 1), c("Stalled", "True", 1)])),
            resource(1, json!([])),
        ];
        assert_eq!(
            Tally::of(all.iter()),
            Tally {
                ready: 2,
                stalled: 1,
                reconciling: 2,
                validated: 1,
                validation_failing: 1,
                validation_pending: 1,
            }
        );
    }
}
