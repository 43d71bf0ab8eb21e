//! How many API calls may be in flight at once, adapted to what the API answers (AIMD, as TCP
//! and adaptive concurrency limiters do).
//!
//! - While answers come back as fast as the fastest seen lately for the same operation (within
//!   twice that baseline, plus a little), the limit grows: by one per answer at first (doubling
//!   each round trip: "slow start"), then by one per round trip once it has had to shrink.
//! - When latency rises above that, or the API cannot answer (a timeout, a failed connection, a
//!   5xx that took longer than answers do), the limit shrinks: to 90 % when slower, to half when
//!   overloaded, at most once per round trip (one burst of failures is one signal).
//! - A 5xx answered as fast as answers come moves nothing: the server turned the call away
//!   without doing its work, and the call waits its `Retry-After` or backs off on its own (a
//!   key refused throughout is paused, `throttle.rs`). Cutting the calls in flight for it too
//!   punished a storm twice: 10 % of calls answered 503 at random cut the limit at every round
//!   trip, down to its floor of 4, and the reconciles, which follow the limit, waited in line
//!   behind it (TCP's collapse under random loss, which BBR avoids by following latency).
//! - Only answers that say something about the API's capacity count: a success's latency, and
//!   overload. A 4xx says something about the request or its caller (a revoked key answered
//!   401 in a millisecond, a missing integration), so it moves nothing: one team's fast failures
//!   neither set the baseline nor cut everyone's calls in flight. A 429 is a rate signal about
//!   one key, and paces that key (`throttle.rs`), not the number in flight.
//! - The baseline is per operation (a LIST page is not a POST) and over a window: the fastest
//!   of the last two windows of answers, so an odd fast answer is forgotten and a lasting new
//!   latency is accepted within two windows.
//!
//! - It grows only while it is in use (at least half its places taken): when reconciles wait
//!   on something else (the Kubernetes API server's line of writes, at 2 writes per create),
//!   more places would finish nothing sooner and hold more reconciles in memory (TCP grows its
//!   window only while the window is what limits it, RFC 7661).
//! - It grows no further than the calls in flight that `TARGET_RATE` calls a second need at the
//!   baseline latency (Little's law), and never below `INITIAL`: more in flight would finish
//!   nothing sooner (each create costs the Kubernetes API server 2 of the ~500 writes a second
//!   it serves, so about 250 creates a second can be recorded; no API key is allowed more), and
//!   each call in flight is a reconcile holding its resource in memory.
//!
//! So 1 s of latency does not cap the operator at a fixed number per second, and an API under
//! strain gets fewer calls. `--concurrency` is the ceiling. The line of reconciles
//! (`controller/runtime/feed.rs`) follows the same limit, so reconciles in flight track it.

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The limit never falls below this: a few calls keep probing an API that recovers.
const FLOOR: f64 = 4.0;

/// The limit it starts at, if the ceiling allows: at 50 ms, 2,560 calls a second already; at 1 s,
/// one round trip of growth short of `TARGET_RATE` (so a wave of creates is not a second slower
/// than with more in flight).
const INITIAL: f64 = 128.0;

/// The call rate the limit is sized for at most: `limit ≤ baseline latency × TARGET_RATE`.
const TARGET_RATE: f64 = 250.0;

/// Latency above `TOLERANCE × baseline + SLACK` is taken as the API slowing down.
const TOLERANCE: f64 = 2.0;
const SLACK: Duration = Duration::from_millis(20);

/// What one call came to, for the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A success of this operation, after this long.
    Answered(&'static str, Duration),
    /// No answer: a timeout or a failed connection.
    Overloaded,
    /// A 5xx answer of this operation, after this long: overload only if it came slow.
    Refused(&'static str, Duration),
    /// Says nothing about the API's capacity: a 4xx (429 included: it paces its key), or a call
    /// given up before an answer.
    Ignored,
}

/// Answers in one window of the baseline.
const WINDOW_ANSWERS: u32 = 100;

/// The fastest answers of one operation lately: of the window being filled and the one before.
#[derive(Debug, Default)]
struct Baseline {
    current: Option<Duration>,
    previous: Option<Duration>,
    answers: u32,
}

impl Baseline {
    fn get(&self) -> Option<Duration> {
        match (self.current, self.previous) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn record(&mut self, latency: Duration) {
        self.current = Some(self.current.map_or(latency, |c| c.min(latency)));
        self.answers += 1;
        if self.answers >= WINDOW_ANSWERS {
            self.previous = self.current.take();
            self.answers = 0;
        }
    }
}

#[derive(Debug)]
struct State {
    limit: f64,
    in_flight: usize,
    /// Per operation, the fastest answers lately.
    baselines: std::collections::HashMap<&'static str, Baseline>,
    /// The latest round trip seen (the baseline of the last operation answered): how often a
    /// cut may come.
    rtt: Option<Duration>,
    slow_start: bool,
    last_cut: Option<Instant>,
}

/// The shared limit of calls in flight.
#[derive(Debug)]
pub struct Adaptive {
    state: Mutex<State>,
    wake: Notify,
    ceiling: f64,
}

/// One call's place; given back on drop.
#[derive(Debug)]
pub struct Permit<'a> {
    owner: &'a Adaptive,
    outcome: Outcome,
}

impl Permit<'_> {
    /// Records what the call came to (on drop, the place is given back).
    pub fn finish(mut self, outcome: Outcome) {
        self.outcome = outcome;
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.owner.release(self.outcome);
    }
}

impl Adaptive {
    /// `ceiling`: the most calls ever in flight (0: no limit at all).
    pub fn new(ceiling: usize) -> Self {
        let ceiling = if ceiling == 0 {
            f64::INFINITY
        } else {
            (ceiling as f64).max(1.0)
        };
        Self {
            state: Mutex::new(State {
                limit: INITIAL.min(ceiling),
                in_flight: 0,
                baselines: Default::default(),
                rtt: None,
                slow_start: true,
                last_cut: None,
            }),
            wake: Notify::new(),
            ceiling,
        }
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, State> {
        self.state.lock()
    }

    /// The current limit, for metrics and tests.
    pub fn limit(&self) -> usize {
        self.lock().limit as usize
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// Waits for a place.
    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            // Registered before the check, so a release between the check and the wait wakes it.
            notified.as_mut().enable();
            {
                let mut s = self.lock();
                if (s.in_flight as f64) < s.limit.floor().max(1.0) {
                    s.in_flight += 1;
                    return Permit {
                        owner: self,
                        outcome: Outcome::Ignored,
                    };
                }
            }
            notified.await;
        }
    }

    fn release(&self, outcome: Outcome) {
        let wake = {
            let mut s = self.lock();
            // Whether the limit is in use: at least half its places taken (RFC 7661's test of
            // a "validated" window; answers come in waves, so a stricter one stops growth early).
            let binding = s.in_flight as f64 >= 0.5 * s.limit.floor();
            s.in_flight = s.in_flight.saturating_sub(1);
            let before = s.limit;
            self.adapt(&mut s, outcome, binding, Instant::now());
            // One place freed, plus any the limit grew by.
            1 + (s.limit.floor() - before.floor()).max(0.0) as usize
        };
        for _ in 0..wake {
            self.wake.notify_one();
        }
    }

    fn adapt(&self, s: &mut State, outcome: Outcome, binding: bool, now: Instant) {
        let rtt = s.rtt.unwrap_or(Duration::from_millis(100));
        let may_cut = s.last_cut.is_none_or(|t| now.duration_since(t) >= rtt);
        match outcome {
            Outcome::Ignored => {}
            Outcome::Overloaded => self.cut(s, 0.5, may_cut, now),
            Outcome::Refused(op, latency) => {
                // Slow against the answers of the same operation (none yet: not slow).
                let base = s.baselines.get(op).and_then(Baseline::get);
                if base.is_some_and(|b| latency > b.mul_f64(TOLERANCE) + SLACK) {
                    self.cut(s, 0.5, may_cut, now);
                }
            }
            Outcome::Answered(op, latency) => {
                let baseline = s.baselines.entry(op).or_default();
                baseline.record(latency);
                let base = baseline.get().unwrap_or(latency);
                s.rtt = Some(base);
                if latency <= base.mul_f64(TOLERANCE) + SLACK {
                    if !binding {
                        // Calls are not held back by the limit (the reconciles wait on
                        // something else: the Kubernetes API server's line of writes, say):
                        // more places would only hold more reconciles in memory.
                        return;
                    }
                    let needed = (base.as_secs_f64() * TARGET_RATE).max(INITIAL);
                    let grown = s.limit + if s.slow_start { 1.0 } else { 1.0 / s.limit };
                    // Never grown past what is needed (nor cut for being there).
                    s.limit = grown.min(needed.max(s.limit)).min(self.ceiling);
                } else {
                    self.cut(s, 0.9, may_cut, now);
                }
            }
        }
    }

    /// Shrinks the limit by `factor`, at most once per round trip, never below the floor.
    fn cut(&self, s: &mut State, factor: f64, may_cut: bool, now: Instant) {
        if may_cut {
            s.limit = (s.limit * factor).max(FLOOR.min(self.ceiling));
            s.slow_start = false;
            s.last_cut = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(a: &Adaptive, ms: u64, n: usize) {
        answered_op(a, "create", ms, n);
    }

    fn answered_op(a: &Adaptive, op: &'static str, ms: u64, n: usize) {
        for _ in 0..n {
            finished(a, Outcome::Answered(op, Duration::from_millis(ms)));
        }
    }

    /// A call ends while the limit is full (every place in use).
    fn finished(a: &Adaptive, outcome: Outcome) {
        let mut s = a.lock();
        s.in_flight = s.in_flight.max(s.limit.floor() as usize);
        drop(s);
        a.release(outcome);
    }

    #[test]
    fn grows_while_latency_holds_up_to_the_ceiling() {
        let a = Adaptive::new(1000);
        assert_eq!(a.limit(), 128);
        answered(&a, 1000, 64);
        assert_eq!(a.limit(), 192, "slow start: one more per answer");
        answered(&a, 1000, 1000);
        assert_eq!(a.limit(), 250, "what 250 calls/s need at 1 s");
        let a = Adaptive::new(200);
        answered(&a, 1000, 1000);
        assert_eq!(a.limit(), 200, "never above the ceiling");
        assert_eq!(Adaptive::new(16).limit(), 16);
    }

    #[test]
    fn a_fast_api_needs_no_more_than_the_initial_limit() {
        let a = Adaptive::new(512);
        answered(&a, 50, 5000);
        assert_eq!(
            a.limit(),
            128,
            "128 in flight at 50 ms is 2,560 calls/s already"
        );
        answered(&a, 800, 20_000);
        // The baseline approaches 800 ms from below.
        assert!(
            (199..=200).contains(&a.limit()),
            "800 ms: 200 in flight for 250 calls/s, not {}",
            a.limit()
        );
    }

    #[test]
    fn halves_on_overload_once_per_round_trip_and_keeps_a_floor() {
        let a = Adaptive::new(512);
        answered(&a, 500, 10);
        let before = a.limit();
        for _ in 0..20 {
            a.lock().in_flight += 1;
            a.release(Outcome::Overloaded);
        }
        assert_eq!(a.limit(), before / 2, "a burst of failures is one signal");
        // Many round trips of overload: down to the floor, never to zero.
        for _ in 0..20 {
            a.lock().last_cut = None;
            a.lock().in_flight += 1;
            a.release(Outcome::Overloaded);
        }
        assert_eq!(a.limit(), FLOOR as usize);
        // After a cut, growth is one per round trip (additive), not one per answer.
        answered(&a, 500, 4);
        assert_eq!(a.limit(), 4);
        answered(&a, 500, 1);
        assert_eq!(a.limit(), 5);
    }

    #[test]
    fn shrinks_when_latency_rises() {
        let a = Adaptive::new(512);
        answered(&a, 500, 36);
        assert_eq!(a.limit(), 128);
        answered(&a, 5000, 1);
        assert_eq!(a.limit(), 115);
        // A lasting new latency becomes the baseline, and growth resumes.
        answered(&a, 5000, 2000);
        assert!(a.limit() > 115, "{}", a.limit());
    }

    #[tokio::test]
    async fn holds_calls_beyond_the_limit_until_a_place_is_free() {
        let a = std::sync::Arc::new(Adaptive::new(2));
        let p1 = a.acquire().await;
        let _p2 = a.acquire().await;
        let a2 = a.clone();
        let third = tokio::spawn(async move {
            let _p = a2.acquire().await;
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!third.is_finished(), "a third call waits");
        assert_eq!(a.in_flight(), 2);
        p1.finish(Outcome::Answered("get", Duration::from_millis(5)));
        tokio::time::timeout(Duration::from_secs(1), third)
            .await
            .expect("the freed place goes to the waiting call")
            .unwrap();
    }

    /// Grown only while it is in use (as TCP grows its window only while the window is
    /// validated, RFC 7661): with reconciles waiting on the Kubernetes API server instead, a
    /// limit of 500 at 1 s would hold 500 reconciles in memory for nothing.
    #[test]
    fn grows_only_while_it_holds_calls_back() {
        let a = Adaptive::new(1000);
        for _ in 0..1000 {
            a.lock().in_flight = 30;
            a.release(Outcome::Answered("create", Duration::from_millis(1000)));
        }
        assert_eq!(a.limit(), 128, "30 of 128 places in use: not grown");
        answered(&a, 1000, 64);
        assert_eq!(a.limit(), 192, "full: grown");
    }

    /// A revoked key answered 401 in 2 ms, a thousand times, among 1 s successes: nothing moves
    /// (it used to set the baseline to 2 ms, and every 1 s answer after it cut the limit).
    #[test]
    fn a_storm_of_fast_4xx_moves_nothing() {
        let a = Adaptive::new(512);
        answered(&a, 1000, 1000);
        assert_eq!(a.limit(), 250);
        for _ in 0..1000 {
            finished(&a, Outcome::Ignored);
        }
        answered(&a, 1000, 200);
        assert_eq!(a.limit(), 250);
    }

    /// A 503 answered as fast as successes is the server turning calls away (its key is paused
    /// for it): 10 % of answers, round trip after round trip, leave the limit where it was. The
    /// same 5xx answered slowly is overload, and halves it.
    #[test]
    fn a_fast_5xx_moves_nothing_and_a_slow_one_halves() {
        let a = Adaptive::new(512);
        answered(&a, 50, 200);
        let before = a.limit();
        for _ in 0..100 {
            a.lock().last_cut = None;
            answered(&a, 50, 9);
            finished(&a, Outcome::Refused("create", Duration::from_millis(50)));
        }
        assert!(a.limit() >= before, "cut from {before} to {}", a.limit());
        let before = a.limit();
        a.lock().last_cut = None;
        finished(&a, Outcome::Refused("create", Duration::from_millis(5000)));
        assert_eq!(a.limit(), before / 2);
    }

    /// Each operation is measured against its own baseline: a fast GET does not make every
    /// slower POST look like a rise; and an odd fast answer is forgotten after two windows.
    #[test]
    fn baselines_are_per_operation_and_forget_odd_answers() {
        let a = Adaptive::new(512);
        answered_op(&a, "create", 1000, 1000);
        answered_op(&a, "get", 2, 1);
        answered_op(&a, "create", 1000, 50);
        assert_eq!(a.limit(), 250, "a fast GET is not the POSTs' baseline");
        // One odd 2 ms POST: the next window of POSTs is measured against it, then it is gone.
        answered_op(&a, "create", 2, 1);
        answered_op(&a, "create", 1000, 2 * WINDOW_ANSWERS as usize);
        let after = a.limit();
        answered_op(&a, "create", 1000, 2000);
        assert!(
            a.limit() > after,
            "grows again once forgotten: {}",
            a.limit()
        );
    }
}
