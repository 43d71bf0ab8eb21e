//! Leader election on a `coordination.k8s.io/v1` Lease (kube-lease-manager), so several replicas
//! can run safely: only the holder reconciles; a standby makes no Kubernetes or Confluent calls
//! beyond renewing its claim on the Lease.

use std::{sync::Arc, time::Duration};

use futures::FutureExt;
use kube_lease_manager::LeaseManagerBuilder;
use tracing::{info, warn};

use crate::controller::{self, Context};

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

/// Why the elected run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// Shutdown was requested; the Lease was released.
    Shutdown,
    /// Leadership was lost; the caller should exit so a fresh process can compete again.
    LostLeadership,
}

#[derive(thiserror::Error, Debug)]
#[error("leader election: {0}")]
pub struct LeaderError(#[from] kube_lease_manager::LeaseManagerError);

/// Waits for the Lease, runs the controller while holding it, and releases it on shutdown.
pub async fn run_elected(
    ctx: Arc<Context>,
    lease: LeaseConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<Ended, LeaderError> {
    let manager = LeaseManagerBuilder::new(ctx.client.clone(), &lease.name)
        .with_namespace(&lease.namespace)
        .with_identity(&lease.identity)
        .with_duration(lease.duration.as_secs().max(2))
        .with_grace(
            lease
                .grace
                .as_secs()
                .clamp(1, lease.duration.as_secs().max(2) - 1),
        )
        .build()
        .await?;
    let (mut leader, task) = manager.watch().await;
    let shutdown = shutdown.shared();
    // A healthy standby is ready; it only waits.
    ctx.ready.store(true, std::sync::atomic::Ordering::Relaxed);
    info!(lease = %lease.name, namespace = %lease.namespace, identity = %lease.identity, "waiting for leadership");
    // Standby until we hold the Lease, or until asked to stop.
    loop {
        if *leader.borrow_and_update() {
            break;
        }
        tokio::select! {
            changed = leader.changed() => if changed.is_err() { return Ok(Ended::LostLeadership) },
            _ = shutdown.clone() => {
                drop(leader);
                let _ = task.await;
                return Ok(Ended::Shutdown);
            }
        }
    }
    info!(identity = %lease.identity, "acquired leadership");
    // Not ready again until the controller's caches have synced.
    ctx.ready.store(false, std::sync::atomic::Ordering::Relaxed);
    ctx.metrics.set_leader(true);
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    let mut watch_leader = leader.clone();
    let fence = ctx.pim.clone();
    let lost_watch = tokio::spawn(async move {
        loop {
            if watch_leader.changed().await.is_err() || !*watch_leader.borrow_and_update() {
                // At once, before the controller winds down: reconciles still running must not
                // write to Confluent Cloud while a new leader may be acting.
                fence.fence();
                let _ = lost_tx.send(());
                return;
            }
        }
    });
    let lost = lost_rx.map(|r| r.is_ok()).shared();
    let stop = {
        let lost = lost.clone();
        let shutdown = shutdown.clone();
        async move {
            tokio::select! {
                _ = shutdown => {},
                _ = lost => {},
            }
        }
    };
    // The controller finishes in-flight reconciles before returning.
    controller::run(ctx.clone(), stop).await;
    lost_watch.abort();
    ctx.metrics.set_leader(false);
    let was_lost = lost.now_or_never() == Some(true);
    // Dropping the receiver makes the manager release the Lease (if still ours) and stop.
    drop(leader);
    match task.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => warn!(error = %e, "releasing the lease failed"),
        Err(e) => warn!(error = %e, "lease manager task failed"),
    }
    if was_lost {
        warn!(identity = %lease.identity, "lost leadership");
        Ok(Ended::LostLeadership)
    } else {
        info!(identity = %lease.identity, "released leadership");
        Ok(Ended::Shutdown)
    }
}
