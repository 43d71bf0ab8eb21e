//! The reads that feed `decide`: the lookup it asks for, through the per-environment cache in
//! `remote.rs`, and the read-back after a failed delete.

use crate::controller::state::{context::Context, remote::Recent};
use kube::ResourceExt;

use crate::controller::decide::{self, DeleteOutcome, Desired, Lookup, Observed, Others, ReadBack};
use crate::crd::{PendingCreate, ProviderIntegration, ProviderIntegrationStatus};
use crate::pim::{ApiVersion, Credentials, PimError};

/// What Confluent Cloud holds for this resource, as `decide::lookup` asks.
pub(crate) async fn observe(
    ctx: &Context,
    pi: &ProviderIntegration,
    creds: &Credentials,
    desired: &Desired,
    status: &ProviderIntegrationStatus,
) -> Result<Observed, PimError> {
    let throttled = ctx.memory(pi, |m| m.throttled_create.clone());
    Ok(
        match decide::lookup(desired, status, throttled.as_deref()) {
            Lookup::ById {
                id,
                environment,
                version,
            } => {
                let found = ctx
                    .cache
                    .by_id(
                        &ctx.pim,
                        creds,
                        (&environment, version),
                        &id,
                        Recent::Within(ctx.fresh_for()),
                    )
                    .await?;
                match found {
                    Some(i) => Observed::Found(i),
                    None => Observed::Missing,
                }
            }
            Lookup::ByKey { key, fresh } => {
                // Fresh: listed since this process last heard back from a create of this
                // resource (not knowing, since now).
                let recent = if fresh {
                    ctx.memory(pi, |m| m.create_answered)
                        .map_or_else(Recent::now, Recent::Since)
                } else {
                    Recent::Within(ctx.fresh_for())
                };
                Observed::ByKey(ctx.cache.by_key(&ctx.pim, creds, &key, recent).await?)
            }
        },
    )
}

/// What other resources hold of `ids` (and, with `key`, of that key), from the owner index.
pub(crate) fn others<'a>(
    ctx: &Context,
    pi: &ProviderIntegration,
    ids: impl IntoIterator<Item = &'a str>,
    key: Option<&PendingCreate>,
) -> Others {
    let uid = pi.uid().unwrap_or_default();
    Others {
        ids: ids
            .into_iter()
            .filter_map(|id| {
                let (h, older) = ctx.owners.id_holder(id, &uid)?;
                Some((id.to_string(), h, older))
            })
            .collect(),
        key: key.and_then(|k| ctx.owners.older_key_holder(k, &uid)),
    }
}

/// What other resources hold that a decision on `observed` must respect.
pub(crate) fn others_of(
    ctx: &Context,
    pi: &ProviderIntegration,
    desired: &Desired,
    status: &ProviderIntegrationStatus,
    observed: &Observed,
) -> Others {
    let tracked = decide::tracked_id(desired, status);
    let found: Vec<&str> = match observed {
        Observed::Found(i) => vec![i.id.as_str()],
        Observed::ByKey(v) => v.iter().map(|i| i.id.as_str()).collect(),
        Observed::Missing => Vec::new(),
    };
    let ids = tracked.iter().map(String::as_str).chain(found);
    others(ctx, pi, ids, Some(&desired.intent()))
}

/// Why a DELETE of `id` failed, from the integration read back.
pub(crate) async fn delete_outcome(
    ctx: &Context,
    creds: &Credentials,
    (env, version): (&str, ApiVersion),
    id: &str,
    failed: &PimError,
) -> DeleteOutcome {
    let read = ctx.pim.get(creds, version, env, id).await;
    let read_back = match &read {
        Ok(i) => ReadBack::Found(i),
        Err(PimError::NotFound { .. }) => ReadBack::Gone,
        Err(_) => ReadBack::Unknown,
    };
    let r = decide::delete_outcome(&failed.to_string(), read_back);
    if r == DeleteOutcome::Gone {
        ctx.cache.remove(creds, (env, version), id).await;
    }
    r
}
