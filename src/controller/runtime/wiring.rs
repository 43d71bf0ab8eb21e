//! Wiring: one `kube::runtime::Controller` per watched scope, readiness once the caches have
//! synced, and the per-state gauges counted from those caches.

use std::{sync::Arc, time::Duration};

use futures::{StreamExt, TryStreamExt};
use kube::{
    Api, ResourceExt,
    runtime::controller::Action,
    runtime::{Controller, WatchStreamExt, reflector, watcher, watcher::Event},
};

use super::cached::{Cached, Kstatus, ValidatedState, cache};
use super::feed::Feed;
use crate::controller::{
    error::Error,
    state::{context::Context, namespaces::NamespaceChange},
};
use crate::crd::ProviderIntegration;

/// Runs the controller until `shutdown` resolves: one watch for all namespaces, or one per
/// namespace in `Config::namespaces` (which then needs only namespaced RBAC).
pub async fn run<R, F>(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    reconcile: R,
    error_policy: fn(Arc<Cached>, &Error, Arc<Context>) -> Action,
) where
    R: Fn(Arc<Cached>, Arc<Context>) -> F + Copy + Send + 'static,
    F: std::future::Future<Output = Result<Action, Error>> + Send + 'static,
{
    // Each watch with its scope: a relist of one touches only its own part of the owner index.
    let apis: Vec<(Option<Arc<str>>, Api<ProviderIntegration>)> =
        if ctx.config.namespaces.is_empty() {
            vec![(None, Api::all(ctx.client.clone()))]
        } else {
            ctx.config
                .namespaces
                .iter()
                .map(|ns| {
                    (
                        Some(ns.as_str().into()),
                        Api::namespaced(ctx.client.clone(), ns),
                    )
                })
                .collect()
        };
    let shutdown = futures::FutureExt::shared(shutdown);
    let mut stores = Vec::new();
    let mut runs = Vec::new();
    let mut sweeps = Vec::new();
    let mut lines = Vec::new();
    // Every watch's line, made first: any of them wakes them all when the API-server gate opens.
    let feeds: Arc<[Arc<Feed>]> = apis
        .iter()
        .map(|_| {
            let pim = ctx.pim.clone();
            let gate = ctx.clone();
            Arc::new(
                Feed::new(ctx.config.concurrency, move || pim.concurrency_limit())
                    .with_gate(move || gate.api_server.allowed()),
            )
        })
        .collect();
    for ((scope, api), feed) in apis.into_iter().zip(feeds.iter().cloned()) {
        let config =
            kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency);
        // What `Controller::new` does, with the owner index following the same events as the
        // cache, before any reconcile they trigger.
        let (reader, writer) = reflector::store();
        let index = ctx.clone();
        let lined = feed.clone();
        let memory = ctx.clone();
        // A consistent LIST in pages of 500 (kube's default), not `resourceVersion=0`: an API
        // server answers that from its watch cache in one piece, whatever its size, and parsing
        // it at once is the operator's peak memory. Each page is cached as it arrives.
        // The watch drives the cache and the index, and puts what changed in line (`feed.rs`);
        // the line, not the watch, triggers reconciles.
        let watch = watcher(api, watcher::Config::default())
            // This stream's errors never reach the controller's own trigger backoff.
            .backoff(reconnect_backoff())
            .inspect_ok(move |event| index.owners.apply(scope.as_deref(), event))
            .map_ok(cache)
            .reflect(writer)
            .filter_map(move |r| {
                match r {
                    Ok(Event::Apply(c) | Event::InitApply(c)) => lined.push(&c),
                    Ok(Event::Delete(c)) => {
                        lined.gone(&c);
                        // Whatever the reconciles kept about it goes with it, finalizer or not
                        // (a resource deleted before it got one never reaches cleanup).
                        if let Ok(pi) = c.decode() {
                            memory.forget(&pi);
                        }
                    }
                    Ok(Event::Init | Event::InitDone) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "watching ProviderIntegrations failed; retrying")
                    }
                }
                futures::future::ready(None::<Result<Cached, watcher::Error>>)
            });
        // No reconcile starts before the Namespaces are known (a pause there is never missed);
        // the watch fills the cache and the line meanwhile.
        let gate = ctx.clone();
        let requests = futures::stream::once(async move { gate.namespaces.settled().await })
            .flat_map({
                let feed = feed.clone();
                move |()| feed.clone().requests()
            });
        let controller = Controller::for_stream(watch, reader)
            .reconcile_on(requests)
            .with_config(config)
            .graceful_shutdown_on(shutdown.clone());
        let store = controller.store();
        sweeps.push(tokio::spawn(sweep(
            feed.clone(),
            store.clone(),
            ctx.config.resync,
        )));
        lines.push((feed.clone(), store.clone()));
        stores.push(store.clone());
        let (all, opened) = (feeds.clone(), ctx.clone());
        let started = feed.clone();
        let parked = feed.clone();
        let (returned, cache) = (feed, store);
        runs.push(
            controller
                .run(
                    move |c, ctx| {
                        let running = started.started(&c);
                        let reconciled = reconcile(c, ctx);
                        async move {
                            let result = reconciled.await;
                            drop(running);
                            result
                        }
                    },
                    move |c: Arc<Cached>, e: &Error, ctx: Arc<Context>| {
                        // The API server did not answer: not this resource's fault. Hold all
                        // work at the gate, and wait in line for it to open (not in kube's
                        // scheduler, whose requeues bypass the line).
                        if e.api_server_unavailable() {
                            ctx.api_server.close(e);
                            parked.push(&c);
                            return Action::await_change();
                        }
                        error_policy(c, e, ctx)
                    },
                    ctx.clone(),
                )
                .for_each(move |result| {
                    // The trial a half-open gate waited for (it wrote): every line resumes.
                    if result.is_ok() && opened.api_server.succeeded() {
                        wake_all(&all);
                    }
                    // A request kube dropped unstarted (its cache did not hold the resource
                    // then) goes back to the line, so none is stranded.
                    if let Err(kube::runtime::controller::Error::ObjectNotFound(r)) = result {
                        let ns = r.namespace.clone().unwrap_or_default();
                        let again = cache
                            .get(&reflector::ObjectRef::new(&r.name).within(&ns))
                            .is_some();
                        returned.not_started(&ns, &r.name, again);
                    }
                    futures::future::ready(())
                }),
        );
    }
    let probe = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            ctx.api_server
                .probe(ctx.client.clone(), || wake_all(&feeds))
                .await
        })
    };
    let trust = tokio::spawn(follow_trust(ctx.clone(), lines.clone()));
    let namespaces = tokio::spawn(follow_namespaces(ctx.clone(), lines));
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
    // Shutdown is bounded: reconciles still in flight `shutdown_grace` after the signal are
    // dropped where they are (each step is safe to repeat).
    let grace = ctx.config.shutdown_grace;
    let deadline = async move {
        shutdown.await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        _ = futures::future::join_all(runs) => {}
        _ = deadline => tracing::warn!(grace_s = grace.as_secs(), "reconciles still in flight after the shutdown grace period; stopping anyway"),
    }
    ctx.ready.store(false, std::sync::atomic::Ordering::Relaxed);
    synced.abort();
    namespaces.abort();
    trust.abort();
    probe.abort();
    gauges.abort();
    sweeps.iter().for_each(|s| s.abort());
}

fn wake_all(feeds: &[Arc<Feed>]) {
    feeds.iter().for_each(|f| f.wake());
}

/// Follows the Namespaces: a pause or grant changed on one puts its resources in line at once,
/// and what was kept for a namespace that is gone (Secrets' last keys, grants) goes with it.
async fn follow_namespaces(ctx: Arc<Context>, lines: Vec<(Arc<Feed>, reflector::Store<Cached>)>) {
    let memory = ctx.clone();
    ctx.namespaces
        .follow(
            ctx.client.clone(),
            reconnect_backoff(),
            move |change| match change {
                NamespaceChange::Changed(ns) => {
                    for (feed, store) in &lines {
                        feed.sweep(
                            store
                                .state()
                                .iter()
                                .filter(|c| c.namespace().as_deref() == Some(ns.as_str())),
                        );
                    }
                }
                NamespaceChange::Gone(ns) => memory.secrets.forget_namespace(&ns),
            },
        )
        .await
}

/// Watches each cloud operator's kind a resource names in `spec.trust` (from the first that does),
/// metadata only, and puts the resources that write to a changed object in line: its operator's
/// report (synced, ready, failing) is seen at once, not at the next re-check.
async fn follow_trust(ctx: Arc<Context>, lines: Vec<(Arc<Feed>, reflector::Store<Cached>)>) {
    let Some(mut kinds) = ctx.trust_watch.take() else {
        return;
    };
    let lines = Arc::new(lines);
    let mut watches = tokio::task::JoinSet::new();
    while let Some(kind) = kinds.recv().await {
        let ar = crate::controller::state::trust_watch::api_resource(kind);
        type Meta = kube::core::PartialObjectMeta<kube::api::DynamicObject>;
        let apis: Vec<Api<Meta>> = if kind.namespaced() && !ctx.config.namespaces.is_empty() {
            ctx.config
                .namespaces
                .iter()
                .map(|ns| Api::namespaced_with(ctx.client.clone(), ns, &ar))
                .collect()
        } else {
            vec![Api::all_with(ctx.client.clone(), &ar)]
        };
        for api in apis {
            let (ctx, lines) = (ctx.clone(), lines.clone());
            watches.spawn(async move {
                watcher(api, watcher::Config::default())
                    // A kind not installed or not granted is said on the resources; its watch
                    // is tried again every half minute at most.
                    .backoff(slow_backoff())
                    .for_each(|event| {
                        if let Ok(Event::Apply(o) | Event::Delete(o)) = event {
                            let key = crate::controller::state::owners::trust_key(
                                kind,
                                o.metadata.namespace.as_deref().unwrap_or_default(),
                                o.metadata.name.as_deref().unwrap_or_default(),
                            );
                            for who in ctx.owners.trusting(&key) {
                                let (ns, name) = who.split_once('/').unwrap_or(("", &who));
                                let r = reflector::ObjectRef::new(name).within(ns);
                                for (feed, store) in lines.iter() {
                                    if let Some(c) = store.get(&r) {
                                        feed.sweep(std::iter::once(&c));
                                    }
                                }
                            }
                        }
                        futures::future::ready(())
                    })
                    .await
            });
        }
    }
    // The sender lives in the context; this ends only when aborted, and the watches with it.
    watches.shutdown().await;
}

/// How soon the watch is tried again after it failed: 200 ms doubling to 1 s, plus up to as much
/// again of jitter (so at most 2 s). kube's default grows to 30 s, so after an API-server outage of
/// 15 s the operator slept on for up to 10 s more; a failed watch request is cheap, a late operator
/// is not.
fn reconnect_backoff() -> watcher::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(1))
        .with_jitter()
        .without_max_times()
        .into()
}

/// The trust watches' backoff: 1 s doubling to 15 s, with as much again of jitter. A kind not
/// installed or not granted is said on the resources that name it; its watch need not hurry.
fn slow_backoff() -> watcher::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(15))
        .with_jitter()
        .without_max_times()
        .into()
}

/// The resync: every period, every cached resource is reconciled again (a settled resource is
/// not requeued one by one; see `feed.rs`).
async fn sweep(feed: Arc<Feed>, store: reflector::Store<Cached>, period: Duration) {
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        feed.sweep(&store.state());
    }
}

/// Keeps the per-state resource gauges current from the controllers' caches.
async fn count_states(ctx: Arc<Context>, stores: Vec<kube::runtime::reflector::Store<Cached>>) {
    loop {
        let all: Vec<Arc<Cached>> = stores.iter().flat_map(|s| s.state()).collect();
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
        ctx.metrics.set_paused(t.paused);
        ctx.metrics
            .set_api_concurrency(ctx.pim.concurrency_limit(), ctx.pim.calls_in_flight());
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
    /// With the `Paused` condition True (counted besides their kstatus).
    pub paused: i64,
}

impl Tally {
    pub fn of<'a>(resources: impl IntoIterator<Item = &'a Cached>) -> Self {
        let mut t = Tally::default();
        for c in resources {
            let s = c.state();
            match s.kstatus {
                Kstatus::Ready => t.ready += 1,
                Kstatus::Stalled => t.stalled += 1,
                Kstatus::Reconciling => t.reconciling += 1,
            }
            t.paused += i64::from(s.paused);
            match s.validated {
                Some(ValidatedState::Passed) => t.validated += 1,
                Some(ValidatedState::Failed) => t.validation_failing += 1,
                Some(ValidatedState::Pending) => t.validation_pending += 1,
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

    fn resource(generation: i64, conditions: serde_json::Value) -> Cached {
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
            // Paused, and still Ready from before the pause.
            resource(1, json!([c("Ready", "True", 1), c("Paused", "True", 1)])),
        ];
        assert_eq!(
            Tally::of(all.iter()),
            Tally {
                ready: 3,
                stalled: 1,
                reconciling: 2,
                validated: 1,
                validation_failing: 1,
                validation_pending: 1,
                paused: 1,
            }
        );
    }
}
