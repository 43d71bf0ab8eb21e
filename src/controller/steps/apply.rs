//! The Confluent write of an action (create, recreate, configure a `pim/v2` DRAFT) and the status
//! write that records it. The order of writes is what makes a crash at any line safe; each step
//! says why it comes where it does.

use std::{borrow::Cow, time::Duration};

use kube::{
    Api, ResourceExt,
    runtime::{controller::Action, events::EventType},
};
use tracing::info;

use super::status::{self, StatusBuilder, api_error, is_auth, stall, stall_with};
use super::{observe, outputs};
use crate::controller::decide::reasons::{Reason, regrant};
use crate::controller::decide::{
    self, AfterConflict, Decision, DeleteOutcome, Desired, api_version,
};
use crate::controller::error::{Error, MANAGER};
use crate::controller::state::{context::Context, remote::Recent};
use crate::crd::{
    CloudProvider, FINALIZER, ProviderIntegration, TRUSTED, VALIDATED, set_condition,
};
use crate::pim::{ApiVersion, Credentials, ErrorClass, Integration, PimError};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// A short pause before the next pass, when this one changed what the next will see.
const AGAIN: Duration = Duration::from_millis(50);

/// What carrying out a decision came to.
pub(crate) enum Acted {
    /// Done for now: come back as the action says.
    Done(Action),
    /// The integration matches the spec and `Ready` is written: the resource as stored and the
    /// integration, for the driver's next step (validation).
    Settled {
        pi: Box<ProviderIntegration>,
        integration: Box<Integration>,
        /// The trust (`spec.trust`) is in place, or none is asked for: validation may run.
        trust_ready: bool,
        /// When to look at a trust not in place yet again.
        trust_retry: Option<Duration>,
    },
}

impl From<Action> for Acted {
    fn from(a: Action) -> Self {
        Acted::Done(a)
    }
}

/// Carries out what `decide` chose.
pub(crate) async fn act(
    ctx: &Context,
    api: &Api<ProviderIntegration>,
    pi: &ProviderIntegration,
    desired: &Desired,
    creds: &Credentials,
    decision: Decision,
) -> Result<Acted, Error> {
    // Each path boxed: a reconcile's future is as large as its largest path, and hundreds wait
    // on a create's POST at once; boxed, each holds only the path it is on.
    match decision {
        Decision::InSync(i) | Decision::Mirror(i) => {
            Box::pin(in_sync(ctx, pi, desired, creds, i, None)).await
        }
        Decision::Adopt(i) => {
            let note = format!("adopted existing integration {}", i.id);
            Box::pin(in_sync(
                ctx,
                pi,
                desired,
                creds,
                i,
                Some((Reason::Adopted, note)),
            ))
            .await
        }
        Decision::Claim(i) => Box::pin(claim(ctx, pi, desired, creds, i)).await,
        Decision::Create { replaces } => {
            Box::pin(create(ctx, api, pi, desired, creds, replaces)).await
        }
        Decision::Recreate { old, changed } => Box::pin(recreate(ctx, pi, creds, old, changed))
            .await
            .map(Acted::from),
        Decision::Stall { reason, message } => Box::pin(stall(ctx, pi, reason, message))
            .await
            .map(Acted::from),
    }
}

/// Our earlier create did happen: record it as created.
async fn claim(
    ctx: &Context,
    pi: &ProviderIntegration,
    desired: &Desired,
    creds: &Credentials,
    i: Integration,
) -> Result<Acted, Error> {
    let note = format!(
        "created integration {} (recorded after an interrupted attempt)",
        i.id
    );
    in_sync(ctx, pi, desired, creds, i, Some((Reason::Created, note))).await
}

/// The API version that manages an integration, from its provider.
pub(crate) fn integration_version(i: &Integration) -> ApiVersion {
    CloudProvider::from_api_name(&i.provider)
        .map(api_version)
        .unwrap_or(ApiVersion::V2)
}

/// Records an integration that matches the spec, after finishing what is left to do: a `pim/v2`
/// DRAFT gets its config, the outputs ConfigMap is written, and Ready is set at once (the user
/// needs these values to grant access, so Ready never waits for validation, the driver's next
/// step).
async fn in_sync(
    ctx: &Context,
    pi: &ProviderIntegration,
    desired: &Desired,
    creds: &Credentials,
    i: Integration,
    event: Option<(Reason, String)>,
) -> Result<Acted, Error> {
    // A DRAFT's config is set by its owner, never by an observer.
    let (pi, i) = if !desired.observe && integration_version(&i) == ApiVersion::V2 && i.is_draft() {
        match configure(ctx, pi, desired, creds, i).await? {
            Ok(done) => done,
            Err(action) => return Ok(action.into()),
        }
    } else {
        (Cow::Borrowed(pi), i)
    };
    let synced = {
        let _slot = ctx.write_slot().await?;
        outputs::sync(&ctx.client, MANAGER, &pi, &i).await
    };
    let written = match synced {
        Ok(written) => written,
        Err(outputs::OutputsError::Kube(e)) => return Err(Error::Kube(e)),
        Err(e @ outputs::OutputsError::NotOwned(_)) => {
            let mut b = StatusBuilder::new(&pi).integration(&i);
            b.status.outputs_config_map = None;
            return stall_with(ctx, &pi, b, Reason::OutputsConflict, e.to_string())
                .await
                .map(Acted::from);
        }
    };
    // An observer never writes trust, nor undoes one written before it became one.
    let trust = match desired.observe {
        true => None,
        false => Some(super::trust::sync(ctx, &pi, desired.trust.as_ref(), &i).await?),
    };
    let mut b = StatusBuilder::new(&pi);
    b.status.outputs_config_map = written;
    if !desired.validate {
        b = b.unvalidated();
    }
    let (trust_ready, trust_retry) = match &trust {
        Some(t) => {
            let newly = t.ready() && pi.condition(TRUSTED).is_none_or(|c| c.status != "True");
            if let Some(stall) = trust_status(&mut b, &pi, t) {
                let b = b.integration(&i);
                return stall_with(ctx, &pi, b, stall.0, stall.1)
                    .await
                    .map(Acted::from);
            }
            if newly {
                // The loop just closed: validate now, not when the last failure's backoff says.
                ctx.memory(&pi, |m| m.validation = None);
            }
            (t.ready() || desired.trust.is_none(), t.retry)
        }
        None => (true, None),
    };
    let pi = status::write(ctx, &pi, b.ready(&i)).await?;
    if let Some((reason, note)) = event {
        info!(id = %i.id, %reason, "{note}");
        status::event(ctx, &pi, EventType::Normal, reason, note).await;
    }
    if let Some(note) = trust.and_then(|t| t.event) {
        info!(id = %i.id, "{note}");
        status::event(ctx, &pi, EventType::Normal, Reason::TrustWritten, note).await;
    }
    ctx.succeeded(&pi);
    Ok(Acted::Settled {
        pi: Box::new(pi.into_owned()),
        integration: Box::new(i),
        trust_ready,
        trust_retry,
    })
}

/// Puts the trust step's outcome in the status: `status.trust`, the `Trusted` condition, and
/// while the trust is not in place, `Validated` as waiting for it (a check now would fail for
/// want of it). Returns the stall, if the step came to one.
fn trust_status(
    b: &mut StatusBuilder<'_>,
    pi: &ProviderIntegration,
    t: &super::trust::TrustOutcome,
) -> Option<(Reason, String)> {
    b.status.trust = t.record.clone();
    let generation = pi.metadata.generation;
    let now = Time(jiff::Timestamp::now());
    match &t.condition {
        Some((status, reason, message)) => set_condition(
            &mut b.status.conditions,
            TRUSTED,
            status,
            reason.as_str(),
            message,
            generation,
            &now,
        ),
        None => b.status.conditions.retain(|c| c.type_ != TRUSTED),
    }
    let validated = b
        .status
        .conditions
        .iter()
        .any(|c| c.type_ == VALIDATED && c.status == "True");
    if t.condition.is_some() && !t.ready() && !validated {
        set_condition(
            &mut b.status.conditions,
            VALIDATED,
            "Unknown",
            Reason::AwaitingTrust.as_str(),
            "validation waits for the trust to be in place (condition Trusted)",
            generation,
            &now,
        );
    }
    t.stall.clone()
}

/// Sets the config of a `pim/v2` DRAFT. Returns the resource as stored and the configured
/// integration, or the action to take instead.
async fn configure<'a>(
    ctx: &Context,
    pi: &'a ProviderIntegration,
    desired: &Desired,
    creds: &Credentials,
    i: Integration,
) -> Result<Result<(Cow<'a, ProviderIntegration>, Integration), Action>, Error> {
    // Remember the id before the PATCH: after a crash the id, not a search, finds it again.
    let status = StatusBuilder::new(pi).integration(&i).progressing(
        Reason::Configuring,
        Reason::Configuring,
        format!("setting the config of DRAFT integration {}", i.id),
    );
    let pi = status::write(ctx, pi, status).await?;
    let env = i.environment.id.clone();
    let version = ApiVersion::V2;
    let configured = match ctx
        .pim
        .update_config(creds, &env, &i.id, desired.config.write())
        .await
    {
        Ok(updated) => updated,
        // Gone meanwhile (a stale cache entry, or deleted out of band): look again by id.
        Err(PimError::NotFound { .. }) => {
            ctx.cache.remove(creds, (&env, version), &i.id).await;
            return Ok(Err(Action::requeue(AGAIN)));
        }
        // Refused, perhaps because a lost response already applied it: see what is there.
        Err(e) if e.class() == ErrorClass::Permanent && !is_auth(&e) => {
            match ctx.pim.get(creds, version, &env, &i.id).await {
                Ok(now) if !now.is_draft() => now,
                _ => return api_error(ctx, &pi, creds, e).await.map(Err),
            }
        }
        Err(e) => return api_error(ctx, &pi, creds, e).await.map(Err),
    };
    info!(id = %configured.id, "configured");
    ctx.cache.insert(creds, version, &configured).await;
    if !decide::changed_fields(desired, &configured, desired.adopt_id.is_some()).is_empty() {
        // Someone else configured it differently; the next pass decides what to do.
        return Ok(Err(Action::requeue(AGAIN)));
    }
    Ok(Ok((Cow::Owned(pi.into_owned()), configured)))
}

/// Records the intent, then creates. The intent is written first so that after a crash between
/// the POST and the status write the next pass looks for the integration before creating again.
async fn create(
    ctx: &Context,
    api: &Api<ProviderIntegration>,
    pi: &ProviderIntegration,
    desired: &Desired,
    creds: &Credentials,
    replaces: Option<String>,
) -> Result<Acted, Error> {
    let intent = desired.intent();
    let had_intent = pi.recorded_intent().as_ref() == Some(&intent);
    let base = if had_intent {
        Cow::Borrowed(pi)
    } else if !pi.finalizers().iter().any(|f| f == FINALIZER) {
        // The first create: one patch adds the finalizer and records the intent.
        Cow::Owned(super::metadata::finalizer_with_intent(ctx, api, pi, &intent).await?)
    } else {
        let mut b = StatusBuilder::new(pi);
        if replaces.is_some() {
            b = b.forget_integration();
        }
        b.status.pending_create = Some(intent.clone());
        let status = b.progressing(
            Reason::Creating,
            Reason::Creating,
            format!("creating the integration in {}", desired.environment),
        );
        status::write(ctx, pi, status).await?
    };
    let version = desired.api_version();
    let body = crate::pim::CreateIntegration {
        display_name: desired.display_name.clone(),
        provider: desired.provider().api_name().into(),
        // `pim/v2` creates a DRAFT; its config is set next, once its id is recorded.
        config: (version == ApiVersion::V1).then(|| desired.config.write()),
        environment: crate::pim::EnvId {
            id: desired.environment.clone(),
        },
    };
    ctx.memory(pi, |m| {
        m.throttled_create = None;
        m.create_answered = None;
    });
    let created = ctx.pim.create(creds, version, &body).await;
    if created.is_err() {
        ctx.memory(pi, |m| m.create_answered = Some(std::time::Instant::now()));
    }
    match created {
        Err(e @ PimError::RateLimited { .. }) => {
            // Refused before it was processed: the next pass need not look for it.
            ctx.memory(pi, |m| m.throttled_create = Some(Box::new(intent)));
            api_error(ctx, &base, creds, e).await.map(Acted::from)
        }
        Ok(i) => {
            info!(id = %i.id, "created");
            ctx.cache.insert(creds, version, &i).await;
            let event = match replaces {
                Some(old) => {
                    let note = format!(
                        "integration {old} was deleted outside Kubernetes; created {}: {}",
                        i.id,
                        regrant(desired.provider())
                    );
                    status::event(ctx, &base, EventType::Warning, Reason::Recreated, note).await;
                    None
                }
                // Ready with the id says it; an event per routine create is noise at scale.
                None => None,
            };
            // Boxed: what follows the POST is not held while it is under way.
            Box::pin(in_sync(ctx, &base, desired, creds, i, event)).await
        }
        Err(e @ PimError::Conflict { .. }) if e.code() == Some("resource_already_exists") => {
            let found = match ctx
                .cache
                .by_key(&ctx.pim, creds, &intent, Recent::now())
                .await
            {
                Ok(f) => f,
                Err(e) => return api_error(ctx, &base, creds, e).await.map(Acted::from),
            };
            let ids = found.iter().map(|i| i.id.as_str());
            let others = observe::others(ctx, pi, ids, None);
            match decide::after_conflict(desired, had_intent, found, &e.to_string(), &others) {
                AfterConflict::Claim(i) => Box::pin(claim(ctx, &base, desired, creds, i)).await,
                AfterConflict::Foreign(message) => {
                    let base =
                        match super::metadata::drop_intent_annotation(ctx, api, &base).await? {
                            Some(stored) => Cow::Owned(stored),
                            None => base,
                        };
                    let mut b = StatusBuilder::new(&base);
                    b.status.pending_create = None;
                    Box::pin(stall_with(ctx, &base, b, Reason::AlreadyExists, message))
                        .await
                        .map(Acted::from)
                }
            }
        }
        Err(e) => api_error(ctx, &base, creds, e).await.map(Acted::from),
    }
}

/// Deletes the integration whose immutable fields changed (`updatePolicy: Recreate`); the next
/// pass creates its replacement.
async fn recreate(
    ctx: &Context,
    pi: &ProviderIntegration,
    creds: &Credentials,
    old: Integration,
    changed: Vec<&'static str>,
) -> Result<Action, Error> {
    let env = old.environment.id.clone();
    let version = integration_version(&old);
    // The delete cannot be taken back: decided on a copy the watch brought late (a spec edited,
    // then reverted), it must not happen. The status writes after it are guarded; this is too.
    let api: Api<ProviderIntegration> =
        Api::namespaced(ctx.client.clone(), &pi.namespace().unwrap_or_default());
    super::metadata::still_latest(&api, pi).await?;
    // Deleted (or found gone) is `DeleteOutcome::Gone`: the way is clear.
    let outcome = match ctx.pim.delete(creds, version, &env, &old.id).await {
        Ok(()) | Err(PimError::NotFound { .. }) => DeleteOutcome::Gone,
        Err(e) if e.class() == ErrorClass::Permanent && !is_auth(&e) => {
            observe::delete_outcome(ctx, creds, (&env, version), &old.id, &e).await
        }
        Err(e) => return api_error(ctx, pi, creds, e).await,
    };
    let (msg, usages) = match outcome {
        DeleteOutcome::Gone => {
            ctx.cache.remove(creds, (&env, version), &old.id).await;
            let msg = format!(
                "deleted integration {} because {} changed; a new one is being created: {}",
                old.id,
                changed.join(", "),
                regrant(pi.spec.provider)
            );
            let status = StatusBuilder::new(pi).forget_integration().progressing(
                Reason::Recreating,
                Reason::Recreating,
                msg.clone(),
            );
            status::write(ctx, pi, status).await?;
            status::event(ctx, pi, EventType::Warning, Reason::Recreating, msg).await;
            return Ok(Action::requeue(AGAIN));
        }
        DeleteOutcome::InUse(u) => (
            format!(
                "cannot recreate integration {}: it is in use by {}; delete or reconfigure those connectors",
                old.id,
                u.join(", ")
            ),
            u,
        ),
        DeleteOutcome::Other(d) => (
            format!("cannot recreate integration {}: {d}", old.id),
            Vec::new(),
        ),
    };
    let mut b = StatusBuilder::new(pi);
    b.status.usages = usages;
    let status = b.progressing(
        Reason::RecreateBlocked,
        Reason::RecreateBlocked,
        msg.clone(),
    );
    status::write(ctx, pi, status).await?;
    status::event(ctx, pi, EventType::Warning, Reason::RecreateBlocked, msg).await;
    Ok(Action::requeue(ctx.in_use_backoff(pi)))
}
