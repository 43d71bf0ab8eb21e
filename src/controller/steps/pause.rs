//! The pause: `pim.confluent.cloud/paused: "true"` on a resource or its Namespace stops all work
//! on it. What it reads (the annotation, the Namespace through its cache) and what it writes (the
//! `Paused` condition and its events); `decide::pause_step` judges what that leads to.

use std::time::Duration;

use kube::{ResourceExt, runtime::events::EventType};
use tracing::info;

use super::status;
use crate::controller::decide::reasons::Reason;
use crate::controller::error::Error;
use crate::controller::state::context::Context;
use crate::crd::{PAUSED, PAUSED_ANNOTATION, ProviderIntegration, says_paused};

/// How often a resource paused by its Namespace looks again (no Namespace is watched; the
/// Namespace cache keeps a read for a few seconds). A resource's own annotation is seen at once,
/// through the watch.
pub(crate) const NAMESPACE_RECHECK: Duration = Duration::from_secs(10);

/// Where the pause comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PausedBy {
    Resource,
    Namespace,
}

/// Whether the resource is paused, and by what. Namespaces the operator may not read (no RBAC
/// for them in a namespace-scoped install) pause nothing: after the first 403 they are not asked
/// again for pauses, rather than once per reconcile.
pub(crate) async fn paused_by(ctx: &Context, pi: &ProviderIntegration) -> Option<PausedBy> {
    if says_paused(pi.metadata.annotations.as_ref()) {
        return Some(PausedBy::Resource);
    }
    if ctx.namespaces.unreadable() {
        return None;
    }
    let ns = pi.namespace().unwrap_or_default();
    match ctx.namespaces.facts(&ctx.client, &ns).await {
        Ok(f) if f.paused => Some(PausedBy::Namespace),
        Ok(_) => None,
        Err(kube::Error::Api(s)) if s.code == 403 => {
            tracing::warn!(
                "the operator may not read Namespaces, so {PAUSED_ANNOTATION} on a Namespace pauses nothing; \
                 it still works on each resource"
            );
            ctx.namespaces.set_unreadable();
            None
        }
        Err(e) => {
            tracing::debug!(error = %e, "could not read the Namespace for a pause; not paused");
            None
        }
    }
}

/// Says on the resource that it is paused (once: an unchanged condition is not written again),
/// and does nothing else. Returns when to look again.
pub(crate) async fn hold(
    ctx: &Context,
    pi: &ProviderIntegration,
    by: PausedBy,
    deleting: bool,
) -> Result<Option<Duration>, Error> {
    let name = pi.name_any();
    let ns = pi.namespace().unwrap_or_default();
    let (on, lift) = match by {
        PausedBy::Resource => (
            "on this resource".to_string(),
            format!("kubectl annotate providerintegration {name} -n {ns} {PAUSED_ANNOTATION}-"),
        ),
        PausedBy::Namespace => (
            format!("on its namespace {ns}"),
            format!("kubectl annotate namespace {ns} {PAUSED_ANNOTATION}-"),
        ),
    };
    let message = if deleting {
        format!(
            "deletion waits: {PAUSED_ANNOTATION} is \"true\" {on}, and the finalizer deletes the \
             integration only once the pause is lifted ({lift}); to let the resource go now and \
             keep the integration, set spec.deletionPolicy: Orphan"
        )
    } else {
        format!(
            "paused: {PAUSED_ANNOTATION} is \"true\" {on}; nothing is read from or written to \
             Confluent Cloud and the status is left as it was until the pause is lifted ({lift})"
        )
    };
    let already = pi
        .condition(PAUSED)
        .is_some_and(|c| c.status == "True" && c.message == message);
    if !already {
        let mut s = pi.status.clone().unwrap_or_default();
        crate::crd::set_condition(
            &mut s.conditions,
            PAUSED,
            "True",
            Reason::Paused.as_str(),
            &message,
            pi.metadata.generation,
            &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        let pi = status::write(ctx, pi, s).await?;
        info!(by = ?by, deleting, "paused");
        status::event(ctx, &pi, EventType::Normal, Reason::Paused, message).await;
    }
    Ok(match by {
        PausedBy::Resource => None,
        PausedBy::Namespace => Some(NAMESPACE_RECHECK),
    })
}

/// Clears the `Paused` condition once the pause is lifted, and returns the resource as stored.
pub(crate) async fn resume(
    ctx: &Context,
    pi: &ProviderIntegration,
) -> Result<ProviderIntegration, Error> {
    let mut s = pi.status.clone().unwrap_or_default();
    s.conditions.retain(|c| c.type_ != PAUSED);
    let pi = status::write(ctx, pi, s).await?.into_owned();
    info!("resumed");
    status::event(
        ctx,
        &pi,
        EventType::Normal,
        Reason::Resumed,
        format!("{PAUSED_ANNOTATION} was lifted; reconciling again"),
    )
    .await;
    Ok(pi)
}
