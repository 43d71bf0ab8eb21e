//! Prometheus metrics of the operator (text format via prometheus-client).

use parking_lot::Mutex;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: String,
    /// HTTP status code, or `error` when no response arrived.
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

fn latency_buckets() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

/// All series the operator exports.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabel, Counter>,
    reconcile_duration: Histogram,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<OperationLabel, Histogram>,
    resources: Family<StateLabel, Gauge>,
    validation: Family<StateLabel, Gauge>,
    deletions_blocked: Counter,
    writes_rejected: Counter,
    unexpected: Family<OperationLabel, Counter>,
    leader: Gauge<i64, AtomicI64>,
    api_limit: Gauge<i64, AtomicI64>,
    paused: Gauge<i64, AtomicI64>,
    api_in_flight: Gauge<i64, AtomicI64>,
    /// Serializes encoding (the registry itself is lock-free for updates).
    encode_lock: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("pio");
        let reconciles = Family::<ResultLabel, Counter>::default();
        let reconcile_duration = latency_buckets();
        let requests = Family::<RequestLabels, Counter>::default();
        let request_duration = Family::<OperationLabel, Histogram>::new_with_constructor(
            latency_buckets as fn() -> Histogram,
        );
        let resources = Family::<StateLabel, Gauge>::default();
        let validation = Family::<StateLabel, Gauge>::default();
        let deletions_blocked = Counter::default();
        let writes_rejected = Counter::default();
        let unexpected = Family::<OperationLabel, Counter>::default();
        let leader = Gauge::<i64, AtomicI64>::default();
        let api_limit = Gauge::<i64, AtomicI64>::default();
        let api_in_flight = Gauge::<i64, AtomicI64>::default();
        let paused = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "resources_paused",
            "ProviderIntegration resources paused by pim.confluent.cloud/paused (on them or their namespace)",
            paused.clone(),
        );
        registry.register(
            "pim_concurrency_limit",
            "Provider Integration API calls allowed in flight now (adapts to latency, 429 and 5xx; at most --concurrency)",
            api_limit.clone(),
        );
        registry.register(
            "pim_calls_in_flight",
            "Provider Integration API calls in flight now",
            api_in_flight.clone(),
        );
        registry.register(
            "reconciles",
            "Reconciles by result (ok, error)",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of a reconcile",
            reconcile_duration.clone(),
        );
        registry.register(
            "pim_requests",
            "Provider Integration API requests by operation and HTTP status code",
            requests.clone(),
        );
        registry.register(
            "pim_request_duration_seconds",
            "Provider Integration API request latency by operation",
            request_duration.clone(),
        );
        registry.register(
            "resources",
            "ProviderIntegration resources by state (ready, stalled, reconciling)",
            resources.clone(),
        );
        registry.register(
            "validation",
            "ProviderIntegration resources by their Validated condition (validated, failing, pending)",
            validation.clone(),
        );
        registry.register(
            "deletions_blocked",
            "Deletions refused because connectors still use the integration",
            deletions_blocked.clone(),
        );
        registry.register(
            "kube_writes_rejected",
            "Writes to a ProviderIntegration the Kubernetes API server refused as invalid (422)",
            writes_rejected.clone(),
        );
        registry.register(
            "pim_unexpected_responses",
            "Provider Integration API answers that could not be decoded, by operation",
            unexpected.clone(),
        );
        registry.register(
            "leader",
            "1 when this replica holds the leader lease",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_duration,
            requests,
            request_duration,
            resources,
            validation,
            deletions_blocked,
            writes_rejected,
            unexpected,
            leader,
            api_limit,
            paused,
            api_in_flight,
            encode_lock: Mutex::new(()),
        }
    }

    pub fn reconciled(&self, result: &str, elapsed: Duration) {
        self.reconciles
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
        self.reconcile_duration.observe(elapsed.as_secs_f64());
    }

    /// Reconciles finished so far, whatever their result: how tests know the operator looked
    /// again, without sleeping on a guess.
    pub fn reconciles(&self) -> u64 {
        ["ok", "error"]
            .iter()
            .map(|r| {
                self.reconciles
                    .get_or_create(&ResultLabel {
                        result: (*r).into(),
                    })
                    .get()
            })
            .sum()
    }

    pub fn deletion_blocked(&self) {
        self.deletions_blocked.inc();
    }

    pub fn write_rejected(&self) {
        self.writes_rejected.inc();
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(leader as i64);
    }

    /// Sets the number of paused resources.
    pub fn set_paused(&self, n: i64) {
        self.paused.set(n);
    }

    /// Sets the adaptive limit of API calls in flight, and how many are.
    pub fn set_api_concurrency(&self, limit: usize, in_flight: usize) {
        self.api_limit.set(limit as i64);
        self.api_in_flight.set(in_flight as i64);
    }

    /// Sets the number of resources per state, and per state of their `Validated` condition.
    pub fn set_resources(&self, states: &[(&str, i64)], validation: &[(&str, i64)]) {
        for (family, values) in [(&self.resources, states), (&self.validation, validation)] {
            for (s, n) in values {
                family
                    .get_or_create(&StateLabel { state: (*s).into() })
                    .set(*n);
            }
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let _g = self.encode_lock.lock();
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl crate::pim::RequestObserver for Metrics {
    fn observe(&self, operation: &'static str, status: Option<u16>, elapsed: Duration) {
        let code = status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "error".into());
        self.requests
            .get_or_create(&RequestLabels {
                operation: operation.into(),
                code,
            })
            .inc();
        self.request_duration
            .get_or_create(&OperationLabel {
                operation: operation.into(),
            })
            .observe(elapsed.as_secs_f64());
    }

    fn unexpected(&self, operation: &'static str) {
        self.unexpected
            .get_or_create(&OperationLabel {
                operation: operation.into(),
            })
            .inc();
    }
}
