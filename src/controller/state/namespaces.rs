//! What Namespaces say to the operator (the default-credentials grant and the pause), followed
//! with one metadata-only watch and kept in a reflector store: a change is seen within a second, and
//! no reconcile reads a Namespace from the API server.
//!
//! A pause is never lost to an error: until the watch has listed every Namespace, and while it
//! fails, what a Namespace says is `Unknown`, and the driver holds deletions (and writes) until
//! it is known again. Only when the operator may not list Namespaces at all (403: no RBAC for
//! them) are Namespace pauses and grants off, said once in the log.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client,
    core::PartialObjectMeta,
    runtime::{
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};

use crate::controller::decide::trust::CLUSTER_TRUST_ANNOTATION;

/// The Namespace annotation that grants a namespace the default credentials, for a comma-separated
/// list of environment ids, or `*` for all.
pub const DEFAULT_CREDENTIALS_ANNOTATION: &str = "pim.confluent.cloud/default-credentials";

/// What a Namespace's annotations say to the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceFacts {
    /// The default-credentials grant (`DEFAULT_CREDENTIALS_ANNOTATION`).
    pub grant: Option<String>,
    /// Every resource in it is paused (`PAUSED_ANNOTATION`).
    pub paused: bool,
    /// The cluster-scoped trust objects its resources may write to (`CLUSTER_TRUST_ANNOTATION`).
    pub cluster_trust: Option<String>,
}

impl NamespaceFacts {
    fn of(ns: &PartialObjectMeta<Namespace>) -> Self {
        let annotations = ns.metadata.annotations.as_ref();
        Self {
            grant: annotations
                .and_then(|a| a.get(DEFAULT_CREDENTIALS_ANNOTATION))
                .cloned(),
            paused: crate::crd::says_paused(annotations),
            cluster_trust: annotations
                .and_then(|a| a.get(CLUSTER_TRUST_ANNOTATION))
                .cloned(),
        }
    }
}

/// Why a Namespace's facts cannot be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// The watch has not listed Namespaces yet, or is failing: known again soon.
    Unknown,
    /// The operator may not list Namespaces (403): their pauses and grants are off.
    Forbidden,
}

/// How often Namespaces are asked for again while listing them is forbidden.
const FORBIDDEN_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

const SYNCING: u8 = 0;
const SYNCED: u8 = 1;
const FAILING: u8 = 2;
const FORBIDDEN: u8 = 3;

/// A change the watch saw, for the wiring to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceChange {
    /// The namespace's facts changed (or it appeared with some): its resources look again.
    Changed(String),
    /// The namespace is gone: whatever is kept for it goes too.
    Gone(String),
}

/// The followed Namespaces.
pub struct Namespaces {
    store: Store<PartialObjectMeta<Namespace>>,
    writer: Mutex<Option<reflector::store::Writer<PartialObjectMeta<Namespace>>>>,
    health: AtomicU8,
    settled: tokio::sync::watch::Sender<bool>,
}

impl Default for Namespaces {
    fn default() -> Self {
        let (store, writer) = reflector::store();
        Self {
            store,
            writer: Mutex::new(Some(writer)),
            health: AtomicU8::new(SYNCING),
            settled: tokio::sync::watch::Sender::new(false),
        }
    }
}

/// Keeps only what the operator reads: the name and its three annotations.
fn trimmed(mut ns: PartialObjectMeta<Namespace>) -> PartialObjectMeta<Namespace> {
    let m = &mut ns.metadata;
    // Cluster-scoped: the store's key is the name alone.
    m.namespace = None;
    m.managed_fields = None;
    m.labels = None;
    m.owner_references = None;
    if let Some(a) = m.annotations.as_mut() {
        a.retain(|k, _| {
            [
                DEFAULT_CREDENTIALS_ANNOTATION,
                crate::crd::PAUSED_ANNOTATION,
                CLUSTER_TRUST_ANNOTATION,
            ]
            .contains(&k.as_str())
        });
    }
    ns
}

fn forbidden(e: &watcher::Error) -> bool {
    matches!(
        e,
        watcher::Error::InitialListFailed(kube::Error::Api(s))
            | watcher::Error::WatchStartFailed(kube::Error::Api(s))
            if s.code == 403
    )
}

impl Namespaces {
    /// What the namespace's annotations say; a namespace the synced watch does not hold does not
    /// exist, and says nothing.
    pub fn facts(&self, namespace: &str) -> Result<NamespaceFacts, Unreadable> {
        match self.health.load(Ordering::Acquire) {
            SYNCED => Ok(self
                .store
                .get(&ObjectRef::new(namespace))
                .map(|ns| NamespaceFacts::of(&ns))
                .unwrap_or_default()),
            FORBIDDEN => Err(Unreadable::Forbidden),
            _ => Err(Unreadable::Unknown),
        }
    }

    /// Resolves once the first listing is done, or known to be forbidden.
    pub async fn settled(&self) {
        let mut rx = self.settled.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    fn set(&self, health: u8) {
        let before = self.health.swap(health, Ordering::AcqRel);
        if health == FORBIDDEN && before != FORBIDDEN {
            tracing::warn!(
                "the operator may not list and watch Namespaces, so {} and {} on a Namespace \
                 are off (the pause on each resource still works); grant list and watch on \
                 namespaces to turn them on",
                crate::crd::PAUSED_ANNOTATION,
                DEFAULT_CREDENTIALS_ANNOTATION
            );
        }
        if health == SYNCED && before == FORBIDDEN {
            tracing::info!("Namespaces can be read again: their pauses and grants are on");
        }
        if health == SYNCED || health == FORBIDDEN {
            self.settled.send_replace(true);
        }
    }

    /// Follows every Namespace until the returned future is dropped, telling `on` what changed.
    /// After any failure the watch starts again from a fresh listing (metadata only, and there
    /// are few Namespaces), after `backoff` (the resources' own watch backoff, so both come back
    /// together after an API-server outage): only a listing that completed says the store is
    /// current again. Runs once per `Namespaces` (a second call returns at once).
    pub async fn follow(
        &self,
        client: Client,
        mut backoff: impl kube::runtime::utils::Backoff + 'static,
        mut on: impl FnMut(NamespaceChange),
    ) {
        let Some(mut writer) = self.writer.lock().take() else {
            return;
        };
        // `Api<PartialObjectMeta<_>>` asks for metadata only: no Namespace spec or status.
        let api: Api<PartialObjectMeta<Namespace>> = Api::all(client);
        // The facts last told, to tell only changes (a relist repeats every Namespace).
        let mut told: std::collections::HashMap<String, NamespaceFacts> = Default::default();
        loop {
            let stream = watcher::watcher(api.clone(), watcher::Config::default())
                .map_ok(|e| e.modify(|ns| *ns = trimmed(std::mem::take(ns))));
            futures::pin_mut!(stream);
            let mut relisted: Option<std::collections::HashSet<String>> = None;
            while let Some(item) = stream.next().await {
                let event = match item {
                    Ok(event) => event,
                    Err(e) => {
                        if forbidden(&e) {
                            self.set(FORBIDDEN);
                        } else {
                            tracing::debug!(error = %e, "watching Namespaces failed; listing again");
                            if self.health.load(Ordering::Acquire) != FORBIDDEN {
                                self.set(FAILING);
                            }
                        }
                        break;
                    }
                };
                writer.apply_watcher_event(&event);
                let mut note = |ns: &PartialObjectMeta<Namespace>| {
                    let name = ns.metadata.name.clone().unwrap_or_default();
                    let facts = NamespaceFacts::of(ns);
                    let before = told.insert(name.clone(), facts.clone()).unwrap_or_default();
                    if before != facts {
                        on(NamespaceChange::Changed(name.clone()));
                    }
                    name
                };
                match event {
                    watcher::Event::Init => relisted = Some(Default::default()),
                    watcher::Event::InitApply(ns) => {
                        let name = note(&ns);
                        if let Some(seen) = relisted.as_mut() {
                            seen.insert(name);
                        }
                    }
                    watcher::Event::InitDone => {
                        if let Some(seen) = relisted.take() {
                            let gone: Vec<String> = told
                                .keys()
                                .filter(|n| !seen.contains(*n))
                                .cloned()
                                .collect();
                            for name in gone {
                                told.remove(&name);
                                on(NamespaceChange::Gone(name));
                            }
                        }
                        backoff.reset();
                        self.set(SYNCED);
                    }
                    watcher::Event::Apply(ns) => {
                        note(&ns);
                    }
                    watcher::Event::Delete(ns) => {
                        let name = ns.metadata.name.clone().unwrap_or_default();
                        told.remove(&name);
                        on(NamespaceChange::Gone(name));
                    }
                }
            }
            let mut wait = backoff.next().unwrap_or(FORBIDDEN_RETRY);
            // Without RBAC, asked again now and then (a grant added later is picked up), not on
            // the outage backoff.
            if self.health.load(Ordering::Acquire) == FORBIDDEN {
                wait = wait.max(FORBIDDEN_RETRY);
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// Whether a grant (the annotation's value) covers an environment.
pub fn granted(grant: Option<&str>, environment: &str) -> bool {
    grant.is_some_and(|g| {
        g.split(',')
            .map(str::trim)
            .any(|e| e == "*" || e == environment)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_list_environments_or_all() {
        assert!(granted(Some("env-1, env-2"), "env-2"));
        assert!(granted(Some("*"), "env-9"));
        assert!(!granted(Some("env-1"), "env-2"));
        assert!(!granted(None, "env-1"));
    }

    #[test]
    fn nothing_is_told_before_the_first_listing() {
        let n = Namespaces::default();
        assert_eq!(n.facts("a"), Err(Unreadable::Unknown));
        n.set(FORBIDDEN);
        assert_eq!(n.facts("a"), Err(Unreadable::Forbidden));
        n.set(SYNCED);
        assert_eq!(n.facts("a"), Ok(NamespaceFacts::default()));
        n.set(FAILING);
        assert_eq!(n.facts("a"), Err(Unreadable::Unknown));
    }
}
