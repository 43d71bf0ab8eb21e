//! What only shows against a real API server's semantics: watch delivery that lags behind the
//! operator's own writes, and server-side apply removing the fields a manager stops sending.
//! The in-memory API server models both (`tests/common/fake_kube.rs`).

mod common;

use std::time::Duration;

use common::*;
use pio::crd::STALLED;

/// A reconcile on a copy from before our own writes must never erase the recorded id: that is how
/// an integration leaked on a real cluster (issue 11). The watch lags 150 ms behind every write, so
/// each of our writes triggers a reconcile on a copy older than the last one we made.
#[tokio::test]
async fn a_stale_copy_never_erases_the_recorded_id() {
    let h = Harness::new().await;
    h.fake.set_watch_lag(Duration::from_millis(150));
    h.create("orders", aws_spec(1)).await;
    let ready = h.wait_ready("orders").await;
    let id = ready.status.unwrap().id.unwrap();
    // Let every lagging event arrive and its reconcile run on its stale copy.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pi = h.get("orders").unwrap();
    let st = pi.status.clone().unwrap();
    assert_eq!(st.id.as_deref(), Some(id.as_str()), "{st:#?}");
    assert!(
        pi.condition(STALLED).is_some_and(|c| c.status == "False"),
        "{st:#?}"
    );
    assert!(
        !h.has_event("orders", "Warning", "AlreadyExists"),
        "{:?}",
        h.events("orders")
    );
    assert_eq!(h.remote().await.len(), 1);
    // And deleting it deletes the integration: nothing leaks.
    h.delete("orders").await;
    h.wait_gone("orders").await;
    assert!(
        h.remote().await.is_empty(),
        "leaked: {:?}",
        h.remote().await
    );
}
