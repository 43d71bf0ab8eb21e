//! Wires the `run` subcommand: Kubernetes client, API client, health/metrics server, controller.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{Router, extract::State, http::StatusCode, routing::get};

use crate::{
    cli::RunArgs,
    controller::{self, Context, DefaultCredentials},
    leader::{self, Ended, LeaseConfig},
    metrics::Metrics,
    pim::{Credentials, PimClient},
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone)]
struct HttpState {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

/// `/healthz` (the process serves), `/readyz` (a standby, or a controller whose caches have
/// synced) and `/metrics` on one port.
pub fn http_router(metrics: Arc<Metrics>, ready: Arc<AtomicBool>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(s): State<HttpState>| async move {
                if s.ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(s): State<HttpState>| async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    s.metrics.encode(),
                )
            }),
        )
        .with_state(HttpState { metrics, ready })
}

fn default_credentials(args: &RunArgs) -> Result<DefaultCredentials, BoxError> {
    if let Some(s) = &args.default_credentials_secret {
        let (namespace, name) = s
            .split_once('/')
            .filter(|(n, m)| !n.is_empty() && !m.is_empty())
            .ok_or("--default-credentials-secret must be NAMESPACE/NAME")?;
        return Ok(DefaultCredentials::Secret {
            namespace: namespace.into(),
            name: name.into(),
        });
    }
    match (&args.api_key, &args.api_secret) {
        (Some(k), Some(s)) => Ok(DefaultCredentials::Static(Credentials::new(k, s))),
        (None, None) => Ok(DefaultCredentials::None),
        _ => Err(
            "set both CONFLUENT_CLOUD_API_KEY and CONFLUENT_CLOUD_API_SECRET, or neither".into(),
        ),
    }
}

pub async fn run(args: RunArgs) -> Result<(), BoxError> {
    crate::install_crypto_provider();
    let kube_config = match &args.context {
        Some(ctx) => {
            kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions {
                context: Some(ctx.clone()),
                ..Default::default()
            })
            .await?
        }
        None => kube::Config::infer().await?,
    };
    let client = kube::Client::try_from(kube_config)?;
    let metrics = Arc::new(Metrics::new());
    let pim = PimClient::new(&args.api_url, args.api_timeout)?
        .with_rate_limit(std::num::NonZeroU32::new(args.api_rate_limit))
        .with_observer(metrics.clone());
    let config = controller::Config {
        resync: args.resync,
        concurrency: args.concurrency,
        default_credentials: default_credentials(&args)?,
        default_credentials_scope: args.default_credentials_scope,
        namespaces: args.namespaces.clone(),
        instance: args.pod_name.clone(),
        ..Default::default()
    };
    let ctx = Arc::new(Context::new(client, pim, config, metrics.clone()));
    let listener = tokio::net::TcpListener::bind(args.metrics_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, api_url = %args.api_url, namespaces = ?args.namespaces, "starting");
    let app = http_router(metrics, ctx.ready.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "health server stopped");
        }
    });
    if !args.leader_election {
        controller::run(ctx, crate::shutdown_signal()).await;
        tracing::info!("stopped");
        return Ok(());
    }
    let lease = LeaseConfig {
        name: args.lease_name.clone(),
        namespace: args.lease_namespace.clone(),
        identity: args
            .pod_name
            .clone()
            .unwrap_or_else(|| format!("pio-{:016x}", fastrand::u64(..))),
        duration: args.lease_duration,
        grace: args.lease_renew_grace,
    };
    match leader::run_elected(ctx, lease, crate::shutdown_signal()).await? {
        Ended::Shutdown => {
            tracing::info!("stopped");
            Ok(())
        }
        // Exit non-zero so Kubernetes restarts a clean process that competes again.
        Ended::LostLeadership => Err("lost leadership".into()),
    }
}
