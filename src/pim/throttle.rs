//! Client-side throttling per API key, following the API's own signals.
//!
//! "Key" here is the whole credentials, key id and secret: a Secret naming another team's key id
//! with a wrong secret neither slows that team (its 429s pause only itself) nor is paced by it.
//!
//! - **Pace.** Every answer's `X-RateLimit-Limit` and `X-RateLimit-Reset` (the relative seconds
//!   until the current window resets) give the key's rate: at most `limit` calls per window. The
//!   key's requests are spaced evenly so that at most `limit - 1` fall in any window, whatever
//!   its phase: the rate holds close to the limit without a burst that runs `Remaining` out
//!   before `Reset`. An answer with `X-RateLimit-Remaining: 0` holds the key until the reset.
//!   No headers, no pacing. The pace follows the latest window: answers within one window count
//!   down to the same end (the longest `Reset` among them is its length), and an answer whose
//!   end is another starts a new window, however long or short, so one odd `Reset` lasts only
//!   until the next answer contradicts it.
//! - **Pause.** A call refused (a 429; a 503, the server shedding load) waits its own
//!   `Retry-After` (the reconcile's requeue). The key as a whole is paused only once its answers
//!   say the key is refused, not some of its calls: `PAUSE_AFTER` refusals in a row, with no
//!   answer between them getting through. Then every request with that key waits until the
//!   server's `Retry-After` has passed, instead of each finding out with a call of its own.
//!   A storm that turns away a share of calls at random (30 % 429, 10 % 503) pauses nothing:
//!   pausing the key at each refusal held every other call a second each time (100 creates took
//!   9.5-17 s in `benches/scale.rs`'s storm; median 7 s since). The key of a real rate limit is
//!   paced by its `X-RateLimit-*` headers, below, before it gets that far.
//! - **Ceiling.** An optional steady rate per key (governor's GCRA, `--api-rate-limit`), off by
//!   default.

use parking_lot::Mutex;
use std::{collections::HashMap, num::NonZeroU32, time::Duration};

// tokio's clock, which is the monotonic clock in production and the test's own under paused time.
use tokio::time::Instant;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{Credentials, PimError, RetryAfter};

/// How long to stay off a key after a 429 that carried no `Retry-After`.
const DEFAULT_PAUSE: Duration = Duration::from_secs(1);

/// Refusals in a row, none of the key's answers between them getting through, that pause the
/// whole key: at 40 % of calls refused at random, 8 in a row come once in ~2,500 answers.
const PAUSE_AFTER: u32 = 8;

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
    /// The current window's length: the longest `Reset` its answers told (its first says it).
    window: Duration,
    limit: u32,
    /// When the current window ends, as its first answer said.
    ends: Instant,
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

    /// Whether an answer saying the window ends at `ends` speaks of the current window: `Reset`
    /// is in whole seconds, so two answers of one window may differ by up to a second.
    fn same_window(&self, ends: Instant) -> bool {
        let gap = if ends > self.ends {
            ends - self.ends
        } else {
            self.ends - ends
        };
        gap <= Duration::from_millis(1500) + self.window / 50
    }
}

/// Per API key: the pace the API's headers set, a pause after a 429, and an optional ceiling.
pub struct Throttle {
    rate: Option<DefaultKeyedRateLimiter<Credentials>>,
    /// Until when each key is paused (after a 429), and what the server asked for.
    paused: Mutex<HashMap<Credentials, (Instant, u64)>>,
    paces: Mutex<HashMap<Credentials, Pace>>,
    /// Per key, refusals in a row (a key is here only while its latest answer was a refusal).
    refusals: Mutex<HashMap<Credentials, u32>>,
}

impl Throttle {
    /// `per_second`: the steady request rate per key (with a burst of as many); `None` for no
    /// steady limit (429s still pause the key).
    pub fn new(per_second: Option<NonZeroU32>) -> Self {
        Self {
            rate: per_second.map(|n| RateLimiter::hashmap(Quota::per_second(n))),
            paused: Mutex::default(),
            paces: Mutex::default(),
            refusals: Mutex::default(),
        }
    }

    /// Records an answer's `X-RateLimit-*` headers for `key`.
    pub fn observe(&self, key: &Credentials, h: RateHeaders) {
        let now = Instant::now();
        let mut paces = self.paces.lock();
        if paces.len() > RATE_KEYS_KEPT {
            paces.retain(|_, p| now.duration_since(p.last_answer) < PACE_KEPT_FOR);
        }
        let window = h.reset.max(Duration::from_secs(1));
        let ends = now + h.reset;
        let p = paces.entry(key.clone()).or_insert(Pace {
            window,
            limit: h.limit,
            ends,
            next: now,
            exhausted_until: None,
            last_answer: now,
        });
        let before = p.interval();
        if p.same_window(ends) {
            p.window = p.window.max(window);
        } else {
            // A new window (or the API changed its mind): its signals replace the old ones.
            p.window = window;
            p.ends = ends;
            p.exhausted_until = None;
        }
        p.limit = h.limit;
        p.last_answer = now;
        // The slots already booked ahead are spaced at the new pace.
        let after = p.interval();
        if after != before && p.next > now {
            let ahead =
                (p.next - now).as_secs_f64() * after.as_secs_f64() / before.as_secs_f64().max(1e-9);
            p.next = now + Duration::from_secs_f64(ahead.min(MAX_LINE.as_secs_f64() * 2.0));
        }
        if h.remaining == 0 {
            p.exhausted_until = Some(ends);
        }
    }

    /// Takes `key`'s next slot: how long to wait for it (`None` when the key has no pace), or,
    /// as an error, how long the key is held (nothing remaining until a reset further off than
    /// `MAX_INLINE_PAUSE`, or a line longer than `MAX_LINE`), without taking a slot.
    ///
    /// A slot in the line is waited for in place, however many are ahead: that is the queue of
    /// a rate-limited key, and giving the reconcile back would only send it round again.
    fn slot(&self, key: &Credentials) -> Option<Result<Duration, Duration>> {
        let now = Instant::now();
        let mut paces = self.paces.lock();
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

    fn paused_until(&self, key: &Credentials) -> Option<(Instant, u64)> {
        let paused = self.paused.lock();
        paused
            .get(key)
            .copied()
            .filter(|(t, _)| *t > Instant::now())
    }

    /// Waits until a request with `key` may go out: after the pause in force when it arrived.
    /// (Not after pauses that begin while it waits: those were caused by the requests released
    /// with it, and re-checking would let only a trickle through per pause.) A pause longer than
    /// `MAX_INLINE_PAUSE` is not waited out: the request fails at once as rate limited.
    pub async fn acquire(&self, key: &Credentials) -> Result<(), PimError> {
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
            tokio::time::sleep_until(until + spread).await;
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
            rate.until_key_ready(key).await;
        }
        Ok(())
    }

    /// Whether `key` is paused now.
    pub fn is_paused(&self, key: &Credentials) -> bool {
        self.paused_until(key).is_some()
    }

    /// Keys with state (a pause in force, or a rate limiter's record), for tests of pruning.
    pub fn keys_held(&self) -> usize {
        let paused = self.paused.lock();
        let paces = self.paces.lock().len();
        paused.values().filter(|(t, _)| *t > Instant::now()).count()
            + self.rate.as_ref().map_or(0, |r| r.len())
            + paces
            + self.refusals.lock().len()
    }

    /// An answer that got through (anything but a refusal): the key is not refused as a whole.
    pub fn accepted(&self, key: &Credentials) {
        let mut refusals = self.refusals.lock();
        if !refusals.is_empty() {
            refusals.remove(key);
        }
    }

    /// A refusal (a 429, or a 503: the server shedding load) on `key`: its call waits its own
    /// `retry_after`; the `PAUSE_AFTER`th in a row pauses the whole key (`rate_limited`).
    pub fn refused(&self, key: &Credentials, retry_after: Option<RetryAfter>) {
        let in_a_row = {
            let mut refusals = self.refusals.lock();
            // Bounded by the keys refused at once; a rotated key's count is worth little.
            if refusals.len() >= RATE_KEYS_KEPT && !refusals.contains_key(key) {
                refusals.clear();
            }
            let n = refusals.entry(key.clone()).or_default();
            *n = n.saturating_add(1);
            *n
        };
        if in_a_row >= PAUSE_AFTER {
            self.rate_limited(key, retry_after);
        }
    }

    /// Pauses `key`: nobody uses it before `retry_after` (bounded by the caller, see
    /// `RetryAfter`) has passed.
    pub fn rate_limited(&self, key: &Credentials, retry_after: Option<RetryAfter>) {
        let asked = retry_after.map_or(DEFAULT_PAUSE.as_secs(), |r| r.asked_secs);
        let pause = retry_after
            .map_or(DEFAULT_PAUSE, |r| r.wait)
            .min(super::MAX_RETRY_AFTER);
        let until = (Instant::now() + pause, asked);
        let mut paused = self.paused.lock();
        // Forget keys whose pause is over, so the map stays as small as the set of keys in use.
        paused.retain(|_, (t, _)| *t > Instant::now());
        let t = paused.entry(key.clone()).or_insert(until);
        *t = (*t).max(until);
    }
}

#[cfg(test)]
mod tests {
    //! On tokio's paused clock, which the throttle reads too: waits are exact and take no time.
    use super::*;

    fn ms(n: u64) -> RetryAfter {
        RetryAfter {
            asked_secs: 0,
            wait: Duration::from_millis(n),
        }
    }

    fn key(k: &str) -> Credentials {
        Credentials::new(k, "secret")
    }

    fn headers(limit: &str, remaining: &str, reset: &str) -> RateHeaders {
        RateHeaders::parse(limit, remaining, reset).unwrap()
    }

    /// How long `n` requests of `k` take to go out, one after another.
    async fn time(t: &Throttle, k: &Credentials, n: usize) -> Duration {
        let start = Instant::now();
        for _ in 0..n {
            t.acquire(k).await.unwrap();
        }
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_every_request_of_that_key_only() {
        let t = Throttle::new(None);
        let (a, b) = (key("A"), key("B"));
        t.rate_limited(&a, Some(ms(200)));
        assert_eq!(time(&t, &b, 1).await, Duration::ZERO, "other keys go on");
        let waited = time(&t, &a, 1).await;
        // The pause, plus up to a fifth of it to spread the herd.
        assert!(
            (Duration::from_millis(200)..=Duration::from_millis(240)).contains(&waited),
            "{waited:?}"
        );
        // A later, longer pause wins over an earlier, shorter one.
        t.rate_limited(&a, Some(ms(300)));
        t.rate_limited(&a, Some(ms(100)));
        assert!(time(&t, &a, 1).await >= Duration::from_millis(300));
        // The pause is over once waited out.
        assert_eq!(time(&t, &a, 1).await, Duration::ZERO);
    }

    /// Refusals among answers that get through are about those calls: the key goes on. Only
    /// `PAUSE_AFTER` in a row pause it, and an answer that gets through starts the count again.
    #[tokio::test(start_paused = true)]
    async fn only_refusals_in_a_row_pause_the_key() {
        let t = Throttle::new(None);
        let a = key("A");
        for _ in 0..100 {
            t.refused(&a, Some(ms(1000)));
            t.refused(&a, Some(ms(1000)));
            t.accepted(&a);
        }
        assert_eq!(time(&t, &a, 1).await, Duration::ZERO, "not paused");
        for _ in 1..PAUSE_AFTER {
            t.refused(&a, Some(ms(1000)));
        }
        assert_eq!(time(&t, &a, 1).await, Duration::ZERO, "not yet");
        t.refused(&a, Some(ms(1000)));
        assert!(
            time(&t, &a, 1).await >= Duration::from_millis(1000),
            "paused"
        );
        t.accepted(&a);
        t.refused(&a, Some(ms(1000)));
        assert_eq!(time(&t, &a, 1).await, Duration::ZERO, "counted again");
    }

    /// "Key" is the whole credentials: a wrong secret for another team's key id is not paused by
    /// that team's 429s, nor does it pause them.
    #[tokio::test(start_paused = true)]
    async fn the_same_key_id_with_another_secret_is_another_key() {
        let t = Throttle::new(None);
        let (theirs, wrong) = (
            Credentials::new("FK", "FS"),
            Credentials::new("FK", "wrong"),
        );
        t.rate_limited(&wrong, Some(ms(5000)));
        assert_eq!(time(&t, &theirs, 1).await, Duration::ZERO);
        t.observe(&theirs, headers("2", "0", "60"));
        assert_eq!(time(&t, &wrong, 0).await, Duration::ZERO);
        assert!(t.acquire(&theirs).await.is_err(), "held until its reset");
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_pause_is_answered_at_once_not_waited_out() {
        let t = Throttle::new(None);
        let a = key("A");
        t.rate_limited(&a, Some(RetryAfter::secs(3600)));
        let start = Instant::now();
        let e = t.acquire(&a).await.unwrap_err();
        assert_eq!(start.elapsed(), Duration::ZERO);
        // Bounded by the ceiling, whatever the server asked; the ask is still told.
        assert!(e.to_string().contains("asked to retry after 3600s"), "{e}");
        let left = e.retry_after().unwrap();
        assert_eq!(left, crate::pim::MAX_RETRY_AFTER);
    }

    #[tokio::test]
    async fn rotated_keys_do_not_pile_up_in_the_rate_limiter() {
        let t = Throttle::new(NonZeroU32::new(1000));
        for i in 0..500 {
            t.acquire(&key(&format!("KEY{i}"))).await.unwrap();
        }
        // Every key at rest after a millisecond at 1000/s (governor keeps its own clock).
        tokio::time::sleep(Duration::from_millis(5)).await;
        t.acquire(&key("LAST")).await.unwrap();
        assert!(t.keys_held() <= RATE_KEYS_KEPT + 1, "{}", t.keys_held());
    }

    #[test]
    fn rate_headers_are_bounded() {
        let h = headers("20", "7", "1");
        assert_eq!(
            (h.limit, h.remaining, h.reset),
            (20, 7, Duration::from_secs(1))
        );
        let h = headers("0", "99", "18446744073709551615");
        assert_eq!((h.limit, h.remaining), (1, 1));
        assert_eq!(h.reset, crate::pim::MAX_RETRY_AFTER);
        assert_eq!(RateHeaders::parse("20", "-1", "1"), None);
        assert_eq!(RateHeaders::parse("x", "1", "1"), None);
        assert!(RateHeaders::parse("99999999999999999999", "1", "1").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn the_headers_pace_a_key_below_its_limit() {
        let t = Throttle::new(None);
        let (a, b) = (key("A"), key("B"));
        // No headers yet: no pacing.
        assert_eq!(time(&t, &a, 50).await, Duration::ZERO);
        // 20 per 1 s window: one every 1.01/19 s, so 20 requests span 19 intervals (1.01 s).
        t.observe(&a, headers("20", "19", "1"));
        let took = time(&t, &a, 20).await;
        let want = Duration::from_secs_f64(1.01 / 19.0) * 19;
        assert!(took.abs_diff(want) < Duration::from_millis(5), "{took:?}");
        // Other keys are not paced by A's headers.
        assert_eq!(time(&t, &b, 2).await, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_line_is_waited_in_place() {
        let t = Throttle::new(None);
        let a = key("A");
        // 2 per 10 s window: one slot every 10.1 s.
        t.observe(&a, headers("2", "1", "10"));
        // Three intervals waited in place (the first slot is now), none refused.
        let took = time(&t, &a, 4).await;
        assert!(
            took.abs_diff(Duration::from_millis(30_300)) < Duration::from_millis(5),
            "{took:?}"
        );
    }

    /// One answer with a long `Reset` paces the key only until the next answers say otherwise
    /// (it used to stay at the longest window ever seen, for the life of the process).
    #[tokio::test(start_paused = true)]
    async fn the_pace_follows_the_latest_window() {
        let t = Throttle::new(None);
        let a = key("A");
        t.observe(&a, headers("20", "19", "1"));
        assert!(time(&t, &a, 20).await < Duration::from_millis(1100));
        // One odd answer: a 300 s window. Slots are now 300 × 1.01 / 19 s apart.
        t.observe(&a, headers("20", "18", "300"));
        let slow = time(&t, &a, 2).await;
        assert!(slow > Duration::from_secs(15), "{slow:?}");
        // Then normal answers again: a window ending in a second is another window.
        for _ in 0..1000 {
            t.observe(&a, headers("20", "19", "1"));
        }
        let took = time(&t, &a, 20).await;
        assert!(took < Duration::from_millis(1200), "{took:?}");
        // Within one window, answers count down to the same end: the window keeps its length.
        let b = key("B");
        t.observe(&b, headers("20", "19", "60"));
        tokio::time::advance(Duration::from_secs(30)).await;
        t.observe(&b, headers("20", "10", "30"));
        let took = time(&t, &b, 2).await;
        let want = Duration::from_secs_f64(60.0 * 1.01 / 19.0);
        assert!(took.abs_diff(want) < Duration::from_millis(5), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_remaining_holds_the_key_until_the_reset() {
        let t = Throttle::new(None);
        let (a, b) = (key("A"), key("B"));
        t.observe(&a, headers("1000", "0", "1"));
        let waited = time(&t, &a, 1).await;
        assert_eq!(waited, Duration::from_secs(1));
        // A window of an hour with nothing left is not waited out in place.
        t.observe(&b, headers("1000", "0", "3600"));
        let e = t.acquire(&b).await.unwrap_err();
        assert_eq!(e.retry_after(), Some(crate::pim::MAX_RETRY_AFTER));
    }

    #[tokio::test]
    async fn the_steady_rate_spaces_requests_per_key() {
        // governor keeps its own (real) clock: a burst of 20, then one every 50 ms, so 30 take
        // at least 450 ms (no upper bound: a loaded machine only makes it slower).
        let t = Throttle::new(NonZeroU32::new(20));
        let start = std::time::Instant::now();
        for _ in 0..30 {
            t.acquire(&key("A")).await.unwrap();
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(400), "{took:?}");
    }
}
