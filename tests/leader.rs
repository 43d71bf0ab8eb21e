//! Leader election against the fake API server: two instances, one Lease, one reconciler.

mod common;

use std::{sync::Arc, time::Duration};

use common::*;
use pio::{
    controller::Context,
    leader::{self, Ended, LeaseConfig},
    metrics::Metrics,
    pim::PimClient,
};

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
    let body = pio::pim::CreateIntegration {
        display_name: "late".into(),
        provider: "AWS".into(),
        config: Some(pio::pim::WriteConfig::Aws {
            customer_iam_role_arn: arn(7),
        }),
        environment: pio::pim::EnvId { id: ENV.into() },
    };
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
