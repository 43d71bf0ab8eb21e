//! The delete path's judgements: what to delete, which of several candidates, and what a
//! failed delete means.

use crate::crd::{CloudProvider, DeletionPolicy, PendingCreate, ProviderIntegrationStatus};
use crate::pim::{ApiVersion, Integration};

use super::{Holder, Others, api_version, matches_intent};

/// The one thing to do next on the delete path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleanup {
    /// Remove the finalizer without calling the API.
    Orphan,
    /// Nothing was ever created: remove the finalizer.
    Nothing,
    /// Delete this id.
    Delete {
        id: String,
        environment: String,
        version: ApiVersion,
    },
    /// An intent exists without an id: find the integration first.
    FindThenDelete(PendingCreate),
    /// The recorded id is managed by an older resource: let go without deleting it.
    NotOurs { id: String, owner: Holder },
}

pub fn cleanup(
    policy: DeletionPolicy,
    status: &ProviderIntegrationStatus,
    others: &Others,
) -> Cleanup {
    if policy == DeletionPolicy::Orphan {
        return Cleanup::Orphan;
    }
    if let Some(id) = &status.id
        && let Some((owner, true)) = others.id(id)
    {
        return Cleanup::NotOurs {
            id: id.clone(),
            owner: owner.clone(),
        };
    }
    match (&status.id, &status.pending_create) {
        (Some(id), _) => Cleanup::Delete {
            id: id.clone(),
            version: api_version(status.provider.unwrap_or(CloudProvider::Aws)),
            environment: status
                .environment
                .clone()
                .or_else(|| {
                    status
                        .pending_create
                        .as_ref()
                        .map(|p| p.environment.clone())
                })
                .unwrap_or_default(),
        },
        (None, Some(p)) => Cleanup::FindThenDelete(p.clone()),
        (None, None) => Cleanup::Nothing,
    }
}

/// Which integration an intent-only resource may delete: only the single full match of its
/// intent. Several matches share the name, and deleting a stranger's would be worse than leaving
/// ours, so none is deleted and the user is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeletionTarget {
    One(String),
    Nothing,
    Ambiguous(Vec<String>),
}

pub fn deletion_target(
    found: &[Integration],
    intent: &PendingCreate,
    others: &Others,
) -> DeletionTarget {
    let ids: Vec<String> = found
        .iter()
        .filter(|i| matches_intent(i, intent) && others.id(&i.id).is_none())
        .map(|i| i.id.clone())
        .collect();
    match <[String; 1]>::try_from(ids) {
        Ok([id]) => DeletionTarget::One(id),
        Err(ids) if ids.is_empty() => DeletionTarget::Nothing,
        Err(ids) => DeletionTarget::Ambiguous(ids),
    }
}

/// What a GET after a failed DELETE returned.
#[derive(Debug, Clone, Copy)]
pub enum ReadBack<'a> {
    Found(&'a Integration),
    /// 404: it is gone after all (deleted meanwhile, or by a lost earlier answer).
    Gone,
    /// The read failed too.
    Unknown,
}

/// After a failed DELETE, the integration read back tells whether it is in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// Connectors use it: keep the finalizer and say which.
    InUse(Vec<String>),
    /// It no longer exists: the delete is done.
    Gone,
    /// Failed for another reason: retry with backoff and show the API's detail.
    Other(String),
}

/// Judged by the integration's `usages`, never by the status code, which the API does not
/// document for this case.
pub fn delete_outcome(detail: &str, read_back: ReadBack<'_>) -> DeleteOutcome {
    match read_back {
        ReadBack::Found(i) if !i.usages.is_empty() => DeleteOutcome::InUse(i.usages.clone()),
        ReadBack::Gone => DeleteOutcome::Gone,
        _ => DeleteOutcome::Other(detail.to_string()),
    }
}
