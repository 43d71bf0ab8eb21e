//! A panic ends the run it happens in. Alone in its own test binary: the panic hook is the
//! process's, so a panic here would end any other test's run beside it.

mod common;

use std::time::Duration;

use common::*;

/// A panic ends a run (its Lease released on the way out), but only a panic during that run: one
/// from before (caught, or an earlier run's) used to be kept by the signal, a `Notify`'s stored
/// permit, and ended the next run at once with "a task panicked".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_before_the_run_does_not_end_it() {
    let h = Harness::new().await;
    let run = |stop_after: Duration| {
        let args = run_args(&["--api-url", &h.em.base_url, "--metrics-addr", "127.0.0.1:0"]);
        pio::run::run_with(
            args,
            h.client.clone(),
            Default::default(),
            tokio::time::sleep(stop_after),
        )
    };
    // The first run sets the process's panic hook.
    run(Duration::from_millis(200)).await.unwrap();
    let caught = std::panic::catch_unwind(|| panic!("caught before the second run"));
    assert!(caught.is_err());
    let second = run(Duration::from_millis(500)).await;
    assert!(second.is_ok(), "{second:?}");
}
