//! Sharing the API fairly: a key paced by the API's own `X-RateLimit-*` headers, and a line of
//! reconciles served per namespace in turn. These assert properties (how many 429s, who goes
//! first), not speed; `cargo bench --bench scale` prints the figures.

mod common;

use std::time::{Duration, Instant};

use common::*;
use pio::{
    controller::Config,
    emulator::{EmulatorConfig, Faults, Quotas},
};

/// The two tests load the machine; run alone, each measures its own operator.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Config as the binary's defaults size it: the ceiling of 512, everything else as in tests.
fn defaults() -> Config {
    Config {
        concurrency: 512,
        ..test_config()
    }
}

/// The emulator with room for `n` integrations (the org quota is 100 by default).
fn room_for(n: usize) -> EmulatorConfig {
    EmulatorConfig {
        quotas: Quotas {
            per_org: n + 10,
            per_env: None,
        },
        ..emulator_config()
    }
}

async fn wait_ready_count(h: &Harness, n: usize, limit: Duration) {
    let start = Instant::now();
    while h.ready_count() < n {
        assert!(
            start.elapsed() < limit,
            "{} of {n} Ready after {limit:?}",
            h.ready_count()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[ignore = "throughput: run by the README's test command (`-- --include-ignored`) and CI, not by a plain `cargo test`"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_per_second_limit_is_followed_with_at_most_1_percent_429() {
    let _alone = ALONE.lock().await;
    let n = 1000;
    let mut em = room_for(n);
    em.rate_limit = Some(20);
    let h = Harness::with(defaults(), em).await;
    let start = Instant::now();
    for i in 0..n {
        h.create(&format!("r{i}"), aws_spec(i)).await;
    }
    wait_ready_count(&h, n, Duration::from_secs(240)).await;
    let took = start.elapsed().as_secs_f64();
    let total = h.em.state.stats()["total"].as_u64().unwrap();
    let throttled = h.em.state.count_status(429);
    let rate = (total - throttled) as f64 / took;
    println!(
        "{n} Ready in {took:.1} s under 20 calls/s per key: {total} calls, {throttled} answered 429, {rate:.1} answered calls/s"
    );
    assert!(
        throttled as f64 <= 0.01 * total as f64,
        "{throttled} of {total} calls answered 429"
    );
    // Paced, not stalled: well above half the limit (a pause of a whole window after each
    // window's last call would halve it).
    assert!(rate > 14.0, "{rate:.1} calls/s against a limit of 20");
    assert_eq!(h.em.state.len(), n, "one integration per resource");
}

/// A burst of a thousand in team A's namespace, on an API server that charges for writes as a
/// real one does (500 a second, one line for every client, in arrival order): team B's first
/// write is committed behind at most the window of A's (the reconciles handed over or running,
/// each with one write at a time), not behind the burst's 2,000. Counted in the server's commit
/// order, not timed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_in_one_namespace_does_not_hold_up_another() {
    let _alone = ALONE.lock().await;
    let n = 1000;
    let mut em = room_for(n);
    em.faults = Faults {
        latency_ms: 50,
        ..Default::default()
    };
    let mut h = Harness::with(defaults(), em).await;
    // A's thousand are there when the operator starts, as after an upgrade or a GitOps sync.
    h.crash().await;
    h.put_secret_in("team-b", "pim-creds", KEY, SECRET).await;
    for i in 0..n {
        h.create(&format!("r{i}"), aws_spec(i)).await;
    }
    h.fake.set_write_throughput(500);
    h.start();
    // Team B's one change, once A's burst is under way.
    wait_ready_count(&h, n / 10, Duration::from_secs(60)).await;
    h.create_in("team-b", "b", aws_spec(n + 1)).await;
    let start = Instant::now();
    while !h.get_in("team-b", "b").is_some_and(|p| p.is_ready()) {
        assert!(start.elapsed() < Duration::from_secs(60), "b not Ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let commits = h.fake.commits("providerintegrations");
    let of_b: Vec<usize> = (0..commits.len())
        .filter(|&i| commits[i].0 == "team-b")
        .collect();
    // B's creation (the test's), then the operator's first write to it.
    let [created, first, ..] = of_b[..] else {
        panic!("B's creation and a write by the operator: {of_b:?}");
    };
    let a_between = commits[created..first]
        .iter()
        .filter(|c| c.0 != "team-b")
        .count();
    let a_total = commits.iter().filter(|c| c.0 != "team-b").count();
    println!(
        "team B's first write committed behind {a_between} of A's writes ({a_total} so far), Ready {:.2} s after its creation, with {} of A's {n} Ready",
        start.elapsed().as_secs_f64(),
        h.ready_count() - 1
    );
    // In a first-come line it would follow the rest of A's burst (about 1,800 writes); served in
    // turn, it goes next, behind what was already handed over (the adaptive limit of 64 and 16
    // more, one write each at a time), three times over at most: the writes in the server's
    // line when B is created, those made while its watch event comes, and those ahead of its own.
    assert!(
        a_between <= 3 * (64 + 16),
        "B's first write committed behind {a_between} of A's"
    );
    wait_ready_count(&h, n + 1, Duration::from_secs(120)).await;
    assert_eq!(h.em.state.len(), n + 1, "one integration per resource");
}

/// A 429 storm is a rate signal: it moves pacing, never the number of calls in flight (that
/// used to halve at every round trip, punishing the storm twice). Refused at random (30 % of
/// answers, answers getting through between), each refused call waits its own
/// `Retry-After` and the key goes on (pausing the key at each 429 held every other call a second
/// each time: 100 creates took 9-16 s). Refused throughout, the key is paused: the calls after
/// wait out the `Retry-After` instead of each finding out with a call of its own.
#[ignore = "slow by design (seconds of real time): run by the README's test command (`-- --include-ignored`) and CI, not by a plain `cargo test`"]
#[tokio::test]
async fn a_429_storm_moves_pacing_and_leaves_the_calls_in_flight() {
    pio::install_crypto_provider();
    let mut config = emulator_config();
    config.faults.error_rate_429 = 0.3;
    // Long enough that the check below comes well within a pause.
    config.faults.retry_after_secs = 3;
    config.faults.latency_ms = 20;
    config.faults.seed = Some(7);
    let em = pio::emulator::spawn_local(config).await.unwrap();
    let pim = pio::pim::PimClient::new(&em.base_url, Duration::from_secs(5))
        .unwrap()
        .with_concurrency(512);
    let creds = pio::pim::Credentials::new(KEY, SECRET);
    let list = || {
        let (pim, creds) = (pim.clone(), creds.clone());
        async move {
            pim.list(&creds, pio::pim::ApiVersion::V1, ENV, Default::default())
                .await
        }
    };
    let before = pim.concurrency_limit();
    let calls = futures::future::join_all((0..200).map(|_| list())).await;
    let refused: Vec<_> = calls.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(!refused.is_empty(), "a storm: none refused");
    // Each refused call is told its own wait: the reconcile's requeue.
    assert!(
        refused
            .iter()
            .all(|e| e.retry_after() == Some(Duration::from_secs(3))),
        "{refused:?}"
    );
    assert!(
        !pim.is_paused(&creds),
        "refused at random, with answers getting through: the key goes on"
    );
    // Refused throughout: every answer a 429.
    let code = reqwest::Client::new()
        .post(format!("{}/_emulator/faults/fail-next", em.base_url))
        .json(&serde_json::json!({"operation": "v1_list", "count": 20, "status": 429}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(code, 204);
    for _ in 0..20 {
        if pim.is_paused(&creds) {
            break;
        }
        let _ = list().await;
    }
    assert!(pim.is_paused(&creds), "refused in a row: the key is paused");
    let served = em.state.count("v1_list");
    let waiting = tokio::spawn(futures::future::join_all((0..20).map(|_| list())));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        em.state.count("v1_list"),
        served,
        "a call went out while its key was paused"
    );
    waiting.await.unwrap();
    assert!(em.state.count("v1_list") > served, "the pause ended");
    assert!(
        pim.concurrency_limit() >= before,
        "calls in flight cut from {before} to {} by 429s",
        pim.concurrency_limit()
    );
}
