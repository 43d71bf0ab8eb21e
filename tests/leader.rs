//! Leader election against the fake API server: two instances, one Lease, one reconciler.

mod common;

use std::{sync::Arc, time::Duration};

use common::*;
use kube::{Api, client::ClientBuilder};
use pio::{
    controller::Context,
    leader::{self, Ended, FenceLayer, LeaseConfig},
    metrics::Metrics,
    pim::{Fence, PimClient},
};
use serde_json::json;

struct Instance {
    metrics: Arc<Metrics>,
    /// A clone of the instance's Confluent client (it shares the fence).
    pim: PimClient,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<Ended, leader::LeaderError>>,
}

fn start(h: &Harness, identity: &str) -> Instance {
    start_on(h, "pio-test", identity)
}

/// A replica competing for the Lease `lease`.
fn start_on(h: &Harness, lease: &str, identity: &str) -> Instance {
    let metrics = Arc::new(Metrics::new());
    let pim = PimClient::new(&h.em.base_url, Duration::from_secs(5))
        .unwrap()
        .with_observer(metrics.clone());
    let ctx = Arc::new(Context::new(
        h.client.clone(),
        pim.clone(),
        test_config(),
        metrics.clone(),
    ));
    let lease = LeaseConfig {
        name: lease.into(),
        namespace: "pim-system".into(),
        identity: identity.into(),
        duration: Duration::from_secs(3),
        grace: Duration::from_secs(1),
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(leader::run_elected(ctx, lease, async {
        let _ = rx.await;
    }));
    Instance {
        metrics,
        pim,
        stop: Some(tx),
        task,
    }
}

fn is_leader(m: &Metrics) -> bool {
    m.encode().lines().any(|l| l == "pio_leader 1")
}

fn api_calls(m: &Metrics) -> u64 {
    m.encode()
        .lines()
        .filter(|l| l.starts_with("pio_pim_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn only_the_lease_holder_reconciles_and_a_standby_takes_over() {
    // The harness's own controller is stopped: these two instances compete instead.
    let mut h = Harness::new().await;
    h.crash().await;
    let mut a = start(&h, "replica-a");
    let mut b = start(&h, "replica-b");
    for i in 0..5 {
        h.create(&format!("le{i}"), aws_spec(i)).await;
    }
    for i in 0..5 {
        h.wait_ready(&format!("le{i}")).await;
    }
    let (leader, standby) = if is_leader(&a.metrics) {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    assert!(is_leader(&leader.metrics), "one instance leads");
    assert!(!is_leader(&standby.metrics), "only one leads");
    assert!(api_calls(&leader.metrics) > 0);
    assert_eq!(
        api_calls(&standby.metrics),
        0,
        "a standby makes no API calls"
    );
    assert!(
        !standby.metrics.encode().contains("pio_reconciles_total{"),
        "a standby does not reconcile"
    );
    let lease = h
        .fake
        .get("leases", "pim-system", "pio-test")
        .expect("the Lease exists");
    let holder = lease["spec"]["holderIdentity"]
        .as_str()
        .unwrap()
        .to_string();

    // Graceful shutdown of the leader releases the Lease; the standby takes over.
    let _ = leader.stop.take().unwrap().send(());
    let ended = tokio::time::timeout(Duration::from_secs(10), &mut leader.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(ended, Ended::Shutdown);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !is_leader(&standby.metrics) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "standby never took over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lease = h.fake.get("leases", "pim-system", "pio-test").unwrap();
    assert_ne!(
        lease["spec"]["holderIdentity"].as_str().unwrap_or_default(),
        holder
    );
    h.create("after-failover", aws_spec(99)).await;
    h.wait_ready("after-failover").await;
    assert!(api_calls(&standby.metrics) > 0, "the new leader reconciles");
    assert_eq!(
        h.remote().await.len(),
        6,
        "no duplicates across the handover"
    );
    let _ = standby.stop.take().unwrap().send(());
}

/// Once the Lease is taken by another replica, no Confluent write leaves this one: the client is
/// fenced the moment the loss is seen, before the controller winds down.
#[tokio::test]
async fn a_replica_that_loses_the_lease_sends_no_more_writes() {
    let mut h = Harness::new().await;
    h.crash().await;
    let replica = start_on(&h, "pio-fence", "replica-a");
    h.create("f0", aws_spec(0)).await;
    h.wait_ready("f0").await;
    assert!(is_leader(&replica.metrics));

    // Another replica takes the Lease (as after a partition: our renewals stopped landing).
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(h.client.clone(), "pim-system");
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(jiff::Timestamp::now());
    leases
        .patch(
            "pio-fence",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {
                "holderIdentity": "replica-b",
                "renewTime": now,
                "acquireTime": now,
                "leaseDurationSeconds": 60,
            }})),
        )
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(15), replica.task)
        .await
        .expect("the replica notices the loss")
        .unwrap()
        .unwrap();
    assert_eq!(ended, Ended::LostLeadership);
    // Any write this replica's client would still send is refused before it leaves.
    let before = h.em.state.count("v1_create");
    let creds = pio::pim::Credentials::new(KEY, SECRET);
    let body = create_body(7);
    let e = replica
        .pim
        .create(&creds, pio::pim::ApiVersion::V1, &body)
        .await
        .unwrap_err();
    assert_eq!(e, pio::pim::PimError::Fenced);
    assert_eq!(
        h.em.state.count("v1_create"),
        before,
        "nothing reached the API"
    );
    // Reads still work (a standby may look, never touch).
    replica
        .pim
        .list(&creds, pio::pim::ApiVersion::V1, ENV, Default::default())
        .await
        .unwrap();
}

/// Every Confluent call a replica sends, with the time it was sent.
#[derive(Default)]
struct Sent(std::sync::Mutex<Vec<(&'static str, tokio::time::Instant)>>);

impl pio::pim::RequestObserver for Sent {
    fn observe(&self, operation: &'static str, _status: Option<u16>, elapsed: Duration) {
        let sent = tokio::time::Instant::now() - elapsed;
        self.0.lock().unwrap().push((operation, sent));
    }
}

impl Sent {
    /// Writes (anything but a list or a get) sent at or after `t`.
    fn writes_after(&self, t: tokio::time::Instant) -> Vec<&'static str> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(op, at)| *at >= t && !["list", "get"].contains(op))
            .map(|(op, _)| *op)
            .collect()
    }
}

/// A replica on a runtime of its own, on one thread the test can block: a frozen process.
struct Frozen {
    handle: tokio::runtime::Handle,
    pim: PimClient,
    sent: Arc<Sent>,
    task: Option<tokio::task::JoinHandle<Result<Ended, leader::LeaderError>>>,
}

fn lease(name: &str, identity: &str) -> LeaseConfig {
    LeaseConfig {
        name: name.into(),
        namespace: "pim-system".into(),
        identity: identity.into(),
        duration: Duration::from_secs(3),
        grace: Duration::from_secs(1),
    }
}

/// A replica on `handle`, its kube client made by `client` with the fence's layer in its stack,
/// as `run` makes it.
fn replica_with(
    h: &Harness,
    client: impl FnOnce(&FenceLayer) -> kube::Client,
    lease_name: &str,
    identity: &str,
    handle: &tokio::runtime::Handle,
) -> Frozen {
    let sent = Arc::new(Sent::default());
    let fence = Arc::new(Fence::default());
    let pim = PimClient::new(&h.em.base_url, Duration::from_secs(5))
        .unwrap()
        .with_fence(fence.clone())
        .with_observer(sent.clone());
    let ctx = Arc::new(Context::new(
        client(&FenceLayer::new(fence)),
        pim.clone(),
        test_config(),
        Arc::new(Metrics::new()),
    ));
    let task = handle.spawn(leader::run_elected(
        ctx,
        lease(lease_name, identity),
        std::future::pending(),
    ));
    Frozen {
        handle: handle.clone(),
        pim,
        sent,
        task: Some(task),
    }
}

impl Frozen {
    /// Waits until this replica leads: its fence lets writes through.
    async fn leading(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        // A deadline ahead (no deadline at all: the elector has not started yet).
        while self
            .pim
            .fence()
            .deadline()
            .is_none_or(|d| d <= tokio::time::Instant::now())
        {
            assert!(tokio::time::Instant::now() < deadline, "never led");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A runtime on a thread of its own; dropped with the returned sender.
fn own_runtime() -> (tokio::runtime::Handle, std::sync::mpsc::Sender<()>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tx.send(rt.handle().clone()).unwrap();
        // Runs its tasks until the test is done with it.
        rt.block_on(async {
            while stop_rx.try_recv().is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    });
    (rx.recv().unwrap(), stop_tx)
}

async fn gcp_and_azure(h: &Harness) -> Vec<String> {
    let mut names = Vec::new();
    for i in 0..4 {
        let mut gcp = gcp_spec();
        gcp["displayName"] = serde_json::json!(format!("gcs-{i}"));
        h.create(&format!("gcp{i}"), gcp).await;
        let mut azure = azure_spec();
        azure["displayName"] = serde_json::json!(format!("blob-{i}"));
        h.create(&format!("azure{i}"), azure).await;
        names.extend([format!("gcp{i}"), format!("azure{i}")]);
    }
    names
}

/// The leader is frozen (its only thread blocked, as by SIGSTOP) with GCP and Azure resources
/// mid-flight, past its Lease; a standby takes over. When it thaws, its queued calls find the
/// fence closed by its own clock: not one Confluent write after its deadline (it sent 21 before
/// the fence ran on the local clock, the moment it was thawed). The standby finishes the work,
/// with one integration per resource.
#[ignore = "slow by design (seconds of real time): run by the README's test command (`-- --include-ignored`) and CI, not by a plain `cargo test`"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_leader_sends_no_write_after_its_deadline() {
    let mut em = emulator_config();
    em.faults.latency_ms = 300;
    let mut h = Harness::with(test_config(), em).await;
    h.crash().await;
    let (a_rt, _a_stop) = own_runtime();
    // A's requests to the API server, recorded on their way in.
    let a_kube = Arc::new(Sent::default());
    let recorded = a_kube.clone();
    let router = h.fake.router().layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let recorded = recorded.clone();
            async move {
                let write = req.method() != http::Method::GET;
                if write {
                    recorded
                        .0
                        .lock()
                        .unwrap()
                        .push(("kube write", tokio::time::Instant::now()));
                }
                next.run(req).await
            }
        },
    ));
    let mut a = replica_with(
        &h,
        |fence| ClientBuilder::new(router, NS).with_layer(fence).build(),
        "pio-freeze",
        "replica-a",
        &a_rt,
    );
    a.leading().await;
    let (b_rt, _b_stop) = own_runtime();
    let b = replica_with(
        &h,
        |fence| {
            ClientBuilder::new(h.fake.router(), NS)
                .with_layer(fence)
                .build()
        },
        "pio-freeze",
        "replica-b",
        &b_rt,
    );
    let names = gcp_and_azure(&h).await;
    h.wait_called("v2_create").await;

    // Freeze A for longer than the Lease lasts.
    let a_deadline = a.pim.fence().deadline().unwrap();
    a.handle
        .spawn(async { std::thread::sleep(Duration::from_secs(6)) });
    for name in &names {
        h.wait_ready(name).await;
    }
    // A has thawed by now (6 s), and had every chance to send what it had queued.
    tokio::time::sleep(Duration::from_secs(1)).await;
    handed_over(&h, &mut a, &b, a_deadline, a_deadline, &names).await;
    // Nor did A write to the API server after it (a status decided before the freeze, say).
    let late = a_kube.writes_after(a_deadline);
    assert!(
        late.is_empty(),
        "A wrote to Kubernetes after its deadline: {late:?}"
    );
}

/// The fence in the kube client's own stack: past the deadline it holds back any write, whoever
/// sends it (`write_slot` checks first, but a freeze may come between its check and the request
/// leaving), as `Error::Fenced`; reads and the elector's Lease writes pass.
#[tokio::test]
async fn the_client_stack_holds_back_writes_past_the_deadline() {
    let h = Harness::new().await;
    let fence = Arc::new(Fence::default());
    let client = ClientBuilder::new(h.fake.router(), NS)
        .with_layer(&FenceLayer::new(fence.clone()))
        .build();
    let api: Api<pio::crd::ProviderIntegration> = Api::namespaced(client.clone(), NS);
    let pi = |name: &str| -> pio::crd::ProviderIntegration {
        serde_json::from_value(fake_kube::as_kubectl_applied(
            "pim.confluent.cloud/v1alpha1",
            "ProviderIntegration",
            NS,
            name,
            aws_spec(1),
        ))
        .unwrap()
    };
    fence.close();
    let err = api
        .create(&Default::default(), &pi("late"))
        .await
        .unwrap_err();
    let err = pio::controller::Error::from(err);
    assert!(
        matches!(err, pio::controller::Error::Fenced),
        "held back as Fenced, not an API server failure: {err:?}"
    );
    assert!(h.fake.get("providerintegrations", NS, "late").is_none());
    api.list(&Default::default()).await.expect("reads pass");
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client, "pim-system");
    let lease = serde_json::from_value(json!({"metadata": {"name": "l"}})).unwrap();
    leases
        .create(&Default::default(), &lease)
        .await
        .expect("the elector's Lease writes pass");
    fence.allow_until(tokio::time::Instant::now() + Duration::from_secs(30));
    api.create(&Default::default(), &pi("in-time"))
        .await
        .expect("writes pass before the deadline");
}

/// After A's deadline: A sent no write, B did (from `b_from` on) and finished the work, A
/// stepped down, and there is one configured integration per resource.
async fn handed_over(
    h: &Harness,
    a: &mut Frozen,
    b: &Frozen,
    a_deadline: tokio::time::Instant,
    b_from: tokio::time::Instant,
    names: &[String],
) {
    let late = a.sent.writes_after(a_deadline);
    assert!(late.is_empty(), "A wrote after its deadline: {late:?}");
    assert!(
        !b.sent.writes_after(b_from).is_empty(),
        "B finished the work"
    );
    let ended = tokio::time::timeout(Duration::from_secs(10), a.task.take().unwrap())
        .await
        .expect("A steps down")
        .unwrap()
        .unwrap();
    assert_eq!(ended, Ended::LostLeadership);
    let remote = h.remote().await;
    assert_eq!(
        remote.len(),
        names.len(),
        "one integration each: {remote:#?}"
    );
    assert!(
        remote.iter().all(|r| r["status"] != "DRAFT"),
        "every integration configured: {remote:#?}"
    );
}

/// A TCP proxy in front of the API server that the test can cut, as a network partition does.
struct Proxy {
    url: String,
    task: tokio::task::JoinHandle<()>,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn to(upstream: &str) -> Self {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let conns = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                conns.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        Self {
            url,
            task,
            connections,
        }
    }

    /// Cuts every connection and accepts no more.
    fn cut(&self) {
        self.task.abort();
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

fn client_for(url: &str, fence: &FenceLayer) -> kube::Client {
    let mut config = kube::Config::new(url.parse().unwrap());
    config.default_namespace = NS.into();
    config.read_timeout = Some(Duration::from_secs(2));
    config.connect_timeout = Some(Duration::from_secs(1));
    ClientBuilder::try_from(config)
        .unwrap()
        .with_layer(fence)
        .build()
}

/// The leader loses the API server (its connection cut mid-wave): its renewals fail, and at its
/// deadline its fence closes by its own clock, whatever the Lease loop has noticed: no Confluent
/// write after it. The standby takes over and finishes, with one integration per resource.
#[ignore = "slow by design (seconds of real time): run by the README's test command (`-- --include-ignored`) and CI, not by a plain `cargo test`"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_sends_no_write_after_its_deadline() {
    let mut em = emulator_config();
    em.faults.latency_ms = 300;
    let mut h = Harness::with(test_config(), em).await;
    h.crash().await;
    let (url, _server) = h.fake.serve_http().await.unwrap();
    let proxy = Proxy::to(&url).await;
    let here = tokio::runtime::Handle::current();
    let mut a = replica_with(
        &h,
        |fence| client_for(&proxy.url, fence),
        "pio-cut",
        "replica-a",
        &here,
    );
    a.leading().await;
    let b = replica_with(
        &h,
        |fence| client_for(&url, fence),
        "pio-cut",
        "replica-b",
        &here,
    );
    let names = gcp_and_azure(&h).await;
    h.wait_called("v2_create").await;

    proxy.cut();
    let cut_at = tokio::time::Instant::now();
    // No renewal lands after the cut: this is A's deadline (a renewal in flight through the
    // proxy is cut with it).
    let a_deadline = a.pim.fence().deadline().unwrap();
    assert!(a_deadline <= cut_at + Duration::from_secs(3));
    for name in &names {
        h.wait_ready(name).await;
    }
    handed_over(&h, &mut a, &b, a_deadline, cut_at, &names).await;
}

/// The fence closes on the client's own clock, whatever the lease loop has noticed: once the
/// deadline has passed (here tokio's paused clock moves past it, as a thawed process finds its
/// clock moved on), a write is refused before it is sent, and a read still goes out.
#[tokio::test(start_paused = true)]
async fn the_fence_closes_at_its_deadline_without_anyone_closing_it() {
    pio::install_crypto_provider();
    // Nothing listens there: a write that got past the fence would fail to connect instead.
    let pim = PimClient::new("http://127.0.0.1:9", Duration::from_secs(1)).unwrap();
    let creds = pio::pim::Credentials::new(KEY, SECRET);
    let body = create_body(7);
    pim.fence()
        .allow_until(tokio::time::Instant::now() + Duration::from_secs(12));
    tokio::time::advance(Duration::from_secs(11)).await;
    let before = pim
        .create(&creds, pio::pim::ApiVersion::V1, &body)
        .await
        .unwrap_err();
    assert_ne!(
        before,
        pio::pim::PimError::Fenced,
        "allowed before the deadline"
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    let after = pim
        .create(&creds, pio::pim::ApiVersion::V1, &body)
        .await
        .unwrap_err();
    assert_eq!(after, pio::pim::PimError::Fenced);
    let read = pim
        .list(&creds, pio::pim::ApiVersion::V1, ENV, Default::default())
        .await
        .unwrap_err();
    assert_ne!(read, pio::pim::PimError::Fenced, "reads go on");
}

/// SIGTERM while a reconcile hangs on a call that will not answer for a minute: the shutdown is
/// cut short (the reconcile dropped after the 8 s grace, the whole process bounded by
/// `SHUTDOWN_LIMIT`), and the Lease is still released on the way out, so a standby takes over at
/// once instead of after the whole lease duration.
#[ignore = "slow by design (seconds of real time): run by the README's test command (`-- --include-ignored`) and CI, not by a plain `cargo test`"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_cut_short_still_releases_the_lease() {
    let mut em = emulator_config();
    em.faults.latency_ms = 60_000;
    let mut h = Harness::with(test_config(), em).await;
    h.crash().await;
    h.create("stuck", aws_spec(1)).await;
    let args = run_args(&[
        "--leader-election",
        "--pod-name",
        "replica-a",
        "--lease-name",
        "pio-cut-short",
        "--lease-namespace",
        "pim-system",
        "--api-url",
        &h.em.base_url,
        "--api-timeout",
        "120s",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(pio::run::run_with(
        args,
        h.client.clone(),
        Default::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let holder = |h: &Harness| {
        h.fake
            .get("leases", "pim-system", "pio-cut-short")
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(String::from))
    };
    // Leading; then its reconcile's first call hangs on the emulator (answered in a minute).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while holder(&h).as_deref() != Some("replica-a") {
        assert!(tokio::time::Instant::now() < deadline, "never led");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let asked = tokio::time::Instant::now();
    let _ = stop.send(());
    let ended = tokio::time::timeout(Duration::from_secs(15), operator)
        .await
        .expect("the shutdown is bounded")
        .unwrap();
    let took = asked.elapsed();
    assert!(ended.is_ok(), "{ended:?}");
    let grace = pio::controller::Config::default().shutdown_grace;
    assert!(
        took >= grace && took <= pio::run::SHUTDOWN_LIMIT + Duration::from_secs(1),
        "the hung reconcile was cut short, within the limit: {took:?}"
    );
    assert_eq!(holder(&h), None, "the Lease was released on the way out");
}
