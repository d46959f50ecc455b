//! Prometheus metrics (`GET /metrics`): watcher ticks and their cost,
//! CloudWatch calls, decisions, rollbacks, flag writes and their retries.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

pub struct Telemetry {
    registry: Registry,
    pub watcher_ticks: Counter,
    pub watcher_tick_seconds: Histogram,
    pub watched_rollouts: Gauge,
    pub cloudwatch_calls: Counter,
    pub cloudwatch_queries: Counter,
    pub decisions: Family<Labels, Counter>,
    pub rollbacks: Counter,
    pub flag_writes: Family<Labels, Counter>,
    pub write_retries: Counter,
    pub loop_panics: Family<Labels, Counter>,
    /// 1 while this process leads (runs the watcher and the reconciler).
    pub leader: Gauge,
    /// The epoch of the lease as this process last saw it.
    pub leader_epoch: Gauge,
    /// Lambda calls the watcher's drift checks made.
    pub drift_calls: Counter,
    /// Share of the drift checks' Lambda budget used over the last minute.
    pub drift_budget_used: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl Default for Telemetry {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("rollgate");
        let t = Telemetry {
            watcher_ticks: Counter::default(),
            watcher_tick_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            watched_rollouts: Gauge::default(),
            cloudwatch_calls: Counter::default(),
            cloudwatch_queries: Counter::default(),
            decisions: Family::default(),
            rollbacks: Counter::default(),
            flag_writes: Family::default(),
            write_retries: Counter::default(),
            loop_panics: Family::default(),
            leader: Gauge::default(),
            leader_epoch: Gauge::default(),
            drift_calls: Counter::default(),
            drift_budget_used: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "watcher_ticks",
            "Watcher ticks run",
            t.watcher_ticks.clone(),
        );
        registry.register(
            "watcher_tick_seconds",
            "Wall time of one watcher tick",
            t.watcher_tick_seconds.clone(),
        );
        registry.register(
            "watched_rollouts",
            "Rollouts the last tick evaluated",
            t.watched_rollouts.clone(),
        );
        registry.register(
            "cloudwatch_get_metric_data_calls",
            "GetMetricData calls made",
            t.cloudwatch_calls.clone(),
        );
        registry.register(
            "cloudwatch_queries",
            "Metric queries sent in GetMetricData calls",
            t.cloudwatch_queries.clone(),
        );
        registry.register(
            "watcher_decisions",
            "Guardrail decisions by action",
            t.decisions.clone(),
        );
        registry.register(
            "rollbacks",
            "Rollbacks made by the watcher",
            t.rollbacks.clone(),
        );
        registry.register(
            "flag_writes",
            "Flag writes by outcome",
            t.flag_writes.clone(),
        );
        registry.register(
            "flag_write_retries",
            "Retried read-modify-write cycles of flag writes",
            t.write_retries.clone(),
        );
        registry.register(
            "loop_panics",
            "Background loop passes that panicked (the loop went on), by loop",
            t.loop_panics.clone(),
        );
        registry.register(
            "leader",
            "1 while this process leads (runs the watcher and the reconciler), else 0",
            t.leader.clone(),
        );
        registry.register(
            "leader_epoch",
            "Epoch of the leader lease as this process last read it",
            t.leader_epoch.clone(),
        );
        registry.register(
            "drift_lambda_calls",
            "Lambda control-plane calls made by drift checks (GetFunctionConfiguration, ListFunctions pages)",
            t.drift_calls.clone(),
        );
        registry.register(
            "drift_budget_used_ratio",
            "Share of the drift checks' Lambda calls-per-second budget used over the last minute",
            t.drift_budget_used.clone(),
        );
        Telemetry { registry, ..t }
    }
}

impl Telemetry {
    pub fn count_write(&self, outcome: &str, retries: usize) {
        self.flag_writes
            .get_or_create(&vec![("outcome".to_string(), outcome.to_string())])
            .inc();
        self.write_retries.inc_by(retries as u64);
    }

    pub fn count_loop_panic(&self, name: &str) {
        self.loop_panics
            .get_or_create(&vec![("loop".to_string(), name.to_string())])
            .inc();
    }

    pub fn count_decision(&self, action: &str) {
        self.decisions
            .get_or_create(&vec![("action".to_string(), action.to_string())])
            .inc();
        if action == "rollback" {
            self.rollbacks.inc();
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
