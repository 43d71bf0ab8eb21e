//! The reads that feed `decide`: the lookup it asks for, through the per-environment cache in
//! `remote.rs`, and the read-back after a refused delete.

use std::time::Duration;

use super::Context;
use super::decide::{self, Desired, Lookup, Observed, ReadBack, Refusal};
use crate::crd::{ProviderIntegration, ProviderIntegrationStatus};
use crate::pim::{ApiVersion, Credentials, PimError};

/// What Confluent Cloud holds for this resource, as `decide::lookup` asks.
pub(super) async fn observe(
    ctx: &Context,
    pi: &ProviderIntegration,
    creds: &Credentials,
    desired: &Desired,
    status: &ProviderIntegrationStatus,
) -> Result<Observed, PimError> {
    let refused = ctx.memory(pi, |m| m.refused.clone());
    Ok(match decide::lookup(desired, status, refused.as_ref()) {
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
                    ctx.config.resync,
                )
                .await?;
            match found {
                Some(i) => Observed::Found(i),
                None => Observed::Missing,
            }
        }
        Lookup::ByKey { key, fresh } => {
            let age = if fresh {
                Duration::ZERO
            } else {
                ctx.config.resync
            };
            Observed::ByKey(ctx.cache.by_key(&ctx.pim, creds, &key, age).await?)
        }
    })
}

/// Why a DELETE of `id` was refused, from the integration read back.
pub(super) async fn refusal(
    ctx: &Context,
    creds: &Credentials,
    (env, version): (&str, ApiVersion),
    id: &str,
    refused: &PimError,
) -> Refusal {
    let read = ctx.pim.get(creds, version, env, id).await;
    let read_back = match &read {
        Ok(i) => ReadBack::Found(i),
        Err(PimError::NotFound { .. }) => ReadBack::Gone,
        Err(_) => ReadBack::Unknown,
    };
    let r = decide::refusal(&refused.to_string(), read_back);
    if r == Refusal::Gone {
        ctx.cache.remove(creds, (env, version), id).await;
    }
    r
}
