//! The delete path behind the finalizer: orphan, delete, find-then-delete after an interrupted
//! create, and retry while connectors still use the integration. Returning `Ok` lets the
//! finalizer go; `Err(DeletionPending)` keeps it and says when to try again.

use std::time::Duration;

use kube::{
    ResourceExt,
    runtime::{controller::Action, events::EventType},
};
use tracing::{info, warn};

use super::status::{self, StatusBuilder, is_auth};
use super::{credentials, observe};
use crate::controller::decide::reasons::{Reason, user_hint};
use crate::controller::decide::{self, Cleanup, DeleteOutcome, DeletionTarget, api_version};
use crate::controller::error::CredentialsError;
use crate::controller::error::Error;
use crate::controller::state::{context::Context, remote::Recent};
use crate::crd::ProviderIntegration;
use crate::pim::{Credentials, PimError};

pub(crate) async fn cleanup(pi: &ProviderIntegration, ctx: &Context) -> Result<Action, Error> {
    let status = pi.decided_status();
    let others = observe::others(ctx, pi, status.id.as_deref(), None);
    let policy = crate::controller::decide::desired::deletion_policy(&pi.spec);
    let (id, env, version) = match decide::cleanup(policy, &status, &others) {
        Cleanup::Orphan => {
            if let Some(id) = &status.id {
                info!(%id, "orphaned");
                let note =
                    format!("left integration {id} in Confluent Cloud (deletionPolicy: Orphan)");
                status::event(ctx, pi, EventType::Normal, Reason::Orphaned, note).await;
            }
            return done();
        }
        Cleanup::Nothing => return done(),
        Cleanup::NotOurs { id, owner } => {
            let note = format!(
                "left integration {id} to ProviderIntegration {}, which manages it",
                owner.name
            );
            status::event(ctx, pi, EventType::Normal, Reason::Orphaned, note).await;
            return done();
        }
        Cleanup::Delete {
            id,
            environment,
            version,
        } => (Some(id), environment, version),
        Cleanup::FindThenDelete(key) => {
            (None, key.environment.clone(), api_version(key.provider()))
        }
    };
    let creds = match credentials::of(ctx, pi).await {
        Ok(c) => c,
        Err(CredentialsError::Kube(e)) => return Err(Error::Kube(e)),
        Err(CredentialsError::NamespaceUnknown(ns)) => return Err(Error::NamespaceUnknown(ns)),
        Err(e) => match credentials::remembered(ctx, pi) {
            Some(c) => c,
            None => {
                let msg = format!(
                    "cannot delete the integration: {e}; restore it, or set spec.deletionPolicy: Orphan"
                );
                let status =
                    StatusBuilder::new(pi).stalled(Reason::CredentialsNotFound, msg.clone());
                status::write(ctx, pi, status).await?;
                return pending(msg, ctx.stall_backoff(pi));
            }
        },
    };
    let id = match (id, &status.pending_create) {
        (Some(id), _) => id,
        (None, None) => return done(),
        (None, Some(key)) => {
            let found = match ctx.cache.by_key(&ctx.pim, &creds, key, Recent::now()).await {
                Ok(found) => found,
                Err(e) => {
                    return cannot_delete(ctx, pi, &creds, &env, "find the integration", e).await;
                }
            };
            let ids = found.iter().map(|i| i.id.as_str());
            let others = observe::others(ctx, pi, ids, None);
            match decide::deletion_target(&found, key, &others) {
                DeletionTarget::One(id) => id,
                DeletionTarget::Nothing => return done(),
                DeletionTarget::Ambiguous(ids) => {
                    let note = format!(
                        "an interrupted create left no id, and integrations {} match it; none was deleted, delete the one this resource created by hand",
                        ids.join(", ")
                    );
                    status::event(
                        ctx,
                        pi,
                        EventType::Warning,
                        Reason::AmbiguousIntegration,
                        note,
                    )
                    .await;
                    return done();
                }
            }
        }
    };
    let outcome = match ctx.pim.delete(&creds, version, &env, &id).await {
        Ok(()) | Err(PimError::NotFound { .. }) => DeleteOutcome::Gone,
        Err(e) if e.is_transient() || is_auth(&e) => {
            let what = format!("delete integration {id}");
            return cannot_delete(ctx, pi, &creds, &env, &what, e).await;
        }
        // Failed: find out whether connectors use it (by its usages, not the status code).
        Err(e) => observe::delete_outcome(ctx, &creds, (&env, version), &id, &e).await,
    };
    let (reason, msg, usages) = match outcome {
        DeleteOutcome::Gone => {
            info!(%id, "deleted");
            ctx.cache.remove(&creds, (&env, version), &id).await;
            // A routine deletion needs no event (the resource is going); one a human waited
            // for, after connectors blocked it, does. (The last refusal may read as a failure:
            // the connectors went between the DELETE and the read-back.)
            let was_blocked = pi.condition(crate::crd::READY).is_some_and(|c| {
                c.reason == Reason::DeletionBlocked.as_str()
                    || c.reason == Reason::DeletionFailed.as_str()
            });
            if was_blocked {
                let note = format!("deleted integration {id} now that no connector uses it");
                status::event(ctx, pi, EventType::Normal, Reason::Deleted, note).await;
            }
            return done();
        }
        DeleteOutcome::InUse(u) => (
            Reason::DeletionBlocked,
            format!(
                "integration {id} is in use by {}; delete or reconfigure those connectors, deletion is retried",
                u.join(", ")
            ),
            u,
        ),
        DeleteOutcome::Other(d) => (
            Reason::DeletionFailed,
            format!("deleting integration {id} failed: {d}; retrying"),
            Vec::new(),
        ),
    };
    let retry_in = ctx.in_use_backoff(pi);
    warn!(%id, %reason, retry_in_s = retry_in.as_secs(), "deletion blocked");
    let mut b = StatusBuilder::new(pi);
    b.status.usages = usages;
    let first = pi
        .condition(crate::crd::READY)
        .is_none_or(|c| c.reason != reason.as_str());
    status::write(ctx, pi, b.progressing(reason, reason, msg.clone())).await?;
    if first {
        ctx.metrics.deletion_blocked();
    }
    status::event(ctx, pi, EventType::Warning, reason, msg.clone()).await;
    pending(msg, retry_in)
}

/// Nothing left to do: the finalizer may go.
fn done() -> Result<Action, Error> {
    Ok(Action::await_change())
}

fn pending(message: String, retry_in: Duration) -> Result<Action, Error> {
    Err(Error::DeletionPending { message, retry_in })
}

/// An error on the way to deleting: retried when transient; otherwise the finalizer stays and
/// the resource says what to fix. A 403 (or, listing, 404) means the environment was deleted with
/// everything in it, or the key lost its grant on it. The two cannot be told apart from here,
/// and guessing "deleted" could leak a live integration, so the message names the one-line way
/// out for the first case and the grant for the second.
async fn cannot_delete(
    ctx: &Context,
    pi: &ProviderIntegration,
    creds: &Credentials,
    env: &str,
    what: &str,
    e: PimError,
) -> Result<Action, Error> {
    if e.is_transient() {
        return retry(ctx, pi, creds, e).await;
    }
    let reason = match e {
        PimError::Forbidden { .. } | PimError::NotFound { .. } => Reason::EnvironmentUnreachable,
        _ => Reason::of_stall(&e),
    };
    let msg = if reason != Reason::EnvironmentUnreachable {
        format!("cannot {what}: {}", user_hint(&e, creds))
    } else {
        format!(
            "cannot {what} in environment {env}: {e}. If the environment was deleted, \
             its integrations went with it: let this resource go with \
             `kubectl patch providerintegration {} -n {} --type merge -p '{{\"spec\":{{\"deletionPolicy\":\"Orphan\"}}}}'`. \
             Otherwise grant API key {} EnvironmentAdmin on {env}; deletion is retried",
            pi.name_any(),
            pi.namespace().unwrap_or_default(),
            creds.key
        )
    };
    if is_auth(&e) {
        ctx.secrets.forget(creds);
    }
    let already = pi
        .condition(crate::crd::STALLED)
        .is_some_and(|c| c.status == "True" && c.reason == reason.as_str() && c.message == msg);
    let status = StatusBuilder::new(pi).stalled(reason, msg.clone());
    status::write(ctx, pi, status).await?;
    if !already {
        warn!(%env, %reason, "cannot delete");
        status::event(ctx, pi, EventType::Warning, reason, msg.clone()).await;
    }
    pending(msg, ctx.stall_backoff(pi))
}

/// A transient error while deleting: say so and retry.
async fn retry(
    ctx: &Context,
    pi: &ProviderIntegration,
    creds: &Credentials,
    e: PimError,
) -> Result<Action, Error> {
    let (retry_in, in_a_row) = ctx.retry_backoff(pi, e.retry_after());
    let msg = format!("deleting: {}; retrying", user_hint(&e, creds));
    // A blip costs the API server no write; a failure that repeats is said.
    if status::said(in_a_row, retry_in) {
        let status = StatusBuilder::new(pi).progressing(
            Reason::Deleting,
            Reason::of_transient(&e),
            msg.clone(),
        );
        status::write(ctx, pi, status).await?;
    }
    pending(msg, retry_in)
}
