//! An in-memory Kubernetes API server for tests and the benchmark (never compiled into the
//! operator: `tests/common` includes it, `benches/scale.rs` by `#[path]`).
//!
//! It implements the slice of API machinery the operator relies on, with the real semantics:
//! resourceVersion and optimistic concurrency, `metadata.generation` bumped only by spec changes,
//! the status subresource, finalizers and `deletionTimestamp`, JSON/merge/apply patches, and
//! watches that replay from a resourceVersion. Used as a tower service
//! (`kube::Client::new(fake.service(), ns)`, the pattern of kube's `tower-test`) or over HTTP.
//!
//! Where it matters to a controller it behaves like a real server (see `shared/design.md`):
//! - watch delivery can lag behind writes (`set_watch_lag`), so reconciles see stale copies;
//! - server-side apply keeps field ownership in `metadata.managedFields` and removes the fields a
//!   manager stops applying (`managed_fields.rs`); updates record their field manager;
//! - `resourceVersion` in an apply or merge patch, and delete preconditions, answer 409; so does
//!   an apply without `force` that would change a field another manager owns;
//! - installed CRDs (`install_crd`) are discoverable (`/apis/<group>/<version>`), prune and
//!   validate against their schema, and enforce their `self == oldSelf` (immutable) rules;
//! - the harness creates objects as `kubectl apply` does (last-applied annotation).

use std::{
    collections::BTreeMap,
    convert::Infallible,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Request, State},
    http::{Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

#[path = "managed_fields.rs"]
mod managed_fields;
use managed_fields as mf;

/// An object as `kubectl apply` sends it the first time: with the last-applied annotation (the
/// POST then names the manager `kubectl-client-side-apply`).
pub fn as_kubectl_applied(
    api_version: &str,
    kind: &str,
    ns: &str,
    name: &str,
    spec: Value,
) -> Value {
    let applied = json!({
        "apiVersion": api_version, "kind": kind,
        "metadata": {"annotations": {}, "name": name, "namespace": ns},
        "spec": spec,
    });
    let mut obj = applied.clone();
    obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
        format!("{applied}\n").into();
    obj
}

/// The field manager kubectl's client-side apply writes with.
pub const KUBECTL_MANAGER: &str = "kubectl-client-side-apply";

/// A resource type the fake serves.
struct Kind {
    /// Its name in the store and in request counts: the plural, with the group for installed
    /// CRDs (`roles.iam.services.k8s.aws`), since two groups may share a plural.
    plural: &'static str,
    api_version: &'static str,
    kind: &'static str,
    /// Custom resources: a status subresource and generation tracking.
    custom: bool,
    /// Installed from a CRD (`install_crd`): its group, URL plural and scope, and its schema,
    /// which objects are pruned to and validated against as a real server does.
    installed: Option<Installed>,
}

struct Installed {
    group: String,
    path_plural: String,
    namespaced: bool,
    schema: Value,
    validator: jsonschema::Validator,
}

const KINDS: &[Kind] = &[
    Kind {
        plural: "providerintegrations",
        api_version: "pim.confluent.cloud/v1alpha1",
        kind: "ProviderIntegration",
        custom: true,
        installed: None,
    },
    Kind {
        plural: "secrets",
        api_version: "v1",
        kind: "Secret",
        custom: false,
        installed: None,
    },
    Kind {
        plural: "configmaps",
        api_version: "v1",
        kind: "ConfigMap",
        custom: false,
        installed: None,
    },
    Kind {
        plural: "events",
        api_version: "events.k8s.io/v1",
        kind: "Event",
        custom: false,
        installed: None,
    },
    Kind {
        plural: "namespaces",
        api_version: "v1",
        kind: "Namespace",
        custom: false,
        installed: None,
    },
    Kind {
        plural: "leases",
        api_version: "coordination.k8s.io/v1",
        kind: "Lease",
        custom: false,
        installed: None,
    },
];

fn kind(plural: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.plural == plural)
}

type Key = (String, String, String); // (plural, namespace, name)

#[derive(Clone, Debug)]
struct LogEntry {
    rv: u64,
    /// When it was written; delivered to watchers `watch_lag` later.
    at: tokio::time::Instant,
    plural: String,
    namespace: String,
    kind: &'static str,
    object: Value,
}

/// A request the fake will refuse, to simulate API server failures.
#[derive(Clone, Debug)]
pub struct Fault {
    pub method: Method,
    /// Substring of the request path, e.g. `/status`.
    pub path_contains: String,
    /// Matching requests let through before the failures start.
    pub skip: u32,
    pub remaining: u32,
    pub status: u16,
}

#[derive(Default)]
struct Inner {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    log: Vec<LogEntry>,
    faults: Vec<Fault>,
    requests: BTreeMap<String, u64>,
    /// How far watch delivery lags behind writes.
    watch_lag: Duration,
    /// The server is down (`set_down`): every request fails, open watches are closed.
    down: bool,
    /// Per resource type, how long each request waits before it is served (`set_latency`).
    latency: BTreeMap<String, Duration>,
    /// Per resource type, bumped to end its open watches (`close_watches`).
    watch_epoch: BTreeMap<String, u64>,
    /// Per resource type, the oldest `resourceVersion` a watch may start from (`compact`).
    compacted: BTreeMap<String, u64>,
    /// Requests answered 503 because the server was down (`set_down`).
    answered_down: u64,
    /// Fields pruned from objects of installed CRDs (`pruned`).
    pruned: Vec<String>,
    /// Writes served per second, shared by every client (`set_write_throughput`); `None`: free.
    write_rate: Option<f64>,
    /// When the next write may be served: writes wait in one line, in arrival order.
    next_write: Option<tokio::time::Instant>,
    /// Writes that waited in that line, and their total wait.
    charged: (u64, Duration),
}

/// The fake API server; cheap to clone.
#[derive(Clone)]
pub struct FakeKube {
    inner: Arc<Mutex<Inner>>,
    changed: Arc<tokio::sync::watch::Sender<u64>>,
    /// CRDs installed (`install_crd`), served besides the built-in kinds.
    installed: Arc<Mutex<Vec<&'static Kind>>>,
}

impl Default for FakeKube {
    fn default() -> Self {
        Self::new()
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn status_error(code: u16, reason: &str, message: impl Into<String>) -> Response {
    let message = message.into();
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    });
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response()
}

/// A parsed API path.
struct Target {
    kind: &'static Kind,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

fn parse_path(path: &str, installed: &[&'static Kind]) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        rest => (None, rest),
    };
    let (plural, name, status) = match rest {
        [p] => (*p, None, false),
        [p, n] => (*p, Some(n.to_string()), false),
        [p, n, "status"] => (*p, Some(n.to_string()), true),
        _ => return None,
    };
    let kind = installed
        .iter()
        .copied()
        .find(|k| {
            k.installed
                .as_ref()
                .is_some_and(|i| i.group == group && i.path_plural == plural)
        })
        .or_else(|| kind(plural))?;
    // A cluster-scoped kind has no namespaced path, and a namespaced one's objects have one.
    if let Some(i) = &kind.installed
        && (i.namespaced != namespace.is_some() && (name.is_some() || !i.namespaced))
    {
        return None;
    }
    Some(Target {
        kind,
        namespace,
        name,
        status,
    })
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeKube {
    pub fn new() -> Self {
        let (tx, _) = tokio::sync::watch::channel(0);
        Self {
            inner: Arc::default(),
            changed: Arc::new(tx),
            installed: Arc::default(),
        }
    }

    /// A `kube::Client` talking to this fake in-process, with `default_ns` as default namespace.
    pub fn client(&self, default_ns: &str) -> kube::Client {
        kube::Client::new(self.router(), default_ns)
    }

    pub fn router(&self) -> Router {
        Router::new().fallback(handle).with_state(self.clone())
    }

    /// Serves the fake over HTTP on an ephemeral loopback port; returns its URL.
    pub async fn serve_http(&self) -> std::io::Result<(String, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = self.router();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok((url, task))
    }

    /// Writes a kubeconfig for a process to reach this fake served at `url` (`serve_http`).
    pub fn write_kubeconfig(url: &str, path: &std::path::Path) -> std::io::Result<()> {
        std::fs::write(
            path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{}}\n"
            ),
        )
    }

    /// Refuses the next `count` requests of `method` whose path contains `path_contains` (ends
    /// with it, when it ends with `$`).
    pub fn fail_next(&self, method: Method, path_contains: &str, count: u32, status: u16) {
        self.fail_after(method, path_contains, 0, count, status);
    }

    /// Lets `skip` matching requests pass, then refuses `count`.
    pub fn fail_after(
        &self,
        method: Method,
        path_contains: &str,
        skip: u32,
        count: u32,
        status: u16,
    ) {
        lock(&self.inner).faults.push(Fault {
            method,
            path_contains: path_contains.into(),
            skip,
            remaining: count,
            status,
        });
    }

    /// Takes the server down (every request answers 503, every open watch is closed, as when a
    /// real API server restarts) or brings it back.
    pub fn set_down(&self, down: bool) {
        lock(&self.inner).down = down;
        self.changed.send_modify(|n| *n += 1);
    }

    /// Delays every watch event by `lag` after its write, in order, like a lagging watch cache.
    pub fn set_watch_lag(&self, lag: Duration) {
        lock(&self.inner).watch_lag = lag;
    }

    /// Serves every request for `plural` after `latency` (a busy server, a slow etcd).
    pub fn set_latency(&self, plural: &str, latency: Duration) {
        lock(&self.inner).latency.insert(plural.into(), latency);
    }

    /// Charges for writes as a real API server does: `per_second` writes a second, shared by every
    /// client, served in arrival order (POST, PUT, PATCH, DELETE of any kind, Events and Leases
    /// included); a write waits for its turn, so its latency grows with the line before it, and
    /// its watch event follows the writes before it (the log is in commit order). A real
    /// kube-apiserver with etcd on 2 cores served about 500 a second (issue 31). `0`: free.
    pub fn set_write_throughput(&self, per_second: u32) {
        let mut inner = lock(&self.inner);
        inner.write_rate = (per_second > 0).then_some(f64::from(per_second));
        inner.next_write = None;
    }

    /// Writes charged so far, and how long they waited in line in all.
    pub fn charged_writes(&self) -> (u64, Duration) {
        lock(&self.inner).charged
    }

    /// Ends every open watch of `plural`, as a real server does when its watch cache for that
    /// resource restarts; clients must watch again.
    pub fn close_watches(&self, plural: &str) {
        *lock(&self.inner)
            .watch_epoch
            .entry(plural.into())
            .or_default() += 1;
        self.changed.send_modify(|n| *n += 1);
    }

    /// Compacts the history of `plural` and ends its open watches, as etcd compaction does: a
    /// watch restarted from an older `resourceVersion` is answered `410 Gone` (an ERROR event),
    /// so clients list again and whatever changed meanwhile arrives without its events.
    pub fn compact(&self, plural: &str) {
        {
            let mut inner = lock(&self.inner);
            let rv = inner.rv;
            inner.compacted.insert(plural.into(), rv);
        }
        self.close_watches(plural);
    }

    /// Drops all pending faults.
    pub fn clear_faults(&self) {
        lock(&self.inner).faults.clear();
    }

    /// Requests served, keyed by `METHOD plural[/status]`.
    pub fn requests(&self) -> BTreeMap<String, u64> {
        lock(&self.inner).requests.clone()
    }

    /// Serves a CustomResourceDefinition (a parsed CRD manifest, such as a cloud operator's
    /// published one): its group, plural and scope, with objects pruned to its storage version's
    /// schema and validated against it (422) on every write, as a real server does.
    pub fn install_crd(&self, crd: &Value) {
        let spec = &crd["spec"];
        let Some(version) = spec["versions"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["storage"] == true))
        else {
            panic!("a CRD with a storage version: {crd}");
        };
        let group = spec["group"].as_str().unwrap_or_default().to_string();
        let path_plural = spec["names"]["plural"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut schema = version["schema"]["openAPIV3Schema"].clone();
        openapi_nullable(&mut schema);
        let validator = jsonschema::validator_for(&schema).expect("a valid schema");
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        let kind: &'static Kind = Box::leak(Box::new(Kind {
            plural: leak(format!("{path_plural}.{group}")),
            api_version: leak(format!(
                "{group}/{}",
                version["name"].as_str().unwrap_or_default()
            )),
            kind: leak(
                spec["names"]["kind"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ),
            custom: version["subresources"]["status"].is_object(),
            installed: Some(Installed {
                group,
                path_plural,
                namespaced: spec["scope"] == "Namespaced",
                schema,
                validator,
            }),
        }));
        self.installed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(kind);
    }

    /// Fields dropped from objects of installed CRDs because their schema does not have them,
    /// as `plural: path` (a real server prunes them silently).
    pub fn pruned(&self) -> Vec<String> {
        lock(&self.inner).pruned.clone()
    }

    /// Requests that reached the server while it was down (answered 503), of every kind.
    pub fn requests_while_down(&self) -> u64 {
        lock(&self.inner).answered_down
    }

    /// Forgets the request counts (to count one phase of a benchmark).
    pub fn reset_requests(&self) {
        lock(&self.inner).requests.clear();
    }

    /// Every write of this resource type so far, in commit order (the order its watch events
    /// are delivered in), as `(namespace, name, resourceVersion)`.
    pub fn commits(&self, plural: &str) -> Vec<(String, String, u64)> {
        lock(&self.inner)
            .log
            .iter()
            .filter(|e| e.plural == plural)
            .map(|e| {
                let name = e.object["metadata"]["name"].as_str().unwrap_or_default();
                (e.namespace.clone(), name.to_string(), e.rv)
            })
            .collect()
    }

    /// A stored object, as JSON.
    pub fn get(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        lock(&self.inner)
            .objects
            .get(&(plural.into(), namespace.into(), name.into()))
            .cloned()
    }

    /// All stored objects of a type.
    pub fn list(&self, plural: &str) -> Vec<Value> {
        lock(&self.inner)
            .objects
            .iter()
            .filter(|(k, _)| k.0 == plural)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// How many stored objects of a type `f` holds for, read in place: a benchmark that polls
    /// 10,000 objects must not copy them all (under the lock every request waits for).
    pub fn count(&self, plural: &str, f: impl Fn(&Value) -> bool) -> usize {
        lock(&self.inner)
            .objects
            .iter()
            .filter(|(k, v)| k.0 == plural && f(v))
            .count()
    }

    /// Resolves when any object changes (or after `timeout`).
    pub async fn wait_change(&self, timeout: Duration) {
        let mut rx = self.changed.subscribe();
        let _ = tokio::time::timeout(timeout, rx.changed()).await;
    }

    fn record(
        inner: &mut Inner,
        plural: &str,
        namespace: &str,
        kind: &'static str,
        object: &Value,
    ) {
        inner.log.push(LogEntry {
            rv: inner.rv,
            at: tokio::time::Instant::now(),
            plural: plural.into(),
            namespace: namespace.into(),
            kind,
            object: object.clone(),
        });
    }

    fn notify(&self, rv: u64) {
        self.changed.send_replace(rv);
    }

    /// Stores a new object. `how` is the field manager and its operation (`Update` for a POST,
    /// `Apply` for a server-side apply that creates).
    fn create(&self, t: &Target, mut obj: Value, manager: &str, apply: bool) -> Response {
        let ns = t.namespace.clone().unwrap_or_default();
        let Some(name) = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(String::from)
        else {
            return status_error(422, "Invalid", "metadata.name: Required value");
        };
        let key = (t.kind.plural.to_string(), ns.clone(), name.clone());
        let mut inner = lock(&self.inner);
        if inner.objects.contains_key(&key) {
            return status_error(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", t.kind.plural),
            );
        }
        inner.rv += 1;
        let rv = inner.rv;
        let meta = obj.as_object_mut().and_then(|o| {
            o.insert("apiVersion".into(), t.kind.api_version.into());
            o.insert("kind".into(), t.kind.kind.into());
            o.get_mut("metadata").and_then(Value::as_object_mut)
        });
        let Some(meta) = meta else {
            return status_error(400, "BadRequest", "metadata must be an object");
        };
        // Cluster-scoped objects (Namespaces) have no namespace, as a real server stores them.
        if t.namespace.is_some() {
            meta.insert("namespace".into(), ns.clone().into());
        } else {
            meta.remove("namespace");
        }
        meta.insert("uid".into(), uuid::Uuid::new_v4().to_string().into());
        meta.insert("resourceVersion".into(), rv.to_string().into());
        meta.insert("creationTimestamp".into(), now().into());
        meta.remove("deletionTimestamp");
        meta.remove("managedFields");
        if t.kind.custom {
            meta.insert("generation".into(), 1.into());
            // The main endpoint ignores status on create.
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
        }
        if let Err(refused) = admit(t.kind, &mut obj, &mut inner.pruned) {
            return *refused;
        }
        let mut entries = Vec::new();
        let op = if apply { "Apply" } else { "Update" };
        mf::own(&mut entries, manager, op, None, mf::of(&obj));
        mf::write(&mut obj, &entries, t.kind.api_version, &now());
        inner.objects.insert(key, obj.clone());
        Self::record(&mut inner, t.kind.plural, &ns, "ADDED", &obj);
        drop(inner);
        self.notify(rv);
        (StatusCode::CREATED, axum::Json(obj)).into_response()
    }

    /// Stores the next version of an object, applying the API server's rules. `edit` returns the
    /// candidate; `manager` is who made an update (`None`: an apply that recorded its own
    /// ownership in the candidate's `managedFields`).
    fn update(
        &self,
        t: &Target,
        name: &str,
        manager: Option<&str>,
        edit: impl FnOnce(&Value) -> Result<Value, Box<Response>>,
    ) -> Response {
        let ns = t.namespace.clone().unwrap_or_default();
        let key = (t.kind.plural.to_string(), ns.clone(), name.to_string());
        let mut inner = lock(&self.inner);
        let Some(old) = inner.objects.get(&key).cloned() else {
            return status_error(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", t.kind.plural),
            );
        };
        let candidate = match edit(&old) {
            Ok(v) => v,
            Err(r) => return *r,
        };
        // Optimistic concurrency: a stated resourceVersion must be current.
        if let Some(want) = candidate
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            && Some(want)
                != old
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
        {
            return conflict(t, name);
        }
        let mut new = candidate.clone();
        if t.kind.custom {
            if t.status {
                // The status subresource changes status only.
                new = old.clone();
                match candidate.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Some(o) = new.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
            } else {
                // The main endpoint never changes status.
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Some(o) = new.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
            }
        }
        // Server-owned metadata cannot be changed by clients.
        for f in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "generation",
            "namespace",
            "name",
            "resourceVersion",
            "managedFields",
        ] {
            match old.pointer(&format!("/metadata/{f}")) {
                Some(v) => new["metadata"][f] = v.clone(),
                None => {
                    if let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove(f);
                    }
                }
            }
        }
        new["apiVersion"] = t.kind.api_version.into();
        new["kind"] = t.kind.kind.into();
        if let Err(refused) = admit(t.kind, &mut new, &mut inner.pruned) {
            return *refused;
        }
        if let Some(i) = &t.kind.installed {
            let mut violations = Vec::new();
            immutable_violations(&i.schema, &old, &new, "", &mut violations);
            if !violations.is_empty() {
                return status_error(
                    422,
                    "Invalid",
                    format!(
                        "{} \"{name}\" is invalid: {}",
                        t.kind.kind,
                        violations.join("; ")
                    ),
                );
            }
        }
        // Field ownership.
        let subresource = t.status.then_some("status");
        let mut entries = match manager {
            None => mf::read(&candidate),
            Some(m) => {
                let mut entries = mf::read(&old);
                let changed = mf::changed(&old, &new, "");
                let changed = match (t.kind.custom, t.status) {
                    (true, true) => changed
                        .get("f:status")
                        .map(|s| json!({ "f:status": s }))
                        .and_then(|v| v.as_object().cloned())
                        .unwrap_or_default(),
                    (true, false) => {
                        let mut c = changed;
                        c.remove("f:status");
                        c
                    }
                    _ => changed,
                };
                if !changed.is_empty() {
                    mf::own(&mut entries, m, "Update", subresource, changed);
                }
                entries
            }
        };
        mf::forget_removed(&mut entries, &mf::minus(&mf::of(&old), &mf::of(&new)));
        let time = now();
        mf::write(&mut new, &entries, t.kind.api_version, &time);
        if same_ignoring_times(&new, &old) {
            // A no-op write does not change resourceVersion, like a real server.
            return axum::Json(old).into_response();
        }
        if t.kind.custom && new.get("spec") != old.get("spec") {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            new["metadata"]["generation"] = (g + 1).into();
        }
        inner.rv += 1;
        let rv = inner.rv;
        new["metadata"]["resourceVersion"] = rv.to_string().into();
        let finalizers_empty = new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty());
        if new.pointer("/metadata/deletionTimestamp").is_some() && finalizers_empty {
            inner.objects.remove(&key);
            Self::record(&mut inner, t.kind.plural, &ns, "DELETED", &new);
        } else {
            inner.objects.insert(key, new.clone());
            Self::record(&mut inner, t.kind.plural, &ns, "MODIFIED", &new);
        }
        drop(inner);
        self.notify(rv);
        axum::Json(new).into_response()
    }

    fn delete(&self, t: &Target, name: &str, options: &Value) -> Response {
        let ns = t.namespace.clone().unwrap_or_default();
        let key = (t.kind.plural.to_string(), ns.clone(), name.to_string());
        let mut inner = lock(&self.inner);
        let Some(mut obj) = inner.objects.get(&key).cloned() else {
            return status_error(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", t.kind.plural),
            );
        };
        // Preconditions: this very object, at this version.
        for field in ["uid", "resourceVersion"] {
            if let Some(want) = options
                .pointer(&format!("/preconditions/{field}"))
                .and_then(Value::as_str)
                && obj
                    .pointer(&format!("/metadata/{field}"))
                    .and_then(Value::as_str)
                    != Some(want)
            {
                return conflict(t, name);
            }
        }
        let has_finalizers = obj
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        inner.rv += 1;
        let rv = inner.rv;
        obj["metadata"]["resourceVersion"] = rv.to_string().into();
        if has_finalizers {
            if obj.pointer("/metadata/deletionTimestamp").is_none() {
                obj["metadata"]["deletionTimestamp"] = now().into();
                if t.kind.custom {
                    // Custom resources bump generation when deletion starts.
                    let g = obj
                        .pointer("/metadata/generation")
                        .and_then(Value::as_i64)
                        .unwrap_or(1);
                    obj["metadata"]["generation"] = (g + 1).into();
                }
            }
            inner.objects.insert(key, obj.clone());
            Self::record(&mut inner, t.kind.plural, &ns, "MODIFIED", &obj);
        } else {
            inner.objects.remove(&key);
            Self::record(&mut inner, t.kind.plural, &ns, "DELETED", &obj);
        }
        drop(inner);
        self.notify(rv);
        axum::Json(obj).into_response()
    }

    /// A LIST, paginated with `limit` and `continue` like a real server's consistent list. With
    /// `resourceVersion=0` a real server answers from its watch cache in one piece, ignoring
    /// `limit`; so does this one.
    fn list_response(&self, t: &Target, query: &BTreeMap<String, String>) -> Response {
        let inner = lock(&self.inner);
        let from_cache = query.get("resourceVersion").is_some_and(|v| v == "0");
        let limit = query
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > 0 && !from_cache)
            .unwrap_or(usize::MAX);
        // The token is the last (namespace, name) served, hex-encoded so no URL encoding
        // touches it.
        let after: Option<(String, String)> = query.get("continue").and_then(|c| {
            let bytes: Option<Vec<u8>> = (0..c.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(c.get(i..i + 2)?, 16).ok())
                .collect();
            let text = String::from_utf8(bytes?).ok()?;
            let (ns, name) = text.split_once('\n')?;
            Some((ns.to_string(), name.to_string()))
        });
        let mut matching = inner.objects.iter().filter(|(k, _)| {
            k.0 == t.kind.plural
                && t.namespace.as_ref().is_none_or(|ns| *ns == k.1)
                && after
                    .as_ref()
                    .is_none_or(|(ns, name)| (&k.1, &k.2) > (ns, name))
        });
        let items: Vec<(String, Value)> = matching
            .by_ref()
            .take(limit)
            .map(|(k, v)| {
                let token: String = format!("{}\n{}", k.1, k.2)
                    .bytes()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                (token, v.clone())
            })
            .collect();
        let more = matching.next().is_some();
        let mut metadata = json!({"resourceVersion": inner.rv.to_string()});
        if more && let Some((last, _)) = items.last() {
            metadata["continue"] = last.clone().into();
        }
        axum::Json(json!({
            "apiVersion": t.kind.api_version,
            "kind": format!("{}List", t.kind.kind),
            "metadata": metadata,
            "items": items.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        }))
        .into_response()
    }

    fn watch(&self, t: &Target, since: u64, timeout: Duration) -> Response {
        let plural = t.kind.plural.to_string();
        let compacted = lock(&self.inner).compacted.get(&plural).copied();
        if let Some(c) = compacted
            && since < c
        {
            let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
                "metadata": {}, "status": "Failure", "reason": "Expired", "code": 410,
                "message": format!("too old resource version: {since} ({c})")}});
            return Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(format!("{gone}\n")))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
        let namespace = t.namespace.clone();
        let me = self.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.changed.subscribe();
        let epoch = lock(&self.inner).watch_epoch.get(&plural).copied();
        let stream = async_stream(move |tx| async move {
            let mut last = since;
            loop {
                let batch: Vec<LogEntry> = {
                    let inner = lock(&me.inner);
                    // Ended (`set_down`, `close_watches`) before anything written after.
                    if inner.down || inner.watch_epoch.get(&plural).copied() != epoch {
                        return;
                    }
                    let start = inner.log.partition_point(|e| e.rv <= last);
                    inner.log[start..].to_vec()
                };
                let lag = lock(&me.inner).watch_lag;
                for e in batch {
                    if !lag.is_zero() {
                        tokio::time::sleep_until(e.at + lag).await;
                    }
                    last = e.rv;
                    if e.plural != plural || namespace.as_ref().is_some_and(|ns| *ns != e.namespace)
                    {
                        continue;
                    }
                    let mut line = serde_json::to_vec(&json!({"type": e.kind, "object": e.object}))
                        .unwrap_or_default();
                    line.push(b'\n');
                    if tx.send(Ok(Bytes::from(line))).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    r = rx.changed() => if r.is_err() { return },
                    _ = tokio::time::sleep_until(deadline) => return,
                }
                let ended = {
                    let inner = lock(&me.inner);
                    inner.down || inner.watch_epoch.get(&plural).copied() != epoch
                };
                if ended {
                    return;
                }
            }
        });
        Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from_stream(stream))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    }
}

/// OpenAPI's `nullable`, as JSON Schema says it.
fn openapi_nullable(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if o.get("nullable") == Some(&Value::Bool(true))
                && let Some(Value::String(t)) = o.get("type").cloned()
            {
                o.insert("type".into(), json!([t, "null"]));
            }
            o.values_mut().for_each(openapi_nullable);
        }
        Value::Array(a) => a.iter_mut().for_each(openapi_nullable),
        _ => {}
    }
}

/// Drops the fields `schema` does not declare (outside `x-kubernetes-preserve-unknown-fields`),
/// as a structural schema does; returns their paths. Metadata is the server's own.
fn prune(schema: &Value, value: &mut Value, at: &str, dropped: &mut Vec<String>) {
    if schema["x-kubernetes-preserve-unknown-fields"] == true || at == ".metadata" {
        return;
    }
    match value {
        Value::Object(o) => {
            let keys: Vec<String> = o.keys().cloned().collect();
            for k in keys {
                let path = format!("{at}.{k}");
                let sub = match schema["properties"].get(&k) {
                    Some(s) => s.clone(),
                    None if schema["additionalProperties"].is_object() => {
                        schema["additionalProperties"].clone()
                    }
                    None if at.is_empty() && ["apiVersion", "kind"].contains(&k.as_str()) => {
                        continue;
                    }
                    None => {
                        o.remove(&k);
                        dropped.push(path);
                        continue;
                    }
                };
                if let Some(v) = o.get_mut(&k) {
                    prune(&sub, v, &path, dropped);
                }
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter_mut().enumerate() {
                prune(&schema["items"], v, &format!("{at}[{i}]"), dropped);
            }
        }
        _ => {}
    }
}

/// What a real server does to an object of an installed CRD before storing it: prunes the
/// fields its schema lacks, then validates it (422 Invalid with every violation).
fn admit(kind: &Kind, obj: &mut Value, pruned: &mut Vec<String>) -> Result<(), Box<Response>> {
    let Some(i) = &kind.installed else {
        return Ok(());
    };
    let mut dropped = Vec::new();
    prune(&i.schema, obj, "", &mut dropped);
    pruned.extend(dropped.into_iter().map(|p| format!("{}: {p}", kind.plural)));
    let errors: Vec<String> = i
        .validator
        .iter_errors(obj)
        .map(|e| e.to_string())
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Box::new(status_error(
            422,
            "Invalid",
            format!("{} is invalid: {}", kind.kind, errors.join("; ")),
        )))
    }
}

/// `GET /apis/<group>/<version>` for the installed CRDs: the resource list a client discovers a
/// kind by (404 for a group version nothing serves, as a real server answers).
fn discovery(path: &str, installed: &[&'static Kind]) -> Option<Response> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let ["apis", group, version] = parts.as_slice() else {
        return None;
    };
    let group_version = format!("{group}/{version}");
    let resources: Vec<Value> = installed
        .iter()
        .filter(|k| k.api_version == group_version)
        .filter_map(|k| {
            let i = k.installed.as_ref()?;
            Some(
                json!({"name": i.path_plural, "singularName": k.kind.to_lowercase(),
                "namespaced": i.namespaced, "kind": k.kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}),
            )
        })
        .collect();
    Some(if resources.is_empty() {
        status_error(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    } else {
        axum::Json(json!({"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": group_version, "resources": resources}))
        .into_response()
    })
}

/// The fields `fields` sets, as paths of plain field names (entries of map lists left out).
fn leaf_paths(fields: &mf::Fields, at: &[String], out: &mut Vec<Vec<String>>) {
    for (k, v) in fields {
        let Some(name) = k.strip_prefix("f:") else {
            continue;
        };
        let mut path = at.to_vec();
        path.push(name.to_string());
        match v.as_object() {
            Some(children) if children.keys().any(|c| c.starts_with("f:")) => {
                leaf_paths(children, &path, out)
            }
            _ => out.push(path),
        }
    }
}

fn owns_path(fields: &mf::Fields, path: &[String]) -> bool {
    let mut at = fields;
    for (i, step) in path.iter().enumerate() {
        match at.get(&format!("f:{step}")).and_then(Value::as_object) {
            Some(next) if i + 1 < path.len() => at = next,
            Some(_) => return true,
            None => return false,
        }
    }
    false
}

/// Server-side apply without `force`: a field this apply sets to another value than it has,
/// and that another manager owns, is a conflict (409), named as a real server names it.
fn apply_conflicts(
    old: &Value,
    applied: &Value,
    fields: &mf::Fields,
    entries: &[mf::Entry],
    manager: &str,
) -> Vec<String> {
    let mut leaves = Vec::new();
    leaf_paths(fields, &[], &mut leaves);
    let mut out = Vec::new();
    for path in leaves {
        let pointer = format!("/{}", path.join("/"));
        if old.pointer(&pointer) == applied.pointer(&pointer) {
            continue;
        }
        for e in entries.iter().filter(|e| e.manager != manager) {
            if owns_path(&e.fields, &path) {
                out.push(format!(
                    "conflict with \"{}\": .{}",
                    e.manager,
                    path.join(".")
                ));
            }
        }
    }
    out
}

/// The CRD's `self == oldSelf` rules (immutable fields), checked as a real server checks
/// transition rules: only where the old object has the field.
fn immutable_violations(schema: &Value, old: &Value, new: &Value, at: &str, out: &mut Vec<String>) {
    let immutable = schema["x-kubernetes-validations"]
        .as_array()
        .is_some_and(|rules| rules.iter().any(|r| r["rule"] == "self == oldSelf"));
    if immutable && !old.is_null() && old != new {
        let message = schema["x-kubernetes-validations"][0]["message"]
            .as_str()
            .unwrap_or("field is immutable");
        out.push(format!("{at}: Invalid value: {message}"));
    }
    if let (Some(props), Some(o), Some(n)) = (
        schema["properties"].as_object(),
        old.as_object(),
        new.as_object(),
    ) {
        for (k, sub) in props {
            if let Some(ov) = o.get(k) {
                let nv = n.get(k).unwrap_or(&Value::Null);
                immutable_violations(sub, ov, nv, &format!("{at}.{k}"), out);
            }
        }
    }
}

/// A stream fed by a task, so the watch loop can be written as plain async code.
fn async_stream<F, Fut>(f: F) -> impl futures::Stream<Item = Result<Bytes, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Bytes, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn query_map(q: Option<&str>) -> BTreeMap<String, String> {
    q.map(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    })
    .unwrap_or_default()
}

fn conflict(t: &Target, name: &str) -> Response {
    status_error(
        409,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            t.kind.plural
        ),
    )
}

/// Equal but for the times in `managedFields` (a write that changes nothing is a no-op).
fn same_ignoring_times(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(list) = v
            .pointer_mut("/metadata/managedFields")
            .and_then(Value::as_array_mut)
        {
            for e in list {
                if let Some(o) = e.as_object_mut() {
                    o.remove("time");
                }
            }
        }
        v
    };
    strip(a) == strip(b)
}

/// A patch request, as the handler read it.
struct PatchRequest<'a> {
    content_type: &'a str,
    body: &'a [u8],
    manager: &'a str,
    /// `force=true`: an apply takes the fields it sets from other managers.
    force: bool,
}

/// The candidate object after a patch. Server-side apply records its field ownership in the
/// candidate; other patches leave that to `update`.
fn apply_patch(t: &Target, old: &Value, p: &PatchRequest) -> Result<Value, Box<Response>> {
    let bad = |e: String| Box::new(status_error(422, "Invalid", e));
    let mut new = old.clone();
    let ct = p.content_type;
    if ct.starts_with("application/json-patch+json") {
        let mut ops: Vec<Value> = serde_json::from_slice(p.body).map_err(|e| bad(e.to_string()))?;
        // Like the API server, a `test` for null passes on a missing path.
        ops.retain(|op| {
            !(op["op"] == "test"
                && op["value"].is_null()
                && op["path"]
                    .as_str()
                    .is_some_and(|p| old.pointer(p).is_none()))
        });
        let patch: json_patch::Patch =
            serde_json::from_value(Value::Array(ops)).map_err(|e| bad(e.to_string()))?;
        json_patch::patch(&mut new, &patch).map_err(|e| bad(e.to_string()))?;
    } else if ct.starts_with("application/merge-patch+json")
        || ct.starts_with("application/strategic-merge-patch+json")
    {
        let patch: Value = serde_json::from_slice(p.body).map_err(|e| bad(e.to_string()))?;
        json_patch::merge(&mut new, &patch);
    } else if ct.starts_with("application/apply-patch+yaml") {
        let mut applied: Value = serde_json::from_slice(p.body)
            .map_err(|e| bad(format!("apply patches must be JSON here: {e}")))?;
        // `resourceVersion` in an applied configuration is a precondition.
        if let Some(want) = applied
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            && old
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                != Some(want)
        {
            let name = old
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            return Err(Box::new(conflict(t, name)));
        }
        if let Some(m) = applied.get_mut("metadata").and_then(Value::as_object_mut) {
            m.retain(|k, _| {
                ["labels", "annotations", "finalizers", "ownerReferences"].contains(&k.as_str())
            });
        }
        let (fields, subresource) = if t.status {
            if let Some(o) = applied.as_object_mut() {
                o.retain(|k, _| k == "status");
            }
            (mf::of_status(&applied), Some("status"))
        } else if t.kind.custom {
            if let Some(o) = applied.as_object_mut() {
                o.remove("status");
            }
            (mf::without_status(&applied), None)
        } else {
            (mf::of(&applied), None)
        };
        let mut entries = mf::read(old);
        let previous = entries
            .iter()
            .find(|e| {
                e.manager == p.manager && e.operation == "Apply" && e.subresource == subresource
            })
            .map(|e| e.fields.clone())
            .unwrap_or_default();
        let others = entries
            .iter()
            .filter(|e| {
                !(e.manager == p.manager && e.operation == "Apply" && e.subresource == subresource)
            })
            .fold(mf::Fields::new(), |acc, e| mf::union(&acc, &e.fields));
        if !p.force {
            let conflicts = apply_conflicts(old, &applied, &fields, &entries, p.manager);
            if !conflicts.is_empty() {
                return Err(Box::new(status_error(
                    409,
                    "Conflict",
                    format!(
                        "Apply failed with {} conflict(s): {}",
                        conflicts.len(),
                        conflicts.join("; ")
                    ),
                )));
            }
        }
        // What this manager applied before and no longer applies, and nobody else owns, goes.
        let dropped = mf::minus(&mf::minus(&previous, &fields), &others);
        mf::remove(&mut new, &dropped);
        mf::merge(&mut new, &applied);
        mf::own(&mut entries, p.manager, "Apply", subresource, fields);
        mf::write(&mut new, &entries, t.kind.api_version, &now());
    } else {
        return Err(Box::new(status_error(
            415,
            "UnsupportedMediaType",
            format!("unsupported patch type {ct}"),
        )));
    }
    Ok(new)
}

async fn handle(State(fake): State<FakeKube>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = query_map(req.uri().query());
    let headers = req.headers().clone();
    {
        // A server that is down answers nothing properly, whatever is asked.
        let mut inner = lock(&fake.inner);
        if inner.down {
            inner.answered_down += 1;
            return status_error(503, "ServiceUnavailable", "the API server is down");
        }
    }
    // The health endpoint a probe asks (served to every authenticated user by a real server).
    if path == "/readyz" {
        return (StatusCode::OK, "ok").into_response();
    }
    let installed = fake
        .installed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some(list) = discovery(&path, &installed) {
        return list;
    }
    let Some(t) = parse_path(&path, &installed) else {
        return status_error(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        );
    };
    let latency = lock(&fake.inner).latency.get(t.kind.plural).copied();
    if let Some(d) = latency {
        tokio::time::sleep(d).await;
    }
    // A write waits for its turn in the server's one line of writes (`set_write_throughput`).
    let is_write = matches!(
        method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let turn = {
        let mut inner = lock(&fake.inner);
        match inner.write_rate.filter(|_| is_write) {
            Some(rate) => {
                let now = tokio::time::Instant::now();
                let slot = inner.next_write.map_or(now, |n| n.max(now));
                inner.next_write = Some(slot + Duration::from_secs_f64(1.0 / rate));
                inner.charged.0 += 1;
                inner.charged.1 += slot - now;
                Some(slot)
            }
            None => None,
        }
    };
    if let Some(slot) = turn {
        tokio::time::sleep_until(slot).await;
    }
    {
        let mut inner = lock(&fake.inner);
        if inner.down {
            inner.answered_down += 1;
            return status_error(503, "ServiceUnavailable", "the API server is down");
        }
        let label = format!(
            "{method} {}{}",
            t.kind.plural,
            if t.status { "/status" } else { "" }
        );
        *inner.requests.entry(label).or_default() += 1;
        if let Some(i) = inner.faults.iter().position(|f| {
            // A trailing `$` anchors the match at the end of the path.
            let hit = match f.path_contains.strip_suffix('$') {
                Some(end) => path.ends_with(end),
                None => path.contains(&f.path_contains),
            };
            f.method == method && hit
        }) {
            if inner.faults[i].skip > 0 {
                inner.faults[i].skip -= 1;
            } else {
                let status = inner.faults[i].status;
                inner.faults[i].remaining = inner.faults[i].remaining.saturating_sub(1);
                if inner.faults[i].remaining == 0 {
                    inner.faults.remove(i);
                }
                return status_error(status, "InternalError", "injected failure");
            }
        }
    }
    let body = match axum::body::to_bytes(req.into_body(), 16 << 20).await {
        Ok(b) => b,
        Err(e) => return status_error(400, "BadRequest", e.to_string()),
    };
    // Who writes: `fieldManager`, or `unknown` like a real server given none it can derive.
    let manager = query
        .get("fieldManager")
        .cloned()
        .unwrap_or_else(|| "unknown".into());
    match (&method, &t.name) {
        (&Method::GET, None) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            let since = query
                .get("resourceVersion")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let timeout = query
                .get("timeoutSeconds")
                .and_then(|v| v.parse().ok())
                .unwrap_or(290);
            fake.watch(&t, since, Duration::from_secs(timeout))
        }
        (&Method::GET, None) => fake.list_response(&t, &query),
        (&Method::POST, None) => match serde_json::from_slice(&body) {
            Ok(v) => fake.create(&t, v, &manager, false),
            Err(e) => status_error(400, "BadRequest", e.to_string()),
        },
        (&Method::GET, Some(name)) => {
            let ns = t.namespace.clone().unwrap_or_default();
            match fake.get(t.kind.plural, &ns, name) {
                Some(v) => axum::Json(v).into_response(),
                None => status_error(
                    404,
                    "NotFound",
                    format!("{} \"{name}\" not found", t.kind.plural),
                ),
            }
        }
        (&Method::PUT, Some(name)) => match serde_json::from_slice::<Value>(&body) {
            Ok(v) => fake.update(&t, name, Some(&manager), |_| Ok(v)),
            Err(e) => status_error(400, "BadRequest", e.to_string()),
        },
        (&Method::PATCH, Some(name)) => {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let apply = content_type.starts_with("application/apply-patch+yaml");
            let ns = t.namespace.clone().unwrap_or_default();
            // Server-side apply creates a missing object (used for Leases and ConfigMaps).
            if apply && !t.status && fake.get(t.kind.plural, &ns, name).is_none() {
                return match serde_json::from_slice(&body) {
                    Ok(v) => fake.create(&t, v, &manager, true),
                    Err(e) => status_error(400, "BadRequest", e.to_string()),
                };
            }
            let p = PatchRequest {
                content_type,
                body: &body,
                manager: &manager,
                force: query.get("force").is_some_and(|f| f == "true"),
            };
            let updater = (!apply).then_some(manager.as_str());
            fake.update(&t, name, updater, |old| apply_patch(&t, old, &p))
        }
        (&Method::DELETE, Some(name)) => {
            let options = serde_json::from_slice(&body).unwrap_or(Value::Null);
            fake.delete(&t, name, &options)
        }
        _ => status_error(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported on {path}"),
        ),
    }
}
