//! The trust object's I/O (`spec.trust`): read it, make the one write `decide::trust::plan`
//! chose, read what its cloud operator reports, and undo the trust when it ends. Every Kubernetes
//! answer a user can act on becomes a stall that says what to install or grant.

use std::time::Duration;

use kube::runtime::events::EventType;
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, DynamicObject, Patch, PatchParams, Preconditions},
};
use serde_json::Value;
use tracing::info;

use crate::controller::decide::reasons::Reason;
use crate::controller::decide::trust::{
    self, Owner, Readiness, TrustKind, TrustValues, TrustWrite,
};
use crate::controller::error::{Error, MANAGER};
use crate::controller::state::context::Context;
use crate::controller::state::namespaces::Unreadable;
use crate::controller::state::trust_watch::api_resource;
use crate::crd::{ProviderIntegration, TrustSpec, TrustStatus};
use crate::pim::Integration;

/// How soon a trust waiting on its cloud operator is looked at again, if no watch event of the
/// object comes first.
pub(crate) const TRUST_RECHECK: Duration = Duration::from_secs(60);
/// How soon after a replacement (delete, then create) the next pass comes.
const AGAIN: Duration = Duration::from_millis(500);

/// What the trust step came to, for the status write that follows it.
pub(crate) struct TrustOutcome {
    /// `status.trust` from now on.
    pub record: Option<TrustStatus>,
    /// The `Trusted` condition (`None`: no trust is asked for, the condition goes).
    pub condition: Option<(&'static str, Reason, String)>,
    /// A human must act: the resource stalls with this.
    pub stall: Option<(Reason, String)>,
    /// Something was written, to say in an event.
    pub event: Option<String>,
    /// When to look again (the trust is not in place yet).
    pub retry: Option<Duration>,
}

impl TrustOutcome {
    /// In place in the cloud, as its operator reports.
    pub fn ready(&self) -> bool {
        self.condition
            .as_ref()
            .is_some_and(|(status, _, _)| *status == "True")
    }

    fn stalled(record: Option<TrustStatus>, reason: Reason, message: String) -> Self {
        Self {
            condition: Some(("False", reason, message.clone())),
            record,
            stall: Some((reason, message)),
            event: None,
            retry: None,
        }
    }
}

fn api(ctx: &Context, kind: TrustKind, namespace: &str) -> Api<DynamicObject> {
    let ar = api_resource(kind);
    if kind.namespaced() {
        Api::namespaced_with(ctx.client.clone(), namespace, &ar)
    } else {
        Api::all_with(ctx.client.clone(), &ar)
    }
}

pub(crate) fn owner(pi: &ProviderIntegration) -> Owner {
    Owner {
        namespace: pi.namespace().unwrap_or_default(),
        name: pi.name_any(),
        uid: pi.uid().unwrap_or_default(),
        reference: pi
            .controller_owner_ref(&())
            .and_then(|r| serde_json::to_value(r).ok())
            .unwrap_or(Value::Null),
    }
}

/// The values Confluent returned that the trust is made of; `None` until it returned them.
fn values(i: &Integration) -> Option<TrustValues> {
    if let Some(c) = i.aws() {
        return Some(TrustValues::Aws {
            id: i.id.clone(),
            confluent_role: c.iam_role_arn.clone()?,
            external_id: c.external_id.clone()?,
            customer_role: c.customer_iam_role_arn.clone(),
        });
    }
    if let Some(c) = i.gcp() {
        return Some(TrustValues::Gcp {
            id: i.id.clone(),
            confluent_account: c.google_service_account.clone()?,
            customer_account: c.customer_google_service_account.clone(),
        });
    }
    let c = i.azure()?;
    Some(TrustValues::Azure {
        id: i.id.clone(),
        app_id: c.confluent_multi_tenant_app_id.clone()?,
    })
}

/// A Kubernetes answer about the trust object a human must act on, as a stall; `Err` for the
/// rest (retried with backoff, or at the API-server gate).
async fn refused(
    ctx: &Context,
    kind: TrustKind,
    what: &str,
    verb: &str,
    e: kube::Error,
) -> Result<(Reason, String), Error> {
    let kube::Error::Api(s) = &e else {
        return Err(Error::Kube(e));
    };
    let resource = format!("{}.{}", kind.plural(), kind.group());
    match s.code {
        403 => Ok((
            Reason::TrustForbidden,
            format!(
                "the operator may not {verb} {resource}: enable trust.{} in the chart's values (it grants get, list, watch, create, patch and delete on them), or grant that by RBAC",
                kind.chart_key()
            ),
        )),
        404 if !served(ctx, kind).await? => Ok((
            Reason::TrustKindNotInstalled,
            format!(
                "the API server does not serve {resource} ({}): install {} (its CRDs), or remove spec.trust",
                kind.api_version(),
                kind.operator()
            ),
        )),
        409 if s.reason == "Conflict" && verb == "apply" => Ok((
            Reason::TrustFieldOwned,
            format!(
                "{what}: another field manager owns a field the operator writes ({}); leave the trust field to the operator, or use spec.trust.mode: Share",
                s.message
            ),
        )),
        422 => Ok((
            Reason::TrustInvalid,
            format!(
                "the API server refused the operator's {verb} of {what}: {}",
                s.message
            ),
        )),
        _ => Err(Error::Kube(e)),
    }
}

/// Whether the API server serves `kind` (its CRD is installed), by discovery.
async fn served(ctx: &Context, kind: TrustKind) -> Result<bool, Error> {
    match ctx
        .client
        .list_api_group_resources(kind.api_version())
        .await
    {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == kind.plural())),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(Error::Kube(e)),
    }
}

async fn read(
    ctx: &Context,
    kind: TrustKind,
    namespace: &str,
    name: &str,
) -> Result<Result<Option<Value>, (Reason, String)>, Error> {
    let what = kind.describe(namespace, name);
    match api(ctx, kind, namespace).get_opt(name).await {
        Ok(o) => Ok(Ok(o.and_then(|o| serde_json::to_value(o).ok()))),
        Err(kube::Error::Api(s)) if s.code == 404 && served(ctx, kind).await? => Ok(Ok(None)),
        Err(e) => refused(ctx, kind, &what, "get", e).await.map(Err),
    }
}

/// Carries out one write; the object as stored after it (`None`: deleted, or nothing written).
async fn write(
    ctx: &Context,
    kind: TrustKind,
    namespace: &str,
    name: &str,
    w: &TrustWrite,
) -> Result<Result<Option<Value>, (Reason, String)>, Error> {
    let what = kind.describe(namespace, name);
    let api = api(ctx, kind, namespace);
    let slot = ctx.write_slot().await?;
    let (verb, result) = match w {
        TrustWrite::Apply(object) => (
            "apply",
            api.patch(name, &PatchParams::apply(MANAGER), &Patch::Apply(object))
                .await
                .map(Some),
        ),
        TrustWrite::Patch(patch) => {
            let params = PatchParams {
                field_manager: Some(MANAGER.into()),
                ..Default::default()
            };
            match api.patch(name, &params, &Patch::Merge(patch)).await {
                // The object changed since it was read: decide again on the latest.
                Err(kube::Error::Api(s)) if s.code == 409 => return Err(Error::Stale),
                r => ("patch", r.map(Some)),
            }
        }
        TrustWrite::Replace { uid } => {
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match api.delete(name, &dp).await {
                Ok(_) => ("delete", Ok(None)),
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return Ok(Ok(None)),
                Err(e) => ("delete", Err(e)),
            }
        }
        TrustWrite::Nothing | TrustWrite::Wait(_) | TrustWrite::Stall(..) => return Ok(Ok(None)),
    };
    // Given back before a refusal is reported (an event is a write too).
    drop(slot);
    match result {
        Ok(o) => Ok(Ok(o.and_then(|o| serde_json::to_value(o).ok()))),
        Err(e) => refused(ctx, kind, &what, verb, e).await.map(Err),
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Brings the trust object in line with `spec.trust` for integration `i`: first undoes a trust
/// written to another object (the target changed or was removed), then writes this one.
pub(crate) async fn sync(
    ctx: &Context,
    pi: &ProviderIntegration,
    spec: Option<&TrustSpec>,
    i: &Integration,
) -> Result<TrustOutcome, Error> {
    let owner = owner(pi);
    let ns = owner.namespace.clone();
    let record = pi.status.as_ref().and_then(|s| s.trust.clone());
    let same_target = |r: &TrustStatus, t: &TrustSpec| {
        r.api_version == t.target_ref.api_version
            && r.kind == t.target_ref.kind
            && r.name == t.target_ref.name
            && r.mode == t.mode
    };
    let record = match record {
        Some(r) if spec.is_none_or(|t| !same_target(&r, t)) => {
            if let Some(stall) = release_record(ctx, pi, &r, false).await? {
                return Ok(TrustOutcome::stalled(Some(r), stall.0, stall.1));
            }
            None
        }
        r => r,
    };
    let Some(t) = spec else {
        return Ok(TrustOutcome {
            record: None,
            condition: None,
            stall: None,
            event: None,
            retry: None,
        });
    };
    let target = &t.target_ref;
    let Some(kind) = TrustKind::of(&target.api_version, &target.kind) else {
        let m = format!(
            "{} {} is not a supported trust object",
            target.api_version, target.kind
        );
        return Ok(TrustOutcome::stalled(record, Reason::InvalidSpec, m));
    };
    let what = kind.describe(&ns, &target.name);
    ctx.trust_watch.want(kind);
    if !kind.namespaced() {
        let grant = match ctx.namespaces.facts(&ns) {
            Ok(f) => f.cluster_trust,
            Err(Unreadable::Unknown) => return Err(Error::NamespaceUnknown(ns)),
            Err(Unreadable::Forbidden) => None,
        };
        if !trust::granted(grant.as_deref(), kind, &target.name) {
            let m = format!(
                "{what} is cluster-scoped, and Namespace {ns} is not granted it: a platform admin grants it with the annotation {}: \"{}/{}\" on the Namespace",
                trust::CLUSTER_TRUST_ANNOTATION,
                kind.kind(),
                target.name
            );
            return Ok(TrustOutcome::stalled(record, Reason::TrustNotGranted, m));
        }
    }
    let Some(values) = values(i) else {
        return Ok(TrustOutcome {
            condition: Some((
                "Unknown",
                Reason::AwaitingCloudOperator,
                format!(
                    "waiting for Confluent's values of integration {} to write {what}",
                    i.id
                ),
            )),
            record,
            stall: None,
            event: None,
            retry: Some(AGAIN),
        });
    };
    let existing = match read(ctx, kind, &ns, &target.name).await? {
        Ok(o) => o,
        Err((reason, m)) => return Ok(TrustOutcome::stalled(record, reason, m)),
    };
    let previous = record.as_ref().map(|r| r.integration_id.as_str());
    let plan = trust::plan(
        trust::Target {
            kind,
            mode: t.mode,
            name: &target.name,
        },
        existing.as_ref(),
        &owner,
        &values,
        previous,
        MANAGER,
    );
    let mut written_at = record.as_ref().and_then(|r| r.written_at.clone());
    let stored = match &plan {
        TrustWrite::Stall(reason, m) => {
            return Ok(TrustOutcome::stalled(record, *reason, m.clone()));
        }
        TrustWrite::Wait(m) => {
            return Ok(TrustOutcome {
                condition: Some(("Unknown", Reason::AwaitingCloudOperator, m.clone())),
                record,
                stall: None,
                event: None,
                retry: Some(AGAIN * 4),
            });
        }
        TrustWrite::Nothing => existing,
        w => match write(ctx, kind, &ns, &target.name, w).await? {
            Err((reason, m)) => return Ok(TrustOutcome::stalled(record, reason, m)),
            Ok(stored) => {
                written_at = Some(now());
                stored
            }
        },
    };
    let event = (!matches!(plan, TrustWrite::Nothing))
        .then(|| format!("wrote the trust of integration {} to {what}", i.id));
    if matches!(plan, TrustWrite::Replace { .. }) {
        info!(%what, "replaced: its immutable member changed");
    }
    let record = Some(TrustStatus {
        api_version: target.api_version.clone(),
        kind: target.kind.clone(),
        name: target.name.clone(),
        mode: t.mode,
        integration_id: i.id.clone(),
        written_at: written_at.clone(),
    });
    let readiness = match &stored {
        Some(o) => trust::readiness(kind, o, written_at.as_deref()),
        None => Readiness::Pending(format!("{what} is being created again")),
    };
    let (status, reason, message) = readiness.condition();
    let ready = matches!(readiness, Readiness::Ready(_));
    Ok(TrustOutcome {
        record,
        condition: Some((status, reason, message.to_string())),
        stall: None,
        event,
        retry: (!ready).then_some(if stored.is_none() {
            AGAIN
        } else {
            TRUST_RECHECK
        }),
    })
}

/// Undoes the trust in `record`: on the delete path (`keep`: the integration stays,
/// `deletionPolicy: Orphan`), or when `spec.trust` moved to another object. `Some` is what
/// stops it (a human must act); the finalizer then stays.
pub(crate) async fn release_record(
    ctx: &Context,
    pi: &ProviderIntegration,
    record: &TrustStatus,
    keep: bool,
) -> Result<Option<(Reason, String)>, Error> {
    let Some(kind) = TrustKind::of(&record.api_version, &record.kind) else {
        return Ok(None);
    };
    let owner = owner(pi);
    let ns = owner.namespace.clone();
    let existing = match read(ctx, kind, &ns, &record.name).await? {
        Ok(o) => o,
        // The kind is gone, and every object of it with it.
        Err((Reason::TrustKindNotInstalled, _)) => return Ok(None),
        Err(stall) => return Ok(Some(stall)),
    };
    let w = trust::release(kind, record, existing.as_ref(), &owner, keep);
    if matches!(w, TrustWrite::Nothing) {
        return Ok(None);
    }
    match write(ctx, kind, &ns, &record.name, &w).await? {
        Ok(_) => {
            let what = kind.describe(&ns, &record.name);
            info!(object = %what, keep, "trust released");
            let note = match (&w, keep) {
                (TrustWrite::Replace { .. }, _) => format!(
                    "deleted {what}, the trust object of integration {}",
                    record.integration_id
                ),
                (_, true) => {
                    format!("left {what} to outlive this resource (deletionPolicy: Orphan)")
                }
                _ => format!(
                    "took the trust of integration {} out of {what}",
                    record.integration_id
                ),
            };
            super::status::event(ctx, pi, EventType::Normal, Reason::TrustRemoved, note).await;
            Ok(None)
        }
        Err(stall) => Ok(Some(stall)),
    }
}

/// The delete path: undoes the recorded trust once the integration is deleted (or kept). A
/// trust that cannot be undone keeps the finalizer, saying why.
pub(crate) async fn release(
    ctx: &Context,
    pi: &ProviderIntegration,
    keep: bool,
) -> Result<(), Error> {
    let Some(record) = pi.status.as_ref().and_then(|s| s.trust.clone()) else {
        return Ok(());
    };
    match release_record(ctx, pi, &record, keep).await? {
        None => Ok(()),
        Some((reason, message)) => {
            let message = format!("cannot undo the trust: {message}; deletion waits for it");
            super::status::stall(ctx, pi, reason, message.clone()).await?;
            Err(Error::DeletionPending {
                message,
                retry_in: ctx.stall_backoff(pi),
            })
        }
    }
}
