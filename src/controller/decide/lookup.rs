//! What must be looked up in Confluent Cloud before deciding, and what was found.

use crate::crd::{CloudProvider, PendingCreate, ProviderIntegrationStatus};
use crate::pim::{ApiVersion, Integration};

use super::{Desired, api_version};

/// What the I/O layer must look up before deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The integration we track (or are asked to adopt), by id, in this environment, through
    /// the API version of its provider.
    ById {
        id: String,
        environment: String,
        version: ApiVersion,
    },
    /// An integration with this natural key; `fresh` demands a listing newer than our last
    /// create attempt (we may have created it), otherwise a cached one will do.
    ByKey { key: PendingCreate, fresh: bool },
}

/// What the remote side looked like.
// Short-lived and moved, never stored in bulk: boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// The tracked id exists.
    Found(Integration),
    /// The tracked id does not exist (confirmed, not merely absent from a cache).
    Missing,
    /// Result of a key lookup: every integration that `holds_key` (at most one for AWS, whose
    /// role ARN is unique; display names are not unique in `pim/v2`).
    ByKey(Vec<Integration>),
}

/// The id to track: the one we recorded, else the one we are asked to adopt.
pub fn tracked_id(desired: &Desired, status: &ProviderIntegrationStatus) -> Option<String> {
    status.id.clone().or_else(|| desired.adopt_id.clone())
}

/// Which lookup the apply path needs. `throttled` is the intent whose last create this process
/// saw answered 429 (nothing was created); only then may a recorded intent be looked
/// up in the cache instead of a fresh listing, since no create of ours can be missing from it.
pub fn lookup(
    desired: &Desired,
    status: &ProviderIntegrationStatus,
    throttled: Option<&PendingCreate>,
) -> Lookup {
    // An observer follows its spec, not a recorded id: by `integrationId`, else by the key (so
    // it follows the integration its owner recreates).
    if desired.observe {
        return match &desired.adopt_id {
            Some(id) => Lookup::ById {
                id: id.clone(),
                version: desired.api_version(),
                environment: desired.environment.clone(),
            },
            None => Lookup::ByKey {
                key: desired.intent(),
                fresh: false,
            },
        };
    }
    match tracked_id(desired, status) {
        Some(id) => Lookup::ById {
            id,
            // A recorded id is of the recorded provider (AWS on resources older than GCP and
            // Azure support); an id to adopt is of the spec's.
            version: api_version(match &status.id {
                Some(_) => status.provider.unwrap_or(CloudProvider::Aws),
                None => desired.provider(),
            }),
            environment: status
                .id
                .as_ref()
                .and(status.environment.clone())
                .unwrap_or_else(|| desired.environment.clone()),
        },
        None => match &status.pending_create {
            Some(p) => Lookup::ByKey {
                key: p.clone(),
                fresh: throttled != Some(p),
            },
            None => Lookup::ByKey {
                key: desired.intent(),
                fresh: false,
            },
        },
    }
}
