//! Injectable faults and request counters, so tests and benchmarks can make the API slow,
//! flaky or rate limited, and count the calls the operator makes.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

/// Faults applied to `/pim/...` requests; set at start and replaced at run time through
/// `PUT /_emulator/faults`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added to every request, in milliseconds.
    pub latency_ms: u64,
    /// A uniformly random extra delay of up to this many milliseconds.
    pub jitter_ms: u64,
    /// Fraction (0..=1) of requests answered 429.
    pub error_rate_429: f64,
    /// Fraction of requests answered 500.
    pub error_rate_500: f64,
    /// Fraction of requests answered 503.
    pub error_rate_503: f64,
    /// `Retry-After` sent with injected 429 and 503 answers, in seconds.
    pub retry_after_secs: u64,
    /// Fraction of writes (create, update, validate, delete) that take effect but whose answer
    /// is lost: the client gets a 504, as from a proxy that timed out. The failure that tempts a
    /// client to create twice.
    pub lost_response_rate: f64,
    /// The status a lost response is answered with (504 by default, as from a proxy; 503 as
    /// from a gateway that gave up).
    pub lost_response_status: u16,
    /// Fraction of writes answered 503 before they take effect.
    pub write_error_rate: f64,
    /// Fail the next calls of an operation, consumed in order.
    pub fail_next: Vec<FailNext>,
    /// Seeds the dice, so a run draws the same sequence of faults (requests draw in arrival
    /// order). Random when absent.
    pub seed: Option<u64>,
    /// Reads (list, get) are answered 200 with a body of this many bytes, streamed without a
    /// `Content-Length` and never held in memory (0: off): a proxy's runaway answer.
    pub oversized_body_bytes: u64,
    /// Every answer's body arrives in pieces, one every this many milliseconds (a byte at a
    /// time; 64 KiB at a time for an oversized body) (0: off).
    pub trickle_ms: u64,
    /// Lists always name a next page, and that page is the first again: pagination that loops.
    pub looping_next: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            jitter_ms: 0,
            error_rate_429: 0.0,
            error_rate_500: 0.0,
            error_rate_503: 0.0,
            retry_after_secs: 1,
            lost_response_rate: 0.0,
            lost_response_status: 504,
            write_error_rate: 0.0,
            fail_next: Vec::new(),
            seed: None,
            oversized_body_bytes: 0,
            trickle_ms: 0,
            looping_next: false,
        }
    }
}

/// "Answer the next `count` calls of `operation` with `status`". `operation` is an operation
/// name (`v1_create`), or its suffix (`create` matches `v1_create` and `v2_create`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FailNext {
    pub operation: String,
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default = "five_hundred")]
    pub status: u16,
    /// The call takes effect and only its answer is replaced by `status` (a lost response).
    #[serde(default)]
    pub after_processing: bool,
    /// Answer `status` with this raw body instead of an error (any status, 200 included): the
    /// answer of a proxy, or of an API whose shape changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl FailNext {
    pub fn validate(&self) -> Result<(), String> {
        let allowed = if self.body.is_some() {
            200..=599
        } else {
            300..=599
        };
        if allowed.contains(&self.status) {
            Ok(())
        } else {
            Err("fail_next status must be 300..=599 (200..=599 with a body)".into())
        }
    }
}

fn one() -> u32 {
    1
}
fn five_hundred() -> u16 {
    500
}

/// What the fault layer decided for one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Injected {
    Pass,
    /// Answer this status without running the call.
    Status(u16),
    /// Run the call, then answer this status instead of its result.
    Lost(u16),
    /// Answer this status and raw body without running the call.
    Body(u16, String),
}

impl Faults {
    pub fn validate(&self) -> Result<(), String> {
        for (n, r) in [
            ("error_rate_429", self.error_rate_429),
            ("error_rate_500", self.error_rate_500),
            ("error_rate_503", self.error_rate_503),
            ("lost_response_rate", self.lost_response_rate),
            ("write_error_rate", self.write_error_rate),
        ] {
            if !(0.0..=1.0).contains(&r) {
                return Err(format!("{n} must be between 0 and 1"));
            }
        }
        if !(500..=599).contains(&self.lost_response_status) {
            return Err("lost_response_status must be 500..=599".into());
        }
        if self.error_rate_429 + self.error_rate_500 + self.error_rate_503 > 1.0 {
            return Err("the error rates add up to more than 1".into());
        }
        self.fail_next.iter().try_for_each(FailNext::validate)
    }

    pub fn delay(&self) -> Duration {
        let jitter = if self.jitter_ms > 0 {
            fastrand::u64(0..=self.jitter_ms)
        } else {
            0
        };
        Duration::from_millis(self.latency_ms + jitter)
    }

    /// The dice for `decide`: seeded by `seed`, else random.
    pub fn dice(&self) -> fastrand::Rng {
        match self.seed {
            Some(s) => fastrand::Rng::with_seed(s),
            None => fastrand::Rng::new(),
        }
    }

    /// Consumes a matching `fail_next` entry, else rolls the dice.
    pub fn decide(&mut self, op: &str, dice: &mut fastrand::Rng) -> Injected {
        if let Some(i) = self
            .fail_next
            .iter()
            .position(|f| f.operation == op || op.ends_with(&format!("_{}", f.operation)))
        {
            let status = self.fail_next[i].status;
            let lost = self.fail_next[i].after_processing;
            let body = self.fail_next[i].body.clone();
            self.fail_next[i].count = self.fail_next[i].count.saturating_sub(1);
            if self.fail_next[i].count == 0 {
                self.fail_next.remove(i);
            }
            return match (body, lost) {
                (Some(b), _) => Injected::Body(status, b),
                (None, true) => Injected::Lost(status),
                (None, false) => Injected::Status(status),
            };
        }
        let write = !op.ends_with("_list") && !op.ends_with("_get");
        if write && self.lost_response_rate > 0.0 && dice.f64() < self.lost_response_rate {
            return Injected::Lost(self.lost_response_status);
        }
        if write && self.write_error_rate > 0.0 && dice.f64() < self.write_error_rate {
            return Injected::Status(503);
        }
        let r = dice.f64();
        if r < self.error_rate_429 {
            Injected::Status(429)
        } else if r < self.error_rate_429 + self.error_rate_500 {
            Injected::Status(500)
        } else if r < self.error_rate_429 + self.error_rate_500 + self.error_rate_503 {
            Injected::Status(503)
        } else {
            Injected::Pass
        }
    }
}

/// Requests served, by operation and status code.
#[derive(Default, Debug)]
pub struct Stats {
    pub by_op: BTreeMap<String, BTreeMap<u16, u64>>,
}

impl Stats {
    pub fn record(&mut self, op: &str, status: u16) {
        *self
            .by_op
            .entry(op.to_string())
            .or_default()
            .entry(status)
            .or_default() += 1;
    }

    pub fn to_json(&self) -> serde_json::Value {
        let total: u64 = self.by_op.values().flat_map(|m| m.values()).sum();
        let ops: serde_json::Map<String, serde_json::Value> = self
            .by_op
            .iter()
            .map(|(op, m)| {
                let inner: serde_json::Map<String, serde_json::Value> = m
                    .iter()
                    .map(|(s, n)| (s.to_string(), (*n).into()))
                    .collect();
                (op.clone(), inner.into())
            })
            .collect();
        serde_json::json!({ "total": total, "operations": ops })
    }
}

/// A fixed one-second window per API key, like the real API's per-key limits.
#[derive(Debug, Default)]
pub struct RateLimiter {
    pub limit: Option<u32>,
    windows: HashMap<String, (Instant, u32)>,
}

/// The rate-limit verdict with the values for the `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy)]
pub struct RateVerdict {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    pub reset_secs: u64,
}

impl RateLimiter {
    pub fn new(limit: Option<u32>) -> Self {
        Self {
            limit,
            windows: HashMap::new(),
        }
    }

    pub fn check(&mut self, key: &str, now: Instant) -> Option<RateVerdict> {
        let limit = self.limit?;
        let w = self.windows.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(w.0) >= Duration::from_secs(1) {
            *w = (now, 0);
        }
        let allowed = w.1 < limit;
        if allowed {
            w.1 += 1;
        }
        Some(RateVerdict {
            allowed,
            limit,
            remaining: limit - w.1,
            reset_secs: 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_next_matches_suffix_and_counts_down() {
        let mut f = Faults {
            fail_next: vec![FailNext {
                operation: "create".into(),
                count: 2,
                status: 503,
                after_processing: false,
                body: None,
            }],
            ..Default::default()
        };
        let mut d = f.dice();
        assert_eq!(f.decide("v1_get", &mut d), Injected::Pass);
        assert_eq!(f.decide("v1_create", &mut d), Injected::Status(503));
        assert_eq!(f.decide("v2_create", &mut d), Injected::Status(503));
        assert_eq!(f.decide("v1_create", &mut d), Injected::Pass);
    }

    #[test]
    fn lost_responses_hit_writes_only() {
        let mut f = Faults {
            lost_response_rate: 1.0,
            fail_next: vec![FailNext {
                operation: "v2_get".into(),
                count: 1,
                status: 500,
                after_processing: true,
                body: None,
            }],
            ..Default::default()
        };
        let mut d = f.dice();
        assert_eq!(f.decide("v2_get", &mut d), Injected::Lost(500));
        for read in ["v1_get", "v1_list", "v2_get", "v2_list"] {
            assert_eq!(f.decide(read, &mut d), Injected::Pass, "{read}");
        }
        for write in ["v1_create", "v2_update", "v2_validate", "v1_delete"] {
            assert_eq!(f.decide(write, &mut d), Injected::Lost(504), "{write}");
        }
        f.lost_response_rate = 1.5;
        assert!(f.validate().is_err());
    }

    #[test]
    fn a_seed_replays_the_same_faults() {
        let f = Faults {
            error_rate_429: 0.3,
            seed: Some(7),
            ..Default::default()
        };
        let run = || {
            let (mut f, mut d) = (f.clone(), f.dice());
            (0..200)
                .map(|_| f.decide("v1_create", &mut d))
                .collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run());
        let limited = first
            .iter()
            .filter(|i| **i == Injected::Status(429))
            .count();
        assert!((30..=90).contains(&limited), "{limited}");
    }

    #[test]
    fn rates_are_validated() {
        let f = Faults {
            error_rate_429: 0.7,
            error_rate_500: 0.5,
            ..Default::default()
        };
        assert!(f.validate().is_err());
    }

    #[test]
    fn rate_limiter_resets_each_second() {
        let mut r = RateLimiter::new(Some(2));
        let t = Instant::now();
        assert!(r.check("k", t).unwrap().allowed);
        assert!(r.check("k", t).unwrap().allowed);
        assert!(!r.check("k", t).unwrap().allowed);
        assert!(r.check("other", t).unwrap().allowed);
        assert!(
            r.check("k", t + Duration::from_millis(1001))
                .unwrap()
                .allowed
        );
    }
}
