//! Leader election on a `coordination.k8s.io/v1` Lease, so several replicas can run safely: only
//! the holder reconciles; a standby makes no Confluent call and no Kubernetes call beyond
//! reading the Lease.
//!
//! As client-go's leader election, and for the same reasons:
//! - **Expiry on the observer's own clock.** A standby takes the Lease only when its record
//!   (holder, renew time) has not changed for the record's duration, as measured on the
//!   standby's monotonic clock since it saw that record: no wall-clock skew decides.
//! - **A renew deadline on the holder's own clock.** Every successful renewal moves the write
//!   fence (`pim::Fence`) to the monotonic time taken *before* that renewal was sent, plus the
//!   duration, less a margin: no standby can have seen the record earlier than that, so none can
//!   take over before the fence has closed. The fence is read right before every Confluent write,
//!   so it holds whatever this loop has or has not noticed: after a SIGSTOP the clock has moved on
//!   when the process runs again, and in a partition no renewal moves it. The replica then stops
//!   and exits, to come back as a standby.
//! - **Kubernetes writes too.** `Context::write_slot` checks the fence before a write; the
//!   client's own stack checks it again (`FenceLayer`) where the request leaves, after kube's
//!   buffer has handed it to another task: a freeze between the two would otherwise send it late.
//! - Every write to the Lease carries the `resourceVersion` it was decided on (409: someone else
//!   wrote first), and a released Lease has no holder, so a standby takes it at once.

use std::{sync::Arc, time::Duration};

use futures::FutureExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::controller::{self, Context};
use crate::pim::Fence;

/// Where the Lease lives and how long a claim lasts.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a claim is valid after its last renewal.
    pub duration: Duration,
    /// How long before expiry the holder renews.
    pub grace: Duration,
}

impl LeaseConfig {
    /// The duration, bounded: at least 2 s, at most an hour.
    fn duration(&self) -> Duration {
        self.duration
            .clamp(Duration::from_secs(2), Duration::from_secs(3600))
    }

    /// How long after a renewal the holder renews again: `grace` before expiry, and at most
    /// half way to the fence's deadline, so a failed renewal has time to be tried again before
    /// writes stop.
    fn renew_after(&self) -> Duration {
        let d = self.duration();
        d.saturating_sub(self.grace.clamp(Duration::from_secs(1), d / 2))
            .min(d.saturating_sub(self.margin()) / 2)
    }

    /// How much earlier than a standby could take over the fence closes: time for a write that
    /// passed the fence to arrive (the network, a slow proxy).
    fn margin(&self) -> Duration {
        (self.duration() / 5).max(Duration::from_secs(1))
    }

    /// How often a standby, or a holder whose renewal failed, tries again.
    fn retry_every(&self) -> Duration {
        (self.duration() / 5).clamp(Duration::from_millis(200), Duration::from_secs(2))
    }
}

/// Why the elected run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// Shutdown was requested; the Lease was released.
    Shutdown,
    /// Leadership was lost; the caller should exit so a fresh process can compete again.
    LostLeadership,
}

#[derive(thiserror::Error, Debug)]
pub enum LeaderError {
    #[error("leader election: {0}")]
    Kube(#[from] kube::Error),
    /// A thread panicked; the Lease was released on the way out.
    #[error("a task panicked (see above); the Lease was released")]
    Panicked,
}

/// The Lease record as it decides who holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    holder: Option<String>,
    renewed: Option<MicroTime>,
    duration: Duration,
    transitions: i32,
}

impl Record {
    fn of(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        Self {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            renewed: spec.renew_time,
            // Bounded: a record from elsewhere says how long to wait, within reason.
            duration: Duration::from_secs(
                spec.lease_duration_seconds.unwrap_or(15).clamp(1, 3600) as u64
            ),
            transitions: spec.lease_transitions.unwrap_or(0).max(0),
        }
    }
}

/// What this replica last saw of the Lease, and when (on its own monotonic clock).
struct Seen {
    record: Record,
    at: Instant,
}

/// One replica's part in the election.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    seen: tokio::sync::Mutex<Option<Seen>>,
}

/// What one attempt to take or renew the Lease came to.
enum Attempt {
    /// Ours until `deadline` (when the fence closes).
    Held { deadline: Instant },
    /// Another replica holds it.
    Other,
}

impl Elector {
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            seen: Default::default(),
        }
    }

    fn me(&self) -> &str {
        &self.config.identity
    }

    /// Takes the Lease if it is free, expired or ours; renews it if ours.
    async fn attempt(&self) -> Result<Attempt, kube::Error> {
        // Taken before anything is asked: the renewal cannot have been seen earlier than this.
        let sent = Instant::now();
        let now = MicroTime(jiff::Timestamp::now());
        let duration_secs = self.config.duration().as_secs() as i32;
        let mut seen = self.seen.lock().await;
        let Some(lease) = self.api.get_opt(&self.config.name).await? else {
            let lease: Lease = serde_json::from_value(serde_json::json!({
                "metadata": {"name": self.config.name},
                "spec": {"holderIdentity": self.me(), "leaseDurationSeconds": duration_secs,
                    "acquireTime": now, "renewTime": now, "leaseTransitions": 0},
            }))
            .map_err(kube::Error::SerdeError)?;
            let created = self.api.create(&PostParams::default(), &lease).await;
            return self.held(&mut seen, created, sent);
        };
        let record = Record::of(&lease);
        let observed_at = match &*seen {
            Some(s) if s.record == record => s.at,
            _ => Instant::now(),
        };
        *seen = Some(Seen {
            record: record.clone(),
            at: observed_at,
        });
        let ours = record.holder.as_deref() == Some(self.me());
        let expired = Instant::now().duration_since(observed_at) >= record.duration;
        if !(ours || record.holder.is_none() || expired) {
            return Ok(Attempt::Other);
        }
        let mut spec = serde_json::json!({
            "holderIdentity": self.me(), "leaseDurationSeconds": duration_secs, "renewTime": now,
        });
        if !ours {
            spec["acquireTime"] = serde_json::to_value(&now).map_err(kube::Error::SerdeError)?;
            spec["leaseTransitions"] = (record.transitions + 1).into();
        }
        let written = self.write(&lease, spec).await;
        self.held(&mut seen, written, sent)
    }

    /// Writes `spec` into the Lease, guarded by the `resourceVersion` it was decided on.
    async fn write(&self, lease: &Lease, spec: serde_json::Value) -> Result<Lease, kube::Error> {
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": lease.metadata.resource_version},
            "spec": spec,
        });
        let params = PatchParams::default();
        self.api
            .patch(&self.config.name, &params, &Patch::Merge(&patch))
            .await
    }

    /// What a write of ours, sent at `sent`, came to: held until the deadline it sets, or (409:
    /// someone wrote first) theirs, unless the next look says otherwise.
    fn held(
        &self,
        seen: &mut Option<Seen>,
        written: Result<Lease, kube::Error>,
        sent: Instant,
    ) -> Result<Attempt, kube::Error> {
        match written {
            Ok(lease) => {
                *seen = Some(Seen {
                    record: Record::of(&lease),
                    at: sent,
                });
                Ok(Attempt::Held {
                    deadline: self.deadline(sent),
                })
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Other),
            Err(e) => Err(e),
        }
    }

    fn deadline(&self, sent: Instant) -> Instant {
        sent + self.config.duration().saturating_sub(self.config.margin())
    }

    /// Gives the Lease up if it is still ours (so a standby takes it at once). Safe to call
    /// whatever the state; bounded by the client's own timeouts.
    pub async fn release(&self) {
        let Ok(Some(lease)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        if Record::of(&lease).holder.as_deref() != Some(self.me()) {
            return;
        }
        let spec = serde_json::json!({"holderIdentity": null, "renewTime": MicroTime(jiff::Timestamp::now())});
        match self.write(&lease, spec).await {
            Ok(_) => info!(identity = %self.me(), "released leadership"),
            Err(e) => warn!(error = %e, "releasing the lease failed"),
        }
    }

    /// Waits for the Lease, runs the controller while holding it, and releases it on shutdown.
    pub async fn run(
        &self,
        ctx: Arc<Context>,
        shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    ) -> Result<Ended, LeaderError> {
        let fence = ctx.pim.fence();
        // A standby sends no write.
        fence.close();
        let shutdown = shutdown.shared();
        // A healthy standby is ready; it only waits.
        ctx.ready.store(true, std::sync::atomic::Ordering::Relaxed);
        let c = &self.config;
        info!(lease = %c.name, namespace = %c.namespace, identity = %c.identity, "waiting for leadership");
        let mut deadline = loop {
            match self.attempt().await {
                Ok(Attempt::Held { deadline }) => break deadline,
                Ok(Attempt::Other) => {}
                Err(e) => debug!(error = %e, "reading the lease failed; trying again"),
            }
            let wait = c.retry_every().mul_f64(0.8 + fastrand::f64() * 0.4);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.clone() => return Ok(Ended::Shutdown),
            }
        };
        fence.allow_until(deadline);
        info!(identity = %c.identity, "acquired leadership");
        // Not ready again until the controller's caches have synced.
        ctx.ready.store(false, std::sync::atomic::Ordering::Relaxed);
        ctx.metrics.set_leader(true);
        let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
        let stop = {
            let shutdown = shutdown.clone();
            async move {
                tokio::select! {
                    _ = shutdown => {},
                    _ = lost_rx => {},
                }
            }
        };
        // The controller finishes in-flight reconciles before returning (their writes fenced).
        let controller = controller::run(ctx.clone(), stop);
        let keep = async {
            let mut renewed = Instant::now();
            loop {
                let next = (renewed + c.renew_after()).min(deadline);
                tokio::select! {
                    _ = tokio::time::sleep_until(next) => {}
                    _ = shutdown.clone() => return false,
                }
                loop {
                    // A SIGSTOP or a stalled runtime may have slept past the deadline: lost,
                    // whatever the API server would say now (a standby may be acting).
                    if Instant::now() >= deadline {
                        return true;
                    }
                    let attempt = tokio::time::timeout(
                        deadline.saturating_duration_since(Instant::now()),
                        self.attempt(),
                    )
                    .await;
                    match attempt {
                        Ok(Ok(Attempt::Held { deadline: d })) => {
                            deadline = d;
                            fence.allow_until(d);
                            renewed = Instant::now();
                            break;
                        }
                        Ok(Ok(Attempt::Other)) => return true,
                        Ok(Err(e)) => {
                            warn!(error = %e, "renewing the lease failed; trying again until its deadline")
                        }
                        Err(_) => return true,
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(c.retry_every().min(deadline.saturating_duration_since(Instant::now()))) => {}
                        _ = shutdown.clone() => return false,
                    }
                }
            }
        };
        let mut controller = std::pin::pin!(controller);
        let (lost, ended) = tokio::select! {
            lost = keep => (lost, false),
            // The controller only ends after `stop` (a shutdown that may win this race).
            _ = controller.as_mut() => (false, true),
        };
        if lost {
            // At once, before the controller winds down: a standby may be acting.
            fence.close();
            let _ = lost_tx.send(());
            warn!(identity = %c.identity, "lost leadership");
        }
        // Never polled again once it has ended: a finished `async fn` panics if resumed.
        if !ended {
            controller.await;
        }
        ctx.metrics.set_leader(false);
        if lost {
            return Ok(Ended::LostLeadership);
        }
        fence.close();
        self.release().await;
        Ok(Ended::Shutdown)
    }
}

/// Waits for the Lease, runs the controller while holding it, and releases it on shutdown.
pub async fn run_elected(
    ctx: Arc<Context>,
    lease: LeaseConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<Ended, LeaderError> {
    Elector::new(ctx.client.clone(), lease)
        .run(ctx, shutdown)
        .await
}

/// Holds back every write to the Kubernetes API server past the fence's deadline, in the
/// client's own stack (`kube::client::ClientBuilder::with_layer`), below kube's buffer: the
/// buffer's worker is another task, and a freeze (a SIGSTOP, a stalled runtime) that starts after
/// `Context::write_slot`'s check and before the worker takes the request would send it late; and
/// the request's future, made by the worker, is polled by the caller's task, so it is checked
/// before every poll too (`Fence::hold`). No client-side check closes the window to the socket
/// entirely; the fence's margin covers that.
/// Writes to Leases pass: they are the elector's own, each made on the `resourceVersion` it was
/// decided on (a release after the deadline is refused by the server if a standby took over).
#[derive(Clone, Debug)]
pub struct FenceLayer(Arc<Fence>);

impl FenceLayer {
    pub fn new(fence: Arc<Fence>) -> Self {
        Self(fence)
    }
}

impl<S> tower::Layer<S> for FenceLayer {
    type Service = Fenced<S>;

    fn layer(&self, inner: S) -> Fenced<S> {
        Fenced {
            inner,
            fence: self.0.clone(),
        }
    }
}

/// The service `FenceLayer` makes.
#[derive(Clone, Debug)]
pub struct Fenced<S> {
    inner: S,
    fence: Arc<Fence>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> tower::Service<http::Request<B>> for Fenced<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = futures::future::Either<
        futures::future::MapErr<S::Future, fn(S::Error) -> BoxError>,
        futures::future::BoxFuture<'static, Result<S::Response, BoxError>>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        use futures::TryFutureExt;
        let read = matches!(*req.method(), http::Method::GET | http::Method::HEAD);
        // Anywhere in the path: a proxy in front of the API server may prefix it.
        let lease = req.uri().path().contains("/apis/coordination.k8s.io/");
        if read || lease {
            return futures::future::Either::Left(
                self.inner.call(req).map_err(Into::into as fn(_) -> _),
            );
        }
        // Checked before every poll (`Fence::hold`), the first included: kube's buffer hands
        // this future to the caller's task, which may poll it, and send the request, only after
        // a freeze. Making it sends nothing.
        let fence = self.fence.clone();
        let request = self.inner.call(req);
        futures::future::Either::Right(Box::pin(async move {
            match fence.hold(request).await {
                Some(answer) => answer.map_err(Into::into),
                None => Err(Box::new(crate::controller::error::PastDeadline) as BoxError),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service whose request "leaves" when its future is first polled, as hyper's does.
    #[derive(Clone, Default)]
    struct Sends(Arc<std::sync::atomic::AtomicU32>);

    impl tower::Service<http::Request<()>> for Sends {
        type Response = ();
        type Error = BoxError;
        type Future = futures::future::BoxFuture<'static, Result<(), BoxError>>;

        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), BoxError>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            let sent = self.0.clone();
            Box::pin(async move {
                sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            })
        }
    }

    /// A write made before the deadline and first polled after it (its task frozen between, as
    /// kube's buffer hands the future to another task) is never sent; a read still is.
    #[tokio::test]
    async fn a_write_polled_past_the_deadline_is_not_sent() {
        use tower::{Layer, Service};
        let fence = Arc::new(Fence::default());
        fence.allow_until(Instant::now() + Duration::from_secs(60));
        let sends = Sends::default();
        let mut svc = FenceLayer::new(fence.clone()).layer(sends.clone());
        let request = |m: http::Method| {
            http::Request::builder()
                .method(m)
                .uri("/apis/pim.confluent.cloud/v1alpha1/namespaces/a/providerintegrations/x")
                .body(())
                .unwrap()
        };
        let write = svc.call(request(http::Method::PATCH));
        let read = svc.call(request(http::Method::GET));
        fence.close();
        let refused = write.await.unwrap_err();
        assert!(
            refused.is::<crate::controller::error::PastDeadline>(),
            "{refused}"
        );
        read.await.unwrap();
        assert_eq!(
            sends.0.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "only the read left"
        );
    }

    /// A renewal comes well before the fence's deadline, whatever the flags.
    #[test]
    fn renewals_come_before_the_fence_closes() {
        for (duration, grace) in [(15, 5), (3, 1), (2, 1), (60, 1), (10, 9), (3600, 10)] {
            let c = LeaseConfig {
                name: "l".into(),
                namespace: "n".into(),
                identity: "i".into(),
                duration: Duration::from_secs(duration),
                grace: Duration::from_secs(grace),
            };
            let fence_after = c.duration() - c.margin();
            assert!(
                c.renew_after() * 2 <= fence_after && c.renew_after() > Duration::ZERO,
                "{duration}/{grace}: renew after {:?}, fence after {fence_after:?}",
                c.renew_after()
            );
            assert!(c.margin() >= Duration::from_secs(1));
        }
    }
}
