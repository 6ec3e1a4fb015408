//! Process-wide metrics, defined once: [`Metrics`] holds every metric the engine and the
//! server export, registered at construction in a `prometheus-client` [`Registry`] with its
//! name, help text and labels, and `/metrics` renders that registry as Prometheus text
//! (version 0.0.4). No label carries a task id.
//!
//! Recording takes no process-wide lock and allocates nothing after a series' first use:
//! - Metrics without labels are plain handles: counters and gauges are atomics. A
//!   `prometheus-client` histogram (the crate has no atomic one) is a mutex of its own per
//!   series, never shared with another metric, held only to add one observation to its
//!   buckets: uncontended on the commit path, which one runtime thread records.
//! - Labels from a small known set (`call`, `bucket`, `result`) are enums; each value's
//!   series is created in its family on first use and kept in a [`OnceLock`] slot, so later
//!   increments are an atomic load and an atomic add.
//! - Labels with a workflow name: each workflow's series are kept in a `WorkflowSeries`,
//!   found by name in a map from workflow name to handles. A workflow is added once (write
//!   lock) the first time it is counted; after that a lookup is a read lock and a hash of
//!   the borrowed name, then the same per-series slots. The map rather than the families
//!   themselves because a family is keyed by its label set: looking one up from the
//!   task's `&str` would mean building an owned label (an allocation) on every increment.
//!   The label value is one `Arc<str>` per workflow, shared by all its series.
//! - `stepwise_replicate_calls_total{endpoint,status}`: the status is any HTTP code, so
//!   there is no slot per value; the label set is `Copy` (`&'static str` and an enum) and
//!   [`Family::get_or_create`] takes only its read lock after a pair's first call.
//! - The gauges read at scrape time are registered gauges too, set from [`Readings`] by
//!   [`Metrics::render`] under a mutex that only scrapes take.
//!
//! Series appear in the output on first use, as they always have; metrics without labels
//! are there from the start at 0.

use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, LabelSetEncoder, LabelValueEncoder,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Metric, Registry};
use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use crate::model::TaskStatus;

/// The `Content-Type` of what [`Metrics::render`] returns.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds of histogram buckets, in the metric's unit.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];
const COUNT_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0,
];

fn seconds_histogram() -> Histogram {
    Histogram::new(SECONDS_BUCKETS.iter().copied())
}

fn count_histogram() -> Histogram {
    Histogram::new(COUNT_BUCKETS.iter().copied())
}

/// A counter of seconds (fractional).
pub type SecondsCounter = Counter<f64, AtomicU64>;

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// A failed call that will be retried with backoff (`stepwise_call_retries_total{call}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    Create,
    Check,
    Cancel,
    KeepOutputs,
}

impl Call {
    pub fn as_str(self) -> &'static str {
        match self {
            Call::Create => "create",
            Call::Check => "check",
            Call::Cancel => "cancel",
            Call::KeepOutputs => "keep_outputs",
        }
    }
}

/// The client-side rate limiter's buckets (`stepwise_rate_limiter_wait_seconds_total{bucket}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LimiterBucket {
    Creates,
    Others,
}

impl LimiterBucket {
    pub fn as_str(self) -> &'static str {
        match self {
            LimiterBucket::Creates => "creates",
            LimiterBucket::Others => "others",
        }
    }
}

/// A webhook delivery's signature check (`stepwise_webhook_deliveries_total{result}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Delivery {
    Verified,
    Rejected,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Verified => "verified",
            Delivery::Rejected => "rejected",
        }
    }
}

/// How a call to Replicate ended (`stepwise_replicate_calls_total{status}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallStatus {
    /// An answer with this HTTP status.
    Http(u16),
    /// No answer in time.
    Timeout,
    /// No answer: the connection or request failed.
    Error,
}

/// How a step ended, for `stepwise_step_duration_seconds{outcome}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StepOutcome {
    Succeeded,
    Failed,
    /// The attempt failed and the step runs again.
    Retried,
}

impl StepOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            StepOutcome::Succeeded => "succeeded",
            StepOutcome::Failed => "failed",
            StepOutcome::Retried => "retried",
        }
    }
}

macro_rules! label_value_as_str {
    ($($t:ty),*) => {$(
        impl EncodeLabelValue for $t {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
                EncodeLabelValue::encode(&self.as_str(), encoder)
            }
        }
    )*};
}
label_value_as_str!(Call, LimiterBucket, Delivery);

impl EncodeLabelValue for CallStatus {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        match self {
            CallStatus::Http(code) => EncodeLabelValue::encode(code, encoder),
            CallStatus::Timeout => EncodeLabelValue::encode(&"timeout", encoder),
            CallStatus::Error => EncodeLabelValue::encode(&"error", encoder),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CallLabels {
    call: Call,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BucketLabels {
    bucket: LimiterBucket,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DeliveryLabels {
    result: Delivery,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReplicateCallLabels {
    endpoint: &'static str,
    status: CallStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct WorkflowLabels {
    workflow: Arc<str>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    workflow: Arc<str>,
    outcome: &'static str,
}

/// The empty label set: a family of at most one series, for a gauge that is not always
/// exported.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Unlabeled;

impl EncodeLabelSet for Unlabeled {
    fn encode(&self, _encoder: &mut LabelSetEncoder) -> std::fmt::Result {
        Ok(())
    }
}

/// A family of metrics, and a slot per series once created in it. A slot is always given
/// the same labels, so each slot is resolved once.
struct Slots<S, M, const N: usize> {
    family: Family<S, M, fn() -> M>,
    slots: [OnceLock<M>; N],
}

impl<S: Clone + std::hash::Hash + Eq, M: Clone, const N: usize> Slots<S, M, N> {
    fn new(new_metric: fn() -> M) -> Self {
        Slots {
            family: Family::new_with_constructor(new_metric),
            slots: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// The series in `slot` (below `N`: callers index by an enum with `N` values), created
    /// with `labels` the first time.
    fn get(&self, slot: usize, labels: impl FnOnce() -> S) -> &M {
        self.slots[slot].get_or_init(|| self.family.get_or_create_owned(&labels()))
    }
}

/// One workflow's series, resolved on first use.
struct WorkflowSeries {
    name: Arc<str>,
    started: OnceLock<Counter>,
    step_retries: OnceLock<Counter>,
    /// By `TaskStatus` (its variants' order).
    finished: [OnceLock<Counter>; 5],
    /// By `StepOutcome` (its variants' order).
    step_duration: [OnceLock<Histogram>; 3],
}

/// What `/metrics` reads at scrape time, as gauges.
#[derive(Clone, Copy, Debug, Default)]
pub struct Readings {
    pub tasks_in_flight: u64,
    pub tasks_queued: u64,
    pub tasks_watched: u64,
    pub creates_waiting: u64,
    pub recovered: bool,
    /// `None` (an in-memory journal): not exported.
    pub data_dir_bytes: Option<u64>,
}

type U64Gauge = Gauge<u64, AtomicU64>;

/// Every metric, registered once in `registry`. Handles are shared with the registry: an
/// increment through one is what the next scrape shows.
pub struct Metrics {
    registry: Registry,
    /// `stepwise_tasks_deleted_total`.
    pub tasks_deleted: Counter,
    /// `stepwise_journal_commit_seconds`.
    pub journal_commit_seconds: Histogram,
    /// `stepwise_journal_group_tasks`.
    pub journal_group_tasks: Histogram,
    call_retries: Slots<CallLabels, Counter, 4>,
    rate_limiter_wait: Slots<BucketLabels, SecondsCounter, 2>,
    webhook_deliveries: Slots<DeliveryLabels, Counter, 2>,
    replicate_calls: Family<ReplicateCallLabels, Counter>,
    tasks_started: Family<WorkflowLabels, Counter>,
    step_retries: Family<WorkflowLabels, Counter>,
    tasks_finished: Family<OutcomeLabels, Counter>,
    step_duration: Family<OutcomeLabels, Histogram, fn() -> Histogram>,
    workflows: RwLock<HashMap<Arc<str>, Arc<WorkflowSeries>>>,
    tasks_in_flight: U64Gauge,
    tasks_queued: U64Gauge,
    tasks_watched: U64Gauge,
    creates_waiting: U64Gauge,
    recovered: U64Gauge,
    data_dir_bytes: Family<Unlabeled, U64Gauge>,
    /// Held by a scrape from setting the gauges to encoding them, so that two scrapes (of
    /// two engines in one process, in tests) each show their own readings.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A metric's name as exported (a counter's with `_total`) and its help text.
type Def = (&'static str, &'static str);

// Every metric's name and help text: what `/metrics` shows, exactly. Gauges, read at scrape
// time:
const TASKS_IN_FLIGHT: Def = ("stepwise_tasks_in_flight", "Unfinished tasks in memory.");
const TASKS_QUEUED: Def = (
    "stepwise_tasks_queued",
    "Tasks held back by a concurrency cap.",
);
const TASKS_WATCHED: Def = (
    "stepwise_tasks_watched",
    "Tasks with an open event stream or long poll.",
);
const CREATES_WAITING: Def = (
    "stepwise_creates_waiting",
    "Tasks waiting for one of the create calls allowed out at once.",
);
const RECOVERED: Def = (
    "stepwise_recovered",
    "1 once recovery after start has finished.",
);
const DATA_DIR_BYTES: Def = (
    "stepwise_data_dir_bytes",
    "Size of the files in the data dir.",
);
// Counters:
const CALL_RETRIES: Def = (
    "stepwise_call_retries_total",
    "Calls that failed and will be retried with backoff, by call.",
);
const RATE_LIMITER_WAIT: Def = (
    "stepwise_rate_limiter_wait_seconds_total",
    "Time calls waited for the client-side rate limiter.",
);
const REPLICATE_CALLS: Def = (
    "stepwise_replicate_calls_total",
    "Calls to Replicate by endpoint and HTTP status (or error).",
);
const STEP_RETRIES: Def = (
    "stepwise_step_retries_total",
    "Prediction attempts run again.",
);
const TASKS_DELETED: Def = (
    "stepwise_tasks_deleted_total",
    "Finished tasks deleted after their retention.",
);
const TASKS_FINISHED: Def = (
    "stepwise_tasks_finished_total",
    "Tasks that ended, by outcome.",
);
const TASKS_STARTED: Def = ("stepwise_tasks_started_total", "Tasks accepted.");
const WEBHOOK_DELIVERIES: Def = (
    "stepwise_webhook_deliveries_total",
    "Webhook deliveries received, by signature check result.",
);
// Histograms:
const JOURNAL_COMMIT_SECONDS: Def = (
    "stepwise_journal_commit_seconds",
    "Time to write and fsync one journal group.",
);
const JOURNAL_GROUP_TASKS: Def = (
    "stepwise_journal_group_tasks",
    "Tasks written by one journal group.",
);
const STEP_DURATION: Def = (
    "stepwise_step_duration_seconds",
    "Time from a step's create intent to its end, by outcome.",
);

/// Registers a handle's clone (the same series) under its definition: the encoder adds
/// back a counter's `_total` and the help text's final period.
fn register<M: Metric + Clone>(registry: &mut Registry, (exported, help): Def, metric: &M) {
    let name = match metric.metric_type() {
        MetricType::Counter => exported.strip_suffix("_total"),
        _ => Some(exported),
    };
    debug_assert!(name.is_some(), "a counter's name ends with _total");
    debug_assert!(help.ends_with('.'), "help text ends with a period");
    let help = help.strip_suffix('.').unwrap_or(help);
    registry.register(name.unwrap_or(exported), help, metric.clone());
}

impl Metrics {
    pub fn new() -> Self {
        let metrics = Metrics {
            registry: Registry::default(),
            tasks_deleted: Counter::default(),
            journal_commit_seconds: seconds_histogram(),
            journal_group_tasks: count_histogram(),
            call_retries: Slots::new(Counter::default),
            rate_limiter_wait: Slots::new(SecondsCounter::default),
            webhook_deliveries: Slots::new(Counter::default),
            replicate_calls: Family::default(),
            tasks_started: Family::default(),
            step_retries: Family::default(),
            tasks_finished: Family::default(),
            step_duration: Family::new_with_constructor(seconds_histogram),
            workflows: RwLock::default(),
            tasks_in_flight: U64Gauge::default(),
            tasks_queued: U64Gauge::default(),
            tasks_watched: U64Gauge::default(),
            creates_waiting: U64Gauge::default(),
            recovered: U64Gauge::default(),
            data_dir_bytes: Family::default(),
            scrape: Mutex::new(()),
        };
        metrics.with_registered()
    }

    /// Registers every metric, in the order they are exported.
    fn with_registered(mut self) -> Self {
        let r = &mut self.registry;
        register(r, TASKS_IN_FLIGHT, &self.tasks_in_flight);
        register(r, TASKS_QUEUED, &self.tasks_queued);
        register(r, TASKS_WATCHED, &self.tasks_watched);
        register(r, CREATES_WAITING, &self.creates_waiting);
        register(r, RECOVERED, &self.recovered);
        register(r, DATA_DIR_BYTES, &self.data_dir_bytes);
        register(r, CALL_RETRIES, &self.call_retries.family);
        register(r, RATE_LIMITER_WAIT, &self.rate_limiter_wait.family);
        register(r, REPLICATE_CALLS, &self.replicate_calls);
        register(r, STEP_RETRIES, &self.step_retries);
        register(r, TASKS_DELETED, &self.tasks_deleted);
        register(r, TASKS_FINISHED, &self.tasks_finished);
        register(r, TASKS_STARTED, &self.tasks_started);
        register(r, WEBHOOK_DELIVERIES, &self.webhook_deliveries.family);
        register(r, JOURNAL_COMMIT_SECONDS, &self.journal_commit_seconds);
        register(r, JOURNAL_GROUP_TASKS, &self.journal_group_tasks);
        register(r, STEP_DURATION, &self.step_duration);
        self
    }

    /// `stepwise_call_retries_total{call}`.
    pub fn call_retries(&self, call: Call) -> &Counter {
        self.call_retries.get(call as usize, || CallLabels { call })
    }

    /// `stepwise_rate_limiter_wait_seconds_total{bucket}`.
    pub fn rate_limiter_wait(&self, bucket: LimiterBucket) -> &SecondsCounter {
        self.rate_limiter_wait
            .get(bucket as usize, || BucketLabels { bucket })
    }

    /// `stepwise_webhook_deliveries_total{result}`.
    pub fn webhook_deliveries(&self, result: Delivery) -> &Counter {
        self.webhook_deliveries
            .get(result as usize, || DeliveryLabels { result })
    }

    /// `stepwise_replicate_calls_total{endpoint,status}`.
    pub fn replicate_calls(
        &self,
        endpoint: &'static str,
        status: CallStatus,
    ) -> impl Deref<Target = Counter> + '_ {
        self.replicate_calls
            .get_or_create(&ReplicateCallLabels { endpoint, status })
    }

    /// `stepwise_tasks_started_total{workflow}`.
    pub fn tasks_started(&self, workflow: &str) -> Counter {
        let series = self.workflow(workflow);
        let labels = || WorkflowLabels {
            workflow: series.name.clone(),
        };
        let counter = series
            .started
            .get_or_init(|| self.tasks_started.get_or_create_owned(&labels()));
        counter.clone()
    }

    /// `stepwise_step_retries_total{workflow}`.
    pub fn step_retries(&self, workflow: &str) -> Counter {
        let series = self.workflow(workflow);
        let labels = || WorkflowLabels {
            workflow: series.name.clone(),
        };
        let counter = series
            .step_retries
            .get_or_init(|| self.step_retries.get_or_create_owned(&labels()));
        counter.clone()
    }

    /// `stepwise_tasks_finished_total{workflow,outcome}`, the outcome being the task's status.
    pub fn tasks_finished(&self, workflow: &str, outcome: TaskStatus) -> Counter {
        let series = self.workflow(workflow);
        let labels = || OutcomeLabels {
            workflow: series.name.clone(),
            outcome: outcome.as_str(),
        };
        let counter = series.finished[outcome as usize]
            .get_or_init(|| self.tasks_finished.get_or_create_owned(&labels()));
        counter.clone()
    }

    /// `stepwise_step_duration_seconds{workflow,outcome}`.
    pub fn step_duration(&self, workflow: &str, outcome: StepOutcome) -> Histogram {
        let series = self.workflow(workflow);
        let labels = || OutcomeLabels {
            workflow: series.name.clone(),
            outcome: outcome.as_str(),
        };
        let histogram = series.step_duration[outcome as usize]
            .get_or_init(|| self.step_duration.get_or_create_owned(&labels()));
        histogram.clone()
    }

    /// The series of `workflow`, added the first time it is seen.
    fn workflow(&self, workflow: &str) -> Arc<WorkflowSeries> {
        // A poisoned map is still a consistent map: entries are only ever inserted whole.
        let known = self
            .workflows
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(series) = known.get(workflow) {
            return series.clone();
        }
        drop(known);
        let mut known = self
            .workflows
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let series = known.entry(Arc::from(workflow)).or_insert_with_key(|name| {
            Arc::new(WorkflowSeries {
                name: name.clone(),
                started: OnceLock::new(),
                step_retries: OnceLock::new(),
                finished: std::array::from_fn(|_| OnceLock::new()),
                step_duration: std::array::from_fn(|_| OnceLock::new()),
            })
        });
        series.clone()
    }

    /// Everything recorded so far, with the gauges set from `now`, as Prometheus text.
    pub fn render(&self, now: &Readings) -> String {
        // The guard protects no data, only the order set-then-encode; poison changes nothing.
        let _scrape = self.scrape.lock().unwrap_or_else(PoisonError::into_inner);
        self.tasks_in_flight.set(now.tasks_in_flight);
        self.tasks_queued.set(now.tasks_queued);
        self.tasks_watched.set(now.tasks_watched);
        self.creates_waiting.set(now.creates_waiting);
        self.recovered.set(u64::from(now.recovered));
        match now.data_dir_bytes {
            Some(bytes) => {
                self.data_dir_bytes.get_or_create(&Unlabeled).set(bytes);
            }
            None => {
                self.data_dir_bytes.remove(&Unlabeled);
            }
        }
        let mut out = String::new();
        // Writing to a String does not fail, nor does encoding these metrics; were it to,
        // the scrape would show what was written before.
        if let Err(error) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::warn!(%error, "Encoding the metrics failed.");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has_line(text: &str, line: &str) {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }

    fn has_metric(text: &str, name: &str, help: &str, kind: &str) {
        let head = format!("# HELP {name} {help}\n# TYPE {name} {kind}\n");
        assert!(text.contains(&head), "missing {head:?} in\n{text}");
    }

    #[test]
    fn every_metric_renders_with_its_help_type_and_values() {
        let metrics = Metrics::new();
        metrics.tasks_started("tryon").inc();
        metrics.tasks_started("tryon").inc();
        metrics.tasks_started("say \"hi\"").inc();
        metrics.tasks_finished("tryon", TaskStatus::Succeeded).inc();
        metrics
            .tasks_finished("tryon", TaskStatus::Failed)
            .inc_by(2);
        metrics.step_retries("tryon").inc();
        metrics.call_retries(Call::KeepOutputs).inc();
        metrics.call_retries(Call::Create).inc_by(3);
        metrics
            .rate_limiter_wait(LimiterBucket::Creates)
            .inc_by(0.25);
        metrics
            .rate_limiter_wait(LimiterBucket::Creates)
            .inc_by(0.5);
        metrics.webhook_deliveries(Delivery::Rejected).inc();
        metrics
            .replicate_calls("create", CallStatus::Http(201))
            .inc();
        metrics
            .replicate_calls("create", CallStatus::Http(201))
            .inc();
        metrics.replicate_calls("get", CallStatus::Timeout).inc();
        metrics.tasks_deleted.inc_by(7);
        metrics.journal_commit_seconds.observe(0.002);
        metrics.journal_commit_seconds.observe(5.0);
        metrics.journal_group_tasks.observe(3.0);
        let step = metrics.step_duration("tryon", StepOutcome::Succeeded);
        step.observe(0.5);
        step.observe(5.0);
        let text = metrics.render(&Readings {
            tasks_in_flight: 4,
            tasks_queued: 1,
            tasks_watched: 2,
            creates_waiting: 0,
            recovered: true,
            data_dir_bytes: Some(4096),
        });

        let gauges = [
            ("stepwise_tasks_in_flight", "Unfinished tasks in memory.", 4),
            (
                "stepwise_tasks_queued",
                "Tasks held back by a concurrency cap.",
                1,
            ),
            (
                "stepwise_tasks_watched",
                "Tasks with an open event stream or long poll.",
                2,
            ),
            (
                "stepwise_creates_waiting",
                "Tasks waiting for one of the create calls allowed out at once.",
                0,
            ),
            (
                "stepwise_recovered",
                "1 once recovery after start has finished.",
                1,
            ),
            (
                "stepwise_data_dir_bytes",
                "Size of the files in the data dir.",
                4096,
            ),
        ];
        for (name, help, value) in gauges {
            has_metric(&text, name, help, "gauge");
            has_line(&text, &format!("{name} {value}"));
        }

        let name = "stepwise_tasks_started_total";
        has_metric(&text, name, "Tasks accepted.", "counter");
        has_line(&text, &format!("{name}{{workflow=\"tryon\"}} 2"));
        has_line(&text, &format!("{name}{{workflow=\"say \\\"hi\\\"\"}} 1"));
        let name = "stepwise_tasks_finished_total";
        has_metric(&text, name, "Tasks that ended, by outcome.", "counter");
        has_line(
            &text,
            &format!("{name}{{workflow=\"tryon\",outcome=\"succeeded\"}} 1"),
        );
        has_line(
            &text,
            &format!("{name}{{workflow=\"tryon\",outcome=\"failed\"}} 2"),
        );
        let name = "stepwise_step_retries_total";
        has_metric(&text, name, "Prediction attempts run again.", "counter");
        has_line(&text, &format!("{name}{{workflow=\"tryon\"}} 1"));
        let name = "stepwise_call_retries_total";
        let help = "Calls that failed and will be retried with backoff, by call.";
        has_metric(&text, name, help, "counter");
        has_line(&text, &format!("{name}{{call=\"keep_outputs\"}} 1"));
        has_line(&text, &format!("{name}{{call=\"create\"}} 3"));
        let name = "stepwise_rate_limiter_wait_seconds_total";
        let help = "Time calls waited for the client-side rate limiter.";
        has_metric(&text, name, help, "counter");
        has_line(&text, &format!("{name}{{bucket=\"creates\"}} 0.75"));
        let name = "stepwise_webhook_deliveries_total";
        let help = "Webhook deliveries received, by signature check result.";
        has_metric(&text, name, help, "counter");
        has_line(&text, &format!("{name}{{result=\"rejected\"}} 1"));
        let name = "stepwise_replicate_calls_total";
        let help = "Calls to Replicate by endpoint and HTTP status (or error).";
        has_metric(&text, name, help, "counter");
        has_line(
            &text,
            &format!("{name}{{endpoint=\"create\",status=\"201\"}} 2"),
        );
        has_line(
            &text,
            &format!("{name}{{endpoint=\"get\",status=\"timeout\"}} 1"),
        );
        let name = "stepwise_tasks_deleted_total";
        let help = "Finished tasks deleted after their retention.";
        has_metric(&text, name, help, "counter");
        has_line(&text, &format!("{name} 7"));

        let name = "stepwise_journal_commit_seconds";
        let help = "Time to write and fsync one journal group.";
        has_metric(&text, name, help, "histogram");
        assert!(text.contains(
            "stepwise_journal_commit_seconds_bucket{le=\"0.001\"} 0\n\
             stepwise_journal_commit_seconds_bucket{le=\"0.005\"} 1\n"
        ));
        has_line(&text, "stepwise_journal_commit_seconds_bucket{le=\"5\"} 2");
        assert!(text.contains(
            "stepwise_journal_commit_seconds_bucket{le=\"1800\"} 2\n\
             stepwise_journal_commit_seconds_bucket{le=\"+Inf\"} 2\n\
             stepwise_journal_commit_seconds_sum 5.002\n\
             stepwise_journal_commit_seconds_count 2\n"
        ));
        let name = "stepwise_journal_group_tasks";
        has_metric(
            &text,
            name,
            "Tasks written by one journal group.",
            "histogram",
        );
        has_line(&text, "stepwise_journal_group_tasks_bucket{le=\"2\"} 0");
        has_line(&text, "stepwise_journal_group_tasks_bucket{le=\"5\"} 1");
        has_line(&text, "stepwise_journal_group_tasks_count 1");
        let name = "stepwise_step_duration_seconds";
        let help = "Time from a step's create intent to its end, by outcome.";
        has_metric(&text, name, help, "histogram");
        let labels = "workflow=\"tryon\",outcome=\"succeeded\"";
        has_line(&text, &format!("{name}_bucket{{{labels},le=\"0.25\"}} 0"));
        has_line(&text, &format!("{name}_bucket{{{labels},le=\"0.5\"}} 1"));
        has_line(&text, &format!("{name}_bucket{{{labels},le=\"+Inf\"}} 2"));
        has_line(&text, &format!("{name}_sum{{{labels}}} 5.5"));
        has_line(&text, &format!("{name}_count{{{labels}}} 2"));

        // Prometheus text, not OpenMetrics: no `# EOF`, and one HELP per metric.
        assert!(!text.contains("# EOF"), "{text}");
        assert_eq!(text.matches("# HELP ").count(), 17, "{text}");
    }

    #[test]
    fn series_appear_on_first_use_and_the_data_dir_gauge_only_when_known() {
        let metrics = Metrics::new();
        let text = metrics.render(&Readings::default());
        assert!(!text.contains("stepwise_tasks_started_total"), "{text}");
        assert!(!text.contains("stepwise_data_dir_bytes"), "{text}");
        has_line(&text, "stepwise_tasks_deleted_total 0");
        has_line(&text, "stepwise_recovered 0");

        let with_dir = Readings {
            data_dir_bytes: Some(10),
            ..Readings::default()
        };
        has_line(&metrics.render(&with_dir), "stepwise_data_dir_bytes 10");
        let text = metrics.render(&Readings::default());
        assert!(!text.contains("stepwise_data_dir_bytes"), "{text}");
    }

    #[test]
    fn a_workflow_is_resolved_once_and_its_handles_share_one_series() {
        let metrics = Metrics::new();
        let first = metrics.tasks_started("tryon");
        let again = metrics.tasks_started(&String::from("tryon"));
        first.inc();
        again.inc();
        assert_eq!(metrics.tasks_started("tryon").get(), 2);
        assert_eq!(metrics.workflows.read().map(|w| w.len()).unwrap_or(0), 1);
        // The same label set through the family is the same series.
        let labels = WorkflowLabels {
            workflow: Arc::from("tryon"),
        };
        assert_eq!(metrics.tasks_started.get_or_create(&labels).get(), 2);
    }
}
