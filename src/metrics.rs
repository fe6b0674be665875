//! The daemon's metrics, in Prometheus's text format (`sys/metrics`).
//!
//! One registry for the process: the layers that do the work record into
//! it with one call each ([`request`], [`barrier`], [`kms_request`], …),
//! and the HTTP endpoint renders it with what only the node knows at
//! scrape time ([`Scrape`]: seal state, HA role, keyring term). Every label
//! is a `&'static str` from a bounded set (an action's name, an error
//! kind, a storage backend): no secret, path or token ever becomes a
//! label, and recording allocates nothing.
//!
//! Counts of hot operations (requests, barrier operations, commits) are
//! their histograms' `_count` series: one update per operation.

use std::fmt;
use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The content type of what [`render`] writes (OpenMetrics text, which
/// Prometheus asks for first and parses).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A request through the gate: its action and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: &'static str,
    outcome: &'static str,
}

/// One label, named `operation`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: &'static str,
}

/// A KMS request: its API action and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KmsLabels {
    action: &'static str,
    outcome: &'static str,
}

/// One label, named `action`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: &'static str,
}

/// How the daemon was unsealed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    method: &'static str,
}

/// An outcome only.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// A storage backend.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabel {
    backend: &'static str,
}

/// An audit device's type.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeviceLabel {
    device: &'static str,
}

/// Histograms with fixed buckets: `start` seconds, doubling `count` times.
#[derive(Clone)]
struct Buckets {
    start: f64,
    count: u16,
}

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(self.start, 2.0, self.count))
    }
}

/// 10 µs to about 1.3 s: barrier operations.
const FAST: Buckets = Buckets {
    start: 0.000_01,
    count: 18,
};
/// 100 µs to about 3.3 s: requests, commits.
const REQUEST: Buckets = Buckets {
    start: 0.000_1,
    count: 16,
};
/// 1 ms to about 33 s: KMS requests, unseals.
const SLOW: Buckets = Buckets {
    start: 0.001,
    count: 16,
};

type Histograms<L> = Family<L, Histogram, Buckets>;

/// Every metric family, registered once.
struct Metrics {
    registry: Registry,
    requests: Histograms<RequestLabels>,
    barrier: Histograms<OperationLabel>,
    commits: Histograms<BackendLabel>,
    kms_requests: Family<KmsLabels, Counter>,
    kms_seconds: Histograms<ActionLabel>,
    unseals: Family<MethodLabel, Counter>,
    unseal_seconds: Histograms<MethodLabel>,
    seals: Counter,
    auto_unseal_attempts: Family<OutcomeLabel, Counter>,
    auto_unseal_next: Gauge<f64, AtomicU64>,
    takeovers: Counter,
    step_downs: Counter,
    audit_failures: Family<DeviceLabel, Counter>,
    initialized: Gauge,
    sealed: Gauge,
    active: Gauge,
    ha_enabled: Gauge,
    term: Gauge,
    term_encryptions: Gauge,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("strongroom");
        let requests = Histograms::new_with_constructor(REQUEST);
        registry.register_with_unit(
            "request_duration",
            "Requests through the gate by operation (the action, as kv.Put) and outcome (ok, or the error kind)",
            Unit::Seconds,
            requests.clone(),
        );
        let barrier = Histograms::new_with_constructor(FAST);
        registry.register_with_unit(
            "barrier_duration",
            "Barrier operations on encrypted entries (get, put, delete, list, and write: a batch)",
            Unit::Seconds,
            barrier.clone(),
        );
        let commits = Histograms::new_with_constructor(REQUEST);
        registry.register_with_unit(
            "storage_commit_duration",
            "Storage commits (one atomic write batch) by backend",
            Unit::Seconds,
            commits.clone(),
        );
        let kms_requests = Family::default();
        registry.register(
            "kms_requests",
            "AWS KMS requests by action and outcome (ok, or the kind of failure)",
            kms_requests.clone(),
        );
        let kms_seconds = Histograms::new_with_constructor(SLOW);
        registry.register_with_unit(
            "kms_request_duration",
            "AWS KMS request latency by action",
            Unit::Seconds,
            kms_seconds.clone(),
        );
        let unseals = Family::default();
        registry.register(
            "unseals",
            "Unseals by method (shamir, recovery, kms)",
            unseals.clone(),
        );
        let unseal_seconds = Histograms::new_with_constructor(SLOW);
        registry.register_with_unit(
            "unseal_duration",
            "Time from the quorum (or the auto-unseal attempt's start) to unsealed, by method",
            Unit::Seconds,
            unseal_seconds.clone(),
        );
        let seals = Counter::default();
        registry.register(
            "seals",
            "Seals (an operator's, or at shutdown)",
            seals.clone(),
        );
        let auto_unseal_attempts = Family::default();
        registry.register(
            "auto_unseal_attempts",
            "Auto-unseal attempts by outcome (ok, failed)",
            auto_unseal_attempts.clone(),
        );
        let auto_unseal_next = Gauge::default();
        registry.register(
            "auto_unseal_next_attempt_timestamp_seconds",
            "When the next auto-unseal attempt is due, in seconds since the Unix epoch; 0 when none is planned",
            auto_unseal_next.clone(),
        );
        let takeovers = Counter::default();
        registry.register(
            "ha_takeovers",
            "Times this node became the active node",
            takeovers.clone(),
        );
        let step_downs = Counter::default();
        registry.register(
            "ha_step_downs",
            "Times this node stopped being the active node",
            step_downs.clone(),
        );
        let audit_failures = Family::default();
        registry.register(
            "audit_write_failures",
            "Audit lines a device failed to write, by device type",
            audit_failures.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        Self {
            initialized: gauge(
                &mut registry,
                "initialized",
                "1 once the store is initialized",
            ),
            sealed: gauge(&mut registry, "sealed", "1 while the node is sealed"),
            active: gauge(
                &mut registry,
                "active",
                "1 while the node serves (unsealed, and the active node with HA)",
            ),
            ha_enabled: gauge(&mut registry, "ha_enabled", "1 when the node runs with HA"),
            term: gauge(
                &mut registry,
                "keyring_term",
                "The keyring term that encrypts new writes (0 while sealed)",
            ),
            term_encryptions: gauge(
                &mut registry,
                "keyring_term_encryptions",
                "Encryptions under the current keyring term",
            ),
            registry,
            requests,
            barrier,
            commits,
            kms_requests,
            kms_seconds,
            unseals,
            unseal_seconds,
            seals,
            auto_unseal_attempts,
            auto_unseal_next,
            takeovers,
            step_downs,
            audit_failures,
        }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// A request through the gate: `operation` is the action's name, `outcome`
/// `ok` or the error's kind.
pub fn request(operation: &'static str, outcome: &'static str, started: Instant) {
    METRICS
        .requests
        .get_or_create(&RequestLabels { operation, outcome })
        .observe(seconds(started));
}

/// A barrier operation (`get`, `put`, `list`, `delete`, `write`).
pub fn barrier(operation: &'static str, started: Instant) {
    METRICS
        .barrier
        .get_or_create(&OperationLabel { operation })
        .observe(seconds(started));
}

/// A storage commit on `backend`.
pub fn commit(backend: &'static str, started: Instant) {
    METRICS
        .commits
        .get_or_create(&BackendLabel { backend })
        .observe(seconds(started));
}

/// A KMS request: its API `action` (`Decrypt`), `ok` or the failure's kind.
pub fn kms_request(action: &'static str, outcome: &'static str, started: Instant) {
    METRICS
        .kms_requests
        .get_or_create(&KmsLabels { action, outcome })
        .inc();
    METRICS
        .kms_seconds
        .get_or_create(&ActionLabel { action })
        .observe(seconds(started));
}

/// The daemon unsealed by `method` (`shamir`, `recovery`, `kms`), the
/// work having begun at `started`.
pub fn unsealed(method: &'static str, started: Instant) {
    let label = MethodLabel { method };
    METRICS.unseals.get_or_create(&label).inc();
    METRICS
        .unseal_seconds
        .get_or_create(&label)
        .observe(seconds(started));
}

/// The daemon sealed.
pub fn sealed() {
    METRICS.seals.inc();
}

/// An auto-unseal attempt ended, `ok` or `failed`; `next` is when the next
/// one is due (`None`: none planned).
pub fn auto_unseal_attempt(outcome: &'static str, next: Option<SystemTime>) {
    METRICS
        .auto_unseal_attempts
        .get_or_create(&OutcomeLabel { outcome })
        .inc();
    let at = next
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64());
    METRICS.auto_unseal_next.set(at);
}

/// This node became the active node.
pub fn took_over() {
    METRICS.takeovers.inc();
}

/// This node stopped being the active node.
pub fn stepped_down() {
    METRICS.step_downs.inc();
}

/// An audit device of type `device` failed to write a line.
pub fn audit_failure(device: &'static str) {
    METRICS
        .audit_failures
        .get_or_create(&DeviceLabel { device })
        .inc();
}

/// What only the node knows, read at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scrape {
    /// The store is initialized.
    pub initialized: bool,
    /// The node is sealed.
    pub sealed: bool,
    /// The node serves (unsealed; with HA, the active node).
    pub active: bool,
    /// The node runs with HA.
    pub ha_enabled: bool,
    /// The keyring term in force (0 while sealed).
    pub term: u32,
    /// Encryptions under that term.
    pub term_encryptions: u64,
}

/// The text exposition of every metric, with `scrape`'s gauges.
pub fn render(scrape: &Scrape) -> Result<String, fmt::Error> {
    let metrics = &*METRICS;
    let flag = |b: bool| i64::from(b);
    metrics.initialized.set(flag(scrape.initialized));
    metrics.sealed.set(flag(scrape.sealed));
    metrics.active.set(flag(scrape.active));
    metrics.ha_enabled.set(flag(scrape.ha_enabled));
    metrics.term.set(i64::from(scrape.term));
    metrics
        .term_encryptions
        .set(i64::try_from(scrape.term_encryptions).unwrap_or(i64::MAX));
    let mut text = String::new();
    encode(&mut text, &metrics.registry)?;
    Ok(text)
}

fn seconds(started: Instant) -> f64 {
    let elapsed: Duration = started.elapsed();
    elapsed.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_series_render_with_their_labels() {
        request("test.Op", "permission_denied", Instant::now());
        kms_request("Decrypt", "ok", Instant::now());
        unsealed("shamir", Instant::now());
        let text = render(&Scrape {
            initialized: true,
            term: 3,
            ..Scrape::default()
        })
        .unwrap();
        assert!(text.contains(
            "strongroom_request_duration_seconds_count{operation=\"test.Op\",outcome=\"permission_denied\"} 1"
        ), "{text}");
        assert!(text.contains("strongroom_kms_requests_total{action=\"Decrypt\",outcome=\"ok\"}"));
        assert!(text.contains("strongroom_unseals_total{method=\"shamir\"}"));
        assert!(text.contains("strongroom_keyring_term 3\n"));
        assert!(text.contains("strongroom_sealed 0\n"));
        assert!(text.ends_with("# EOF\n"));
    }
}
