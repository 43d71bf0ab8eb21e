//! Issue 29: the line of reconcile requests never strands a resource, and an overloaded API
//! server is not hammered.

mod common;

use std::time::Duration;

use common::*;
use kube::api::DeleteParams;
use pio::controller::Config;

fn one_at_a_time() -> Config {
    Config {
        concurrency: 1,
        ..test_config()
    }
}

/// A request handed to kube's scheduler whose resource went in a relist (deleted while the
/// watch was down, so no delete event) is dropped by kube unstarted. The resource, re-created
/// under the same name, must still be reconciled: it used to be taken for the request already
/// handed over, and was never reconciled at all.
#[tokio::test]
async fn a_resource_recreated_across_a_relist_is_reconciled() {
    let mut em = emulator_config();
    em.faults.latency_ms = 700;
    let h = Harness::with(one_at_a_time(), em).await;
    h.create("r0", aws_spec(0)).await;
    h.wait_called("v1_list").await;
    // r0 holds the one place; r1 waits in kube's scheduler.
    h.create("r1", aws_spec(1)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    // The watch goes down; meanwhile r1 is deleted, and the history is compacted, so the
    // watch comes back with a relist that no longer holds r1 (and says nothing of its delete).
    let watch_path = "/providerintegrations$";
    h.fake
        .fail_next(http::Method::GET, watch_path, 1_000_000, 500);
    h.fake.close_watches("providerintegrations");
    h.api()
        .delete("r1", &DeleteParams::default())
        .await
        .unwrap();
    h.fake.compact("providerintegrations");
    h.fake.clear_faults();
    // r0 finishes; kube then takes r1's request and finds nothing to reconcile.
    h.wait_ready("r0").await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    h.create("r1", aws_spec(1)).await;
    let r1 = h.wait_ready("r1").await;
    assert!(r1.status.unwrap().id.is_some());
    assert_eq!(h.remote().await.len(), 2);
}
