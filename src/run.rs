//! Wires the `run` subcommand: Kubernetes client, API client, health/metrics server, controller.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{Router, extract::State, http::StatusCode, routing::get};
use futures::FutureExt;

use crate::{
    cli::RunArgs,
    controller::{self, Context, DefaultCredentials, DefaultCredentialsScope},
    leader::{self, Ended, LeaseConfig},
    metrics::Metrics,
    pim::{Credentials, Fence, PimClient},
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

/// The process ends at most this long after SIGTERM, whatever is in flight: reconciles get
/// `Config::shutdown_grace` (8 s), releasing the Lease the rest. Within the chart's
/// termination grace period (and the 10 s the issue tracker asked for).
pub const SHUTDOWN_LIMIT: Duration = Duration::from_millis(9_500);

/// How long releasing the Lease may take on the way out, after `SHUTDOWN_LIMIT` or a panic.
const RELEASE_LIMIT: Duration = Duration::from_millis(400);

/// Counts every panic of any thread (after the default hook has printed it), so the process
/// releases its Lease and ends instead of running on with a dead task.
fn panic_signal() -> tokio::sync::watch::Receiver<u64> {
    static SIGNAL: std::sync::OnceLock<tokio::sync::watch::Sender<u64>> =
        std::sync::OnceLock::new();
    SIGNAL
        .get_or_init(|| {
            let (signal, _) = tokio::sync::watch::channel(0u64);
            let count = signal.clone();
            let default = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                default(info);
                count.send_modify(|n| *n += 1);
            }));
            signal
        })
        // Panics from now on: one before this run (a caught one, an earlier run's) is not
        // this run's (a `Notify` kept it as a permit and ended the next run at once).
        .subscribe()
}

/// The line `run --emulator` starts with, and what every resource's `Ready` message says.
pub const EMULATOR_NOTICE: &str = "EMULATOR: integrations are created in an emulator inside the operator, nothing is created in Confluent Cloud";

/// The `run` subcommand: connects to the cluster (kubeconfig context, or in-cluster), then
/// `run_with`.
pub async fn run(args: RunArgs) -> Result<(), BoxError> {
    crate::install_crypto_provider();
    let kube_config = match &args.context {
        Some(ctx) => kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions {
            context: Some(ctx.clone()),
            ..Default::default()
        })
        .await
        .map_err(|e| no_cluster(&e))?,
        None => kube::Config::infer().await.map_err(|e| no_cluster(&e))?,
    };
    let url = kube_config.cluster_url.to_string();
    // The Lease's fence guards the writes to the API server as well as to Confluent Cloud.
    let fence = Arc::new(Fence::default());
    let client = kube::client::ClientBuilder::try_from(kube_config)?
        .with_layer(&leader::FenceLayer::new(fence.clone()))
        .build();
    if args.emulator {
        // A first try on a laptop: say at once what is missing, instead of retrying a watch.
        preflight(&client, &url).await?;
    }
    run_with(args, client, fence, crate::shutdown_signal()).await
}

fn no_cluster(e: &dyn std::fmt::Display) -> BoxError {
    format!("no Kubernetes cluster configured ({e}); without one, try the Provider Integration API alone: provider-integration-operator emulator (docs/emulator.md)").into()
}

/// The cluster answers and serves the CRD.
async fn preflight(client: &kube::Client, url: &str) -> Result<(), BoxError> {
    let answer = tokio::time::timeout(Duration::from_secs(5), client.apiserver_version()).await;
    match answer {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(unreachable_cluster(url, &e)),
        Err(_) => return Err(unreachable_cluster(url, &"no answer within 5s")),
    }
    let api: kube::Api<crate::crd::ProviderIntegration> = kube::Api::all(client.clone());
    match api
        .list_metadata(&kube::api::ListParams::default().limit(1))
        .await
    {
        Err(kube::Error::Api(s)) if s.code == 404 => Err(
            "the ProviderIntegration CRD is not installed in this cluster: kubectl apply -f crds/"
                .into(),
        ),
        // Anything else (RBAC on a namespaced install, say) is the watch's to report.
        _ => Ok(()),
    }
}

fn unreachable_cluster(url: &str, e: &dyn std::fmt::Display) -> BoxError {
    format!("the Kubernetes cluster at {url} is not reachable ({e}); without one, try the Provider Integration API alone: provider-integration-operator emulator (docs/emulator.md)").into()
}

/// Runs the operator with `client` until `shutdown` resolves, then at most `SHUTDOWN_LIMIT`
/// longer. With `args.emulator`, the Provider Integration API is an emulator in this process.
/// `fence` is the leader Lease's write fence; `client`'s writes are held back past its deadline
/// by `Context::write_slot`, and also in its own stack if built with `leader::FenceLayer`.
pub async fn run_with(
    args: RunArgs,
    client: kube::Client,
    fence: Arc<Fence>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), BoxError> {
    crate::install_crypto_provider();
    let metrics = Arc::new(Metrics::new());
    let mut emulator = None;
    let (api_url, default_credentials, scope) = if args.emulator {
        let em = crate::emulator::spawn_local(crate::emulator::EmulatorConfig::default()).await?;
        em.state.seed_example()?;
        println!("{EMULATOR_NOTICE} (at {})", em.base_url);
        tracing::warn!(emulator = %em.base_url, "{EMULATOR_NOTICE}");
        let url = em.base_url.clone();
        emulator = Some(em);
        (
            url,
            DefaultCredentials::Static(Credentials::new(
                crate::emulator::DEMO_API_KEY,
                crate::emulator::DEMO_API_SECRET,
            )),
            DefaultCredentialsScope::Any,
        )
    } else {
        (
            args.api_url.clone(),
            default_credentials(&args)?,
            args.default_credentials_scope.into(),
        )
    };
    let pim = PimClient::new(&api_url, args.api_timeout)?
        .with_fence(fence)
        .with_rate_limit(std::num::NonZeroU32::new(args.api_rate_limit))
        .with_concurrency(usize::from(args.concurrency))
        .with_observer(metrics.clone());
    let config = controller::Config {
        resync: args.resync,
        concurrency: args.concurrency,
        default_credentials,
        default_credentials_scope: scope,
        namespaces: args.namespaces.clone(),
        instance: args.pod_name.clone(),
        notice: args.emulator.then_some(EMULATOR_NOTICE),
        ..Default::default()
    };
    let ctx = Arc::new(Context::new(client, pim, config, metrics.clone()));
    let listener = tokio::net::TcpListener::bind(args.metrics_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, %api_url, namespaces = ?args.namespaces, "starting");
    let app = http_router(metrics, ctx.ready.clone());
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "health server stopped");
        }
    });
    let shutdown = shutdown.shared();
    let elector = args.leader_election.then(|| {
        leader::Elector::new(
            ctx.client.clone(),
            LeaseConfig {
                name: args.lease_name.clone(),
                namespace: args.lease_namespace.clone(),
                identity: args
                    .pod_name
                    .clone()
                    .unwrap_or_else(|| format!("pio-{:016x}", fastrand::u64(..))),
                duration: args.lease_duration,
                grace: args.lease_renew_grace,
            },
        )
    });
    let work = async {
        match &elector {
            None => {
                controller::run(ctx.clone(), shutdown.clone()).await;
                Ok(Ended::Shutdown)
            }
            Some(elector) => elector.run(ctx.clone(), shutdown.clone()).await,
        }
    };
    // A panic anywhere (a reconcile, a spawned task) ends the process like a lost Lease, after
    // the Lease is released: a standby takes over at once, not after the whole lease duration.
    let mut panicked = panic_signal();
    // Shutdown is bounded: whatever is in flight (a long throttle, a hanging call) is dropped
    // `SHUTDOWN_LIMIT` after the signal.
    let deadline = async {
        shutdown.clone().await;
        tokio::time::sleep(SHUTDOWN_LIMIT).await;
    };
    let ended = tokio::select! {
        ended = std::panic::AssertUnwindSafe(work).catch_unwind() => {
            ended.unwrap_or_else(|_| Err(leader::LeaderError::Panicked))
        }
        _ = panicked.changed() => Err(leader::LeaderError::Panicked),
        _ = deadline => {
            tracing::warn!(limit_ms = SHUTDOWN_LIMIT.as_millis() as u64, "in-flight work did not finish in time after the shutdown signal; stopping anyway");
            Ok(Ended::Shutdown)
        }
    };
    // Whatever ended the work, a Lease still ours is given up (bounded: the process must end).
    if let Some(elector) = &elector {
        ctx.pim.fence().close();
        let _ = tokio::time::timeout(RELEASE_LIMIT, elector.release()).await;
    }
    server.abort();
    drop(emulator);
    match ended? {
        Ended::Shutdown => {
            tracing::info!("stopped");
            Ok(())
        }
        // Exit non-zero so Kubernetes restarts a clean process that competes again.
        Ended::LostLeadership => Err("lost leadership".into()),
    }
}
