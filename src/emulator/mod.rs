//! A loopback emulator of the Provider Integration API (`pim/v1` and `pim/v2`) for tests, the
//! benchmark and the local demo. It follows `shared/pim-api.md`; admin endpoints under
//! `/_emulator` simulate what happens outside the API (connectors, the Console, the customer's
//! cloud) and inject faults.

mod faults;
mod store;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard},
    time::Instant,
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;

pub use faults::{FailNext, Faults};
use faults::{Injected, RateLimiter, Stats};
use store::{ApiError, Cursor, Filter, Record, Store, Version};
pub use store::{Phase, Quotas};

/// The key and secret accepted when the emulator is started without credentials.
pub const DEMO_API_KEY: &str = "EMULATORDEMOKEY1";
pub const DEMO_API_SECRET: &str = "emulator-demo-secret-do-not-use-in-production";

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
    stats: Mutex<Stats>,
    rate: Mutex<RateLimiter>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
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
    pub async fn shutdown(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Emulator {
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
            faults: Mutex::new(config.faults),
            stats: Mutex::new(Stats::default()),
            rate: Mutex::new(RateLimiter::new(config.rate_limit)),
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
        let mut s = lock(&self.store);
        let out = f(&mut s)?;
        self.persist(&s);
        Ok(out)
    }

    fn view(&self, r: &Record, v: Version) -> Value {
        let org = lock(&self.store).org_id.clone();
        serde_json::to_value(r.to_api(v, &self.base, &org)).unwrap_or(Value::Null)
    }

    /// Request counts by operation and status, as served by `GET /_emulator/stats`.
    pub fn stats(&self) -> Value {
        lock(&self.stats).to_json()
    }

    /// How many requests of `op` were answered (any status).
    pub fn count(&self, op: &str) -> u64 {
        lock(&self.stats)
            .by_op
            .get(op)
            .map(|m| m.values().sum())
            .unwrap_or(0)
    }

    /// How many requests were answered with `status` (any operation).
    pub fn count_status(&self, status: u16) -> u64 {
        lock(&self.stats)
            .by_op
            .values()
            .filter_map(|m| m.get(&status))
            .sum()
    }

    /// Number of stored integrations.
    pub fn len(&self) -> usize {
        lock(&self.store).records.len()
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// The operation name used for stats and `fail_next`.
fn operation(method: &Method, path: &str) -> &'static str {
    let v2 = path.starts_with("/pim/v2/");
    let item = path.matches('/').count() > 3;
    match (v2, method.as_str(), item) {
        (true, "POST", _) if path.ends_with(":validate") => "v2_validate",
        (false, "GET", false) => "v1_list",
        (false, "POST", false) => "v1_create",
        (false, "GET", true) => "v1_get",
        (false, "DELETE", true) => "v1_delete",
        (true, "GET", false) => "v2_list",
        (true, "POST", false) => "v2_create",
        (true, "GET", true) => "v2_get",
        (true, "DELETE", true) => "v2_delete",
        (true, "PATCH", true) => "v2_update",
        _ => "unknown",
    }
}

fn injected(status: u16, retry_after: u64) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = if status == 429 {
        // The real API answers 429 with no body.
        code.into_response()
    } else {
        ApiError::new(
            code,
            "injected_fault",
            "Injected Fault",
            format!("emulator injected a {status} answer"),
        )
        .into_response()
    };
    if status == 429 || status == 503 {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    }
    resp
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
    let (k, s) = raw.split_once(':')?;
    Some((k.to_string(), s.to_string()))
}

/// Latency, faults, authentication, rate limiting and counting for every `/pim/...` request.
async fn api_layer(State(em): State<Arc<Emulator>>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let op = operation(req.method(), req.uri().path());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (delay, decision, retry_after) = {
        let mut f = lock(&em.faults);
        (f.delay(), f.decide(op), f.retry_after_secs)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let resp = match decision {
        Injected::Status(s) => injected(s, retry_after),
        Injected::Pass => authorize_and_run(&em, op, &mut req, next).await,
        Injected::Lost(s) => {
            let done = authorize_and_run(&em, op, &mut req, next).await;
            tracing::debug!(op, status = done.status().as_u16(), "answer lost");
            injected(s, retry_after)
        }
    };
    let status = resp.status().as_u16();
    lock(&em.stats).record(op, status);
    tracing::debug!(%method, %path, op, status, elapsed_ms = start.elapsed().as_millis() as u64, "emulator request");
    resp
}

async fn authorize_and_run(em: &Emulator, op: &str, req: &mut Request, next: Next) -> Response {
    let key = basic_credentials(req.headers()).and_then(|(k, s)| {
        em.keys
            .iter()
            .find(|c| c.key == k && c.secret == s)
            .cloned()
    });
    let Some(key) = key else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "user_unauthenticated",
            "Unauthenticated",
            "missing or invalid API key and secret",
        )
        .into_response();
    };
    let verdict = lock(&em.rate).check(&key.key, Instant::now());
    if let Some(v) = verdict
        && !v.allowed
    {
        let mut resp = StatusCode::TOO_MANY_REQUESTS.into_response();
        add_rate_headers(resp.headers_mut(), v);
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(v.reset_secs));
        return resp;
    }
    let writes = !matches!(op, "v1_list" | "v1_get" | "v2_list" | "v2_get");
    let mut resp = if writes && key.read_only {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "user_unauthorized",
            "Forbidden",
            format!("API key {} may not modify provider integrations; it needs the EnvironmentAdmin or OrganizationAdmin role", key.key),
        )
        .into_response()
    } else {
        next.run(std::mem::take(req)).await
    };
    if let Some(v) = verdict {
        add_rate_headers(resp.headers_mut(), v);
    }
    resp
}

fn add_rate_headers(h: &mut HeaderMap, v: faults::RateVerdict) {
    h.insert("x-ratelimit-limit", HeaderValue::from(v.limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(v.remaining));
    h.insert("x-ratelimit-reset", HeaderValue::from(v.reset_secs));
}

type Params = Query<HashMap<String, String>>;

fn query_environment(q: &HashMap<String, String>) -> Result<String, ApiError> {
    match q.get("environment") {
        Some(e) if !e.trim().is_empty() => Ok(e.clone()),
        _ => Err(ApiError::invalid_param(
            "environment",
            "invalid_filter",
            "query parameter environment is required",
        )),
    }
}

fn parse_json(body: &Bytes) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_request",
            "Bad Request",
            format!("request body is not valid JSON: {e}"),
        )
    })?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_request",
            "Bad Request",
            "request body must be a JSON object",
        ))
    }
}

fn list(em: &Emulator, q: &HashMap<String, String>, v: Version) -> Result<Response, ApiError> {
    let environment = query_environment(q)?;
    let size = match q.get("page_size") {
        None => 10,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid_param(
                    "page_size",
                    "invalid_filter",
                    format!("page_size must be an integer from 1 to 100, got \"{s}\""),
                ));
            }
        },
    };
    let cursor = match q.get("page_token") {
        None => Cursor::After(0),
        Some(t) => Cursor::decode(t).ok_or_else(|| {
            ApiError::invalid_param("page_token", "invalid_filter", "page_token is not valid")
        })?,
    };
    let provider = match v {
        // v1 only knows AWS integrations.
        Version::V1 => {
            if let Some(p) = q.get("provider").filter(|p| *p != "AWS") {
                return Err(ApiError::invalid_param(
                    "provider",
                    "invalid_filter",
                    format!("provider \"{p}\" is not supported by pim/v1; expected AWS"),
                ));
            }
            Some("AWS".to_string())
        }
        Version::V2 => q.get("provider").cloned(),
    };
    let filter = Filter {
        environment,
        provider,
        display_name: q.get("display_name").cloned().filter(|_| v == Version::V2),
        phase: q.get("status").cloned().filter(|_| v == Version::V2),
    };
    let (page, org) = {
        let s = lock(&em.store);
        (s.page(&filter, size, cursor), s.org_id.clone())
    };
    let meta = store::list_meta(&em.base, v, &filter, size, &page);
    let data: Vec<_> = page
        .items
        .iter()
        .map(|r| r.to_api(v, &em.base, &org))
        .collect();
    Ok(Json(json!({
        "api_version": v.path(),
        "kind": "IntegrationList",
        "metadata": meta,
        "data": data,
    }))
    .into_response())
}

fn created(em: &Emulator, r: &Record, v: Version) -> Response {
    let location = format!("{}/{}/integrations/{}", em.base, v.path(), r.id);
    let mut resp = (StatusCode::CREATED, Json(em.view(r, v))).into_response();
    if let Ok(h) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, h);
    }
    resp
}

fn get_one(
    em: &Emulator,
    id: &str,
    q: &HashMap<String, String>,
    v: Version,
) -> Result<Response, ApiError> {
    let env = query_environment(q)?;
    let r = lock(&em.store).get_in_env(id, &env)?.clone();
    if v == Version::V1 && r.provider != "AWS" {
        return Err(ApiError::not_found(id, &env));
    }
    Ok(Json(em.view(&r, v)).into_response())
}

fn delete_one(em: &Emulator, id: &str, q: &HashMap<String, String>) -> Result<Response, ApiError> {
    let env = query_environment(q)?;
    em.mutate(|s| s.delete(id, &env))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn v1_list(State(em): State<Arc<Emulator>>, Query(q): Params) -> Result<Response, ApiError> {
    list(&em, &q, Version::V1)
}

async fn v1_create(State(em): State<Arc<Emulator>>, body: Bytes) -> Result<Response, ApiError> {
    let body = parse_json(&body)?;
    let display_name = store::body_display_name(&body)?;
    let provider = store::body_provider(&body, Version::V1)?;
    let config = body
        .get("config")
        .ok_or_else(|| ApiError::invalid_field("/config", "config is required"))
        .and_then(|c| store::body_config(c, &provider))?;
    let env = store::body_environment(&body)?;
    let quotas = *lock(&em.quotas);
    let r = em.mutate(|s| {
        s.create(
            Version::V1,
            display_name,
            provider,
            env,
            Some(config),
            quotas,
        )
    })?;
    Ok(created(&em, &r, Version::V1))
}

async fn v1_get(
    State(em): State<Arc<Emulator>>,
    Path(id): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    get_one(&em, &id, &q, Version::V1)
}

async fn v1_delete(
    State(em): State<Arc<Emulator>>,
    Path(id): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    delete_one(&em, &id, &q)
}

async fn v2_list(State(em): State<Arc<Emulator>>, Query(q): Params) -> Result<Response, ApiError> {
    list(&em, &q, Version::V2)
}

async fn v2_create(State(em): State<Arc<Emulator>>, body: Bytes) -> Result<Response, ApiError> {
    let body = parse_json(&body)?;
    let display_name = store::body_display_name(&body)?;
    let provider = store::body_provider(&body, Version::V2)?;
    let config = match body.get("config") {
        None | Some(Value::Null) => None,
        Some(c) => Some(store::body_config(c, &provider)?),
    };
    let env = store::body_environment(&body)?;
    let quotas = *lock(&em.quotas);
    let r = em.mutate(|s| s.create(Version::V2, display_name, provider, env, config, quotas))?;
    Ok(created(&em, &r, Version::V2))
}

async fn v2_get(
    State(em): State<Arc<Emulator>>,
    Path(id): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    get_one(&em, &id, &q, Version::V2)
}

async fn v2_delete(
    State(em): State<Arc<Emulator>>,
    Path(id): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    delete_one(&em, &id, &q)
}

/// The environment of a v2 write: from the body, else from the query.
fn write_environment(body: &Value, q: &HashMap<String, String>) -> Result<String, ApiError> {
    store::body_environment(body).or_else(|e| query_environment(q).map_err(|_| e))
}

async fn v2_patch(
    State(em): State<Arc<Emulator>>,
    Path(id): Path<String>,
    Query(q): Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parse_json(&body)?;
    let env = write_environment(&body, &q)?;
    let provider = lock(&em.store).get_in_env(&id, &env)?.provider.clone();
    let config = body
        .get("config")
        .ok_or_else(|| ApiError::invalid_field("/config", "config is required"))
        .and_then(|c| store::body_config(c, &provider))?;
    let r = em.mutate(|s| s.set_config(&id, &env, config))?;
    Ok(Json(em.view(&r, Version::V2)).into_response())
}

async fn v2_validate(
    State(em): State<Arc<Emulator>>,
    Query(q): Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parse_json(&body)?;
    let id = match body.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => return Err(ApiError::invalid_field("/id", "id is required")),
    };
    let env = write_environment(&body, &q)?;
    let provider = lock(&em.store).get_in_env(&id, &env)?.provider.clone();
    let config = match body.get("config") {
        None | Some(Value::Null) => None,
        Some(c) => Some(store::body_config(c, &provider)?),
    };
    em.mutate(|s| s.validate(&id, &env, config))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- admin endpoints: what happens outside the API ----

fn admin_not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "resource_not_found",
        "Not Found",
        format!("integration \"{id}\" not found"),
    )
}

async fn admin_list(State(em): State<Arc<Emulator>>) -> Json<Value> {
    let s = lock(&em.store);
    let all: Vec<Value> = s
        .records
        .values()
        .map(|r| json!({"integration": r.to_api(Version::V2, &em.base, &s.org_id), "access_granted": r.access_granted}))
        .collect();
    Json(json!({ "data": all }))
}

/// Deletes an integration out of band, as the Console would, regardless of usages.
async fn admin_delete(
    State(em): State<Arc<Emulator>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    em.mutate(|s| {
        s.remove(&id)
            .map(|_| ())
            .ok_or_else(|| admin_not_found(&id))
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the usages (connector CRNs) of an integration.
async fn admin_usages(
    State(em): State<Arc<Emulator>>,
    Path(id): Path<String>,
    Json(usages): Json<Vec<String>>,
) -> Result<Json<Value>, ApiError> {
    em.mutate(|s| {
        let r = s.get_mut(&id).ok_or_else(|| admin_not_found(&id))?;
        r.usages = usages;
        Ok(())
    })?;
    Ok(Json(json!({"id": id})))
}

#[derive(Deserialize)]
struct Access {
    granted: bool,
}

/// Simulates the customer granting (or revoking) Confluent's access on their cloud side.
async fn admin_access(
    State(em): State<Arc<Emulator>>,
    Path(id): Path<String>,
    Json(a): Json<Access>,
) -> Result<StatusCode, ApiError> {
    em.mutate(|s| {
        let r = s.get_mut(&id).ok_or_else(|| admin_not_found(&id))?;
        r.access_granted = a.granted;
        if !a.granted && r.phase == Phase::Active {
            r.phase = Phase::Created;
        }
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

async fn admin_faults_get(State(em): State<Arc<Emulator>>) -> Json<Faults> {
    Json(lock(&em.faults).clone())
}

async fn admin_faults_put(State(em): State<Arc<Emulator>>, Json(f): Json<Faults>) -> Response {
    if let Err(e) = f.validate() {
        return ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", "Bad Request", e)
            .into_response();
    }
    *lock(&em.faults) = f;
    StatusCode::NO_CONTENT.into_response()
}

async fn admin_fail_next(State(em): State<Arc<Emulator>>, Json(f): Json<FailNext>) -> Response {
    if !(400..=599).contains(&f.status) {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "Bad Request",
            "status must be 400..=599",
        )
        .into_response();
    }
    lock(&em.faults).fail_next.push(f);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Serialize, Deserialize)]
struct QuotaBody {
    per_org: usize,
    per_env: Option<usize>,
}

async fn admin_quotas_get(State(em): State<Arc<Emulator>>) -> Json<Quotas> {
    Json(*lock(&em.quotas))
}

async fn admin_quotas_put(State(em): State<Arc<Emulator>>, Json(q): Json<QuotaBody>) -> StatusCode {
    *lock(&em.quotas) = Quotas {
        per_org: q.per_org,
        per_env: q.per_env,
    };
    StatusCode::NO_CONTENT
}

async fn admin_stats(State(em): State<Arc<Emulator>>) -> Json<Value> {
    Json(em.stats())
}

async fn admin_stats_reset(State(em): State<Arc<Emulator>>) -> StatusCode {
    *lock(&em.stats) = Stats::default();
    StatusCode::NO_CONTENT
}

/// Forgets every integration, fault and counter.
async fn admin_reset(State(em): State<Arc<Emulator>>) -> StatusCode {
    let _ = em.mutate(|s| {
        s.records.clear();
        s.reindex();
        Ok(())
    });
    *lock(&em.faults) = Faults::default();
    *lock(&em.stats) = Stats::default();
    StatusCode::NO_CONTENT
}

/// Runs the emulator in the foreground until Ctrl-C or SIGTERM (the `emulator` subcommand).
pub async fn run(args: EmulatorArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let config = args.config()?;
    let demo = !config.keys.iter().any(|k| k.key != DEMO_API_KEY);
    let handle = spawn(config, args.listen).await?;
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
