//! provider-integration-operator: manages Confluent Cloud provider integrations from Kubernetes.

pub mod cli;
pub mod controller;
pub mod crd;
pub mod emulator;
pub mod leader;
pub mod metrics;
pub mod pim;
pub mod rbac;
pub mod run;
pub mod telemetry;
/// rustls needs one process-wide crypto provider; we use ring (as kube does) to keep the build
/// free of C toolchains. Safe to call more than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Resolves on Ctrl-C or SIGTERM, whichever comes first.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
