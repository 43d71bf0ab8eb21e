//! Everything the operator tells the user: the status it builds, the one place that writes it,
//! events, and the two ways a failure is reported (stalled for a human, or retried quietly).

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api, Resource, ResourceExt,
    api::Patch,
    runtime::{
        controller::Action,
        events::{Event as KubeEvent, EventType},
    },
};
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::controller::decide::reasons::{Reason, user_hint};
use crate::controller::error::Error;
use crate::controller::state::context::Context;
use crate::crd::{
    CloudProvider, CondState, ProviderIntegration, ProviderIntegrationStatus, READY, STALLED,
    VALIDATED, conditions,
};
use crate::pim::{Credentials, ErrorClass, Integration, PimError};

/// Publishes an Event on the resource; a failure to publish is logged, never fatal.
pub(crate) async fn event(
    ctx: &Context,
    pi: &ProviderIntegration,
    type_: EventType,
    reason: Reason,
    note: String,
) {
    // A replica past its Lease's deadline says nothing more: a new leader speaks now.
    let Ok(_slot) = ctx.write_slot().await else {
        return;
    };
    let ev = KubeEvent {
        type_,
        reason: reason.as_str().into(),
        note: Some(note),
        action: reason.as_str().into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &pi.object_ref(&())).await {
        warn!(error = %e, "could not publish event");
    }
}

/// Writes status, unless it is already what we want, and returns the resource as stored, for
/// the next step to build on.
///
/// A JSON merge patch of what changed, not a server-side apply: the API server's work per apply
/// (the structured merge against the schema, field sets by manager) is several times a patch's,
/// and the status is ours alone. The patch names each field that changed and sets each field
/// dropped to null, so the stored status becomes exactly the one built.
///
/// The one guard against stale reads: the patch carries the `resourceVersion` of the copy the
/// status was decided on, as a precondition. The watch cache lags behind our own writes; a
/// status decided on a copy from before our last write (which may have recorded an id or an
/// intent) would erase them. Such a write fails with 409 instead (`Error::Stale`), and the
/// decision is made again on the latest copy. Every write a reconcile makes builds on the copy
/// the previous one returned.
pub(crate) async fn write<'a>(
    ctx: &Context,
    pi: &'a ProviderIntegration,
    mut status: ProviderIntegrationStatus,
) -> Result<Cow<'a, ProviderIntegration>, Error> {
    if let Some(notice) = ctx.config.notice {
        for c in status.conditions.iter_mut().filter(|c| c.type_ == READY) {
            if !c.message.starts_with(notice) {
                c.message = format!("{notice}. {}", c.message);
            }
        }
    }
    if pi.status.as_ref() == Some(&status) {
        return Ok(Cow::Borrowed(pi));
    }
    let api: Api<ProviderIntegration> =
        Api::namespaced(ctx.client.clone(), &pi.namespace().unwrap_or_default());
    let to_json = |s| serde_json::to_value(s).map_err(|e| Error::Kube(kube::Error::SerdeError(e)));
    let before = match &pi.status {
        Some(s) => to_json(s)?,
        None => Value::Null,
    };
    let _slot = ctx.write_slot().await?;
    let patch = json!({
        "metadata": {"resourceVersion": pi.resource_version()},
        "status": merge_diff(&before, &to_json(&status)?),
    });
    let stored = api
        .patch_status(
            &pi.name_any(),
            &super::metadata::params(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(super::metadata::stale_on_conflict)?;
    Ok(Cow::Owned(ctx.wrote(stored)))
}

/// The JSON merge patch (RFC 7396) that turns `before` into `after`: objects are compared key by
/// key, a key gone is set to null, anything else that differs is sent whole (arrays included:
/// a merge patch replaces them).
fn merge_diff(before: &Value, after: &Value) -> Value {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let mut out = serde_json::Map::new();
            for (k, v) in a {
                match b.get(k) {
                    Some(old) if old == v => {}
                    Some(old) => {
                        out.insert(k.clone(), merge_diff(old, v));
                    }
                    None => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.insert(k.clone(), Value::Null);
            }
            Value::Object(out)
        }
        _ => after.clone(),
    }
}

/// The status to write, built from the previous one.
pub(crate) struct StatusBuilder<'a> {
    pi: &'a ProviderIntegration,
    pub status: ProviderIntegrationStatus,
}

impl<'a> StatusBuilder<'a> {
    pub fn new(pi: &'a ProviderIntegration) -> Self {
        Self {
            pi,
            status: pi.status.clone().unwrap_or_default(),
        }
    }

    /// Records an integration's identity and Confluent's values; the intent is fulfilled.
    pub fn integration(mut self, i: &Integration) -> Self {
        let s = &mut self.status;
        s.id = Some(i.id.clone());
        s.environment = Some(i.environment.id.clone());
        s.external_id = i.aws().and_then(|a| a.external_id.clone());
        s.iam_role_arn = i.aws().and_then(|a| a.iam_role_arn.clone());
        s.google_service_account = i.gcp().and_then(|c| c.google_service_account.clone());
        s.confluent_multi_tenant_app_id = i
            .azure()
            .and_then(|c| c.confluent_multi_tenant_app_id.clone());
        s.provider = CloudProvider::from_api_name(&i.provider).or(s.provider);
        s.phase = i.status.clone();
        s.usages = i.usages.clone();
        s.pending_create = None;
        self
    }

    pub fn forget_integration(mut self) -> Self {
        let s = &mut self.status;
        s.id = None;
        s.environment = None;
        s.external_id = None;
        s.iam_role_arn = None;
        s.google_service_account = None;
        s.confluent_multi_tenant_app_id = None;
        s.provider = None;
        s.phase = None;
        s.usages.clear();
        // Validation was of the integration that is gone.
        self.unvalidated()
    }

    /// Drops the `Validated` condition (validation is off for this resource).
    pub fn unvalidated(mut self) -> Self {
        self.status.conditions.retain(|c| c.type_ != VALIDATED);
        self
    }

    fn build(
        mut self,
        ready: CondState,
        reconciling: CondState,
        stalled: CondState,
    ) -> ProviderIntegrationStatus {
        let generation = self.pi.metadata.generation;
        let now = Time(jiff::Timestamp::now());
        self.status.conditions = conditions(
            &self.status.conditions,
            generation,
            ready,
            reconciling,
            stalled,
            &now,
        );
        self.status.observed_generation = generation;
        self.status
    }

    pub fn ready(self, i: &Integration) -> ProviderIntegrationStatus {
        let msg = format!("integration {} is in sync", i.id);
        let synced = Reason::Synced.as_str();
        self.integration(i).build(
            CondState::new(true, synced, msg),
            CondState::new(false, synced, ""),
            CondState::new(false, synced, ""),
        )
    }

    /// Work under way: Ready=False with `ready_reason`, Reconciling=True with `reason`.
    pub fn progressing(
        self,
        ready_reason: Reason,
        reason: Reason,
        message: String,
    ) -> ProviderIntegrationStatus {
        self.build(
            CondState::new(false, ready_reason.as_str(), message.clone()),
            CondState::new(true, reason.as_str(), message),
            CondState::new(false, reason.as_str(), ""),
        )
    }

    pub fn stalled(self, reason: Reason, message: String) -> ProviderIntegrationStatus {
        let r = reason.as_str();
        self.build(
            CondState::new(false, r, message.clone()),
            CondState::new(false, r, ""),
            CondState::new(true, r, message),
        )
    }
}

pub(crate) fn is_auth(e: &PimError) -> bool {
    matches!(
        e,
        PimError::Unauthenticated { .. } | PimError::Forbidden { .. }
    )
}

/// Undecodable answers in a row before the resource says so.
const UNEXPECTED_ATTEMPTS: u32 = 3;

/// Whether a transient failure is said on the resource: from the second in a row (a wait the
/// server named is not counted: `Context::retry_backoff`), or at once when the wait is long
/// enough for a user to wonder.
pub(crate) fn said(in_a_row: u32, wait: std::time::Duration) -> bool {
    in_a_row >= 2 || wait >= std::time::Duration::from_secs(10)
}

/// Handles a `pim` error on the apply path: stall, or requeue without flapping Ready.
pub(crate) async fn api_error(
    ctx: &Context,
    pi: &ProviderIntegration,
    creds: &Credentials,
    e: PimError,
) -> Result<Action, Error> {
    // An answer we cannot read is retried a few times (a proxy's page, a blip), then shown: a
    // silent retry forever would hide a contract change from everyone.
    if matches!(e, PimError::Decode(_)) && ctx.memory(pi, |m| m.failures) + 1 >= UNEXPECTED_ATTEMPTS
    {
        let msg = format!(
            "{e}; the Provider Integration API answered in a shape this operator does not understand (retried {UNEXPECTED_ATTEMPTS} times, and again later)"
        );
        return stall(ctx, pi, Reason::UnexpectedResponse, msg).await;
    }
    if e.class() == ErrorClass::Transient {
        let (delay, in_a_row) = ctx.retry_backoff(pi, e.retry_after());
        info!(error = %e, retry_in_ms = delay.as_millis() as u64, "transient API error");
        // A Ready resource of this generation stays Ready through a blip, and a blip costs the
        // API server no write (in a storm, one per failed call); a failure that repeats is said.
        if !pi.is_ready() && said(in_a_row, delay) {
            // Keep saying what was under way (Creating, Configuring, …).
            let ready_reason = pi
                .condition(READY)
                .and_then(|c| Reason::parse(&c.reason))
                .filter(|r| *r != Reason::Synced)
                .unwrap_or(Reason::Reconciling);
            let status = StatusBuilder::new(pi).progressing(
                ready_reason,
                Reason::of_transient(&e),
                format!("{e}; retrying"),
            );
            write(ctx, pi, status).await?;
        }
        return Ok(Action::requeue(delay));
    }
    if is_auth(&e) {
        ctx.secrets.forget(creds);
    }
    stall(ctx, pi, Reason::of_stall(&e), user_hint(&e, creds)).await
}

/// Marks the resource Stalled (a human must act), with one Warning event per distinct problem,
/// and looks again later: credentials, quotas and Secrets change without an event here.
pub(crate) async fn stall(
    ctx: &Context,
    pi: &ProviderIntegration,
    reason: Reason,
    message: String,
) -> Result<Action, Error> {
    stall_with(ctx, pi, StatusBuilder::new(pi), reason, message).await
}

/// `stall`, on top of other status changes in `b`.
pub(crate) async fn stall_with(
    ctx: &Context,
    pi: &ProviderIntegration,
    b: StatusBuilder<'_>,
    reason: Reason,
    message: String,
) -> Result<Action, Error> {
    warn!(%reason, %message, "stalled");
    let already = pi
        .condition(STALLED)
        .is_some_and(|c| c.status == "True" && c.reason == reason.as_str() && c.message == message);
    write(ctx, pi, b.stalled(reason, message.clone())).await?;
    if !already {
        event(ctx, pi, EventType::Warning, reason, message).await;
    }
    Ok(Action::requeue(ctx.stall_backoff(pi)))
}

#[cfg(test)]
mod tests {
    use super::merge_diff;
    use serde_json::json;

    #[test]
    fn a_merge_diff_applied_gives_the_new_status_exactly() {
        let before = json!({
            "id": "dlz-1", "pendingCreate": {"environment": "env-1"},
            "conditions": [{"type": "Ready", "status": "False"}],
            "nested": {"keep": 1, "drop": 2, "change": 3},
        });
        let after = json!({
            "id": "dlz-1", "externalId": "x",
            "conditions": [{"type": "Ready", "status": "True"}],
            "nested": {"keep": 1, "change": 4},
        });
        let patch = merge_diff(&before, &after);
        assert_eq!(
            patch,
            json!({
                "externalId": "x", "pendingCreate": null,
                "conditions": [{"type": "Ready", "status": "True"}],
                "nested": {"drop": null, "change": 4},
            })
        );
        let mut applied = before.clone();
        json_patch::merge(&mut applied, &patch);
        assert_eq!(applied, after);
        // From no status at all: the whole status.
        assert_eq!(merge_diff(&serde_json::Value::Null, &after), after);
        assert_eq!(merge_diff(&after, &after), json!({}));
    }
}
