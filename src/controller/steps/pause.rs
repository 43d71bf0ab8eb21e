//! The pause: `pim.confluent.cloud/paused: "true"` on a resource or its Namespace stops all work
//! on it. What it reads (the annotation, the Namespace as the watch of Namespaces holds it) and
//! what it writes (the `Paused` condition and its events); `decide::pause_step` judges what that
//! leads to.

use std::time::Duration;

use kube::{ResourceExt, runtime::events::EventType};
use tracing::info;

use super::status;
use crate::controller::decide::{Paused, reasons::Reason};
use crate::controller::error::Error;
use crate::controller::state::context::Context;
use crate::controller::state::namespaces::Unreadable;
use crate::crd::{PAUSED, PAUSED_ANNOTATION, ProviderIntegration, says_paused};

/// How soon a resource whose Namespace cannot be read looks again.
pub(crate) const UNSURE_RETRY: Duration = Duration::from_secs(1);

/// Where the pause comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PausedBy {
    Resource,
    Namespace,
}

/// Whether the resource is paused, and by what. A change on a Namespace reaches its resources
/// through the watch of Namespaces (`runtime/wiring.rs`), within a second. Namespaces the
/// operator may not list (no RBAC for them) pause nothing: said once at start.
pub(crate) fn paused_by(ctx: &Context, pi: &ProviderIntegration) -> (Paused, Option<PausedBy>) {
    if says_paused(pi.metadata.annotations.as_ref()) {
        return (Paused::Yes, Some(PausedBy::Resource));
    }
    match ctx.namespaces.facts(&pi.namespace().unwrap_or_default()) {
        Ok(f) if f.paused => (Paused::Yes, Some(PausedBy::Namespace)),
        Ok(_) | Err(Unreadable::Forbidden) => (Paused::No, None),
        Err(Unreadable::Unknown) => (Paused::Unknown, None),
    }
}

/// A pause cannot be ruled out: nothing is done. A deletion says why it waits (once: an
/// unchanged condition is not written again); the resource looks again within a second.
pub(crate) async fn unsure(
    ctx: &Context,
    pi: &ProviderIntegration,
    deleting: bool,
) -> Result<Duration, Error> {
    let ns = pi.namespace().unwrap_or_default();
    if deleting {
        let message = format!(
            "deletion waits: the Namespace {ns} cannot be read now, so a {PAUSED_ANNOTATION} on it \
             cannot be ruled out; the integration is deleted once it can be read (to let the \
             resource go now and keep the integration, set spec.deletionPolicy: Orphan)"
        );
        if say(ctx, pi, "Unknown", Reason::PauseUnknown, message).await? {
            info!("deletion waits for the Namespace to be read");
        }
    }
    Ok(UNSURE_RETRY.mul_f64(0.5 + fastrand::f64()))
}

/// Says on the resource that it is paused (once: an unchanged condition is not written again),
/// and does nothing else. The resource looks again when it or its Namespace changes.
pub(crate) async fn hold(
    ctx: &Context,
    pi: &ProviderIntegration,
    by: PausedBy,
    deleting: bool,
) -> Result<(), Error> {
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
    if say(ctx, pi, "True", Reason::Paused, message).await? {
        info!(by = ?by, deleting, "paused");
    }
    Ok(())
}

/// Sets the `Paused` condition and says it in an event (a Warning unless it is a plain pause),
/// once: an unchanged condition is not written again. Returns whether it wrote.
async fn say(
    ctx: &Context,
    pi: &ProviderIntegration,
    status: &str,
    reason: Reason,
    message: String,
) -> Result<bool, Error> {
    let already = pi
        .condition(PAUSED)
        .is_some_and(|c| c.status == status && c.message == message);
    if already {
        return Ok(false);
    }
    let mut s = pi.status.clone().unwrap_or_default();
    crate::crd::set_condition(
        &mut s.conditions,
        PAUSED,
        status,
        reason.as_str(),
        &message,
        pi.metadata.generation,
        &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
    );
    let pi = status::write(ctx, pi, s).await?;
    let kind = if reason == Reason::Paused {
        EventType::Normal
    } else {
        EventType::Warning
    };
    status::event(ctx, &pi, kind, reason, message).await;
    Ok(true)
}

/// Clears the `Paused` condition once the pause is lifted, and returns the resource as stored.
pub(crate) async fn resume(
    ctx: &Context,
    pi: &ProviderIntegration,
) -> Result<ProviderIntegration, Error> {
    let was_unsure = pi.condition(PAUSED).is_some_and(|c| c.status == "Unknown");
    let mut s = pi.status.clone().unwrap_or_default();
    s.conditions.retain(|c| c.type_ != PAUSED);
    let pi = status::write(ctx, pi, s).await?.into_owned();
    info!("resumed");
    let note = if was_unsure {
        format!("the Namespace can be read again and has no {PAUSED_ANNOTATION}; reconciling again")
    } else {
        format!("{PAUSED_ANNOTATION} was lifted; reconciling again")
    };
    status::event(ctx, &pi, EventType::Normal, Reason::Resumed, note).await;
    Ok(pi)
}
