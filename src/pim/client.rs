//! A typed client of the Provider Integration API. It knows HTTP and the API's dialect, and
//! nothing about Kubernetes.

use std::{fmt, sync::Arc, time::Duration};

use reqwest::{Method, StatusCode, header};
use serde::de::DeserializeOwned;

use super::{
    error::PimError,
    types::{CreateIntegration, Integration, IntegrationList},
};

/// A Cloud API key and secret. `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    pub key: String,
    secret: String,
}

impl Credentials {
    pub fn new(key: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            secret: secret.into(),
        }
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

/// Called after every API request, e.g. to count requests in metrics.
pub trait RequestObserver: Send + Sync {
    fn observe(&self, operation: &'static str, status: Option<u16>, elapsed: Duration);
}

/// The page size used when listing: the API's maximum, to keep the number of calls low.
pub const LIST_PAGE_SIZE: u32 = 100;

#[derive(Clone)]
pub struct PimClient {
    http: reqwest::Client,
    base: String,
    observer: Option<Arc<dyn RequestObserver>>,
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
        })
    }

    pub fn with_observer(mut self, observer: Arc<dyn RequestObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Every integration of `environment` (optionally of one provider), following pagination.
    pub async fn list(
        &self,
        creds: &Credentials,
        environment: &str,
        provider: Option<&str>,
    ) -> Result<Vec<Integration>, PimError> {
        let mut url = reqwest::Url::parse(&format!("{}/pim/v1/integrations", self.base))
            .map_err(|e| PimError::Transport(e.to_string()))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("environment", environment);
            q.append_pair("page_size", &LIST_PAGE_SIZE.to_string());
            if let Some(p) = provider {
                q.append_pair("provider", p);
            }
        }
        let mut out = Vec::new();
        // A bound on pages guards against a server whose `next` never ends.
        for _ in 0..10_000 {
            let page: IntegrationList = self
                .send("list", Method::GET, url.as_str(), creds, None::<&()>)
                .await?
                .ok_or_else(|| PimError::Decode("empty list response".into()))?;
            out.extend(page.data);
            match page.metadata.next {
                Some(next) if !next.is_empty() => {
                    // Credentials are only ever sent to the configured API, whatever a link says.
                    let next = reqwest::Url::parse(&next)
                        .map_err(|e| PimError::Decode(format!("bad next link: {e}")))?;
                    if next.origin() != url.origin() {
                        return Err(PimError::Decode(format!(
                            "next link points to another host: {}",
                            next.origin().ascii_serialization()
                        )));
                    }
                    url = next;
                }
                _ => return Ok(out),
            }
        }
        Err(PimError::Decode("pagination did not end".into()))
    }

    pub async fn get(
        &self,
        creds: &Credentials,
        environment: &str,
        id: &str,
    ) -> Result<Integration, PimError> {
        let url = self.item_url(id, environment)?;
        self.send("get", Method::GET, url.as_str(), creds, None::<&()>)
            .await?
            .ok_or_else(|| PimError::Decode("empty get response".into()))
    }

    pub async fn create(
        &self,
        creds: &Credentials,
        body: &CreateIntegration,
    ) -> Result<Integration, PimError> {
        let url = format!("{}/pim/v1/integrations", self.base);
        self.send("create", Method::POST, &url, creds, Some(body))
            .await?
            .ok_or_else(|| PimError::Decode("empty create response".into()))
    }

    /// Deletes an integration. A 404 is reported as `NotFound`; callers decide whether that is done.
    pub async fn delete(
        &self,
        creds: &Credentials,
        environment: &str,
        id: &str,
    ) -> Result<(), PimError> {
        let url = self.item_url(id, environment)?;
        self.send::<serde_json::Value, ()>("delete", Method::DELETE, url.as_str(), creds, None)
            .await
            .map(|_| ())
    }

    fn item_url(&self, id: &str, environment: &str) -> Result<reqwest::Url, PimError> {
        let mut url = reqwest::Url::parse(&format!("{}/pim/v1/integrations/", self.base))
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
        let start = std::time::Instant::now();
        let mut req = self
            .http
            .request(method, url)
            .basic_auth(&creds.key, Some(&creds.secret))
            .header(header::ACCEPT, "application/json");
        if let Some(b) = body {
            req = req.json(b);
        }
        let result = req.send().await;
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                self.observe(op, None, start);
                return Err(if e.is_timeout() {
                    PimError::Timeout
                } else {
                    PimError::Transport(e.without_url().to_string())
                });
            }
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp.text().await;
        self.observe(op, Some(status.as_u16()), start);
        let text = text.map_err(|e| {
            if e.is_timeout() {
                PimError::Timeout
            } else {
                PimError::Transport(e.without_url().to_string())
            }
        })?;
        if !status.is_success() {
            return Err(PimError::from_response(status.as_u16(), retry_after, &text));
        }
        if status == StatusCode::NO_CONTENT || text.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| PimError::Decode(e.to_string()))
    }

    fn observe(&self, op: &'static str, status: Option<u16>, start: std::time::Instant) {
        if let Some(o) = &self.observer {
            o.observe(op, status, start.elapsed());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_hides_secret() {
        let c = Credentials::new("KEY", "s3cr3t");
        let s = format!("{c:?}");
        assert!(s.contains("KEY") && !s.contains("s3cr3t"), "{s}");
    }

    #[test]
    fn item_url_escapes_id_and_keeps_environment() {
        let c = PimClient::new("http://127.0.0.1:1/", Duration::from_secs(1)).unwrap();
        let u = c.item_url("dlz-1/../x", "env-1").unwrap();
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:1/pim/v1/integrations/dlz-1%2F..%2Fx?environment=env-1"
        );
    }
}
