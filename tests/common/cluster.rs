//! A real cluster for the end-to-end tests (`tests/e2e*.rs`): the client `KUBECONFIG` names, or
//! the reason to skip; `kubectl`, run without blocking the runtime; CRDs installed for a test
//! only where missing, and removed only by the test that installed them.

use std::time::Duration;

use std::sync::Arc;

use k8s_openapi::{
    api::core::v1::{Namespace, Secret},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use pio::{
    controller::{self, Config, Context},
    crd::ProviderIntegration,
    emulator::{self, EmulatorConfig, EmulatorHandle},
    metrics::Metrics,
    pim::PimClient,
};
use serde_json::json;
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

/// A fresh namespace for one test, labelled as the e2e tests' own.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let ns = format!("{prefix}-{:08x}", fastrand::u32(..));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": ns, "labels": {"app.kubernetes.io/created-by": "pio-e2e"}}})).unwrap())
        .await
        .unwrap();
    ns
}

/// Deletes a test's namespace, whatever happened: finalizers first, so it cannot hang.
pub async fn clean_up(client: &Client, ns: &str) {
    let api: Api<ProviderIntegration> = Api::namespaced(client.clone(), ns);
    if let Ok(list) = api.list(&ListParams::default()).await {
        for pi in list {
            let _ = api
                .patch(
                    &pi.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                )
                .await;
        }
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces.delete(ns, &DeleteParams::default()).await;
}

/// The operator under test, in this process, watching only `ns`, against an emulator on
/// loopback whose demo key is the Secret `pim-creds` in `ns`.
pub struct Operator {
    pub em: EmulatorHandle,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Operator {
    pub async fn start(client: &Client, ns: &str, config: Config) -> Self {
        let em = emulator::spawn_local(EmulatorConfig::default())
            .await
            .unwrap();
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        secrets
            .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "pim-creds"},
                "stringData": {"apiKey": emulator::DEMO_API_KEY, "apiSecret": emulator::DEMO_API_SECRET}})).unwrap())
            .await
            .unwrap();
        let metrics = Arc::new(Metrics::new());
        let config = Config {
            namespaces: vec![ns.to_string()],
            ..config
        };
        let pim = PimClient::new(&em.base_url, Duration::from_secs(5))
            .unwrap()
            .with_observer(metrics.clone());
        let ctx = Arc::new(Context::new(client.clone(), pim, config, metrics));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(controller::run(ctx, async {
            let _ = stopped.await;
        }));
        Self { em, stop, task }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(15), self.task).await;
    }
}

/// Polls `name` until `f` holds (60 s at most), as a user watching it would.
pub async fn wait_for(
    api: &Api<ProviderIntegration>,
    name: &str,
    what: &str,
    f: impl Fn(&ProviderIntegration) -> bool,
) -> ProviderIntegration {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let pi = api.get_opt(name).await.unwrap();
        if let Some(pi) = &pi
            && f(pi)
        {
            return pi.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {name} to be {what}: {:#?}",
            pi.map(|p| p.status)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `kubectl wait --for=delete`, as a user or a GitOps tool would.
pub async fn wait_deleted(ns: &str, resource: &str) {
    let (ok, out) = kubectl(&["wait", "-n", ns, "--for=delete", resource, "--timeout=60s"]).await;
    assert!(ok, "{resource} not deleted: {out}");
}
