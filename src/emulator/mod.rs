//! A loopback emulator of the Provider Integration API (`pim/v1` and `pim/v2`) for tests, the
//! benchmark and the local demo. It follows `shared/pim-api.md`; admin endpoints under
//! `/_emulator` simulate what happens outside the API (connectors, the Console, the customer's
//! cloud) and inject faults.

mod admin;
mod api;
mod faults;
mod model;
mod pages;
mod request;
mod store;

use admin::*;
use api::*;
use parking_lot::Mutex;

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use axum::{
    Json, Router,
    http::StatusCode,
    middleware,
    routing::{get, post, put},
};
use serde_json::{Value, json};

pub use api::MOVED_TO;
pub use faults::{FailNext, Faults};
use faults::{RateLimiter, Stats};
use request::ApiError;
pub use store::{Phase, Quotas};
use store::{Record, Store, Version};

/// The key and secret accepted when the emulator is started without credentials.
pub const DEMO_API_KEY: &str = "EMULATORDEMOKEY1";
pub const DEMO_API_SECRET: &str = "emulator-demo-secret-do-not-use-in-production";

/// The integration `run --emulator` starts with, as if made earlier in the Console: the one
/// `examples/aws-adopted.yaml` adopts.
pub const EXAMPLE_EXISTING_ID: &str = "dlz-0c0ffee";
/// Its environment, which every example names.
pub const EXAMPLE_ENVIRONMENT: &str = "env-a1b2c3";
/// Its customer role.
pub const EXAMPLE_EXISTING_ROLE: &str = "arn:aws:iam::123456789012:role/made-in-the-console";

/// An API key the emulator accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub key: String,
    pub secret: String,
    /// A key that may only read: writes answer 403 `user_unauthorized`.
    pub read_only: bool,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKey({}, read_only={})", self.key, self.read_only)
    }
}

impl ApiKey {
    /// Parses `KEY:SECRET`.
    pub fn parse(s: &str, read_only: bool) -> Result<Self, String> {
        match s.split_once(':') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok(Self {
                key: k.into(),
                secret: v.into(),
                read_only,
            }),
            _ => Err("expected KEY:SECRET".into()),
        }
    }
}

/// Command-line flags of `provider-integration-operator emulator`.
#[derive(clap::Args, Debug, Clone)]
pub struct EmulatorArgs {
    /// Address to listen on; port 0 picks a free port and prints it.
    #[arg(long, default_value = "127.0.0.1:8090", env = "PIM_EMULATOR_LISTEN")]
    pub listen: SocketAddr,
    /// An accepted API key as KEY:SECRET (repeatable). Without any, the demo key is accepted.
    #[arg(long = "credential", value_name = "KEY:SECRET", value_parser = |s: &str| ApiKey::parse(s, false))]
    pub credentials: Vec<ApiKey>,
    /// A key that may only read (writes answer 403), as KEY:SECRET (repeatable).
    #[arg(long = "read-only-credential", value_name = "KEY:SECRET", value_parser = |s: &str| ApiKey::parse(s, true))]
    pub read_only_credentials: Vec<ApiKey>,
    /// The organization quota `provider_integrations_per_org`.
    #[arg(long, default_value_t = 100)]
    pub org_quota: usize,
    /// The environment quota `provider_integrations_per_env` (unlimited when unset).
    #[arg(long)]
    pub env_quota: Option<usize>,
    /// Save integrations to this JSON file and load them at start, so a restart keeps them.
    #[arg(long = "state", value_name = "FILE")]
    pub state_file: Option<PathBuf>,
    /// Added latency per request in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Random extra latency of up to this many milliseconds.
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u64,
    /// Fraction of requests answered 429.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate_429: f64,
    /// Fraction of requests answered 500.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate_500: f64,
    /// Fraction of requests answered 503.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate_503: f64,
    /// Fraction of writes that take effect but answer 504 (a lost response).
    #[arg(long, default_value_t = 0.0)]
    pub lost_response_rate: f64,
    /// `Retry-After` of injected 429 and 503 answers, in seconds (any u64: a hostile API may
    /// ask for an hour, or 2^64-1 seconds).
    #[arg(long, default_value_t = 1)]
    pub retry_after_secs: u64,
    /// Reads are answered 200 with a body of this many bytes, streamed without a Content-Length.
    #[arg(long, default_value_t = 0)]
    pub oversized_body_bytes: u64,
    /// Every answer's body trickles in, a piece every this many milliseconds.
    #[arg(long, default_value_t = 0)]
    pub trickle_ms: u64,
    /// Lists always name a next page, and it is the first page again.
    #[arg(long)]
    pub looping_next: bool,
    /// Requests per second allowed per API key; beyond it 429 with `Retry-After`.
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// Base URL used in links (`Location`, pagination, `environment.related`); default
    /// `http://<listen address>`.
    #[arg(long)]
    pub public_url: Option<String>,
}

/// Everything the emulator needs to start.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub keys: Vec<ApiKey>,
    pub quotas: Quotas,
    pub state_file: Option<PathBuf>,
    pub faults: Faults,
    pub rate_limit: Option<u32>,
    pub public_url: Option<String>,
    /// Keep every `/pim/...` request and its answer (`Emulator::exchanges`), for contract tests.
    pub record_exchanges: bool,
}

/// One API request and the answer it got, as sent on the wire.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub request: String,
    pub status: u16,
    pub response: String,
    /// The answer was a deliberately broken one (`FailNext::body`), outside the contract.
    pub injected_body: bool,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            keys: vec![ApiKey {
                key: DEMO_API_KEY.into(),
                secret: DEMO_API_SECRET.into(),
                read_only: false,
            }],
            quotas: Quotas::default(),
            state_file: None,
            faults: Faults::default(),
            rate_limit: None,
            public_url: None,
            record_exchanges: false,
        }
    }
}

impl EmulatorArgs {
    pub fn config(&self) -> Result<EmulatorConfig, String> {
        let mut keys: Vec<ApiKey> = self.credentials.clone();
        keys.extend(self.read_only_credentials.iter().cloned());
        if self.credentials.is_empty() {
            keys.extend(EmulatorConfig::default().keys);
        }
        let faults = Faults {
            latency_ms: self.latency_ms,
            jitter_ms: self.jitter_ms,
            error_rate_429: self.error_rate_429,
            error_rate_500: self.error_rate_500,
            error_rate_503: self.error_rate_503,
            lost_response_rate: self.lost_response_rate,
            retry_after_secs: self.retry_after_secs,
            oversized_body_bytes: self.oversized_body_bytes,
            trickle_ms: self.trickle_ms,
            looping_next: self.looping_next,
            ..Faults::default()
        };
        faults.validate()?;
        Ok(EmulatorConfig {
            keys,
            quotas: Quotas {
                per_org: self.org_quota,
                per_env: self.env_quota,
            },
            state_file: self.state_file.clone(),
            faults,
            rate_limit: self.rate_limit,
            public_url: self.public_url.clone(),
            record_exchanges: false,
        })
    }
}

/// The running emulator's shared state.
pub struct Emulator {
    base: String,
    keys: Vec<ApiKey>,
    state_file: Option<PathBuf>,
    store: Mutex<Store>,
    quotas: Mutex<Quotas>,
    faults: Mutex<Faults>,
    /// The dice of `faults` (seeded by `Faults::seed`).
    dice: Mutex<fastrand::Rng>,
    stats: Mutex<Stats>,
    rate: Mutex<RateLimiter>,
    exchanges: Option<Mutex<Vec<Exchange>>>,
}

/// A started emulator; dropping it stops the server.
pub struct EmulatorHandle {
    pub base_url: String,
    pub addr: SocketAddr,
    pub state: Arc<Emulator>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

impl EmulatorHandle {
    /// Stops serving and waits until the listener is closed (to restart on the same port).
    pub async fn shutdown(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Emulator {
    /// The requests served so far and their answers (empty unless `record_exchanges`).
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges
            .as_ref()
            .map(|e| e.lock().clone())
            .unwrap_or_default()
    }

    fn new(config: EmulatorConfig, base: String) -> std::io::Result<Self> {
        let store = match &config.state_file {
            Some(p) if p.exists() => {
                let text = std::fs::read_to_string(p)?;
                let mut s: Store = serde_json::from_str(&text).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: {e}", p.display()),
                    )
                })?;
                s.reindex();
                s
            }
            _ => Store::default(),
        };
        Ok(Self {
            base,
            keys: config.keys,
            state_file: config.state_file,
            store: Mutex::new(store),
            quotas: Mutex::new(config.quotas),
            dice: Mutex::new(config.faults.dice()),
            faults: Mutex::new(config.faults),
            stats: Mutex::new(Stats::default()),
            rate: Mutex::new(RateLimiter::new(config.rate_limit)),
            exchanges: config.record_exchanges.then(Mutex::default),
        })
    }

    /// Saves the store when `--state` is set (write to a temporary file, then rename).
    fn persist(&self, store: &Store) {
        let Some(path) = &self.state_file else { return };
        let tmp = path.with_extension("tmp");
        let result = serde_json::to_vec_pretty(store)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|_| std::fs::rename(&tmp, path));
        if let Err(e) = result {
            tracing::error!(path = %path.display(), error = %e, "could not save emulator state");
        }
    }

    /// Runs `f` on the store and saves it afterwards when it changed something.
    fn mutate<T>(&self, f: impl FnOnce(&mut Store) -> Result<T, ApiError>) -> Result<T, ApiError> {
        let mut s = self.store.lock();
        let out = f(&mut s)?;
        self.persist(&s);
        Ok(out)
    }

    fn view(&self, r: &Record, v: Version) -> Value {
        let org = self.store.lock().org_id.clone();
        serde_json::to_value(r.to_api(v, &self.base, &org)).unwrap_or(Value::Null)
    }

    /// Request counts by operation and status, as served by `GET /_emulator/stats`.
    pub fn stats(&self) -> Value {
        self.stats.lock().to_json()
    }

    /// How many requests of `op` were answered (any status).
    pub fn count(&self, op: &str) -> u64 {
        self.stats
            .lock()
            .by_op
            .get(op)
            .map(|m| m.values().sum())
            .unwrap_or(0)
    }

    /// How many requests were answered with `status` (any operation).
    pub fn count_status(&self, status: u16) -> u64 {
        self.stats
            .lock()
            .by_op
            .values()
            .filter_map(|m| m.get(&status))
            .sum()
    }

    /// Stores the integration the examples adopt (`EXAMPLE_EXISTING_ID`), unless it is there.
    pub fn seed_example(&self) -> Result<(), String> {
        self.mutate(|s| {
            if s.get(EXAMPLE_EXISTING_ID).is_none() {
                s.create_as(
                    EXAMPLE_EXISTING_ID.into(),
                    "made-in-the-console".into(),
                    "AWS".into(),
                    EXAMPLE_ENVIRONMENT.into(),
                    Some(crate::pim::types::IntegrationConfig::Aws(
                        crate::pim::types::AwsConfig {
                            customer_iam_role_arn: EXAMPLE_EXISTING_ROLE.into(),
                            ..Default::default()
                        },
                    )),
                )?;
            }
            Ok(())
        })
        .map_err(|e| format!("{e:?}"))
    }

    /// Number of stored integrations.
    pub fn len(&self) -> usize {
        self.store.lock().records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Binds `addr` and serves until the returned handle is dropped.
pub async fn spawn(config: EmulatorConfig, addr: SocketAddr) -> std::io::Result<EmulatorHandle> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let base = config
        .public_url
        .clone()
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("http://{addr}"));
    let state = Arc::new(Emulator::new(config, base.clone())?);
    let app = router(state.clone());
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "emulator server stopped");
        }
    });
    Ok(EmulatorHandle {
        base_url: base,
        addr,
        state,
        task: Some(task),
    })
}

/// Starts an emulator on an ephemeral loopback port (for tests).
pub async fn spawn_local(config: EmulatorConfig) -> std::io::Result<EmulatorHandle> {
    spawn(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
}

pub fn router(state: Arc<Emulator>) -> Router {
    let api = Router::new()
        .route("/pim/v1/integrations", get(v1_list).post(v1_create))
        .route("/pim/v1/integrations/{id}", get(v1_get).delete(v1_delete))
        .route("/pim/v2/integrations", get(v2_list).post(v2_create))
        .route("/pim/v2/integrations:validate", post(v2_validate))
        .route(
            "/pim/v2/integrations/{id}",
            get(v2_get).delete(v2_delete).patch(v2_patch),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), api_layer));
    let admin = Router::new()
        .route("/_emulator/integrations", get(admin_list))
        .route(
            "/_emulator/integrations/{id}",
            axum::routing::delete(admin_delete),
        )
        .route("/_emulator/integrations/{id}/usages", put(admin_usages))
        .route(
            "/_emulator/environments/{env}",
            axum::routing::delete(admin_delete_environment),
        )
        .route("/_emulator/integrations/{id}/access", put(admin_access))
        .route(
            "/_emulator/faults",
            get(admin_faults_get).put(admin_faults_put),
        )
        .route("/_emulator/faults/fail-next", post(admin_fail_next))
        .route(
            "/_emulator/quotas",
            get(admin_quotas_get).put(admin_quotas_put),
        )
        .route(
            "/_emulator/stats",
            get(admin_stats).delete(admin_stats_reset),
        )
        .route("/_emulator/reset", post(admin_reset));
    api.merge(admin)
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(json!({"error_code": 404, "message": "no such endpoint"})),
            )
        })
        .with_state(state)
}

/// Runs the emulator in the foreground until Ctrl-C or SIGTERM (the `emulator` subcommand).
pub async fn run(args: EmulatorArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let config = args.config()?;
    let demo = !config.keys.iter().any(|k| k.key != DEMO_API_KEY);
    let mut handle = spawn(config, args.listen).await?;
    println!("PIM emulator listening on {}", handle.base_url);
    if demo {
        println!(
            "accepting the demo credentials: API key {DEMO_API_KEY}  secret {DEMO_API_SECRET}"
        );
    }
    crate::shutdown_signal().await;
    handle.shutdown().await;
    Ok(())
}
