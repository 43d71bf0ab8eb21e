//! Black-box tests of the PIM emulator over real HTTP. They assert raw JSON, not the crate's
//! shared types, so a mistake in those types cannot hide here. Every answer the emulator gives
//! here is also checked against Confluent's published contract when the test ends.

#[path = "common/contract.rs"]
#[allow(dead_code)]
mod contract;

use std::collections::HashSet;
use std::time::Duration;

use pio::emulator::{self, ApiKey, EmulatorConfig, EmulatorHandle, Faults};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

const KEY: &str = "KEY1";
const SECRET: &str = "secret1";
const RO_KEY: &str = "READER";
const RO_SECRET: &str = "reader-secret";
const ENV: &str = "env-abc12";

fn config() -> EmulatorConfig {
    EmulatorConfig {
        keys: vec![
            ApiKey::parse(&format!("{KEY}:{SECRET}"), false).unwrap(),
            ApiKey::parse(&format!("{RO_KEY}:{RO_SECRET}"), true).unwrap(),
        ],
        ..Default::default()
    }
}

struct T {
    em: EmulatorHandle,
    http: Client,
}

/// The answers are held to the published contract (requests are not: these tests send invalid
/// ones on purpose).
impl Drop for T {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        if let Some(c) = contract::shared() {
            c.assert_kept(&self.em.state.exchanges(), false);
        }
    }
}

impl T {
    async fn new() -> Self {
        Self::with(config()).await
    }
    async fn with(mut c: EmulatorConfig) -> Self {
        c.record_exchanges = true;
        pio::install_crypto_provider();
        Self {
            em: emulator::spawn_local(c).await.unwrap(),
            http: Client::new(),
        }
    }
    fn url(&self, p: &str) -> String {
        format!("{}{p}", self.em.base_url)
    }
    async fn req(
        &self,
        m: reqwest::Method,
        p: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.req_as(KEY, SECRET, m, p, body).await
    }
    async fn req_as(
        &self,
        k: &str,
        s: &str,
        m: reqwest::Method,
        p: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut r = self.http.request(m, self.url(p)).basic_auth(k, Some(s));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let st = resp.status();
        let h = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (st, h, v)
    }
    async fn create(&self, name: &str, arn: &str) -> Value {
        let (s, _, v) = self
            .req(
                reqwest::Method::POST,
                "/pim/v1/integrations",
                Some(aws_body(name, arn, ENV)),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    }
    /// `DELETE /pim/v1/integrations/{id}?environment=ENV` with the test key.
    async fn delete_v1(&self, id: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let p = format!("/pim/v1/integrations/{id}?environment={ENV}");
        self.req(M::DELETE, &p, None).await
    }
    /// `POST /pim/v1/integrations` with the test key.
    async fn post_v1(&self, body: Value) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.req(M::POST, "/pim/v1/integrations", Some(body)).await
    }
    /// GETs a full URL (e.g. a pagination link) with the test key and parses the JSON.
    async fn get_json(&self, url: &str) -> Value {
        self.http
            .get(url)
            .basic_auth(KEY, Some(SECRET))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
    async fn admin(&self, m: reqwest::Method, p: &str, body: Option<Value>) -> StatusCode {
        let mut r = self.http.request(m, self.url(p));
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap().status()
    }
    async fn stats(&self) -> Value {
        self.http
            .get(self.url("/_emulator/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn arn(i: usize) -> String {
    format!("arn:aws:iam::123456789012:role/customer-role-{i}")
}

fn aws_body(name: &str, arn: &str, env: &str) -> Value {
    json!({
        "display_name": name,
        "provider": "AWS",
        "config": {"kind": "AwsIntegrationConfig", "customer_iam_role_arn": arn},
        "environment": {"id": env}
    })
}

fn first_error(v: &Value) -> &Value {
    &v["errors"][0]
}

use reqwest::Method as M;

#[tokio::test]
async fn create_get_list_delete_with_documented_shapes() {
    let t = T::new().await;
    let (s, h, v) = t.post_v1(aws_body("my-int", &arn(1), ENV)).await;
    assert_eq!(s, StatusCode::CREATED);
    let id = v["id"].as_str().unwrap().to_string();
    assert!(
        id.starts_with("dlz-") && id.len() == 11 && id[4..].chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    assert_eq!(
        h["location"].to_str().unwrap(),
        t.url(&format!("/pim/v1/integrations/{id}"))
    );
    assert_eq!(v["api_version"], "pim/v1");
    assert_eq!(v["kind"], "Integration");
    assert_eq!(v["display_name"], "my-int");
    assert_eq!(v["provider"], "AWS");
    assert_eq!(v["config"]["kind"], "AwsIntegrationConfig");
    assert_eq!(v["config"]["customer_iam_role_arn"], arn(1));
    let ext = v["config"]["external_id"].as_str().unwrap();
    let u = uuid::Uuid::parse_str(ext).unwrap();
    assert_eq!(u.get_version_num(), 4);
    assert!(
        v["config"]["iam_role_arn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:iam::")
    );
    assert_eq!(v["usages"], json!([]));
    assert_eq!(v["environment"]["id"], ENV);
    assert_eq!(
        v["environment"]["related"],
        t.url(&format!("/v2/environments/{ENV}"))
    );
    assert!(
        v["environment"]["resource_name"]
            .as_str()
            .unwrap()
            .starts_with(&t.url("/organization="))
    );
    assert!(v.get("status").is_none(), "v1 has no status field");

    let (s, _, got) = t
        .req(
            M::GET,
            &format!("/pim/v1/integrations/{id}?environment={ENV}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, v);

    let (s, _, list) = t
        .req(
            M::GET,
            &format!("/pim/v1/integrations?environment={ENV}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["api_version"], "pim/v1");
    assert_eq!(list["kind"], "IntegrationList");
    assert_eq!(list["metadata"]["total_size"], 1);
    assert!(list["metadata"].get("next").is_none());
    assert_eq!(list["data"][0], v);

    let (s, _, body) = t.delete_v1(&id).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null);
    let (s, _, e) = t
        .req(
            M::GET,
            &format!("/pim/v1/integrations/{id}?environment={ENV}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The legacy shape Confluent's Terraform provider replays for a deleted integration.
    assert_eq!(
        e,
        json!({"error_code": 404, "message": format!("Provider Integration {id} not found")})
    );
    let (s, _, e) = t.delete_v1(&id).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(first_error(&e)["code"], "resource_not_found");
}

#[tokio::test]
async fn authentication_and_authorization() {
    let t = T::new().await;
    let r = t
        .http
        .get(t.url(&format!("/pim/v1/integrations?environment={ENV}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(first_error(&v)["code"], "user_unauthenticated");
    assert_eq!(first_error(&v)["status"], "401");

    let (s, _, v) = t
        .req_as(
            KEY,
            "wrong",
            M::GET,
            &format!("/pim/v1/integrations?environment={ENV}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(first_error(&v)["code"], "user_unauthenticated");

    // The read-only key may list but not write.
    let (s, _, _) = t
        .req_as(
            RO_KEY,
            RO_SECRET,
            M::GET,
            &format!("/pim/v1/integrations?environment={ENV}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, v) = t
        .req_as(
            RO_KEY,
            RO_SECRET,
            M::POST,
            "/pim/v1/integrations",
            Some(aws_body("x", &arn(1), ENV)),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(first_error(&v)["code"], "user_unauthorized");
    let id = t.create("x", &arn(1)).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _, _) = t
        .req_as(
            RO_KEY,
            RO_SECRET,
            M::DELETE,
            &format!("/pim/v1/integrations/{id}?environment={ENV}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let t = T::new().await;
    let long_arn = format!("arn:aws:iam::123456789012:role/{}", "r".repeat(2048));
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"provider": "AWS", "config": {"kind": "AwsIntegrationConfig", "customer_iam_role_arn": arn(1)}, "environment": {"id": ENV}}),
            400,
            "/display_name",
        ),
        (aws_body("", &arn(1), ENV), 400, "/display_name"),
        (
            aws_body(&"n".repeat(61), &arn(1), ENV),
            400,
            "/display_name",
        ),
        (
            json!({"display_name": "a", "provider": "AZURE", "config": {"kind": "AwsIntegrationConfig", "customer_iam_role_arn": arn(1)}, "environment": {"id": ENV}}),
            400,
            "/provider",
        ),
        (
            json!({"display_name": "a", "provider": "AWS", "config": {"kind": "GcpIntegrationConfig", "customer_iam_role_arn": arn(1)}, "environment": {"id": ENV}}),
            400,
            "/config/kind",
        ),
        (
            json!({"display_name": "a", "provider": "AWS", "environment": {"id": ENV}}),
            400,
            "/config",
        ),
        (
            aws_body("a", "arn:short", ENV),
            400,
            "/config/customer_iam_role_arn",
        ),
        (
            aws_body("a", &long_arn, ENV),
            400,
            "/config/customer_iam_role_arn",
        ),
        (
            json!({"display_name": "a", "provider": "AWS", "config": {"kind": "AwsIntegrationConfig", "customer_iam_role_arn": arn(1)}}),
            400,
            "/environment/id",
        ),
    ];
    for (body, status, pointer) in cases {
        let (s, _, v) = t.post_v1(body.clone()).await;
        assert_eq!(s.as_u16(), status, "{body} -> {v}");
        let e = first_error(&v);
        assert_eq!(e["source"]["pointer"], pointer, "{body} -> {v}");
        assert_eq!(e["status"], status.to_string());
        assert!(
            e["id"].is_string()
                && e["title"].is_string()
                && e["detail"].is_string()
                && e["code"].is_string(),
            "{v}"
        );
    }
    // Exactly 60 characters and a 20-character ARN are fine.
    t.create(&"n".repeat(60), "arn:aws:iam::1:role/").await;

    // A body that is not JSON.
    let r = t
        .http
        .post(t.url("/pim/v1/integrations"))
        .basic_auth(KEY, Some(SECRET))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(first_error(&v)["code"], "malformed_request");

    // Query parameters.
    for (q, param) in [
        ("/pim/v1/integrations", "environment"),
        (
            "/pim/v1/integrations?environment=env-1&page_size=0",
            "page_size",
        ),
        (
            "/pim/v1/integrations?environment=env-1&page_size=101",
            "page_size",
        ),
        (
            "/pim/v1/integrations?environment=env-1&page_size=ten",
            "page_size",
        ),
        (
            "/pim/v1/integrations?environment=env-1&page_token=garbage",
            "page_token",
        ),
        ("/pim/v1/integrations/dlz-1234567", "environment"),
    ] {
        let (s, _, v) = t.req(M::GET, q, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(first_error(&v)["source"]["parameter"], param, "{q}: {v}");
    }
    let (s, _, _) = t
        .req(M::DELETE, "/pim/v1/integrations/dlz-1234567", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn other_environment_is_not_found_and_role_is_unique_per_environment() {
    let t = T::new().await;
    let v = t.create("a", &arn(1)).await;
    let id = v["id"].as_str().unwrap();
    let (s, _, _) = t
        .req(
            M::GET,
            &format!("/pim/v1/integrations/{id}?environment=env-other"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = t
        .req(
            M::DELETE,
            &format!("/pim/v1/integrations/{id}?environment=env-other"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (s, _, e) = t.post_v1(aws_body("b", &arn(1), ENV)).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(first_error(&e)["code"], "resource_already_exists");
    assert!(first_error(&e)["detail"].as_str().unwrap().contains(id));
    let (s, _, _) = t.post_v1(aws_body("b", &arn(1), "env-other")).await;
    assert_eq!(s, StatusCode::CREATED);
}

#[tokio::test]
async fn quotas_per_org_and_per_env() {
    let mut c = config();
    c.quotas = pio::emulator::Quotas {
        per_org: 3,
        per_env: Some(2),
    };
    let t = T::with(c).await;
    t.create("a", &arn(1)).await;
    t.create("b", &arn(2)).await;
    let (s, _, e) = t.post_v1(aws_body("c", &arn(3), ENV)).await;
    assert_eq!(s, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(first_error(&e)["code"], "quota_exceeded");
    assert!(
        first_error(&e)["detail"]
            .as_str()
            .unwrap()
            .contains("per_env")
    );
    let (s, _, _) = t.post_v1(aws_body("c", &arn(3), "env-2")).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _, e) = t.post_v1(aws_body("d", &arn(4), "env-3")).await;
    assert_eq!(s, StatusCode::PAYMENT_REQUIRED);
    assert!(
        first_error(&e)["detail"]
            .as_str()
            .unwrap()
            .contains("per_org")
    );
    // Raised at run time through the admin endpoint.
    assert_eq!(
        t.admin(
            M::PUT,
            "/_emulator/quotas",
            Some(json!({"per_org": 10, "per_env": null}))
        )
        .await,
        StatusCode::NO_CONTENT
    );
    let (s, _, _) = t.post_v1(aws_body("d", &arn(4), ENV)).await;
    assert_eq!(s, StatusCode::CREATED);
}

/// The token of a `next` link, which (as published) carries nothing but `page_token`.
fn next_token(t: &T, v: &Value) -> Option<String> {
    let n = v["metadata"].get("next").and_then(Value::as_str)?;
    let (path, token) = n.split_once("?page_token=").expect(n);
    assert!(
        path.starts_with(&t.em.base_url) && path.ends_with("/integrations") && !token.contains('&'),
        "{n}"
    );
    Some(token.to_string())
}

async fn walk(t: &T, size: usize) -> (Vec<String>, usize) {
    let query = t.url(&format!(
        "/pim/v1/integrations?environment={ENV}&page_size={size}"
    ));
    let mut url = query.clone();
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let v: Value = t.get_json(&url).await;
        pages += 1;
        assert_eq!(v["metadata"]["total_size"], 250);
        assert!(v["data"].as_array().unwrap().len() <= size);
        for d in v["data"].as_array().unwrap() {
            ids.push(d["id"].as_str().unwrap().to_string());
        }
        for link in ["first", "last"] {
            assert!(
                v["metadata"][link]
                    .as_str()
                    .unwrap()
                    .contains("page_token="),
                "{link}"
            );
        }
        // The client sends its own query again, with the token.
        match next_token(t, &v) {
            Some(token) => url = format!("{query}&page_token={token}"),
            None => break,
        }
    }
    (ids, pages)
}

#[tokio::test]
async fn pagination_walks_250_items_at_page_sizes_1_10_100() {
    let mut c = config();
    c.quotas.per_org = 1000;
    let t = T::with(c).await;
    let mut want = HashSet::new();
    for i in 0..250 {
        want.insert(
            t.create(&format!("i{i}"), &arn(i)).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // Other environments' integrations never show up.
    let (s, _, _) = t.post_v1(aws_body("x", &arn(0), "env-zzz")).await;
    assert_eq!(s, StatusCode::CREATED);
    for (size, pages) in [(1, 250), (10, 25), (100, 3)] {
        let (ids, n) = walk(&t, size).await;
        assert_eq!(n, pages, "page size {size}");
        assert_eq!(ids.len(), 250, "page size {size}");
        let set: HashSet<String> = ids.into_iter().collect();
        assert_eq!(set, want, "page size {size}");
    }
    // Default page size is 10, and prev goes back.
    let (_, _, p1) = t
        .req(
            M::GET,
            &format!("/pim/v1/integrations?environment={ENV}"),
            None,
        )
        .await;
    assert_eq!(p1["data"].as_array().unwrap().len(), 10);
    assert!(p1["metadata"].get("prev").is_none());
    let query = t.url(&format!("/pim/v1/integrations?environment={ENV}"));
    let token = |link: &Value| {
        link.as_str()
            .unwrap()
            .split_once("page_token=")
            .unwrap()
            .1
            .to_string()
    };
    // A link followed verbatim has lost the required environment.
    let (s, _, _) = t
        .req(
            M::GET,
            p1["metadata"]["next"]
                .as_str()
                .unwrap()
                .trim_start_matches(&t.em.base_url),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let p2: Value = t
        .get_json(&format!(
            "{query}&page_token={}",
            token(&p1["metadata"]["next"])
        ))
        .await;
    let back: Value = t
        .get_json(&format!(
            "{query}&page_token={}",
            token(&p2["metadata"]["prev"])
        ))
        .await;
    assert_eq!(back["data"], p1["data"]);
}

#[tokio::test]
async fn pagination_is_stable_under_concurrent_creates_and_deletes() {
    let mut c = config();
    c.quotas.per_org = 1000;
    let t = T::with(c).await;
    let mut stable = HashSet::new();
    let mut doomed = Vec::new();
    for i in 0..120 {
        let id = t.create(&format!("i{i}"), &arn(i)).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        if i % 3 == 0 {
            doomed.push(id)
        } else {
            stable.insert(id);
        }
    }
    let query = t.url(&format!(
        "/pim/v1/integrations?environment={ENV}&page_size=7"
    ));
    let mut url = query.clone();
    let mut seen = Vec::new();
    let mut churn = 0;
    loop {
        let v: Value = t.get_json(&url).await;
        seen.extend(
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["id"].as_str().unwrap().to_string()),
        );
        // Between pages: delete one of the doomed and create a new one.
        if let Some(d) = doomed.pop() {
            let (s, _, _) = t.delete_v1(&d).await;
            assert_eq!(s, StatusCode::NO_CONTENT);
        }
        t.create(&format!("new{churn}"), &arn(10_000 + churn)).await;
        churn += 1;
        match next_token(&t, &v) {
            Some(token) => url = format!("{query}&page_token={token}"),
            None => break,
        }
        assert!(churn < 200, "walk never ended");
    }
    let set: HashSet<&String> = seen.iter().collect();
    assert_eq!(set.len(), seen.len(), "a page repeated an item");
    for id in &stable {
        assert!(set.contains(id), "stable item {id} was skipped");
    }
}

#[tokio::test]
async fn usages_block_delete_until_detached_and_admin_deletes_out_of_band() {
    let t = T::new().await;
    let id = t.create("a", &arn(1)).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let crn = "crn://confluent.cloud/organization=o/environment=env-abc12/cloud-cluster=lkc-1/connector=c1";
    assert_eq!(
        t.admin(
            M::PUT,
            &format!("/_emulator/integrations/{id}/usages"),
            Some(json!([crn]))
        )
        .await,
        StatusCode::OK
    );
    let (_, _, v) = t
        .req(
            M::GET,
            &format!("/pim/v1/integrations/{id}?environment={ENV}"),
            None,
        )
        .await;
    assert_eq!(v["usages"], json!([crn]));
    let (s, _, e) = t.delete_v1(&id).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(
        first_error(&e)["detail"]
            .as_str()
            .unwrap()
            .contains("in use"),
        "{e}"
    );
    assert!(first_error(&e)["detail"].as_str().unwrap().contains(crn));
    assert_eq!(
        t.admin(
            M::PUT,
            &format!("/_emulator/integrations/{id}/usages"),
            Some(json!([]))
        )
        .await,
        StatusCode::OK
    );
    let (s, _, _) = t.delete_v1(&id).await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    let id = t.create("b", &arn(2)).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    t.admin(
        M::PUT,
        &format!("/_emulator/integrations/{id}/usages"),
        Some(json!([crn])),
    )
    .await;
    assert_eq!(
        t.admin(M::DELETE, &format!("/_emulator/integrations/{id}"), None)
            .await,
        StatusCode::NO_CONTENT
    );
    let (s, _, _) = t
        .req(
            M::GET,
            &format!("/pim/v1/integrations/{id}?environment={ENV}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        t.admin(M::DELETE, &format!("/_emulator/integrations/{id}"), None)
            .await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn injected_rates_and_fail_next_with_counters() {
    let t = T::new().await;
    let faults = json!({"error_rate_429": 0.2, "error_rate_500": 0.1, "error_rate_503": 0.1, "retry_after_secs": 3});
    assert_eq!(
        t.admin(M::PUT, "/_emulator/faults", Some(faults)).await,
        StatusCode::NO_CONTENT
    );
    let n = 2000;
    let (mut c429, mut c500, mut c503, mut ok) = (0, 0, 0, 0);
    for _ in 0..n {
        let r = t
            .http
            .get(t.url(&format!("/pim/v1/integrations?environment={ENV}")))
            .basic_auth(KEY, Some(SECRET))
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            429 => {
                assert_eq!(r.headers()["retry-after"], "3");
                let r = r;
                assert!(r.bytes().await.unwrap().is_empty(), "429 has no body");
                c429 += 1
            }
            500 => c500 += 1,
            503 => {
                assert_eq!(r.headers()["retry-after"], "3");
                c503 += 1
            }
            200 => ok += 1,
            s => panic!("unexpected {s}"),
        }
    }
    let frac = |c: i32| c as f64 / n as f64;
    // 4+ standard deviations of tolerance for n = 2000.
    assert!((frac(c429) - 0.2).abs() < 0.04, "429: {}", frac(c429));
    assert!((frac(c500) - 0.1).abs() < 0.03, "500: {}", frac(c500));
    assert!((frac(c503) - 0.1).abs() < 0.03, "503: {}", frac(c503));
    assert!((frac(ok) - 0.6).abs() < 0.05, "ok: {}", frac(ok));
    let stats = t.stats().await;
    assert_eq!(stats["operations"]["v1_list"]["429"], c429);
    assert_eq!(stats["operations"]["v1_list"]["200"], ok);
    assert_eq!(stats["total"], n);

    // Invalid fault settings are refused.
    assert_eq!(
        t.admin(
            M::PUT,
            "/_emulator/faults",
            Some(json!({"error_rate_500": 1.5}))
        )
        .await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        t.admin(M::PUT, "/_emulator/faults", Some(json!({"bogus": 1})))
            .await
            .as_u16(),
        422
    );

    // fail the next 2 creates, everything else passes.
    assert_eq!(
        t.admin(M::PUT, "/_emulator/faults", Some(json!({}))).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.admin(M::DELETE, "/_emulator/stats", None).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.admin(
            M::POST,
            "/_emulator/faults/fail-next",
            Some(json!({"operation": "create", "count": 2, "status": 503}))
        )
        .await,
        StatusCode::NO_CONTENT
    );
    for want in [503, 503, 201] {
        let (s, _, _) = t.post_v1(aws_body("f", &arn(9), ENV)).await;
        assert_eq!(s.as_u16(), want);
    }
    let stats = t.stats().await;
    assert_eq!(
        stats["operations"]["v1_create"],
        json!({"201": 1, "503": 2})
    );
}

#[tokio::test]
async fn latency_is_added() {
    let mut c = config();
    c.faults = Faults {
        latency_ms: 60,
        jitter_ms: 20,
        ..Default::default()
    };
    let t = T::with(c).await;
    let start = std::time::Instant::now();
    for _ in 0..5 {
        t.req(
            M::GET,
            &format!("/pim/v1/integrations?environment={ENV}"),
            None,
        )
        .await;
    }
    let avg = start.elapsed() / 5;
    assert!(
        avg >= Duration::from_millis(60) && avg < Duration::from_millis(400),
        "{avg:?}"
    );
}

#[tokio::test]
async fn rate_limit_answers_429_with_headers() {
    let mut c = config();
    c.rate_limit = Some(5);
    let t = T::with(c).await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = t
            .http
            .get(t.url(&format!("/pim/v1/integrations?environment={ENV}")))
            .basic_auth(KEY, Some(SECRET))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-ratelimit-limit"], "5");
        assert!(r.headers().contains_key("x-ratelimit-remaining"));
        assert!(r.headers().contains_key("x-ratelimit-reset"));
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
            assert!(r.bytes().await.unwrap().is_empty());
        }
    }
    // The window is one second; all 8 requests fit in it unless the machine stalls.
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        3,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn state_file_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut c = config();
    c.state_file = Some(path.clone());
    let mut t = T::with(c.clone()).await;
    let created = t.create("persisted", &arn(1)).await;
    let id = created["id"].as_str().unwrap().to_string();
    let gone = t.create("gone", &arn(2)).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    t.req(
        M::DELETE,
        &format!("/pim/v1/integrations/{gone}?environment={ENV}"),
        None,
    )
    .await;
    t.em.shutdown().await;

    let t2 = T::with(c).await;
    let (s, _, got) = t2
        .req(
            M::GET,
            &format!("/pim/v1/integrations/{id}?environment={ENV}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["config"], created["config"]);
    let (s, _, _) = t2
        .req(
            M::GET,
            &format!("/pim/v1/integrations/{gone}?environment={ENV}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Uniqueness is enforced against restored state too.
    let (s, _, _) = t2.post_v1(aws_body("again", &arn(1), ENV)).await;
    assert_eq!(s, StatusCode::CONFLICT);
}

#[tokio::test]
async fn concurrent_creates_are_safe() {
    let mut c = config();
    c.quotas.per_org = 1000;
    let t = std::sync::Arc::new(T::with(c).await);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let t = t.clone();
        // Every role twice: exactly one of each pair may win.
        tasks.push(tokio::spawn(async move {
            let (s, _, _) = t.post_v1(aws_body("c", &arn(i / 2), ENV)).await;
            s.as_u16()
        }));
    }
    let mut codes = Vec::new();
    for task in tasks {
        codes.push(task.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|c| **c == 201).count(), 100);
    assert_eq!(codes.iter().filter(|c| **c == 409).count(), 100);
    assert_eq!(t.em.state.len(), 100);
}

#[tokio::test]
async fn unknown_route_uses_the_other_error_shape() {
    let t = T::new().await;
    let (s, _, v) = t.req(M::GET, "/pim/v9/nothing", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error_code"], 404);
    assert!(v["message"].is_string());
}

// ---- pim/v2 ----

fn v2_body(name: &str, provider: &str) -> Value {
    json!({"display_name": name, "provider": provider, "environment": {"id": ENV}})
}

#[tokio::test]
async fn v2_draft_patch_validate_for_each_provider() {
    let t = T::new().await;
    let cases = [
        (
            "AWS",
            json!({"kind": "AwsIntegrationConfig", "customer_iam_role_arn": arn(1)}),
            "iam_role_arn",
        ),
        (
            "GCP",
            json!({"kind": "GcpIntegrationConfig", "customer_google_service_account": "sa@proj.iam.gserviceaccount.com"}),
            "google_service_account",
        ),
        (
            "AZURE",
            json!({"kind": "AzureIntegrationConfig", "customer_azure_tenant_id": "8d3e0c7a-1c1f-4b1e-9c7e-2f1d2a3b4c5d"}),
            "confluent_multi_tenant_app_id",
        ),
    ];
    for (provider, config, generated) in cases {
        let (s, h, v) = t
            .req(
                M::POST,
                "/pim/v2/integrations",
                Some(v2_body(&format!("{provider}-int"), provider)),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert!(h.contains_key("location"));
        assert_eq!(v["api_version"], "pim/v2");
        assert_eq!(v["status"], "DRAFT");
        // As published: a DRAFT already names Confluent's identity, the customer's field empty
        // (GCP and Azure, as Terraform's mocks show) or absent (AWS: the spec's minLength 20).
        assert!(v["config"][generated].is_string(), "{provider}: {v}");
        let customer = v["config"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, _)| k.starts_with("customer_"))
            .map(|(_, v)| v.clone());
        let want = if provider == "AWS" {
            None
        } else {
            Some(json!(""))
        };
        assert_eq!(customer, want, "{v}");
        let identity = v["config"][generated].clone();
        assert_eq!(
            v["provider"],
            provider.to_ascii_lowercase(),
            "v2 answers lower case"
        );
        let id = v["id"].as_str().unwrap().to_string();
        assert!(
            id.starts_with("cspi-"),
            "pim/v2 ids look like Confluent's: {id}"
        );

        // Validation before a config exists fails.
        let (s, _, _) = t
            .req(
                M::POST,
                "/pim/v2/integrations:validate",
                Some(json!({"id": id, "environment": {"id": ENV}})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);

        let (s, _, v) = t
            .req(
                M::PATCH,
                &format!("/pim/v2/integrations/{id}"),
                Some(json!({"config": config, "environment": {"id": ENV}})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["status"], "CREATED");
        assert_eq!(
            v["config"][generated], identity,
            "{provider}: the DRAFT's identity stays"
        );

        // A second PATCH is refused: config only changes while DRAFT.
        let (s, _, _) = t
            .req(
                M::PATCH,
                &format!("/pim/v2/integrations/{id}"),
                Some(json!({"config": config, "environment": {"id": ENV}})),
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT);

        let (s, _, e) = t
            .req(
                M::POST,
                "/pim/v2/integrations:validate",
                Some(json!({"id": id, "environment": {"id": ENV}})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(first_error(&e)["code"], "bad_request");
        assert!(
            first_error(&e)["detail"].as_str().unwrap().len() > 20,
            "the detail names what is missing: {e}"
        );
        assert_eq!(
            t.admin(
                M::PUT,
                &format!("/_emulator/integrations/{id}/access"),
                Some(json!({"granted": true}))
            )
            .await,
            StatusCode::NO_CONTENT
        );
        let (s, _, _) = t
            .req(
                M::POST,
                "/pim/v2/integrations:validate",
                Some(json!({"id": id, "environment": {"id": ENV}})),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let v2_path = format!("/pim/v2/integrations/{id}?environment={ENV}");
        let v = t.get_json(&t.url(&v2_path)).await;
        // Validation changes nothing; ACTIVE means "in use by Confluent resources".
        assert_eq!(v["status"], "CREATED");
        t.admin(
            M::PUT,
            &format!("/_emulator/integrations/{id}/usages"),
            Some(json!(["crn://confluent.cloud/connector=c1"])),
        )
        .await;
        let v = t.get_json(&t.url(&v2_path)).await;
        assert_eq!(v["status"], "ACTIVE");
        t.admin(
            M::PUT,
            &format!("/_emulator/integrations/{id}/usages"),
            Some(json!([])),
        )
        .await;

        // v1 sees AWS integrations only.
        let (s, _, _) = t
            .req(
                M::GET,
                &format!("/pim/v1/integrations/{id}?environment={ENV}"),
                None,
            )
            .await;
        assert_eq!(s.as_u16(), if provider == "AWS" { 200 } else { 404 });
    }
    // List filters.
    let (_, _, v) = t
        .req(
            M::GET,
            &format!("/pim/v2/integrations?environment={ENV}&display_name=GCP-int"),
            None,
        )
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"][0]["provider"], "gcp");
    // The display_name filter is a partial search, as published.
    let (_, _, v) = t
        .req(
            M::GET,
            &format!("/pim/v2/integrations?environment={ENV}&display_name=-int"),
            None,
        )
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 3, "{v}");
    // The provider filter is an exact match against that lower case.
    let (_, _, v) = t
        .req(
            M::GET,
            &format!("/pim/v2/integrations?environment={ENV}&provider=GCP"),
            None,
        )
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 0);
    t.req(
        M::POST,
        "/pim/v2/integrations",
        Some(v2_body("draft", "GCP")),
    )
    .await;
    let (_, _, v) = t
        .req(
            M::GET,
            &format!("/pim/v2/integrations?environment={ENV}&status=DRAFT"),
            None,
        )
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"][0]["display_name"], "draft");
    let (_, _, v) = t
        .req(
            M::GET,
            &format!("/pim/v1/integrations?environment={ENV}"),
            None,
        )
        .await;
    assert_eq!(v["metadata"]["total_size"], 1, "v1 lists AWS only");
}

#[tokio::test]
async fn v2_validation_errors() {
    let t = T::new().await;
    let (s, _, e) = t
        .req(
            M::POST,
            "/pim/v2/integrations",
            Some(v2_body("x", "ORACLE")),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(first_error(&e)["source"]["pointer"], "/provider");
    let id = t
        .req(M::POST, "/pim/v2/integrations", Some(v2_body("x", "GCP")))
        .await
        .2["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (config, pointer) in [
        (
            json!({"kind": "GcpIntegrationConfig", "customer_google_service_account": "not-an-email"}),
            "/config/customer_google_service_account",
        ),
        (
            json!({"kind": "AzureIntegrationConfig", "customer_azure_tenant_id": "8d3e0c7a-1c1f-4b1e-9c7e-2f1d2a3b4c5d"}),
            "/config/kind",
        ),
    ] {
        let (s, _, e) = t
            .req(
                M::PATCH,
                &format!("/pim/v2/integrations/{id}"),
                Some(json!({"config": config, "environment": {"id": ENV}})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(first_error(&e)["source"]["pointer"], pointer);
    }
    let az = t
        .req(
            M::POST,
            "/pim/v2/integrations",
            Some(v2_body("az", "AZURE")),
        )
        .await
        .2["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _, e) = t.req(M::PATCH, &format!("/pim/v2/integrations/{az}"), Some(json!({"config": {"kind": "AzureIntegrationConfig", "customer_azure_tenant_id": "nope"}, "environment": {"id": ENV}}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        first_error(&e)["source"]["pointer"],
        "/config/customer_azure_tenant_id"
    );
    let (s, _, _) = t
        .req(
            M::PATCH,
            &format!("/pim/v2/integrations/{id}"),
            Some(json!({"config": {}, "environment": {"id": "env-other"}})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// The operator's typed client speaks the emulator's `pim/v2` dialect: DRAFT, filtered list,
/// config, validate (failing with the API's detail, then passing), read back, delete.
#[tokio::test]
async fn typed_client_runs_the_v2_flow() {
    use pio::pim::{
        ApiVersion, CreateIntegration, Credentials, EnvId, ListFilter, PimClient, PimError,
        WriteConfig,
    };
    let t = T::new().await;
    let c = PimClient::new(&t.em.base_url, Duration::from_secs(5)).unwrap();
    let creds = Credentials::new(KEY, SECRET);
    let draft = c
        .create(
            &creds,
            ApiVersion::V2,
            &CreateIntegration {
                display_name: "gcs".into(),
                provider: "GCP".into(),
                config: None,
                environment: EnvId { id: ENV.into() },
            },
        )
        .await
        .unwrap();
    assert!(draft.is_draft());
    let by_name = |name: &'static str| ListFilter {
        display_name: Some(name),
        ..Default::default()
    };
    let found = c
        .list(&creds, ApiVersion::V2, ENV, by_name("gcs"))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, draft.id);
    assert!(
        c.list(&creds, ApiVersion::V2, ENV, by_name("other"))
            .await
            .unwrap()
            .is_empty()
    );
    let sa = "connect@p-1.iam.gserviceaccount.com";
    let configure = || {
        c.update_config(
            &creds,
            ENV,
            &draft.id,
            WriteConfig::Gcp {
                customer_google_service_account: sa.into(),
            },
        )
    };
    let created = configure().await.unwrap();
    assert_eq!(created.status.as_deref(), Some("CREATED"));
    let gcp = created.gcp().unwrap();
    assert_eq!(gcp.customer_google_service_account, sa);
    assert!(gcp.google_service_account.is_some());
    // A second PATCH is refused: config is only set while DRAFT.
    let again = configure().await.unwrap_err();
    assert!(matches!(again, PimError::Conflict { .. }), "{again:?}");
    let failed = c.validate(&creds, ENV, &draft.id).await.unwrap_err();
    assert!(
        matches!(&failed, PimError::Invalid { code, detail, .. } if code == "bad_request" && detail.contains("roles/iam.serviceAccountTokenCreator")),
        "{failed:?}"
    );
    assert_eq!(
        t.admin(
            M::PUT,
            &format!("/_emulator/integrations/{}/access", draft.id),
            Some(json!({"granted": true}))
        )
        .await,
        StatusCode::NO_CONTENT
    );
    c.validate(&creds, ENV, &draft.id).await.unwrap();
    let read = c.get(&creds, ApiVersion::V2, ENV, &draft.id).await.unwrap();
    assert_eq!(
        read.status.as_deref(),
        Some("CREATED"),
        "validated is not ACTIVE"
    );
    let status_filter = ListFilter {
        status: Some("CREATED"),
        ..Default::default()
    };
    assert_eq!(
        c.list(&creds, ApiVersion::V2, ENV, status_filter)
            .await
            .unwrap()
            .len(),
        1
    );
    c.delete(&creds, ApiVersion::V2, ENV, &draft.id)
        .await
        .unwrap();
    assert!(matches!(
        c.get(&creds, ApiVersion::V2, ENV, &draft.id).await,
        Err(PimError::NotFound { .. })
    ));
}

/// The hostile answers, set at run time through the admin API: a `Retry-After` of 2^64-1, a
/// `next` that loops, an oversized body without `Content-Length`, a body that trickles in.
#[tokio::test]
async fn hostile_answers_can_be_set_at_run_time() {
    use reqwest::Method as M;
    let t = T::new().await;
    let list = format!("/pim/v1/integrations?environment={ENV}");
    let t = &t;
    let put = |f: Value| async move { t.admin(M::PUT, "/_emulator/faults", Some(f)).await };
    assert_eq!(
        put(json!({"error_rate_429": 1.0, "retry_after_secs": u64::MAX})).await,
        StatusCode::NO_CONTENT
    );
    let (s, h, _) = t.req(M::GET, &list, None).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(h["retry-after"], "18446744073709551615");

    assert_eq!(
        put(json!({"looping_next": true})).await,
        StatusCode::NO_CONTENT
    );
    let (s, _, first) = t.req(M::GET, &list, None).await;
    assert_eq!(s, StatusCode::OK);
    let next = first["metadata"]["next"].as_str().unwrap().to_string();
    let path = next.trim_start_matches(&t.em.base_url).to_string();
    let (_, _, second) = t
        .req(M::GET, &format!("{path}&environment={ENV}"), None)
        .await;
    assert_eq!(
        second["metadata"]["next"],
        next.as_str(),
        "the same page again"
    );

    assert_eq!(
        put(json!({"oversized_body_bytes": 3_000_000})).await,
        StatusCode::NO_CONTENT
    );
    let r = t
        .http
        .get(t.url(&list))
        .basic_auth(KEY, Some(SECRET))
        .send()
        .await
        .unwrap();
    assert!(r.content_length().is_none(), "streamed without a length");
    assert_eq!(r.bytes().await.unwrap().len(), 3_000_000);

    assert_eq!(put(json!({"trickle_ms": 20})).await, StatusCode::NO_CONTENT);
    let start = std::time::Instant::now();
    let (s, _, _) = t.req(M::GET, &list, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        start.elapsed() > Duration::from_millis(200),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(put(json!({})).await, StatusCode::NO_CONTENT);
}
