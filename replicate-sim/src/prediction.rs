//! One stored prediction: its plan (fixed at creation), its lazily computed lifecycle and its
//! JSON rendering. Everything here is a pure function of the stored fields and a `now` passed
//! in by the caller; no clock reads, no IO, no locks.

use serde_json::{json, Map, Value};
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::output::output_value;
use crate::OutputShape;

/// Status values of Replicate's API: `starting` (waiting for or booting a worker) and
/// `processing` (the model runs) are live, the other four terminal. `aborted` means a
/// deadline passed before the run started; the official clients' wait loops do not stop on
/// it, so a client must treat it as terminal itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Starting,
    Processing,
    Succeeded,
    Failed,
    Canceled,
    Aborted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Processing => "processing",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Canceled => "canceled",
            Status::Aborted => "aborted",
        }
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, Status::Starting | Status::Processing)
    }
}

/// What will happen to a prediction if nobody cancels it, decided once at creation.
#[derive(Clone, Debug)]
pub struct Plan {
    pub starting: Duration,
    pub processing: Duration,
    /// `Some(message)` when the prediction is destined to fail.
    pub failure: Option<String>,
    pub output: OutputShape,
}

/// The state of a prediction at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub status: Status,
    pub started_at: Option<OffsetDateTime>,
    pub completed_at: Option<OffsetDateTime>,
}

/// How to render: the public base URL and the response style.
pub struct RenderCtx<'a> {
    pub base: &'a str,
    pub omit_optional_keys: bool,
    pub output_retention: Option<std::time::Duration>,
}

#[derive(Clone, Debug)]
pub struct StoredPrediction {
    pub id: String,
    pub model: String,
    pub version: String,
    pub deployment: Option<String>,
    /// The key that output hashing uses: "owner/name" or a version id.
    pub model_key: String,
    pub input: Value,
    pub created_at: OffsetDateTime,
    pub deadline: Option<OffsetDateTime>,
    pub webhook: Option<String>,
    pub webhook_events_filter: Option<Vec<String>>,
    pub plan: Plan,
    /// Set by an explicit cancel of a non-terminal prediction.
    pub canceled_at: Option<OffsetDateTime>,
}

impl StoredPrediction {
    fn planned_start(&self) -> OffsetDateTime {
        self.created_at + self.plan.starting
    }

    fn planned_finish(&self) -> OffsetDateTime {
        self.planned_start() + self.plan.processing
    }

    /// The lifecycle at `now`. A user cancel wins over the deadline, which wins over the plan.
    pub fn snapshot(&self, now: OffsetDateTime) -> Snapshot {
        let start = self.planned_start();
        let finish = self.planned_finish();
        let stopped = |at: OffsetDateTime, before_start: Status| Snapshot {
            status: if at < start {
                before_start
            } else {
                Status::Canceled
            },
            started_at: (at >= start).then_some(start),
            completed_at: Some(at),
        };
        if let Some(at) = self.canceled_at {
            return stopped(at, Status::Canceled);
        }
        if let Some(deadline) = self.deadline {
            if deadline < finish && now >= deadline {
                return stopped(deadline, Status::Aborted);
            }
        }
        if now >= finish {
            let status = match self.plan.failure {
                Some(_) => Status::Failed,
                None => Status::Succeeded,
            };
            return Snapshot {
                status,
                started_at: Some(start),
                completed_at: Some(finish),
            };
        }
        if now >= start {
            return Snapshot {
                status: Status::Processing,
                started_at: Some(start),
                completed_at: None,
            };
        }
        Snapshot {
            status: Status::Starting,
            started_at: None,
            completed_at: None,
        }
    }

    /// When the status next changes by itself, or `None` if it is terminal at `now`.
    pub fn next_change(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let snap = self.snapshot(now);
        if snap.status.is_terminal() {
            return None;
        }
        let mut end = self.planned_finish();
        if let Some(deadline) = self.deadline {
            end = end.min(deadline);
        }
        let start = self.planned_start();
        Some(if snap.status == Status::Starting {
            start.min(end)
        } else {
            end
        })
    }

    /// When the prediction is (or will be, unless canceled first) terminal: the cancel time,
    /// else the deadline if it comes before the planned finish, else the planned finish.
    pub fn terminal_at(&self) -> OffsetDateTime {
        if let Some(at) = self.canceled_at {
            return at;
        }
        let finish = self.planned_finish();
        self.deadline
            .map_or(finish, |deadline| deadline.min(finish))
    }

    /// Cancels a non-terminal prediction at `now`. Returns false when it had already finished.
    pub fn cancel(&mut self, now: OffsetDateTime) -> bool {
        if self.snapshot(now).status.is_terminal() {
            return false;
        }
        self.canceled_at = Some(now);
        true
    }

    /// The JSON the API returns for this prediction at `now`.
    pub fn render(&self, now: OffsetDateTime, ctx: &RenderCtx<'_>) -> Value {
        let snap = self.snapshot(now);
        let terminal = snap.status.is_terminal();
        let omit = ctx.omit_optional_keys && !terminal;
        let removed = match (ctx.output_retention, snap.completed_at) {
            (Some(retention), Some(done)) => now >= done + retention,
            _ => false,
        };
        let (output, logs, error) = match snap.status {
            Status::Starting => (Value::Null, json!(""), Value::Null),
            Status::Processing => (
                Value::Null,
                json!("Running simulated prediction\n"),
                Value::Null,
            ),
            Status::Succeeded if removed => (Value::Null, Value::Null, Value::Null),
            Status::Succeeded => (
                output_value(self.plan.output, &self.model_key, &self.input, ctx.base),
                json!("Running simulated prediction\nDone\n"),
                Value::Null,
            ),
            Status::Failed => (
                Value::Null,
                json!("Running simulated prediction\n"),
                json!(self.plan.failure.clone().unwrap_or_default()),
            ),
            Status::Canceled => (Value::Null, Value::Null, Value::Null),
            Status::Aborted => (Value::Null, json!(""), Value::Null),
        };

        let mut obj = Map::new();
        obj.insert("id".into(), json!(self.id));
        obj.insert("model".into(), json!(self.model));
        obj.insert("version".into(), json!(self.version));
        // Replicate deletes an API prediction's input with its output (`data_removed`).
        let input = if removed {
            Value::Null
        } else {
            self.input.clone()
        };
        obj.insert("input".into(), input);
        obj.insert("logs".into(), logs);
        if !omit {
            obj.insert("output".into(), output);
            obj.insert("data_removed".into(), json!(removed));
        }
        obj.insert("error".into(), error);
        obj.insert("source".into(), json!("api"));
        obj.insert("status".into(), json!(snap.status.as_str()));
        obj.insert("created_at".into(), json!(rfc3339(self.created_at)));
        if !omit {
            obj.insert("started_at".into(), json!(snap.started_at.map(rfc3339)));
            obj.insert("completed_at".into(), json!(snap.completed_at.map(rfc3339)));
        }
        let get = format!("{}/v1/predictions/{}", ctx.base, self.id);
        obj.insert(
            "urls".into(),
            json!({
                "get": get,
                "cancel": format!("{get}/cancel"),
                "web": format!("{}/p/{}", ctx.base, self.id),
            }),
        );
        if !omit {
            let metrics = match snap.completed_at {
                Some(done) => json!({
                    "predict_time": snap.started_at.map_or(0.0, |s| (done - s).as_seconds_f64()),
                    "total_time": (done - self.created_at).as_seconds_f64(),
                }),
                None => json!({}),
            };
            obj.insert("metrics".into(), metrics);
        }
        if let Some(deployment) = &self.deployment {
            obj.insert("deployment".into(), json!(deployment));
        }
        if let Some(deadline) = self.deadline {
            obj.insert("deadline".into(), json!(rfc3339(deadline)));
        }
        if let Some(webhook) = &self.webhook {
            obj.insert("webhook".into(), json!(webhook));
        }
        if let Some(filter) = &self.webhook_events_filter {
            obj.insert("webhook_events_filter".into(), json!(filter));
        }
        Value::Object(obj)
    }
}

/// RFC 3339 in UTC with `Z`; the number of fractional digits varies with the value, as in the
/// real API.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .expect("a UTC timestamp always formats as RFC 3339")
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2025-01-01 00:00:00 UTC);

    fn prediction(failure: Option<&str>, deadline_ms: Option<u64>) -> StoredPrediction {
        StoredPrediction {
            id: "abc".into(),
            model: "o/n".into(),
            version: "hidden".into(),
            deployment: None,
            model_key: "o/n".into(),
            input: json!({"b": 1, "a": 2}),
            created_at: T0,
            deadline: deadline_ms.map(|ms| T0 + Duration::from_millis(ms)),
            webhook: None,
            webhook_events_filter: None,
            plan: Plan {
                starting: Duration::from_millis(100),
                processing: Duration::from_millis(200),
                failure: failure.map(String::from),
                output: OutputShape::Url,
            },
            canceled_at: None,
        }
    }

    fn at(ms: u64) -> OffsetDateTime {
        T0 + Duration::from_millis(ms)
    }

    #[test]
    fn status_follows_the_plan() {
        let p = prediction(None, None);
        assert_eq!(p.snapshot(at(0)).status, Status::Starting);
        assert_eq!(p.snapshot(at(100)).status, Status::Processing);
        assert_eq!(p.snapshot(at(299)).status, Status::Processing);
        let done = p.snapshot(at(300));
        assert_eq!(done.status, Status::Succeeded);
        assert_eq!(done.completed_at, Some(at(300)));
        assert_eq!(
            prediction(Some("boom"), None).snapshot(at(400)).status,
            Status::Failed
        );
    }

    #[test]
    fn deadline_aborts_while_starting_and_cancels_while_processing() {
        let aborted = prediction(None, Some(50)).snapshot(at(1000));
        assert_eq!(aborted.status, Status::Aborted);
        assert_eq!(aborted.started_at, None);
        assert_eq!(aborted.completed_at, Some(at(50)));
        assert_eq!(
            prediction(None, Some(150)).snapshot(at(1000)).status,
            Status::Canceled
        );
        assert_eq!(
            prediction(None, Some(500)).snapshot(at(1000)).status,
            Status::Succeeded
        );
    }

    #[test]
    fn cancel_stops_a_running_prediction_but_not_a_finished_one() {
        let mut p = prediction(None, None);
        assert!(p.cancel(at(10)));
        assert_eq!(p.snapshot(at(1000)).status, Status::Canceled);
        let mut done = prediction(None, None);
        assert!(!done.cancel(at(1000)));
        assert_eq!(done.snapshot(at(1000)).status, Status::Succeeded);
    }

    #[test]
    fn next_change_points_at_the_next_transition() {
        let p = prediction(None, Some(250));
        assert_eq!(p.next_change(at(0)), Some(at(100)));
        assert_eq!(p.next_change(at(120)), Some(at(250)));
        assert_eq!(p.next_change(at(260)), None);
        assert_eq!(p.terminal_at(), at(250));
        assert_eq!(prediction(None, None).terminal_at(), at(300));
        let mut canceled = prediction(None, None);
        canceled.cancel(at(20));
        assert_eq!(canceled.terminal_at(), at(20));
    }

    #[test]
    fn omitted_keys_appear_only_when_terminal() {
        let p = prediction(None, None);
        let ctx = RenderCtx {
            base: "http://h",
            omit_optional_keys: true,
            output_retention: None,
        };
        let running = p.render(at(0), &ctx);
        for key in [
            "output",
            "started_at",
            "completed_at",
            "metrics",
            "data_removed",
        ] {
            assert!(running.get(key).is_none(), "{key} should be omitted");
        }
        let done = p.render(at(1000), &ctx);
        assert_eq!(done["metrics"]["total_time"], json!(0.3));
        assert!(done["output"]
            .as_str()
            .unwrap()
            .starts_with("http://h/files/"));
    }
}
