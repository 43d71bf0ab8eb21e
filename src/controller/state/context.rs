//! What every reconcile shares: configuration, clients, the remote cache, and one small memory
//! per resource (failures in a row, the credentials that last worked, the validation schedule).

use parking_lot::Mutex;
use std::{collections::HashMap, sync::Arc, time::Duration};

use kube::{
    Client, ResourceExt,
    runtime::events::{Recorder, Reporter},
};

use super::gate::ApiServerGate;
use super::namespaces::Namespaces;
use super::owners::Owners;
use super::remote::RemoteCache;
use super::secrets::SecretCache;
use crate::controller::decide::{Next, ValidationMemo};
use crate::controller::error::MANAGER;
use crate::crd::{PendingCreate, ProviderIntegration};
use crate::pim::{Credentials, PimClient};

/// Where credentials come from when a resource has no `credentialsRef`.
#[derive(Clone, Debug, Default)]
pub enum DefaultCredentials {
    #[default]
    None,
    /// From the operator's environment (`CONFLUENT_CLOUD_API_KEY` / `..._SECRET`).
    Static(Credentials),
    /// From a Secret with keys `apiKey` and `apiSecret`.
    Secret { namespace: String, name: String },
}

/// Where the default credentials may be used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DefaultCredentialsScope {
    /// Only in namespaces whose `pim.confluent.cloud/default-credentials` annotation lists the
    /// resource's environment (or `*`): a platform team grants them, per namespace.
    #[default]
    Annotated,
    /// In every watched namespace, for every environment the key reaches.
    Any,
}

pub use super::namespaces::DEFAULT_CREDENTIALS_ANNOTATION;

/// Tunables of the controller.
#[derive(Clone, Debug)]
pub struct Config {
    /// How often a Ready integration is checked against Confluent Cloud.
    pub resync: Duration,
    /// Resources reconciled in parallel.
    pub concurrency: u16,
    pub default_credentials: DefaultCredentials,
    pub default_credentials_scope: DefaultCredentialsScope,
    /// Only watch these namespaces (all when empty).
    pub namespaces: Vec<String>,
    /// The pod name, to tell replicas apart in events.
    pub instance: Option<String>,
    /// First retry delay after a transient error without a `Retry-After`; doubles up to
    /// `retry_max`.
    pub retry_base: Duration,
    /// Longest retry delay after transient errors without a `Retry-After` (deletion blocked
    /// while in use may wait up to 2.5×). Confluent's Terraform provider retries within 1–30 s.
    pub retry_max: Duration,
    /// First re-check of a stalled resource (Secrets and quotas change without an event here);
    /// doubles up to the resync period.
    pub stall_retry: Duration,
    /// Said in every resource's `Ready` message (`run --emulator`: nothing real is created).
    pub notice: Option<&'static str>,
    /// The longest one reconcile may take, whatever the APIs do (each call has its own timeout;
    /// this bounds their sum).
    pub reconcile_timeout: Duration,
    /// How long reconciles in flight may go on after shutdown is asked for.
    pub shutdown_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(300),
            concurrency: 512,
            default_credentials: DefaultCredentials::None,
            default_credentials_scope: DefaultCredentialsScope::Annotated,
            namespaces: Vec::new(),
            instance: None,
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
            stall_retry: Duration::from_secs(30),
            notice: None,
            reconcile_timeout: Duration::from_secs(120),
            shutdown_grace: Duration::from_secs(8),
        }
    }
}

/// What is kept about one resource between reconciles, by uid. Dropped when the resource is
/// gone, and when nothing is left to keep: a settled resource has none.
#[derive(Default)]
pub(crate) struct Memory {
    /// Failures in a row, for the backoff; reset by a success.
    pub failures: u32,
    /// When the integration is next validated (GCP and Azure only, so boxed).
    pub validation: Option<Box<ValidationMemo>>,
    /// The intent whose last create was answered 429, so nothing was created (rare,
    /// so boxed).
    pub throttled_create: Option<Box<PendingCreate>>,
    /// When the last create of this resource that may have made something (a 5xx, a lost
    /// answer) was answered: a listing asked for since shows what it made. `None` while a create
    /// is under way, or when it was not answered (given up on): then only a listing from now on.
    pub create_answered: Option<std::time::Instant>,
    /// The API's `Retry-After` for this resource's last call: no call before then, whatever
    /// brings the next reconcile (the watch event of our own write came 50 ms after a 429).
    pub not_before: Option<std::time::Instant>,
    /// The `resourceVersion`s our last writes produced, newest last: a copy carrying an older
    /// one of them is stale by our own hand, and the newest is on its way.
    pub written: std::collections::VecDeque<String>,
}

impl Memory {
    fn is_empty(&self) -> bool {
        self.failures == 0
            && self.validation.is_none()
            && self.throttled_create.is_none()
            && self.create_answered.is_none()
            && self.not_before.is_none()
            && self.written.is_empty()
    }
}

/// Shared state of all reconciles.
pub struct Context {
    pub client: Client,
    pub pim: PimClient,
    pub config: Config,
    pub cache: RemoteCache,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Ready to serve (`/readyz`): a standby replica, or a controller whose caches have synced.
    pub ready: Arc<std::sync::atomic::AtomicBool>,
    pub(crate) recorder: Recorder,
    pub(crate) secrets: SecretCache,
    /// The followed Namespaces (grants and pauses), filled by the wiring's watch.
    pub(crate) namespaces: Namespaces,
    /// Closed while the Kubernetes API server does not answer: no reconcile starts.
    pub(crate) api_server: ApiServerGate,
    /// Who holds which integration, from the watch stream (`owners.rs`).
    pub(crate) owners: Owners,
    /// The cloud operators' kinds to watch for trust objects (`trust_watch.rs`).
    pub(crate) trust_watch: super::trust_watch::TrustWatch,
    memory: Mutex<HashMap<String, Memory>>,
    /// Places for writes to the Kubernetes API server (`write_slot`).
    writes: tokio::sync::Semaphore,
}

/// The reconciles' writes in flight to the Kubernetes API server at once. kube's client speaks
/// HTTP/1.1, so each write in flight is a connection (a TLS session on a real cluster: memory
/// here, a handshake there). The server serves writes one line at a time (about 500 a second
/// on 2 cores), so a few dozen keep it busy at any latency below 50 ms; more would only wait
/// in its line (or its priority-and-fairness queue) instead of in ours, each holding a
/// connection. Ours is first come, first served, and a reconcile waits here for at most the
/// writes of the reconciles ahead of it (`runtime/feed.rs` bounds those). Lease renewals do
/// not come through here: they are never held behind reconciles.
pub(crate) const KUBE_WRITES_IN_FLIGHT: usize = 32;

/// The delay after the `n`th failure in a row (n ≥ 1): `base` doubling up to `cap`, ±20% jitter.
pub(crate) fn backoff_delay(n: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base
        .saturating_mul(1u32 << n.saturating_sub(1).min(16))
        .min(cap);
    exp.mul_f64(0.8 + fastrand::f64() * 0.4)
}

/// The wait before retrying a transient error: what the server asked for (`Retry-After`), plus
/// up to 20% so the resources it turned away together do not return together; without a hint, the
/// exponential backoff.
pub(crate) fn retry_delay(
    n: u32,
    hint: Option<Duration>,
    base: Duration,
    cap: Duration,
) -> Duration {
    match hint {
        Some(d) => d.mul_f64(1.0 + fastrand::f64() * 0.2),
        None => backoff_delay(n, base, cap),
    }
}

impl Context {
    pub fn new(
        client: Client,
        pim: PimClient,
        config: Config,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance: config.instance.clone(),
        };
        let unused_for = config.resync.saturating_mul(2);
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            pim,
            config,
            cache: RemoteCache::new(unused_for),
            metrics,
            ready: Arc::default(),
            secrets: SecretCache::new(unused_for),
            namespaces: Namespaces::default(),
            api_server: ApiServerGate::default(),
            owners: Owners::default(),
            trust_watch: Default::default(),
            memory: Mutex::default(),
            writes: tokio::sync::Semaphore::new(KUBE_WRITES_IN_FLIGHT),
        }
    }

    /// Reads or changes the memory of one resource.
    pub(crate) fn memory<T>(
        &self,
        pi: &ProviderIntegration,
        f: impl FnOnce(&mut Memory) -> T,
    ) -> T {
        let uid = pi.uid().unwrap_or_default();
        let mut all = self.memory.lock();
        let m = all.entry(uid.clone()).or_default();
        let out = f(m);
        if m.is_empty() {
            all.remove(&uid);
        }
        out
    }

    /// Counts one more failure in a row; returns how many.
    fn failed(&self, pi: &ProviderIntegration) -> u32 {
        self.memory(pi, |m| {
            m.failures = m.failures.saturating_add(1);
            m.failures
        })
    }

    /// Counts one more failure in a row and returns the backoff for it: `base` doubling up to
    /// `cap`, ±20% jitter. Reset by `succeeded`.
    pub(crate) fn backoff(
        &self,
        pi: &ProviderIntegration,
        base: Duration,
        cap: Duration,
    ) -> Duration {
        let n = self.failed(pi);
        backoff_delay(n, base, cap)
    }

    /// The wait after a transient error: the server's `Retry-After`, else the backoff.
    ///
    /// A wait the server named (`Retry-After`) is not counted as a failure in a row: the server
    /// said when to come back, so a 429 storm does not stretch the resource's backoff for the next
    /// 503. It is kept as the resource's `not_before` (`told_to_wait`). Returns the wait and the
    /// failures in a row counted so far.
    pub(crate) fn retry_backoff(
        &self,
        pi: &ProviderIntegration,
        hint: Option<Duration>,
    ) -> (Duration, u32) {
        let n = match hint {
            Some(wait) => self.memory(pi, |m| {
                m.not_before = Some(std::time::Instant::now() + wait);
                m.failures
            }),
            None => self.failed(pi),
        };
        (
            retry_delay(n, hint, self.config.retry_base, self.config.retry_max),
            n,
        )
    }

    /// The slower backoff of something a human must fix.
    pub(crate) fn stall_backoff(&self, pi: &ProviderIntegration) -> Duration {
        self.backoff(pi, self.config.stall_retry, self.config.resync)
    }

    /// The backoff while deletion is blocked by usages (connectors may take long to go).
    pub(crate) fn in_use_backoff(&self, pi: &ProviderIntegration) -> Duration {
        self.backoff(
            pi,
            self.config.retry_base * 5,
            self.config.retry_max.mul_f64(2.5),
        )
    }

    /// Settled: what was kept for retries goes.
    pub(crate) fn succeeded(&self, pi: &ProviderIntegration) {
        self.memory(pi, |m| {
            m.failures = 0;
            m.throttled_create = None;
            m.create_answered = None;
            m.not_before = None;
        });
    }

    /// What is left of the wait the API asked for before this resource's next call, if any.
    pub(crate) fn told_to_wait(&self, pi: &ProviderIntegration) -> Option<Duration> {
        self.memory(pi, |m| {
            let left = m
                .not_before?
                .checked_duration_since(std::time::Instant::now())
                .filter(|d| !d.is_zero());
            if left.is_none() {
                m.not_before = None;
            }
            left
        })
    }

    /// Records the `resourceVersion` a write of ours produced.
    /// Records a write of ours, and returns what it stored trimmed as the cache keeps it: a
    /// reconcile holds it across its next remote call (a second at worst, hundreds at once).
    pub(crate) fn wrote(&self, mut stored: ProviderIntegration) -> ProviderIntegration {
        if let Some(rv) = stored.metadata.resource_version.clone() {
            self.memory(&stored, |m| {
                m.written.push_back(rv);
                if m.written.len() > 8 {
                    m.written.pop_front();
                }
            });
        }
        self.api_server.write_passed();
        super::trim(&mut stored);
        stored
    }

    /// Whether `pi` is a copy our own later write has superseded (the watch has not caught up).
    pub(crate) fn superseded(&self, pi: &ProviderIntegration) -> bool {
        let Some(rv) = pi.metadata.resource_version.as_ref() else {
            return false;
        };
        self.memory(pi, |m| {
            if m.written.back() == Some(rv) {
                // Caught up: the watch never goes back to an older copy.
                m.written = Default::default();
                return false;
            }
            m.written.contains(rv)
        })
    }

    /// Resources something is kept about (failures, credentials, schedules): none once they
    /// settle or go. For tests and diagnostics.
    pub fn remembered(&self) -> usize {
        self.memory.lock().len()
    }

    /// A place for one write to the Kubernetes API server, held until its answer
    /// (`KUBE_WRITES_IN_FLIGHT`); the Lease fence is checked once the place is had, so a write
    /// that waited for it past the deadline does not leave (and again where the request leaves
    /// the client: `leader::FenceLayer`).
    pub(crate) async fn write_slot(
        &self,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, crate::controller::error::Error> {
        let slot = self
            .writes
            .acquire()
            .await
            .map_err(|_| crate::controller::error::Error::Fenced)?;
        if !self.pim.fence().allows_writes() {
            return Err(crate::controller::error::Error::Fenced);
        }
        Ok(slot)
    }

    /// Secrets' last keys and default-credential grants kept: bounded by the Secrets in use and
    /// the namespaces that exist. For tests and diagnostics.
    pub fn secrets_kept(&self) -> usize {
        self.secrets.len()
    }

    /// Forgets everything kept about a resource that is gone.
    pub(crate) fn forget(&self, pi: &ProviderIntegration) {
        self.memory.lock().remove(&pi.uid().unwrap_or_default());
    }

    /// How long a periodic check (a listing, a passed validation) stays fresh: half the resync
    /// period. Each resync sweep, one period after the last, then repeats it, unless a reconcile
    /// between sweeps did so in the last half period.
    pub(crate) fn fresh_for(&self) -> Duration {
        self.config.resync / 2
    }

    /// A `decide::Next` in time, with jitter; `None` for the resync, which the resync sweep
    /// brings (`feed.rs`), not a requeue.
    pub(crate) fn delay(&self, next: Next) -> Option<Duration> {
        let c = &self.config;
        match next {
            Next::Resync => None,
            Next::Retry { failures, hint } => {
                Some(retry_delay(failures, hint, c.retry_base, c.retry_max))
            }
            Next::StallRetry { failures } => Some(backoff_delay(failures, c.stall_retry, c.resync)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_the_wait_however_many_failures_came_before() {
        let (base, cap) = (Duration::from_secs(1), Duration::from_secs(30));
        for n in [1, 2, 6, 60] {
            let d = retry_delay(n, Some(Duration::from_secs(1)), base, cap).as_secs_f64();
            assert!((1.0..=1.2).contains(&d), "failure {n}: {d} s");
        }
        // Without a hint: exponential, capped at 30 s.
        let d = retry_delay(6, None, base, cap).as_secs_f64();
        assert!((24.0..=36.0).contains(&d), "{d}");
        assert!(retry_delay(60, None, base, cap) <= Duration::from_secs(36));
    }

    #[test]
    fn backoff_doubles_from_base_up_to_cap_with_jitter() {
        let (base, cap) = (Duration::from_secs(1), Duration::from_secs(10));
        for (n, want) in [
            (1, 1.0),
            (2, 2.0),
            (3, 4.0),
            (4, 8.0),
            (5, 10.0),
            (60, 10.0),
        ] {
            let d = backoff_delay(n, base, cap).as_secs_f64();
            assert!(
                (want * 0.8..=want * 1.2).contains(&d),
                "failure {n}: {d} s, want {want} s ±20%"
            );
        }
    }
}
