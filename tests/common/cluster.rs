//! A real cluster for the end-to-end tests (`tests/e2e*.rs`): the client `KUBECONFIG` names, or
//! the reason to skip; `kubectl`, run without blocking the runtime; CRDs installed for a test
//! only where missing, and removed only by the test that installed them.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{DeleteParams, PostParams},
};
use tokio::process::Command;

/// A client for the cluster named by KUBECONFIG, or the reason to skip.
pub async fn cluster() -> Result<Client, String> {
    let path = std::env::var("KUBECONFIG").map_err(|_| {
        if std::env::var_os("TEST_ASSET_KUBE_APISERVER").is_some() {
            "TEST_ASSET_KUBE_APISERVER is set, but starting a control plane from envtest binaries is not supported yet; start it and set KUBECONFIG".to_string()
        } else {
            "KUBECONFIG is not set".to_string()
        }
    })?;
    pio::install_crypto_provider();
    let config = kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| format!("KUBECONFIG={path} is not usable: {e}"))?;
    let client = Client::try_from(config).map_err(|e| format!("cannot build a client: {e}"))?;
    tokio::time::timeout(Duration::from_secs(10), client.apiserver_version())
        .await
        .map_err(|_| format!("the cluster in {path} did not answer within 10 s"))?
        .map_err(|e| format!("the cluster in {path} is not reachable: {e}"))?;
    Ok(client)
}

pub async fn kubectl(args: &[&str]) -> (bool, String) {
    match Command::new("kubectl").args(args).output().await {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, format!("kubectl not runnable: {e}")),
    }
}

/// Installs `crd` unless the cluster has it (then it is used as it is), and waits for it to be
/// established. Returns whether this test installed it (and so should remove it).
pub async fn ensure_crd(client: &Client, crd: CustomResourceDefinition) -> bool {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.metadata.name.clone().unwrap_or_default();
    let installed = match crds.get_opt(&name).await.unwrap() {
        Some(_) => {
            println!("using the installed CRD {name} as it is");
            false
        }
        None => {
            println!("no {name} installed: installing it for the test");
            crds.create(&PostParams::default(), &crd).await.unwrap();
            true
        }
    };
    let (ok, out) = kubectl(&[
        "wait",
        "--for=condition=Established",
        &format!("crd/{name}"),
        "--timeout=60s",
    ])
    .await;
    assert!(ok, "CRD {name} not established: {out}");
    installed
}

/// Removes a CRD this test installed, unless objects of it are left anywhere.
pub async fn remove_crd(client: &Client, name: &str, left: usize) {
    if left == 0 {
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let _ = crds.delete(name, &DeleteParams::default()).await;
    }
}

/// The `ProviderIntegration`s of `examples/`, in one file for `kubectl apply -f` (the trust
/// examples' other objects left out: they need their cloud operators' CRDs).
pub fn provider_integrations_of_examples() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut out = String::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    for f in files {
        let docs: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(&std::fs::read_to_string(&f).unwrap()).unwrap();
        for d in docs.iter().filter(|d| d["kind"] == "ProviderIntegration") {
            out.push_str(&serde_saphyr::to_string(d).unwrap());
            out.push_str("\n---\n");
        }
    }
    let path =
        std::env::temp_dir().join(format!("pio-e2e-examples-{:08x}.yaml", fastrand::u32(..)));
    std::fs::write(&path, out).unwrap();
    path.to_string_lossy().into_owned()
}
