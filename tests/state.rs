//! State kept per resource and per API key is bounded: it goes with the resource, and with a key
//! nobody uses any more.

mod common;

use std::{sync::Arc, time::Duration};

use common::*;
use pio::{
    controller::{
        self, Context,
        remote::{Recent, RemoteCache},
    },
    emulator::{self, ApiKey, EmulatorConfig},
    metrics::Metrics,
    pim::{ApiVersion, Credentials, PimClient},
};
use serde_json::json;

/// A resource deleted before it ever got a finalizer (here: stalled for want of its Secret)
/// leaves nothing behind in the operator's memory.
#[tokio::test]
async fn memory_goes_with_the_watch_delete_event() {
    let mut h = Harness::new().await;
    h.crash().await;
    let metrics = Arc::new(Metrics::new());
    let pim = PimClient::new(&h.em.base_url, Duration::from_secs(5)).unwrap();
    let ctx = Arc::new(Context::new(h.client.clone(), pim, test_config(), metrics));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(controller::run(ctx.clone(), async {
        let _ = stopped.await;
    }));
    for i in 0..20 {
        let mut spec = aws_spec(i);
        spec["credentialsRef"] = json!({"name": "no-such-secret"});
        h.create(&format!("m{i}"), spec).await;
    }
    for i in 0..20 {
        h.wait_condition(&format!("m{i}"), "Stalled", "CredentialsNotFound")
            .await;
    }
    assert!(
        ctx.remembered() >= 20,
        "each stalled resource counts its failures"
    );
    for i in 0..20 {
        h.delete(&format!("m{i}")).await;
        h.wait_gone(&format!("m{i}")).await;
    }
    eventually(
        Duration::from_secs(5),
        "resources still remembered after their deletion",
        || ctx.remembered(),
        |n| *n == 0,
    )
    .await;
    let _ = stop.send(());
    let _ = task.await;
}

/// A namespace's key rotated 100 times: the per-key listings and rate-limiter records of the
/// keys no longer used are dropped, so the state stays the size of the keys in use.
#[tokio::test]
async fn rotating_a_key_100_times_does_not_grow_the_state() {
    pio::install_crypto_provider();
    let keys: Vec<(String, String)> = (0..100)
        .map(|i| (format!("ROTATED{i:03}"), format!("secret-{i}")))
        .collect();
    let em = emulator::spawn_local(EmulatorConfig {
        keys: keys
            .iter()
            .map(|(k, s)| ApiKey::parse(&format!("{k}:{s}"), false).unwrap())
            .collect(),
        ..Default::default()
    })
    .await
    .unwrap();
    let pim = PimClient::new(&em.base_url, Duration::from_secs(5))
        .unwrap()
        .with_rate_limit(std::num::NonZeroU32::new(50));
    let unused_for = Duration::from_millis(200);
    let cache = RemoteCache::new(unused_for);
    let mut sizes = Vec::new();
    for (i, (k, s)) in keys.iter().enumerate() {
        let creds = Credentials::new(k, s);
        // What a reconcile does with the key of the moment: look its integration up.
        let found = cache
            .by_id(
                &pim,
                &creds,
                (ENV, ApiVersion::V1),
                "dlz-0000000",
                Recent::now(),
            )
            .await
            .unwrap();
        assert!(found.is_none());
        tokio::time::sleep(Duration::from_millis(25)).await;
        sizes.push((i, cache.len(), pim.throttled_keys()));
    }
    println!("(rotation, cached listings, rate-limiter keys): {sizes:?}");
    let (_, listings, limiter) = *sizes.last().unwrap();
    // About `unused_for / 25 ms` keys are recent at any time; 100 were used.
    assert!(
        listings <= 12,
        "{listings} listings kept after 100 rotations"
    );
    assert!(
        limiter <= 66,
        "{limiter} rate-limiter keys kept after 100 rotations"
    );
    let (_, early, _) = sizes[20];
    assert!(listings <= early + 4, "grew from {early} to {listings}");
}
