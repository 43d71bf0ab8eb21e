//! Client-side throttling per API key, following the API's own signals.
//!
//! - **Pace.** Every answer's `X-RateLimit-Limit` and `X-RateLimit-Reset` (the relative seconds
//!   until the current window resets) give the key's rate: at most `limit` calls per window. The
//!   key's requests are spaced evenly so that at most `limit - 1` fall in any window, whatever
//!   its phase: the rate holds close to the limit without a burst that runs `Remaining` out
//!   before `Reset`. An answer with `X-RateLimit-Remaining: 0` holds the key until the reset.
//!   No headers, no pacing.
//! - **Pause.** A 429 is about the key, not the resource that happened to get it: every request
//!   with that key waits until the server's `Retry-After` has passed, so a storm lowers the rate
//!   for everyone sharing the key instead of each resource backing off on its own.
//! - **Ceiling.** An optional steady rate per key (governor's GCRA, `--api-rate-limit`), off by
//!   default.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::Mutex,
    time::{Duration, Instant},
};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{PimError, RetryAfter};

/// How long to stay off a key after a 429 that carried no `Retry-After`.
const DEFAULT_PAUSE: Duration = Duration::from_secs(1);

/// The longest pause a request waits out in place. A longer one is answered at once as a 429
/// with the time left, so the reconcile gives its slot back and comes again after it, instead of
/// holding the slot (and shutdown) for minutes.
const MAX_INLINE_PAUSE: Duration = Duration::from_secs(10);

/// The longest line for a paced key waited in place: within a reconcile's deadline. A longer
/// one is answered at once as rate limited, with the wait, like a long pause.
const MAX_LINE: Duration = Duration::from_secs(60);

/// Keys the steady-rate limiter holds before it forgets those at rest (rotated keys).
const RATE_KEYS_KEPT: usize = 64;

/// A key's pace is forgotten after this long without an answer (a rotated key).
const PACE_KEPT_FOR: Duration = Duration::from_secs(600);

/// The `X-RateLimit-*` headers of one answer, bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHeaders {
    /// Calls allowed per window (at least 1).
    pub limit: u32,
    /// Calls left in the current window.
    pub remaining: u32,
    /// Time until the current window resets, at most `MAX_RETRY_AFTER`.
    pub reset: Duration,
}

impl RateHeaders {
    /// Reads the three headers; `None` unless all three are there and are numbers. Values are
    /// bounded: a limit of 0 reads as 1, `Remaining` at most the limit, `Reset` at most
    /// `MAX_RETRY_AFTER`.
    pub fn parse(limit: &str, remaining: &str, reset: &str) -> Option<Self> {
        let limit: u64 = limit.trim().parse().ok()?;
        let remaining: u64 = remaining.trim().parse().ok()?;
        let reset: u64 = reset.trim().parse().ok()?;
        let limit = limit.clamp(1, u64::from(u32::MAX)) as u32;
        Some(Self {
            limit,
            remaining: remaining.min(u64::from(limit)) as u32,
            reset: Duration::from_secs(reset).min(super::MAX_RETRY_AFTER),
        })
    }
}

/// What the answers said about one key.
#[derive(Debug, Clone, Copy)]
struct Pace {
    /// The longest window seen (a window's first answer says its whole length).
    window: Duration,
    limit: u32,
    /// The next free slot.
    next: Instant,
    /// `Remaining: 0`: nothing goes out before this.
    exhausted_until: Option<Instant>,
    last_answer: Instant,
}

impl Pace {
    /// The spacing that puts at most `limit - 1` requests in any window (1 % over, for the
    /// jitter between sending and arriving).
    fn interval(&self) -> Duration {
        self.window.mul_f64(1.01) / self.limit.saturating_sub(1).max(1)
    }
}

/// Per API key: the pace the API's headers set, a pause after a 429, and an optional ceiling.
pub struct Throttle {
    rate: Option<DefaultKeyedRateLimiter<String>>,
    /// Until when each key is paused (after a 429), and what the server asked for.
    paused: Mutex<HashMap<String, (Instant, u64)>>,
    paces: Mutex<HashMap<String, Pace>>,
}

impl Throttle {
    /// `per_second`: the steady request rate per key (with a burst of as many); `None` for no
    /// steady limit (429s still pause the key).
    pub fn new(per_second: Option<NonZeroU32>) -> Self {
        Self {
            rate: per_second.map(|n| RateLimiter::hashmap(Quota::per_second(n))),
            paused: Mutex::default(),
            paces: Mutex::default(),
        }
    }

    /// Records an answer's `X-RateLimit-*` headers for `key`.
    pub fn observe(&self, key: &str, h: RateHeaders) {
        let now = Instant::now();
        let mut paces = self.paces.lock().unwrap_or_else(|e| e.into_inner());
        if paces.len() > RATE_KEYS_KEPT {
            paces.retain(|_, p| now.duration_since(p.last_answer) < PACE_KEPT_FOR);
        }
        let window = h.reset.max(Duration::from_secs(1));
        let p = paces.entry(key.to_string()).or_insert(Pace {
            window,
            limit: h.limit,
            next: now,
            exhausted_until: None,
            last_answer: now,
        });
        p.window = p.window.max(window);
        p.limit = h.limit;
        p.last_answer = now;
        if h.remaining == 0 {
            p.exhausted_until = Some(now + h.reset);
        }
    }

    /// Takes `key`'s next slot: how long to wait for it (`None` when the key has no pace), or,
    /// as an error, how long the key is held (nothing remaining until a reset further off than
    /// `MAX_INLINE_PAUSE`, or a line longer than `MAX_LINE`), without taking a slot.
    ///
    /// A slot in the line is waited for in place, however many are ahead: that is the queue of
    /// a rate-limited key, and giving the reconcile back would only send it round again.
    fn slot(&self, key: &str) -> Option<Result<Duration, Duration>> {
        let now = Instant::now();
        let mut paces = self.paces.lock().unwrap_or_else(|e| e.into_inner());
        let p = paces.get_mut(key)?;
        let exhausted = p.exhausted_until.filter(|u| *u > now);
        if exhausted.is_none() {
            p.exhausted_until = None;
        }
        if let Some(until) = exhausted
            && until - now > MAX_INLINE_PAUSE
        {
            return Some(Err(until - now));
        }
        let at = p.next.max(now).max(exhausted.unwrap_or(now));
        if at - now > MAX_LINE {
            return Some(Err(at - now));
        }
        p.next = at + p.interval();
        Some(Ok(at - now))
    }

    fn paused_until(&self, key: &str) -> Option<(Instant, u64)> {
        let paused = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        paused
            .get(key)
            .copied()
            .filter(|(t, _)| *t > Instant::now())
    }

    /// Waits until a request with `key` may go out: after the pause in force when it arrived.
    /// (Not after pauses that begin while it waits: those were caused by the requests released
    /// with it, and re-checking would let only a trickle through per pause.) A pause longer than
    /// `MAX_INLINE_PAUSE` is not waited out: the request fails at once as rate limited.
    pub async fn acquire(&self, key: &str) -> Result<(), PimError> {
        if let Some((until, asked_secs)) = self.paused_until(key) {
            let left = until.saturating_duration_since(Instant::now());
            if left > MAX_INLINE_PAUSE {
                return Err(PimError::RateLimited {
                    retry_after: Some(RetryAfter {
                        asked_secs,
                        wait: left,
                    }),
                });
            }
            // Spread the herd that was waiting on the same instant over a fifth of the pause.
            let spread = until
                .saturating_duration_since(Instant::now())
                .mul_f64(fastrand::f64() * 0.2);
            tokio::time::sleep_until((until + spread).into()).await;
        }
        match self.slot(key) {
            None => {}
            Some(Ok(wait)) => tokio::time::sleep(wait).await,
            Some(Err(wait)) => {
                return Err(PimError::RateLimited {
                    retry_after: Some(RetryAfter {
                        asked_secs: wait.as_secs(),
                        wait,
                    }),
                });
            }
        }
        if let Some(rate) = &self.rate {
            if rate.len() > RATE_KEYS_KEPT {
                rate.retain_recent();
            }
            rate.until_key_ready(&key.to_string()).await;
        }
        Ok(())
    }

    /// Keys with state (a pause in force, or a rate limiter's record), for tests of pruning.
    pub fn keys_held(&self) -> usize {
        let paused = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        let paces = self.paces.lock().unwrap_or_else(|e| e.into_inner()).len();
        paused.values().filter(|(t, _)| *t > Instant::now()).count()
            + self.rate.as_ref().map_or(0, |r| r.len())
            + paces
    }

    /// Records a 429 on `key`: nobody uses it before `retry_after` (bounded by the caller, see
    /// `RetryAfter`) has passed.
    pub fn rate_limited(&self, key: &str, retry_after: Option<RetryAfter>) {
        let asked = retry_after.map_or(DEFAULT_PAUSE.as_secs(), |r| r.asked_secs);
        let pause = retry_after
            .map_or(DEFAULT_PAUSE, |r| r.wait)
            .min(super::MAX_RETRY_AFTER);
        let until = (Instant::now() + pause, asked);
        let mut paused = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        // Forget keys whose pause is over, so the map stays as small as the set of keys in use.
        paused.retain(|_, (t, _)| *t > Instant::now());
        let t = paused.entry(key.to_string()).or_insert(until);
        *t = (*t).max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> RetryAfter {
        RetryAfter {
            asked_secs: 0,
            wait: Duration::from_millis(n),
        }
    }

    #[tokio::test]
    async fn a_429_pauses_every_request_of_that_key_only() {
        let t = Throttle::new(None);
        t.rate_limited("A", Some(ms(200)));
        let start = Instant::now();
        t.acquire("B").await.unwrap();
        assert!(
            start.elapsed() < Duration::from_millis(50),
            "other keys go on"
        );
        t.acquire("A").await.unwrap();
        let waited = start.elapsed();
        assert!(
            (Duration::from_millis(200)..Duration::from_millis(300)).contains(&waited),
            "{waited:?}"
        );
        // A later, longer pause wins over an earlier, shorter one.
        t.rate_limited("A", Some(ms(300)));
        t.rate_limited("A", Some(ms(100)));
        let start = Instant::now();
        t.acquire("A").await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(300));
        // The pause is over once waited out.
        let start = Instant::now();
        t.acquire("A").await.unwrap();
        assert!(start.elapsed() < Duration::from_millis(50));
    }

    #[tokio::test]
    async fn a_long_pause_is_answered_at_once_not_waited_out() {
        let t = Throttle::new(None);
        t.rate_limited("A", Some(RetryAfter::secs(3600)));
        let start = Instant::now();
        let e = t.acquire("A").await.unwrap_err();
        assert!(start.elapsed() < Duration::from_millis(50));
        // Bounded by the ceiling, whatever the server asked; the ask is still told.
        assert!(e.to_string().contains("asked to retry after 3600s"), "{e}");
        let left = e.retry_after().unwrap();
        assert!(
            left <= crate::pim::MAX_RETRY_AFTER && left > Duration::from_secs(290),
            "{left:?}"
        );
    }

    #[tokio::test]
    async fn rotated_keys_do_not_pile_up_in_the_rate_limiter() {
        let t = Throttle::new(NonZeroU32::new(1000));
        for i in 0..500 {
            t.acquire(&format!("KEY{i}")).await.unwrap();
        }
        // Every key at rest after a millisecond at 1000/s.
        tokio::time::sleep(Duration::from_millis(5)).await;
        t.acquire("LAST").await.unwrap();
        assert!(t.keys_held() <= RATE_KEYS_KEPT + 1, "{}", t.keys_held());
    }

    #[test]
    fn rate_headers_are_bounded() {
        let h = RateHeaders::parse("20", "7", "1").unwrap();
        assert_eq!(
            (h.limit, h.remaining, h.reset),
            (20, 7, Duration::from_secs(1))
        );
        let h = RateHeaders::parse("0", "99", "18446744073709551615").unwrap();
        assert_eq!((h.limit, h.remaining), (1, 1));
        assert_eq!(h.reset, crate::pim::MAX_RETRY_AFTER);
        assert_eq!(RateHeaders::parse("20", "-1", "1"), None);
        assert_eq!(RateHeaders::parse("x", "1", "1"), None);
        assert!(RateHeaders::parse("99999999999999999999", "1", "1").is_none());
    }

    #[tokio::test]
    async fn the_headers_pace_a_key_below_its_limit() {
        let t = Throttle::new(None);
        // No headers yet: no pacing.
        let start = Instant::now();
        for _ in 0..50 {
            t.acquire("A").await.unwrap();
        }
        assert!(start.elapsed() < Duration::from_millis(50));
        // 20 per 1 s window: one every 1.01/19 s, so 20 requests span 19 intervals (~1.01 s).
        t.observe("A", RateHeaders::parse("20", "19", "1").unwrap());
        let start = Instant::now();
        for _ in 0..20 {
            t.acquire("A").await.unwrap();
        }
        let took = start.elapsed();
        assert!(
            (Duration::from_millis(950)..Duration::from_millis(1150)).contains(&took),
            "{took:?}"
        );
        // Other keys are not paced by A's headers.
        let start = Instant::now();
        t.acquire("B").await.unwrap();
        t.acquire("B").await.unwrap();
        assert!(start.elapsed() < Duration::from_millis(20));
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_line_is_waited_in_place() {
        let t = std::sync::Arc::new(Throttle::new(None));
        // 2 per 10 s window: one slot every 10.1 s.
        t.observe("A", RateHeaders::parse("2", "1", "10").unwrap());
        let start = tokio::time::Instant::now();
        for _ in 0..4 {
            t.acquire("A").await.unwrap();
        }
        // Three intervals waited in place (the paused clock advances), none refused.
        assert!(
            start.elapsed() >= Duration::from_millis(30_300),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn nothing_remaining_holds_the_key_until_the_reset() {
        let t = Throttle::new(None);
        t.observe("A", RateHeaders::parse("1000", "0", "1").unwrap());
        let start = Instant::now();
        t.acquire("A").await.unwrap();
        let waited = start.elapsed();
        assert!(
            (Duration::from_millis(950)..Duration::from_millis(1100)).contains(&waited),
            "{waited:?}"
        );
        // A window of an hour with nothing left is not waited out in place.
        t.observe("B", RateHeaders::parse("1000", "0", "3600").unwrap());
        let e = t.acquire("B").await.unwrap_err();
        assert!(e.retry_after().unwrap() > Duration::from_secs(290), "{e}");
    }

    #[tokio::test]
    async fn the_steady_rate_spaces_requests_per_key() {
        let t = Throttle::new(NonZeroU32::new(20));
        let start = Instant::now();
        // A burst of 20, then one every 50 ms.
        for _ in 0..30 {
            t.acquire("A").await.unwrap();
        }
        let took = start.elapsed();
        assert!(
            (Duration::from_millis(400)..Duration::from_millis(800)).contains(&took),
            "{took:?}"
        );
    }
}
