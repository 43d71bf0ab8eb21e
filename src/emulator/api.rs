//! The Provider Integration API itself: authentication, rate limiting and faults in one
//! middleware, then the `pim/v1` and `pim/v2` handlers over the store.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Json,
    body::Bytes,
    extract::{Path, Query, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Value, json};

use super::Emulator;
use super::faults::{self, Injected};
use super::pages::{self, Cursor, Filter};
use super::request::{self, ApiError};
use super::store::{Record, Version};

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.legacy {
            let body = json!({"error_code": self.status.as_u16(), "message": self.detail});
            return (self.status, Json(body)).into_response();
        }
        (self.status, Json(self.body())).into_response()
    }
}

/// The operation name used for stats and `fail_next`.
pub(super) fn operation(method: &Method, path: &str) -> &'static str {
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

pub(super) fn injected(status: u16, retry_after: u64) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = if status == 429 || (300..400).contains(&status) {
        // The real API answers 429 with no body; a redirect (a proxy's, a moved host's) has none.
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
    // A redirect, as a proxy or a moved API would answer one.
    if (300..400).contains(&status) {
        resp.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static(MOVED_TO));
    }
    resp
}

/// Where an injected 3xx points.
pub const MOVED_TO: &str = "https://moved.example.invalid/pim";

pub(super) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
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
pub(super) async fn api_layer(
    State(em): State<Arc<Emulator>>,
    mut req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let op = operation(req.method(), req.uri().path());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(String::from);
    let request_body = match &em.exchanges {
        Some(_) => {
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, 1 << 20)
                .await
                .unwrap_or_default();
            req = Request::from_parts(parts, axum::body::Body::from(bytes.clone()));
            Some(bytes)
        }
        None => None,
    };
    let (delay, decision, retry_after, hostile) = {
        let mut f = em.faults.lock();
        let mut dice = em.dice.lock();
        let hostile = Hostile {
            oversized: f.oversized_body_bytes,
            trickle: Duration::from_millis(f.trickle_ms),
            looping: f.looping_next,
        };
        (
            f.delay(),
            f.decide(op, &mut dice),
            f.retry_after_secs,
            hostile,
        )
    };
    // The looping next page is the first page again.
    if hostile.looping && op.ends_with("_list") {
        strip_loop_token(&mut req);
    }
    // The latency is the backend's work: a request the gateway turns away for its credentials
    // (401) is answered at once, as Confluent Cloud's is.
    let authenticated = basic_credentials(req.headers())
        .is_some_and(|(k, s)| em.keys.iter().any(|c| c.key == k && c.secret == s));
    if !delay.is_zero() && authenticated {
        tokio::time::sleep(delay).await;
    }
    let resp = match decision {
        Injected::Status(s) => injected(s, retry_after),
        Injected::Body(s, ref body) => (
            StatusCode::from_u16(s).unwrap_or(StatusCode::OK),
            [(header::CONTENT_TYPE, "application/json")],
            body.clone(),
        )
            .into_response(),
        Injected::Pass => authorize_and_run(&em, op, &mut req, next).await,
        Injected::Lost(s) => {
            let done = authorize_and_run(&em, op, &mut req, next).await;
            tracing::debug!(op, status = done.status().as_u16(), "answer lost");
            injected(s, retry_after)
        }
    };
    let status = resp.status().as_u16();
    em.stats.lock().record(op, status);
    tracing::debug!(%method, %path, op, status, elapsed_ms = start.elapsed().as_millis() as u64, "emulator request");
    let resp = match (&em.exchanges, request_body) {
        (Some(log), Some(request)) => {
            let (parts, body) = resp.into_parts();
            let bytes = axum::body::to_bytes(body, 16 << 20)
                .await
                .unwrap_or_default();
            log.lock().push(super::Exchange {
                method: method.to_string(),
                path: path.clone(),
                query,
                request: String::from_utf8_lossy(&request).into_owned(),
                status,
                response: String::from_utf8_lossy(&bytes).into_owned(),
                injected_body: matches!(decision, Injected::Body(..)),
            });
            Response::from_parts(parts, axum::body::Body::from(bytes))
        }
        _ => resp,
    };
    hostile.answer(resp, op, &em.base, &path).await
}

/// The body faults of `Faults`: answers no well-behaved API gives.
struct Hostile {
    oversized: u64,
    trickle: Duration,
    looping: bool,
}

const LOOP_TOKEN: &str = "LOOP";

fn strip_loop_token(req: &mut Request) {
    let uri = req.uri();
    let Some(q) = uri.query() else { return };
    let kept: Vec<&str> = q
        .split('&')
        .filter(|kv| *kv != format!("page_token={LOOP_TOKEN}"))
        .collect();
    if let Ok(u) = format!("{}?{}", uri.path(), kept.join("&")).parse() {
        *req.uri_mut() = u;
    }
}

impl Hostile {
    async fn answer(&self, resp: Response, op: &str, base: &str, path: &str) -> Response {
        if self.oversized > 0 && (op.ends_with("_list") || op.ends_with("_get")) {
            return self.oversized_answer();
        }
        if !self.looping && self.trickle.is_zero() {
            return resp;
        }
        let (mut parts, body) = resp.into_parts();
        let mut bytes = axum::body::to_bytes(body, 16 << 20)
            .await
            .unwrap_or_default();
        if self.looping && op.ends_with("_list") && parts.status == StatusCode::OK {
            let mut v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            v["metadata"]["next"] = format!("{base}{path}?page_token={LOOP_TOKEN}").into();
            bytes = serde_json::to_vec(&v).unwrap_or_default().into();
        }
        parts.headers.remove(header::CONTENT_LENGTH);
        if self.trickle.is_zero() {
            return Response::from_parts(parts, axum::body::Body::from(bytes));
        }
        let every = self.trickle;
        let stream = futures::stream::unfold(bytes, move |rest| async move {
            if rest.is_empty() {
                return None;
            }
            tokio::time::sleep(every).await;
            let mut rest = rest;
            let one = rest.split_to(1);
            Some((Ok::<_, std::convert::Infallible>(one), rest))
        });
        Response::from_parts(parts, axum::body::Body::from_stream(stream))
    }

    /// A 200 whose body is `oversized` bytes of a list that never closes, 64 KiB at a time.
    fn oversized_answer(&self) -> Response {
        const CHUNK: usize = 64 * 1024;
        let spaces = Bytes::from(vec![b' '; CHUNK]);
        let head =
            Bytes::from_static(br#"{"api_version":"pim/v1","kind":"IntegrationList","data":["#);
        let every = self.trickle;
        let total = self.oversized;
        let stream = futures::stream::unfold(0u64, move |sent| {
            let (spaces, head) = (spaces.clone(), head.clone());
            async move {
                if sent >= total {
                    return None;
                }
                if !every.is_zero() {
                    tokio::time::sleep(every).await;
                }
                let chunk = if sent == 0 {
                    head
                } else {
                    spaces.slice(..CHUNK.min((total - sent) as usize))
                };
                let n = chunk.len() as u64;
                Some((Ok::<_, std::convert::Infallible>(chunk), sent + n))
            }
        });
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            axum::body::Body::from_stream(stream),
        )
            .into_response()
    }
}

pub(super) async fn authorize_and_run(
    em: &Emulator,
    op: &str,
    req: &mut Request,
    next: Next,
) -> Response {
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
    let verdict = em.rate.lock().check(&key.key, Instant::now());
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

pub(super) fn add_rate_headers(h: &mut HeaderMap, v: faults::RateVerdict) {
    h.insert("x-ratelimit-limit", HeaderValue::from(v.limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(v.remaining));
    h.insert("x-ratelimit-reset", HeaderValue::from(v.reset_secs));
}

type Params = Query<HashMap<String, String>>;

pub(super) fn query_environment(q: &HashMap<String, String>) -> Result<String, ApiError> {
    match q.get("environment") {
        Some(e) if !e.trim().is_empty() => Ok(e.clone()),
        _ => Err(ApiError::invalid_param(
            "environment",
            "invalid_filter",
            "query parameter environment is required",
        )),
    }
}

pub(super) fn parse_json(body: &Bytes) -> Result<Value, ApiError> {
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

pub(super) fn list(
    em: &Emulator,
    q: &HashMap<String, String>,
    v: Version,
) -> Result<Response, ApiError> {
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
    // v1 only knows AWS integrations.
    if v == Version::V1
        && let Some(p) = q.get("provider").filter(|p| !p.eq_ignore_ascii_case("AWS"))
    {
        return Err(ApiError::invalid_param(
            "provider",
            "invalid_filter",
            format!("provider \"{p}\" is not supported by pim/v1; expected AWS"),
        ));
    }
    let filter = Filter {
        environment,
        aws_only: v == Version::V1,
        provider: q.get("provider").cloned().filter(|_| v == Version::V2),
        display_name: q.get("display_name").cloned().filter(|_| v == Version::V2),
        phase: q.get("status").cloned().filter(|_| v == Version::V2),
    };
    let (page, org) = {
        let s = em.store.lock();
        s.check_environment(&filter.environment)?;
        (s.page(&filter, size, cursor), s.org_id.clone())
    };
    let meta = pages::list_meta(&em.base, v, &page);
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

pub(super) fn created(em: &Emulator, r: &Record, v: Version) -> Response {
    let location = format!("{}/{}/integrations/{}", em.base, v.path(), r.id);
    let mut resp = (StatusCode::CREATED, Json(em.view(r, v))).into_response();
    if let Ok(h) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, h);
    }
    resp
}

pub(super) fn get_one(
    em: &Emulator,
    id: &str,
    q: &HashMap<String, String>,
    v: Version,
) -> Result<Response, ApiError> {
    let env = query_environment(q)?;
    let found = em
        .store
        .lock()
        .get_in_env(id, &env)
        .ok()
        .filter(|r| v == Version::V2 || r.provider.eq_ignore_ascii_case("AWS"))
        .cloned();
    match found {
        Some(r) => Ok(Json(em.view(&r, v)).into_response()),
        // v1: the legacy shape Confluent's Terraform provider replays for a read of a deleted
        // integration; v2: the spec's `{"errors":[…]}`.
        None if v == Version::V1 => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Not Found",
            format!("Provider Integration {id} not found"),
        )
        .legacy()),
        None => Err(ApiError::not_found(id, &env)),
    }
}

pub(super) fn delete_one(
    em: &Emulator,
    id: &str,
    q: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let env = query_environment(q)?;
    em.mutate(|s| s.delete(id, &env))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn v1_list(
    State(em): State<Arc<Emulator>>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    list(&em, &q, Version::V1)
}

pub(super) async fn v1_create(
    State(em): State<Arc<Emulator>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parse_json(&body)?;
    let display_name = request::body_display_name(&body)?;
    let provider = request::body_provider(&body, Version::V1)?;
    let config = body
        .get("config")
        .ok_or_else(|| ApiError::invalid_field("/config", "config is required"))
        .and_then(|c| request::body_config(c, &provider))?;
    let env = request::body_environment(&body)?;
    let quotas = *em.quotas.lock();
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

pub(super) async fn v1_get(
    State(em): State<Arc<Emulator>>,
    Path(id): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    get_one(&em, &id, &q, Version::V1)
}

pub(super) async fn v1_delete(
    State(em): State<Arc<Emulator>>,
    Path(id): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    delete_one(&em, &id, &q)
}

pub(super) async fn v2_list(
    State(em): State<Arc<Emulator>>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    list(&em, &q, Version::V2)
}

pub(super) async fn v2_create(
    State(em): State<Arc<Emulator>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parse_json(&body)?;
    let display_name = request::body_display_name(&body)?;
    let provider = request::body_provider(&body, Version::V2)?;
    let config = match body.get("config") {
        None | Some(Value::Null) => None,
        Some(c) => Some(request::body_config(c, &provider)?),
    };
    let env = request::body_environment(&body)?;
    let quotas = *em.quotas.lock();
    let r = em.mutate(|s| s.create(Version::V2, display_name, provider, env, config, quotas))?;
    Ok(created(&em, &r, Version::V2))
}

pub(super) async fn v2_get(
    State(em): State<Arc<Emulator>>,
    Path(id): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    get_one(&em, &id, &q, Version::V2)
}

pub(super) async fn v2_delete(
    State(em): State<Arc<Emulator>>,
    Path(id): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    delete_one(&em, &id, &q)
}

/// `PATCH /pim/v2/integrations/{id}`: the spec's only parameter is `{id}`; the environment
/// comes in the body (`pim-v2.openapi.yaml`, `updatePimV2Integration`, `pim.v2.IntegrationUpdate`).
pub(super) async fn v2_patch(
    State(em): State<Arc<Emulator>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parse_json(&body)?;
    let env = request::body_environment(&body)?;
    let provider = em.store.lock().get_in_env(&id, &env)?.provider.clone();
    let config = body
        .get("config")
        .ok_or_else(|| ApiError::invalid_field("/config", "config is required"))
        .and_then(|c| request::body_config(c, &provider))?;
    let r = em.mutate(|s| s.set_config(&id, &env, config))?;
    Ok(Json(em.view(&r, Version::V2)).into_response())
}

pub(super) async fn v2_validate(
    State(em): State<Arc<Emulator>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parse_json(&body)?;
    let id = match body.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => return Err(ApiError::invalid_field("/id", "id is required")),
    };
    let env = request::body_environment(&body)?;
    let provider = em.store.lock().get_in_env(&id, &env)?.provider.clone();
    let config = match body.get("config") {
        None | Some(Value::Null) => None,
        Some(c) => Some(request::body_config(c, &provider)?),
    };
    em.mutate(|s| s.validate(&id, &env, config))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
