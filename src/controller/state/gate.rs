//! One shared "the API server answers" gate, a circuit breaker in front of every reconcile.
//!
//! A reconcile that failed because the Kubernetes API server did not answer (down, restarting,
//! overloaded: 5xx, 429, no connection) closes it. While it is closed no reconcile is started,
//! and those that failed wait in the line (not in kube's scheduler, whose requeues would bypass
//! it: up to the concurrency retrying every 2 s). Every `PROBE_EVERY` a probe asks `/readyz`;
//! once it answers, and the trial backoff has passed, the gate is half open: one reconcile is let
//! through as a trial. Its success, with a write that passed, opens the gate (the line resumes
//! at once); its failure closes it again with a longer trial backoff (0.5 s doubling to 2 s),
//! since a server whose health check answers may still refuse writes (API Priority and Fairness,
//! a slow etcd). A trial with nothing to write leaves it half open, for the next one.

use parking_lot::Mutex;
use std::time::Duration;

use kube::Client;
use tokio::time::Instant;

/// How often a closed gate asks the API server whether it is back.
pub const PROBE_EVERY: Duration = Duration::from_millis(500);

/// The longest a probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The wait before the first trial after a failure, doubling per failed trial up to
/// `TRIAL_BACKOFF_MAX`.
const TRIAL_BACKOFF: Duration = Duration::from_millis(500);
const TRIAL_BACKOFF_MAX: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// No reconcile starts; `failures` in a row so far; no trial before `trial_after`.
    Closed {
        failures: u32,
        trial_after: Instant,
    },
    /// One trial reconcile may run.
    HalfOpen {
        failures: u32,
    },
}

/// The gate; open at start.
pub struct ApiServerGate {
    state: Mutex<State>,
    /// Wakes the probe when the gate closes.
    closed: tokio::sync::Notify,
    /// A write passed while the gate was half open (`succeeded`).
    wrote: std::sync::atomic::AtomicBool,
}

impl Default for ApiServerGate {
    fn default() -> Self {
        Self {
            state: Mutex::new(State::Open),
            closed: tokio::sync::Notify::new(),
            wrote: Default::default(),
        }
    }
}

impl ApiServerGate {
    /// How many reconciles may be handed over or running now: all, one trial, or none.
    pub fn allowed(&self) -> usize {
        match *self.state.lock() {
            State::Open => usize::MAX,
            State::HalfOpen { .. } => 1,
            State::Closed { .. } => 0,
        }
    }

    /// The API server did not answer a reconcile: hold all work until it does.
    pub fn close(&self, why: &dyn std::fmt::Display) {
        let mut s = self.state.lock();
        let failures = match *s {
            State::Open => {
                tracing::warn!(error = %why, "the Kubernetes API server is not answering; holding all work until it does");
                1
            }
            State::HalfOpen { failures } => {
                tracing::debug!(error = %why, "the trial reconcile failed; the gate stays closed");
                failures.saturating_add(1)
            }
            // Others that were in flight when it closed: one signal.
            State::Closed { .. } => return,
        };
        self.wrote
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let wait = TRIAL_BACKOFF
            .saturating_mul(1 << (failures - 1).min(8))
            .min(TRIAL_BACKOFF_MAX);
        *s = State::Closed {
            failures,
            trial_after: Instant::now() + wait,
        };
        drop(s);
        self.closed.notify_one();
    }

    /// A write of a `ProviderIntegration` passed (the writes every reconcile needs; another
    /// kind's may pass where these are refused). Noted while the gate is half open, for
    /// `succeeded`.
    pub fn write_passed(&self) {
        if matches!(*self.state.lock(), State::HalfOpen { .. }) {
            self.wrote.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// A reconcile succeeded: a half-open gate opens if a write passed meanwhile. Returns
    /// whether it did. A success without a write says nothing about writes (the trial may be a
    /// settled resource's turn), and one write passing says little while the reconcile's next
    /// may still be refused: opening then would let every line retry at once.
    pub fn succeeded(&self) -> bool {
        let mut s = self.state.lock();
        if matches!(*s, State::HalfOpen { .. })
            && self.wrote.swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            *s = State::Open;
            tracing::info!("the Kubernetes API server takes writes again; resuming work");
            return true;
        }
        false
    }

    /// Runs until dropped: while the gate is closed, probes the API server every `PROBE_EVERY`
    /// and, once it answers and the trial backoff has passed, half-opens the gate and calls
    /// `changed` (so the line looks again). `changed` is called too when a trial opens it
    /// (`succeeded`'s caller does that).
    pub async fn probe(&self, client: Client, changed: impl Fn()) {
        loop {
            let closed = self.closed.notified();
            let trial_after = match *self.state.lock() {
                State::Closed { trial_after, .. } => Some(trial_after),
                _ => None,
            };
            let Some(trial_after) = trial_after else {
                closed.await;
                continue;
            };
            tokio::time::sleep(PROBE_EVERY).await;
            if Instant::now() < trial_after || !answers(&client).await {
                continue;
            }
            let mut s = self.state.lock();
            if let State::Closed { failures, .. } = *s {
                *s = State::HalfOpen { failures };
                drop(s);
                changed();
            }
        }
    }
}

/// Whether the API server says it is ready (`GET /readyz`, open to every authenticated user).
async fn answers(client: &Client) -> bool {
    let Ok(req) = http::Request::get("/readyz").body(Vec::new()) else {
        return false;
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, client.request_text(req)).await,
        Ok(Ok(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn closes_once_trials_one_and_opens_on_its_success() {
        let g = ApiServerGate::default();
        assert_eq!(g.allowed(), usize::MAX);
        g.close(&"503");
        g.close(&"503 again, from a reconcile in flight then");
        assert_eq!(g.allowed(), 0);
        assert_eq!(
            *g.state.lock(),
            State::Closed {
                failures: 1,
                trial_after: Instant::now() + TRIAL_BACKOFF
            }
        );
        // Half open (as the probe does): one trial; it fails: closed, a longer backoff.
        *g.state.lock() = State::HalfOpen { failures: 1 };
        assert_eq!(g.allowed(), 1);
        g.close(&"429");
        assert_eq!(
            *g.state.lock(),
            State::Closed {
                failures: 2,
                trial_after: Instant::now() + TRIAL_BACKOFF * 2
            }
        );
        // Nothing opens it while closed; half open, a success without a write leaves it so
        // (the next trial comes), and one after a write opens it.
        g.write_passed();
        assert!(!g.succeeded());
        *g.state.lock() = State::HalfOpen { failures: 2 };
        assert!(!g.succeeded());
        assert_eq!(g.allowed(), 1);
        g.write_passed();
        assert!(g.succeeded());
        assert_eq!(g.allowed(), usize::MAX);
        // A write that passed before the trial failed counts for nothing after.
        *g.state.lock() = State::HalfOpen { failures: 2 };
        g.write_passed();
        g.close(&"429");
        *g.state.lock() = State::HalfOpen { failures: 3 };
        assert!(!g.succeeded());
        // The backoff is bounded.
        for _ in 0..20 {
            *g.state.lock() = State::HalfOpen { failures: 30 };
            g.close(&"503");
        }
        assert!(matches!(*g.state.lock(), State::Closed { trial_after, .. }
            if trial_after <= Instant::now() + TRIAL_BACKOFF_MAX));
    }
}
