//! The reconcile loop: event → credentials → observe remote → decide → one API call → one status
//! patch. It turns `pim` errors into condition reasons and requeue delays; HTTP details stay in
//! `pim`, judgement stays in `decide`.

pub mod decide;
pub mod outputs;
pub mod remote;

use std::{
    borrow::Cow,
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::{api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::Time};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        Controller,
        controller::Action,
        events::{Event as KubeEvent, EventType, Recorder, Reporter},
        finalizer::{Event as Finalizer, finalizer},
        watcher,
    },
};
use serde_json::json;
use tracing::{info, warn};

use crate::crd::{
    CloudProvider, CondState, FINALIZER, ProviderIntegration, ProviderIntegrationStatus, VALIDATED,
    conditions, set_condition,
};
use crate::pim::{ApiVersion, Credentials, ErrorClass, Integration, PimClient, PimError};
use decide::{Action as Decision, Cleanup, Desired, Lookup, Observed, Refusal, api_version};
use remote::RemoteCache;

/// The field manager of our status writes.
pub const MANAGER: &str = "provider-integration-operator";

/// Where credentials come from when a resource has no `credentialsRef`.
#[derive(Clone, Debug, Default)]
pub enum DefaultCredentials {
    #[default]
    None,
    /// From the operator's environment (`CONFLUENT_CLOUD_API_KEY` / `..._SECRET`).
    Static(Credentials),
    /// From a Secret with keys `apiKey` and `apiSecret`.
    Secret { namespace: String, name: String },
}

/// Tunables of the controller.
#[derive(Clone, Debug)]
pub struct Config {
    /// How often a Ready integration is checked against Confluent Cloud.
    pub resync: Duration,
    /// Resources reconciled in parallel.
    pub concurrency: u16,
    pub default_credentials: DefaultCredentials,
    /// Only watch these namespaces (all when empty).
    pub namespaces: Vec<String>,
    /// The pod name, to tell replicas apart in events.
    pub instance: Option<String>,
    /// First retry delay after a transient error; doubles up to `retry_max`.
    pub retry_base: Duration,
    /// Longest retry delay after transient errors (deletion retries may wait up to 2.5×).
    pub retry_max: Duration,
    /// First re-check of a stalled resource (Secrets and quotas change without an event here);
    /// doubles up to the resync period.
    pub stall_retry: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(300),
            concurrency: 64,
            default_credentials: DefaultCredentials::None,
            namespaces: Vec::new(),
            instance: None,
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(120),
            stall_retry: Duration::from_secs(30),
        }
    }
}

/// Errors that end a reconcile; `error_policy` requeues them.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    /// Deletion must wait (in use, API unavailable); the finalizer stays.
    #[error("deletion pending: {message}")]
    DeletionPending { message: String, retry_in: Duration },
    #[error("{0}")]
    Finalizer(Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    fn retry_in(&self) -> Option<Duration> {
        match self {
            Error::DeletionPending { retry_in, .. } => Some(*retry_in),
            Error::Finalizer(f) => match f.as_ref() {
                kube::runtime::finalizer::Error::CleanupFailed(e)
                | kube::runtime::finalizer::Error::ApplyFailed(e) => e.retry_in(),
                _ => None,
            },
            Error::Kube(_) => None,
        }
    }
}

/// Why credentials could not be loaded; each is something a user must fix.
#[derive(thiserror::Error, Debug)]
pub enum CredentialsError {
    #[error("Secret {namespace}/{name} not found")]
    SecretNotFound { namespace: String, name: String },
    #[error("Secret {namespace}/{name} has no non-empty key \"{key}\"")]
    MissingKey {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("no credentialsRef and the operator has no default credentials")]
    NoDefault,
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// Shared state of all reconciles.
pub struct Context {
    pub client: Client,
    pub pim: PimClient,
    pub config: Config,
    pub cache: RemoteCache,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Ready to serve (`/readyz`): a standby replica, or a controller whose caches have synced.
    pub ready: Arc<std::sync::atomic::AtomicBool>,
    recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
    /// Last credentials that worked per resource uid, so a deletion still works when the Secret
    /// went first (as it does when a whole namespace is deleted).
    last_credentials: Mutex<HashMap<String, Credentials>>,
    /// Secrets read in the last `SECRET_TTL`, so a burst of reconciles reads each Secret once.
    secrets: Mutex<HashMap<SecretKey, (std::time::Instant, Credentials)>>,
    /// When each resource's integration is next validated, per uid. Our own status writes
    /// trigger reconciles; this keeps them from validating again.
    validations: Mutex<HashMap<String, ValidationDue>>,
}

/// The next validation of one resource: due at `due` unless its generation or id changes.
struct ValidationDue {
    generation: Option<i64>,
    id: String,
    due: std::time::Instant,
    /// Failed validations in a row (of this id), for the backoff.
    failures: u32,
}

/// (namespace, name, key field, secret field)
type SecretKey = (String, String, String, String);

/// How long a Secret read is reused. Short, so a rotated key is picked up within seconds; a
/// cached key that the API rejects is dropped at once.
const SECRET_TTL: Duration = Duration::from_secs(5);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The delay after the `n`th failure in a row (n ≥ 1): `base` doubling up to `cap`, ±20% jitter.
fn backoff_delay(n: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base
        .saturating_mul(1u32 << n.saturating_sub(1).min(16))
        .min(cap);
    exp.mul_f64(0.8 + fastrand::f64() * 0.4)
}

impl Context {
    pub fn new(
        client: Client,
        pim: PimClient,
        config: Config,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance: config.instance.clone(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            pim,
            config,
            cache: RemoteCache::default(),
            metrics,
            ready: Arc::default(),
            failures: Mutex::default(),
            last_credentials: Mutex::default(),
            secrets: Mutex::default(),
            validations: Mutex::default(),
        }
    }

    /// Exponential backoff with ±20% jitter per resource, reset by `succeeded`.
    fn backoff(&self, pi: &ProviderIntegration, base: Duration, cap: Duration) -> Duration {
        let n = {
            let mut f = lock(&self.failures);
            let n = f.entry(pi.uid().unwrap_or_default()).or_default();
            *n = n.saturating_add(1);
            *n
        };
        backoff_delay(n, base, cap)
    }

    fn succeeded(&self, pi: &ProviderIntegration) {
        lock(&self.failures).remove(&pi.uid().unwrap_or_default());
    }

    /// Forgets everything kept about a resource that is gone.
    fn forget(&self, pi: &ProviderIntegration) {
        let uid = pi.uid().unwrap_or_default();
        lock(&self.failures).remove(&uid);
        lock(&self.validations).remove(&uid);
        lock(&self.last_credentials).remove(&uid);
    }

    fn resync_delay(&self) -> Duration {
        self.config.resync.mul_f64(0.9 + fastrand::f64() * 0.2)
    }

    async fn read_secret(
        &self,
        namespace: &str,
        name: &str,
        key_field: &str,
        secret_field: &str,
    ) -> Result<Credentials, CredentialsError> {
        let cache_key = (
            namespace.to_string(),
            name.to_string(),
            key_field.to_string(),
            secret_field.to_string(),
        );
        if let Some((at, c)) = lock(&self.secrets).get(&cache_key)
            && at.elapsed() < SECRET_TTL
        {
            return Ok(c.clone());
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret = api
            .get_opt(name)
            .await?
            .ok_or_else(|| CredentialsError::SecretNotFound {
                namespace: namespace.into(),
                name: name.into(),
            })?;
        let field = |k: &str| {
            secret
                .data
                .as_ref()
                .and_then(|d| d.get(k))
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| CredentialsError::MissingKey {
                    namespace: namespace.into(),
                    name: name.into(),
                    key: k.into(),
                })
        };
        let creds = Credentials::new(field(key_field)?, field(secret_field)?);
        lock(&self.secrets).insert(cache_key, (std::time::Instant::now(), creds.clone()));
        Ok(creds)
    }

    /// Forgets cached Secrets holding credentials the API just rejected.
    fn forget_credentials(&self, creds: &Credentials) {
        lock(&self.secrets).retain(|_, (_, c)| c != creds);
    }

    async fn credentials(&self, pi: &ProviderIntegration) -> Result<Credentials, CredentialsError> {
        let ns = pi.namespace().unwrap_or_default();
        let creds = match (&pi.spec.credentials_ref, &self.config.default_credentials) {
            (Some(r), _) => {
                self.read_secret(&ns, &r.name, &r.api_key_field, &r.api_secret_field)
                    .await?
            }
            (None, DefaultCredentials::Static(c)) => c.clone(),
            (None, DefaultCredentials::Secret { namespace, name }) => {
                self.read_secret(namespace, name, "apiKey", "apiSecret")
                    .await?
            }
            (None, DefaultCredentials::None) => return Err(CredentialsError::NoDefault),
        };
        lock(&self.last_credentials).insert(pi.uid().unwrap_or_default(), creds.clone());
        Ok(creds)
    }

    fn remembered_credentials(&self, pi: &ProviderIntegration) -> Option<Credentials> {
        lock(&self.last_credentials)
            .get(&pi.uid().unwrap_or_default())
            .cloned()
    }

    async fn event(&self, pi: &ProviderIntegration, type_: EventType, reason: &str, note: String) {
        let ev = KubeEvent {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: reason.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &pi.object_ref(&())).await {
            warn!(name = %pi.name_any(), error = %e, "could not publish event");
        }
    }

    /// Writes status by server-side apply, unless it is already what we want, and returns the
    /// resource as stored, for the next step to build on.
    async fn write_status<'a>(
        &self,
        pi: &'a ProviderIntegration,
        status: ProviderIntegrationStatus,
    ) -> Result<Cow<'a, ProviderIntegration>, Error> {
        if pi.status.as_ref() == Some(&status) {
            return Ok(Cow::Borrowed(pi));
        }
        let api: Api<ProviderIntegration> =
            Api::namespaced(self.client.clone(), &pi.namespace().unwrap_or_default());
        let patch = json!({
            "apiVersion": ProviderIntegration::api_version(&()),
            "kind": ProviderIntegration::kind(&()),
            "status": status,
        });
        let stored = api
            .patch_status(
                &pi.name_any(),
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
        Ok(Cow::Owned(stored))
    }
}

/// The status to write, built from the previous one.
struct StatusBuilder<'a> {
    pi: &'a ProviderIntegration,
    status: ProviderIntegrationStatus,
}

impl<'a> StatusBuilder<'a> {
    fn new(pi: &'a ProviderIntegration) -> Self {
        Self {
            pi,
            status: pi.status.clone().unwrap_or_default(),
        }
    }

    fn integration(mut self, i: &Integration) -> Self {
        let s = &mut self.status;
        s.id = Some(i.id.clone());
        s.environment = Some(i.environment.id.clone());
        s.external_id = i.aws().and_then(|a| a.external_id.clone());
        s.iam_role_arn = i.aws().and_then(|a| a.iam_role_arn.clone());
        s.google_service_account = i.gcp().and_then(|c| c.google_service_account.clone());
        s.confluent_multi_tenant_app_id = i
            .azure()
            .and_then(|c| c.confluent_multi_tenant_app_id.clone());
        s.provider = CloudProvider::from_api_name(&i.provider).or(s.provider);
        s.phase = i.status.clone();
        s.usages = i.usages.clone();
        s.pending_create = None;
        self
    }

    fn forget_integration(mut self) -> Self {
        let s = &mut self.status;
        s.id = None;
        s.environment = None;
        s.external_id = None;
        s.iam_role_arn = None;
        s.google_service_account = None;
        s.confluent_multi_tenant_app_id = None;
        s.provider = None;
        s.phase = None;
        s.usages.clear();
        // Validation was of the integration that is gone.
        self.unvalidated()
    }

    /// Drops the `Validated` condition (validation is off for this resource).
    fn unvalidated(mut self) -> Self {
        self.status.conditions.retain(|c| c.type_ != VALIDATED);
        self
    }

    fn build(
        mut self,
        ready: CondState,
        reconciling: CondState,
        stalled: CondState,
    ) -> ProviderIntegrationStatus {
        let generation = self.pi.metadata.generation;
        let now = Time(jiff::Timestamp::now());
        self.status.conditions = conditions(
            &self.status.conditions,
            generation,
            ready,
            reconciling,
            stalled,
            &now,
        );
        self.status.observed_generation = generation;
        self.status
    }

    fn ready(self, i: &Integration) -> ProviderIntegrationStatus {
        let msg = format!("integration {} is in sync", i.id);
        self.integration(i).build(
            CondState::new(true, "Synced", msg),
            CondState::new(false, "Synced", ""),
            CondState::new(false, "Synced", ""),
        )
    }

    fn progressing(
        self,
        ready_reason: &str,
        reason: &str,
        message: String,
    ) -> ProviderIntegrationStatus {
        self.build(
            CondState::new(false, ready_reason, message.clone()),
            CondState::new(true, reason, message),
            CondState::new(false, reason, ""),
        )
    }

    fn stalled(self, reason: &str, message: String) -> ProviderIntegrationStatus {
        self.build(
            CondState::new(false, reason, message.clone()),
            CondState::new(false, reason, ""),
            CondState::new(true, reason, message),
        )
    }
}

/// Condition reason for an API error a human must fix.
fn stall_reason(e: &PimError) -> &'static str {
    match e {
        PimError::Unauthenticated { .. } => "Unauthenticated",
        PimError::Forbidden { .. } => "Forbidden",
        PimError::QuotaExceeded { .. } => "QuotaExceeded",
        PimError::Invalid { .. } => "Rejected",
        PimError::Conflict { .. } => "Conflict",
        PimError::NotFound { .. } => "NotFound",
        _ => "APIError",
    }
}

/// Condition reason for an error that will likely pass.
fn transient_reason(e: &PimError) -> &'static str {
    match e {
        PimError::RateLimited { .. } => "RateLimited",
        PimError::Timeout => "APITimeout",
        _ => "APIUnavailable",
    }
}

fn user_hint(e: &PimError, creds: &Credentials) -> String {
    match e {
        PimError::Unauthenticated { .. } => {
            format!("{e}; check the API key {} and its secret", creds.key)
        }
        PimError::Forbidden { .. } => format!(
            "{e}; API key {} needs the EnvironmentAdmin or OrganizationAdmin role",
            creds.key
        ),
        PimError::QuotaExceeded { .. } => {
            format!("{e}; delete unused integrations or ask Confluent to raise the quota")
        }
        _ => e.to_string(),
    }
}

/// The controller's reconcile function.
pub async fn reconcile(pi: Arc<ProviderIntegration>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = std::time::Instant::now();
    let api: Api<ProviderIntegration> =
        Api::namespaced(ctx.client.clone(), &pi.namespace().unwrap_or_default());
    let pi = match ensure_finalizer(&api, pi).await {
        Ok(pi) => pi,
        Err(e) => {
            ctx.metrics.reconciled("error", start.elapsed());
            return Err(e);
        }
    };
    let result = finalizer(&api, FINALIZER, pi, |event| async {
        match event {
            Finalizer::Apply(pi) => apply(&pi, &ctx).await,
            Finalizer::Cleanup(pi) => cleanup(&pi, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics
        .reconciled(if result.is_ok() { "ok" } else { "error" }, start.elapsed());
    result
}

/// Adds our finalizer to a live resource that lacks it and returns the stored result, so the
/// same reconcile goes on to create the integration. (kube's `finalizer` helper would stop after
/// the patch and wait for the watch event: one more round trip per new resource.) The patch is
/// guarded by a `test` exactly like the helper's, so concurrent finalizer edits are not lost.
async fn ensure_finalizer(
    api: &Api<ProviderIntegration>,
    pi: Arc<ProviderIntegration>,
) -> Result<Arc<ProviderIntegration>, Error> {
    if pi.meta().deletion_timestamp.is_some() || pi.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(pi);
    }
    let ops = if pi.finalizers().is_empty() {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ])
    } else {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": pi.finalizers()},
            {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
        ])
    };
    let patch: json_patch::Patch =
        serde_json::from_value(ops).map_err(|e| Error::Kube(kube::Error::SerdeError(e)))?;
    let updated = api
        .patch(
            &pi.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await?;
    Ok(Arc::new(updated))
}

/// Requeue policy for errors that escaped `reconcile`.
pub fn error_policy(pi: Arc<ProviderIntegration>, err: &Error, ctx: Arc<Context>) -> Action {
    match err.retry_in() {
        Some(d) => Action::requeue(d),
        None => {
            let d = ctx.backoff(&pi, ctx.config.retry_base / 2, ctx.config.retry_max);
            warn!(namespace = %pi.namespace().unwrap_or_default(), name = %pi.name_any(), error = %err, retry_in_ms = d.as_millis() as u64, "reconcile failed");
            Action::requeue(d)
        }
    }
}

/// Records an integration that matches the spec, after finishing what is left to do: a `pim/v2`
/// DRAFT gets its config, the outputs ConfigMap is written, and Ready is set at once (the user
/// needs these values to grant access, so Ready never waits for validation). Validation then runs
/// when due, and the next check is at the resync period or the validation retry, if sooner.
async fn in_sync(
    ctx: &Context,
    pi: &ProviderIntegration,
    desired: &Desired,
    creds: &Credentials,
    mut i: Integration,
    event: Option<(&str, String)>,
) -> Result<Action, Error> {
    let ns = pi.namespace().unwrap_or_default();
    let name = pi.name_any();
    let version = integration_version(&i);
    let mut pi = Cow::Borrowed(pi);
    if version == ApiVersion::V2 && i.is_draft() {
        // Remember the id before the PATCH: after a crash the id, not a search, finds it again.
        pi = Cow::Owned(
            ctx.write_status(
                &pi,
                StatusBuilder::new(&pi).integration(&i).progressing(
                    "Configuring",
                    "Configuring",
                    format!("setting the config of DRAFT integration {}", i.id),
                ),
            )
            .await?
            .into_owned(),
        );
        let env = i.environment.id.clone();
        i = match ctx
            .pim
            .update_config(creds, &env, &i.id, desired.config.write())
            .await
        {
            Ok(updated) => updated,
            // Gone meanwhile (a stale cache entry, or deleted out of band): look again by id.
            Err(PimError::NotFound { .. }) => {
                ctx.cache.remove(creds, (&env, version), &i.id).await;
                return Ok(Action::requeue(Duration::from_millis(50)));
            }
            // Refused, perhaps because a lost response already applied it: see what is there.
            Err(e) if e.class() == ErrorClass::Permanent && !is_auth(&e) => {
                match ctx.pim.get(creds, version, &env, &i.id).await {
                    Ok(now) if !now.is_draft() => now,
                    _ => return api_error(ctx, &pi, creds, e).await,
                }
            }
            Err(e) => return api_error(ctx, &pi, creds, e).await,
        };
        info!(namespace = %ns, name = %name, id = %i.id, "configured");
        ctx.cache.insert(creds, version, &i).await;
        if !decide::changed_fields(desired, &i, desired.adopt_id.is_some()).is_empty() {
            // Someone else configured it differently; the next pass decides what to do.
            return Ok(Action::requeue(Duration::from_millis(50)));
        }
    }
    let wanted = pi.spec.write_outputs_to.as_ref().map(|o| o.name.clone());
    let written = pi
        .status
        .as_ref()
        .and_then(|s| s.outputs_config_map.clone());
    if let Some(old) = written.as_ref().filter(|o| Some(*o) != wanted.as_ref())
        && outputs::remove(&ctx.client, &pi, old).await?
    {
        info!(namespace = %ns, name = %name, configmap = %old, "previous outputs deleted");
    }
    if let Some(out) = &wanted {
        match outputs::write(&ctx.client, MANAGER, &pi, out, &i).await {
            Ok(true) => info!(namespace = %ns, name = %name, configmap = %out, "outputs written"),
            Ok(false) => {}
            Err(outputs::OutputsError::Kube(e)) => return Err(Error::Kube(e)),
            Err(e @ outputs::OutputsError::NotOwned(_)) => {
                let mut b = StatusBuilder::new(&pi).integration(&i);
                b.status.outputs_config_map = None;
                return stall_with(ctx, &pi, b, "OutputsConflict", e.to_string()).await;
            }
        }
    }
    let mut b = StatusBuilder::new(&pi);
    b.status.outputs_config_map = wanted;
    if !desired.validate {
        b = b.unvalidated();
    }
    let pi = ctx.write_status(&pi, b.ready(&i)).await?;
    if let Some((reason, note)) = event {
        info!(namespace = %ns, name = %name, id = %i.id, reason, "{note}");
        ctx.event(&pi, EventType::Normal, reason, note).await;
    }
    ctx.succeeded(&pi);
    let next = if desired.validate {
        validate(ctx, &pi, creds, &i).await?
    } else {
        ctx.resync_delay()
    };
    Ok(Action::requeue(next))
}

/// The API version that manages an integration, from its provider.
fn integration_version(i: &Integration) -> ApiVersion {
    CloudProvider::from_api_name(&i.provider)
        .map(api_version)
        .unwrap_or(ApiVersion::V2)
}

fn is_auth(e: &PimError) -> bool {
    matches!(
        e,
        PimError::Unauthenticated { .. } | PimError::Forbidden { .. }
    )
}

/// What the customer must grant for validation to pass, from the values Confluent returned.
fn grant_hint(i: &Integration) -> String {
    if let Some(c) = i.gcp() {
        let gsa = c
            .google_service_account
            .as_deref()
            .unwrap_or("Confluent's service account");
        return format!(
            "grant {gsa} the Service Account Token Creator role ({}) on {}",
            outputs::GCP_TOKEN_CREATOR,
            c.customer_google_service_account
        );
    }
    if let Some(c) = i.azure() {
        let app = c
            .confluent_multi_tenant_app_id
            .as_deref()
            .unwrap_or("Confluent's multi-tenant app");
        return format!(
            "in tenant {}, create a service principal for app {app} (az ad sp create --id {app}), grant it admin consent and access to your resources",
            c.customer_azure_tenant_id
        );
    }
    if let Some(c) = i.aws() {
        return format!(
            "let {} assume {} with sts:ExternalId {} in its trust policy",
            c.iam_role_arn.as_deref().unwrap_or("Confluent's IAM role"),
            c.customer_iam_role_arn,
            c.external_id.as_deref().unwrap_or("(the external id)")
        );
    }
    "complete the cloud-side setup".into()
}

/// Validates the integration when due and records the `Validated` condition. Returns when to
/// look again: the resync period once it passes, sooner (with backoff) until it does.
async fn validate(
    ctx: &Context,
    pi: &ProviderIntegration,
    creds: &Credentials,
    i: &Integration,
) -> Result<Duration, Error> {
    let uid = pi.uid().unwrap_or_default();
    let generation = pi.metadata.generation;
    let now = std::time::Instant::now();
    let current = pi
        .condition(VALIDATED)
        .is_some_and(|c| c.observed_generation == generation);
    let failures = {
        let due = lock(&ctx.validations);
        match due.get(&uid).filter(|v| v.id == i.id) {
            Some(v) if current && v.generation == generation && v.due > now => {
                return Ok(v.due - now);
            }
            Some(v) => v.failures,
            None => 0,
        }
    };
    let env = i.environment.id.clone();
    let ns = pi.namespace().unwrap_or_default();
    let name = pi.name_any();
    let previous = pi.condition(VALIDATED).cloned();
    let mut status = pi.status.clone().unwrap_or_default();
    // The condition to set (`None` keeps it as it is), failures in a row, and the next check.
    let (condition, failures, next) = match ctx.pim.validate(creds, &env, &i.id).await {
        Ok(()) => {
            // Validation moves a CREATED integration to ACTIVE: read the phase back once.
            if status.phase.as_deref() != Some("ACTIVE")
                && integration_version(i) == ApiVersion::V2
                && let Ok(fresh) = ctx.pim.get(creds, ApiVersion::V2, &env, &i.id).await
            {
                status.phase = fresh.status.clone();
                ctx.cache.insert(creds, ApiVersion::V2, &fresh).await;
            }
            let msg = format!("Confluent can use {}", customer_identity(i));
            if previous.as_ref().is_none_or(|c| c.status != "True") {
                info!(namespace = %ns, name = %name, id = %i.id, "validated");
                ctx.event(pi, EventType::Normal, "Validated", msg.clone())
                    .await;
            }
            (Some(("True", "Validated", msg)), 0, ctx.resync_delay())
        }
        Err(e) if e.is_transient() => {
            let pending = previous
                .is_none()
                .then(|| ("Unknown", "Validating", format!("validation pending: {e}")));
            let n = failures.saturating_add(1);
            let next = backoff_delay(n, ctx.config.retry_base, ctx.config.retry_max)
                .max(e.retry_after().unwrap_or_default());
            (pending, n, next)
        }
        Err(e) => {
            if is_auth(&e) {
                ctx.forget_credentials(creds);
            }
            let msg = format!("{e}; {}", grant_hint(i));
            if previous
                .as_ref()
                .is_none_or(|c| c.status != "False" || c.message != msg)
            {
                warn!(namespace = %ns, name = %name, id = %i.id, %msg, "validation failed");
                ctx.event(pi, EventType::Warning, "ValidationFailed", msg.clone())
                    .await;
            }
            let n = failures.saturating_add(1);
            let next = backoff_delay(n, ctx.config.stall_retry, ctx.config.resync);
            (Some(("False", "ValidationFailed", msg)), n, next)
        }
    };
    if let Some((state, reason, msg)) = condition {
        let time = Time(jiff::Timestamp::now());
        set_condition(
            &mut status.conditions,
            VALIDATED,
            state,
            reason,
            &msg,
            generation,
            &time,
        );
    }
    ctx.write_status(pi, status).await?;
    lock(&ctx.validations).insert(
        uid,
        ValidationDue {
            generation,
            id: i.id.clone(),
            due: now + next,
            failures,
        },
    );
    Ok(next)
}

/// The customer's identity an integration acts as, for messages.
fn customer_identity(i: &Integration) -> String {
    if let Some(c) = i.gcp() {
        format!("service account {}", c.customer_google_service_account)
    } else if let Some(c) = i.azure() {
        format!("tenant {}", c.customer_azure_tenant_id)
    } else if let Some(c) = i.aws() {
        format!("role {}", c.customer_iam_role_arn)
    } else {
        format!("integration {}", i.id)
    }
}

/// Handles a `pim` error on the apply path: stall, or requeue without flapping Ready.
async fn api_error(
    ctx: &Context,
    pi: &ProviderIntegration,
    creds: &Credentials,
    e: PimError,
) -> Result<Action, Error> {
    let ns = pi.namespace().unwrap_or_default();
    let name = pi.name_any();
    if e.class() == ErrorClass::Transient {
        let delay = ctx
            .backoff(pi, ctx.config.retry_base, ctx.config.retry_max)
            .max(e.retry_after().unwrap_or_default());
        info!(namespace = %ns, name = %name, error = %e, retry_in_ms = delay.as_millis() as u64, "transient API error");
        // A Ready resource of this generation stays Ready through a blip.
        if !pi.is_ready() {
            let ready_reason = pi
                .condition(crate::crd::READY)
                .map(|c| c.reason.clone())
                .filter(|r| !r.is_empty() && r != "Synced")
                .unwrap_or_else(|| "Reconciling".into());
            let status = StatusBuilder::new(pi).progressing(
                &ready_reason,
                transient_reason(&e),
                format!("{e}; retrying"),
            );
            ctx.write_status(pi, status).await?;
        }
        return Ok(Action::requeue(delay));
    }
    if is_auth(&e) {
        ctx.forget_credentials(creds);
    }
    stall(ctx, pi, stall_reason(&e), user_hint(&e, creds)).await
}

/// Marks the resource Stalled (a human must act), with one Warning event per distinct problem,
/// and looks again later: credentials, quotas and Secrets change without an event here.
async fn stall(
    ctx: &Context,
    pi: &ProviderIntegration,
    reason: &str,
    message: String,
) -> Result<Action, Error> {
    stall_with(ctx, pi, StatusBuilder::new(pi), reason, message).await
}

/// `stall`, on top of other status changes in `b`.
async fn stall_with(
    ctx: &Context,
    pi: &ProviderIntegration,
    b: StatusBuilder<'_>,
    reason: &str,
    message: String,
) -> Result<Action, Error> {
    warn!(namespace = %pi.namespace().unwrap_or_default(), name = %pi.name_any(), reason, %message, "stalled");
    let already = pi
        .condition(crate::crd::STALLED)
        .is_some_and(|c| c.status == "True" && c.reason == reason && c.message == message);
    ctx.write_status(pi, b.stalled(reason, message.clone()))
        .await?;
    if !already {
        ctx.event(pi, EventType::Warning, reason, message).await;
    }
    Ok(Action::requeue(ctx.backoff(
        pi,
        ctx.config.stall_retry,
        ctx.config.resync,
    )))
}

async fn load_credentials(
    ctx: &Context,
    pi: &ProviderIntegration,
) -> Result<Result<Credentials, Action>, Error> {
    match ctx.credentials(pi).await {
        Ok(c) => Ok(Ok(c)),
        Err(CredentialsError::Kube(e)) => Err(Error::Kube(e)),
        Err(e @ CredentialsError::NoDefault) => Ok(Err(stall(
            ctx,
            pi,
            "NoCredentials",
            format!("{e}; set spec.credentialsRef"),
        )
        .await?)),
        Err(e) => Ok(Err(
            stall(ctx, pi, "CredentialsNotFound", e.to_string()).await?
        )),
    }
}

async fn apply(pi: &ProviderIntegration, ctx: &Context) -> Result<Action, Error> {
    let status = pi.status.clone().unwrap_or_default();
    let desired = match Desired::from_resource(pi) {
        Ok(d) => d,
        Err(decide::InvalidSpec(m)) => return stall(ctx, pi, "InvalidSpec", m).await,
    };
    let creds = match load_credentials(ctx, pi).await? {
        Ok(c) => c,
        Err(action) => return Ok(action),
    };
    let observed = match decide::lookup(&desired, &status) {
        Lookup::ById {
            id,
            environment,
            version,
        } => {
            match ctx
                .cache
                .by_id(
                    &ctx.pim,
                    &creds,
                    (&environment, version),
                    &id,
                    ctx.config.resync,
                )
                .await
            {
                Ok(Some(i)) => Observed::Found(i),
                Ok(None) => Observed::Missing,
                Err(e) => return api_error(ctx, pi, &creds, e).await,
            }
        }
        Lookup::ByKey { key, fresh } => {
            let age = if fresh {
                Duration::ZERO
            } else {
                ctx.config.resync
            };
            match ctx.cache.by_key(&ctx.pim, &creds, &key, age).await {
                Ok(found) => Observed::ByKey(found),
                Err(e) => return api_error(ctx, pi, &creds, e).await,
            }
        }
    };
    let decision = decide::decide(&desired, &status, observed);
    match decision {
        Decision::InSync(i) => in_sync(ctx, pi, &desired, &creds, i, None).await,
        Decision::Adopt(i) => {
            let note = format!("adopted existing integration {}", i.id);
            in_sync(ctx, pi, &desired, &creds, i, Some(("Adopted", note))).await
        }
        Decision::Claim(i) => {
            let note = format!(
                "created integration {} (recorded after an interrupted attempt)",
                i.id
            );
            in_sync(ctx, pi, &desired, &creds, i, Some(("Created", note))).await
        }
        Decision::Create { replaces } => create(ctx, pi, &desired, &creds, replaces).await,
        Decision::Recreate { old, changed } => recreate(ctx, pi, &creds, old, changed).await,
        Decision::Stall { reason, message } => stall(ctx, pi, reason.as_str(), message).await,
    }
}

async fn create(
    ctx: &Context,
    pi: &ProviderIntegration,
    desired: &Desired,
    creds: &Credentials,
    replaces: Option<String>,
) -> Result<Action, Error> {
    let ns = pi.namespace().unwrap_or_default();
    let name = pi.name_any();
    let intent = desired.intent();
    let had_intent = pi.status.as_ref().and_then(|s| s.pending_create.as_ref()) == Some(&intent);
    let base = if !had_intent {
        // Record intent before the POST: after a crash it tells us to look before creating again.
        let mut b = StatusBuilder::new(pi);
        if replaces.is_some() {
            b = b.forget_integration();
        }
        b.status.pending_create = Some(intent.clone());
        let status = b.progressing(
            "Creating",
            "Creating",
            format!("creating the integration in {}", desired.environment),
        );
        ctx.write_status(pi, status).await?
    } else {
        Cow::Borrowed(pi)
    };
    let version = desired.api_version();
    let body = crate::pim::CreateIntegration {
        display_name: desired.display_name.clone(),
        provider: desired.provider().api_name().into(),
        // `pim/v2` creates a DRAFT; its config is set next, once its id is recorded.
        config: (version == ApiVersion::V1).then(|| desired.config.write()),
        environment: crate::pim::EnvId {
            id: desired.environment.clone(),
        },
    };
    match ctx.pim.create(creds, version, &body).await {
        Ok(i) => {
            info!(namespace = %ns, name = %name, id = %i.id, "created");
            ctx.cache.insert(creds, version, &i).await;
            let event = match replaces {
                Some(old) => {
                    ctx.event(
                        &base,
                        EventType::Warning,
                        "Recreated",
                        format!(
                            "integration {old} was deleted outside Kubernetes; created {}: {}",
                            i.id,
                            regrant(desired.provider())
                        ),
                    )
                    .await;
                    None
                }
                None => Some(("Created", format!("created integration {}", i.id))),
            };
            in_sync(ctx, &base, desired, creds, i, event).await
        }
        Err(e @ PimError::Conflict { .. }) if e.code() == Some("resource_already_exists") => {
            let mut found = match ctx
                .cache
                .by_key(&ctx.pim, creds, &intent, Duration::ZERO)
                .await
            {
                Ok(f) => f,
                Err(e) => return api_error(ctx, &base, creds, e).await,
            };
            if had_intent && found.len() == 1 && decide::matches_intent(&found[0], &intent) {
                let i = found.remove(0);
                let note = format!(
                    "created integration {} (recorded after an interrupted attempt)",
                    i.id
                );
                return in_sync(ctx, &base, desired, creds, i, Some(("Created", note))).await;
            }
            // Not ours: drop the intent so it can never be claimed by mistake.
            let mut b = StatusBuilder::new(&base);
            b.status.pending_create = None;
            let msg = match found.first() {
                Some(i) => decide::already_exists(desired, &i.id),
                None => format!(
                    "{e}; another integration holds {} {} in {}",
                    desired.config.field(),
                    desired.config.value(),
                    desired.environment
                ),
            };
            stall_with(ctx, &base, b, "AlreadyExists", msg).await
        }
        Err(e) => api_error(ctx, &base, creds, e).await,
    }
}

/// What the customer must redo after their integration was replaced.
fn regrant(provider: CloudProvider) -> &'static str {
    match provider {
        CloudProvider::Aws => "it has a new external id: update your trust policy",
        CloudProvider::Gcp => {
            "it may have a new Google service account: update the impersonation binding"
        }
        CloudProvider::Azure => "check the admin consent of its multi-tenant app",
    }
}

async fn recreate(
    ctx: &Context,
    pi: &ProviderIntegration,
    creds: &Credentials,
    old: Integration,
    changed: Vec<&'static str>,
) -> Result<Action, Error> {
    let env = old.environment.id.clone();
    let version = integration_version(&old);
    match ctx.pim.delete(creds, version, &env, &old.id).await {
        Ok(()) | Err(PimError::NotFound { .. }) => {
            ctx.cache.remove(creds, (&env, version), &old.id).await;
            let msg = format!(
                "deleted integration {} because {} changed; a new one is being created: {}",
                old.id,
                changed.join(", "),
                regrant(pi.spec.provider)
            );
            ctx.write_status(
                pi,
                StatusBuilder::new(pi).forget_integration().progressing(
                    "Recreating",
                    "Recreating",
                    msg.clone(),
                ),
            )
            .await?;
            ctx.event(pi, EventType::Warning, "Recreating", msg).await;
            Ok(Action::requeue(Duration::from_millis(50)))
        }
        Err(e) if e.class() == ErrorClass::Permanent && !is_auth(&e) => {
            let read_back = ctx.pim.get(creds, version, &env, &old.id).await.ok();
            let msg = match decide::refusal(&e.to_string(), read_back.as_ref()) {
                Refusal::InUse(u) => format!(
                    "cannot recreate integration {}: it is in use by {}; delete or reconfigure those connectors",
                    old.id,
                    u.join(", ")
                ),
                Refusal::Other(d) => format!("cannot recreate integration {}: {d}", old.id),
            };
            let mut b = StatusBuilder::new(pi);
            if let Some(i) = &read_back {
                b.status.usages = i.usages.clone();
            }
            ctx.write_status(
                pi,
                b.progressing("RecreateBlocked", "RecreateBlocked", msg.clone()),
            )
            .await?;
            ctx.event(pi, EventType::Warning, "RecreateBlocked", msg)
                .await;
            Ok(Action::requeue(ctx.backoff(
                pi,
                ctx.config.retry_base * 5,
                ctx.config.retry_max.mul_f64(2.5),
            )))
        }
        Err(e) => api_error(ctx, pi, creds, e).await,
    }
}

async fn cleanup(pi: &ProviderIntegration, ctx: &Context) -> Result<Action, Error> {
    let status = pi.status.clone().unwrap_or_default();
    let ns = pi.namespace().unwrap_or_default();
    let name = pi.name_any();
    let plan = decide::cleanup(pi.spec.deletion_policy, &status);
    let (id, env, version) = match plan {
        Cleanup::Orphan => {
            if let Some(id) = &status.id {
                info!(namespace = %ns, name = %name, %id, "orphaned");
                ctx.event(
                    pi,
                    EventType::Normal,
                    "Orphaned",
                    format!("left integration {id} in Confluent Cloud (deletionPolicy: Orphan)"),
                )
                .await;
            }
            ctx.forget(pi);
            return Ok(Action::await_change());
        }
        Cleanup::Nothing => {
            ctx.forget(pi);
            return Ok(Action::await_change());
        }
        Cleanup::Delete {
            id,
            environment,
            version,
        } => (Some(id), environment, version),
        Cleanup::FindThenDelete(key) => {
            (None, key.environment.clone(), api_version(key.provider()))
        }
    };
    let creds = match ctx.credentials(pi).await {
        Ok(c) => c,
        Err(CredentialsError::Kube(e)) => return Err(Error::Kube(e)),
        Err(e) => match ctx.remembered_credentials(pi) {
            Some(c) => c,
            None => {
                let msg = format!(
                    "cannot delete the integration: {e}; restore it, or set spec.deletionPolicy: Orphan"
                );
                ctx.write_status(
                    pi,
                    StatusBuilder::new(pi).stalled("CredentialsNotFound", msg.clone()),
                )
                .await?;
                return Err(Error::DeletionPending {
                    message: msg,
                    retry_in: ctx.backoff(pi, ctx.config.stall_retry, ctx.config.resync),
                });
            }
        },
    };
    let id = match id {
        Some(id) => id,
        None => match &status.pending_create {
            Some(key) => match ctx
                .cache
                .by_key(&ctx.pim, &creds, key, Duration::ZERO)
                .await
                .map(|found| {
                    found
                        .into_iter()
                        .filter(|i| decide::matches_intent(i, key))
                        .collect::<Vec<_>>()
                }) {
                Ok(found) if found.len() == 1 => found[0].id.clone(),
                Ok(found) => {
                    if !found.is_empty() {
                        // Several share the name; deleting a stranger's would be worse.
                        let ids: Vec<&str> = found.iter().map(|i| i.id.as_str()).collect();
                        ctx.event(pi, EventType::Warning, "AmbiguousIntegration", format!(
                            "an interrupted create left no id, and integrations {} match it; none was deleted, delete the one this resource created by hand",
                            ids.join(", ")
                        )).await;
                    }
                    ctx.forget(pi);
                    return Ok(Action::await_change());
                }
                Err(e) => return deletion_retry(ctx, pi, &creds, e).await,
            },
            None => return Ok(Action::await_change()),
        },
    };
    match ctx.pim.delete(&creds, version, &env, &id).await {
        Ok(()) | Err(PimError::NotFound { .. }) => {
            info!(namespace = %ns, name = %name, %id, "deleted");
            ctx.cache.remove(&creds, (&env, version), &id).await;
            ctx.event(
                pi,
                EventType::Normal,
                "Deleted",
                format!("deleted integration {id}"),
            )
            .await;
            ctx.forget(pi);
            Ok(Action::await_change())
        }
        Err(e) if e.is_transient() => deletion_retry(ctx, pi, &creds, e).await,
        Err(e @ (PimError::Unauthenticated { .. } | PimError::Forbidden { .. })) => {
            let msg = format!("cannot delete integration {id}: {}", user_hint(&e, &creds));
            ctx.write_status(
                pi,
                StatusBuilder::new(pi).stalled(stall_reason(&e), msg.clone()),
            )
            .await?;
            ctx.event(pi, EventType::Warning, stall_reason(&e), msg.clone())
                .await;
            Err(Error::DeletionPending {
                message: msg,
                retry_in: ctx.backoff(pi, ctx.config.stall_retry, ctx.config.resync),
            })
        }
        Err(e) => {
            // Refused: find out whether connectors use it (by its usages, not the status code).
            let read_back = match ctx.pim.get(&creds, version, &env, &id).await {
                Ok(i) => Some(i),
                Err(PimError::NotFound { .. }) => {
                    ctx.cache.remove(&creds, (&env, version), &id).await;
                    ctx.forget(pi);
                    return Ok(Action::await_change());
                }
                Err(_) => None,
            };
            let (reason, msg, usages) = match decide::refusal(&e.to_string(), read_back.as_ref()) {
                Refusal::InUse(u) => (
                    "DeletionBlocked",
                    format!(
                        "integration {id} is in use by {}; delete or reconfigure those connectors, deletion is retried",
                        u.join(", ")
                    ),
                    u,
                ),
                Refusal::Other(d) => (
                    "DeletionFailed",
                    format!("deleting integration {id} failed: {d}; retrying"),
                    Vec::new(),
                ),
            };
            let retry_in = ctx.backoff(
                pi,
                ctx.config.retry_base * 5,
                ctx.config.retry_max.mul_f64(2.5),
            );
            warn!(namespace = %ns, name = %name, %id, reason, retry_in_s = retry_in.as_secs(), "deletion blocked");
            let mut b = StatusBuilder::new(pi);
            b.status.usages = usages;
            let first = pi
                .condition(crate::crd::READY)
                .is_none_or(|c| c.reason != reason);
            ctx.write_status(pi, b.progressing(reason, reason, msg.clone()))
                .await?;
            if first {
                ctx.metrics.deletion_blocked();
            }
            ctx.event(pi, EventType::Warning, reason, msg.clone()).await;
            Err(Error::DeletionPending {
                message: msg,
                retry_in,
            })
        }
    }
}

async fn deletion_retry(
    ctx: &Context,
    pi: &ProviderIntegration,
    creds: &Credentials,
    e: PimError,
) -> Result<Action, Error> {
    let retry_in = ctx
        .backoff(pi, ctx.config.retry_base, ctx.config.retry_max)
        .max(e.retry_after().unwrap_or_default());
    let msg = format!("deleting: {}; retrying", user_hint(&e, creds));
    ctx.write_status(
        pi,
        StatusBuilder::new(pi).progressing("Deleting", transient_reason(&e), msg.clone()),
    )
    .await?;
    Err(Error::DeletionPending {
        message: msg,
        retry_in,
    })
}

/// Runs the controller until `shutdown` resolves: one watch for all namespaces, or one per
/// namespace in `Config::namespaces` (which then needs only namespaced RBAC).
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let apis: Vec<Api<ProviderIntegration>> = if ctx.config.namespaces.is_empty() {
        vec![Api::all(ctx.client.clone())]
    } else {
        ctx.config
            .namespaces
            .iter()
            .map(|ns| Api::namespaced(ctx.client.clone(), ns))
            .collect()
    };
    let shutdown = futures::FutureExt::shared(shutdown);
    let mut stores = Vec::new();
    let mut runs = Vec::new();
    for api in apis {
        let config =
            kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency);
        let controller = Controller::new(api, watcher::Config::default().any_semantic())
            .with_config(config)
            .graceful_shutdown_on(shutdown.clone());
        stores.push(controller.store());
        runs.push(
            controller
                .run(reconcile, error_policy, ctx.clone())
                .for_each(|_| futures::future::ready(())),
        );
    }
    let gauges = tokio::spawn(count_states(ctx.clone(), stores.clone()));
    let synced = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            for s in &stores {
                if s.wait_until_ready().await.is_err() {
                    return;
                }
            }
            ctx.ready.store(true, std::sync::atomic::Ordering::Relaxed);
        })
    };
    futures::future::join_all(runs).await;
    ctx.ready.store(false, std::sync::atomic::Ordering::Relaxed);
    synced.abort();
    gauges.abort();
}

/// Keeps the per-state resource gauges current from the controllers' caches.
async fn count_states(
    ctx: Arc<Context>,
    stores: Vec<kube::runtime::reflector::Store<ProviderIntegration>>,
) {
    loop {
        let all: Vec<Arc<ProviderIntegration>> = stores.iter().flat_map(|s| s.state()).collect();
        let t = Tally::of(all.iter().map(|p| p.as_ref()));
        ctx.metrics.set_resources(
            &[
                ("ready", t.ready),
                ("stalled", t.stalled),
                ("reconciling", t.reconciling),
            ],
            &[
                ("validated", t.validated),
                ("failing", t.validation_failing),
                ("pending", t.validation_pending),
            ],
        );
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

/// Resources counted by kstatus state and by `Validated` condition (those without one, such as
/// AWS resources that do not validate, are not counted there).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub ready: i64,
    pub stalled: i64,
    pub reconciling: i64,
    pub validated: i64,
    pub validation_failing: i64,
    pub validation_pending: i64,
}

impl Tally {
    pub fn of<'a>(resources: impl IntoIterator<Item = &'a ProviderIntegration>) -> Self {
        let mut t = Tally::default();
        for pi in resources {
            if pi.is_ready() {
                t.ready += 1;
            } else if pi
                .condition(crate::crd::STALLED)
                .is_some_and(|c| c.status == "True")
            {
                t.stalled += 1;
            } else {
                t.reconciling += 1;
            }
            match pi.condition(VALIDATED).map(|c| c.status.as_str()) {
                Some("True") => t.validated += 1,
                Some("False") => t.validation_failing += 1,
                Some(_) => t.validation_pending += 1,
                None => {}
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(generation: i64, conditions: serde_json::Value) -> ProviderIntegration {
        serde_json::from_value(json!({
            "apiVersion": "pim.confluent.cloud/v1alpha1", "kind": "ProviderIntegration",
            "metadata": {"name": "x", "generation": generation},
            "spec": {"environment": "env-1", "provider": "AWS",
                "aws": {"customerIamRoleArn": "arn:aws:iam::123456789012:role/x"}},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    fn c(ty: &str, status: &str, generation: i64) -> serde_json::Value {
        json!({"type": ty, "status": status, "reason": "R", "message": "",
            "observedGeneration": generation, "lastTransitionTime": "2026-01-01T00:00:00Z"})
    }

    #[test]
    fn backoff_doubles_from_base_up_to_cap_with_jitter() {
        let (base, cap) = (Duration::from_secs(1), Duration::from_secs(10));
        for (n, want) in [
            (1, 1.0),
            (2, 2.0),
            (3, 4.0),
            (4, 8.0),
            (5, 10.0),
            (60, 10.0),
        ] {
            let d = backoff_delay(n, base, cap).as_secs_f64();
            assert!(
                (want * 0.8..=want * 1.2).contains(&d),
                "failure {n}: {d} s, want {want} s ±20%"
            );
        }
    }

    #[test]
    fn tally_counts_states_and_validation() {
        let all = [
            resource(1, json!([c("Ready", "True", 1), c("Validated", "True", 1)])),
            resource(
                1,
                json!([c("Ready", "True", 1), c("Validated", "False", 1)]),
            ),
            // Ready for an older generation is not ready.
            resource(
                2,
                json!([c("Ready", "True", 1), c("Validated", "Unknown", 1)]),
            ),
            resource(1, json!([c("Ready", "False", 1), c("Stalled", "True", 1)])),
            resource(1, json!([])),
        ];
        assert_eq!(
            Tally::of(all.iter()),
            Tally {
                ready: 2,
                stalled: 1,
                reconciling: 2,
                validated: 1,
                validation_failing: 1,
                validation_pending: 1,
            }
        );
    }
}
