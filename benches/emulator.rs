//! Emulator throughput (prints numbers; asserts nothing about speed): how many requests per
//! second the emulator serves with no injected latency, so it is never the bottleneck when the
//! operator is benchmarked.
//!
//!     cargo bench --bench emulator

use std::time::{Duration, Instant};

use pio::emulator::{self, DEMO_API_KEY, DEMO_API_SECRET, EmulatorConfig, Quotas};
use serde_json::json;

async fn run(
    label: &str,
    base: &str,
    clients: usize,
    secs: u64,
    make: impl Fn(usize, usize) -> reqwest::RequestBuilder + Send + Sync + Clone + 'static,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut other, mut i) = (0u64, 0u64, 0usize);
            while Instant::now() < deadline {
                let r = make(c, i).send().await;
                i += 1;
                match r {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        ok += 1
                    }
                    _ => other += 1,
                }
            }
            (ok, other)
        }));
    }
    let (mut ok, mut other) = (0, 0);
    for t in tasks {
        let (o, e) = t.await.unwrap();
        ok += o;
        other += e;
    }
    println!(
        "  {label:<34} {:>8.0} req/s  ({ok} ok, {other} failed, {clients} clients, {base})",
        ok as f64 / secs as f64
    );
}

#[tokio::main]
async fn main() {
    pio::install_crypto_provider();
    let em = emulator::spawn_local(EmulatorConfig {
        quotas: Quotas {
            per_org: 1_000_000,
            per_env: None,
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let base = em.base_url.clone();
    // A realistic environment: 100 integrations to list and get.
    let mut ids = Vec::new();
    for i in 0..100 {
        let v: serde_json::Value = http
            .post(format!("{base}/pim/v1/integrations"))
            .basic_auth(DEMO_API_KEY, Some(DEMO_API_SECRET))
            .json(&json!({"display_name": format!("i{i}"), "provider": "AWS",
                "config": {"kind": "AwsIntegrationConfig", "customer_iam_role_arn": format!("arn:aws:iam::123456789012:role/r{i}")},
                "environment": {"id": "env-bench"}}))
            .send().await.unwrap().json().await.unwrap();
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    println!(
        "emulator throughput, zero injected latency, {} cores:",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let (h, b) = (http.clone(), base.clone());
    run("GET one integration", &base, 64, 5, move |_, i| {
        h.get(format!(
            "{b}/pim/v1/integrations/{}?environment=env-bench",
            ids[i % ids.len()]
        ))
        .basic_auth(DEMO_API_KEY, Some(DEMO_API_SECRET))
    })
    .await;
    let (h, b) = (http.clone(), base.clone());
    run("LIST page of 10", &base, 64, 5, move |_, _| {
        h.get(format!("{b}/pim/v1/integrations?environment=env-bench"))
            .basic_auth(DEMO_API_KEY, Some(DEMO_API_SECRET))
    })
    .await;
    let (h, b) = (http.clone(), base.clone());
    run("POST create", &base, 64, 5, move |c, i| {
        h.post(format!("{b}/pim/v1/integrations")).basic_auth(DEMO_API_KEY, Some(DEMO_API_SECRET)).json(&json!({
            "display_name": "x", "provider": "AWS",
            "config": {"kind": "AwsIntegrationConfig", "customer_iam_role_arn": format!("arn:aws:iam::123456789012:role/c{c}-{i}")},
            "environment": {"id": format!("env-w{c}")}}))
    })
    .await;
}
