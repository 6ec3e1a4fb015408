//! The label values and per-workflow series of the metrics: small known sets as enums
//! (so a series is found without building a label), and the slots that keep each series
//! once it was first used.

use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, LabelSetEncoder, LabelValueEncoder,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::{Arc, OnceLock};

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
pub(super) struct CallLabels {
    pub(super) call: Call,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct BucketLabels {
    pub(super) bucket: LimiterBucket,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct DeliveryLabels {
    pub(super) result: Delivery,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ReplicateCallLabels {
    pub(super) endpoint: &'static str,
    pub(super) status: CallStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct WorkflowLabels {
    pub(super) workflow: Arc<str>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct OutcomeLabels {
    pub(super) workflow: Arc<str>,
    pub(super) outcome: &'static str,
}

/// The empty label set: a family of at most one series, for a gauge that is not always
/// exported.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Unlabeled;

impl EncodeLabelSet for Unlabeled {
    fn encode(&self, _encoder: &mut LabelSetEncoder) -> std::fmt::Result {
        Ok(())
    }
}

/// A family of metrics, and a slot per series once created in it. A slot is always given
/// the same labels, so each slot is resolved once.
pub(super) struct Slots<S, M, const N: usize> {
    pub(super) family: Family<S, M, fn() -> M>,
    pub(super) slots: [OnceLock<M>; N],
}

impl<S: Clone + std::hash::Hash + Eq, M: Clone, const N: usize> Slots<S, M, N> {
    pub(super) fn new(new_metric: fn() -> M) -> Self {
        Slots {
            family: Family::new_with_constructor(new_metric),
            slots: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// The series in `slot` (below `N`: callers index by an enum with `N` values), created
    /// with `labels` the first time.
    pub(super) fn get(&self, slot: usize, labels: impl FnOnce() -> S) -> &M {
        self.slots[slot].get_or_init(|| self.family.get_or_create_owned(&labels()))
    }
}

/// One workflow's series, resolved on first use.
pub(super) struct WorkflowSeries {
    pub(super) name: Arc<str>,
    pub(super) started: OnceLock<Counter>,
    pub(super) step_retries: OnceLock<Counter>,
    /// By `TaskStatus` (its variants' order).
    pub(super) finished: [OnceLock<Counter>; 5],
    /// By `StepOutcome` (its variants' order).
    pub(super) step_duration: [OnceLock<Histogram>; 3],
}
