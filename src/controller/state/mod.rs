//! What reconciles share: the `Context` (configuration, clients, per-resource memory and
//! backoff), the remote cache of what Confluent holds per environment, the owner index of
//! who holds which integration, the Secrets read recently, and the followed Namespaces. No reconcile logic lives here.

pub mod context;
pub mod gate;
pub mod namespaces;
pub mod owners;
pub mod remote;
pub mod secrets;
pub mod trust_watch;

use crate::crd::{ANNOTATION_PREFIX, INTENT_ANNOTATION, ProviderIntegration};

/// Drops what the controller never reads before an object is cached, or held by a
/// reconcile after our write returned it (through the remote call that follows): `managedFields` and
/// kubectl's last-applied annotation are kilobytes per object on a real API server, and the
/// labels, owner references and other tools' annotations are read by no reconcile (no write of
/// ours sends the whole object back). An annotation map emptied here stays `Some`: "the object
/// has annotations" decides whether a JSON patch may add to the map or must create it, and
/// creating it would replace everyone else's.
pub(crate) fn trim(pi: &mut ProviderIntegration) {
    let m = &mut pi.metadata;
    m.managed_fields = None;
    m.labels = None;
    m.owner_references = None;
    // The first create's intent is ignored once an id is recorded (`recorded_intent`).
    let recorded = pi.status.as_ref().is_some_and(|s| s.id.is_some());
    if let Some(a) = m.annotations.as_mut() {
        a.retain(|k, _| k.starts_with(ANNOTATION_PREFIX) && !(recorded && k == INTENT_ANNOTATION));
    }
}
