//! What a cloud operator reports about a trust object, read from the conditions each one writes.

use serde_json::Value;

use super::TrustKind;
use crate::controller::decide::reasons::Reason;

/// What the object's own operator reports about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// In place in the cloud.
    Ready(String),
    /// Not reported on yet (or not since the operator's last change).
    Pending(String),
    /// Reported failing: the cloud operator's own words.
    Failing(String),
}

impl Readiness {
    /// The `Trusted` condition: status, reason, message.
    pub fn condition(&self) -> (&'static str, Reason, &str) {
        match self {
            Readiness::Ready(m) => ("True", Reason::TrustSynced, m),
            Readiness::Pending(m) => ("Unknown", Reason::AwaitingCloudOperator, m),
            Readiness::Failing(m) => ("False", Reason::TrustFailing, m),
        }
    }
}

fn condition<'a>(object: &'a Value, ty: &str) -> Option<&'a Value> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty)
}

fn text<'a>(c: &'a Value, field: &str) -> &'a str {
    c[field].as_str().unwrap_or_default()
}

/// What the cloud operator says of `object`, by the conditions each operator writes: ACK
/// `ACK.ResourceSynced` (and `ACK.Terminal`), Crossplane `Ready` and `Synced`, Config Connector
/// `Ready` with `status.observedGeneration`. A report about an older version of the object
/// (its generation, or for ACK, whose conditions carry none, a transition before `written_at`)
/// is pending, not ready.
pub fn readiness(kind: TrustKind, object: &Value, written_at: Option<&str>) -> Readiness {
    let generation = object
        .pointer("/metadata/generation")
        .and_then(Value::as_i64);
    let what = format!(
        "{} ({})",
        kind.describe(
            object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
        ),
        kind.operator()
    );
    let current = |c: &Value| {
        c["observedGeneration"]
            .as_i64()
            .zip(generation)
            .is_none_or(|(seen, g)| seen >= g)
    };
    let waiting = |on: &str| Readiness::Pending(format!("waiting for {what} to report {on}"));
    match kind {
        TrustKind::AckRole => {
            if let Some(t) = condition(object, "ACK.Terminal").filter(|c| c["status"] == "True") {
                return Readiness::Failing(format!("{what}: {}", text(t, "message")));
            }
            match condition(object, "ACK.ResourceSynced") {
                Some(c)
                    if c["status"] == "True"
                        && written_at.is_none_or(|w| text(c, "lastTransitionTime") >= w) =>
                {
                    Readiness::Ready(format!("{what} reports ACK.ResourceSynced"))
                }
                Some(c) if c["status"] == "False" && !text(c, "message").is_empty() => {
                    match condition(object, "ACK.Recoverable").filter(|r| r["status"] == "True") {
                        Some(r) => Readiness::Failing(format!("{what}: {}", text(r, "message"))),
                        None => waiting("ACK.ResourceSynced"),
                    }
                }
                _ => waiting("ACK.ResourceSynced"),
            }
        }
        TrustKind::PolicyMember => {
            let observed = object
                .pointer("/status/observedGeneration")
                .and_then(Value::as_i64);
            let seen = observed.zip(generation).is_some_and(|(o, g)| o >= g);
            match condition(object, "Ready") {
                Some(c) if seen && c["status"] == "True" => {
                    Readiness::Ready(format!("{what} reports Ready"))
                }
                Some(c) if seen && c["status"] == "False" && text(c, "reason") != "Updating" => {
                    Readiness::Failing(format!(
                        "{what}: {} {}",
                        text(c, "reason"),
                        text(c, "message")
                    ))
                }
                _ => waiting("Ready"),
            }
        }
        _ => {
            // Crossplane: `Synced` says the last reconcile of the spec worked, `Ready` that the
            // external resource is available.
            let synced = condition(object, "Synced").filter(|c| current(c));
            let ready = condition(object, "Ready").filter(|c| current(c));
            match (synced, ready) {
                (Some(s), _) if s["status"] == "False" => Readiness::Failing(format!(
                    "{what}: {} {}",
                    text(s, "reason"),
                    text(s, "message")
                )),
                (Some(s), Some(r)) if s["status"] == "True" && r["status"] == "True" => {
                    Readiness::Ready(format!("{what} reports Ready and Synced"))
                }
                _ => waiting("Ready and Synced"),
            }
        }
    }
}
