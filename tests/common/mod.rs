//! Test harness: the fake Kubernetes API (in-process, via `Client::new(service)`) plus the PIM
//! emulator over loopback HTTP, with the real controller running against both.
#![allow(dead_code)]

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use pio::{
    controller::{self, Config, Context},
    crd::ProviderIntegration,
    emulator::{self, ApiKey, EmulatorConfig, EmulatorHandle},
    metrics::Metrics,
    pim::PimClient,
};
use serde_json::{Value, json};

pub mod cel_rules;
pub mod cloud_crds;
pub mod cluster;
pub mod contract;
pub mod fake_kube;
pub use fake_kube::FakeKube;

pub const NS: &str = "apps";
pub const KEY: &str = "TESTKEY";
pub const SECRET: &str = "test-secret";
pub const RO_KEY: &str = "READONLY";
pub const RO_SECRET: &str = "ro-secret";
pub const ENV: &str = "env-abc123";

pub fn arn(i: usize) -> String {
    format!("arn:aws:iam::123456789012:role/connector-role-{i}")
}

pub struct Harness {
    pub fake: FakeKube,
    pub client: kube::Client,
    pub em: EmulatorHandle,
    pub http: reqwest::Client,
    pub metrics: Arc<Metrics>,
    pub config: Config,
    /// The running controller's readiness flag (`/readyz`).
    pub ready: Arc<std::sync::atomic::AtomicBool>,
    /// The running controller's shared state.
    ctx: Option<Arc<Context>>,
    controller: Option<(
        tokio::task::JoinHandle<()>,
        tokio::sync::oneshot::Sender<()>,
    )>,
}

pub fn test_config() -> Config {
    Config {
        resync: Duration::from_secs(300),
        concurrency: 16,
        retry_base: Duration::from_millis(50),
        retry_max: Duration::from_secs(1),
        stall_retry: Duration::from_millis(200),
        ..Default::default()
    }
}

/// Waits up to `within` for `done`, failing with `what` and the last value of `state`.
pub async fn eventually<T: std::fmt::Debug>(
    within: Duration,
    what: &str,
    mut state: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let now = state();
        if done(&now) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {now:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The arguments of `run`, parsed as the binary parses them.
pub fn run_args(flags: &[&str]) -> pio::cli::RunArgs {
    let argv = ["provider-integration-operator", "run"]
        .into_iter()
        .chain(flags.iter().copied());
    match <pio::cli::Cli as clap::Parser>::parse_from(argv).command {
        pio::cli::Command::Run(a) => a,
        other => panic!("{other:?}"),
    }
}

/// A create the tests send by hand (to see it fenced, say).
pub fn create_body(role: usize) -> pio::pim::CreateIntegration {
    pio::pim::CreateIntegration {
        display_name: "late".into(),
        provider: "AWS".into(),
        config: Some(pio::pim::WriteConfig::Aws {
            customer_iam_role_arn: arn(role),
        }),
        environment: pio::pim::EnvId { id: ENV.into() },
    }
}

/// The harness's key as the operator's default credentials (granted per namespace).
pub fn default_credentials_config() -> Config {
    Config {
        default_credentials: controller::DefaultCredentials::Static(pio::pim::Credentials::new(
            KEY, SECRET,
        )),
        ..test_config()
    }
}

pub fn emulator_config() -> EmulatorConfig {
    EmulatorConfig {
        keys: vec![
            ApiKey::parse(&format!("{KEY}:{SECRET}"), false).unwrap(),
            ApiKey::parse(&format!("{RO_KEY}:{RO_SECRET}"), true).unwrap(),
        ],
        ..Default::default()
    }
}

impl Harness {
    pub async fn new() -> Self {
        Self::with(test_config(), emulator_config()).await
    }

    /// A harness whose API traffic is held to Confluent's published contract: when it is
    /// dropped, every request the operator sent and every answer the emulator gave must match
    /// `../shared/confluent-api/` (where it is present: `contract::dir`).
    pub async fn with(config: Config, mut em: EmulatorConfig) -> Self {
        em.record_exchanges = true;
        pio::install_crypto_provider();
        let fake = FakeKube::new();
        let client = fake.client(NS);
        let em = emulator::spawn_local(em).await.unwrap();
        let mut h = Self {
            fake,
            client,
            em,
            http: reqwest::Client::new(),
            metrics: Arc::new(Metrics::new()),
            config,
            ready: Arc::default(),
            ctx: None,
            controller: None,
        };
        h.put_secret("pim-creds", KEY, SECRET).await;
        h.start();
        h
    }

    /// Starts a controller with fresh in-memory state (as after a restart).
    pub fn start(&mut self) {
        // As `run` builds it: the ceiling of calls in flight is the concurrency.
        let pim = PimClient::new(&self.em.base_url, Duration::from_secs(5))
            .unwrap()
            .with_concurrency(usize::from(self.config.concurrency))
            .with_observer(self.metrics.clone());
        let ctx = Arc::new(Context::new(
            self.client.clone(),
            pim,
            self.config.clone(),
            self.metrics.clone(),
        ));
        self.ready = ctx.ready.clone();
        self.ctx = Some(ctx.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(controller::run(ctx, async {
            let _ = rx.await;
        }));
        self.controller = Some((task, tx));
    }

    /// The running (or last started) controller's shared state.
    pub fn ctx(&self) -> Arc<Context> {
        self.ctx.clone().expect("a controller was started")
    }

    /// Kills the controller at once, like a crash.
    pub async fn crash(&mut self) {
        if let Some((task, _)) = self.controller.take() {
            task.abort();
            let _ = task.await;
        }
    }

    pub async fn put_secret(&self, name: &str, key: &str, secret: &str) {
        self.put_secret_in(NS, name, key, secret).await;
    }

    pub async fn put_secret_in(&self, ns: &str, name: &str, key: &str, secret: &str) {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let s: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name},
            "data": {"apiKey": b64(key), "apiSecret": b64(secret)},
        }))
        .unwrap();
        let _ = api.delete(name, &DeleteParams::default()).await;
        api.create(&PostParams::default(), &s).await.unwrap();
    }

    pub async fn delete_secret(&self, name: &str) {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), NS);
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }

    pub fn api(&self) -> Api<ProviderIntegration> {
        Api::namespaced(self.client.clone(), NS)
    }

    /// Creates a resource the way `kubectl apply` does the first time: a POST by the manager
    /// `kubectl-client-side-apply`, carrying the last-applied annotation, so stored objects have
    /// a real server's shape (`managedFields` and the annotation).
    pub async fn create(&self, name: &str, spec: Value) -> ProviderIntegration {
        self.create_in(NS, name, spec).await
    }

    /// A Namespace, with annotations (as a platform team would set them).
    pub async fn namespace(&self, name: &str, annotations: Value) {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        let ns = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "annotations": annotations},
        }))
        .unwrap();
        api.create(&PostParams::default(), &ns).await.unwrap();
    }

    pub fn api_in(&self, ns: &str) -> Api<ProviderIntegration> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub fn get_in(&self, ns: &str, name: &str) -> Option<ProviderIntegration> {
        self.fake
            .get("providerintegrations", ns, name)
            .map(|v| serde_json::from_value(v).unwrap())
    }

    /// `create` in another namespace.
    pub async fn create_in(&self, ns: &str, name: &str, spec: Value) -> ProviderIntegration {
        let obj = fake_kube::as_kubectl_applied(
            "pim.confluent.cloud/v1alpha1",
            "ProviderIntegration",
            ns,
            name,
            spec,
        );
        let pi: ProviderIntegration = serde_json::from_value(obj).unwrap();
        let pp = PostParams {
            field_manager: Some(fake_kube::KUBECTL_MANAGER.into()),
            ..Default::default()
        };
        self.api_in(ns).create(&pp, &pi).await.unwrap()
    }

    /// Sets (`"true"`) or removes (`null`) the `pim.confluent.cloud/paused` annotation of a
    /// resource, as `kubectl annotate` does.
    pub async fn set_paused(&self, ns: &str, name: &str, value: Value) {
        let patch = json!({"metadata": {"annotations": {"pim.confluent.cloud/paused": value}}});
        self.api_in(ns)
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap();
    }

    pub async fn patch_spec(&self, name: &str, spec: Value) {
        self.api()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": spec})),
            )
            .await
            .unwrap();
    }

    pub async fn delete(&self, name: &str) {
        self.api()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }

    /// Resources Ready now, in every namespace.
    pub fn ready_count(&self) -> usize {
        self.fake
            .list("providerintegrations")
            .into_iter()
            .filter_map(|v| serde_json::from_value::<ProviderIntegration>(v).ok())
            .filter(|p| p.is_ready())
            .count()
    }

    pub fn get(&self, name: &str) -> Option<ProviderIntegration> {
        self.fake
            .get("providerintegrations", NS, name)
            .map(|v| serde_json::from_value(v).unwrap())
    }

    /// Waits until `f` holds for the resource, or panics with its last state.
    pub async fn wait(
        &self,
        name: &str,
        what: &str,
        f: impl Fn(&ProviderIntegration) -> bool,
    ) -> ProviderIntegration {
        self.wait_in(NS, name, what, f).await
    }

    /// `wait`, for a resource in another namespace.
    pub async fn wait_in(
        &self,
        ns: &str,
        name: &str,
        what: &str,
        f: impl Fn(&ProviderIntegration) -> bool,
    ) -> ProviderIntegration {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(pi) = self.get_in(ns, name)
                && f(&pi)
            {
                return pi;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for {ns}/{name} to be {what}; last state: {:#?}",
                    self.get_in(ns, name).map(|p| p.status)
                );
            }
            self.fake.wait_change(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_ready(&self, name: &str) -> ProviderIntegration {
        self.wait(name, "Ready", |p| p.is_ready()).await
    }

    pub async fn wait_condition(&self, name: &str, ty: &str, reason: &str) -> ProviderIntegration {
        self.wait(name, &format!("{ty}={reason}"), |p| {
            p.condition(ty).is_some_and(|c| {
                c.status == "True"
                    && c.reason == reason
                    && c.observed_generation == p.metadata.generation
            })
        })
        .await
    }

    pub async fn wait_gone(&self, name: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while self.get(name).is_some() {
            if tokio::time::Instant::now() > deadline {
                panic!("{name} was not deleted; last state: {:#?}", self.get(name));
            }
            self.fake.wait_change(Duration::from_millis(50)).await;
        }
    }

    /// Events about a resource as (type, reason, note).
    pub fn events(&self, name: &str) -> Vec<(String, String, String)> {
        self.fake
            .list("events")
            .into_iter()
            .filter(|e| e["regarding"]["name"] == name)
            .map(|e| {
                (
                    e["type"].as_str().unwrap_or_default().to_string(),
                    e["reason"].as_str().unwrap_or_default().to_string(),
                    e["note"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    pub fn has_event(&self, name: &str, ty: &str, reason: &str) -> bool {
        self.events(name)
            .iter()
            .any(|(t, r, _)| t == ty && r == reason)
    }

    /// Every integration the emulator holds.
    pub async fn remote(&self) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!("{}/_emulator/integrations", self.em.base_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["integration"].clone())
            .collect()
    }

    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> u16 {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.em.base_url));
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap().status().as_u16()
    }

    /// Creates an integration directly through the API, as another tool would.
    pub async fn create_remote(&self, name: &str, arn: &str) -> Value {
        let r = self
            .http
            .post(format!("{}/pim/v1/integrations", self.em.base_url))
            .basic_auth(KEY, Some(SECRET))
            .json(&json!({"display_name": name, "provider": "AWS",
                "config": {"kind": "AwsIntegrationConfig", "customer_iam_role_arn": arn},
                "environment": {"id": ENV}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json().await.unwrap()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some((task, _)) = self.controller.take() {
            task.abort();
        }
        if !std::thread::panicking()
            && let Some(c) = contract::shared()
        {
            c.assert_kept(&self.em.state.exchanges(), true);
        }
    }
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

pub fn aws_spec(i: usize) -> Value {
    json!({
        "environment": ENV,
        "provider": "AWS",
        "aws": {"customerIamRoleArn": arn(i)},
        "credentialsRef": {"name": "pim-creds"},
    })
}

pub const GCP_SA: &str = "connectors@my-project.iam.gserviceaccount.com";
pub const AZURE_TENANT: &str = "7f3c2a9e-1b4d-4c8e-9a6f-2d5b8e1c0f47";

pub fn gcp_spec() -> Value {
    json!({
        "environment": ENV,
        "provider": "GCP",
        "gcp": {"customerGoogleServiceAccount": GCP_SA},
        "credentialsRef": {"name": "pim-creds"},
    })
}

pub fn azure_spec() -> Value {
    json!({
        "environment": ENV,
        "provider": "Azure",
        "azure": {"customerAzureTenantId": AZURE_TENANT},
        "credentialsRef": {"name": "pim-creds"},
    })
}

impl Harness {
    /// Tells the emulator the customer granted (or revoked) Confluent's access to integration `id`.
    pub async fn grant_access(&self, id: &str, granted: bool) {
        let code = self
            .admin(
                reqwest::Method::PUT,
                &format!("/_emulator/integrations/{id}/access"),
                Some(json!({ "granted": granted })),
            )
            .await;
        assert_eq!(code, 204, "grant access to {id}");
    }

    /// Makes the emulator fail the next `count` calls of an operation (e.g. `v2_update`).
    pub async fn fail_next(&self, operation: &str, count: u32, status: u16) {
        let code = self
            .admin(
                reqwest::Method::POST,
                "/_emulator/faults/fail-next",
                Some(json!({"operation": operation, "count": count, "status": status})),
            )
            .await;
        assert_eq!(code, 204);
    }

    /// Waits until the emulator has served a call of `operation` (e.g. `v2_create`).
    pub async fn wait_called(&self, operation: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.em.state.count(operation) == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{operation} never happened"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn configmap(&self, name: &str) -> Option<Value> {
        self.fake.get("configmaps", NS, name)
    }

    /// Reconciles the operator has finished so far.
    pub fn reconciles(&self) -> u64 {
        self.metrics.reconciles()
    }

    /// Waits until the operator has finished `n` reconciles after `since` (a `reconciles()`
    /// taken before): what shows it looked again and did nothing, where a sleep would only hope
    /// it had looked.
    pub async fn wait_reconciles(&self, since: u64, n: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while self.reconciles() < since + n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} reconciles of {n} within 20 s",
                self.reconciles() - since
            );
            self.fake.wait_change(Duration::from_millis(20)).await;
        }
    }

    /// Changes an annotation of the resource that the operator does not read: a watch event, so
    /// one more reconcile, which this waits for. "Nothing more happened" is then shown by what
    /// that reconcile did not do.
    pub async fn touch(&self, name: &str) {
        let before = self.reconciles();
        let n = before.to_string();
        self.api()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {"test.example/touched": n}}})),
            )
            .await
            .unwrap();
        self.wait_reconciles(before, 1).await;
    }

    /// Waits until the fake API server has served `n` requests labelled `what` (such as
    /// `PATCH providerintegrations/status`).
    pub async fn wait_requests(&self, what: &str, n: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while self.fake.requests().get(what).copied().unwrap_or(0) < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "fewer than {n} {what}"
            );
            self.fake.wait_change(Duration::from_millis(20)).await;
        }
    }

    /// Waits for a condition of the current generation to have `status`.
    pub async fn wait_status(&self, name: &str, ty: &str, status: &str) -> ProviderIntegration {
        self.wait(name, &format!("{ty}={status}"), |p| {
            p.condition(ty).is_some_and(|c| {
                c.status == status && c.observed_generation == p.metadata.generation
            })
        })
        .await
    }
}
