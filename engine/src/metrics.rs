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

mod labels;

use labels::*;
pub use labels::{Call, CallStatus, Delivery, LimiterBucket, StepOutcome};

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
mod tests;
