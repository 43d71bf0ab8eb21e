//! The validation judgements of `decide`: when to call validate, and what to record of its
//! answer. Pure, like the rest of `decide`, and tested in `tests.rs`.

use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::Reason;
use crate::controller::decide::reasons::{customer_identity, grant_hint};
use crate::pim::Integration;

/// When to look again, in terms of the configured periods; the I/O layer adds the jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The next resync sweep (one per resync period).
    Resync,
    /// Transient trouble: the server's `hint` (`Retry-After`), else the retry backoff after
    /// `failures` in a row.
    Retry {
        failures: u32,
        hint: Option<Duration>,
    },
    /// Something a human must fix: the slower stall backoff after `failures` in a row.
    StallRetry { failures: u32 },
}

/// What is remembered of one resource's validation between reconciles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationMemo {
    pub generation: Option<i64>,
    pub id: String,
    pub due: Instant,
    /// Failed validations of this id in a row, for the backoff.
    pub failures: u32,
}

/// Whether to call validate now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationStep {
    /// Checked recently: look again after this long.
    NotYet(Duration),
    /// Call validate; `failures` in a row so far.
    Now { failures: u32 },
}

/// Our own status writes trigger reconciles, and validating on each would call the API once per
/// write: validate only when due, or when what was checked changed (another id, another
/// generation, or a `Validated` condition not of this generation).
pub fn validation_step(
    memo: Option<&ValidationMemo>,
    id: &str,
    generation: Option<i64>,
    condition: Option<&Condition>,
    now: Instant,
) -> ValidationStep {
    let current = condition.is_some_and(|c| c.observed_generation == generation);
    match memo.filter(|m| m.id == id) {
        Some(m) if current && m.generation == generation && m.due > now => {
            ValidationStep::NotYet(m.due - now)
        }
        Some(m) => ValidationStep::Now {
            failures: m.failures,
        },
        None => ValidationStep::Now { failures: 0 },
    }
}

/// The result of a validate call, as the judgement needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validation {
    Passed,
    /// 429, 5xx, timeouts: says nothing about the customer's setup.
    Transient {
        error: String,
        retry_after: Option<Duration>,
    },
    /// The API says Confluent cannot use the customer's identity (or refuses the call).
    Failed(String),
}

/// What to record after a validate call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationOutcome {
    /// The `Validated` condition to set (`status`, reason, message); `None` keeps it as it is.
    pub condition: Option<(&'static str, Reason, String)>,
    /// An event to publish: (warning, reason, note). Only on a change a human wants to see.
    pub event: Option<(bool, Reason, String)>,
    pub failures: u32,
    pub next: Next,
}

/// Validation never holds up `Ready`: it passes (re-checked at the resync period), fails (shown
/// with the grant to make, re-checked with the stall backoff until it passes), or could not be
/// judged (a transient error leaves the condition alone, or `Unknown` when there is none yet).
pub fn validation_outcome(
    i: &Integration,
    previous: Option<&Condition>,
    failures: u32,
    result: Validation,
) -> ValidationOutcome {
    match result {
        Validation::Passed => {
            let msg = format!("Confluent can use {}", customer_identity(i));
            ValidationOutcome {
                event: previous
                    .is_none_or(|c| c.status != "True")
                    .then(|| (false, Reason::Validated, msg.clone())),
                condition: Some(("True", Reason::Validated, msg)),
                failures: 0,
                next: Next::Resync,
            }
        }
        Validation::Transient { error, retry_after } => {
            let failures = failures.saturating_add(1);
            ValidationOutcome {
                condition: previous.is_none().then(|| {
                    (
                        "Unknown",
                        Reason::Validating,
                        format!("validation pending: {error}"),
                    )
                }),
                event: None,
                failures,
                next: Next::Retry {
                    failures,
                    hint: retry_after,
                },
            }
        }
        Validation::Failed(error) => {
            let msg = format!("{error}; {}", grant_hint(i));
            let failures = failures.saturating_add(1);
            ValidationOutcome {
                event: previous
                    .is_none_or(|c| c.status != "False" || c.message != msg)
                    .then(|| (true, Reason::ValidationFailed, msg.clone())),
                condition: Some(("False", Reason::ValidationFailed, msg)),
                failures,
                next: Next::StallRetry { failures },
            }
        }
    }
}
