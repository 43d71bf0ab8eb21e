//! The validate call and the `Validated` condition. When to call and what to record are judged
//! by `decide::validation_step` and `decide::validation_outcome`; this file does the I/O.

use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::EventType;
use tracing::{info, warn};

use super::status::{self, is_auth};
use crate::controller::decide::{self, Validation, ValidationMemo, ValidationStep};
use crate::controller::error::Error;
use crate::controller::state::context::Context;
use crate::crd::{ProviderIntegration, VALIDATED, set_condition};
use crate::pim::{Credentials, Integration};

/// Validates the integration when due and records the `Validated` condition. Returns when to
/// look again: `None` once it passes (the next resync sweep validates again), sooner (with
/// backoff) until it does.
pub(crate) async fn validate(
    ctx: &Context,
    pi: &ProviderIntegration,
    creds: &Credentials,
    i: &Integration,
) -> Result<Option<Duration>, Error> {
    let generation = pi.metadata.generation;
    let now = Instant::now();
    let previous = pi.condition(VALIDATED);
    let memo = ctx.memory(pi, |m| m.validation.clone());
    let failures = match decide::validation_step(memo.as_deref(), &i.id, generation, previous, now)
    {
        // No failures in a row: the last check passed, and the sweep brings the next.
        ValidationStep::NotYet(_) if memo.as_ref().is_some_and(|m| m.failures == 0) => {
            return Ok(None);
        }
        ValidationStep::NotYet(wait) => return Ok(Some(wait)),
        ValidationStep::Now { failures } => failures,
    };
    let env = i.environment.id.clone();
    let mut status = pi.status.clone().unwrap_or_default();
    // Validation changes nothing on Confluent's side (ACTIVE means "in use", not "validated"),
    // so nothing is read back.
    let result = match ctx.pim.validate(creds, &env, &i.id).await {
        Ok(()) => Validation::Passed,
        Err(e) if e.is_transient() => Validation::Transient {
            error: e.to_string(),
            retry_after: e.retry_after(),
        },
        Err(e) => {
            if is_auth(&e) {
                ctx.secrets.forget(creds);
            }
            Validation::Failed(e.to_string())
        }
    };
    let outcome = decide::validation_outcome(i, previous, failures, result);
    if let Some((state, reason, msg)) = &outcome.condition {
        let time = Time(jiff::Timestamp::now());
        set_condition(
            &mut status.conditions,
            VALIDATED,
            state,
            reason.as_str(),
            msg,
            generation,
            &time,
        );
    }
    // Written first: a write failed as stale publishes nothing.
    let pi = status::write(ctx, pi, status).await?;
    if let Some((warning, reason, note)) = outcome.event {
        if warning {
            warn!(id = %i.id, msg = %note, "validation failed");
            status::event(ctx, &pi, EventType::Warning, reason, note).await;
        } else {
            info!(id = %i.id, "validated");
            status::event(ctx, &pi, EventType::Normal, reason, note).await;
        }
    }
    let next = ctx.delay(outcome.next);
    let memo = ValidationMemo {
        generation,
        id: i.id.clone(),
        due: now + next.unwrap_or_else(|| ctx.fresh_for()),
        failures: outcome.failures,
    };
    ctx.memory(&pi, |m| m.validation = Some(Box::new(memo)));
    Ok(next)
}
