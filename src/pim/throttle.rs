//! Client-side throttling per API key. A 429 is about the key, not the resource that happened to
//! get it: every request with that key waits until the server's `Retry-After` has passed, so a
//! storm lowers the rate for everyone sharing the key instead of each resource backing off on
//! its own. A steady per-key rate (governor's GCRA) keeps the operator from being the cause.

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

/// Keys the steady-rate limiter holds before it forgets those at rest (rotated keys).
const RATE_KEYS_KEPT: usize = 64;

/// Per API key: a steady rate, and a pause after a 429.
pub struct Throttle {
    rate: Option<DefaultKeyedRateLimiter<String>>,
    /// Until when each key is paused (after a 429), and what the server asked for.
    paused: Mutex<HashMap<String, (Instant, u64)>>,
}

impl Throttle {
    /// `per_second`: the steady request rate per key (with a burst of as many); `None` for no
    /// steady limit (429s still pause the key).
    pub fn new(per_second: Option<NonZeroU32>) -> Self {
        Self {
            rate: per_second.map(|n| RateLimiter::hashmap(Quota::per_second(n))),
            paused: Mutex::default(),
        }
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
        paused.values().filter(|(t, _)| *t > Instant::now()).count()
            + self.rate.as_ref().map_or(0, |r| r.len())
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
