//! A typed client of the Provider Integration API. It knows HTTP and the API's dialect, and
//! nothing about Kubernetes.

use std::{collections::HashSet, fmt, num::NonZeroU32, sync::Arc, time::Duration};

use reqwest::{Method, StatusCode, header};
use serde::de::DeserializeOwned;

use super::{
    adaptive::{Adaptive, Outcome},
    error::{PimError, RetryAfter},
    throttle::{RateHeaders, Throttle},
    types::{
        CreateIntegration, EnvId, Integration, IntegrationList, UpdateIntegration,
        ValidateIntegration, WriteConfig,
    },
};

/// The API version: `pim/v1` (AWS, created with its config) or `pim/v2` (every provider,
/// created as a DRAFT whose config is set afterwards).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApiVersion {
    V1,
    V2,
}

impl ApiVersion {
    pub fn path(self) -> &'static str {
        match self {
            ApiVersion::V1 => "pim/v1",
            ApiVersion::V2 => "pim/v2",
        }
    }
}

/// Filters of a list call; `display_name` and `status` exist in `pim/v2` only.
#[derive(Clone, Copy, Debug, Default)]
pub struct ListFilter<'a> {
    pub provider: Option<&'a str>,
    pub display_name: Option<&'a str>,
    pub status: Option<&'a str>,
}

/// A Cloud API key and secret. `Debug` never prints the secret. Shared, not copied, by the
/// resources that use one Secret.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    pub key: Arc<str>,
    secret: Arc<str>,
}

impl Credentials {
    pub fn new(key: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            key: key.into().into(),
            secret: secret.into().into(),
        }
    }

    /// The error with the secret taken out of whatever the API said: a server that echoes the
    /// request (the secret, or the Basic header that carries it) must not put it in a
    /// resource's status, an Event or a log line. A secret shorter than 8 characters is not
    /// one Confluent issues, and replacing it would garble the text.
    pub fn redact(&self, e: PimError) -> PimError {
        use base64::{Engine, engine::general_purpose::STANDARD};
        if self.secret.len() < 8 {
            return e;
        }
        let basic = STANDARD.encode(format!("{}:{}", self.key, self.secret));
        e.map_text(|t| {
            if t.contains(&*self.secret) || t.contains(&basic) {
                t.replace(&basic, "<redacted>")
                    .replace(&*self.secret, "<redacted>")
            } else {
                t
            }
        })
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Until when this process may send writes (any request but a GET) to Confluent Cloud. Without
/// leader election, always; with it, until the leader's renew deadline: the monotonic time of
/// its last successful Lease renewal plus the lease duration, less a margin, after which a
/// standby may be acting. Read on tokio's clock right before each write is sent, so it holds
/// whatever the lease manager has noticed: across a SIGSTOP (the clock has moved on when the
/// process runs again) and a partition (no renewal moves it).
#[derive(Debug, Default)]
pub struct Fence(parking_lot::Mutex<Option<tokio::time::Instant>>);

impl Fence {
    /// Writes may be sent until `deadline`.
    pub fn allow_until(&self, deadline: tokio::time::Instant) {
        *self.0.lock() = Some(deadline);
    }

    /// No write is sent from now on (until `allow_until`).
    pub fn close(&self) {
        self.allow_until(tokio::time::Instant::now());
    }

    /// The deadline in force (`None`: no fence, writes always allowed).
    pub fn deadline(&self) -> Option<tokio::time::Instant> {
        *self.0.lock()
    }

    pub fn allows_writes(&self) -> bool {
        self.deadline()
            .is_none_or(|d| tokio::time::Instant::now() < d)
    }

    /// `request`, polled only while writes are allowed: `None` once a poll would start past the
    /// deadline. A request goes out only inside a poll of its future, and the task that polls
    /// it may resume after a freeze (a SIGSTOP, a stalled runtime) long after it was checked;
    /// checked before every poll, what leaves late is at most one poll's synchronous work past
    /// the deadline, which the fence's margin covers. An answer due after the deadline is
    /// dropped too: the write may have happened, as with an answer lost on the way.
    pub async fn hold<F: std::future::Future>(&self, request: F) -> Option<F::Output> {
        let mut request = std::pin::pin!(request);
        std::future::poll_fn(|cx| {
            if !self.allows_writes() {
                return std::task::Poll::Ready(None);
            }
            request.as_mut().poll(cx).map(Some)
        })
        .await
    }
}

/// Called after every API request, e.g. to count requests in metrics.
pub trait RequestObserver: Send + Sync {
    fn observe(&self, operation: &'static str, status: Option<u16>, elapsed: Duration);
    /// A successful answer whose body could not be decoded.
    fn unexpected(&self, _operation: &'static str) {}
}

/// The start of a body, on one line, for messages: enough to recognise it, never long.
fn excerpt(body: &str) -> String {
    let flat: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}

/// The page size used when listing: the API's maximum, to keep the number of calls low.
pub const LIST_PAGE_SIZE: u32 = 100;

/// The largest answer read. A full page of 100 integrations is about 100 KB; anything ten times
/// that is not an answer of this API, and is not read further.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The most pages one listing follows: 100,000 integrations in one environment, a thousand times
/// the default organisation quota. A server whose `next` goes on past it is broken.
pub const MAX_PAGES: usize = 1_000;

/// The most calls in flight when nobody says otherwise (`with_concurrency`).
pub const DEFAULT_CEILING: usize = 512;

#[derive(Clone)]
pub struct PimClient {
    http: reqwest::Client,
    base: String,
    observer: Option<Arc<dyn RequestObserver>>,
    throttle: Arc<Throttle>,
    /// Calls in flight, adapted to the API's latency and overload signals.
    adaptive: Arc<Adaptive>,
    /// Until when writes may leave this process (leader election's renew deadline).
    fence: Arc<Fence>,
}

impl fmt::Debug for PimClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PimClient")
            .field("base", &self.base)
            .finish()
    }
}

impl PimClient {
    /// A client for `base_url` (e.g. `https://api.confluent.cloud`), with a per-request timeout.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, PimError> {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(64)
            // A redirect is not followed: a 307 would send a create again to where it points,
            // and a link's host gets no credentials (see `list`); `PimError::Redirected` says it.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "provider-integration-operator/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| PimError::Transport(e.to_string()))?;
        Ok(Self {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            observer: None,
            throttle: Arc::new(Throttle::new(None)),
            adaptive: Arc::new(Adaptive::new(DEFAULT_CEILING)),
            fence: Arc::default(),
        })
    }

    /// At most `per_second` requests per API key (`None`: no steady limit). A 429 pauses its
    /// key either way.
    pub fn with_rate_limit(mut self, per_second: Option<NonZeroU32>) -> Self {
        self.throttle = Arc::new(Throttle::new(per_second));
        self
    }

    /// At most `ceiling` calls in flight (0: no ceiling); how many below it adapts.
    pub fn with_concurrency(mut self, ceiling: usize) -> Self {
        self.adaptive = Arc::new(Adaptive::new(ceiling));
        self
    }

    /// The adaptive limit of calls in flight now.
    pub fn concurrency_limit(&self) -> usize {
        self.adaptive.limit()
    }

    /// Calls in flight now.
    pub fn calls_in_flight(&self) -> usize {
        self.adaptive.in_flight()
    }

    pub fn with_observer(mut self, observer: Arc<dyn RequestObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Shares `fence` (leader election moves it) with what else it guards: the Kubernetes
    /// client's `leader::FenceLayer`.
    pub fn with_fence(mut self, fence: Arc<Fence>) -> Self {
        self.fence = fence;
        self
    }

    /// The write fence shared by all clones of this client (leader election moves it).
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    fn check_fence(&self, method: &Method) -> Result<(), PimError> {
        if *method != Method::GET && !self.fence.allows_writes() {
            return Err(PimError::Fenced);
        }
        Ok(())
    }

    /// The throttle's state, for tests that keys at rest are forgotten.
    pub fn throttled_keys(&self) -> usize {
        self.throttle.keys_held()
    }

    /// Whether every call with `creds` waits out a pause now (refusals in a row), for tests.
    pub fn is_paused(&self, creds: &Credentials) -> bool {
        self.throttle.is_paused(creds)
    }

    /// Every integration of `environment` that passes `filter`, following pagination. Only the
    /// `page_token` is taken from a `next` link: the published links carry nothing else (not even
    /// the required `environment`), so the query is sent again on every page, and credentials
    /// only ever go to the configured API whatever a link names.
    pub async fn list(
        &self,
        creds: &Credentials,
        version: ApiVersion,
        environment: &str,
        filter: ListFilter<'_>,
    ) -> Result<Vec<Integration>, PimError> {
        self.list_as(creds, version, environment, filter, |i| i)
            .await
    }

    /// `list`, with each integration turned into what the caller keeps as its page arrives: a
    /// cache of thousands of integrations then never holds them all decoded at once.
    pub async fn list_as<T>(
        &self,
        creds: &Credentials,
        version: ApiVersion,
        environment: &str,
        filter: ListFilter<'_>,
        mut keep: impl FnMut(Integration) -> T,
    ) -> Result<Vec<T>, PimError> {
        let base = reqwest::Url::parse(&format!("{}/{}/integrations", self.base, version.path()))
            .map_err(|e| PimError::Transport(e.to_string()))?;
        let page_url = |token: Option<&str>| {
            let mut url = base.clone();
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("environment", environment);
                q.append_pair("page_size", &LIST_PAGE_SIZE.to_string());
                for (k, v) in [
                    ("provider", filter.provider),
                    ("display_name", filter.display_name),
                    ("status", filter.status),
                ] {
                    if let Some(v) = v {
                        q.append_pair(k, v);
                    }
                }
                if let Some(t) = token {
                    q.append_pair("page_token", t);
                }
            }
            url
        };
        let mut url = page_url(None);
        let mut out = Vec::new();
        // A server whose `next` never ends, or comes back to a page already read, would page
        // forever: both end the listing with an error.
        let mut seen: HashSet<String> = HashSet::new();
        // Pages cut by offset shift under concurrent creates, and then serve an integration
        // twice: counted twice, one integration would read as two holding the same key
        // (`AmbiguousIntegration`). Each id is kept once.
        let mut ids: HashSet<String> = HashSet::new();
        for _ in 0..MAX_PAGES {
            let page: IntegrationList = self
                .send("list", Method::GET, url.as_str(), creds, None::<&()>)
                .await?
                .ok_or_else(|| PimError::Decode("empty list response".into()))?;
            for i in page.data {
                if ids.insert(i.id.clone()) {
                    out.push(keep(kept("list", environment, i)?));
                }
            }
            let token = page
                .metadata
                .next
                .as_deref()
                .filter(|n| !n.is_empty())
                .map(page_token)
                .transpose()?;
            match token {
                Some(t) if !seen.insert(t.clone()) => {
                    return Err(PimError::Decode(format!(
                        "the listing's next link came back to page_token {} after {} pages; the API's pagination loops",
                        excerpt(&t),
                        seen.len() + 1
                    )));
                }
                Some(t) => url = page_url(Some(&t)),
                None => return Ok(out),
            }
        }
        Err(PimError::Decode(format!(
            "the listing did not end after {MAX_PAGES} pages of {LIST_PAGE_SIZE}; no organisation has that many integrations"
        )))
    }

    pub async fn get(
        &self,
        creds: &Credentials,
        version: ApiVersion,
        environment: &str,
        id: &str,
    ) -> Result<Integration, PimError> {
        let url = self.item_url(version, id, environment)?;
        self.send("get", Method::GET, url.as_str(), creds, None::<&()>)
            .await?
            .ok_or_else(|| PimError::Decode("empty get response".into()))
            .and_then(|i| kept("get", environment, i))
            .and_then(|i| asked_for("get", id, i))
    }

    /// Creates an integration: in `pim/v1` with its config, in `pim/v2` usually without (a DRAFT).
    pub async fn create(
        &self,
        creds: &Credentials,
        version: ApiVersion,
        body: &CreateIntegration,
    ) -> Result<Integration, PimError> {
        let url = format!("{}/{}/integrations", self.base, version.path());
        self.send("create", Method::POST, &url, creds, Some(body))
            .await?
            .ok_or_else(|| PimError::Decode("empty create response".into()))
            .and_then(|i| kept("create", &body.environment.id, i))
    }

    /// `pim/v2`: sets the config of a DRAFT, which makes it CREATED. The spec's only parameter
    /// is the `{id}` in the path; the environment goes in the body.
    pub async fn update_config(
        &self,
        creds: &Credentials,
        environment: &str,
        id: &str,
        config: WriteConfig,
    ) -> Result<Integration, PimError> {
        let mut url = self.item_url(ApiVersion::V2, id, environment)?;
        url.set_query(None);
        let body = UpdateIntegration {
            config,
            environment: EnvId {
                id: environment.into(),
            },
        };
        self.send("update", Method::PATCH, url.as_str(), creds, Some(&body))
            .await?
            .ok_or_else(|| PimError::Decode("empty update response".into()))
            .and_then(|i| kept("update", environment, i))
            .and_then(|i| asked_for("update", id, i))
    }

    /// `pim/v2`: asks Confluent whether it can use the customer's cloud-side setup. `Ok` means it
    /// can; an error's detail says what is missing.
    pub async fn validate(
        &self,
        creds: &Credentials,
        environment: &str,
        id: &str,
    ) -> Result<(), PimError> {
        let url = format!("{}/pim/v2/integrations:validate", self.base);
        let body = ValidateIntegration {
            id: id.into(),
            environment: EnvId {
                id: environment.into(),
            },
        };
        success_whatever_the_body(
            self.send::<serde::de::IgnoredAny, _>(
                "validate",
                Method::POST,
                &url,
                creds,
                Some(&body),
            )
            .await,
        )
    }

    /// Deletes an integration. A 404 is reported as `NotFound`; callers decide whether that is done.
    pub async fn delete(
        &self,
        creds: &Credentials,
        version: ApiVersion,
        environment: &str,
        id: &str,
    ) -> Result<(), PimError> {
        let url = self.item_url(version, id, environment)?;
        success_whatever_the_body(
            self.send::<serde::de::IgnoredAny, ()>(
                "delete",
                Method::DELETE,
                url.as_str(),
                creds,
                None,
            )
            .await,
        )
    }

    fn item_url(
        &self,
        version: ApiVersion,
        id: &str,
        environment: &str,
    ) -> Result<reqwest::Url, PimError> {
        let mut url =
            reqwest::Url::parse(&format!("{}/{}/integrations/", self.base, version.path()))
                .map_err(|e| PimError::Transport(e.to_string()))?;
        url.path_segments_mut()
            .map_err(|_| PimError::Transport("base URL cannot be a base".into()))?
            .pop_if_empty()
            .push(id);
        url.query_pairs_mut()
            .append_pair("environment", environment);
        Ok(url)
    }

    async fn send<T: DeserializeOwned, B: serde::Serialize>(
        &self,
        op: &'static str,
        method: Method,
        url: &str,
        creds: &Credentials,
        body: Option<&B>,
    ) -> Result<Option<T>, PimError> {
        self.check_fence(&method)?;
        let asked = std::time::Instant::now();
        self.throttle.acquire(creds).await?;
        let paced = asked.elapsed();
        let permit = self.adaptive.acquire().await;
        let start = std::time::Instant::now();
        let mut req = self
            .http
            .request(method.clone(), url)
            .basic_auth(&creds.key, Some(&creds.secret))
            .header(header::ACCEPT, "application/json");
        if let Some(b) = body {
            req = req.json(b);
        }
        // A write is checked again before every poll of its request (`Fence::hold`): the
        // deadline may have passed while it waited for a slot, or while the process was stopped.
        let result = if method == Method::GET {
            req.send().await
        } else {
            self.fence.hold(req.send()).await.ok_or(PimError::Fenced)?
        };
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                self.observe(op, None, start);
                permit.finish(Outcome::Overloaded);
                return Err(transport(e));
            }
        };
        let status = resp.status();
        // Only what speaks of the API's capacity moves the limit: a success's latency, or a 5xx
        // that came slow. A 4xx is about the request or its caller (a 429 paces its key, below).
        permit.finish(if status.is_server_error() {
            Outcome::Refused(op, start.elapsed())
        } else if status.is_success() {
            Outcome::Answered(op, start.elapsed())
        } else {
            Outcome::Ignored
        });
        if let Some(h) = rate_headers(resp.headers()) {
            self.throttle.observe(creds, h);
        }
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| RetryAfter::parse(v, jiff::Timestamp::now()));
        // Refused (a 429; a 503 or another 5xx saying when to come back: the server shedding
        // load): the call waits its `Retry-After`, and refusals in a row pause the key.
        if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::SERVICE_UNAVAILABLE
            || (status.is_server_error() && retry_after.is_some())
        {
            self.throttle.refused(creds, retry_after);
        } else {
            self.throttle.accepted(creds);
        }
        let location = status
            .is_redirection()
            .then(|| {
                resp.headers()
                    .get(header::LOCATION)?
                    .to_str()
                    .ok()
                    .map(excerpt)
            })
            .flatten();
        let body = read_body(resp, MAX_BODY_BYTES).await;
        self.observe(op, Some(status.as_u16()), start);
        tracing::debug!(
            op,
            status = status.as_u16(),
            paced_ms = paced.as_millis(),
            queued_ms = (start - asked).saturating_sub(paced).as_millis(),
            took_ms = start.elapsed().as_millis(),
            "API call"
        );
        let result = match location {
            Some(location) => Err(PimError::Redirected {
                status: status.as_u16(),
                location,
            }),
            None => body.and_then(|b| interpret(op, status.as_u16(), retry_after, b)),
        }
        .map_err(|e| creds.redact(e));
        if let (Err(PimError::Decode(_)), Some(o)) = (&result, &self.observer) {
            o.unexpected(op);
        }
        result
    }

    fn observe(&self, op: &'static str, status: Option<u16>, start: std::time::Instant) {
        if let Some(o) = &self.observer {
            o.observe(op, status, start.elapsed());
        }
    }
}

/// The `X-RateLimit-*` headers of an answer, when it has all three.
fn rate_headers(h: &reqwest::header::HeaderMap) -> Option<RateHeaders> {
    let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
    RateHeaders::parse(
        get("x-ratelimit-limit")?,
        get("x-ratelimit-remaining")?,
        get("x-ratelimit-reset")?,
    )
}

/// The integration of an answer about `id`, if it is that one: taken for `id`, another's values
/// would be written to the resource, and compared with its spec (a recreate deletes the
/// integration it was shown).
fn asked_for(op: &str, id: &str, i: Integration) -> Result<Integration, PimError> {
    if i.id == id {
        Ok(i)
    } else {
        Err(PimError::Decode(format!(
            "{op}: asked for integration {id}, answered with {}",
            excerpt(&i.id)
        )))
    }
}

/// An integration of an answer to a call scoped to `environment`, once `Integration::bounded`
/// says it can be kept. It is in that environment even when it leaves `environment` out: read
/// as empty, the environment would differ from the spec's and say the integration had moved
/// (drift, a recreate) or was not ours (a lookup that finds nothing, and a second create).
fn kept(op: &str, environment: &str, mut i: Integration) -> Result<Integration, PimError> {
    if i.environment.id.is_empty() {
        i.environment.id = environment.to_string();
    }
    i.bounded()
        .map_err(|why| PimError::Decode(format!("{op}: {why}")))
}

/// For a call whose answer carries nothing we read (a delete, a validation): its status is the
/// answer, so a 2xx with a body that does not parse (`200 OK` as text) still did what was asked.
/// Read as an error, a delete that happened would be retried until a 404 said so.
fn success_whatever_the_body<T>(r: Result<Option<T>, PimError>) -> Result<(), PimError> {
    match r {
        Ok(_) | Err(PimError::Decode(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

fn transport(e: reqwest::Error) -> PimError {
    if e.is_timeout() {
        PimError::Timeout
    } else {
        PimError::Transport(e.without_url().to_string())
    }
}

/// Turns an answer (status, `Retry-After`, body as read) into the call's result: the decoded
/// value (`None` for an empty success), or the error it says. Pure, so it is fuzzed
/// (`fuzz/fuzz_targets/answer.rs`): no answer, however broken, may panic here.
pub fn interpret<T: DeserializeOwned>(
    op: &str,
    status: u16,
    retry_after: Option<RetryAfter>,
    body: Body,
) -> Result<Option<T>, PimError> {
    if !(200..300).contains(&status) {
        let text = match &body {
            Body::Whole(t) => t.as_str(),
            Body::TooLarge(_) => "",
        };
        return Err(PimError::from_response(status, retry_after, text));
    }
    let text = match body {
        Body::Whole(t) => t,
        Body::TooLarge(size) => {
            return Err(PimError::Decode(format!(
                "{op}: the answer is larger than {} KiB ({size}), the most this operator reads; not read further",
                MAX_BODY_BYTES / 1024
            )));
        }
    };
    if status == StatusCode::NO_CONTENT.as_u16() || text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| PimError::Decode(format!("{op}: {e}; body: {}", excerpt(&text))))
}

/// An answer's body, read up to a limit.
pub enum Body {
    Whole(String),
    /// Larger than the limit: what is known of its size.
    TooLarge(String),
}

/// Reads at most `limit` bytes of the body: a `Content-Length` above it is refused unread, and
/// a body without one (chunked, or endless) is dropped as soon as it passes the limit. The
/// request's timeout bounds a body that trickles in.
async fn read_body(mut resp: reqwest::Response, limit: usize) -> Result<Body, PimError> {
    if let Some(n) = resp.content_length()
        && n > limit as u64
    {
        return Ok(Body::TooLarge(format!("Content-Length {n}")));
    }
    let hint = resp.content_length().map_or(8 * 1024, |n| n as usize);
    let mut buf: Vec<u8> = Vec::with_capacity(hint.min(limit));
    while let Some(chunk) = resp.chunk().await.map_err(transport)? {
        if buf.len() + chunk.len() > limit {
            return Ok(Body::TooLarge(format!("more than {limit} bytes")));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Body::Whole(match String::from_utf8(buf) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }))
}

/// The `page_token` of a `next` link (absolute or relative).
pub fn page_token(link: &str) -> Result<String, PimError> {
    let url = reqwest::Url::parse(link)
        .or_else(|_| reqwest::Url::parse("http://relative.invalid/")?.join(link))
        .map_err(|e| PimError::Decode(format!("bad next link: {e}")))?;
    url.query_pairs()
        .find(|(k, _)| k == "page_token")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| PimError::Decode(format!("next link without page_token: {link}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_page_token_is_taken_from_a_next_link() {
        assert_eq!(
            page_token(
                "https://api.confluent.cloud/pim/v2/integrations?page_token=UvmDWOB1iwfAIBPj6EYb"
            )
            .unwrap(),
            "UvmDWOB1iwfAIBPj6EYb"
        );
        assert_eq!(
            page_token("/pim/v1/integrations?environment=env-1&page_token=a%2Bb").unwrap(),
            "a+b"
        );
        assert!(page_token("https://evil.example/x").is_err());
    }

    /// A client of `app`, served on loopback.
    async fn serve(app: axum::Router) -> PimClient {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        PimClient::new(&format!("http://{addr}"), Duration::from_secs(5)).unwrap()
    }

    /// A delete or a validation answered 2xx with a body that is not JSON did what was asked;
    /// a 4xx with the same body is still the error it says.
    #[tokio::test]
    async fn a_2xx_without_json_is_success_for_a_call_that_reads_no_answer() {
        use axum::{
            Router,
            http::StatusCode,
            routing::{delete, post},
        };
        let app = Router::new()
            .route(
                "/pim/v2/integrations/{id}",
                delete(|| async { (StatusCode::OK, "OK") }),
            )
            .route(
                "/pim/v1/integrations/{id}",
                delete(|| async { (StatusCode::CONFLICT, "OK") }),
            )
            .route(
                "/pim/v2/integrations:validate",
                post(|| async { (StatusCode::OK, "<p>ok</p>") }),
            );
        let c = serve(app).await;
        let creds = Credentials::new("KEY", "SECRET");
        c.delete(&creds, ApiVersion::V2, "env-1", "dlz-1")
            .await
            .unwrap();
        c.validate(&creds, "env-1", "dlz-1").await.unwrap();
        let refused = c.delete(&creds, ApiVersion::V1, "env-1", "dlz-1").await;
        assert!(refused.is_err(), "{refused:?}");
    }

    /// A 307 on a create is said, with where it points, and not followed (a create sent twice).
    #[tokio::test]
    async fn a_redirect_is_said_not_followed() {
        use axum::{Router, http::StatusCode, routing::post};
        use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
        let hits = Arc::new(AtomicU32::new(0));
        let counted = hits.clone();
        let app = Router::new().route(
            "/pim/v1/integrations",
            post(move || async move {
                counted.fetch_add(1, SeqCst);
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [("location", "/pim/v1/integrations")],
                )
            }),
        );
        let c = serve(app).await;
        let req = CreateIntegration {
            display_name: "pi".into(),
            provider: "AWS".into(),
            config: None,
            environment: EnvId { id: "env-1".into() },
        };
        let e = c
            .create(&Credentials::new("KEY", "SECRET"), ApiVersion::V1, &req)
            .await
            .unwrap_err();
        assert_eq!(hits.load(SeqCst), 1);
        assert!(
            matches!(&e, PimError::Redirected { status: 307, location } if location == "/pim/v1/integrations"),
            "{e:?}"
        );
    }

    /// A server answering a GET or a config PATCH with another integration is not believed.
    #[tokio::test]
    async fn an_answer_about_another_integration_is_refused() {
        use axum::{
            Json, Router,
            routing::{get, patch},
        };
        let other = || async {
            Json(
                serde_json::json!({"id": "dlz-other", "display_name": "x", "provider": "AWS",
                "environment": {"id": "env-1"}}),
            )
        };
        let app = Router::new()
            .route("/pim/v1/integrations/{id}", get(other))
            .route("/pim/v2/integrations/{id}", patch(other));
        let c = serve(app).await;
        let creds = Credentials::new("KEY", "SECRET");
        let e = c
            .get(&creds, ApiVersion::V1, "env-1", "dlz-mine")
            .await
            .unwrap_err();
        assert!(
            matches!(&e, PimError::Decode(m) if m.contains("asked for integration dlz-mine, answered with dlz-other")),
            "{e:?}"
        );
        let config = WriteConfig::Gcp {
            customer_google_service_account: "sa@p.iam.gserviceaccount.com".into(),
        };
        let e = c
            .update_config(&creds, "env-1", "dlz-mine", config)
            .await
            .unwrap_err();
        assert!(matches!(&e, PimError::Decode(_)), "{e:?}");
    }

    /// A server whose pages overlap (offset pages under concurrent creates) serves `dlz-b` on
    /// both; the listing holds it once. One item leaves out its environment: it is the one listed.
    #[tokio::test]
    async fn an_integration_served_on_two_pages_is_listed_once() {
        use axum::{Json, Router, extract::Query, routing::get};
        let item = |id: &str| {
            serde_json::json!({"id": id, "display_name": id, "provider": "AWS",
                "environment": {"id": "env-1"}})
        };
        let page = move |Query(q): Query<std::collections::HashMap<String, String>>| async move {
            let (api_version, kind) = ("pim/v1", "IntegrationList");
            Json(match q.get("page_token").map(String::as_str) {
                None => serde_json::json!({"api_version": api_version, "kind": kind,
                    "metadata": {"next": "/pim/v1/integrations?page_token=p2"},
                    "data": [item("dlz-a"), item("dlz-b")]}),
                _ => serde_json::json!({"api_version": api_version, "kind": kind, "metadata": {},
                    "data": [item("dlz-b"), {"id": "dlz-c", "provider": "AWS"}]}),
            })
        };
        let c = serve(Router::new().route("/pim/v1/integrations", get(page))).await;
        let listed = c
            .list(
                &Credentials::new("KEY", "SECRET"),
                ApiVersion::V1,
                "env-1",
                ListFilter::default(),
            )
            .await
            .unwrap();
        let ids: Vec<&str> = listed.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["dlz-a", "dlz-b", "dlz-c"]);
        // `dlz-c` came without its environment: it is in the one listed.
        assert!(
            listed.iter().all(|i| i.environment.id == "env-1"),
            "{listed:?}"
        );
    }

    /// A server echoing the request puts neither the secret nor its Basic header in an error;
    /// an echo longer than a status can hold is cut.
    #[tokio::test]
    async fn an_echoed_secret_never_reaches_the_error() {
        use axum::{Router, http::HeaderMap, http::StatusCode, routing::get};
        let echo = |h: HeaderMap| async move {
            let auth = h
                .get("authorization")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let secret = "s3cr3t-0123456789";
            let detail = format!("bad {auth} for {secret}; {}", "x".repeat(100_000));
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(
                    serde_json::json!({"errors": [{"code": "user_unauthenticated",
                    "detail": detail}]}),
                ),
            )
        };
        let c = serve(Router::new().route("/pim/v1/integrations/{id}", get(echo))).await;
        let creds = Credentials::new("KEY", "s3cr3t-0123456789");
        let e = c
            .get(&creds, ApiVersion::V1, "env-1", "dlz-1")
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, PimError::Unauthenticated { .. }), "{e:?}");
        assert!(
            !text.contains("s3cr3t") && !text.contains("S0VZOnMzY3Iz"),
            "{text}"
        );
        assert!(
            text.contains("bad Basic <redacted> for <redacted>"),
            "{text}"
        );
        assert!(text.len() < 1024, "{} bytes", text.len());
    }

    #[test]
    fn credentials_debug_hides_secret() {
        let c = Credentials::new("KEY", "s3cr3t");
        let s = format!("{c:?}");
        assert!(s.contains("KEY") && !s.contains("s3cr3t"), "{s}");
    }

    #[test]
    fn item_url_escapes_id_and_keeps_environment() {
        let c = PimClient::new("http://127.0.0.1:1/", Duration::from_secs(1)).unwrap();
        let u = c.item_url(ApiVersion::V1, "dlz-1/../x", "env-1").unwrap();
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:1/pim/v1/integrations/dlz-1%2F..%2Fx?environment=env-1"
        );
    }
}
