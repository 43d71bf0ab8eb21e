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

/// How long to stay off a key after a 429 that carried no `Retry-After`.
const DEFAULT_PAUSE: Duration = Duration::from_secs(1);

/// Per API key: a steady rate, and a pause after a 429.
pub struct Throttle {
    rate: Option<DefaultKeyedRateLimiter<String>>,
    /// Until when each key is paused (after a 429).
    paused: Mutex<HashMap<String, Instant>>,
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

    fn paused_until(&self, key: &str) -> Option<Instant> {
        let paused = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        paused.get(key).copied().filter(|t| *t > Instant::now())
    }

    /// Waits until a request with `key` may go out: after the pause in force when it arrived.
    /// (Not after pauses that begin while it waits: those were caused by the requests released
    /// with it, and re-checking would let only a trickle through per pause.)
    pub async fn acquire(&self, key: &str) {
        if let Some(until) = self.paused_until(key) {
            // Spread the herd that was waiting on the same instant over a fifth of the pause.
            let spread = until
                .saturating_duration_since(Instant::now())
                .mul_f64(fastrand::f64() * 0.2);
            tokio::time::sleep_until((until + spread).into()).await;
        }
        if let Some(rate) = &self.rate {
            rate.until_key_ready(&key.to_string()).await;
        }
    }

    /// Records a 429 on `key`: nobody uses it before `retry_after` has passed.
    pub fn rate_limited(&self, key: &str, retry_after: Option<Duration>) {
        let until = Instant::now() + retry_after.unwrap_or(DEFAULT_PAUSE);
        let mut paused = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        // Forget keys whose pause is over, so the map stays as small as the set of keys in use.
        paused.retain(|_, t| *t > Instant::now());
        let t = paused.entry(key.to_string()).or_insert(until);
        *t = (*t).max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_429_pauses_every_request_of_that_key_only() {
        let t = Throttle::new(None);
        t.rate_limited("A", Some(Duration::from_millis(200)));
        let start = Instant::now();
        t.acquire("B").await;
        assert!(
            start.elapsed() < Duration::from_millis(50),
            "other keys go on"
        );
        t.acquire("A").await;
        let waited = start.elapsed();
        assert!(
            (Duration::from_millis(200)..Duration::from_millis(300)).contains(&waited),
            "{waited:?}"
        );
        // A later, longer pause wins over an earlier, shorter one.
        t.rate_limited("A", Some(Duration::from_millis(300)));
        t.rate_limited("A", Some(Duration::from_millis(100)));
        let start = Instant::now();
        t.acquire("A").await;
        assert!(start.elapsed() >= Duration::from_millis(300));
        // The pause is over once waited out.
        let start = Instant::now();
        t.acquire("A").await;
        assert!(start.elapsed() < Duration::from_millis(50));
    }

    #[tokio::test]
    async fn the_steady_rate_spaces_requests_per_key() {
        let t = Throttle::new(NonZeroU32::new(20));
        let start = Instant::now();
        // A burst of 20, then one every 50 ms.
        for _ in 0..30 {
            t.acquire("A").await;
        }
        let took = start.elapsed();
        assert!(
            (Duration::from_millis(400)..Duration::from_millis(800)).contains(&took),
            "{took:?}"
        );
    }
}
