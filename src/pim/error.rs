//! Typed errors of the Provider Integration API, classified by what the caller should do.

use std::time::Duration;

use super::types::{ErrorBody, LegacyErrorBody};

/// An API call that did not succeed. `Display` carries the API's `detail`, never credentials.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum PimError {
    #[error("not found: {detail}")]
    NotFound { detail: String },
    /// 409: already exists, or (on delete) still in use. The code tells which.
    #[error("conflict ({code}): {detail}")]
    Conflict { code: String, detail: String },
    /// 400/422: the request was invalid; the detail names the field.
    #[error("rejected by the API ({status} {code}): {detail}")]
    Invalid {
        status: u16,
        code: String,
        detail: String,
    },
    #[error("authentication failed (401): {detail}")]
    Unauthenticated { detail: String },
    #[error("permission denied (403): {detail}")]
    Forbidden { detail: String },
    #[error("quota exceeded (402): {detail}")]
    QuotaExceeded { detail: String },
    #[error("rate limited (429){}", retry_hint(.retry_after))]
    RateLimited { retry_after: Option<RetryAfter> },
    #[error("server error ({status}): {detail}{}", retry_hint(.retry_after))]
    Server {
        status: u16,
        detail: String,
        retry_after: Option<RetryAfter>,
    },
    /// Not sent: this replica lost the leader Lease, and another may be acting already.
    #[error("not sent: this replica no longer holds the leader Lease")]
    Fenced,
    #[error("request timed out")]
    Timeout,
    #[error("connection failed: {0}")]
    Transport(String),
    #[error("unexpected response ({status}): {detail}")]
    Unexpected { status: u16, detail: String },
    /// A 3xx, not followed (a create would be sent again; the new host gets no credentials):
    /// `--api-url` names something other than the API, which only a human can fix.
    #[error(
        "the API answered {status}, a redirect to {location}, which is not followed; if that is the Provider Integration API, set --api-url to it"
    )]
    Redirected { status: u16, location: String },
    #[error("could not decode the API response: {0}")]
    Decode(String),
}

/// The longest pause taken on a server's word: a longer `Retry-After` (an hour, or 2^64 seconds)
/// is read as this. Longer waits come from the backoff, which every resync restarts anyway.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// A `Retry-After` as the server sent it and as the operator takes it (at most
/// `MAX_RETRY_AFTER`), so messages can say both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter {
    /// What the server asked for, in whole seconds (saturating).
    pub asked_secs: u64,
    /// What the operator waits.
    pub wait: Duration,
}

impl RetryAfter {
    pub fn secs(asked_secs: u64) -> Self {
        Self {
            asked_secs,
            wait: Duration::from_secs(asked_secs).min(MAX_RETRY_AFTER),
        }
    }

    /// A header value: delay-seconds, or an HTTP-date (RFC 9110), read relative to `now`.
    /// Anything else is no hint at all.
    pub fn parse(value: &str, now: jiff::Timestamp) -> Option<Self> {
        let value = value.trim();
        if let Ok(secs) = value.parse::<u64>() {
            return Some(Self::secs(secs));
        }
        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            // More digits than a u64 holds.
            return Some(Self::secs(u64::MAX));
        }
        let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
        let secs = at.as_second().saturating_sub(now.as_second()).max(0);
        Some(Self::secs(u64::try_from(secs).unwrap_or(0)))
    }
}

fn retry_hint(r: &Option<RetryAfter>) -> String {
    match r {
        Some(r) if r.wait.as_secs() < r.asked_secs => format!(
            ", the API asked to retry after {}s; retrying after {}s (it waits {}s at most)",
            r.asked_secs,
            r.wait.as_secs(),
            MAX_RETRY_AFTER.as_secs()
        ),
        Some(r) => format!(", retry after {}s", r.wait.as_secs()),
        None => String::new(),
    }
}

/// How the operator should react to an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Retry with backoff: the API or the network will likely recover on its own.
    Transient,
    /// A human must act (credentials, permissions, quota, invalid input).
    Permanent,
}

impl PimError {
    pub fn class(&self) -> ErrorClass {
        match self {
            PimError::RateLimited { .. }
            | PimError::Server { .. }
            | PimError::Timeout
            | PimError::Transport(_)
            | PimError::Decode(_)
            | PimError::Fenced
            | PimError::Unexpected { .. } => ErrorClass::Transient,
            PimError::NotFound { .. }
            | PimError::Conflict { .. }
            | PimError::Invalid { .. }
            | PimError::Unauthenticated { .. }
            | PimError::Forbidden { .. }
            | PimError::QuotaExceeded { .. }
            | PimError::Redirected { .. } => ErrorClass::Permanent,
        }
    }

    pub fn is_transient(&self) -> bool {
        self.class() == ErrorClass::Transient
    }

    /// The wait the server's `Retry-After` asked for (at most `MAX_RETRY_AFTER`), when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PimError::RateLimited { retry_after } | PimError::Server { retry_after, .. } => {
                retry_after.map(|r| r.wait)
            }
            _ => None,
        }
    }

    /// The error with every text it carries passed through `f` (what the API said, a body's
    /// excerpt): the client takes the caller's secret out of them this way.
    pub fn map_text(self, f: impl Fn(String) -> String) -> Self {
        use PimError::*;
        match self {
            NotFound { detail } => NotFound { detail: f(detail) },
            Conflict { code, detail } => Conflict {
                code: f(code),
                detail: f(detail),
            },
            Invalid {
                status,
                code,
                detail,
            } => Invalid {
                status,
                code: f(code),
                detail: f(detail),
            },
            Unauthenticated { detail } => Unauthenticated { detail: f(detail) },
            Forbidden { detail } => Forbidden { detail: f(detail) },
            QuotaExceeded { detail } => QuotaExceeded { detail: f(detail) },
            Server {
                status,
                detail,
                retry_after,
            } => Server {
                status,
                detail: f(detail),
                retry_after,
            },
            Transport(t) => Transport(f(t)),
            Unexpected { status, detail } => Unexpected {
                status,
                detail: f(detail),
            },
            Decode(t) => Decode(f(t)),
            Redirected { status, location } => Redirected {
                status,
                location: f(location),
            },
            e @ (RateLimited { .. } | Fenced | Timeout) => e,
        }
    }

    /// The error code the API sent (`resource_already_exists`, `quota_exceeded`, ...).
    pub fn code(&self) -> Option<&str> {
        match self {
            PimError::Conflict { code, .. } | PimError::Invalid { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Builds the error for a non-success response from its status, headers and body.
    pub fn from_response(status: u16, retry_after: Option<RetryAfter>, body: &str) -> Self {
        let (code, detail) = parse_error_body(body);
        let detail = if detail.is_empty() {
            format!("HTTP {status}")
        } else {
            detail
        };
        match status {
            401 => PimError::Unauthenticated { detail },
            402 => PimError::QuotaExceeded { detail },
            403 => PimError::Forbidden { detail },
            404 => PimError::NotFound { detail },
            409 => PimError::Conflict {
                code: code.unwrap_or_else(|| "conflict".into()),
                detail,
            },
            400 | 422 => PimError::Invalid {
                status,
                code: code.unwrap_or_else(|| "invalid_request".into()),
                detail,
            },
            429 => PimError::RateLimited { retry_after },
            408 => PimError::Timeout,
            s if s >= 500 => PimError::Server {
                status,
                detail,
                retry_after,
            },
            _ => PimError::Unexpected { status, detail },
        }
    }
}

/// The most of an error's text kept (it becomes a condition's message), and of its code.
pub const MAX_DETAIL_CHARS: usize = 512;
const MAX_CODE_CHARS: usize = 64;

/// Extracts `(code, detail)` from either documented error shape, falling back to the raw text;
/// each cut to a bound, since both end up in a resource's status.
pub fn parse_error_body(body: &str) -> (Option<String>, String) {
    let cut = |t: &str, n: usize| -> String { t.trim().chars().take(n).collect() };
    if let Ok(b) = serde_json::from_str::<ErrorBody>(body)
        && let Some(e) = b.errors.first()
    {
        let detail = e
            .detail
            .as_ref()
            .or(e.title.as_ref())
            .or(e.code.as_ref())
            .map(|d| cut(d, MAX_DETAIL_CHARS))
            .unwrap_or_default();
        return (e.code.as_deref().map(|c| cut(c, MAX_CODE_CHARS)), detail);
    }
    if let Ok(b) = serde_json::from_str::<LegacyErrorBody>(body) {
        return (None, cut(&b.message, MAX_DETAIL_CHARS));
    }
    (None, cut(body, MAX_DETAIL_CHARS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_shape() {
        let body = r#"{"errors":[{"id":"x","status":"409","code":"resource_already_exists","title":"Conflict","detail":"exists","source":{"pointer":"/display_name"}}]}"#;
        let e = PimError::from_response(409, None, body);
        assert_eq!(
            e,
            PimError::Conflict {
                code: "resource_already_exists".into(),
                detail: "exists".into()
            }
        );
        assert_eq!(e.class(), ErrorClass::Permanent);
    }

    #[test]
    fn parses_legacy_shape_and_raw_text() {
        let e =
            PimError::from_response(404, None, r#"{"error_code":404,"message":"no such thing"}"#);
        assert_eq!(e.to_string(), "not found: no such thing");
        let e = PimError::from_response(502, None, "<html>bad gateway</html>");
        assert!(e.is_transient());
        assert!(e.to_string().contains("bad gateway"));
        let e = PimError::from_response(429, Some(RetryAfter::secs(7)), "");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(e.to_string(), "rate limited (429), retry after 7s");
        // An absurd ask is bounded, and the message says both.
        let e = PimError::from_response(429, Some(RetryAfter::secs(u64::MAX)), "");
        assert_eq!(e.retry_after(), Some(MAX_RETRY_AFTER));
        assert_eq!(
            e.to_string(),
            "rate limited (429), the API asked to retry after 18446744073709551615s; retrying after 300s (it waits 300s at most)"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_and_is_bounded() {
        let now: jiff::Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
        let p = |v: &str| RetryAfter::parse(v, now);
        assert_eq!(p(" 7 "), Some(RetryAfter::secs(7)));
        assert_eq!(p("3600").unwrap().wait, MAX_RETRY_AFTER);
        assert_eq!(p("18446744073709551615").unwrap().asked_secs, u64::MAX);
        assert_eq!(p("99999999999999999999999").unwrap().wait, MAX_RETRY_AFTER);
        assert_eq!(
            p("Wed, 02 Dec 2026 10:00:30 GMT"),
            Some(RetryAfter::secs(30))
        );
        // A date in the past is "now".
        assert_eq!(
            p("Wed, 02 Dec 2026 09:00:00 GMT"),
            Some(RetryAfter::secs(0))
        );
        for junk in ["", "-5", "soon", "1.5", "Wed, 99 Dec 2026 10:00:30 GMT"] {
            assert_eq!(p(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn classifies_user_errors_as_permanent() {
        for s in [400, 401, 402, 403, 422] {
            assert_eq!(
                PimError::from_response(s, None, "").class(),
                ErrorClass::Permanent,
                "{s}"
            );
        }
        for s in [408, 429, 500, 503] {
            assert!(PimError::from_response(s, None, "").is_transient(), "{s}");
        }
        // `--api-url` names something else: a human must act.
        let moved = PimError::Redirected {
            status: 301,
            location: "https://api.confluent.cloud/pim/v1/integrations".into(),
        };
        assert_eq!(moved.class(), ErrorClass::Permanent);
        assert!(moved.to_string().contains("set --api-url"), "{moved}");
    }
}
